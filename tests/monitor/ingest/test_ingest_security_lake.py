"""The Security Lake source against moto S3, with OCSF Parquet objects in the documented layout
(`aws/CLOUD_TRAIL_MGMT/2.0/region=/accountId=/eventDay=`): each cycle reads today and the day before, a re-run
ingests nothing new, a backfill reaches older days, and a SIGKILL mid-ingest loses nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from monitor.ingest.run import from_sources, from_uris
from monitor.ingest.sources.settings import parse
from monitor.ingest.sources.source import Window
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import DEV, PROD, event, iam_user
from tests.monitor.ingest.test_ingest_crash import ingest_cmd, kill_when, lake_rows, ledger_rows
from tests.ocsf import parquet

BUCKET = "aws-security-data-lake-us-east-1-abc123"
TABLE = "aws/CLOUD_TRAIL_MGMT/2.0"


def put(day: datetime, account: str, region: str, name: str, count: int = 5) -> set[str]:
    """One OCSF object of `count` events on `day`; returns their event ids."""
    records: list[dict[str, Any]] = [
        event(
            "ListBuckets",
            "s3.amazonaws.com",
            iam_user(account=account),
            account=account,
            time=f"{day:%Y-%m-%d}T10:{n:02d}:00Z",
        )
        | {"awsRegion": region}
        for n in range(count)
    ]
    key = f"{TABLE}/region={region}/accountId={account}/eventDay={day:%Y%m%d}/{name}.gz.parquet"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=parquet(records))
    return {r["eventID"] for r in records}


@pytest.fixture
def lake(aws: str) -> dict[str, set[str]]:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    now = datetime.now(UTC)
    recent = put(now, PROD, "us-east-1", "a") | put(now, DEV, "eu-west-1", "b")
    recent |= put(now - timedelta(days=1), PROD, "us-east-1", "c")
    old = put(now - timedelta(days=4), PROD, "us-east-1", "d")
    flow = f"aws/VPC_FLOW/2.0/region=us-east-1/accountId={PROD}/eventDay={now:%Y%m%d}/x.gz.parquet"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=flow, Body=b"not CloudTrail")  # another table: never read
    return {"recent": recent, "old": old}


def test_a_cycle_reads_today_and_yesterday_and_a_rerun_nothing(lake: dict[str, set[str]], tmp_path: Path) -> None:
    store, state = Lake(str(tmp_path / "lake")), State(tmp_path / "state.db")
    first = from_uris([f"securitylake://{BUCKET}"], store, state)
    assert (first.inputs, first.events, first.errors) == (3, len(lake["recent"]), [])
    again = from_uris([f"securitylake://{BUCKET}"], store, state)
    assert (again.inputs, again.events) == (0, 0)
    since = datetime.now(UTC) - timedelta(days=5)
    backfill = from_sources([parse(f"securitylake://{BUCKET}")], store, state, Window(since=since))
    assert (backfill.inputs, backfill.events) == (1, len(lake["old"]))
    assert set(lake_rows(tmp_path)) == lake["recent"] | lake["old"]


def test_accounts_and_regions_narrow_the_partitions_read(lake: dict[str, set[str]], tmp_path: Path) -> None:
    uri = f"securitylake://{BUCKET}?accounts={DEV}&regions=eu-west-1"
    done = from_uris([uri], Lake(str(tmp_path / "lake")), State(tmp_path / "state.db"))
    assert (done.inputs, done.events) == (1, 5)


def test_a_sigkill_mid_ingest_loses_nothing(aws: str, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    now = datetime.now(UTC)
    expected = set().union(*(put(now, PROD, "us-east-1", f"o{n:02d}", 20) for n in range(30)))
    root = tmp_path / "out"
    cmd = ingest_cmd(f"securitylake://{BUCKET}", root)
    assert kill_when(cmd, lambda: ledger_rows(root) >= 3)
    assert 3 <= ledger_rows(root) < 30
    done = from_uris([f"securitylake://{BUCKET}"], Lake(str(root / "lake")), State(root / "state.db"))
    assert done.errors == []
    rows = lake_rows(root)
    assert set(rows) == expected
    assert ledger_rows(root) == 30
