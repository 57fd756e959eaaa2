"""`incidents list|show|resolve`: findings linked into one story per attacker."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import orjson
from rich.console import Console

from monitor.cli.common import Commands, app, console, say, table
from monitor.cli.options import options
from monitor.text import json_bytes

if TYPE_CHECKING:
    from monitor.config import Config


def add(sub: Commands) -> None:
    group = sub.group("incidents")
    options(group.add_parser("list", listed), "state", "status", "since", "format")
    show = group.add_parser("show", shown)
    show.add_argument("incident_id", metavar="INCIDENT_ID", help="an incident id, or a unique start of one")
    options(show, "state")
    resolve = group.add_parser("resolve", resolved)
    resolve.add_argument("incident_id", metavar="INCIDENT_ID", help="an incident id, or a unique start of one")
    options(resolve, "note", "state", required=("note",))


def listed(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    found = app.incidents(cfg, args.state, args.status, args.since)
    if args.format != "table":
        for item in found:
            sys.stdout.buffer.write(json_bytes(item) + b"\n")
        return 0
    header = ("SEVERITY", "FINDINGS", "ACCOUNTS", "FIRST SEEN (UTC)", "INCIDENT", "STATUS", "SUMMARY")
    rows = [
        (
            i["severity"],
            len(i["finding_ids"]),
            ",".join(i["accounts"]) or "-",
            i["first_seen"][:19].replace("T", " "),
            i["incident_id"][:12],
            i["status"],
            i["summary"],
        )
        for i in found
    ]
    say(console(), *table(header, rows))
    return 0


def shown(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    sys.stdout.buffer.write(json_bytes(app.incident(cfg, args.state, args.incident_id), orjson.OPT_INDENT_2) + b"\n")
    return 0


def resolved(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    say(err, app.resolve_incident(cfg, args.state, args.incident_id, args.note))
    return 0
