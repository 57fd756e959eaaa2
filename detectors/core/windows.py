"""Time-window helpers shared by detectors that count events (bursts, brute force, enumeration)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from detectors.core.lazy import np, pd


def burst_close(
    frame: pd.DataFrame, key: str, threshold: int, window: timedelta, distinct: str | None = None
) -> pd.Series:
    """For each row inside a burst, when its burst reached the threshold; NaT for the other rows.

    A burst is at least `threshold` rows of one key within less than `window` (or, with
    `distinct`, that many different values of that column: password spraying counts users, not
    attempts). A row belongs to one when a row of its key at most `window` later closes such a
    span, so every row of the burst is marked, not only those after the threshold; the answer
    needs `window` of events on each side of a row, never more, so any cut of the events with
    that margin agrees. Grouping a burst by its closing time gives one finding for it even when
    it spans a window boundary.
    """
    if frame.empty:
        return pd.Series(pd.NaT, index=frame.index, dtype=frame["event_time"].dtype)
    ordered = frame.sort_values([key, "event_time"], kind="stable")
    keys = ordered[key].fillna("").to_numpy()
    if distinct is None:
        ones = pd.Series(1, index=pd.DatetimeIndex(ordered["event_time"]))
        counts = ones.groupby(keys, sort=False).rolling(window).sum().to_numpy()
    else:
        counts = _distinct_counts(keys, ordered["event_time"], ordered[distinct].fillna("").to_numpy(), window)
    closing = ordered["event_time"].where(counts >= threshold)
    next_close = closing.groupby(keys, sort=False).bfill()
    return next_close.where(next_close - ordered["event_time"] < window).reindex(frame.index)


def _distinct_counts(keys: np.ndarray, times: pd.Series, values: np.ndarray, window: timedelta) -> np.ndarray:
    """Per row (sorted by key and time): how many different values its key had in (time - window, time]."""
    counts = np.zeros(len(keys), dtype=np.int64)
    moments = list(times)
    seen: Counter[object] = Counter()
    start = 0
    for i in range(len(keys)):
        if i and keys[i] != keys[i - 1]:
            seen.clear()
            start = i
        seen[values[i]] += 1
        while moments[start] <= moments[i] - window:
            seen[values[start]] -= 1
            if not seen[values[start]]:
                del seen[values[start]]
            start += 1
        counts[i] = len(seen)
    return counts
