"""Sources -> lake, exactly once after de-duplication, whatever crashes in between.

Inputs (S3 objects, local files) are fetched and normalized in a process pool. The parent
buffers the results and commits them in order: first the Parquet files (atomic), then the
ledger rows (one SQLite transaction), then the source's own acknowledgement (deleting SQS
messages). A crash before the ledger commit means the inputs are processed again and their
events written twice, which every lake reader drops; a crash can never lose an input, because
nothing is acknowledged before its events are durable.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from monitor.lake import Lake, drop_duplicates
from monitor.sources import aws
from monitor.sources.files import decode, describe
from monitor.sources.files import works as local_works
from monitor.sources.inputs import Work
from monitor.sources.lookup import LookupSource
from monitor.sources.s3 import S3Source, lookback_days
from monitor.sources.sqs import SqsSource
from monitor.state import ObjectRecord, State

FLUSH_EVENTS = 50_000  # events buffered before a commit: bounds memory, amortizes file and ledger costs
FLUSH_INPUTS = 500


@dataclass(frozen=True)
class Parsed:
    work: Work
    table: pa.Table | None
    records: int = 0
    bad_records: int = 0
    error: str | None = None
    permanent: bool = True  # False: a fetch failure worth retrying next cycle, not a bad input


@dataclass
class Summary:
    inputs: int = 0
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    bad_records: int = 0
    retry_later: int = 0
    newest: datetime | None = None
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Summary) -> None:
        for name in ("inputs", "events", "duplicates", "quarantined", "bad_records", "retry_later"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.newest = max(filter(None, (self.newest, other.newest)), default=None)

    def lag(self, now: datetime | None = None) -> float | None:
        """Seconds between now and the newest event ingested."""
        return None if self.newest is None else ((now or datetime.now(UTC)) - self.newest).total_seconds()


_s3_clients: dict[str | None, Any] = {}


def _fetch(work: Work) -> bytes:
    if not work.bucket:
        return Path(work.key).read_bytes()
    if work.role_arn not in _s3_clients:
        _s3_clients[work.role_arn] = aws.session(work.role_arn).client("s3", config=aws.config())
    body: bytes = _s3_clients[work.role_arn].get_object(Bucket=work.bucket, Key=work.key)["Body"].read()
    return body


def parse(work: Work) -> Parsed:
    """Fetch and normalize one input (runs in a worker process)."""
    try:
        data = _fetch(work)
    except Exception as exc:  # any fetch failure: report it, keep the input for the next cycle
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return Parsed(work, None, error=f"{work.uri}: cannot fetch ({code or type(exc).__name__})", permanent=False)
    decoded = decode(data, work.uri)
    if decoded.error:
        return Parsed(work, None, error=decoded.error)
    norm = decoded.normalize()
    bad = decoded.bad + norm.bad
    table = pa.Table.from_batches([norm.batch])
    return Parsed(work, table, len(decoded.records) + len(decoded.bad), len(bad), describe(work.uri, bad))


T = TypeVar("T")
R = TypeVar("R")


def bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[R]:
    """Like Executor.map, in order, but with at most `window` inputs in flight: results never pile up."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(workers, multiprocessing.get_context("fork")) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _ledger_row(p: Parsed) -> ObjectRecord:
    w = p.work
    status = "quarantined" if p.table is None else "ingested"
    events = 0 if p.table is None else p.table.num_rows
    return ObjectRecord(w.source, w.bucket, w.key, w.etag, status, events, p.bad_records, p.error)


