"""`trailguard scan`: local files -> detectors -> findings, with no lake and no state.

Files are decoded and normalized in a process pool (one worker per core). Each worker keeps
only the rows some detector selects, plus every event id, so memory stays flat whatever the
input size; the parent de-duplicates by event id and runs the detectors once over all
candidates, so windows that span files group exactly as they would in one frame.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core.base import Context, Detector
from monitor.detect import baselines
from monitor.detect.detection import blind_spots, candidate_mask, needed_columns, run_detectors, select_columns
from monitor.ingest.events import Normalized, empty_batch, schema_of
from monitor.ingest.files import Decoded, Found, decode_file, describe, discover
from monitor.ingest.limits import Limits
from monitor.ingest.workers import Crashed, Pool, bounded_map
from monitor.lake import Lake

_SMALL_INPUT = 4 << 20  # bytes under which a process pool costs more than it saves
_GROUP_BYTES = 1 << 20  # compressed bytes of input per task: amortizes per-call costs, bounds memory


@dataclass(frozen=True)
class FileScan:
    """What a worker sends back for one file: candidate rows, all event ids, and any error. None stands for
    no rows: thousands of files without candidates would otherwise each keep an empty batch of every column."""

    candidates: pa.RecordBatch | None
    event_ids: pa.Array | None
    records: int
    error: str | None
    coerced: Mapping[str, int] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()  # record fields the file's shape cannot carry


@dataclass
class ScanResult:
    findings: pd.DataFrame
    files: int = 0
    records: int = 0
    events: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    detector_errors: list[str] = field(default_factory=list)
    coerced: Counter[str] = field(default_factory=Counter)  # field -> records kept with that field coerced
    blind_spots: list[str] = field(default_factory=list)  # what the inputs' shapes hide from which detectors
    notes: list[str] = field(default_factory=list)  # what else the run has to say (a rule it could not load)


_worker_detectors: tuple[Detector, ...] = ()
_worker_columns: list[str] = []
_worker_select_columns: list[str] = []
_worker_limits = Limits()


def _init_worker(detectors: Sequence[type[Detector]], limits: Limits) -> None:
    global _worker_detectors, _worker_columns, _worker_select_columns, _worker_limits
    _worker_detectors = tuple(cls() for cls in detectors)
    _worker_columns = needed_columns(detectors)
    _worker_select_columns = select_columns(detectors)
    _worker_limits = limits


def _failed(error: str) -> FileScan:
    return FileScan(None, None, 0, error)


def _keys(decoded: Decoded) -> Normalized | str:
    """The columns the detectors select on, or why this file's records cannot give them."""
    try:
        return decoded.normalize(columns=_worker_select_columns)
    except Exception as exc:  # contained to the file, like everything its bytes provoke
        return f"{decoded.name}: cannot normalize ({type(exc).__name__}: {exc})"


def _scan_group(paths: Sequence[Path]) -> list[FileScan]:
    """Scan a group of files: select over all of them at once (pandas costs are per call, not
    per row), then normalize in full only the candidate records of each file. Whatever one
    file's bytes provoke is that file's error; the group goes on. The record size limit applies
    to the records normalized in full: the others are only counted, never built or judged."""
    decoded = [decode_file(p, _worker_limits) for p in paths]
    keys = [_keys(d) if not d.error else d.error for d in decoded]
    usable = [k for k in keys if isinstance(k, Normalized)]
    table = pa.Table.from_batches([k.batch for k in usable], schema=schema_of(_worker_select_columns))
    try:
        mask = candidate_mask(table, _worker_detectors)
    except Exception:  # a detector's select failed: every row is a candidate, and the detector reports it
        mask = np.ones(table.num_rows, dtype=bool)
    scans, offset = [], 0
    for d, k in zip(decoded, keys, strict=True):
        if not isinstance(k, Normalized):
            scans.append(_failed(k))
            continue
        rows = np.flatnonzero(mask[offset : offset + len(k.records)]).tolist()
        offset += len(k.records)
        picked = [k.records[i] for i in rows]
        try:
            full = d.normalize(picked, _worker_columns) if picked else Normalized(empty_batch(_worker_columns), [], [])
        except Exception as exc:
            scans.append(_failed(f"{d.name}: cannot normalize ({type(exc).__name__}: {exc})"))
            continue
        error = describe(d.name, d.bad + k.bad + full.bad)
        ids = k.batch.column("event_id")
        if full.bad:  # a candidate refused in full (too large) is not an event of the scan either
            kept = {r.eventID for r in full.records}
            refused = pa.array([r.eventID for r in picked if r.eventID not in kept], pa.string())
            ids = pc.filter(ids, pc.invert(pc.is_in(ids, refused)))
        rows_kept = full.batch if full.batch.num_rows else None
        records = len(d.records) + len(d.bad)
        scans.append(FileScan(rows_kept, ids if len(ids) else None, records, error, d.coerced, d.absent))
    return scans


