"""`rules check|report|promote`: which Sigma rules load, and the detectors on burn-in."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console

from monitor.cli.common import EXIT_INPUT, Commands, app, catalog, console, existing, say, table
from monitor.cli.options import options

if TYPE_CHECKING:
    from monitor.config import Config


def add(sub: Commands) -> None:
    group = sub.group("rules")
    check = group.add_parser("check", checked)
    folders = "rule files or folders (default: [sigma] paths)"
    check.add_argument("paths", nargs="*", type=existing, metavar="PATH", help=folders)
    options(group.add_parser("report", reported), "state")
    promote = group.add_parser("promote", promoted)
    promote.add_argument("detector", metavar="ID", help="the detector (or sigma-<rule id>) to start alerting")
    options(promote, "state")


def checked(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    loaded = catalog.sigma_rules(cfg, args.paths)
    rows = [("loaded", d.id, str(d.max_severity()), f"{d.title} ({d.source})") for d in loaded.detectors]
    rows += [("refused", "-", "-", f"{path}: {why}") for path, why in loaded.refused]
    say(console(), *table(("STATUS", "DETECTOR", "LEVEL", "RULE"), rows))
    say(err, f"{len(loaded.detectors)} rules loaded, {len(loaded.refused)} refused")
    return EXIT_INPUT if loaded.refused else 0


def reported(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    staged = app.burn_in(cfg, args.state)
    rows = [
        (
            s.detector,
            f"{s.until:%Y-%m-%d}",
            " ".join(f"{d}:{n}" for d, n in s.per_day.items()) or "none",
            s.sample or "-",
        )
        for s in staged
    ]
    say(console(), *table(("DETECTOR", "BURN-IN UNTIL", "FINDINGS PER DAY", "NEWEST"), rows))
    say(err, f"{len(staged)} detectors on burn-in: their findings are stored, not sent (trailguard rules promote ID)")
    return 0


def promoted(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    say(err, app.promote(cfg, args.detector, args.state))
    return 0
