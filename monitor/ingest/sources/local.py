"""Local files and folders: CloudTrail files as delivered, exports, gzip or not."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.ingest import files
from monitor.ingest.limits import Limits
from monitor.ingest.sources.inputs import Work
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.source import Read, Window


@dataclass
class LocalSource:
    paths: list[str]
    read: Read = field(default_factory=Read)

    @classmethod
    def from_settings(cls, settings: SourceSettings, limits: Limits = Limits()) -> LocalSource:
        return cls([settings.uri])

    def inputs(self, window: Window) -> Iterator[Work]:
        """Every file under the paths; a path that cannot be read is an error, the others are still read."""
        found, errors = files.works(self.paths)
        self.read.errors += errors
        yield from found

    def acknowledge(self, works: Sequence[Work]) -> None:
        """Nothing to do: the ledger remembers what was ingested (by size and modification time)."""


def fetch(work: Work, limits: Limits) -> bytes:
    return files.read_bytes(Path(work.key), limits)
