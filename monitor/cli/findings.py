"""`findings list|show|retry|resolve`: the stored findings."""

from __future__ import annotations

import argparse
import sys

import orjson
from rich.console import Console

from monitor import app
from monitor.cli.common import EXIT_INPUT, Commands, say
from monitor.cli.options import options
from monitor.config import Config
from monitor.text import json_bytes


def add(sub: Commands) -> None:
    f = sub.add_parser("findings", findings)
    f.add_argument("action", choices=("list", "show", "retry", "resolve"))
    f.add_argument("finding_ids", nargs="*", metavar="FINDING_ID")
    options(f, "note", "state", "status", "since")


def findings(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    if args.action == "list":
        for item in app.findings(cfg, args.state, args.status, args.since):
            sys.stdout.buffer.write(json_bytes(item) + b"\n")
        return 0
    if args.action == "retry":
        say(err, f"{app.retry(cfg, args.state, tuple(args.finding_ids))} failed deliveries queued again")
        return 0
    if len(args.finding_ids) != 1 or (args.action == "resolve" and not args.note):
        say(
            err,
            f"error: findings {args.action} takes one finding id" + (" and --note" if args.action == "resolve" else ""),
        )
        return EXIT_INPUT
    if args.action == "show":
        sys.stdout.buffer.write(
            json_bytes(app.finding(cfg, args.state, args.finding_ids[0]), orjson.OPT_INDENT_2) + b"\n"
        )
        return 0
    say(err, app.resolve(cfg, args.state, args.finding_ids[0], args.note))
    return 0
