"""Detection over the lake: a time range of events -> every detector -> the findings outbox.

The range is widened to whole detector windows, so a range cut anywhere groups events exactly as
a scan of the same files does and produces the same finding ids; a finding found again by an
overlapping or later run grows in the outbox instead of becoming a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from detectors.base import Context, Detector
from monitor.alerts.jsonl import records
from monitor.detection import needed_columns, run_detectors
from monitor.events import utc
from monitor.lake import Lake
from monitor.state import State


@dataclass
class DetectResult:
    findings: pd.DataFrame
    events: int
    new: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    detector_errors: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)


def whole_windows(start: datetime, end: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The range widened to the UTC-aligned windows it touches."""
    epoch = datetime(1970, 1, 1, tzinfo=start.tzinfo)
    first = epoch + (start - epoch) // window * window
    last = epoch + -((epoch - end) // window) * window
    return first, last


def detect(
    lake: Lake,
    state: State,
    detectors: Sequence[type[Detector]],
    ctx: Context,
    since: datetime,
    until: datetime,
    sinks: Sequence[str] = (),
    suppressed_by: Callable[[dict[str, Any]], str | None] | None = None,
) -> DetectResult:
    """Run the detectors over the lake between since and until and store the findings (with deliveries to `sinks`)."""
    widest = max((d.window for d in detectors), default=timedelta(hours=1))
    start, end = whole_windows(utc(since), utc(until), widest)
    events = lake.read(start, end, needed_columns(detectors)).to_pandas()
    events = events.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
    findings, errors = run_detectors(events, detectors, ctx)
    stored = state.store_findings(records(findings), sinks, suppressed_by)
    return DetectResult(findings, len(events), stored.new, stored.grown, errors, stored.suppressed)
