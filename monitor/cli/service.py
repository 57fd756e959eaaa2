"""`run`, `check` and `state`: the service, and what tells an operator it can run."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from detectors.core.lazy import Later
from monitor import logs
from monitor.cli.common import EXIT_INPUT, Commands, app, catalog, console
from monitor.cli.options import options
from monitor.text import printable

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.service import check as checks
    from monitor.service import run as service_run
    from monitor.store import state as stores
else:
    checks = Later("monitor.service.check")
    service_run = Later("monitor.service.run")
    stores = Later("monitor.store.state")


def add(sub: Commands) -> None:
    options(sub.add_parser("run", run), "once")
    options(sub.add_parser("check", check), "offline")
    s = sub.add_parser("state", state)
    s.add_argument("action", choices=("check",), help="check: verify it, changing nothing")
    options(s, "state")


def run(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    logs.setup()
    loaded = catalog.sigma_rules(cfg)
    for path, why in loaded.refused:  # never skipped silently
        logs.log(logging.getLogger("trailguard.service"), logging.WARNING, "rule not loaded", rule=path, reason=why)
    service = service_run.Service(cfg, catalog.detectors_of(cfg, rules=loaded))
    with app.delivering(service.state_path):
        return (0 if service.once() else EXIT_INPUT) if args.once else service.run()


def _marks(lines: list[tuple[str, str | None]]) -> int:
    out = console()
    for what, problem in lines:
        mark = "[red]FAIL[/]" if problem else "[green]ok[/]"
        detail = f": {escape(printable(problem))}" if problem else ""
        out.print(f"{mark} {escape(printable(what))}{detail}", highlight=False, soft_wrap=True)
    return EXIT_INPUT if any(problem for _, problem in lines) else 0


def state(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    return _marks(list(stores.check(app.where(cfg, "state", "state", state=args.state).state)))


def check(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    catalog.detectors_of(cfg)  # the catalog and the configuration agree
    checked = checks.run(cfg, args.offline)
    failed = _marks(checked.lines)
    for warning in checked.warnings:
        console().print(f"[yellow]WARN[/] {escape(printable(warning))}", highlight=False, soft_wrap=True)
    sys.stdout.write(checks.policy_text(cfg) + "\n")
    return failed
