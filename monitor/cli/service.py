"""`run`, `hygiene`, `check` and `state`: the service and what keeps it honest."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from detectors.core.base import Context
from detectors.core.registry import load
from detectors.iam_hygiene import IamHygiene
from monitor import config as config_module
from monitor import logs
from monitor.cli.common import EXIT_INPUT, Commands, console, detectors_of
from monitor.detect import suppressions
from monitor.outbox import delivery
from monitor.service import check, hygiene, inventory
from monitor.service.run import Service
from monitor.store.database import deliverer
from monitor.store.state import State
from monitor.store.state import check as state_check
from monitor.text import json_bytes, printable


def add(sub: Commands) -> None:
    r = sub.add_parser(
        "run",
        help="run the monitor: a cycle now and then on the configured schedule, with /healthz and /metrics",
        description="Ingest from the configured sources, detect, and deliver alerts, every schedule.interval_seconds "
        "(with jitter), until SIGTERM or SIGINT: the cycle in flight then commits and the process exits 0. Needs "
        "--config with sources, lake.uri and state.path (TRAILGUARD__SECTION__KEY variables override any key). "
        "Logs are JSON lines on stderr. Exit status 2 for an invalid configuration.",
    )
    r.add_argument("--once", action="store_true", help="run one cycle and exit (2 if it had errors), e.g. from cron")
    h = sub.add_parser(
        "hygiene",
        help="read IAM state now: store what is wrong, resolve what was fixed, print the open findings",
        description="Read each configured account's IAM state (credential report, account summary, users with "
        "their keys, MFA devices, groups and policies, password policy) with the [hygiene] accounts and role_arn "
        "(default: the account of the credentials in use), store every problem as a finding, and resolve the "
        "findings whose problem is gone. Prints the open findings as JSON lines. The service does the same every "
        "hygiene.interval_hours when hygiene.enabled is true. Exit status 2 if an account could not be read.",
    )
    h.add_argument("--state", type=Path, metavar="FILE", help="default: state.path from the configuration")
    h.add_argument("--alert", action="store_true", help="deliver new findings and resolutions to the configured sinks")
    c = sub.add_parser(
        "check",
        help="validate the configuration, try every source and Slack channel, print the IAM policy it needs",
        description="Validate the configuration, show the AWS identity in use (sts:GetCallerIdentity), try each "
        "source's read permissions without consuming anything, check the Slack token and every routed channel, "
        "and print the least-privilege IAM policy the configured sources need. Exit status 2 if anything failed.",
    )
    c.add_argument("--offline", action="store_true", help="only validate the configuration and print the policy")
    s = sub.add_parser(
        "state",
        help="verify a state file without changing it",
        description="check: open the state file without upgrading or creating it, run SQLite's integrity check, and "
        "show its version, ledger, outbox and who holds its delivery lock. Exit status 2 if it cannot be used "
        "(missing, empty, corrupt, from a newer TrailGuard) or fails the integrity check.",
    )
    s.add_argument("action", choices=("check",))
    s.add_argument("--state", type=Path, metavar="FILE", help="default: state.path from the configuration")


def run_command(args: argparse.Namespace, cfg: config_module.Config) -> int:
    logs.setup()
    service = Service(cfg, detectors_of(args, cfg))
    with deliverer(service.state_path):
        if args.once:
            return 0 if service.once() else EXIT_INPUT
        return service.run()


def state_command(args: argparse.Namespace) -> int:
    out = console()
    checked = state_check(args.state)
    for what, problem in checked:
        mark = "[red]FAIL[/]" if problem else "[green]ok[/]"
        out.print(f"{mark} {escape(printable(what))}" + (f": {escape(printable(problem))}" if problem else ""))
    return EXIT_INPUT if any(problem for _, problem in checked) else 0


def check_command(args: argparse.Namespace, cfg: config_module.Config) -> int:
    out = console()
    detectors_of(args, cfg)  # the catalog and the configuration agree
    checked = check.run(cfg, args.offline)
    for what, problem in checked.lines:
        mark = "[red]FAIL[/]" if problem else "[green]ok[/]"
        out.print(
            f"{mark} {escape(what)}" + (f": {escape(problem)}" if problem else ""), highlight=False, soft_wrap=True
        )
    sys.stdout.write(check.policy_text(cfg) + "\n")
    return EXIT_INPUT if checked.failed else 0


def hygiene_command(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
    state = State(args.state)
    accounts = inventory.load(cfg, state)
    sinks = delivery.build(cfg, state, delivery.guides(load()), inventory=accounts) if args.alert else delivery.Sinks()
    now = datetime.now(UTC)
    ctx = Context(accounts.settings(cfg.detection), now=now)
    result = hygiene.run(cfg, state, ctx, sinks.names, suppressions.load(cfg.alerts.suppressions).matcher(now.date()))
    for account in result.accounts:
        for finding in state.open_findings(IamHygiene.id, account):
            sys.stdout.buffer.write(json_bytes(finding.record()) + b"\n")
    delivered = sinks.deliver()
    for line in [*delivered.lines, *(f"error: {printable(e)}" for e in result.errors + delivered.errors)]:
        err.print(line, markup=False, highlight=False)
    err.print(
        f"{len(result.accounts)} accounts read: {len(result.new)} new findings, {len(result.resolved)} resolved",
        markup=False,
    )
    return EXIT_INPUT if result.errors else 0
