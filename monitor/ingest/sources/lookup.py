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

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from monitor.ingest.events import RECORD_DECODER, Record, to_batch
from monitor.ingest.limits import Limits
from monitor.ingest.sources import aws
from monitor.lake import Lake, drop_duplicates
from monitor.store.ledger import Ledger

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
class LookupResult:
    region: str
    events: int = 0
    bad_records: int = 0
    start: datetime | None = None
    end: datetime | None = None
    incomplete: str | None = None  # why the read did not cover its window


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

    def ingest(
        self, lake: Lake, state: Ledger, since: datetime | None = None, until: datetime | None = None
    ) -> list[LookupResult]:
        """Read each region from its cursor (minus the overlap), or `since` for a backfill, up to `until` or now."""
        end = (until or datetime.now(UTC)).astimezone(UTC)
        account = aws.session(self.role_arn).client("sts", config=aws.config()).get_caller_identity()["Account"]
        return [self._region(lake, state, account, region, since, end) for region in self.regions]

    def _region(
        self, lake: Lake, state: Ledger, account: str, region: str, since: datetime | None, end: datetime
    ) -> LookupResult:
        """Read the window slice by slice; the cursor moves after each committed slice, never back.

        A backfill (`since`) leaves the cursor alone: it reads the past, not what comes next.
        """
        cursor = state.cursor("lookup", account, region)
        start = since or (datetime.fromisoformat(cursor) - OVERLAP if cursor else end - FIRST_READ)
        result = LookupResult(region, start=start, end=end)
        client = aws.session(self.role_arn, region).client("cloudtrail", config=aws.config(attempts=self.attempts))
        slice_start = start
        while slice_start < end and not result.incomplete:
            slice_end = min(slice_start + SLICE, end)
            records, result.incomplete = self._read(client, (account, region), slice_start, slice_end, result)
            norm = to_batch(records, f"lookup://{account}/{region}", max_record=self.limits.max_record)
            table = drop_duplicates(pa.Table.from_batches([norm.batch]))
            lake.write(table)  # what was read is kept even when the read is incomplete
            result.events += table.num_rows
            result.bad_records += len(norm.bad)
            if not result.incomplete and since is None and (cursor is None or slice_end.isoformat() > cursor):
                state.set_cursor("lookup", account, region, slice_end.isoformat())
            slice_start = slice_end
        return result

    @staticmethod
    def _read(
        client: Any, key: tuple[str, str], start: datetime, end: datetime, result: LookupResult
    ) -> tuple[list[Record], str | None]:
        """Every page of one slice; a bad event is counted, a failed or endless read is incomplete."""
        records: list[Record] = []
        token: str | None = None
        try:
            for _ in range(MAX_PAGES):
                LIMITER.wait(key)
                args: dict[str, Any] = {"StartTime": start, "EndTime": end, "MaxResults": 50}
                page = client.lookup_events(**args, **({"NextToken": token} if token else {}))
                for item in page.get("Events", []):
                    try:  # each event on its own: whatever one holds is that event's problem
                        records.append(RECORD_DECODER.decode(item["CloudTrailEvent"]))
                    except Exception:
                        result.bad_records += 1
                token = page.get("NextToken")
                if not token:
                    return records, None
            return records, f"stopped after {MAX_PAGES} pages in one slice"
        except (ClientError, BotoCoreError) as exc:
            return records, f"{type(exc).__name__}: {exc}"
