"""Worker processes: one that dies costs only its input, and none outlives the command that started it."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.cloudtrail import event, iam_user
from tests.faults.conftest import no_traceback, trailguard, wait_until
from tests.faults.test_fuzz import lake_ids


def objects(folder: Path, count: int, records: int = 50) -> set[str]:
    folder.mkdir(exist_ok=True)
    ids: set[str] = set()
    for n in range(count):
        recs = [event("ListBuckets", "s3.amazonaws.com", iam_user()) for _ in range(records)]
        (folder / f"{n:04d}.json.gz").write_bytes(gzip.compress(json.dumps({"Records": recs}).encode()))
        ids |= {r["eventID"] for r in recs}
    return ids


def heavy(path: Path, lines: int = 1_500_000) -> None:
    """JSON Lines of tiny records, each decoded on its own: seconds of CPU whatever the machine."""
    line = '{"eventID":"h%d","eventTime":"2024-05-01T00:00:00Z","eventName":"A"}\n'
    path.write_text("".join(line % n for n in range(lines)))


def test_a_worker_that_dies_costs_only_its_input(tmp_path: Path) -> None:
    """The CPU budget kills the worker decoding the heavy input; its group's other inputs are run again
    alone and ingested, and the heavy one, killing its worker again, is quarantined."""
    trail = tmp_path / "trail"
    good = objects(trail, 6, records=5)
    heavy(trail / "0003-heavy.jsonl")
    config = tmp_path / "limits.toml"
    config.write_text("[limits]\nmax_cpu_seconds = 1\nmax_inflated_mb = 256\nmax_records = 5000000\n")
    lake, state = tmp_path / "lake", tmp_path / "state.db"
    args = ["ingest", "--source", str(trail), "--lake", str(lake), "--state", str(state), "--workers", "2"]
    result = trailguard(*args, "--no-progress", config=config)
    no_traceback(result)
    assert result.errors == [
        f"error: {(trail / '0003-heavy.jsonl').resolve()}: its worker process died (killed, out of memory, crashed, "
        "or over limits.max_cpu_seconds) while decoding it alone"
    ]
    assert set(lake_ids(lake)) == good
    scanned = trailguard("scan", str(trail), "--workers", "2", config=config)
    no_traceback(scanned)
    assert [line.split(": ")[1] for line in scanned.errors] == [str(trail / "0003-heavy.jsonl")]
    assert f"{len(good)} events" in scanned.err


def test_a_worker_killed_from_outside_loses_nothing(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    expected = objects(trail, 120, records=400)
    lake, state = tmp_path / "lake", tmp_path / "state.db"
    command = [sys.executable, "-m", "monitor.cli", "ingest", "--source", str(trail), "--lake", str(lake)]
    command += ["--state", str(state), "--workers", "2", "--commit-inputs", "4", "--no-progress"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    killed: list[int] = []

    def kill_a_worker() -> bool:
        """A worker is a child of the forkserver, which is the ingest's child."""
        if proc.poll() is not None:
            return True
        for server in psutil.Process(proc.pid).children():
            for worker in server.children():
                worker.send_signal(signal.SIGKILL)
                killed.append(worker.pid)
                return True
        return False

    wait_until(kill_a_worker, "a worker")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert killed, "the ingest finished before a worker could be killed"
    stored = lake_ids(lake)
    assert set(stored) == expected  # every event, once: the dead worker's groups were run again
    assert max(stored.values()) == 1


def test_workers_and_their_forkserver_exit_with_a_killed_ingest(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    objects(trail, 60, records=400)
    command = [sys.executable, "-m", "monitor.cli", "ingest", "--source", str(trail), "--lake", str(tmp_path / "lake")]
    command += ["--state", str(tmp_path / "state.db"), "--workers", "2", "--commit-inputs", "2", "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    descendants: list[psutil.Process] = []

    def workers_started() -> bool:
        descendants[:] = psutil.Process(proc.pid).children(recursive=True)
        return sum("forkserver" in " ".join(p.cmdline()) for p in descendants) >= 3  # the server and two workers

    wait_until(workers_started, "the forkserver and its workers")
    proc.kill()
    proc.wait()
    wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in descendants), "orphans")
