"""Detection over the lake into the outbox: the same ids as scan, no repeats, late events grow findings."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.core.base import Context, Settings
from detectors.core.registry import BUILTIN
from detectors.sigma import load as load_rules
from monitor.demo.generator import ORG_ACCOUNTS, generate_trail
from monitor.detect.detection import candidate_mask, needed_columns, run_detectors, select_columns
from monitor.detect.pipeline import CycleResult, Plan, cycle, detect, detect_slice, frame, local_engine, whole_windows
from monitor.detect.scan import scan
from monitor.ingest.files import works
from monitor.ingest.run import Options, ingest, new_only
from monitor.ingest.sources.settings import SourceSettings
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import console_login, event, normalize_batch, root
from tests.lakes import demo_lake, detect_command
from tests.sigmahq import sigmahq

DAY = datetime(2024, 3, 1, tzinfo=UTC)
CTX = Context(Settings(trusted_accounts=frozenset(ORG_ACCOUNTS)))


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Lake, State]:
    return demo_lake(tmp_path, 3000)


def late_root_event(time: str) -> dict[str, Any]:
    """Same account, IP and hour as the demo's root burst: it belongs to that finding."""
    return event("ListBuckets", "s3.amazonaws.com", root(ORG_ACCOUNTS[0]), ip="203.0.113.66", readOnly=True, time=time)


def test_same_finding_ids_as_scan_and_no_repeats(built: tuple[Path, Lake, State]) -> None:
    trail, lake, state = built
    scanned = set(scan([trail], BUILTIN, CTX).findings["finding_id"])
    first = detect(lake, state, BUILTIN, CTX, DAY, DAY + timedelta(days=1), Plan(["console"]))
    assert set(first.findings["finding_id"]) == scanned
    assert set(first.new) == scanned
    again = detect(lake, state, BUILTIN, CTX, DAY, DAY + timedelta(days=1), Plan(["console"]))
    assert (again.new, again.grown) == ([], [])
    assert all(d["status"] == "pending" for f in scanned for d in state.deliveries(f))


def test_a_range_cut_inside_a_window_still_gives_the_whole_finding(built: tuple[Path, Lake, State]) -> None:
    _, lake, state = built
    whole = detect(lake, state, BUILTIN, CTX, DAY, DAY + timedelta(days=1))
    root_finding = whole.findings[whole.findings["detector"].eq("root-usage")].iloc[0]
    cut = detect(lake, state, BUILTIN, CTX, DAY + timedelta(hours=9, minutes=14), DAY + timedelta(hours=9, minutes=15))
    again = cut.findings[cut.findings["detector"].eq("root-usage")].iloc[0]
    assert (again["finding_id"], list(again["event_ids"])) == (
        root_finding["finding_id"],
        list(root_finding["event_ids"]),
    )


