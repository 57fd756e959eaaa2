"""`findings list|show|retry|resolve`: the stored findings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
from rich.console import Console

from monitor.cli.common import EXIT_INPUT, Commands, when
from monitor.outbox import delivery
from monitor.store.state import State
from monitor.text import json_bytes, printable


def add(sub: Commands) -> None:
    f = sub.add_parser(
        "findings",
        help="list, show, retry or resolve stored findings",
        description="list: findings as JSON lines; show ID: one finding with its deliveries; retry [ID...]: send "
        "failed deliveries again; resolve ID --note TEXT: close a finding (the note is posted to its Slack thread "
        "when a bot token is set).",
    )
    f.add_argument("action", choices=("list", "show", "retry", "resolve"))
    f.add_argument("finding_ids", nargs="*", metavar="FINDING_ID")
    f.add_argument("--note", help="with resolve: why it is resolved")
    f.add_argument("--state", type=Path, metavar="FILE", help="default: state.path from the configuration")
    f.add_argument("--status", choices=("open", "resolved"), help="with list: only these")
    f.add_argument("--since", type=when, metavar="TIME", help="with list: last seen at or after this time")


def findings_command(args: argparse.Namespace, err: Console) -> int:
    state = State(args.state, create=False)
    if args.action == "list":
        since = args.since.isoformat().replace("+00:00", "Z") if args.since else None
        for item in state.list_findings(args.status, since):
            sys.stdout.buffer.write(json_bytes(item) + b"\n")
        return 0
    if args.action == "retry":
        err.print(f"{state.retry_failed(args.finding_ids)} failed deliveries queued again", markup=False)
        return 0
    if len(args.finding_ids) != 1:
        err.print(f"error: findings {args.action} takes exactly one finding id", markup=False)
        return EXIT_INPUT
    fid = args.finding_ids[0]
    found = state.finding(fid)
    if found is None:
        err.print(f"error: no finding {printable(fid)!r}", markup=False)
        return EXIT_INPUT
    if args.action == "show":
        sys.stdout.buffer.write(json_bytes(found, orjson.OPT_INDENT_2) + b"\n")
        return 0
    if not args.note:
        err.print("error: findings resolve needs --note", markup=False)
        return EXIT_INPUT
    state.resolve(fid, args.note)
    err.print(delivery.resolve_in_slack(state, args.state), markup=False)
    return 0
