"""Findings as JSON Lines: one object per finding with every field of the findings contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson
import pandas as pd

from detectors.base import FINDING_COLUMNS


def _iso(value: pd.Timestamp) -> str:
    return value.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def records(findings: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Findings as plain dicts: times in ISO-8601 UTC, `details` as an object, nulls as null."""
    for row in findings.itertuples(index=False):
        item = dict(zip(FINDING_COLUMNS, (getattr(row, c) for c in FINDING_COLUMNS), strict=True))
        item["event_time"] = _iso(item["event_time"])
        item["last_seen"] = _iso(item["last_seen"])
        item["event_ids"] = list(item["event_ids"])
        item["event_names"] = list(item["event_names"])
        item["details"] = orjson.loads(item["details"])
        yield item


def write(findings: pd.DataFrame, out: IO[bytes]) -> None:
    for item in records(findings):
        out.write(orjson.dumps(item) + b"\n")
