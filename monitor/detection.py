"""Running detectors over a frame of events: shared by `scan`, the lake pipeline and notebooks."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from detectors.base import Context, Detector, empty_findings


def needed_columns(detectors: Sequence[type[Detector]]) -> list[str]:
    return list(dict.fromkeys(c for d in detectors for c in d.reads()))


def select_columns(detectors: Sequence[type[Detector]]) -> list[str]:
    return list(dict.fromkeys(["event_id", "event_time", *(c for d in detectors for c in d.select_columns)]))


def candidate_mask(frame: pd.DataFrame, detectors: Sequence[Detector]) -> pd.Series:
    mask = pd.Series(False, index=frame.index)
    for det in detectors:
        mask |= det.select(frame).fillna(False).astype(bool)
    return mask


def run_detectors(
    events: pd.DataFrame, detectors: Sequence[type[Detector]], ctx: Context
) -> tuple[pd.DataFrame, list[str]]:
    """Every detector over the same frame; one that raises is reported and the others still run."""
    found, errors = [], []
    for cls in detectors:
        try:
            found.append(cls().detect(events, ctx))
        except Exception as exc:  # a broken detector must not hide the others' findings
            errors.append(f"detector {cls.id} failed: {type(exc).__name__}: {exc}")
    found = [f for f in found if len(f)]
    if not found:
        return empty_findings(), errors
    findings = pd.concat(found, ignore_index=True).sort_values(["event_time", "detector", "finding_id"])
    return findings.reset_index(drop=True), errors
