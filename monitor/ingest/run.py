"""Sources -> lake, exactly once after de-duplication, whatever crashes in between.

Inputs (S3 objects, local files) are fetched, normalized and written to the lake by worker
processes, a group of inputs per uniquely named file that becomes visible whole. Only then does
the parent record the group in the ledger (one SQLite transaction) and let the source
acknowledge it (delete SQS messages). A crash before the ledger commit means the inputs are
processed again and their events written twice, which every lake reader drops; a crash can
never lose an input, because nothing is acknowledged before its events are durable.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from itertools import takewhile
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core.lazy import Later
from monitor.ingest.events import BadRecord, to_batch
from monitor.ingest.files import Decoded, decode, describe
from monitor.ingest.limits import InputError, Limits, too_large
from monitor.ingest.sources.inputs import Work
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.settings import parse as parse_source
from monitor.ingest.sources.source import Source, Window
from monitor.ingest.workers import INGEST_PRELOAD, Crashed, Mapper, Pool, bounded_map
from monitor.lake import Lake, drop_duplicates
from monitor.store.ledger import Ledger, ObjectRecord

if TYPE_CHECKING:
    from monitor.ingest.sources import registry
else:
    registry = Later("monitor.ingest.sources.registry")  # the AWS SDK loads when a source is read, not before

GROUP_BYTES = 4 << 20  # compressed input per lake file and commit: bounds a worker's memory
COMMIT_INPUTS = 500
FETCH_THREADS = 8  # inputs a worker fetches at once (botocore keeps 10 connections per client)
WAVES = 4  # rounds of fetches between decodes: what is held is this many times the threads' objects
BATCH_RECORDS = 5_000  # records normalized at once: a few MB of decoded records held


@dataclass(frozen=True)
class Outcome:
    """What became of one input; crosses the process boundary, so it holds no events."""

    work: Work
    ingested: bool  # False: quarantined (or, if not permanent, to retry)
    events: int = 0
    bad_records: int = 0
    error: str | None = None
    permanent: bool = True  # False: a fetch failure worth retrying next cycle, not a bad input
    coerced: Mapping[str, int] = field(default_factory=dict)  # field -> records kept with that field coerced
    absent: frozenset[str] = frozenset()  # record fields the input's shape cannot carry


@dataclass(frozen=True)
class Group:
    """A group of inputs whose events a worker has written to the lake."""

    outcomes: list[Outcome]
    events: int = 0
    duplicates: int = 0
    newest: datetime | None = None
    oldest: datetime | None = None


@dataclass
class Summary:
    inputs: int = 0
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    bad_records: int = 0
    retry_later: int = 0
    coerced: Counter[str] = field(default_factory=Counter)  # field -> records kept with that field coerced
    absent: Counter[str] = field(default_factory=Counter)  # field -> inputs whose shape cannot carry it
    newest: datetime | None = None
    oldest: datetime | None = None  # the oldest event ingested: a cycle detects only its lookback
    errors: list[str] = field(default_factory=list)
    incomplete: dict[str, str] = field(default_factory=dict)  # source URI -> why its read was incomplete

    def merge(self, other: Summary) -> None:
        for name in ("inputs", "events", "duplicates", "quarantined", "bad_records", "retry_later"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.coerced += other.coerced
        self.absent += other.absent
        self.incomplete |= other.incomplete
        self.newest = max(filter(None, (self.newest, other.newest)), default=None)
        self.oldest = min(filter(None, (self.oldest, other.oldest)), default=None)

    def lag(self, now: datetime | None = None) -> float | None:
        """Seconds between now and the newest event ingested."""
        return None if self.newest is None else ((now or datetime.now(UTC)) - self.newest).total_seconds()


_lakes: dict[str, Lake] = {}


def _fetch(work: Work, limits: Limits) -> bytes:
    """The input's bytes; InputError (permanent) for one too large to decode, anything else is worth a retry."""
    if work.size > limits.max_inflated:  # even gzipped, it could only inflate past the limit
        raise InputError(too_large(work.size, limits.max_inflated))
    return registry.FETCH[work.source](work, limits)


