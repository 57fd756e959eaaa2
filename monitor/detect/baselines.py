"""Baselines for stateful detectors, built from the lake a day at a time and kept beside it.

A whole day's summary is stored once, at `<lake>/baselines/<detector>/date=YYYY-MM-DD/<fp>.parquet`,
where the fingerprint covers the day's event files (they are immutable, so a late file or a
compaction changes the set) and what shapes the keys (the detector's keys, TrailGuard's own
roles). A cycle therefore reads only the part of today before its range plus the summaries,
never 30 days of events; a stale summary is never used, and a lake that cannot be written only
loses the cache. Readers of the lake ignore the folder: events live under `<lake>/events`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from detectors.core.base import Context, Detector, merge, summarize
from monitor.detect.detection import key_columns
from monitor.ingest.events import utc
from monitor.lake import UNREADABLE, Lake, leaving_out


def build(
    lake: Lake,
    detector: Detector,
    ctx: Context,
    until: datetime,
    since: datetime | None = None,
    summaries: Mapping[date, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The detector's baseline: its history up to `until` (where its frame of events starts), in the whole
    days from its window before `since` (the slice judged; by default `until`) and `until`'s day so far.

    Counting the window from the slice, not from where its context starts, gives every slicing of a
    day the same history. `summaries` are whole days' summaries already at hand (a cluster computes
    them once and hands them to every task); the other days come from the lake's cache, or are built there.
    """
    assert detector.history is not None, f"{detector.id} keeps no history"
    until = utc(until)
    today = datetime.combine(until.date(), time(), UTC)
    known = summaries or {}
    parts = [
        known[day] if day in known else day_summary(lake, detector, ctx, day)
        for day in history_days(detector, ctx, until, since)
    ]
    if until > today:
        parts.append(_summary(lake, detector, ctx, today, until))
    return merge(parts, detector.history.keys)


def history_days(detector: Detector, ctx: Context, until: datetime, since: datetime | None = None) -> list[date]:
    """The whole days a baseline as of `until` summarizes, for the slice that starts at `since`."""
    first = utc(since or until).date() - timedelta(days=detector.history_days(ctx))
    return [first + timedelta(days=n) for n in range((utc(until).date() - first).days)]


def _summary(lake: Lake, detector: Detector, ctx: Context, start: datetime, end: datetime) -> pd.DataFrame:
    """The history rows are the detector's selected events: only those are read in full."""
    assert detector.history is not None

    def chosen(keyed: pa.Table) -> np.ndarray:
        return detector.select(keyed.to_pandas()).fillna(False).to_numpy(dtype=bool)

    events = lake.candidates(start, end, key_columns([type(detector)]), list(detector.reads()), chosen).to_pandas()
    return summarize(detector.baseline_rows(events, ctx), detector.history.keys)


def day_summary(lake: Lake, detector: Detector, ctx: Context, day: date) -> pd.DataFrame:
    """One whole day's summary: from the cache when the day's files are the ones it was built from."""
    files = lake.files(day)
    assert detector.history is not None
    if not files:
        return summarize(pd.DataFrame(), detector.history.keys)
    folder = f"{lake.root}/baselines/{detector.id}/date={day.isoformat()}"
    text = "\x1f".join([detector.id, *detector.history.keys, *sorted(ctx.settings.monitor_role_arns), *files])
    wanted = f"{folder}/{hashlib.sha256(text.encode()).hexdigest()[:32]}.parquet"
    cached = lake.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    if any(info.path == wanted for info in cached):
        try:
            stored: pd.DataFrame = pq.read_table(wanted, filesystem=lake.fs).to_pandas()
            return stored
        except UNREADABLE:  # a torn or emptied entry is a miss: built again below, and written over
            pass
    start = datetime.combine(day, time(), UTC)
    with leaving_out() as missed:
        summary = _summary(lake, detector, ctx, start, start + timedelta(days=1))
    if missed:  # the day's events in part: kept out of the cache, so that a file read again counts
        return summary
    try:
        lake.write_file(pa.Table.from_pandas(summary, preserve_index=False), folder, wanted.rpartition("/")[2])
        for stale in cached:
            if stale.is_file and stale.path != wanted:
                lake.fs.delete_file(stale.path)
    except OSError:
        pass  # a read-only lake (a notebook on someone else's) only loses the cache
    return summary
