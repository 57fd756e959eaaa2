"""Lake files that cannot be read, a baseline cache that cannot be read, a disk that refuses compaction, a lake that
is not there: each one named on one line, and none of them stops what it does not concern."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.lake import Lake, UnreadableFile, leaving_out
from monitor.store.state import State
from tests.faults.conftest import Run, no_traceback, run, trailguard
from tests.lakes import service_config
from tests.monitor.test_lake import events, window


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two generated days before now (within a cycle's lookback), ingested: root/trail, root/lake, root/state.db."""
    root = tmp_path_factory.mktemp("built")
    assert trailguard("generate", str(root / "trail"), "--days", "2", "--events", "3000").code == 0
    ingested = trailguard(
        "ingest", "--source", str(root / "trail"), "--lake", str(root / "lake"), "--state", str(root / "state.db")
    )
    assert ingested.code == 0, ingested.err
    return root


@pytest.fixture(scope="module")
def clean(built: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """`detect` over an untouched copy: what a damaged lake must still find."""
    root = copy(built, tmp_path_factory.mktemp("clean"))
    result = detect(root)
    assert (result.code, result.errors) == (0, [])
    return root, result


def copy(built: Path, into: Path) -> Path:
    shutil.copytree(built, into, dirs_exist_ok=True)
    return into


def detect(root: Path) -> Run:
    return trailguard("detect", "--lake", str(root / "lake"), "--state", str(root / "state.db"), "--since", "4d")


def finding_ids(root: Path, of_events: bool = False) -> set[str]:
    """The stored findings; `of_events`: only those of events (not the service's own, such as a silent source)."""
    found = State(root / "state.db", create=False).list_findings()
    return {f["finding_id"] for f in found if f["event_ids"] or not of_events}


def days(root: Path) -> list[Path]:
    return sorted((root / "lake" / "events").iterdir())


def flipped(path: Path, column: str) -> bytes:
    """The file with one column chunk's bytes inverted: its footer intact, that column's pages garbage."""
    chunk = pq.read_metadata(path).row_group(0)
    meta = next(chunk.column(n) for n in range(chunk.num_columns) if chunk.column(n).path_in_schema == column)
    start = meta.dictionary_page_offset or meta.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + meta.total_compressed_size] = bytes(
        b ^ 0xFF for b in data[start : start + meta.total_compressed_size]
    )
    return bytes(data)


def test_unreadable_lake_files_are_named_left_out_and_every_other_file_is_detected(
    built: Path, clean: tuple[Path, Run], tmp_path: Path
) -> None:
    """An empty file, the first 5000 bytes of a real one, a real one with a column's pages garbled: one line each,
    exit 2, the same findings as the lake without them (their events are copies), and the files left in place."""
    root = copy(built, tmp_path)
    first, last = days(root)[0], days(root)[-1]
    real = sorted(last.glob("*.parquet"))[0]
    bad = {
        first / "zero.parquet": b"",
        last / "torn.parquet": real.read_bytes()[:5000],
        last / "garbled.parquet": flipped(real, "event_name"),
    }
    for path, data in bad.items():
        path.write_bytes(data)
    result = detect(root)
    no_traceback(result)
    assert result.code == 2
    assert sorted(e.split(": ")[1] for e in result.errors) == sorted(str(p.resolve()) for p in bad)
    assert all(": cannot be read (" in e and e.endswith("; left out") for e in result.errors)
    whole, expected = clean
    assert result.err.splitlines()[-1] == expected.err.splitlines()[-1]  # every event judged, every finding new
    assert finding_ids(root) == finding_ids(whole)
    assert {p: p.read_bytes() for p in bad} == bad
    cached = [{p.parent.name for p in (r / "lake" / "baselines").rglob("*.parquet")} for r in (whole, root)]
    assert first.name in cached[0] - cached[1]  # a history day read in part is not kept as if whole


