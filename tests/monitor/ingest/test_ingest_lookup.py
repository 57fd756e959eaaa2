"""LookupEvents through the real botocore client against a local wire-protocol server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.ingest.run import from_lookup
from monitor.ingest.sources.lookup import LookupSource, RateLimiter
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import event, iam_user
from tests.lookup_server import LookupService, serve

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def service(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LookupService]:
    svc = LookupService()
    server, url = serve(svc)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", url)
    yield svc
    server.shutdown()


def events(n: int, at: datetime) -> list[dict]:
    return [
        event("ListBuckets", "s3.amazonaws.com", iam_user(), time=f"{at - timedelta(minutes=i):%Y-%m-%dT%H:%M:%SZ}")
        for i in range(n)
    ]


def lake_ids(lake: Lake) -> set[str]:
    return set(lake.read(NOW - timedelta(days=2), NOW + timedelta(days=1), ["event_id"])["event_id"].to_pylist())


def test_pages_overlap_and_cursor(service: LookupService, tmp_path: Path) -> None:
    service.events = events(5, NOW - timedelta(minutes=1))
    lake, state = Lake(str(tmp_path / "lake")), State(tmp_path / "s.db")
    [first] = from_lookup(LookupSource.from_uri("lookup://us-east-1"), lake, state, until=NOW)
    assert (first.events, first.incomplete) == (5, None)
    assert [r["NextToken"] for r in service.requests if "NextToken" in r] == ["2", "4"]  # pages of 2
    assert lake_ids(lake) == {e["eventID"] for e in service.events}
    late = events(1, NOW - timedelta(minutes=10))  # arrived late, inside the overlap
    service.events += late
    [second] = from_lookup(LookupSource.from_uri("lookup://us-east-1"), lake, state, until=NOW + timedelta(minutes=5))
    assert second.start == NOW - timedelta(minutes=20)
    assert lake_ids(lake) == {e["eventID"] for e in service.events}


def test_throttling_is_retried(service: LookupService, tmp_path: Path) -> None:
    service.events = events(1, NOW)
    service.throttle_next = 1
    [result] = from_lookup(LookupSource(["us-east-1"]), Lake(str(tmp_path / "l")), State(tmp_path / "s.db"), until=NOW)
    assert (result.events, result.incomplete) == (1, None)


def test_backfill_leaves_the_cursor_and_bad_events_are_counted(service: LookupService, tmp_path: Path) -> None:
    service.events = events(2, NOW)
    state, lake = State(tmp_path / "s.db"), Lake(str(tmp_path / "l"))
    from_lookup(LookupSource(["us-east-1"]), lake, state, until=NOW + timedelta(minutes=1))
    cursor = state.cursor("lookup", "123456789012", "us-east-1")
    service.events[0] = service.events[0] | {"eventID": None}
    [old] = from_lookup(
        LookupSource(["us-east-1"]), lake, state, since=NOW - timedelta(days=3), until=NOW - timedelta(days=2)
    )
    assert old.incomplete is None
    assert state.cursor("lookup", "123456789012", "us-east-1") == cursor
    [again] = from_lookup(LookupSource(["us-east-1"]), lake, state, until=NOW + timedelta(minutes=2))
    assert (again.events, again.bad_records) == (1, 1)


def test_persistent_throttling_is_incomplete_and_cursor_stays(service: LookupService, tmp_path: Path) -> None:
    service.events = events(1, NOW)
    service.throttle_next = 100
    state = State(tmp_path / "s.db")
    [result] = from_lookup(LookupSource(["us-east-1"], attempts=2), Lake(str(tmp_path / "l")), state, until=NOW)
    assert result.incomplete is not None
    assert "ThrottlingException" in result.incomplete
    assert state.cursor("lookup", "123456789012", "us-east-1") is None


def test_rate_limiter_spaces_calls_per_key() -> None:
    limiter = RateLimiter(rate=20.0)
    start = time.monotonic()
    for _ in range(5):
        limiter.wait(("a", "r"))
    limiter.wait(("b", "r"))  # another account/region is not held up
    assert 0.19 <= time.monotonic() - start < 2.0


def test_one_uri_per_member_account_through_its_read_role(service: LookupService, tmp_path: Path) -> None:
    service.events = events(1, NOW)
    state, lake = State(tmp_path / "s.db"), Lake(str(tmp_path / "l"))
    uri = "lookup://us-east-1?role_arn=arn:aws:iam::210987654321:role/trailguard-read"
    [result] = from_lookup(LookupSource.from_uri(uri), lake, state, until=NOW + timedelta(minutes=1))
    assert result.events == 1
    assert state.cursor("lookup", "210987654321", "us-east-1") is not None  # the member account's own cursor
    with pytest.raises(ValueError, match="unknown option colour"):
        LookupSource.from_uri("lookup://us-east-1?colour=blue")
