"""The `trailguard` command line: one parser of the command groups, the configuration, and exit codes."""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.cli import catalog, demo, detect, findings, hygiene, incidents, ingest, investigate, rules, scan, service
from monitor.cli.common import CONFIG_HELP, Commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trailguard",
        description="Watch AWS identities in CloudTrail: root use, console logins without MFA, new access keys, "
        "cross-account role assumptions.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"trailguard {__version__}")
    common = argparse.ArgumentParser(add_help=False)  # --config after the command works too
    common.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    sub = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)
    for group in (scan, catalog, demo, ingest, detect, findings, incidents, rules, investigate, service, hygiene):
        group.add(sub)
    return parser


def check_range(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--since must come before --until (or now), whatever form each was given in."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and since >= (until or datetime.now(UTC)):
        end = until.isoformat() if until else "now"
        parser.error(f"--since ({since.isoformat()}) must be before --until ({end})")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, then run the command: `--help` and argument errors end before the application
    (pandas, pyarrow, boto3) is loaded."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_range(parser, args)
    running: Any = importlib.import_module("monitor.cli.running")
    status: int = running.run(args)
    return status


def console() -> int:
    """`trailguard` as installed and as `python -m monitor.cli`: `main`, then a quick exit. Everything is done
    and flushed by then, and the interpreter's last garbage collection would walk every object the data
    libraries made, to free memory the process is about to give back whole (0.08 s of a scan's exit)."""
    status = main()
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(console())
