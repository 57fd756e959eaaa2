"""Compaction of one lake day in bounded memory, however many events the day holds.

A day is sorted by (account, event source, event name, time). It never has to be in memory at
once: a first pass counts the events of each (account, source, name) group per hour, reading
only those columns; consecutive cells of that order are cut into buckets of a fixed memory size;
a second pass spills every row to its bucket's file (Arrow IPC, lz4), one batch at a time; then
each bucket in order is read back, de-duplicated, sorted and appended to the new files. Every
bucket holds a contiguous range of the sort order, so the files come out sorted as a whole.

Copies of an event (the same eventID written twice by a re-processed object) have the same
group and hour, so they meet in one bucket and are dropped there, the first kept as readers do.
Memory is the bucket size (x2 while it is sorted) plus one batch; an hour of one group bigger
than a bucket is the one thing that makes a bucket bigger.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from monitor import RequestError
from monitor.ingest.events import SCHEMA
from monitor.lake import SORT_KEYS, Lake, UnreadableFile, drop_duplicates, reading

BUCKET_BYTES = 32 << 20  # what a bucket's events weigh in memory, decoded
ROWS_PER_FILE = 4_000_000
_GROUP = SORT_KEYS[:-1]
_SPILLS = ".compacting-"  # a spill folder's name: hidden from readers, who list events/ only
_ABANDONED = 86_400  # seconds after which a spill folder is a killed compaction's, not a running one's
_SPILL = pa.ipc.IpcWriteOptions(compression="lz4")  # temporary: the fastest codec

Group = tuple[str | None, ...]


class CompactionError(RequestError, ValueError):
    """A file of the day that cannot be read: the day is left as it was."""


def _order(group: Group) -> tuple[tuple[bool, str], ...]:
    """Arrow's ascending order with nulls at the end, which is how each bucket is sorted."""
    return tuple((value is None, value or "") for value in group)


class _Cells:
    """Numbers each row's cell: its (account, source, name) group and the hour of its time."""

    def __init__(self) -> None:
        self.groups: dict[Group, int] = {}
        self.values: list[dict[str | None, int]] = [{} for _ in _GROUP]

    @staticmethod
    def _codes(column: pa.Array, known: dict[str | None, int]) -> np.ndarray:
        """A column's values as numbers that stay the same from batch to batch (null included)."""
        encoded = pc.dictionary_encode(column)
        values = [*encoded.dictionary.to_pylist(), None]
        codes = np.array([known.setdefault(v, len(known)) for v in values], dtype=np.int64)
        rows: np.ndarray = codes[pc.fill_null(encoded.indices, len(values) - 1).to_numpy(zero_copy_only=False)]
        return rows

    def of(self, batch: pa.RecordBatch) -> np.ndarray:
        key = np.zeros(batch.num_rows, dtype=np.int64)
        for column, known in zip(_GROUP, self.values, strict=True):  # 21 bits a column: 2M distinct values each
            key = (key << 21) | self._codes(batch.column(column), known)
        if any(len(known) >= 1 << 21 for known in self.values):
            raise CompactionError("more than two million distinct accounts, sources or names in one day")
        keys, inverse = np.unique(key, return_inverse=True)
        names = [{code: value for value, code in known.items()} for known in self.values]
        mask = (1 << 21) - 1
        ids = np.array(
            [
                self.groups.setdefault(
                    tuple(n[(k >> shift) & mask] for n, shift in zip(names, (42, 21, 0), strict=True)), len(self.groups)
                )
                for k in keys.tolist()
            ],
            dtype=np.int64,
        )
        hours = pc.fill_null(pc.hour(batch.column("event_time")), 0).to_numpy(zero_copy_only=False)
        cells: np.ndarray = ids[inverse] * 24 + hours
        return cells


@dataclass(frozen=True)
class Compaction:
    day: date
    files_before: int
    files_after: int
    rows_before: int
    rows_after: int  # unique events: duplicates removed


@dataclass(frozen=True)
class _Plan:
    cells: _Cells
    bucket_of: np.ndarray  # cell -> bucket, buckets numbered in sort order
    buckets: int
    rows: int
    batch_rows: int


