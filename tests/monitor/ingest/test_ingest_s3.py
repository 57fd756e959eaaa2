"""Ingest from an S3 trail bucket laid out like an organization trail, against moto over HTTP."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from monitor.ingest.run import Options, ingest, new_only
from monitor.ingest.sources.s3 import S3Source
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import DEV, PROD, event, iam_user

BUCKET = "org-trail"
ORG = "o-abcdef1234"
DAYS = (date(2024, 5, 1), date(2024, 5, 2))
REGIONS = ("us-east-1", "eu-west-1")


def key(account: str, region: str, day: date, name: str) -> str:
    return (
        f"logs/AWSLogs/{ORG}/{account}/CloudTrail/{region}/{day:%Y/%m/%d}/{account}_CloudTrail_{region}_{name}.json.gz"
    )


def put(s3: Any, k: str, records: list[dict[str, Any]]) -> None:
    s3.put_object(Bucket=BUCKET, Key=k, Body=gzip.compress(json.dumps({"Records": records}).encode()))


def records(account: str, day: date, n: int) -> list[dict[str, Any]]:
    return [
        event("ListBuckets", "s3.amazonaws.com", iam_user("alice", account), time=f"{day}T10:{i:02d}:00Z")
        for i in range(n)
    ]


@pytest.fixture
def trail(aws: str) -> dict[str, Any]:
    """2 accounts x 2 regions x 2 days, a digest folder, and one object delivered twice."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    expected: set[str] = set()
    for account in (PROD, DEV):
        for region in REGIONS:
            for day in DAYS:
                recs = records(account, day, 3)
                put(s3, key(account, region, day, "20240501T1000Z_b"), recs)
                expected |= {r["eventID"] for r in recs}
    dup = records(PROD, DAYS[0], 2)
    put(s3, key(PROD, REGIONS[0], DAYS[0], "20240501T1100Z_c"), dup)
    put(s3, key(PROD, REGIONS[0], DAYS[0], "20240501T1105Z_c-redelivery"), dup)
    expected |= {r["eventID"] for r in dup}
    digest = f"logs/AWSLogs/{ORG}/{PROD}/CloudTrail-Digest/us-east-1/2024/05/01/{PROD}_CloudTrail-Digest_x.json.gz"
    s3.put_object(Bucket=BUCKET, Key=digest, Body=gzip.compress(b'{"digestStartTime": "x"}'))
    return {"s3": s3, "expected": expected}


def run(tmp_path: Path, workers: int = 1) -> tuple[Any, Lake, State]:
    lake, state = Lake(str(tmp_path / "lake")), State(tmp_path / "state.db")
    source = S3Source(BUCKET, "logs")
    summary = ingest(new_only(state, source.works(*DAYS)), lake, state, options=Options(workers=workers))
    return summary, lake, state


def lake_ids(lake: Lake) -> list[str]:
    window = (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC))
    return list(lake.read(*window, ["event_id"]).column("event_id").to_pylist())


@pytest.mark.parametrize("workers", [1, 2])
def test_every_event_once_digests_skipped(trail: dict[str, Any], tmp_path: Path, workers: int) -> None:
    summary, lake, state = run(tmp_path, workers)
    ids = lake_ids(lake)
    assert sorted(ids) == sorted(trail["expected"])
    assert (summary.inputs, summary.duplicates, summary.quarantined, summary.errors) == (10, 2, 0, [])
    assert not any("Digest" in o.key for o in state.objects())
    assert [d.isoformat() for d in lake.days()] == ["2024-05-01", "2024-05-02"]


def test_rerun_is_a_no_op(trail: dict[str, Any], tmp_path: Path) -> None:
    run(tmp_path)
    files = Lake(str(tmp_path / "lake")).files()
    again, lake, _ = run(tmp_path)
    assert (again.inputs, again.events) == (0, 0)
    assert lake.files() == files


def test_late_object_sorting_before_processed_keys_is_ingested(trail: dict[str, Any], tmp_path: Path) -> None:
    run(tmp_path)
    late = records(DEV, DAYS[1], 4)
    put(trail["s3"], key(DEV, REGIONS[1], DAYS[1], "20240501T0000Z_a-late"), late)  # sorts first
    summary, lake, _ = run(tmp_path)
    assert (summary.inputs, summary.events) == (1, 4)
    assert set(lake_ids(lake)) == trail["expected"] | {r["eventID"] for r in late}


def test_corrupt_object_is_quarantined_and_the_rest_ingested(trail: dict[str, Any], tmp_path: Path) -> None:
    trail["s3"].put_object(Bucket=BUCKET, Key=key(PROD, REGIONS[0], DAYS[1], "bad"), Body=b"\x1f\x8b\x08garbage")
    summary, lake, state = run(tmp_path)
    assert summary.quarantined == 1
    assert sorted(lake_ids(lake)) == sorted(trail["expected"])
    [bad] = state.objects("quarantined")
    assert bad.key.endswith("_bad.json.gz")
    assert "corrupt or truncated gzip" in (bad.reason or "")
    assert run(tmp_path)[0].inputs == 0  # a quarantined object is not retried every cycle


def test_lake_on_s3(trail: dict[str, Any], tmp_path: Path) -> None:
    trail["s3"].create_bucket(Bucket="lake")
    lake, state = Lake("s3://lake/trailguard"), State(tmp_path / "state.db")
    ingest(new_only(state, S3Source(BUCKET, "logs").works(*DAYS)), lake, state, options=Options(workers=1))
    assert sorted(lake_ids(lake)) == sorted(trail["expected"])
    keys = [o["Key"] for o in trail["s3"].list_objects_v2(Bucket="lake")["Contents"]]
    assert all(k.startswith("trailguard/events/date=2024-05-0") and k.endswith(".parquet") for k in keys)


@pytest.mark.parametrize("prefix", ["", "logs/AWSLogs", f"logs/AWSLogs/{ORG}", "elsewhere"])
def test_a_prefix_that_misses_the_trails_folder_is_an_error_not_an_empty_read(
    trail: dict[str, Any], prefix: str
) -> None:
    """The prefix is what comes before AWSLogs/: one that names AWSLogs (or a folder under it), or the wrong
    one, would list nothing every cycle and say nothing."""
    source = S3Source(BUCKET, prefix)
    assert list(source.works(*DAYS)) == []
    [error] = source.read.errors
    assert error.startswith(f"s3://{BUCKET}/{prefix + '/' if prefix else ''}AWSLogs/: no account folder")
    assert len(list(S3Source(BUCKET, "logs").works(*DAYS))) > 0