class Committer:
    """Buffers parsed inputs and commits them: lake files, then ledger, then acknowledgements."""

    def __init__(
        self,
        lake: Lake,
        state: State,
        acknowledge: Callable[[Sequence[Work]], None] | None,
        commit_inputs: int = FLUSH_INPUTS,
    ) -> None:
        self.lake, self.state, self.acknowledge = lake, state, acknowledge
        self.commit_inputs = commit_inputs
        self.parsed: list[Parsed] = []
        self.events = 0
        self.summary = Summary()

    def add(self, p: Parsed) -> None:
        if p.error:
            self.summary.errors.append(p.error)
        if not p.permanent:
            self.summary.retry_later += 1
            return
        self.parsed.append(p)
        self.events += 0 if p.table is None else p.table.num_rows
        if self.events >= FLUSH_EVENTS or len(self.parsed) >= self.commit_inputs:
            self.flush()

    def flush(self) -> None:
        if not self.parsed:
            return
        tables = [p.table for p in self.parsed if p.table is not None and p.table.num_rows]
        if tables:
            table = pa.concat_tables(tables)
            unique = drop_duplicates(table)
            self.lake.write(unique)
            self.summary.duplicates += table.num_rows - unique.num_rows
            self.summary.events += unique.num_rows
            newest = pc.max(unique["event_time"]).as_py()
            self.summary.newest = max(filter(None, (self.summary.newest, newest)), default=None)
        self.state.record(_ledger_row(p) for p in self.parsed)
        if self.acknowledge:
            self.acknowledge([p.work for p in self.parsed])
        self.summary.inputs += len(self.parsed)
        self.summary.quarantined += sum(p.table is None for p in self.parsed)
        self.summary.bad_records += sum(p.bad_records for p in self.parsed)
        self.parsed, self.events = [], 0


def ingest(
    works: Iterable[Work],
    lake: Lake,
    state: State,
    workers: int | None = None,
    acknowledge: Callable[[Sequence[Work]], None] | None = None,
    progress: Callable[[Summary, int], None] | None = None,
    commit_inputs: int = FLUSH_INPUTS,
) -> Summary:
    """Ingest the inputs not yet in the ledger; re-running over the same inputs is a no-op."""
    workers = workers or os.cpu_count() or 1
    committer = Committer(lake, state, acknowledge, commit_inputs)
    for parsed in bounded_map(parse, works, workers, window=workers * 4):
        committer.add(parsed)
        if progress:
            progress(committer.summary, committer.events)
    committer.flush()
    return committer.summary


def new_only(state: State, works: Iterable[Work]) -> Iterator[Work]:
    """Drop the inputs the ledger already holds, looking them up in chunks."""
    chunk: list[Work] = []
    for work in works:
        chunk.append(work)
        if len(chunk) == 500:
            yield from _unseen(state, chunk)
            chunk = []
    yield from _unseen(state, chunk)


def _unseen(state: State, chunk: list[Work]) -> list[Work]:
    by_bucket: dict[tuple[str, str], list[Work]] = {}
    for w in chunk:
        by_bucket.setdefault((w.source, w.bucket), []).append(w)
    fresh = []
    for (source, bucket), items in by_bucket.items():
        seen = state.seen(source, bucket, [(w.key, w.etag) for w in items])
        fresh += [w for w in items if (w.key, w.etag) not in seen]
    return fresh


def from_uris(
    uris: Sequence[str],
    lake: Lake,
    state: State,
    since: datetime | None = None,
    until: datetime | None = None,
    workers: int | None = None,
    progress: Callable[[Summary, int], None] | None = None,
    commit_inputs: int = FLUSH_INPUTS,
    **s3_options: Any,
) -> Summary:
    """Ingest every source named by URI: s3://, sqs://, lookup://, or a local path.

    With `since`/`until`, S3 sources list those days (a backfill); without, the lookback.
    """
    total = Summary()
    first, last = lookback_days(until)
    if since is not None:
        first = since.astimezone(UTC).date()
    for uri in uris:
        if uri.startswith("lookup://"):
            for result in LookupSource.from_uri(uri, role_arn=s3_options.get("role_arn")).ingest(
                lake, state, since, until
            ):
                total.events += result.events
                if result.incomplete:
                    total.errors.append(f"{uri} {result.region}: incomplete read ({result.incomplete})")
            continue
        if uri.startswith("sqs://"):
            sqs = SqsSource.from_uri(uri, state, role_arn=s3_options.get("role_arn"))
            summary = ingest(sqs.works(), lake, state, workers, sqs.acknowledge, progress, commit_inputs)
            summary.errors += sqs.errors + [
                f"{uri}: {sqs.poisoned} unreadable messages left for the dead-letter queue"
            ] * bool(sqs.poisoned)
        elif uri.startswith("s3://"):
            works = S3Source.from_uri(uri, **s3_options).works(first, last)
            summary = ingest(new_only(state, works), lake, state, workers, None, progress, commit_inputs)
        else:
            local, missing = local_works([uri])
            summary = ingest(new_only(state, local), lake, state, workers, None, progress, commit_inputs)
            summary.errors += missing
        total.merge(summary)
    return total