def _groups(files: Sequence[Found], target: int = _GROUP_BYTES) -> list[list[Found]]:
    groups: list[list[Found]] = [[]]
    filled = 0
    for found in files:
        if filled >= target:
            groups.append([])
            filled = 0
        groups[-1].append(found)
        filled += found.size
    return [g for g in groups if g]


def _paths(group: Sequence[Found]) -> list[Path]:
    return [f.path for f in group]


def _in_workers(
    groups: list[list[Found]], workers: int, detectors: Sequence[type[Detector]], limits: Limits
) -> Iterator[tuple[list[Found], list[FileScan]]]:
    """Groups scanned in worker processes; the files of a group whose worker died are scanned again
    one at a time, and one that kills its worker again is reported unreadable."""
    pool = partial(
        bounded_map,
        pool=Pool(
            "fork", initializer=_init_worker, initargs=(tuple(detectors), limits), cpu_seconds=limits.max_cpu_seconds
        ),
    )
    crashed: list[Found] = []
    for group, result in zip(groups, pool(_scan_group, map(_paths, groups), workers, workers * 2), strict=True):
        if isinstance(result, Crashed):
            crashed += group
        else:
            yield group, result
    for found, alone in zip(crashed, pool(_scan_group, ([f.path] for f in crashed), 1, 1), strict=True):
        if isinstance(alone, Crashed):
            yield [found], [_failed(f"{found.path}: {alone.reason} while decoding it alone")]
        else:
            yield [found], alone


def scan(
    paths: Sequence[str | Path],
    detectors: Sequence[type[Detector]],
    ctx: Context,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    lake: Lake | None = None,
    limits: Limits = Limits(),
) -> ScanResult:
    """Scan files and directories; `progress(bytes_done, bytes_total)` is called as files finish.

    `workers` is the number of parsing processes: None picks one per core for large inputs and
    none (parse in this process) for small ones. A `lake` is the history stateful detectors
    compare with (the days before the scanned events); without one every key is new.
    """
    files, errors = discover(paths)
    total, done = sum(f.size for f in files), 0
    if workers is None:  # automatic: a pool only when the input is worth its start-up
        workers = (os.cpu_count() or 1) if total >= _SMALL_INPUT else 1
    groups = _groups(files, min(_GROUP_BYTES, total // (workers * 4) + 1))
    results: list[FileScan] = []
    if workers <= 1 or len(groups) < 2:
        _init_worker(detectors, limits)
        scans: Iterable[tuple[list[Found], list[FileScan]]] = ((g, _scan_group(_paths(g))) for g in groups)
    else:
        scans = _in_workers(groups, workers, detectors, limits)
    for group, group_scans in scans:
        results.extend(group_scans)
        done += sum(f.size for f in group)
        if progress:
            progress(done, total)
    errors += [r.error for r in results if r.error]
    ids = pa.chunked_array([r.event_ids for r in results if r.event_ids is not None], pa.string())
    unique = len(ids.unique()) if len(ids) else 0
    candidates = pa.Table.from_batches(
        [r.candidates for r in results if r.candidates is not None],
        schema=empty_batch(needed_columns(detectors)).schema,
    )
    events = candidates.to_pandas().sort_values(["event_time", "event_id"], kind="stable")
    events = events.drop_duplicates("event_id").reset_index(drop=True)
    findings, detector_errors = run_detectors(
        events, detectors, ctx, baseline=partial(baselines.build, lake) if lake else None
    )
    return ScanResult(
        findings,
        files=len(files),
        records=sum(r.records for r in results),
        events=unique,
        duplicates=len(ids) - unique,
        errors=errors,
        detector_errors=detector_errors,
        coerced=sum((Counter(r.coerced) for r in results), Counter()),
        blind_spots=blind_spots(Counter(f for r in results for f in r.absent), detectors),
    )
