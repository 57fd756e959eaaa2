"""`hygiene`: the IAM state of every configured account, now."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console

from monitor.cli.common import EXIT_INPUT, Commands, app, say
from monitor.cli.options import options
from monitor.text import json_bytes

if TYPE_CHECKING:
    from monitor.config import Config


def add(sub: Commands) -> None:
    options(sub.add_parser("hygiene", hygiene), "state", "alert")


def hygiene(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    done = app.hygiene(cfg, args.state, args.alert)
    for finding in done.open:
        sys.stdout.buffer.write(json_bytes(finding.record()) + b"\n")
    result = done.result
    say(err, *done.delivered.lines, *(f"error: {e}" for e in result.errors + done.delivered.errors))
    say(err, f"{len(result.accounts)} accounts read: {len(result.new)} new findings, {len(result.resolved)} resolved")
    return EXIT_INPUT if result.errors else 0
