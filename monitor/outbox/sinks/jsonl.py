"""Findings as JSON Lines: one object per finding with every field of the findings contract."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pandas as pd

from detectors.core.base import FINDING_COLUMNS
from monitor.state import State
from monitor.text import json_bytes


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
        out.write(json_bytes(item) + b"\n")


@dataclass
class JsonlSink:
    """Findings appended to a JSON Lines file, each once: a post interrupted by a crash is found in the file."""

    path: Path
    state: State
    name: str = "jsonl"

    def deliver(self) -> int:
        written = self._in_file() if self.state.deliveries_in(self.name, "posting") else set()
        count = 0
        for status in ("posting", "pending"):
            for finding, _ in self.state.deliveries_in(self.name, status):
                fid = finding["finding_id"]
                if fid not in written:
                    self.state.update_delivery(fid, self.name, status="posting")
                    self._append(finding)
                    count += 1
                self.state.update_delivery(fid, self.name, status="sent", delivered_events=len(finding["event_ids"]))
        return count

    def _append(self, finding: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab+") as out:
            size = out.seek(0, os.SEEK_END)
            torn = size > 0 and out.seek(size - 1) >= 0 and out.read(1) != b"\n"
            line = json_bytes({c: finding.get(c) for c in FINDING_COLUMNS}) + b"\n"
            out.write(b"\n" + line if torn else line)  # a line torn by a crash never swallows the next
            out.flush()
            os.fsync(out.fileno())

    def _in_file(self) -> set[str]:
        if not self.path.exists():
            return set()
        ids = set()
        for line in self.path.read_bytes().splitlines():
            try:
                ids.add(orjson.loads(line)["finding_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by a crash: its finding is written again
        return ids
