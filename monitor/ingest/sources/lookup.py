"""The CloudTrail LookupEvents API, for small estates without a trail bucket.

LookupEvents allows 2 requests per second per account and region, so every caller in the
process shares one limiter per (account, region). Each read re-reads an overlap before its
cursor (events reach LookupEvents minutes late; duplicates are dropped by the lake), and a read
that is throttled past its retries or cut short is reported as *incomplete*: its cursor does not
move, and it is never mistaken for "no events". The source only reads: each slice becomes inputs whose
bytes it already holds, written to the lake by ingest, which moves the region's cursor once the slice's
last input is committed (a complete slice of a live read: never a backfill's).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from monitor.ingest.events import RECORD_DECODER
from monitor.ingest.limits import Limits
from monitor.ingest.sources import aws
from monitor.ingest.sources.inputs import Work
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.source import Read, Window

OVERLAP = timedelta(minutes=20)
SLICE = timedelta(hours=6)  # the unit of commit: memory stays bounded and progress is kept
FIRST_READ = timedelta(hours=24)
MAX_PAGES = 10_000
PER_INPUT = 5_000  # events per input a slice is cut into: a worker's memory stays bounded


class RateLimiter:
    """At most `rate` calls per second per key, across threads."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_at: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def wait(self, key: tuple[str, str]) -> None:
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at.get(key, now))
            self.next_at[key] = at + self.interval
        time.sleep(max(0.0, at - now))


LIMITER = RateLimiter(rate=2.0)


@dataclass
class Slice:
    """One window of one region as read: what ingest writes to the lake before the cursor may move past it."""

    account: str
    region: str
    start: datetime
    end: datetime
    backfill: bool = False  # a backfill reads the past: the cursor stays where it is
    records: list[bytes] = field(default_factory=list)  # each event's JSON, as LookupEvents returned it
    bad_records: int = 0
    incomplete: str | None = None  # why the read did not cover the window


@dataclass
class LookupSource:
    """`lookup://<region>[,<region>...]`, read with the credentials of one account."""

    regions: list[str]
    role_arn: str | None = None
    attempts: int = 8
    limits: Limits = field(default_factory=Limits)
    read: Read = field(default_factory=Read)

    @classmethod
    def from_settings(cls, settings: SourceSettings, limits: Limits = Limits()) -> LookupSource:
        """`lookup://<region>[,<region>...]`: one source per account of an organization, each with its role."""
        return cls(settings.place, settings.role_arn, limits=limits)

    def inputs(self, window: Window) -> Iterator[Work]:
        """Each slice read, as inputs of at most PER_INPUT events; the last carries the region's new cursor."""
        for part in self.slices(lambda a, r: window.cursor("lookup", a, r), window.since, window.until):
            if part.bad_records:
                where = f"lookup://{part.account}/{part.region}/{part.start.isoformat()}/{part.end.isoformat()}"
                self.read.errors.append(f"{where}: {part.bad_records} events that are not CloudTrail records")
            self.read.bad_records += part.bad_records
            yield from _inputs(part, self.role_arn)
            if part.incomplete:
                self.read.incomplete = f"{part.region}: {part.incomplete}"
                self.read.errors.append(f"lookup://{part.account}/{part.region}: incomplete read ({part.incomplete})")

    def acknowledge(self, works: Sequence[Work]) -> None:
        """Nothing to do: ingest moves the cursors."""

    def slices(
        self, cursor: Callable[[str, str], str | None], since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[Slice]:
        """Each region from its cursor (`cursor(account, region)`, minus the overlap), or `since` for a backfill,
        up to `until` or now, slice by slice; a region stops at its first incomplete slice."""
        end = (until or datetime.now(UTC)).astimezone(UTC)
        account = aws.session(self.role_arn).client("sts", config=aws.config()).get_caller_identity()["Account"]
        for region in self.regions:
            position = cursor(account, region)
            start = since or (datetime.fromisoformat(position) - OVERLAP if position else end - FIRST_READ)
            client = aws.session(self.role_arn, region).client("cloudtrail", config=aws.config(attempts=self.attempts))
            while start < end:
                part = Slice(account, region, start, min(start + SLICE, end), backfill=since is not None)
                part.records, part.incomplete = self._read(client, (account, region), part)
                yield part
                if part.incomplete:
                    break
                start = part.end

    @staticmethod
    def _read(client: Any, key: tuple[str, str], part: Slice) -> tuple[list[bytes], str | None]:
        """Every page of one slice; a bad event is counted, a failed or endless read is incomplete: a NextToken
        already followed would only lead round the same pages again, until MAX_PAGES."""
        records: list[bytes] = []
        token: str | None = None
        followed: set[str] = set()
        try:
            for _ in range(MAX_PAGES):
                LIMITER.wait(key)
                args: dict[str, Any] = {"StartTime": part.start, "EndTime": part.end, "MaxResults": 50}
                page = client.lookup_events(**args, **({"NextToken": token} if token else {}))
                for item in page.get("Events", []):
                    try:  # each event on its own: whatever one holds is that event's problem
                        raw = item["CloudTrailEvent"].encode()
                        RECORD_DECODER.decode(raw)
                        records.append(raw)
                    except Exception:
                        part.bad_records += 1
                token = page.get("NextToken")
                if not token:
                    return records, None
                if token in followed:
                    return records, "LookupEvents answered a NextToken it had given before: its pages loop"
                followed.add(token)
            return records, f"stopped after {MAX_PAGES} pages in one slice"
        except (ClientError, BotoCoreError) as exc:
            return records, f"{type(exc).__name__}: {exc}"


def _inputs(part: Slice, role_arn: str | None) -> Iterator[Work]:
    """A slice's events as inputs, as a CloudTrail file holds them; even an incomplete slice's are written."""
    chunks = [part.records[n : n + PER_INPUT] for n in range(0, len(part.records), PER_INPUT)] or [[]]
    moves = None if part.incomplete or part.backfill else ("lookup", part.account, part.region, part.end.isoformat())
    for n, chunk in enumerate(chunks):
        data = b'{"Records":[' + b",".join(chunk) + b"]}"
        key = f"{part.start.isoformat()}/{part.end.isoformat()}/{n}"
        etag = hashlib.sha256(data).hexdigest()[:32]
        last = n == len(chunks) - 1
        where = f"{part.account}/{part.region}"
        yield Work("lookup", where, key, etag, len(data), role_arn, data=data, position=moves if last else None)


def fetch(work: Work, limits: Limits) -> bytes:
    """Read while listing: the bytes travel with the input."""
    return work.data or b""