def test_a_late_event_grows_its_finding(built: tuple[Path, Lake, State], tmp_path: Path) -> None:
    _, lake, state = built
    detect(lake, state, BUILTIN, CTX, DAY, DAY + timedelta(days=1))
    late = late_root_event("2024-03-01T09:40:00Z")
    (tmp_path / "late").mkdir()
    (tmp_path / "late/x.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [late]}).encode()))
    ingest(new_only(state, works([tmp_path / "late"])[0]), lake, state, options=Options(workers=1))
    result = detect(lake, state, BUILTIN, CTX, DAY + timedelta(hours=9), DAY + timedelta(hours=10))
    assert result.new == []
    [grown] = result.grown
    stored = state.finding(grown)
    assert stored is not None
    assert stored["detector"] == "root-usage"
    assert late["eventID"] in stored["event_ids"]


def test_whole_windows() -> None:
    start, end = whole_windows(DAY + timedelta(minutes=70), DAY + timedelta(minutes=121), timedelta(hours=1))
    assert (start, end) == (DAY + timedelta(hours=1), DAY + timedelta(hours=3))


def test_detect_and_findings_commands(built: tuple[Path, Lake, State], tmp_path: Path) -> None:
    base = [sys.executable, "-m", "monitor.cli"]
    state = str(tmp_path / "state.db")
    done = subprocess.run(detect_command(tmp_path, "--alert"), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "8 new" in done.stderr
    assert "root-usage" in done.stdout
    listed = subprocess.run([*base, "findings", "list", "--state", state], capture_output=True, text=True, check=True)
    items = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert len(items) == 8
    shown = subprocess.run(
        [*base, "findings", "show", items[0]["finding_id"], "--state", state],
        capture_output=True,
        text=True,
        check=True,
    )
    delivery = orjson.loads(shown.stdout)["deliveries"][0]
    assert (delivery["sink"], delivery["status"]) == ("console", "sent")


def test_cycles_detect_what_is_new_and_late_events_join_their_findings(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    generate_trail(trail, 2000, per_object=500)
    lake, state = Lake(str(tmp_path / "lake")), State(tmp_path / "state.db")
    at = Context(CTX.settings, now=DAY + timedelta(hours=23))
    sources = [SourceSettings(str(trail))]
    first = cycle(sources, lake, state, BUILTIN, at, Plan(["console"]), Options(workers=1))
    assert first.detect is not None
    assert len(first.detect.new) == 8  # the demo story

    def later(minutes: int) -> CycleResult:
        now = Context(CTX.settings, now=DAY + timedelta(hours=23, minutes=minutes))
        return cycle(sources, lake, state, BUILTIN, now, options=Options(workers=1))

    quiet = later(5)
    assert (quiet.ingest.inputs, quiet.detect) == (0, None)
    late = late_root_event("2024-03-01T09:50:00Z")
    (trail / "late.json").write_text(json.dumps({"Records": [late]}))
    third = later(10)
    assert third.detect is not None
    assert third.detect.events < 2000  # only the windows the late event touches were read
    assert (third.detect.new, len(third.detect.grown)) == ([], 1)


def test_empty_stretches_of_a_range_are_skipped_from_the_partition_listing(tmp_path: Path) -> None:
    """Ten years holding two days: only the slices whose events or context lie on those days are read (a root
    sign-in at the end of a day is judged with the next day's context too), and each day's finding is found."""
    lake = Lake(str(tmp_path / "lake"))
    for day in ("2016-03-01T23:30:00Z", "2025-06-01T10:00:00Z"):
        lake.write(pa.Table.from_batches([normalize_batch(console_login(root(), time=day))]))
    (tmp_path / "lake" / "events" / "notes.txt").write_text("not a partition")
    run: list[tuple[datetime, datetime]] = []

    def recording(lake: Lake, detectors: Any, ctx: Context, slices: list[tuple[datetime, datetime]]) -> Any:
        run.extend(slices)
        return local_engine(lake, detectors, ctx, slices)

    since, until = datetime(2015, 9, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC)
    done = detect(lake, State(tmp_path / "state.db"), BUILTIN, Context(), since, until, Plan(engine=recording))
    assert {f["detector"] for f in done.findings.to_dict("records")} >= {"root-usage"}
    assert len(done.findings[done.findings["detector"] == "root-usage"]) == 2
    assert [s.date().isoformat() for s, _ in run] == [
        "2016-02-29",
        "2016-03-01",
        "2016-03-02",
        "2025-05-31",
        "2025-06-01",
        "2025-06-02",
    ]


def test_reading_only_the_selected_events_finds_what_reading_the_whole_day_finds(tmp_path: Path) -> None:
    """A busy day with the demo's story, one of its files written twice (a crash's copies) and a detector whose
    select fails: the slice reads in full only the rows some detector selects, and its findings, every column,
    are those of the whole day read and detected; the failing detector is reported, the others still find."""
    trail = tmp_path / "trail"
    generate_trail(trail, 4000, per_object=500, busy=True)
    lake, state = Lake(str(tmp_path / "lake")), State(tmp_path / "state.db")
    ingest(new_only(state, works([trail])[0]), lake, state, options=Options(workers=1))
    day = DAY.date()
    lake.write_file(pq.read_table(lake.files(day)[0]), lake.partition(day))

    class Broken(BUILTIN[0]):  # type: ignore[misc,valid-type]
        id = "broken-select"

        def select(self, events: pd.DataFrame) -> pd.Series:
            raise KeyError("no such column")

    detectors = [*BUILTIN, Broken]
    end = DAY + timedelta(days=1)
    sliced = detect_slice(lake, detectors, CTX, DAY, end)
    behind = max(d.lookbehind for d in detectors)
    whole, errors = run_detectors(frame(lake, DAY - behind, end, needed_columns(detectors)), detectors, CTX, DAY, end)
    assert len(whole) > 20
    pd.testing.assert_frame_equal(sliced.findings, whole)
    assert sliced.errors == errors == ["detector broken-select failed: KeyError: 'no such column'"]
    assert sliced.events == sum(pq.read_metadata(f).num_rows for f in lake.files(day))  # copies count until compacted


def test_selects_asked_once_per_distinct_combination_answer_as_asked_row_by_row(tmp_path: Path) -> None:
    """The candidate mask asks each select once per distinct (event name, user type, error code), nulls among
    them: over a busy day and a Sigma pack, every row gets what asking it alone would give."""
    generate_trail(tmp_path / "trail", 3000, per_object=500, busy=True)
    lake, state = Lake(str(tmp_path / "lake")), State(tmp_path / "state.db")
    ingest(new_only(state, works([tmp_path / "trail"])[0]), lake, state, options=Options(workers=1))
    rules = load_rules([sigmahq() / "rules"]).detectors
    detectors = [cls() for cls in (*BUILTIN, *rules)]
    nulls = [{"eventName": "ConsoleLogin", "errorCode": None}, {"eventName": "GetObject", "userIdentity": None}]
    odd = normalize_batch(*(event("x", "s3.amazonaws.com", root()) | n for n in nulls))
    day = pa.concat_tables([lake.read(DAY, DAY + timedelta(days=1)), pa.Table.from_batches([odd])])
    keys = day.select(select_columns([type(d) for d in detectors]))
    each = pd.Series(False, index=range(keys.num_rows))
    frame = keys.to_pandas()
    for d in detectors:
        each |= d.select(frame).fillna(False).astype(bool)
    assert 0 < int(each.sum()) < keys.num_rows
    assert (candidate_mask(keys, detectors) == each.to_numpy()).all()


def test_detect_on_a_fresh_state_takes_the_lakes_accounts_as_the_organization(tmp_path: Path) -> None:
    """`ingest` then `detect` on a new state file judge role use between the trail's own accounts as `run` and
    `scan` do: without an inventory the accounts the range delivers are the organization's, so the generated
    trail's ci role from its third account is a new pair inside it (low), and only the outside account is high."""
    demo_lake(tmp_path, events=20_000)
    done = subprocess.run(detect_command(tmp_path), capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    found = [f for f in State(tmp_path / "state.db").list_findings() if f["detector"] == "cross-account-assume-role"]
    assert sorted((f["account_id"], f["severity"]) for f in found) == [
        ("333333333333", "low"),
        ("999988887777", "high"),
    ]
