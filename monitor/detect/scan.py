"""`trailguard scan`: local files -> detectors -> findings, with no lake and no state.

Files are decoded and normalized in a process pool (one worker per core). Each worker keeps
only the rows some detector selects, plus every event id, so memory stays flat whatever the
input size; the parent de-duplicates by event id and runs the detectors once over all
candidates, so windows that span files group exactly as they would in one frame.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core.base import Context, Detector
from detectors.core.lazy import Later
from monitor.detect.detection import (
    blind_spots,
    candidate_mask,
    joining_organization,
    needed_columns,
    run_detectors,
    select_columns,
)
from monitor.detect.prefilter import Prefilter
from monitor.ingest.events import BadRecord, Normalized, Record, empty_batch, schema_of, to_batch
from monitor.ingest.files import Decoded, Found, decode_file, describe, discover, read_bytes
from monitor.ingest.glance import Glanced, glance
from monitor.ingest.limits import Limits
from monitor.ingest.workers import Crashed, Pool, bounded_map

if TYPE_CHECKING:
    from monitor.detect import baselines
    from monitor.lake import Lake
else:
    baselines = Later("monitor.detect.baselines")  # history is read only with a lake

_SMALL_INPUT = 4 << 20  # bytes under which a process pool costs more than it saves
_GROUP_BYTES = 1 << 20  # compressed bytes of input per task: amortizes per-call costs, bounds memory


@dataclass(frozen=True)
class FileScan:
    """One file's part of a scan: how many records it held, and any error."""

    records: int
    error: str | None
    coerced: Mapping[str, int] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()  # record fields the file's shape cannot carry
    candidates: int = 0  # its rows in its group's batch


@dataclass(frozen=True)
class GroupScan:
    """What a worker sends back for a group of files: the candidate rows and every event id of all of them, as
    one batch and one array (a slice per file would carry its whole batch when pickled), and each file's part.
    None stands for no rows: thousands of groups without candidates would each keep an empty batch of every
    column."""

    candidates: pa.RecordBatch | None
    event_ids: pa.Array | None
    files: list[FileScan]

    @classmethod
    def of(cls, parts: Sequence[tuple[pa.RecordBatch | None, pa.Array | None, FileScan]]) -> GroupScan:
        batches = [b for b, _, _ in parts if b is not None and b.num_rows]
        ids = [i for _, i, _ in parts if i is not None and len(i)]
        return cls(
            pa.concat_batches(batches) if batches else None,
            pa.concat_arrays(ids) if ids else None,
            [replace(f, candidates=0 if b is None else b.num_rows) for b, _, f in parts],
        )

    @classmethod
    def interleaved(cls, first: GroupScan, second: GroupScan, in_first: Sequence[bool]) -> GroupScan:
        """Two scans of a group's files as one, in the files' order (`in_first[i]`: which scan holds file i),
        so that which copy of a duplicated event is kept does not depend on how the files were grouped."""
        files, rows, starts = [], [], [0, 0]
        offset = [0, first.candidates.num_rows if first.candidates is not None else 0]
        parts = iter(first.files), iter(second.files)
        for which in (0 if f else 1 for f in in_first):
            part = next(parts[which])
            files.append(part)
            rows.append(np.arange(part.candidates) + offset[which] + starts[which])
            starts[which] += part.candidates
        batches = [s.candidates for s in (first, second) if s.candidates is not None]
        ids = [s.event_ids for s in (first, second) if s.event_ids is not None]
        order = pa.array(np.concatenate(rows), pa.int64())
        return cls(
            pa.concat_batches(batches).take(order) if batches else None,
            pa.concat_arrays(ids) if ids else None,
            files,
        )


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
_worker_prefilter: Prefilter | None = None


def _init_worker(detectors: Sequence[type[Detector]], limits: Limits, prefilter: bool = True) -> None:
    global _worker_detectors, _worker_columns, _worker_select_columns, _worker_limits, _worker_prefilter
    _worker_detectors = tuple(cls() for cls in detectors)
    _worker_columns = needed_columns(detectors)
    _worker_select_columns = select_columns(detectors)
    _worker_limits = limits
    _worker_prefilter = Prefilter.of(detectors) if prefilter else None


