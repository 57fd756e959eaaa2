"""`findings list|show|retry|resolve`: the stored findings."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson
from rich.console import Console

from monitor.cli.common import EXIT_INPUT, Commands, when
from monitor.outbox.sinks import slack as slack_module
from monitor.outbox.sinks.slack import SlackSink
from monitor.store.database import StateBusy, deliverer
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
    token = slack_module.token_from_environment()
    if token:
        try:
            with deliverer(args.state):
                web = slack_module.client(token, os.environ.get("SLACK_API_URL"))
                report = slack_module.Report()
                SlackSink(web, state, slack_module.Routes("")).post_resolutions(report)
        except StateBusy as exc:
            err.print(f"resolved; the note is posted by the process delivering: {exc}", markup=False)
            return 0
        if report.errors:
            err.print(
                f"resolved; the Slack reply failed and is retried by the service: {report.errors[0]}", markup=False
            )
        else:
            posted = report.resolutions > 0
            err.print(
                "resolved; note posted to the Slack thread" if posted else "resolved (never posted to Slack)",
                markup=False,
            )
    else:
        err.print("resolved (no Slack token set: the thread was not updated)", markup=False)
    return 0
