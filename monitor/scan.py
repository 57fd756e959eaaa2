"""`trailguard scan`: local files -> detectors -> findings, with no lake and no state.

Files are decoded and normalized in a process pool (one worker per core). Each worker keeps
only the rows some detector selects, plus every event id, so memory stays flat whatever the
input size; the parent de-duplicates by event id and runs the detectors once over all
candidates, so windows that span files group exactly as they would in one frame.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from detectors.base import Context, Detector
from monitor import baselines
from monitor.detection import candidate_mask, needed_columns, run_detectors, select_columns
from monitor.events import empty_batch, schema_of
from monitor.lake import Lake
from monitor.sources.files import decode_file, describe, discover

_SMALL_INPUT = 4 << 20  # bytes under which a process pool costs more than it saves
_GROUP_BYTES = 1 << 20  # compressed bytes of input per task: amortizes per-call costs, bounds memory


@dataclass(frozen=True)
class FileScan:
    """What a worker sends back for one file: candidate rows, all event ids, and any error."""

    candidates: pa.RecordBatch
    event_ids: pa.Array
    records: int
    error: str | None


@dataclass
class ScanResult:
    findings: pd.DataFrame
    files: int = 0
    records: int = 0
    events: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    detector_errors: list[str] = field(default_factory=list)


_worker_detectors: tuple[Detector, ...] = ()
_worker_columns: list[str] = []
_worker_select_columns: list[str] = []


def _init_worker(detectors: Sequence[type[Detector]]) -> None:
    global _worker_detectors, _worker_columns, _worker_select_columns
    _worker_detectors = tuple(cls() for cls in detectors)
    _worker_columns = needed_columns(detectors)
    _worker_select_columns = select_columns(detectors)


def _scan_group(paths: Sequence[Path]) -> list[FileScan]:
    """Scan a group of files: select over all of them at once (pandas costs are per call, not
    per row), then normalize in full only the candidate records of each file."""
    decoded = [decode_file(p) for p in paths]
    keys = [d.normalize(columns=_worker_select_columns) for d in decoded]
    table = pa.Table.from_batches([k.batch for k in keys], schema=schema_of(_worker_select_columns))
    mask = candidate_mask(table.to_pandas(), _worker_detectors).to_numpy()
    scans, offset = [], 0
    for d, k in zip(decoded, keys, strict=True):
        rows = np.flatnonzero(mask[offset : offset + len(k.records)]).tolist()
        offset += len(k.records)
        picked = [k.records[i] for i in rows]
        scans.append(
            FileScan(
                d.normalize(picked, _worker_columns).batch if picked else empty_batch(_worker_columns),
                k.batch.column("event_id"),
                len(d.records) + len(d.bad),
                d.error or describe(d.name, d.bad + k.bad),
            )
        )
    return scans


def _groups(files: Sequence[Path], sizes: Sequence[int], target: int = _GROUP_BYTES) -> list[list[Path]]:
    groups: list[list[Path]] = [[]]
    filled = 0
    for path, size in zip(files, sizes, strict=True):
        if filled >= target:
            groups.append([])
            filled = 0
        groups[-1].append(path)
        filled += size
    return [g for g in groups if g]


def scan(
    paths: Sequence[str | Path],
    detectors: Sequence[type[Detector]],
    ctx: Context,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    lake: Lake | None = None,
) -> ScanResult:
    """Scan files and directories; `progress(bytes_done, bytes_total)` is called as files finish.

    `workers` is the number of parsing processes: None picks one per core for large inputs and
    none (parse in this process) for small ones. A `lake` is the history stateful detectors
    compare with (the days before the scanned events); without one every key is new.
    """
    files, errors = discover(paths)
    sizes = [f.stat().st_size for f in files]
    total, done = sum(sizes), 0
    if workers is None:  # automatic: a pool only when the input is worth its start-up
        workers = (os.cpu_count() or 1) if total >= _SMALL_INPUT else 1
    groups = _groups(files, sizes, min(_GROUP_BYTES, total // (workers * 4) + 1))
    group_sizes = [sum(p.stat().st_size for p in g) for g in groups]
    results: list[FileScan] = []
    if workers <= 1 or len(groups) < 2:
        _init_worker(detectors)
        scans: Iterator[list[FileScan]] = map(_scan_group, groups)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, multiprocessing.get_context("fork"), _init_worker, (tuple(detectors),))
        scans = pool.map(_scan_group, groups)
    try:
        for group_scans, size in zip(scans, group_sizes, strict=True):
            results.extend(group_scans)
            done += size
            if progress:
                progress(done, total)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    errors += [r.error for r in results if r.error]
    ids = pa.chunked_array([r.event_ids for r in results], pa.string())
    unique = len(ids.unique()) if len(ids) else 0
    candidates = pa.Table.from_batches(
        [r.candidates for r in results], schema=empty_batch(needed_columns(detectors)).schema
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
    )