Part = tuple[pa.RecordBatch | None, pa.Array | None, FileScan]  # a file's candidates, event ids and part


def _failed(error: str) -> Part:
    return None, None, FileScan(0, error)


def _keys(decoded: Decoded) -> Normalized | str:
    """The columns the detectors select on, or why this file's records cannot give them. The record size limit
    is not applied here: it judges the candidates, over every column."""
    try:
        return to_batch(decoded.records, decoded.name, decoded.locate, _worker_select_columns)
    except Exception as exc:  # contained to the file, like everything its bytes provoke
        return f"{decoded.name}: cannot normalize ({type(exc).__name__}: {exc})"


def _scan_group(paths: Sequence[Path]) -> GroupScan:
    """Scan a group of files. S3 delivery objects are glanced at through the pre-filter, when the detectors
    allow one; the other files are decoded in full. Whatever one file's bytes provoke is that file's error;
    the group goes on."""
    glanced: dict[int, Glanced] = {}
    if _worker_prefilter is not None and _worker_prefilter.worth:
        for i, path in enumerate(paths):
            look = _glance(path, _worker_prefilter)
            if look is not None:
                glanced[i] = look
    try:
        seen = _scan_glanced([str(paths[i]) for i in glanced], list(glanced.values()))
    except Exception:  # what normalizing them provokes is found, and named, file by file the usual way
        seen = GroupScan(None, None, [])
        glanced.clear()
    decoded = [p for i, p in enumerate(paths) if i not in glanced]
    if not decoded:
        return seen
    rest = GroupScan.of(_scan_decoded(decoded))
    return GroupScan.interleaved(seen, rest, [i in glanced for i in range(len(paths))]) if glanced else rest


def _glance(path: Path, prefilter: Prefilter) -> Glanced | None:
    """A delivery object's glance, or None for a file to read the usual way (which reports what is wrong)."""
    try:
        return glance(read_bytes(path, _worker_limits), str(path), _worker_limits, prefilter)
    except Exception:  # the usual way contains and names it
        return None


def _scan_glanced(names: Sequence[str], glanced: Sequence[Glanced]) -> GroupScan:
    """Normalize the wanted records of glanced files all at once (Arrow's costs are per call, not per row),
    into one batch, in file order: each file's part says how many rows are its. Where the pre-filter wants more
    than the selects choose (a Sigma rule's needs), the selects first narrow them to the candidates. The record
    size limit applies to the candidates only: the others are counted, never built or judged."""
    if not glanced:
        return GroupScan(None, None, [])
    wanted = [r for g in glanced for r in g.wanted]
    where = [w for g in glanced for w in g.where]
    owner = np.repeat(np.arange(len(glanced)), [len(g.wanted) for g in glanced])
    if _worker_prefilter is not None and not _worker_prefilter.exact:
        chosen = _candidates(wanted, where)
        wanted, where, owner = [wanted[i] for i in chosen], [where[i] for i in chosen], owner[chosen]
    uris = pc.take(pa.array(names, pa.string()), pa.array(owner, pa.int64()))
    full = to_batch(wanted, uris, where.__getitem__, _worker_columns, max_record=_worker_limits.max_record)
    kept = np.ones(len(wanted), dtype=bool) if full.kept is None else full.kept
    rows_of = np.bincount(owner[kept], minlength=len(glanced))
    refused_by: list[list[BadRecord]] = [[] for _ in glanced]
    for row, bad in zip(np.flatnonzero(~kept).tolist(), full.bad, strict=True):
        refused_by[owner[row]].append(bad)
    held: list[set[str | None]] = [set() for _ in glanced]
    out: list[set[str | None]] = [set() for _ in glanced]
    if full.bad:  # a candidate refused in full (too large) is not an event of the scan, unless a copy of it is
        for record, k, o in zip(wanted, kept.tolist(), owner.tolist(), strict=True):
            (held if k else out)[o].add(record.eventID)
    files, ids = [], []
    for i, (name, g) in enumerate(zip(names, glanced, strict=True)):
        kept_ids, gone = g.event_ids, out[i] - held[i]
        if gone:
            kept_ids = pc.filter(kept_ids, pc.invert(pc.is_in(kept_ids, pa.array(list(gone), pa.string()))))
        ids.append(kept_ids)
        error = describe(name, g.bad + refused_by[i])
        files.append(FileScan(g.records, error, g.coerced, candidates=int(rows_of[i])))
    return GroupScan(full.batch if full.batch.num_rows else None, pa.concat_arrays(ids), files)


