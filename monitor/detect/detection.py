"""Running detectors over a frame of events: shared by `scan`, the lake pipeline and notebooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core.base import Context, Detector, empty_findings
from monitor.ingest.exports import SOURCES


def joining_organization(ctx: Context, delivering: Iterable[str | None]) -> Context:
    """Without an account inventory, the organization is taken to be the accounts that deliver events (a
    trail's account folders, the accounts events are recorded in): these join it, for a cycle, a detect and a
    scan alike, so that role use between them is judged the same by each."""
    org = ctx.settings.organization_accounts | {account for account in delivering if account}
    return replace(ctx, settings=replace(ctx.settings, organization_accounts=org))


def needed_columns(detectors: Sequence[type[Detector]]) -> list[str]:
    return list(dict.fromkeys(c for d in detectors for c in d.reads()))


def key_columns(detectors: Sequence[type[Detector]]) -> list[str]:
    """What choosing the candidates reads of every event: its time and the detectors' select columns."""
    return list(dict.fromkeys(["event_time", *(c for d in detectors for c in d.select_columns)]))


def select_columns(detectors: Sequence[type[Detector]]) -> list[str]:
    """The key columns and the event id, which a scan counts every event by."""
    return list(dict.fromkeys(["event_id", *key_columns(detectors)]))


def blind_spots(absent: Mapping[str, int], detectors: Sequence[type[Detector]]) -> list[str]:
    """What inputs of a shape that cannot carry a field (a table export without that column) hide, per field:
    the detectors whose own columns come from it."""
    lines = []
    for name, inputs in sorted(absent.items()):
        blind = [d.id for d in detectors if any(name in SOURCES.get(c, ()) for c in d.columns)]
        if blind:
            lines.append(f"{inputs} inputs have no {name}: a blind spot for {', '.join(blind)}")
    return lines


def candidate_mask(table: pa.Table, detectors: Sequence[Detector]) -> np.ndarray:
    """Which rows some detector selects. A select is a function of each row's select columns alone, so it is
    asked once per distinct combination of their values (a few hundred in a busy day of a million events),
    and each row takes its combination's answer."""
    columns = list(dict.fromkeys(c for d in detectors for c in d.select_columns))
    combination, size = np.zeros(table.num_rows, dtype=np.int64), 1
    for name in columns:  # each row's combination as one number: its columns' codes in mixed radix
        encoded = pc.dictionary_encode(table[name]).combine_chunks()
        width = len(encoded.dictionary) + 1  # and one for null
        if size * width >= 1 << 62:  # renumber what is held so far before it overflows
            combination, held = pd.factorize(combination)
            size = len(held)
        codes = pc.fill_null(encoded.indices, width - 1).to_numpy(zero_copy_only=False)
        combination, size = combination * width + codes, size * width
    each, held = pd.factorize(combination)  # hashed: one pass, not a sort
    first = np.empty(len(held), dtype=np.int64)
    first[each[::-1]] = np.arange(table.num_rows)[::-1]  # the last write wins: each combination's first row
    distinct = table.take(pa.array(first)).to_pandas()
    mask = pd.Series(False, index=distinct.index)
    for det in detectors:
        mask |= det.select(distinct).fillna(False).astype(bool)
    chosen: np.ndarray = mask.to_numpy(dtype=bool)[each]
    return chosen


def run_detectors(
    events: pd.DataFrame,
    detectors: Sequence[type[Detector]],
    ctx: Context,
    since: datetime | None = None,
    until: datetime | None = None,
    baseline: Callable[[Detector, Context, datetime, datetime | None], pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Every detector over the same frame; one that raises is reported and the others still run.

    With `since` and `until`, only the findings of that range are wanted and the events around it
    are context: each detector sees its own `lookbehind` and `lookahead` of them.
    `baseline(detector, ctx, until, since)` gives a stateful detector the summary of its history
    before its frame starts, its window counted from `since` (without it, every key is new).
    """
    found, errors = [], []
    frames: dict[tuple[timedelta, timedelta], pd.DataFrame] = {}  # detectors with the same context share one frame
    for cls in detectors:
        try:
            det = cls()
            frame = events
            if since is not None and until is not None:
                span = (cls.lookbehind, cls.lookahead)
                if span not in frames:
                    times = events["event_time"]
                    frames[span] = events[times.ge(since - cls.lookbehind) & times.lt(until + cls.lookahead)]
                frame = frames[span]
            if baseline is not None and det.history is not None and det.select(frame).fillna(False).any():
                # history is what came before the frame: where its range starts (the frame may hold only the
                # events some detector selects), or without a range its first event's window
                start = since - cls.lookbehind if since is not None else frame["event_time"].min().floor(cls.window)
                ctx = replace(ctx, baseline=baseline(det, ctx, start, since))
            found.append(det.detect(frame, ctx, since, until))
        except Exception as exc:  # a broken detector must not hide the others' findings
            errors.append(f"detector {cls.id} failed: {type(exc).__name__}: {exc}")
    found = [f for f in found if len(f)]
    if not found:
        return empty_findings(), errors
    findings = pd.concat(found, ignore_index=True).sort_values(["event_time", "detector", "finding_id"])
    return findings.reset_index(drop=True), errors
