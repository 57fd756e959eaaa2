from pathlib import Path

import orjson

from monitor.outbox.dispatcher import Dispatcher, Route
from monitor.outbox.sinks.jsonl import JsonlSink
from monitor.store.state import State
from tests.cloudtrail import stored_finding


def fid(n: int) -> str:
    return f"{n:032d}"


def test_each_finding_written_once_even_across_a_crash(tmp_path: Path) -> None:
    state, out = State(tmp_path / "s.db"), tmp_path / "findings.jsonl"
    sink, outbox = Route(JsonlSink(out)), Dispatcher(state)
    state.store_findings([stored_finding(finding_id=fid(n)) for n in (1, 2)], ["jsonl"])
    assert outbox.deliver(sink).sent == 2
    assert outbox.deliver(sink).sent == 0
    state.store_findings([stored_finding(finding_id=fid(n)) for n in (3, 4)], ["jsonl"])
    # the process wrote finding 3 and died before recording it; finding 4 was marked but never written
    for n in (3, 4):
        state.update_delivery(fid(n), "jsonl", status="posting")
    with out.open("ab") as f:
        f.write(orjson.dumps(stored_finding(finding_id=fid(3))) + b"\n" + b'{"finding_id": "torn')
    done = outbox.deliver(sink)
    assert (done.recovered, done.sent) == (1, 1)
    lines = out.read_bytes().splitlines()
    assert lines[3] == b'{"finding_id": "torn'  # left as it was, on its own line
    ids = [orjson.loads(line)["finding_id"] for n, line in enumerate(lines) if n != 3]
    assert sorted(ids) == [fid(1), fid(2), fid(3), fid(4)]
    assert {d["status"] for n in (1, 2, 3, 4) for d in state.deliveries(fid(n))} == {"sent"}
