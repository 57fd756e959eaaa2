"""Ctrl-C during `ingest`: the first commits what is in flight and ends with one line, a second aborts at once;
either way a rerun ingests only the rest and every reader sees each event once."""

from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds

from monitor.lake import drop_duplicates
from tests.faults.conftest import no_traceback, trailguard, wait_until
from tests.faults.test_fuzz import lake_ids
from tests.faults.test_workers import heavy, objects

# a terminal's Ctrl-C reaches a process whose SIGINT is not ignored, which a background job's (and so the test
# runner's children's) may be: the launcher restores the default before it becomes `trailguard`
LAUNCH = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)
HEAVY_LINES = 400_000  # seconds of one worker's CPU: the group holding it is still in flight when Ctrl-C comes


def trail(root: Path) -> tuple[Path, set[str]]:
    """40 small objects and, in the second group, one heavy input: once the first group is committed, the
    heavy one keeps its group (and every later one, committed in order) in flight."""
    folder = root / "trail"
    ids = objects(folder, 40, records=400)
    heavy(folder / "0002-heavy.jsonl", HEAVY_LINES)
    return folder, ids | {f"h{n}" for n in range(HEAVY_LINES)}


def command(folder: Path, root: Path) -> list[str]:
    ingest = ["ingest", "--source", str(folder), "--lake", str(root / "lake"), "--state", str(root / "state.db")]
    return [*ingest, "--workers", "2", "--commit-inputs", "2", "--no-progress"]


def recorded(state: Path) -> set[str]:
    """The keys the ledger holds, read as any other process would (nothing while it does not exist yet)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
            return {key for (key,) in db.execute("SELECT key FROM objects")}
    except sqlite3.Error:
        return set()


def start(folder: Path, root: Path) -> subprocess.Popen[str]:
    """`trailguard ingest` with SIGINT as a terminal leaves it, once its first group is committed."""
    args = [sys.executable, "-c", LAUNCH, "-m", "monitor.cli", *command(folder, root)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: recorded(root / "state.db") or proc.poll() is not None, "the first group's commit")
    assert proc.poll() is None, proc.communicate()
    assert not any(k.endswith("heavy.jsonl") for k in recorded(root / "state.db"))
    return proc


def rerun(folder: Path, root: Path) -> int:
    """The inputs the same ingest, run again to its end, ingested."""
    done = trailguard(*command(folder, root))
    no_traceback(done)
    assert done.code == 0, done.err
    found = re.search(r"^ingested (\d+) inputs", done.err, re.MULTILINE)
    assert found, done.err
    return int(found[1])


def test_ctrl_c_commits_what_is_in_flight_and_a_rerun_ingests_only_the_rest(tmp_path: Path) -> None:
    """Ctrl-C while the heavy input's group is in flight: it and the groups beside it are committed, as at a
    normal end, and the groups not started are left to the rerun."""
    folder, expected = trail(tmp_path)
    proc = start(folder, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err[-3000:]
    (line,) = err.splitlines()
    found = re.match(r"interrupted: ingested (\d+) inputs, .*; these are committed, a rerun ingests the rest$", line)
    assert found, line
    first = int(found[1])
    committed = recorded(tmp_path / "state.db")
    assert len(committed) == first
    assert any(k.endswith("heavy.jsonl") for k in committed)  # in flight at Ctrl-C: finished and committed
    again = rerun(folder, tmp_path)
    assert again > 0
    assert first + again == 41
    stored = lake_ids(tmp_path / "lake")
    assert set(stored) == expected
    assert max(stored.values()) == 1  # nothing written twice: every group written was recorded


def test_a_second_ctrl_c_aborts_at_once_and_loses_nothing(tmp_path: Path) -> None:
    """Ctrl-C until the command ends: the second one ends it while the heavy input is still decoded."""
    folder, expected = trail(tmp_path)
    proc = start(folder, tmp_path)

    def interrupted() -> bool:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        return proc.poll() is not None

    wait_until(interrupted, "the command's end")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err[-3000:]
    assert "error: aborted by a second Ctrl-C: what was committed stays, a rerun does the rest" in err
    committed = recorded(tmp_path / "state.db")
    assert committed
    assert not any(k.endswith("heavy.jsonl") for k in committed)  # aborted while in flight, not finished
    again = rerun(folder, tmp_path)
    assert len(committed) + again == 41
    assert set(lake_ids(tmp_path / "lake")) == expected
    table = ds.dataset(tmp_path / "lake" / "events", format="parquet", partitioning="hive").to_table()
    assert drop_duplicates(table).num_rows == len(expected)  # what was written but not recorded is read once
