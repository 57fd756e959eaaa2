"""The trail's S3 bucket, listed: `[prefix/]AWSLogs/[o-orgid/]<account>/CloudTrail/<region>/YYYY/MM/DD/`.

Every object of each day asked for is listed (all pages) and compared with the ledger, so late
deliveries whose keys sort before ones already processed are still found; nothing relies on
`StartAfter`. Digest and Insight folders sit beside `CloudTrail/` and are never walked.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from monitor.ingest.events import utc
from monitor.ingest.limits import InputError, Limits, too_large
from monitor.ingest.sources import aws
from monitor.ingest.sources.inputs import Work
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.source import Read, Window

_ACCOUNT = re.compile(r"\d{12}")
_ORG = re.compile(r"o-[a-z0-9]{10,32}")


@dataclass(frozen=True)
class S3Source:
    bucket: str
    prefix: str = ""
    accounts: Sequence[str] = ()  # empty: every account found in the bucket
    regions: Sequence[str] = ()  # empty: every region found for each account
    role_arn: str | None = None
    read: Read = field(default_factory=Read, compare=False)

    @classmethod
    def from_settings(cls, settings: SourceSettings, limits: Limits = Limits()) -> S3Source:
        bucket, prefix = settings.place
        return cls(bucket, prefix, settings.accounts, settings.regions, settings.role_arn)

    def inputs(self, window: Window) -> Iterator[Work]:
        """The objects of the window's days, or of today and the day before."""
        first, last = lookback_days(window.until)
        yield from self.works(utc(window.since).date() if window.since else first, last)

    def acknowledge(self, works: Sequence[Work]) -> None:
        """Nothing to do: the ledger remembers what was ingested."""

    def _client(self) -> Any:
        return aws.session(self.role_arn).client("s3", config=aws.config())

    def _folders(self, s3: Any, prefix: str) -> list[str]:
        names = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            names += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def _account_roots(self, s3: Any) -> Iterator[tuple[str, str]]:
        """(account, '<...>/AWSLogs/[o-org/]<account>/') for every account asked for or found."""
        base = f"{self.prefix}/AWSLogs/" if self.prefix else "AWSLogs/"
        for name in self._folders(s3, base):
            if _ORG.fullmatch(name):
                for account in self._folders(s3, f"{base}{name}/"):
                    yield account, f"{base}{name}/{account}/"
            elif _ACCOUNT.fullmatch(name):
                yield name, f"{base}{name}/"

    def works(self, first: date, last: date) -> Iterator[Work]:
        """Every object delivered for the days first..last (inclusive), in listing order."""
        s3 = self._client()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        roots = list(self._account_roots(s3))
        if not roots:  # a prefix that misses the trail's folder (or names it) would read nothing, cycle after cycle
            base = f"{self.prefix}/AWSLogs/" if self.prefix else "AWSLogs/"
            self.read.errors.append(
                f"s3://{self.bucket}/{base}: no account folder (AWSLogs/[o-org/]<account>/): the source's prefix is "
                "what comes before AWSLogs/ in the trail's keys, and a new trail has delivered nothing yet"
            )
            return
        for account, root in roots:
            if self.accounts and account not in self.accounts:
                continue
            regions = self.regions or self._folders(s3, f"{root}CloudTrail/")
            for region in regions:
                for day in days:
                    prefix = f"{root}CloudTrail/{region}/{day:%Y/%m/%d}/"
                    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
                    for page in pages:
                        for obj in page.get("Contents", []):
                            etag = obj["ETag"].strip('"')
                            yield Work("s3", self.bucket, obj["Key"], etag, obj["Size"], self.role_arn)


def lookback_days(now: datetime | None = None, days: int = 1) -> tuple[date, date]:
    """The days every cycle re-lists: today and the `days` before it (UTC)."""
    today = utc(now or datetime.now(UTC)).date()
    return today - timedelta(days=days), today


_clients: dict[str | None, Any] = {}  # per worker process, by read role; shared by its fetching threads
_making = threading.Lock()  # a boto3 session is not thread-safe: clients are made one at a time


def fetch(work: Work, limits: Limits) -> bytes:
    """An object's bytes (in a worker), never more than the limit whatever the listing said."""
    with _making:
        if work.role_arn not in _clients:
            _clients[work.role_arn] = aws.session(work.role_arn).client("s3", config=aws.config())
    body = _clients[work.role_arn].get_object(Bucket=work.bucket, Key=work.key)["Body"]
    data: bytes = body.read(limits.max_inflated + 1)
    body.close()
    if len(data) > limits.max_inflated:
        raise InputError(too_large(len(data), limits.max_inflated))
    return data
