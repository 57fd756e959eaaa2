"""What every source hands the ingest pipeline: one input, identified as the ledger identifies it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.text import path_text


@dataclass(frozen=True)
class Work:
    """One input: a local file, an S3 object or a LookupEvents read, identified as the ledger identifies it."""

    source: str  # "file", "s3" (listed or notified: one ledger, so an object is ingested once) or "lookup"
    bucket: str  # "" for local files, "<account>/<region>" for a LookupEvents read
    key: str  # object key, the file's absolute path, or the read's window
    etag: str
    size: int = 0
    role_arn: str | None = None
    ack: Any = None  # what the source needs to acknowledge the input once committed
    data: bytes | None = None  # the bytes, when the source had to read them to list the input (LookupEvents)
    position: tuple[str, str, str, str] | None = None  # (kind, account, region, cursor): moved there once committed

    @property
    def uri(self) -> str:
        if self.source == "lookup":
            return f"lookup://{self.bucket}/{self.key}"
        return f"s3://{self.bucket}/{self.key}" if self.bucket else path_text(self.key)