def _candidates(records: list[Record], where: list[str]) -> np.ndarray:
    """Which of these (usable) records some detector's select chooses, from their select columns."""
    keys = to_batch(records, "", where.__getitem__, _worker_select_columns)
    rows = np.arange(len(records)) if keys.kept is None else np.flatnonzero(keys.kept)
    try:
        mask = candidate_mask(pa.Table.from_batches([keys.batch]), _worker_detectors)
    except Exception:  # a detector's select failed: every row is a candidate, and the detector reports it
        mask = np.ones(len(rows), dtype=bool)
    chosen: np.ndarray = rows[mask]
    return chosen


def _scan_decoded(paths: Sequence[Path]) -> list[Part]:
    """Scan a group of files decoded in full: select over all of them at once (pandas costs are per call, not
    per row), then normalize in full only the candidate records of each file. The record size limit applies
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
        chosen = np.flatnonzero(mask[offset : offset + len(k.records)])
        offset += len(k.records)
        rows = (chosen if k.kept is None else np.flatnonzero(k.kept)[chosen]).tolist()  # places in the file
        picked = [d.records[i] for i in rows]
        try:
            full = d.normalize(rows, _worker_columns) if rows else Normalized(empty_batch(_worker_columns), [], [])
        except Exception as exc:
            scans.append(_failed(f"{d.name}: cannot normalize ({type(exc).__name__}: {exc})"))
            continue
        error = describe(d.name, d.bad + k.bad + full.bad)
        ids = k.batch.column("event_id")
        if full.bad:  # a candidate refused in full (too large) is not an event of the scan either
            kept = {r.eventID for r in full.records}
            refused = pa.array([r.eventID for r in picked if r.eventID not in kept], pa.string())
            ids = pc.filter(ids, pc.invert(pc.is_in(ids, refused)))
        records = len(d.records) + len(d.bad)
        scans.append((full.batch, ids, FileScan(records, error, d.coerced, d.absent)))
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
    groups: list[list[Found]], workers: int, setup: tuple[tuple[type[Detector], ...], Limits, bool]
) -> Iterator[tuple[list[Found], GroupScan]]:
    """Groups scanned in worker processes; the files of a group whose worker died are scanned again
    one at a time, and one that kills its worker again is reported unreadable."""
    pool = partial(
        bounded_map,
        pool=Pool("fork", initializer=_init_worker, initargs=setup, cpu_seconds=setup[1].max_cpu_seconds),
    )
    crashed: list[Found] = []
    for group, result in zip(groups, pool(_scan_group, map(_paths, groups), workers, workers * 2), strict=True):
        if isinstance(result, Crashed):
            crashed += group
        else:
            yield group, result
    for found, alone in zip(crashed, pool(_scan_group, ([f.path] for f in crashed), 1, 1), strict=True):
        if isinstance(alone, Crashed):
            yield [found], GroupScan.of([_failed(f"{found.path}: {alone.reason} while decoding it alone")])
        else:
            yield [found], alone


def _first_copies(candidates: pa.Table) -> pa.Table:
    """The candidates in time order (then id), each event once: its first copy in file order. Sorted in Arrow
    and taken once: pandas would move every column twice, half a second for a Sigma folder's 100k rows."""
    order = pc.sort_indices(candidates, [("event_time", "ascending"), ("event_id", "ascending")])  # stable
    copies = candidates.column("event_id").take(order).to_pandas().duplicated().to_numpy()
    return candidates.take(order.filter(pa.array(~copies)))