def fetch(work: Work, limits: Limits) -> bytes | Outcome:
    """The input's bytes, or its outcome when they cannot be had; never raises (it runs in a fetching thread)."""
    try:
        return _fetch(work, limits)
    except InputError as exc:
        return Outcome(work, False, error=f"{work.uri}: {exc}")
    except Exception as exc:  # any fetch failure: report it, keep the input for the next cycle
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return Outcome(work, False, error=f"{work.uri}: cannot fetch ({code or type(exc).__name__})", permanent=False)


def fetched(works: Sequence[Work], limits: Limits, threads: int) -> Iterator[tuple[Work, bytes | Outcome]]:
    """Each input with its bytes (or the outcome of failing to get them), in order, fetched `threads` at a time:
    S3 waits tens of milliseconds before an object's first byte, and a worker that fetched one input at a time
    waited through each. The fetching threads are gone before the caller sees a wave of inputs (WAVES rounds
    of fetches): the decoders' nesting limit lowers the process's recursion limit, which only a single-threaded
    process may do. What is held is one wave's bytes, each let go as the caller takes it, whatever sizes the
    listing claimed."""
    threads = max(threads, 1)
    for start in range(0, len(works), threads * WAVES):
        wave = works[start : start + threads * WAVES]
        if len(wave) == 1 or threads == 1:
            got = [fetch(w, limits) for w in wave]
        else:
            with ThreadPoolExecutor(min(threads, len(wave)), thread_name_prefix="fetch") as pool:
                got = list(pool.map(partial(fetch, limits=limits), wave))
        got.reverse()
        for work in wave:
            yield work, got.pop()


def _decoded(work: Work, data: bytes | Outcome, limits: Limits) -> Decoded | Outcome:
    """One fetched input decoded, or its outcome when it cannot be."""
    if isinstance(data, Outcome):
        return data
    decoded = decode(data, work.uri, limits)
    return Outcome(work, False, error=decoded.error) if decoded.error else decoded


def normalize(inputs: Sequence[tuple[Work, Decoded]], limits: Limits) -> tuple[list[Outcome], pa.Table | None]:
    """Normalize decoded inputs all at once (most of what normalizing costs is per call, not per record, and an
    object of a quiet account holds a few records), each record placed and sourced as if alone; when that
    fails, one at a time, so that only the input that provokes it is refused. Never raises."""
    if len(inputs) > 1:
        try:
            return _all_at_once(inputs, limits)
        except Exception:  # found, and named, input by input below
            pass
    outcomes, tables = [], []
    for work, decoded in inputs:
        try:
            norm = decoded.normalize()
        except Exception as exc:  # the decoder's boundary covers the bytes; this covers what they decode to
            outcomes.append(Outcome(work, False, error=f"{work.uri}: cannot normalize ({type(exc).__name__}: {exc})"))
            continue
        outcomes.append(_outcome(work, decoded, norm.batch.num_rows, norm.bad))
        tables.append(pa.Table.from_batches([norm.batch]))
    return outcomes, pa.concat_tables(tables) if tables else None


def _all_at_once(inputs: Sequence[tuple[Work, Decoded]], limits: Limits) -> tuple[list[Outcome], pa.Table]:
    counts = [len(d.records) for _, d in inputs]
    owner = np.repeat(np.arange(len(inputs)), counts)
    starts = np.cumsum([0, *counts]).tolist()

    def locate(i: int) -> str:
        o = int(owner[i])
        return inputs[o][1].locate(i - starts[o])

    uris = pc.take(pa.array([w.uri for w, _ in inputs], pa.string()), pa.array(owner, pa.int64()))
    norm = to_batch([r for _, d in inputs for r in d.records], uris, locate, max_record=limits.max_record)
    kept = np.ones(len(owner), dtype=bool) if norm.kept is None else norm.kept
    rows = np.bincount(owner[kept], minlength=len(inputs)).tolist()
    bad: list[list[BadRecord]] = [[] for _ in inputs]
    for row, why in zip(np.flatnonzero(~kept).tolist(), norm.bad, strict=True):
        bad[owner[row]].append(why)
    outcomes = [_outcome(w, d, rows[i], bad[i]) for i, (w, d) in enumerate(inputs)]
    return outcomes, pa.Table.from_batches([norm.batch])