def test_a_service_cycle_logs_an_unreadable_file_and_goes_on(built: Path, tmp_path: Path) -> None:
    """The cycle's first read (the lookback's newest events) and its detection go past the file: the same
    findings of events as a cycle over the lake without it."""
    clean, broken = copy(built, tmp_path / "clean"), copy(built, tmp_path / "broken")
    zero = days(broken)[0] / "zero.parquet"
    zero.write_bytes(b"")
    cycles = [
        trailguard("run", "--once", config=service_config(root, [str(root / "trail")])) for root in (clean, broken)
    ]
    for cycle in cycles:
        no_traceback(cycle)
    logged = [json.loads(line) for line in cycles[1].err.splitlines() if line.startswith("{")]
    assert [e["error"] for e in logged if e["msg"] == "error"] == [
        f"{zero.resolve()}: cannot be read (Parquet file size is 0 bytes); left out"
    ]
    assert [e for e in logged if e["msg"] == "cycle"]
    assert finding_ids(broken, of_events=True) == finding_ids(clean, of_events=True)
    assert zero.exists()


def test_an_unreadable_cached_baseline_is_a_miss_built_again(built: Path, tmp_path: Path) -> None:
    root = copy(built, tmp_path)
    first = detect(root)
    cached = sorted((root / "lake" / "baselines").rglob("*.parquet"))
    assert cached  # the generated history feeds cross-account-assume-role's baseline
    for path in cached:
        path.write_bytes(b"")
    again = detect(root)
    no_traceback(again)
    assert (again.code, again.errors) == (0, [])
    assert again.err.split(" findings")[0] == first.err.split(" findings")[0]
    assert sorted((root / "lake" / "baselines").rglob("*.parquet")) == cached
    assert all(path.stat().st_size for path in cached)


def test_compaction_the_disk_refuses_is_one_line_and_the_day_is_left_as_it_was(built: Path, tmp_path: Path) -> None:
    """A file size limit (what a full disk says, for real and without root: EFBIG instead of ENOSPC) stops the
    spill; the day's files are the same, and no spill folder is left."""
    root = copy(built, tmp_path)
    day = days(root)[1]
    before = {p.name: p.read_bytes() for p in day.iterdir()}
    limited = ["sh", "-c", 'ulimit -f 64 && exec "$@"', "sh", sys.executable, "-m", "monitor.cli"]
    lake, when = root / "lake", day.name.removeprefix("date=")
    result = run([*limited, "compact", "--lake", str(lake), "--date", when, "--force"])
    no_traceback(result)
    assert result.code == 2
    assert result.errors == [f"error: {when}: cannot be compacted in {lake}: File too large; the day is left as it was"]
    assert {p.name: p.read_bytes() for p in day.iterdir()} == before
    assert not list(lake.glob(".*"))


@pytest.mark.parametrize("command", [("detect", "--since", "1d"), ("compact", "--date", "2024-01-01")])
def test_a_lake_that_is_not_there_is_named_and_nothing_is_made(tmp_path: Path, command: tuple[str, ...]) -> None:
    """Not an empty range: a mistyped --lake. No state file is made for it; a folder with no events yet is a lake."""
    missing = tmp_path / "no-such-lake"
    args = [*command, "--lake", str(missing), *(["--state", str(tmp_path / "state.db")] if "detect" in command else [])]
    result = trailguard(*args)
    no_traceback(result)
    assert (result.code, result.errors) == (
        2,
        [f"error: {missing}: no such folder (a lake is made by trailguard ingest)"],
    )
    assert list(tmp_path.iterdir()) == []
    missing.mkdir()
    assert trailguard(*args).code == 0


def test_a_file_torn_past_its_footer_is_left_out_whole_and_outside_leaving_out_named(tmp_path: Path) -> None:
    """Its garbled column is read only for the chosen events, after choosing: none of its rows is kept. Outside
    `leaving_out` (a notebook's read) it is an error that names it, not a gap."""
    lake = Lake(str(tmp_path))
    [_, other] = lake.write(events("2024-05-01", 3)) + lake.write(events("2024-05-01", 2))
    torn = Path(other).with_name("torn.parquet")
    torn.write_bytes(flipped(Path(other), "user_agent"))
    Path(other).unlink()
    span, columns = window("2024-05-01", "2024-05-02"), ["event_id", "user_agent"]
    reads: list[Callable[[], pa.Table]] = [
        lambda: lake.candidates(*span, ["event_name"], columns, lambda keyed: np.ones(keyed.num_rows, dtype=bool)),
        lambda: lake.read(*span, columns),
    ]
    for read in reads:
        with leaving_out() as missed:
            assert read().num_rows == 3
        assert list(missed) == [str(torn)]
        with pytest.raises(UnreadableFile, match=r"torn\.parquet: cannot be read"):
            read()
