"""The fuzz campaign: a seeded corpus of good CloudTrail objects mixed with as many mutated ones (bit
flips, truncation, nesting, bombs, noise, wrong types, huge records and strings, too many records,
bad lines) through `scan`, `ingest` from a folder, from moto S3 and from moto SQS. For every run:
no traceback, the documented exit status, every good event in the lake exactly once, every bad
input named exactly once, and no process larger than the limits allow.

Size it with `--fuzz-inputs N` (inputs per path, default 1200; SQS gets a third of them, at most 1,000:
moto's queue takes time quadratic in the messages it holds, not TrailGuard) and replay it with `--fuzz-seed`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import boto3
import pyarrow.dataset as ds
import pytest

from tests.cloudtrail import PROD
from tests.faults.conftest import Run, no_traceback, trailguard
from tests.faults.corpus import LIMITS, Input, corpus

BUCKET, QUEUE = "fuzz-trail", "fuzz-notes"
ACCOUNT = "123456789012"  # moto's
SQS_MAX = 1000  # 600 messages take moto 23 s of CPU, TrailGuard 2 s
PEAK_MIB = 512  # per process, with inputs limited to 8 MiB inflated (a bomb would take gigabytes)


@pytest.fixture(scope="module")
def inputs(request: pytest.FixtureRequest) -> list[Input]:
    count, seed = request.config.getoption("--fuzz-inputs"), request.config.getoption("--fuzz-seed")
    return corpus(seed, count)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    return path


def folder(root: Path, inputs: list[Input]) -> Path:
    root.mkdir()
    for item in inputs:
        (root / item.name).write_bytes(item.data)
    return root


def named_once(result: Run, inputs: list[Input], where: Callable[[Input], str]) -> None:
    """Each input that is not good is named by exactly one error line, and good ones by none."""
    by_input = Counter(m[1] for m in (re.match(r"error: (.+?): ", line) for line in result.errors) if m)
    for item in inputs:
        expected = 0 if item.fate == "good" else 1
        assert by_input.get(where(item), 0) == expected, (item.kind, item.name, by_input.get(where(item)))


def lake_ids(lake: Path) -> Counter[str]:
    """Every event id as stored, before any de-duplication on read."""
    table = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table(columns=["event_id"])
    return Counter(table["event_id"].to_pylist())


def exactly_once(lake: Path, inputs: list[Input]) -> None:
    wanted = set().union(*(item.events for item in inputs))
    stored = lake_ids(lake)
    assert set(stored) == wanted
    assert max(stored.values()) == 1


def healthy(result: Run) -> None:
    no_traceback(result)
    assert result.code == 2, result.err[-2000:]  # some inputs could not be read: the documented exit status
    assert result.peak_mib < PEAK_MIB, result.peak_mib


def test_scan(inputs: list[Input], tmp_path: Path, config: Path) -> None:
    trail = folder(tmp_path / "trail", inputs)
    result = trailguard("scan", str(trail), "--no-progress", config=config)
    healthy(result)
    named_once(result, inputs, lambda item: str(trail / item.name))
    events = len(set().union(*(item.events for item in inputs)))
    assert f"scanned {len(inputs)} files, {events} events (0 duplicates)" in result.err
    for line in result.out.splitlines():  # findings on stdout: valid JSON, no raw control or bidi characters
        json.loads(line)
        assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", line)


def test_ingest_from_a_folder(inputs: list[Input], tmp_path: Path, config: Path) -> None:
    trail = folder(tmp_path / "trail", inputs)
    lake, state = tmp_path / "lake", tmp_path / "state.db"
    result = trailguard(
        "ingest", "--source", str(trail), "--lake", str(lake), "--state", str(state), "--no-progress", config=config
    )
    healthy(result)
    named_once(result, inputs, lambda item: str((trail / item.name).resolve()))
    exactly_once(lake, inputs)
    again = trailguard(
        "ingest", "--source", str(trail), "--lake", str(lake), "--state", str(state), "--no-progress", config=config
    )
    assert (again.code, again.errors) == (0, [])  # quarantined inputs are in the ledger: not read again
    exactly_once(lake, inputs)


def test_ingest_from_s3_and_from_sqs(aws: str, inputs: list[Input], tmp_path: Path, config: Path) -> None:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    day = datetime.now(UTC)
    prefix = f"AWSLogs/{PROD}/CloudTrail/us-east-1/{day:%Y/%m/%d}/"
    etags = {item.name: s3.put_object(Bucket=BUCKET, Key=prefix + item.name, Body=item.data)["ETag"] for item in inputs}

    lake, state = tmp_path / "s3-lake", tmp_path / "s3-state.db"
    listed = trailguard(
        "ingest", "--source", f"s3://{BUCKET}", "--lake", str(lake), "--state", str(state), "--no-progress",
        config=config,
    )  # fmt: skip
    healthy(listed)
    named_once(listed, inputs, lambda item: f"s3://{BUCKET}/{prefix}{item.name}")
    exactly_once(lake, inputs)

    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    inputs = inputs[: min(SQS_MAX, max(1, len(inputs) // 3))]
    notes = [  # as S3 sends them: the key URL-encoded, with the object's ETag and size
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": BUCKET},
                        "object": {"key": quote_plus(prefix + i.name), "eTag": etags[i.name], "size": len(i.data)},
                    },
                }
            ]
        }
        for i in inputs
    ]
    poison = [
        "[" * 5000 + "]" * 5000,
        "not json at all",
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "../../etc"}}}]}),
        json.dumps({"detail-type": "Object Created", "detail": {"bucket": {"name": BUCKET}, "object": {"key": 7}}}),
        json.dumps(
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "k", "size": "abc"}},
                    }
                ]
            }
        ),
    ]
    bodies = [json.dumps(n) for n in notes] + poison
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    lake, state = tmp_path / "sqs-lake", tmp_path / "sqs-state.db"
    # small commits: each message is deleted soon after its object is in (moto slows down with many in flight)
    notified = trailguard(
        "ingest", "--source", f"sqs://us-east-1/{ACCOUNT}/{QUEUE}", "--lake", str(lake), "--state", str(state),
        "--no-progress", "--commit-inputs", "25", config=config,
    )  # fmt: skip
    healthy(notified)
    named_once(notified, inputs, lambda item: f"s3://{BUCKET}/{prefix}{item.name}")
    poisoned = [line for line in notified.errors if "left for the dead-letter queue" in line]
    assert len(poisoned) == len(poison)
    exactly_once(lake, inputs)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == 0  # every notification was received
    assert int(attributes["ApproximateNumberOfMessagesNotVisible"]) == len(poison)  # only the poison was kept
