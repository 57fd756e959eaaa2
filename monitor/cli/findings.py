"""`findings list|show|retry|resolve`: the stored findings."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import orjson
from rich.console import Console

from monitor.cli.common import Commands, app, console, findings_table, request, say
from monitor.cli.options import options
from monitor.text import json_bytes

if TYPE_CHECKING:
    from monitor.config import Config


def add(sub: Commands) -> None:
    group = sub.group("findings")
    options(group.add_parser("list", listed), "state", "status", "since", "detector", "severity", "account", "format")
    show = group.add_parser("show", shown)
    show.add_argument("finding_id", metavar="FINDING_ID", help="a finding id, or a unique start of one")
    options(show, "state")
    retry = group.add_parser("retry", retried)
    retry.add_argument("finding_ids", nargs="*", metavar="FINDING_ID", help="only these findings (default: all)")
    options(retry, "state")
    resolve = group.add_parser("resolve", resolved)
    resolve.add_argument("finding_id", metavar="FINDING_ID", help="a finding id, or a unique start of one")
    options(resolve, "note", "state", required=("note",))


def listed(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    found = app.findings(
        cfg, request(app.FindingsRequest, args, detectors=tuple(args.detector or ()), accounts=tuple(args.account))
    )
    if args.format == "table":
        say(console(), *findings_table(found, status=True))
        return 0
    for item in found:
        sys.stdout.buffer.write(json_bytes(item) + b"\n")
    return 0


def shown(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    sys.stdout.buffer.write(json_bytes(app.finding(cfg, args.state, args.finding_id), orjson.OPT_INDENT_2) + b"\n")
    return 0


def retried(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    say(err, f"{app.retry(cfg, args.state, tuple(args.finding_ids))} failed deliveries queued again")
    return 0


def resolved(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    say(err, app.resolve(cfg, args.state, args.finding_id, args.note))
    return 0
