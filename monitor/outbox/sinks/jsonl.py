"""Findings as JSON Lines: one object per finding with every field of the findings contract, appended
to a file and found in it again after a crash, so each is written once."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from monitor.outbox.dispatcher import Route
from monitor.outbox.finding import Finding, records
from monitor.outbox.sinks.kind import Kind
from monitor.outbox.transport import Mark, Receipt
from monitor.text import json_bytes, json_lines

if TYPE_CHECKING:
    import pandas as pd


def write(findings: pd.DataFrame, out: IO[bytes]) -> None:
    """Findings in the contract's JSON form, a thousand lines per write."""
    lines = records(findings)
    while chunk := list(islice(lines, 1000)):
        out.write(json_lines(chunk))


@dataclass
class JsonlSink:
    """`line` shapes each finding's object (the contract by default); `key` finds its finding id in one."""

    path: Path
    name: str = "jsonl"
    line: Callable[[Finding], dict[str, Any]] = Finding.record
    key: Callable[[dict[str, Any]], object] = lambda line: line["finding_id"]

    def send(self, finding: Finding) -> Receipt:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab+") as out:
            size = out.seek(0, os.SEEK_END)
            torn = size > 0 and out.seek(size - 1) >= 0 and out.read(1) != b"\n"
            line = json_bytes(self.line(finding)) + b"\n"
            out.write(b"\n" + line if torn else line)  # a line torn by a crash never swallows the next
            out.flush()
            os.fsync(out.fileno())
        return Receipt()

    def find(self, finding: Finding, mark: Mark) -> Receipt | None:
        if not self.path.exists():
            return None
        for line in self.path.read_bytes().splitlines():
            try:
                if self.key(orjson.loads(line)) == finding.finding_id:
                    return Receipt()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by a crash: its finding is written again
        return None


KIND = Kind(
    lambda cfg, extra: cfg.alerts.jsonl is not None, lambda setup: Route(JsonlSink(setup.cfg.alerts.jsonl or Path()))
)
