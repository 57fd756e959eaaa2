"""Amazon Security Lake's CloudTrail management events: `securitylake://<bucket>[/prefix]`.

Security Lake writes them as OCSF Parquet under `[prefix/]aws/CLOUD_TRAIL_MGMT/2.0/region=<region>/
accountId=<account>/eventDay=<YYYYMMDD>/` (source version 2.0). Each cycle lists the partitions of today and
the day before (or the window's days) for every region and account found (or those configured), as the
trail bucket is listed; the objects are S3 objects to the ledger, fetched like any other, and decoded as
OCSF from their content (`monitor.ingest.ocsf`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from monitor.ingest.sources.inputs import Work
from monitor.ingest.sources.s3 import S3Source

TABLE = "aws/CLOUD_TRAIL_MGMT/2.0/"


def root(prefix: str) -> str:
    """Where the CloudTrail management table starts under a bucket's prefix (the prefix may name it already)."""
    prefix = prefix.strip("/")
    if prefix.endswith(TABLE.rstrip("/")):
        return f"{prefix}/"
    return f"{prefix}/{TABLE}" if prefix else TABLE


class SecurityLakeSource(S3Source):
    """The trail bucket's source (its settings, window and acknowledgement), over Security Lake's partitions."""

    def _partitions(self, s3: Any, prefix: str, name: str) -> list[tuple[str, str]]:
        """(value, its prefix) for each `name=value/` folder under `prefix`."""
        found = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for folder in page.get("CommonPrefixes", []):
                part = folder["Prefix"][len(prefix) :].rstrip("/")
                if part.startswith(f"{name}="):
                    found.append((part.partition("=")[2], folder["Prefix"]))
        return found

    def works(self, first: date, last: date) -> Iterator[Work]:
        """Every object of the days first..last (inclusive), region by region and account by account."""
        s3 = self._client()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        for region, in_region in self._partitions(s3, root(self.prefix), "region"):
            if self.regions and region not in self.regions:
                continue
            for account, in_account in self._partitions(s3, in_region, "accountId"):
                if self.accounts and account not in self.accounts:
                    continue
                for day in days:
                    pages = s3.get_paginator("list_objects_v2").paginate(
                        Bucket=self.bucket, Prefix=f"{in_account}eventDay={day:%Y%m%d}/"
                    )
                    for page in pages:
                        for obj in page.get("Contents", []):
                            etag = obj["ETag"].strip('"')
                            yield Work("s3", self.bucket, obj["Key"], etag, obj["Size"], self.role_arn)
