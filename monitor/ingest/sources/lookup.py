"""The CloudTrail LookupEvents API, for small estates without a trail bucket.

LookupEvents allows 2 requests per second per account and region, so every caller in the
process shares one limiter per (account, region). Each read re-reads an overlap before its
cursor (events reach LookupEvents minutes late; duplicates are dropped by the lake), and a read
that is throttled past its retries or cut short is reported as *incomplete*: its cursor does not
move, and it is never mistaken for "no events". The source only reads: ingest writes what it read to the
lake and moves the cursors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from monitor.ingest.events import RECORD_DECODER, Record
from monitor.ingest.limits import Limits
from monitor.ingest.sources import aws

OVERLAP = timedelta(minutes=20)
SLICE = timedelta(hours=6)  # the unit of commit: memory stays bounded and progress is kept
FIRST_READ = timedelta(hours=24)
MAX_PAGES = 10_000


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
    records: list[Record] = field(default_factory=list)
    bad_records: int = 0
    incomplete: str | None = None  # why the read did not cover the window


@dataclass
class LookupSource:
    """`lookup://<region>[,<region>...]`, read with the credentials of one account."""

    regions: list[str]
    role_arn: str | None = None
    attempts: int = 8
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> LookupSource:
        """`lookup://<region>[,<region>...][?role_arn=ARN]`: one URI per account of an organization."""
        base, query = aws.split_uri(uri)
        return cls([r for r in base.removeprefix("lookup://").strip("/").split(",") if r], **(options | query))

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
    def _read(client: Any, key: tuple[str, str], part: Slice) -> tuple[list[Record], str | None]:
        """Every page of one slice; a bad event is counted, a failed or endless read is incomplete."""
        records: list[Record] = []
        token: str | None = None
        try:
            for _ in range(MAX_PAGES):
                LIMITER.wait(key)
                args: dict[str, Any] = {"StartTime": part.start, "EndTime": part.end, "MaxResults": 50}
                page = client.lookup_events(**args, **({"NextToken": token} if token else {}))
                for item in page.get("Events", []):
                    try:  # each event on its own: whatever one holds is that event's problem
                        records.append(RECORD_DECODER.decode(item["CloudTrailEvent"]))
                    except Exception:
                        part.bad_records += 1
                token = page.get("NextToken")
                if not token:
                    return records, None
            return records, f"stopped after {MAX_PAGES} pages in one slice"
        except (ClientError, BotoCoreError) as exc:
            return records, f"{type(exc).__name__}: {exc}"
