"""What every source hands the ingest pipeline: one input, identified as the ledger identifies it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Work:
    """One input to ingest: a local file or an S3 object, identified as the ledger identifies it."""

    source: str  # "file" or "s3" (listed or notified: one ledger, so an object is ingested once)
    bucket: str  # "" for local files
    key: str  # object key, or the file's absolute path
    etag: str
    size: int = 0
    role_arn: str | None = None
    ack: Any = None  # what the source needs to acknowledge the input once committed

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else self.key
