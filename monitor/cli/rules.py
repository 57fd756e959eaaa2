"""`rules check`: which Sigma rules run as detectors, and why each other one does not."""

from __future__ import annotations

import argparse

from rich.console import Console

from monitor import app
from monitor.cli.common import EXIT_INPUT, Commands, console, say, table
from monitor.config import Config


def add(sub: Commands) -> None:
    group = sub.group("rules")
    check = group.add_parser("check", checked)
    check.add_argument("paths", nargs="*", metavar="PATH", help="rule files or folders (default: [sigma] paths)")


def checked(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    loaded = app.sigma_rules(cfg, args.paths)
    rows = [("loaded", d.id, str(d.max_severity()), f"{d.title} ({d.source})") for d in loaded.detectors]
    rows += [("refused", "-", "-", f"{path}: {why}") for path, why in loaded.refused]
    say(console(), *table(("STATUS", "DETECTOR", "LEVEL", "RULE"), rows))
    say(err, f"{len(loaded.detectors)} rules loaded, {len(loaded.refused)} refused")
    return EXIT_INPUT if loaded.refused else 0
