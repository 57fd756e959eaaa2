"""`scan`, `detectors`, `demo` and `generate`: the commands that need no lake and no state file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from detectors.core.base import Context, Severity
from detectors.core.registry import POSTURE, load
from monitor import config as config_module
from monitor.cli.common import EXIT_FINDINGS, EXIT_INPUT, Commands, console, detectors_of
from monitor.demo import run as demo
from monitor.demo.generator import generate_trail
from monitor.detect.scan import scan
from monitor.lake import Lake
from monitor.outbox.sinks import console as console_sink
from monitor.outbox.sinks import jsonl
from monitor.service import inventory
from monitor.text import printable

_PROGRESS_BYTES = 16 << 20


def add(sub: Commands) -> None:
    """scan, detectors, demo and generate: the commands that need no lake and no state file."""
    p = sub.add_parser(
        "scan",
        help="run the detectors over local CloudTrail files and print the findings",
        description="Read CloudTrail data in any shape (S3 delivery .json/.json.gz, JSON Lines, a JSON array, "
        "a single record, `aws cloudtrail lookup-events` output, EventBridge envelopes, or directories of them), "
        "run the detectors and print one finding per line. Exit status: 2 if any input could not be read "
        "(wins), else 1 if --fail-on was given and a finding at or above it exists, else 0.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (searched recursively)")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output format (default: jsonl)")
    p.add_argument("--detector", action="append", metavar="ID", help="run only this detector (repeatable)")
    p.add_argument(
        "--fail-on",
        choices=[str(s) for s in Severity],
        metavar="SEVERITY",
        help="exit 1 when a finding at or above this severity exists (info, low, medium, high, critical)",
    )
    p.add_argument("--workers", type=int, default=None, help="parsing processes (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    p.add_argument(
        "--lake",
        metavar="LAKE",
        help="a lake (directory or s3:// URI) as history: stateful detectors compare the scanned events with "
        "its days before them, so known cross-account pairs are quiet; without it every pair is new",
    )

    sub.add_parser("detectors", help="list the detectors in the catalog")

    m = sub.add_parser(
        "demo",
        help="run the whole flow on a generated day of three accounts, with no AWS account and no Slack",
        description="Generate a realistic day of CloudTrail activity with a story inside it, ingest it into a local "
        "lake, run every detector into the outbox, show the findings, and write the exact Slack messages that "
        "would be posted to a file.",
    )
    m.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo lives (default: .demo, recreated)")
    m.add_argument("--events", type=int, default=20_000, help="about how many events (default: 20000)")

    g = sub.add_parser("generate", help="write a generated day of CloudTrail activity as S3-shaped .json.gz objects")
    g.add_argument("out", type=Path, metavar="DIR")
    g.add_argument("--events", type=int, default=20_000, help="about how many events (default: 20000)")
    g.add_argument("--seed", type=int, default=7)


def _progress_bar(console: Console, enabled: bool) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    if not enabled:
        return None, None
    bar = Progress(
        TextColumn("scanning"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console, transient=True
    )
    task = bar.add_task("scan", total=None)

    def update(done: int, total: int) -> None:
        if total >= _PROGRESS_BYTES:
            bar.update(task, completed=done, total=total)

    return bar, update


def scan_command(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
    detectors = detectors_of(args, cfg)
    bar, update = _progress_bar(err, err.is_terminal and not args.no_progress)
    if bar:
        bar.start()
    try:
        ctx = Context(inventory.load(cfg).settings(cfg.detection))
        lake = Lake(args.lake) if args.lake else None
        result = scan(args.paths, detectors, ctx, args.workers, update, lake, cfg.limits)
    finally:
        if bar:
            bar.stop()
    if args.format == "jsonl":
        jsonl.write(result.findings, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        console_sink.render(result.findings, console())
    for line in result.errors + result.detector_errors:
        err.print(f"error: {printable(line)}", markup=False, highlight=False)
    err.print(
        f"scanned {result.files} files, {result.events} events ({result.duplicates} duplicates), "
        f"{len(result.findings)} findings, {len(result.errors)} unreadable inputs",
        markup=False,
        highlight=False,
    )
    if result.errors or result.detector_errors:
        return EXIT_INPUT
    threshold = Severity.parse(args.fail_on) if args.fail_on else None
    if threshold is not None and any(Severity.parse(s) >= threshold for s in result.findings["severity"]):
        return EXIT_FINDINGS
    return 0


def demo_command(args: argparse.Namespace, cfg: config_module.Config) -> int:
    out = console()
    done = demo.run(args.dir, args.events, cfg)
    ingested, found = done.result.ingest, done.result.detect
    out.print(
        f"[bold]TrailGuard demo[/]: {ingested.events:,} events from {ingested.inputs} objects ingested into a lake "
        f"holding {demo.HISTORY_DAYS} days of history (the cross-account baseline)"
    )
    if found is not None:
        console_sink.render(found.findings, out, done.accounts.names())
    out.print(f"\nSlack messages that would be posted: {done.slack_file}", markup=False, highlight=False)
    if done.posted is not None:
        for line in done.posted.lines + [f"error: {e}" for e in done.posted.errors]:
            out.print(printable(line), markup=False, highlight=False)
    out.print(f"Parquet lake: {done.lake} (DuckDB: deploy/duckdb/events.sql)", markup=False, highlight=False)
    state = done.root / "state.db"
    out.print(f"State and findings outbox: {state} (trailguard findings list --state {state})", markup=False)
    out.print(f"Investigate in Jupyter: {done.notebooks_command()}", markup=False, highlight=False, soft_wrap=True)
    return 0


def detectors_command() -> int:
    out = console()
    for cls in load():
        out.print(f"[bold]{cls.id}[/] ({cls.severity}) {cls.title}: reads {', '.join(cls.reads())}")
    for check_cls in POSTURE:
        out.print(
            f"[bold]{check_cls.id}[/] ({check_cls.severity}) {check_cls.title}: reads IAM state (trailguard hygiene)"
        )
    return 0


def generate_command(args: argparse.Namespace, err: Console) -> int:
    written = generate_trail(args.out, args.events, seed=args.seed)
    err.print(f"wrote {len(written)} objects under {args.out}", markup=False)
    return 0
