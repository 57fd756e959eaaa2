"""The Parquet lake: `<lake>/events/date=YYYY-MM-DD/<unique>.parquet`, zstd, readable as-is.

Writers never modify a file: each write adds uniquely named files that become visible whole
(local disk: a hidden temporary name, fsync, rename; S3: the object appears when its upload
completes). Re-processing after a crash can therefore add a second copy of events, never a torn
file; readers drop duplicate `event_id`s, and so does the view shipped for DuckDB and Athena.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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

from monitor import RequestError
from monitor.ingest.events import SCHEMA, utc

PARTITION = pa.schema([("date", pa.string())])
SORT_KEYS = ("recipient_account_id", "event_source", "event_name", "event_time")
ROW_GROUP = 1 << 16  # rows: what a reader decodes at once (Parquet readers hold a row group's column chunks)


# which rows of a table of key columns to read in full (a boolean mask)
Chooser = Callable[[pa.Table], np.ndarray]


class LakeError(RequestError, ValueError):
    """A lake URI that names no place TrailGuard can keep a lake."""


class UnreadableFile(RequestError, ValueError):
    """A lake file that cannot be read (empty, torn, not Parquet, gone): named, and never deleted for it."""


UNREADABLE = (OSError, pa.ArrowException)  # what reading a damaged or vanished file raises

# the blocks of `leaving_out` this context is in, innermost last: each is told every file left out
_LEFT_OUT: ContextVar[tuple[dict[str, UnreadableFile], ...]] = ContextVar("left_out", default=())


@contextmanager
def reading(path: str) -> Iterator[None]:
    """An error reading `path` raised as UnreadableFile, which names it."""
    try:
        yield
    except UNREADABLE as exc:
        reason = str(exc).removeprefix(f"Could not open Parquet input source '{path}': ")  # pyarrow names it too
        raise UnreadableFile(f"{path}: cannot be read ({reason})") from exc


@contextmanager
def leaving_out() -> Iterator[dict[str, UnreadableFile]]:
    """Lake reads in this block leave out a file that cannot be read instead of raising UnreadableFile, so that one
    damaged file hides only its own events; the files left out, by path, are in the dict (and in every enclosing
    block's). Outside such a block a read raises: a caller that cannot report a gap is not handed one."""
    found: dict[str, UnreadableFile] = {}
    token = _LEFT_OUT.set((*_LEFT_OUT.get(), found))
    try:
        yield found
    finally:
        _LEFT_OUT.reset(token)


@contextmanager
def _or_left_out(path: str) -> Iterator[None]:
    """`reading(path)`; inside `leaving_out`, a file that cannot be read ends the block quietly, recorded there."""
    try:
        with reading(path):
            yield
    except UnreadableFile as exc:
        blocks = _LEFT_OUT.get()
        if not blocks:
            raise
        for found in blocks:
            found[path] = exc


def _day(folder: str) -> date | None:
    """The day of a partition's folder (`date=YYYY-MM-DD`), or None for another name."""
    try:
        return date.fromisoformat(folder.removeprefix("date="))
    except ValueError:
        return None


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
class Writer:
    """A lake file being written: where it will be visible, and what writes it."""

    path: str
    parquet: pq.ParquetWriter

    def write(self, table: pa.Table) -> None:
        self.parquet.write_table(table, row_group_size=ROW_GROUP)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lake:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.root = _filesystem(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.events = f"{self.root}/events"

    @classmethod
    def existing(cls, uri: str) -> Lake:
        """The lake at `uri`, which must be there: a mistyped path is an error that names it, not an empty range (a
        folder with no events yet is a lake). An S3 prefix exists only once written to, so it is taken as given."""
        lake = cls(uri)
        if lake.local and not Path(lake.root).is_dir():
            raise LakeError(f"{uri}: no such folder (a lake is made by trailguard ingest)")
        return lake

    def partition(self, day: date) -> str:
        return f"{self.events}/date={day.isoformat()}"

    def write(self, table: pa.Table) -> list[str]:
        """Add events, split by UTC day; returns the files written (each visible whole or not at all)."""
        if table.num_rows == 0:
            return []
        table = table.select(SCHEMA.names).cast(SCHEMA)
        days = table["event_time"].cast(pa.date32())  # UTC days (30x cheaper than formatting each time)
        found = pc.unique(days).to_pylist()
        parts = [(found[0], table)] if len(found) == 1 else [(d, table.filter(pc.equal(days, d))) for d in found]
        return [self.write_file(part, self.partition(day)) for day, part in parts]

    def write_file(self, table: pa.Table, folder: str, name: str | None = None) -> str:
        """Write one Parquet file that becomes visible whole; a unique name unless one is given."""
        with self.writer(folder, table.schema, name) as out:
            out.write(table)
        return out.path

    @contextmanager
    def writer(self, folder: str, schema: pa.Schema = SCHEMA, name: str | None = None) -> Iterator[Writer]:
        """A Parquet file written in parts that becomes visible whole when the block ends. If the block raises,
        a local file never appears; an S3 upload cannot be abandoned once begun, so its object is deleted."""
        name = name or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex}.parquet"
        final = f"{folder}/{name}"
        local = self.local
        if local:
            Path(folder).mkdir(parents=True, exist_ok=True)
        temporary = f"{folder}/.{name}.partial" if local else final  # hidden, not *.parquet: never listed
        try:
            with (
                self.fs.open_output_stream(temporary) as stream,
                pq.ParquetWriter(stream, schema, compression="zstd") as w,
            ):
                yield Writer(final, w)
        except BaseException:
            self.fs.delete_file(temporary)
            raise
        if local:
            _fsync(temporary)
            os.rename(temporary, final)
            _fsync(folder)

    def files(self, day: date | None = None) -> list[str]:
        base = self.partition(day) if day else self.events
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            return []
        return sorted(i.path for i in infos if i.is_file and i.base_name.endswith(".parquet"))

    def days(self) -> list[date]:
        """The days holding files; a folder that is not a day's partition (something left in the lake) is none."""
        return sorted({day for f in self.files() if (day := _day(Path(f).parent.name)) is not None})

    def partition_days(self) -> set[date]:
        """The days the lake has a partition for, from one listing of the partitions (not of their files): what
        a range can skip without reading (an empty partition is listed too, and read in vain)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.events, recursive=False, allow_not_found=True))
        except FileNotFoundError:
            return set()
        return {day for info in infos if (day := _day(info.base_name)) is not None}

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

    def accounts(self, start: datetime, end: datetime) -> set[str]:
        """The accounts the events of these days were recorded in: one column, a file at a time (a file that
        cannot be read raises UnreadableFile, or inside `leaving_out` is left out)."""
        found: set[str] = set()
        days = [utc(start).date() + timedelta(days=n) for n in range((utc(end).date() - utc(start).date()).days + 1)]
        for path in (f for day in days for f in self.files(day)):
            with _or_left_out(path):
                column = pq.read_table(path, columns=["recipient_account_id"], filesystem=self.fs).column(0)
                found.update(account for account in pc.unique(column).to_pylist() if account)
        return found

    def read(self, start: datetime, end: datetime, columns: list[str] | None = None) -> pa.Table:
        """Events with start <= event_time < end, duplicates dropped; only the days and columns needed.

        Naive datetimes are taken as UTC, the lake's only time zone. A file that cannot be read raises
        UnreadableFile, or inside `leaving_out` is left out (so does `candidates`).
        """
        start, end = utc(start), utc(end)
        days = [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days + 1)]
        files = [f for day in days for f in self.files(day)]
        if not files:
            return SCHEMA.empty_table().select(columns or SCHEMA.names)
        wanted = list(dict.fromkeys(["event_id", *(columns or SCHEMA.names)]))
        kind = SCHEMA.field("event_time").type
        condition = (ds.field("event_time") >= pa.scalar(start, kind)) & (ds.field("event_time") < pa.scalar(end, kind))
        dataset = self.dataset(files)
        try:
            table = dataset.to_table(columns=wanted, filter=condition)  # every file at once: the fast way
        except UNREADABLE:  # some file cannot be read: each alone, to name it (and, in `leaving_out`, keep the rest)
            parts = []
            for fragment in dataset.get_fragments():
                with _or_left_out(fragment.path):
                    parts.append(fragment.to_table(schema=dataset.schema, columns=wanted, filter=condition))
            table = pa.concat_tables(parts) if parts else SCHEMA.empty_table().select(wanted)
        return drop_duplicates(table).select(columns or SCHEMA.names)

    def candidates(
        self, start: datetime, end: datetime, keys: list[str], columns: list[str], chosen: Chooser
    ) -> pa.Table:
        """The `columns` of only the events from `start` to `end` that `chosen` picks, duplicates dropped.

        `chosen` sees the `keys` columns (and event_time) of every event in the range, and answers
        which rows to build in full; the other columns are read only from the row groups that hold
        a chosen row. Detectors select a few events in a hundred: the rest are never built, sorted
        or converted. A copy of a chosen event is chosen too (it has the same values), so dropping
        duplicates among the chosen drops every copy readers would.
        """
        start, end = utc(start), utc(end)
        days = [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days + 1)]
        files = [f for day in days for f in self.files(day)]
        if not files:
            return SCHEMA.empty_table().select(columns)
        dataset = self.dataset(files)
        kind = SCHEMA.field("event_time").type
        keyed_columns = list(dict.fromkeys(["event_time", *keys]))
        held, read = [], []  # the keys in range; per file read, its row groups and their rows in range
        for fragment in dataset.get_fragments():
            with _or_left_out(fragment.path):  # a file that cannot be read is left out whole, before choosing
                inside, keyed = [], []
                for group in fragment.split_by_row_group():
                    table = group.to_table(schema=dataset.schema, columns=keyed_columns)
                    times = table["event_time"]
                    within = pc.and_(
                        pc.greater_equal(times, pa.scalar(start, kind)), pc.less(times, pa.scalar(end, kind))
                    )
                    inside.append((group, np.flatnonzero(within.to_numpy(zero_copy_only=False))))
                    keyed.append(table.filter(within))
                read.append((fragment.path, inside))
                held += keyed
        if not held:
            return SCHEMA.empty_table().select(columns)
        picked = chosen(pa.concat_tables(held))
        parts, offset = [], 0
        for path, groups in read:
            mine = []
            for group, rows in groups:
                mine.append((group, rows[picked[offset : offset + len(rows)]]))
                offset += len(rows)
            with _or_left_out(path):  # torn past its footer: left out whole, not in part
                parts += [
                    batch
                    for group, rows in mine
                    if len(rows)
                    for batch in _rows(
                        group.to_batches(schema=dataset.schema, columns=columns, batch_size=_BATCH), rows
                    )
                ]
        if not parts:
            return SCHEMA.empty_table().select(columns)
        return drop_duplicates(pa.Table.from_batches(parts))

    def leftovers(self, day: date, older_than: timedelta = timedelta(hours=1)) -> list[str]:
        """Temporary files of writers that crashed before their rename: never visible, safe to drop. Only those
        untouched for `older_than`: a younger one may be an ingest's still writing (no write takes an hour)."""
        if not self.local or not Path(self.partition(day)).is_dir():
            return []
        settled = time.time() - older_than.total_seconds()
        return [str(p) for p in Path(self.partition(day)).glob(".*.partial") if p.stat().st_mtime < settled]

    def expire(self, keep: timedelta, today: date | None = None) -> list[date]:
        """Delete whole days older than the retention period; returns the days removed."""
        cutoff = (today or datetime.now(UTC).date()) - keep
        gone = [d for d in self.days() if d < cutoff]
        for day in gone:
            self.fs.delete_dir(self.partition(day))
        return gone


_BATCH = 1 << 16  # rows decoded at a time from a row group: a million-row group never sits in memory whole


def _rows(batches: Iterator[pa.RecordBatch], rows: np.ndarray) -> list[pa.RecordBatch]:
    """The rows at these (sorted) positions of a stream of batches, one batch in memory at a time."""
    picked, offset = [], 0
    for batch in batches:
        first, last = np.searchsorted(rows, [offset, offset + batch.num_rows])
        if last > first:
            picked.append(batch.take(pa.array(rows[first:last] - offset)))
        offset += batch.num_rows
    return picked


def drop_duplicates(table: pa.Table) -> pa.Table:
    """Keep the first row of each event_id: the lake's exactly-once, applied on read."""
    if table.num_rows == 0:
        return table
    ids = table.column("event_id").to_pandas()
    keep = ~pd.Series(ids).duplicated().to_numpy()
    return table if keep.all() else table.filter(pa.array(np.asarray(keep)))
