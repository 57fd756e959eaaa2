"""`notebooks`: the investigation notebooks in a folder of one's own, served by Jupyter Lab."""

from __future__ import annotations

import argparse
import os
import subprocess
from typing import TYPE_CHECKING

from rich.console import Console

from monitor.cli.common import Commands, app, say
from monitor.cli.options import options

if TYPE_CHECKING:
    from monitor.config import Config


def add(sub: Commands) -> None:
    options(sub.add_parser("notebooks", notebooks), "folder", "lake", "state", "ip", "port", "no-start")


def notebooks(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    books = app.notebooks(args.folder)
    say(err, f"{len(books)} notebooks in {args.folder}: " + ", ".join(b.name for b in books))
    if args.no_start:
        return 0
    command = app.jupyter(args.folder, args.ip, args.port)
    where = {"TRAILGUARD_LAKE": args.lake or cfg.lake, "TRAILGUARD_STATE": str(args.state or cfg.state or "")}
    env = os.environ | {k: str(v) for k, v in where.items() if v}
    say(err, f"Jupyter Lab on {args.ip}:{args.port} (its address and token follow); Ctrl-C stops it")
    return subprocess.call(command, env=env)
