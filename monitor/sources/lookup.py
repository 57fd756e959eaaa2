"""The CloudTrail LookupEvents API, for small estates without a trail bucket.

LookupEvents allows 2 requests per second per account and region, so every caller in the
process shares one limiter per (account, region). Each read re-reads an overlap before its
cursor (events reach LookupEvents minutes late; duplicates are dropped by the lake), and a read
that is throttled past its retries or cut short is reported as *incomplete*: its cursor does not
move, and it is never mistaken for "no events".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from monitor.events import RECORD_DECODER, Record, to_batch
from monitor.lake import Lake, drop_duplicates
from monitor.sources import aws
from monitor.state import State

OVERLAP = timedelta(minutes=20)
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
class LookupResult:
    region: str
    events: int = 0
    start: datetime | None = None
    end: datetime | None = None
    incomplete: str | None = None  # why the read did not cover its window


@dataclass
class LookupSource:
    """`lookup://<region>[,<region>...]`, read with the credentials of one account."""

    regions: list[str]
    role_arn: str | None = None
    attempts: int = 8
    results: list[LookupResult] = field(default_factory=list)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> LookupSource:
        return cls([r for r in uri.removeprefix("lookup://").strip("/").split(",") if r], **options)

    def ingest(
        self, lake: Lake, state: State, since: datetime | None = None, until: datetime | None = None
    ) -> list[LookupResult]:
        """Read each region from its cursor (minus the overlap) or `since`, up to `until` or now."""
        end = (until or datetime.now(UTC)).astimezone(UTC)
        account = aws.session(self.role_arn).client("sts", config=aws.config()).get_caller_identity()["Account"]
        self.results = [self._region(lake, state, account, region, since, end) for region in self.regions]
        return self.results

    def _region(
        self, lake: Lake, state: State, account: str, region: str, since: datetime | None, end: datetime
    ) -> LookupResult:
        cursor = state.cursor("lookup", account, region)
        start = since or (datetime.fromisoformat(cursor) - OVERLAP if cursor else end - FIRST_READ)
        result = LookupResult(region, start=start, end=end)
        client = aws.session(self.role_arn, region).client("cloudtrail", config=aws.config(attempts=self.attempts))
        records: list[Record] = []
        token: str | None = None
        try:
            for _ in range(MAX_PAGES):
                LIMITER.wait((account, region))
                args: dict[str, Any] = {"StartTime": start, "EndTime": end, "MaxResults": 50}
                page = client.lookup_events(**args, **({"NextToken": token} if token else {}))
                records += [RECORD_DECODER.decode(e["CloudTrailEvent"]) for e in page.get("Events", [])]
                token = page.get("NextToken")
                if not token:
                    break
            else:
                result.incomplete = f"stopped after {MAX_PAGES} pages"
        except (ClientError, BotoCoreError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            result.incomplete = f"{type(exc).__name__}: {exc}"
        norm = to_batch(records, f"lookup://{account}/{region}")
        table = drop_duplicates(pa.Table.from_batches([norm.batch]))
        lake.write(table)  # what was read is kept even when the read is incomplete
        result.events = table.num_rows
        if not result.incomplete:  # otherwise the cursor stays: the next cycle reads the window again
            state.set_cursor("lookup", account, region, end.isoformat())
        return result
