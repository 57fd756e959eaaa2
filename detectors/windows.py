"""Time-window helpers shared by detectors that count events (bursts, brute force, enumeration)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd


def burst_close(frame: pd.DataFrame, key: str, threshold: int, window: timedelta) -> pd.Series:
    """For each row inside a burst, when its burst reached the threshold; NaT for the other rows.

    A burst is at least `threshold` rows of one key within less than `window`. A row belongs to
    one when a row of its key at most `window` later closes such a span, so every row of the
    burst is marked, not only those after the threshold; the answer needs `window` of events on
    each side of a row, never more, so any cut of the events with that margin agrees. Grouping a
    burst by its closing time gives one finding for it even when it spans a window boundary.
    """
    if frame.empty:
        return pd.Series(pd.NaT, index=frame.index, dtype=frame["event_time"].dtype)
    ordered = frame[[key, "event_time"]].sort_values([key, "event_time"], kind="stable")
    keys = ordered[key].fillna("").to_numpy()
    ones = pd.Series(1, index=pd.DatetimeIndex(ordered["event_time"]))
    counts = ones.groupby(keys, sort=False).rolling(window).sum().to_numpy()
    closing = ordered["event_time"].where(counts >= threshold)
    next_close = closing.groupby(keys, sort=False).bfill()
    return next_close.where(next_close - ordered["event_time"] < window).reindex(frame.index)