def _outcome(work: Work, decoded: Decoded, events: int, refused: list[BadRecord]) -> Outcome:
    bad = decoded.bad + refused
    return Outcome(
        work, True, events, len(bad), describe(work.uri, bad), coerced=decoded.coerced, absent=decoded.absent
    )


def _parsed(inputs: Iterator[tuple[Work, bytes | Outcome]], limits: Limits) -> tuple[list[Outcome], list[pa.Table]]:
    """Each fetched input decoded, then normalized with the next ones up to about BATCH_RECORDS records at a time;
    the outcomes in the inputs' order."""
    outcomes: dict[int, Outcome] = {}
    tables: list[pa.Table] = []
    batch: list[tuple[int, Work, Decoded]] = []

    def flush() -> None:
        done, table = normalize([(w, d) for _, w, d in batch], limits)
        outcomes.update(zip([i for i, _, _ in batch], done, strict=True))
        tables.extend([table] if table is not None else [])
        batch.clear()

    for i, (work, data) in enumerate(inputs):
        got = _decoded(work, data, limits)
        del data
        if isinstance(got, Outcome):
            outcomes[i] = got
            continue
        batch.append((i, work, got))
        if sum(len(d.records) for _, _, d in batch) >= BATCH_RECORDS:
            flush()
    flush()
    return [outcomes[i] for i in range(len(outcomes))], tables


def ingest_group(lake_uri: str, limits: Limits, works: Sequence[Work], threads: int = FETCH_THREADS) -> Group:
    """Fetch a group of inputs (`threads` at once), parse them and write their events to the lake (runs in a
    worker process).

    Only counts and outcomes travel back to the parent, never the events or an exception. A
    lake that cannot be written (a full disk) leaves every input for the next cycle; a group
    whose events cannot be written for any other reason is written input by input, so only the
    input that cannot be is quarantined.
    """
    if lake_uri not in _lakes:
        _lakes[lake_uri] = Lake(lake_uri)
    outcomes, tables = _parsed(fetched(works, limits, threads), limits)
    try:
        return _write(_lakes[lake_uri], outcomes, tables)
    except OSError as exc:
        reason = f"cannot write the lake ({type(exc).__name__}: {exc})"
        return Group([Outcome(w, False, error=f"{w.uri}: {reason}", permanent=False) for w in works])
    except Exception as exc:
        if len(works) > 1:
            return _merge([ingest_group(lake_uri, limits, [w], threads) for w in works])
        reason = f"its events cannot be written to the lake ({type(exc).__name__}: {exc})"
        return Group([Outcome(w, False, error=f"{w.uri}: {reason}") for w in works])


def _write(lake: Lake, outcomes: list[Outcome], tables: Sequence[pa.Table]) -> Group:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return Group(outcomes)
    table = pa.concat_tables(tables)
    unique = drop_duplicates(table)
    lake.write(unique)
    span = pc.min_max(unique["event_time"]).as_py()
    return Group(outcomes, unique.num_rows, table.num_rows - unique.num_rows, span["max"], span["min"])


def _merge(parts: Sequence[Group]) -> Group:
    newest = max((g.newest for g in parts if g.newest is not None), default=None)
    oldest = min((g.oldest for g in parts if g.oldest is not None), default=None)
    outcomes = [o for g in parts for o in g.outcomes]
    return Group(outcomes, sum(g.events for g in parts), sum(g.duplicates for g in parts), newest, oldest)