_ACCOUNT_FOLDER = re.compile(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/")  # a trail's, or an organization's


def _delivering(files: Sequence[Found], events: pd.DataFrame) -> set[str]:
    """The accounts these files deliver: their trail's account folders, and the accounts events are recorded in."""
    folders = {m[1] for f in files if (m := _ACCOUNT_FOLDER.search(f.path.as_posix()))}
    recorded = set(events["recipient_account_id"].dropna()) if "recipient_account_id" in events else set()
    return folders | recorded


def _distinct(ids: pa.ChunkedArray) -> int:
    """How many distinct ids. The hash table lives in the system allocator: Arrow's default one (mimalloc) takes
    about 0.5 s to hand out a million ids' worth of fresh memory, the system's 0.2 s."""
    return len(pc.unique(ids, memory_pool=pa.system_memory_pool())) if len(ids) else 0


def scan(
    paths: Sequence[str | Path],
    detectors: Sequence[type[Detector]],
    ctx: Context,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    lake: Lake | None = None,
    limits: Limits = Limits(),
    prefilter: bool = True,
) -> ScanResult:
    """Scan files and directories; `progress(bytes_done, bytes_total)` is called as files finish.

    `workers` is the number of parsing processes: None picks one per core for large inputs and
    none (parse in this process) for small ones. A `lake` is the history stateful detectors
    compare with (the days before the scanned events); without one every key is new. `prefilter`
    False decodes every record in full, as when a detector allows no pre-filter (`monitor.detect.prefilter`).
    Without an account inventory (`organization_learned`), the accounts the files deliver are the organization's,
    as the service takes them: their trail's account folders and the accounts the candidates are recorded in.
    """
    files, errors = discover(paths)
    total, done = sum(f.size for f in files), 0
    if workers is None:  # automatic: a pool only when the input is worth its start-up
        workers = (os.cpu_count() or 1) if total >= _SMALL_INPUT else 1
    groups = _groups(files, min(_GROUP_BYTES, total // (workers * 4) + 1))
    results: list[GroupScan] = []
    setup = (tuple(detectors), limits, prefilter)
    if workers <= 1 or len(groups) < 2:
        _init_worker(*setup)
        scans: Iterable[tuple[list[Found], GroupScan]] = ((g, _scan_group(_paths(g))) for g in groups)
    else:
        scans = _in_workers(groups, workers, setup)
    for group, group_scan in scans:
        results.append(group_scan)
        done += sum(f.size for f in group)
        if progress:
            progress(done, total)
    parts = [f for r in results for f in r.files]
    errors += [f.error for f in parts if f.error]
    ids = pa.chunked_array([r.event_ids for r in results if r.event_ids is not None], pa.string())
    with ThreadPoolExecutor(1) as beside:  # Arrow counts without the GIL, on the core the detectors leave idle
        distinct = beside.submit(_distinct, ids)
        candidates = pa.Table.from_batches(
            [r.candidates for r in results if r.candidates is not None],
            schema=empty_batch(needed_columns(detectors)).schema,
        )
        events = _first_copies(candidates).to_pandas()
        if ctx.settings.organization_learned:
            ctx = joining_organization(ctx, _delivering(files, events))
        findings, detector_errors = run_detectors(
            events, detectors, ctx, baseline=partial(baselines.build, lake) if lake else None
        )
        unique = distinct.result()
    return ScanResult(
        findings,
        files=len(files),
        records=sum(f.records for f in parts),
        events=unique,
        duplicates=len(ids) - unique,
        errors=errors,
        detector_errors=detector_errors,
        coerced=sum((Counter(f.coerced) for f in parts), Counter()),
        blind_spots=blind_spots(Counter(name for f in parts for name in f.absent), detectors),
    )
