"""LookupEvents through the real botocore client against a local wire-protocol server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.ingest.run import Options, Summary, from_source, from_uris
from monitor.ingest.sources.lookup import LookupSource, RateLimiter
from monitor.ingest.sources.settings import SourceError, parse
from monitor.ingest.sources.source import Window
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import event, iam_user
from tests.faults.conftest import no_traceback, trailguard
from tests.faults.test_fuzz import lake_ids as file_lake_ids
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


def read(source: LookupSource, lake: Lake, state: State, **window: datetime) -> Summary:
    """The source through ingest, as every source is read: its inputs to the lake, its cursors moved by ingest."""
    return from_source(source, Window(cursor=state.cursor, **window), lake, state, Options(workers=1))


def test_pages_overlap_and_cursor(service: LookupService, tmp_path: Path) -> None:
    service.events = events(5, NOW - timedelta(minutes=1))
    lake, state = Lake(str(tmp_path / "lake")), State(tmp_path / "s.db")
    source = LookupSource(["us-east-1"])
    assert (read(source, lake, state, until=NOW).events, source.read.incomplete) == (5, None)
    assert [r["NextToken"] for r in service.requests if "NextToken" in r] == ["2", "4"]  # pages of 2
    assert lake_ids(lake) == {e["eventID"] for e in service.events}
    assert state.cursor("lookup", "123456789012", "us-east-1") == NOW.isoformat()
    late = events(1, NOW - timedelta(minutes=10))  # arrived late, inside the overlap
    service.events += late
    service.requests.clear()
    read(LookupSource(["us-east-1"]), lake, state, until=NOW + timedelta(minutes=5))
    assert service.requests[0]["StartTime"] == (NOW - timedelta(minutes=20)).timestamp()
    assert lake_ids(lake) == {e["eventID"] for e in service.events}


def test_throttling_is_retried(service: LookupService, tmp_path: Path) -> None:
    service.events = events(1, NOW)
    service.throttle_next = 1
    source = LookupSource(["us-east-1"])
    summary = read(source, Lake(str(tmp_path / "l")), State(tmp_path / "s.db"), until=NOW)
    assert (summary.events, source.read.incomplete) == (1, None)


def test_backfill_leaves_the_cursor_and_bad_events_are_counted(service: LookupService, tmp_path: Path) -> None:
    service.events = events(2, NOW)
    state, lake = State(tmp_path / "s.db"), Lake(str(tmp_path / "l"))
    read(LookupSource(["us-east-1"]), lake, state, until=NOW + timedelta(minutes=1))
    cursor = state.cursor("lookup", "123456789012", "us-east-1")
    service.events[0] = service.events[0] | {"eventID": None}
    old = LookupSource(["us-east-1"])
    read(old, lake, state, since=NOW - timedelta(days=3), until=NOW - timedelta(days=2))
    assert old.read.incomplete is None
    assert state.cursor("lookup", "123456789012", "us-east-1") == cursor
    again = read(LookupSource(["us-east-1"]), lake, state, until=NOW + timedelta(minutes=2))
    assert (again.events, again.bad_records) == (1, 1)


def test_persistent_throttling_is_incomplete_and_cursor_stays(service: LookupService, tmp_path: Path) -> None:
    service.events = events(1, NOW)
    service.throttle_next = 100
    state, source = State(tmp_path / "s.db"), LookupSource(["us-east-1"], attempts=2)
    read(source, Lake(str(tmp_path / "l")), state, until=NOW)
    assert source.read.incomplete is not None
    assert "ThrottlingException" in source.read.incomplete
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
    summary = from_uris([uri], lake, state, Window(until=NOW + timedelta(minutes=1)), Options(workers=1))
    assert (summary.events, summary.errors) == (1, [])
    assert state.cursor("lookup", "210987654321", "us-east-1") is not None  # the member account's own cursor
    with pytest.raises(SourceError, match="colour: unknown option"):
        parse("lookup://us-east-1?colour=blue")


def test_a_next_token_given_again_ends_the_read_incomplete(service: LookupService, tmp_path: Path) -> None:
    """A server that answers a page with the NextToken it was asked for would be followed for MAX_PAGES pages
    (83 minutes at 2 per second) of the same events: the token's return ends the read, incomplete, its events
    written and its cursor held."""
    first_slice = datetime.now(UTC) - timedelta(hours=23)  # a first read starts 24 hours back
    service.events = events(3, first_slice)
    service.stuck = True
    lake, state = tmp_path / "lake", tmp_path / "s.db"
    result = trailguard("ingest", "--source", "lookup://us-east-1", "--lake", str(lake), "--state", str(state))
    no_traceback(result)
    assert (result.code, result.errors) == (
        2,
        [
            "error: lookup://123456789012/us-east-1: incomplete read "
            "(LookupEvents answered a NextToken it had given before: its pages loop)"
        ],
    )
    assert [r.get("NextToken") for r in service.requests] == [None, "0"]  # the first page, then its token once
    assert State(state).cursor("lookup", "123456789012", "us-east-1") is None
    assert set(file_lake_ids(lake)) == {e["eventID"] for e in service.events[:2]}
