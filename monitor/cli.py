"""The `trailguard` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from detectors.base import Context, Severity
from detectors.registry import CatalogError, choose, load
from monitor import config as config_module
from monitor.alerts import console as console_sink
from monitor.alerts import jsonl
from monitor.generator import generate_trail
from monitor.scan import scan

EXIT_FINDINGS = 1
EXIT_INPUT = 2
_PROGRESS_BYTES = 16 << 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trailguard",
        description="Watch AWS identities in CloudTrail: root use, console logins without MFA, new access keys, "
        "cross-account role assumptions.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration (default: embedded defaults)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    sub.add_parser("detectors", help="list the detectors in the catalog")

    g = sub.add_parser("generate", help="write a generated day of CloudTrail activity as S3-shaped .json.gz objects")
    g.add_argument("out", type=Path, metavar="DIR")
    g.add_argument("--events", type=int, default=20_000, help="about how many events (default: 20000)")
    g.add_argument("--seed", type=int, default=7)
    return parser


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


def _scan(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
    catalog = load()
    unknown = sorted(cfg.disabled_detectors - {d.id for d in catalog})
    if unknown:
        raise CatalogError(f"configuration disables unknown detector {', '.join(unknown)}")
    detectors = tuple(d for d in choose(catalog, args.detector) if d.id not in cfg.disabled_detectors)
    bar, update = _progress_bar(err, err.is_terminal and not args.no_progress)
    if bar:
        bar.start()
    try:
        result = scan(args.paths, detectors, Context(cfg.detection), args.workers, update)
    finally:
        if bar:
            bar.stop()
    if args.format == "jsonl":
        jsonl.write(result.findings, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        console_sink.render(result.findings, Console())
    for line in result.errors + result.detector_errors:
        err.print(f"error: {line}", markup=False, highlight=False)
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


def _list_detectors() -> int:
    out = Console()
    for cls in load():
        out.print(f"[bold]{cls.id}[/] ({cls.severity}) {cls.title}: reads {', '.join(cls.reads())}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        cfg = config_module.load(args.config)
        if args.command == "scan":
            return _scan(args, cfg, err)
        if args.command == "detectors":
            return _list_detectors()
        written = generate_trail(args.out, args.events, seed=args.seed)
        err.print(f"wrote {len(written)} objects under {args.out}", markup=False)
        return 0
    except config_module.ConfigError as exc:
        for problem in exc.problems:
            err.print(f"error: {exc.source}: {problem}", markup=False, highlight=False)
        return EXIT_INPUT
    except CatalogError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return EXIT_INPUT
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
