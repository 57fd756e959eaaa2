"""Detection over the lake: a time range of events -> every detector -> the findings outbox.

The range is widened to whole detector windows, so a range cut anywhere groups events exactly as
a scan of the same files does and produces the same finding ids; a finding found again by an
overlapping or later run grows in the outbox instead of becoming a new one. Detectors that judge
an event by its neighbours get their `lookbehind` and `lookahead` of events around the range as
context and, when stateful, a baseline of their history up to where their frame starts
(`monitor.detect.baselines`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core import registry
from detectors.core.base import Context, Detector, empty_findings
from monitor.detect import baselines, incidents
from monitor.detect.detection import candidate_mask, joining_organization, key_columns, needed_columns, run_detectors
from monitor.detect.links import Linking
from monitor.ingest.events import utc
from monitor.ingest.run import Options, Summary, from_sources
from monitor.ingest.sources.settings import SourceSettings
from monitor.lake import Lake, UnreadableFile, leaving_out
from monitor.outbox.finding import Finding, from_frame
from monitor.store.state import State


@dataclass
class DetectResult:
    findings: pd.DataFrame
    events: int
    new: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    detector_errors: list[str] = field(default_factory=list)  # and lake files left out: either way, events unjudged
    suppressed: list[str] = field(default_factory=list)
    incidents: set[str] = field(default_factory=set)  # the incidents its findings are in (told again)

    def report(self, errors: Iterable[str]) -> None:
        """Each error once, however many slices met it."""
        self.detector_errors += [e for e in dict.fromkeys(errors) if e not in self.detector_errors]


def whole_windows(start: datetime, end: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The range widened to the UTC-aligned windows it touches."""
    epoch = datetime(1970, 1, 1, tzinfo=start.tzinfo)
    first = epoch + (start - epoch) // window * window
    last = epoch + -((epoch - end) // window) * window
    return first, last


def day_slices(
    start: datetime, end: datetime, length: timedelta = timedelta(days=1)
) -> list[tuple[datetime, datetime]]:
    """The range cut at UTC multiples of `length` (a day by default, or a divisor of one): detection
    handles one slice at a time, so memory holds a slice's events and the detectors' context around
    it (up to 13 hours with the shipped catalog), whatever the range."""
    if timedelta(days=1) % length:
        raise ValueError(f"a slice of {length} does not divide a day")
    cuts, moment = [], start
    while moment < end:
        boundary = (
            datetime.combine(moment.date(), datetime.min.time(), UTC)
            + ((moment - datetime.combine(moment.date(), datetime.min.time(), UTC)) // length + 1) * length
        )
        cuts.append((moment, min(boundary, end)))
        moment = boundary
    return cuts


@dataclass
class Slice:
    """One slice's findings, the events judged in it, and the detectors that failed on it."""

    findings: pd.DataFrame
    events: int
    errors: list[str]


Baseline = Callable[[Detector, Context, datetime, datetime | None], pd.DataFrame]


def occupied(
    slices: list[tuple[datetime, datetime]], days: set[date], detectors: Sequence[type[Detector]]
) -> list[tuple[datetime, datetime]]:
    """The slices whose events, or the context the detectors read around them, lie on a day the lake holds: a
    range's empty stretches cost nothing (ten years holding a month read a month)."""
    behind = max((d.lookbehind for d in detectors), default=timedelta(0))
    ahead = max((d.lookahead for d in detectors), default=timedelta(0))
    held = sorted(days)

    def touches(since: datetime, until: datetime) -> bool:
        first, last = (since - behind).date(), (until + ahead - timedelta(microseconds=1)).date()
        at = bisect.bisect_left(held, first)  # the first day held on or after the context's first day
        return at < len(held) and held[at] <= last

    return [s for s in slices if touches(*s)]


def frame(lake: Lake, start: datetime, end: datetime, columns: list[str]) -> pd.DataFrame:
    """The lake's events from `start` to `end` as detectors take them (see `in_order`)."""
    return in_order(lake.read(start, end, columns))


def in_order(table: pa.Table) -> pd.DataFrame:
    """Events in time order (then by id, so that any slicing orders ties alike), numbered from 0."""
    events: pd.DataFrame = table.sort_by([("event_time", "ascending"), ("event_id", "ascending")]).to_pandas()
    return events  # sorted by Arrow: twice as fast as pandas on its string columns


def detect_slice(
    lake: Lake,
    detectors: Sequence[type[Detector]],
    ctx: Context,
    since: datetime,
    until: datetime,
    baseline: Baseline | None = None,
) -> Slice:
    """The findings of one slice of time: its events read with the detectors' context on each side,
    and each stateful detector's baseline as of where its frame starts (by default from the lake).

    Only the events some detector selects are read in full: a detector judges nothing else (`select` is a
    superset of its hits), so its findings are the same, and a day costs its select columns."""
    behind = max((d.lookbehind for d in detectors), default=timedelta(0))
    ahead = max((d.lookahead for d in detectors), default=timedelta(0))
    instances = [cls() for cls in detectors]
    judged = 0

    def chosen(keyed: pa.Table) -> np.ndarray:
        nonlocal judged
        times = keyed["event_time"]
        kind = times.type
        judged = pc.sum(
            pc.and_(pc.greater_equal(times, pa.scalar(since, kind)), pc.less(times, pa.scalar(until, kind)))
        )
        judged = judged.as_py() or 0
        try:
            return candidate_mask(keyed, instances)
        except Exception:  # a detector whose select fails reads everything, and reports its failure when it runs
            return np.ones(keyed.num_rows, dtype=bool)

    with leaving_out() as missed:  # their baselines' files too
        table = lake.candidates(
            since - behind, until + ahead, key_columns(detectors), needed_columns(detectors), chosen
        )
        events = in_order(table)
        findings, errors = run_detectors(
            events, detectors, ctx, since, until, baseline or partial(baselines.build, lake)
        )
    return Slice(findings, judged, [*errors, *_left_out(missed)])


def _left_out(missed: Mapping[str, UnreadableFile]) -> list[str]:
    return [f"{error}; left out" for error in missed.values()]


# how slices are run: one after the other here (memory stays one day's), or on a cluster (monitor.detect.dask_engine)
Engine = Callable[[Lake, Sequence[type[Detector]], Context, list[tuple[datetime, datetime]]], Iterator[Slice]]


def local_engine(
    lake: Lake, detectors: Sequence[type[Detector]], ctx: Context, slices: list[tuple[datetime, datetime]]
) -> Iterator[Slice]:
    for since, until in slices:
        yield detect_slice(lake, detectors, ctx, since, until)


@dataclass(frozen=True)
class Plan:
    """How detection runs and where its findings go: the sinks new findings are queued for, what suppresses one,
    the engine and the slice length, a backfill's batch; and a cycle's lookback and tracked account/region pairs."""

    sinks: Sequence[str] = ()
    suppressed_by: Callable[[Finding], str | None] | None = None
    engine: Engine = local_engine
    slice_length: timedelta = timedelta(days=1)
    batch: str | None = None
    lookback: timedelta = timedelta(days=2)
    max_pairs: int = 10_000
    linking: Linking | None = field(default_factory=Linking)  # findings linked into incidents (None: not)


def detect(
    lake: Lake,
    state: State,
    detectors: Sequence[type[Detector]],
    ctx: Context,
    since: datetime,
    until: datetime,
    plan: Plan = Plan(),
) -> DetectResult:
    """Run the detectors over the lake between since and until, a slice (by default a day) at a
    time, and store the findings (with deliveries to the plan's sinks, in its batch for a backfill's
    summary) as each slice is done."""
    widest = max((d.window for d in detectors), default=timedelta(hours=1))
    if plan.slice_length % widest:
        raise ValueError(f"a slice of {plan.slice_length} would cut a detector window of {widest}")
    start, end = whole_windows(utc(since), utc(until), widest)
    result = DetectResult(empty_findings(), 0)
    found = []
    catalog = {d.id: d for d in (*registry.BUILTIN, *detectors)}
    slices = occupied(day_slices(start, end, plan.slice_length), lake.partition_days(), detectors)
    with leaving_out() as missed:  # linking's reads: the slices report their own, on a cluster too
        if ctx.settings.organization_learned:  # as a cycle and a scan take it: the accounts the range delivers
            ctx = joining_organization(ctx, lake.accounts(start, end))
        for part in plan.engine(lake, detectors, ctx, slices):
            findings = list(from_frame(part.findings))
            stored = state.store_findings(findings, plan.sinks, plan.suppressed_by, plan.batch)
            if plan.linking is not None:
                result.incidents.update(incidents.link(lake, state, findings, plan.linking, catalog))
            result.events += part.events
            result.new += stored.new
            result.grown += stored.grown
            result.suppressed += stored.suppressed
            result.report(part.errors)
            found.append(part.findings)
    result.report(_left_out(missed))
    found = [f for f in found if len(f)]
    if found:
        result.findings = pd.concat(found, ignore_index=True).sort_values(["event_time", "detector", "finding_id"])
        result.findings = result.findings.reset_index(drop=True)
    return result


@dataclass
class CycleResult:
    ingest: Summary
    detect: DetectResult | None  # None: nothing new was ingested
    untracked: int = 0  # account/region pairs not remembered: over the limit


def cycle(
    sources: Sequence[SourceSettings],
    lake: Lake,
    state: State,
    detectors: Sequence[type[Detector]],
    ctx: Context,
    plan: Plan = Plan(),
    options: Options = Options(),
) -> CycleResult:
    """One pass of the flow: ingest what is new, then detect over the windows the new events touch.

    New events are those ingested since the previous cycle's detection (by `ingested_at`), so late
    deliveries are detected with the events already in their windows, and a cycle with nothing
    new reads nothing more than four columns of the lookback. The newest event per account and
    region is recorded for the ingestion lag and silence checks (at most `plan.max_pairs` pairs, and
    never from an event dated after it was ingested: a forged future time would hide a real
    silence). The options' `stop` ends ingestion early (what is in flight is committed); detection still
    covers everything ingested.
    """
    started = utc(ctx.now)  # the detector clock (may be injected); the lookback is measured from it
    previous = state.cursor("pipeline", "detect", "")
    ingested = from_sources(sources, lake, state, options=options)
    # Everything ingested before this moment is detected by this cycle; the cursor moves here only when
    # the cycle completes, so a crash makes the next cycle detect the same events again (idempotent).
    marker = datetime.now(UTC)
    columns = ["event_time", "ingested_at", "recipient_account_id", "aws_region"]
    with leaving_out() as missed:
        recent = lake.read(started - plan.lookback, started + timedelta(days=1), columns)
    if previous is not None:
        recent = recent.filter(
            pc.greater_equal(
                recent["ingested_at"], pa.scalar(datetime.fromisoformat(previous), recent["ingested_at"].type)
            )
        )
    result, untracked = None, 0
    if recent.num_rows:
        untracked = _record_activity(state, recent, started, plan.max_pairs)
        if ctx.settings.organization_learned:  # this cycle's accounts too, before its first detection
            ctx = joining_organization(ctx, pc.unique(recent["recipient_account_id"]).to_pylist())
        first, last = pc.min(recent["event_time"]).as_py(), pc.max(recent["event_time"]).as_py()
        result = detect(lake, state, detectors, ctx, first, last + timedelta(microseconds=1), plan)
    if missed:  # reported even when nothing readable is new: the file left out may hold what is
        result = result or DetectResult(empty_findings(), 0)
        result.report(_left_out(missed))
    if result is None or not result.detector_errors:  # a failed detector sees the same events next cycle
        state.set_cursor("pipeline", "detect", "", marker.isoformat())
    return CycleResult(ingested, result, untracked)


_CLOCK_SKEW = timedelta(minutes=5)


def _record_activity(state: State, recent: pa.Table, now: datetime, limit: int) -> int:
    """The newest event per account and region, from events dated no later than they were ingested (or than
    the monitor's clock says it is)."""
    skew = pa.scalar(_CLOCK_SKEW, pa.duration("us"))
    received = pc.less_equal(recent["event_time"], pc.add(recent["ingested_at"], skew))
    present = pc.less_equal(recent["event_time"], pa.scalar(now + _CLOCK_SKEW, recent["event_time"].type))
    timely = recent.filter(pc.and_(received, present))
    newest = timely.group_by(["recipient_account_id", "aws_region"]).aggregate([("event_time", "max")])
    keys = ("recipient_account_id", "aws_region", "event_time_max")
    rows = zip(*(newest[c].to_pylist() for c in keys), strict=True)
    return state.record_activity(((a, r, t) for a, r, t in rows if a and r), now, limit)
