"""The Parquet lake: `<lake>/events/date=YYYY-MM-DD/<unique>.parquet`, zstd, readable as-is.

Writers never modify a file: each write adds uniquely named files that become visible whole
(local disk: a hidden temporary name, fsync, rename; S3: the object appears when its upload
completes). Re-processing after a crash can therefore add a second copy of events, never a torn
file; readers drop duplicate `event_id`s, and so does the view shipped for DuckDB and Athena.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from monitor.ingest.events import SCHEMA, utc

PARTITION = pa.schema([("date", pa.string())])
SORT_KEYS = ("recipient_account_id", "event_source", "event_name", "event_time")
_ROWS_PER_FILE = 4_000_000


class LakeError(ValueError):
    """A lake URI that names no place TrailGuard can keep a lake."""


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A local directory (path or file:///path) or S3 (s3://bucket/prefix), by URI."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file", "s3"):
        raise LakeError(f"{uri}: a lake is a local directory, file:///path or s3://bucket[/prefix]")
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise LakeError(f"{uri}: a file:// lake must be on this machine (file:///path), not on {parsed.netloc!r}")
    if parsed.scheme == "s3" and not parsed.netloc:
        raise LakeError(f"{uri}: an s3:// lake needs a bucket (s3://bucket[/prefix])")
    if parsed.scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        options: dict[str, object] = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")}
        if endpoint:
            target = urlparse(endpoint)
            options |= {"endpoint_override": target.netloc, "scheme": target.scheme or "https"}
        return pafs.S3FileSystem(**options), f"{parsed.netloc}{parsed.path}".rstrip("/")
    path = Path(parsed.path if parsed.scheme == "file" else uri).resolve()
    return pafs.LocalFileSystem(), str(path)


@dataclass(frozen=True)
class Compaction:
    day: date
    files_before: int
    files_after: int
    rows_before: int
    rows_after: int  # unique events: duplicates removed


class Lake:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.root = _filesystem(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.events = f"{self.root}/events"

    def partition(self, day: date) -> str:
        return f"{self.events}/date={day.isoformat()}"

    def write(self, table: pa.Table) -> list[str]:
        """Add events, split by UTC day; returns the files written (each visible whole or not at all)."""
        if table.num_rows == 0:
            return []
        table = table.select(SCHEMA.names).cast(SCHEMA)
        days = pc.strftime(table["event_time"], format="%Y-%m-%d")
        written = []
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, day))
            written.append(self.write_file(part, f"{self.events}/date={day}"))
        return written

    def write_file(self, table: pa.Table, folder: str, name: str | None = None) -> str:
        """Write one Parquet file that becomes visible whole; a unique name unless one is given."""
        name = name or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex}.parquet"
        final = f"{folder}/{name}"
        if not self.local:
            pq.write_table(table, final, filesystem=self.fs, compression="zstd")
            return final
        Path(folder).mkdir(parents=True, exist_ok=True)
        temporary = f"{folder}/.{name}.partial"  # hidden and not *.parquet: no reader ever lists it
        pq.write_table(table, temporary, compression="zstd")
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, final)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return final

    def files(self, day: date | None = None) -> list[str]:
        base = self.partition(day) if day else self.events
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            return []
        return sorted(i.path for i in infos if i.is_file and i.base_name.endswith(".parquet"))

    def days(self) -> list[date]:
        found = {Path(f).parent.name.removeprefix("date=") for f in self.files()}
        return sorted(date.fromisoformat(d) for d in found)

    def partition_days(self) -> set[date]:
        """The days the lake has a partition for, from one listing of the partitions (not of their files): what
        a range can skip without reading (an empty partition is listed too, and read in vain)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.events, recursive=False, allow_not_found=True))
        except FileNotFoundError:
            return set()
        found = set()
        for info in infos:
            try:
                found.add(date.fromisoformat(info.base_name.removeprefix("date=")))
            except ValueError:  # not a partition: something else left in the folder
                continue
        return found

    def dataset(self, files: list[str] | None = None) -> ds.Dataset:
        partitioning = ds.partitioning(PARTITION, flavor="hive")
        source = files if files is not None else self.events
        return ds.dataset(
            source,
            filesystem=self.fs,
            format="parquet",
            partitioning=partitioning,
            partition_base_dir=self.events,
            schema=pa.unify_schemas([SCHEMA, PARTITION]),
        )

    def read(self, start: datetime, end: datetime, columns: list[str] | None = None) -> pa.Table:
        """Events with start <= event_time < end, duplicates dropped; only the days and columns needed.

        Naive datetimes are taken as UTC, the lake's only time zone.
        """
        start, end = utc(start), utc(end)
        days = [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days + 1)]
        files = [f for day in days for f in self.files(day)]
        if not files:
            return SCHEMA.empty_table().select(columns or SCHEMA.names)
        wanted = list(dict.fromkeys(["event_id", *(columns or SCHEMA.names)]))
        kind = SCHEMA.field("event_time").type
        condition = (ds.field("event_time") >= pa.scalar(start, kind)) & (ds.field("event_time") < pa.scalar(end, kind))
        table = self.dataset(files).to_table(columns=wanted, filter=condition)
        return drop_duplicates(table).select(columns or SCHEMA.names)

    def compact(self, day: date) -> Compaction:
        """Rewrite one day into few large sorted files, without losing or duplicating an event.

        The new files are written (atomically) before the old ones are deleted; a crash in
        between leaves duplicates that readers drop and the next compaction removes.
        """
        before = self.files(day)
        if len(before) == 0:
            return Compaction(day, 0, 0, 0, 0)
        table = self.dataset(before).to_table(columns=SCHEMA.names)
        unique = drop_duplicates(table).sort_by([(k, "ascending") for k in SORT_KEYS])
        after = [
            self.write_file(unique.slice(offset, _ROWS_PER_FILE), self.partition(day))
            for offset in range(0, unique.num_rows, _ROWS_PER_FILE)
        ]
        if self.dataset(after).count_rows() != unique.num_rows:
            raise RuntimeError(f"compaction of {day} wrote an unexpected number of rows; old files kept")
        for path in before + self._leftovers(day):
            self.fs.delete_file(path)
        return Compaction(day, len(before), len(after), table.num_rows, unique.num_rows)

    def _leftovers(self, day: date) -> list[str]:
        """Temporary files of writers that crashed before their rename: never visible, safe to drop."""
        if not self.local or not Path(self.partition(day)).is_dir():
            return []
        return [str(p) for p in Path(self.partition(day)).glob(".*.partial")]

    def expire(self, keep: timedelta, today: date | None = None) -> list[date]:
        """Delete whole days older than the retention period; returns the days removed."""
        cutoff = (today or datetime.now(UTC).date()) - keep
        gone = [d for d in self.days() if d < cutoff]
        for day in gone:
            self.fs.delete_dir(self.partition(day))
        return gone


def drop_duplicates(table: pa.Table) -> pa.Table:
    """Keep the first row of each event_id: the lake's exactly-once, applied on read."""
    if table.num_rows == 0:
        return table
    ids = table.column("event_id").to_pandas()
    keep = ~pd.Series(ids).duplicated().to_numpy()
    return table if keep.all() else table.filter(pa.array(np.asarray(keep)))
