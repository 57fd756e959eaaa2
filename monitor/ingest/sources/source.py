"""What every source is to ingest: it lists inputs, a worker fetches each one's bytes, and once ingest has
committed them the source acknowledges them (an SQS message deleted). Sources only read: ingest alone
writes the lake, the ledger (inputs, quarantined messages) and the cursors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from monitor.ingest.sources.inputs import Work


def _no_cursor(kind: str, account: str, region: str) -> str | None:
    return None


@dataclass(frozen=True)
class Window:
    """What a read covers: `since`..`until` for a backfill; otherwise each source's own lookback (S3: today and
    the day before) or cursors (LookupEvents), read through `cursor(kind, account, region)`."""

    since: datetime | None = None
    until: datetime | None = None
    cursor: Callable[[str, str, str], str | None] = _no_cursor


@dataclass
class Read:
    """What a source reports of a read besides its inputs."""

    errors: list[str] = field(default_factory=list)
    rejected: list[tuple[Work, str]] = field(default_factory=list)  # naming nothing readable: quarantined by ingest
    incomplete: str | None = None  # why the read did not cover its window
    bad_records: int = 0  # records the source itself could not read (a LookupEvents event)


class Source(Protocol):
    @property
    def read(self) -> Read: ...

    def inputs(self, window: Window) -> Iterator[Work]: ...

    def acknowledge(self, works: Sequence[Work]) -> None: ...
