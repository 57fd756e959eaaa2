"""`detect`: the detectors over a range of the lake, findings into the outbox, and with --alert out of it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console

from monitor.cli.common import EXIT_INPUT, Commands, app, console, request, say
from monitor.cli.options import options

if TYPE_CHECKING:
    from monitor.config import Config


def add(sub: Commands) -> None:
    d = sub.add_parser("detect", detect)
    options(
        d, "lake", "state", "since", "until", "detector", "slice-hours", "engine", "dask-scheduler", required=("since",)
    )
    options(d, "rules", "suppressions", "alert", "post-each", "jsonl", "slack-webhook", "slack-channel")


def detect(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    alert = request(app.Alerting, args, console=console()) if args.alert else None
    engine = app.Engine(args.engine, args.dask_scheduler)
    done = app.detect(cfg, request(app.DetectRequest, args, detectors=args.detector, engine=engine, alert=alert))
    result = done.result
    say(err, *(f"warning: {w}" for w in done.warnings), *done.delivered.lines, *(f"error: {e}" for e in done.errors))
    say(
        err,
        f"{result.events} events, {len(result.findings)} findings: {len(result.new)} new "
        f"({len(result.suppressed)} suppressed), {len(result.grown)} grown with new events",
    )
    return EXIT_INPUT if done.errors else 0