def groups(works: Iterable[Work], max_inputs: int, max_bytes: int = GROUP_BYTES) -> Iterator[list[Work]]:
    """Inputs in groups of at most `max_inputs` and about `max_bytes`: one lake file and one commit each."""
    group: list[Work] = []
    size = 0
    for work in works:
        group.append(work)
        size += work.size
        if len(group) >= max_inputs or size >= max_bytes:
            yield group
            group, size = [], 0
    if group:
        yield group


def _commit(
    group: Group, state: Ledger, acknowledge: Callable[[Sequence[Work]], None] | None, summary: Summary
) -> None:
    """The group's files are already durable: record it in the ledger, then let the source acknowledge."""
    final = [o for o in group.outcomes if o.permanent]
    state.record(
        ObjectRecord(
            o.work.source,
            o.work.bucket,
            o.work.key,
            o.work.etag,
            "ingested" if o.ingested else "quarantined",
            o.events,
            o.bad_records,
            o.error,
        )
        for o in final
    )
    for o in final:
        if o.work.position is not None:
            kind, account, region, position = o.work.position
            current = state.cursor(kind, account, region)
            if current is None or position > current:  # a cursor never moves back
                state.set_cursor(kind, account, region, position)
    if acknowledge:
        acknowledge([o.work for o in final])
    summary.inputs += len(final)
    summary.events += group.events
    summary.duplicates += group.duplicates
    summary.quarantined += sum(not o.ingested for o in final)
    summary.bad_records += sum(o.bad_records for o in final)
    for o in final:
        summary.coerced.update(o.coerced)
        summary.absent.update(o.absent)
    summary.retry_later += len(group.outcomes) - len(final)
    summary.errors += [o.error for o in group.outcomes if o.error]
    summary.newest = max(filter(None, (summary.newest, group.newest)), default=None)
    summary.oldest = min(filter(None, (summary.oldest, group.oldest)), default=None)


@dataclass(frozen=True)
class Options:
    """How ingest runs: its worker processes (or another mapper, a Dask cluster's), inputs per commit, the
    decoding limits, a progress callback and an event that stops it between groups."""

    workers: int | None = None  # default: one per core
    mapper: Mapper | None = None
    commit_inputs: int = COMMIT_INPUTS
    limits: Limits = Limits()
    progress: Callable[[Summary], None] | None = None
    stop: threading.Event | None = None
    fetch_threads: int = FETCH_THREADS  # inputs each worker fetches at once

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def ingest(
    works: Iterable[Work],
    lake: Lake,
    state: Ledger,
    acknowledge: Callable[[Sequence[Work]], None] | None = None,
    options: Options = Options(),
) -> Summary:
    """Ingest these inputs; callers pass them through `new_only` so that a re-run is a no-op.

    Once `stop` is set no new group starts; those in flight finish and are committed. Groups are
    committed here, in order, only once their files are written, whoever wrote them. The inputs
    of a group whose worker died are run again one at a time, and one that kills its worker
    again is quarantined (so is one whose decoding takes more CPU than `limits.max_cpu_seconds`);
    after a stop they are left, uncommitted, for the next run, as the groups not started are.
    """
    workers, limits, progress = options.workers or os.cpu_count() or 1, options.limits, options.progress
    # this machine's worker processes by default (never this process: a worker that dies costs only its inputs)
    pool = Pool(preload=INGEST_PRELOAD, cpu_seconds=limits.max_cpu_seconds)
    mapper = options.mapper or partial(bounded_map, pool=pool)
    summary = Summary()
    task = partial(ingest_group, lake.uri, limits, threads=options.fetch_threads)
    todo = takewhile(lambda _: not options.stopped, groups(works, options.commit_inputs))
    crashed: list[Work] = []
    for result in mapper(task, todo, workers, workers * 2):
        if isinstance(result, Crashed):
            crashed += result.item
        else:
            _commit(result, state, acknowledge, summary)
        if progress:
            progress(summary)
    again = takewhile(lambda _: not options.stopped, ([w] for w in crashed))  # alone, so a crash names its input
    for alone in mapper(task, again, 1, 1):
        if isinstance(alone, Crashed):
            (work,) = alone.item
            died = Outcome(work, False, error=f"{work.uri}: {alone.reason} while decoding it alone")
            _commit(Group([died]), state, acknowledge, summary)
        else:
            _commit(alone, state, acknowledge, summary)
    return summary