def _batches(lake: Lake, files: list[str], columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    wanted = pa.schema([SCHEMA.field(c) for c in columns])
    for path in files:
        with reading(path), pq.ParquetFile(path, filesystem=lake.fs) as file:
            for batch in file.iter_batches(batch_size=rows, columns=columns, use_threads=False):
                yield batch if batch.schema.equals(wanted) else _conformed(batch, wanted)


def _conformed(batch: pa.RecordBatch, wanted: pa.Schema) -> pa.RecordBatch:
    """A batch of a file written before a column was added, or by another writer (times in ns, or naive), as the
    lake's schema has it now: a missing column is null, the others cast (what cannot be is the file's error)."""
    have = set(batch.schema.names)
    columns = [batch.column(f.name).cast(f.type) if f.name in have else pa.nulls(len(batch), f.type) for f in wanted]
    return pa.RecordBatch.from_arrays(columns, schema=wanted)


def _row_bytes(lake: Lake, files: list[str], samples: int = 8) -> float:
    """What an event weighs decoded, the most of a first batch of a few files spread over the day (a file's own
    metadata counts its data encoded, several times smaller than it is in memory)."""
    chosen = files[:: max(len(files) // samples, 1)]
    weights = [batch.nbytes / batch.num_rows for path in chosen for batch in _first(lake, path) if batch.num_rows]
    return max(weights, default=1.0)


def _first(lake: Lake, path: str) -> Iterator[pa.RecordBatch]:
    for batch in _batches(lake, [path], SCHEMA.names, 10_000):
        yield batch
        return


def _plan(lake: Lake, files: list[str], bucket_bytes: int) -> _Plan:
    bucket_rows = max(int(bucket_bytes / _row_bytes(lake, files)), 1)
    cells = _Cells()
    counts: Counter[int] = Counter()
    for batch in _batches(lake, files, [*_GROUP, "event_time"], 1 << 16):
        found, many = np.unique(cells.of(batch), return_counts=True)
        counts.update(dict(zip(found.tolist(), many.tolist(), strict=True)))
    names = {gid: group for group, gid in cells.groups.items()}
    ordered = sorted(counts, key=lambda cell: (_order(names[cell // 24]), cell % 24))
    bucket_of = np.zeros(len(cells.groups) * 24, dtype=np.int64)
    bucket = held = 0
    for cell in ordered:
        if held and held + counts[cell] > bucket_rows:
            bucket, held = bucket + 1, 0
        bucket_of[cell] = bucket
        held += counts[cell]
    buckets = bucket + 1 if ordered else 0
    # a batch big enough to give each bucket a few hundred rows per write (tiny writes cost more than rows),
    # never more than a bucket
    batch_rows = min(max(buckets * 256, bucket_rows // 4, 1024), max(bucket_rows, 1024))
    return _Plan(cells, bucket_of, buckets, sum(counts.values()), batch_rows)


def _spill(lake: Lake, files: list[str], plan: _Plan, folder: Path) -> list[Path]:
    """Every row to its bucket's file, a batch at a time."""
    paths = [folder / f"{n:06d}.arrow" for n in range(plan.buckets)]
    with ExitStack() as stack:
        writers = [stack.enter_context(pa.ipc.new_stream(p, SCHEMA, options=_SPILL)) for p in paths]
        for batch in _batches(lake, files, SCHEMA.names, plan.batch_rows):
            buckets = plan.bucket_of[plan.cells.of(batch)]
            order = np.argsort(buckets, kind="stable")  # stable: copies keep the order readers see
            ranked = batch.take(pa.array(order))
            starts = np.flatnonzero(np.diff(buckets[order], prepend=-1))
            for first, last in zip(starts, [*starts[1:], len(order)], strict=True):
                writers[int(buckets[order[first]])].write_batch(ranked.slice(first, last - first))
    return paths


def _abandoned(root: Path) -> None:
    """Remove the spills of compactions killed before they could (a day old: no compaction runs that long)."""
    for folder in root.glob(f"{_SPILLS}*"):
        if folder.is_dir() and time.time() - folder.stat().st_mtime > _ABANDONED:
            shutil.rmtree(folder, ignore_errors=True)


def compact_day(lake: Lake, day: date, bucket_bytes: int = BUCKET_BYTES) -> Compaction:
    """Rewrite one day into few large sorted files, without losing or duplicating an event.

    The new files are written (each visible whole) before the old ones are deleted; a crash in
    between leaves copies that readers drop and the next compaction removes.
    """
    before = lake.files(day)
    if not before:
        return Compaction(day, 0, 0, 0, 0)
    with _refused(f"{day}: cannot be compacted in {lake.root}", "the day is left as it was"):
        plan = _plan(lake, before, bucket_bytes)
        scratch = lake.root if lake.local else None  # a local lake's disk holds its spill, not a RAM-backed /tmp
        if scratch:
            _abandoned(Path(scratch))
        with tempfile.TemporaryDirectory(prefix=_SPILLS, dir=scratch) as folder:
            buckets = _spill(lake, before, plan, Path(folder))
            after, unique = _rewrite(lake, day, buckets)
    if sum(pq.read_metadata(p, filesystem=lake.fs).num_rows for p in after) != unique:
        raise RuntimeError(f"compaction of {day} wrote an unexpected number of rows; old files kept")
    with _refused(f"{day}: compacted, but an old file cannot be removed", "readers drop its copies; compact again"):
        for path in before + lake.leftovers(day):
            if path not in after:
                lake.fs.delete_file(path)
    return Compaction(day, len(before), len(after), plan.rows, unique)


@contextmanager
def _refused(what: str, outcome: str) -> Iterator[None]:
    """A file of the day that cannot be read, or the disk refusing (full, read-only), as one line saying what
    became of the day: an input problem of the user's, not a bug."""
    try:
        yield
    except UnreadableFile as exc:
        raise CompactionError(f"{exc}; {outcome}") from exc
    except OSError as exc:  # pyarrow's own say only "Error writing bytes to file. Detail: ..." of the reason
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CompactionError(f"{what}: {reason}{f' ({exc.filename})' if exc.filename else ''}; {outcome}") from exc


def _rewrite(lake: Lake, day: date, buckets: list[Path]) -> tuple[list[str], int]:
    """The buckets in order, each de-duplicated and sorted, into files of at most ROWS_PER_FILE events."""
    after: list[str] = []
    unique = 0
    with ExitStack() as stack:
        writer, held = None, 0
        for path in buckets:
            with pa.ipc.open_stream(path) as reader:
                table = drop_duplicates(reader.read_all())
            path.unlink()
            table = table.sort_by([(k, "ascending") for k in SORT_KEYS])  # nulls last, as _order has it
            offset = 0
            while offset < table.num_rows:
                if writer is None or held >= ROWS_PER_FILE:
                    stack.close()
                    writer, held = stack.enter_context(lake.writer(lake.partition(day), table.schema)), 0
                    after.append(writer.path)
                part = table.slice(offset, ROWS_PER_FILE - held)
                writer.write(part)
                held, offset = held + part.num_rows, offset + part.num_rows
            unique += table.num_rows
            del table
            pa.default_memory_pool().release_unused()
    return after, unique
