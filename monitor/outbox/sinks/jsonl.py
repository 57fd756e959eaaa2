"""Findings as JSON Lines: one object per finding with every field of the findings contract."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
import pandas as pd

from monitor.outbox.finding import Finding, from_frame
from monitor.state import State
from monitor.text import json_bytes


def write(findings: pd.DataFrame, out: IO[bytes]) -> None:
    for finding in from_frame(findings):
        out.write(json_bytes(finding.record()) + b"\n")


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
                fid = finding.finding_id
                if fid not in written:
                    self.state.update_delivery(fid, self.name, status="posting")
                    self._append(finding)
                    count += 1
                self.state.update_delivery(fid, self.name, status="sent", delivered_events=len(finding.event_ids))
        return count

    def _append(self, finding: Finding) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab+") as out:
            size = out.seek(0, os.SEEK_END)
            torn = size > 0 and out.seek(size - 1) >= 0 and out.read(1) != b"\n"
            line = json_bytes(finding.record()) + b"\n"
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
