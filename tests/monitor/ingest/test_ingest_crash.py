"""SIGKILL the ingest process at observable points and at random moments, then run it again:
the lake must hold every event exactly once (after de-duplication), and nothing may be lost."""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pyarrow.dataset as ds
import pytest

from monitor.lake import Lake
from tests.cloudtrail import event, iam_user

OBJECTS, PER_OBJECT = 60, 40


def write_inputs(folder: Path) -> set[str]:
    expected: set[str] = set()
    for n in range(OBJECTS):
        recs = [
            event("ListBuckets", "s3.amazonaws.com", iam_user(), time=f"2024-05-0{1 + n % 2}T10:00:00Z")
            for _ in range(PER_OBJECT)
        ]
        (folder / f"{n:03d}.json.gz").write_bytes(gzip.compress(json.dumps({"Records": recs}).encode()))
        expected |= {r["eventID"] for r in recs}
    return expected


def ingest_cmd(source: str, root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "monitor.cli",
        "ingest",
        "--source",
        source,
        "--lake",
        str(root / "lake"),
        "--state",
        str(root / "state.db"),
        "--workers",
        "1",
        "--commit-inputs",
        "3",
        "--no-progress",
    ]


def kill_when(cmd: list[str], ready: Callable[[], bool], timeout: float = 60) -> bool:
    """Start `cmd`, SIGKILL it as soon as `ready()` holds; True if it was killed before finishing."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            proc.kill()
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait()
    return False


def ledger_rows(root: Path) -> int:
    try:
        with sqlite3.connect(root / "state.db", timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM objects").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def lake_rows(root: Path) -> list[str]:
    """Every row in the lake, duplicates included (what a reader sees before de-duplication)."""
    lake = Lake(str(root / "lake"))
    files = lake.files()
    return (
        list(ds.dataset(files, format="parquet").to_table(columns=["event_id"])["event_id"].to_pylist())
        if files
        else []
    )


def finish_and_check(cmd: list[str], root: Path, expected: set[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rows = lake_rows(root)
    assert set(rows) == expected, "an event was lost"
    assert ledger_rows(root) == OBJECTS
    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert "ingested 0 inputs" in again.stderr


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, set[str]]:
    folder, root = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    return folder, root, write_inputs(folder)


def test_kill_after_ledger_rows(inputs: tuple[Path, Path, set[str]]) -> None:
    folder, root, expected = inputs
    cmd = ingest_cmd(str(folder), root)
    assert kill_when(cmd, lambda: ledger_rows(root) >= 9)
    assert 9 <= ledger_rows(root) < OBJECTS
    finish_and_check(cmd, root, expected)


def test_kill_after_a_parquet_file_appears(inputs: tuple[Path, Path, set[str]]) -> None:
    folder, root, expected = inputs
    cmd = ingest_cmd(str(folder), root)
    assert kill_when(cmd, lambda: any((root / "lake").rglob("*.parquet")))
    finish_and_check(cmd, root, expected)


@pytest.mark.parametrize("seed", range(4))
def test_kill_at_random_moments(inputs: tuple[Path, Path, set[str]], seed: int) -> None:
    folder, root, expected = inputs
    cmd = ingest_cmd(str(folder), root)
    rng = random.Random(seed)
    kills = 0
    for _ in range(2):  # two crashes in a row, each at a random moment once ingesting has begun
        delay, begun = rng.uniform(0.0, 0.3), []

        def moment(delay: float = delay, begun: list[float] = begun) -> bool:
            if not begun and ledger_rows(root) + len(lake_rows(root)) > 0:
                begun.append(time.monotonic())
            return bool(begun) and time.monotonic() - begun[0] >= delay

        kills += kill_when(cmd, moment)
    assert kills >= 1, "the run ended before any crash: the test proved nothing"
    finish_and_check(cmd, root, expected)


def test_sqs_message_never_deleted_before_its_events_are_committed(aws: str, tmp_path: Path) -> None:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket="trail")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    folder = tmp_path / "in"
    folder.mkdir()
    expected = write_inputs(folder)
    for path in sorted(folder.iterdir()):
        s3.put_object(Bucket="trail", Key=path.name, Body=path.read_bytes())
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"s3Bucket": "trail", "s3ObjectKey": [path.name]}))
    root = tmp_path / "out"
    cmd = ingest_cmd("sqs://us-east-1/123456789012/q?visibility=1", root)

    def in_flight() -> bool:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessagesNotVisible"]) > 0 and ledger_rows(root) >= 3

    assert kill_when(cmd, in_flight)
    time.sleep(1.2)  # the killed process's messages become visible again
    left: set[str] = set()
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1).get("Messages", [])
        left |= {json.loads(m["Body"])["s3ObjectKey"][0] for m in got}
    in_lake = set(lake_rows(root))
    for path in sorted(folder.iterdir()):
        if path.name not in left:  # its message was deleted: its events must be in the lake
            recs = json.loads(gzip.decompress(path.read_bytes()))["Records"]
            assert {r["eventID"] for r in recs} <= in_lake, f"{path.name} deleted before commit"
    time.sleep(1.2)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert set(lake_rows(root)) == expected
