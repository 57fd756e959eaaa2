"""`scan`: the catalog over local files, with no lake and no state file."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console

from detectors.core.lazy import Later
from detectors.core.severity import Severity
from monitor.cli.common import (
    EXIT_FINDINGS,
    EXIT_INPUT,
    Commands,
    app,
    byte_progress,
    console,
    findings_table,
    report,
    request,
    say,
)
from monitor.cli.options import options

PROGRESS_BYTES = 16 << 20  # a bar only for inputs this large


if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.outbox import finding
    from monitor.outbox.sinks import jsonl
else:
    finding = Later("monitor.outbox.finding")
    jsonl = Later("monitor.outbox.sinks.jsonl")


def add(sub: Commands) -> None:
    p = sub.add_parser("scan", scan)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (searched recursively)")
    options(p, "format", "detector", "rules", "fail-on", "workers", "no-progress", "history")


def scan(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    wanted = request(app.ScanRequest, args, paths=tuple(args.paths), detectors=args.detector)
    with byte_progress(err, args.no_progress, "scanning", PROGRESS_BYTES) as progress:
        result = app.scan(cfg, wanted, progress)
    if args.format == "jsonl":
        jsonl.write(result.findings, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        say(console(), *findings_table(finding.records(result.findings)))
    line = (
        f"scanned {result.files} files, {result.events} events ({result.duplicates} duplicates), "
        f"{len(result.findings)} findings, {len(result.errors)} unreadable inputs"
    )
    notes = [f"blind spot: {b}" for b in result.blind_spots] + result.notes
    report(err, result.errors + result.detector_errors, line, result.coerced, notes)
    if result.errors or result.detector_errors:
        return EXIT_INPUT
    floor = Severity.parse(args.fail_on) if args.fail_on else None
    failing = floor is not None and any(Severity.parse(s) >= floor for s in result.findings["severity"])
    return EXIT_FINDINGS if failing else 0