def new_only(
    state: Ledger,
    works: Iterable[Work],
    acknowledge: Callable[[Sequence[Work]], None] | None = None,
    size: int = COMMIT_INPUTS,
) -> Iterator[Work]:
    """Drop the inputs the ledger already holds (acknowledged: only that was left to do), looking them up in
    chunks of `size` (no more than a commit holds: a received SQS message must not wait for later ones). An
    input that moves a cursor is always kept."""
    chunk: list[Work] = []
    for work in works:
        chunk.append(work)
        if len(chunk) >= size:
            yield from _unseen(state, chunk, acknowledge)
            chunk = []
    yield from _unseen(state, chunk, acknowledge)


def _unseen(state: Ledger, chunk: list[Work], acknowledge: Callable[[Sequence[Work]], None] | None) -> list[Work]:
    by_bucket: dict[tuple[str, str], list[Work]] = {}
    for w in chunk:
        by_bucket.setdefault((w.source, w.bucket), []).append(w)
    fresh, seen_works = [], []
    for (source, bucket), items in by_bucket.items():
        seen = state.seen(source, bucket, [(w.key, w.etag) for w in items])
        fresh += [w for w in items if (w.key, w.etag) not in seen or w.position is not None]
        seen_works += [w for w in items if (w.key, w.etag) in seen and w.position is None]
    if acknowledge and seen_works:
        acknowledge(seen_works)
    return fresh


def from_source(source: Source, window: Window, lake: Lake, state: Ledger, options: Options = Options()) -> Summary:
    """One source's new inputs into the lake; what it rejected (SQS poison messages) into the ledger."""
    fresh = new_only(state, source.inputs(window), source.acknowledge, options.commit_inputs)
    summary = ingest(fresh, lake, state, source.acknowledge, options)
    read = source.read
    state.record(ObjectRecord(w.source, w.bucket, w.key, w.etag, "quarantined", 0, 0, why) for w, why in read.rejected)
    summary.errors += read.errors
    summary.quarantined += len(read.rejected)
    summary.bad_records += read.bad_records
    return summary


def from_sources(
    sources: Sequence[SourceSettings],
    lake: Lake,
    state: Ledger,
    window: Window = Window(),
    options: Options = Options(),
) -> Summary:
    """Ingest every source, each opened by the registry of its URI's scheme.

    With the window's `since`/`until`, sources read those days (a backfill); without, their lookback or the
    ledger's cursors. Once `options.stop` is set, the work in flight is committed and nothing new starts. One
    broken source never stops the others.
    """
    total = Summary()
    window = replace(window, cursor=state.cursor)
    for settings in sources:
        if options.stopped:
            break
        try:
            source = registry.SOURCES[settings.scheme](settings, options.limits)
            part = from_source(source, window, lake, state, options)
            if source.read.incomplete:
                part.incomplete[settings.name] = source.read.incomplete
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            part = Summary(errors=[f"{settings.name}: {reason}"], incomplete={settings.name: reason})
        if part.retry_later and settings.name not in part.incomplete:
            errors = part.errors[-1] if part.errors else ""
            part.incomplete[settings.name] = f"{part.retry_later} inputs to retry: {errors}"
        total.merge(part)
    return total


def from_uris(
    uris: Sequence[str], lake: Lake, state: Ledger, window: Window = Window(), options: Options = Options()
) -> Summary:
    """`from_sources` for sources named by URI (their options in the query)."""
    return from_sources([parse_source(u) for u in uris], lake, state, window, options)
