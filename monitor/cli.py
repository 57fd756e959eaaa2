"""The `trailguard` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

from detectors.core.base import Context, Detector, Severity
from detectors.core.registry import POSTURE, CatalogError, choose, load
from detectors.iam_hygiene import IamHygiene
from monitor import __version__, logs
from monitor import config as config_module
from monitor.demo import run as demo
from monitor.demo.generator import generate_trail
from monitor.detect import pipeline, suppressions
from monitor.detect.pipeline import detect
from monitor.detect.scan import scan
from monitor.ingest.run import Summary, from_uris
from monitor.lake import Lake, LakeError
from monitor.outbox import delivery
from monitor.outbox.sinks import console as console_sink
from monitor.outbox.sinks import jsonl
from monitor.outbox.sinks import slack as slack_module
from monitor.outbox.sinks.slack import SlackSink
from monitor.service import check, hygiene, inventory
from monitor.service.run import Service
from monitor.store.database import StateBusy, StateError, deliverer
from monitor.store.state import State
from monitor.store.state import check as state_check
from monitor.text import json_bytes, printable

EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_BUG = 3
_PROGRESS_BYTES = 16 << 20


def _console(stderr: bool = False) -> Console:
    """A console that wraps on a terminal only: piped output keeps one line per line (one per bad input).
    Everything written to stderr goes through the secrets mask."""
    console = Console(file=cast("IO[str]", logs.RedactedStream(sys.stderr))) if stderr else Console()
    console.soft_wrap = not console.is_terminal
    return console


CONFIG_HELP = "TOML configuration, before or after the command (default: embedded defaults)"


@dataclass
class _Commands:
    """The subcommands, each with the options every command takes."""

    sub: Any
    common: argparse.ArgumentParser

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.sub.add_parser(name, parents=[self.common], **kwargs)
        return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trailguard",
        description="Watch AWS identities in CloudTrail: root use, console logins without MFA, new access keys, "
        "cross-account role assumptions.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"trailguard {__version__}")
    common = argparse.ArgumentParser(add_help=False)  # --config after the command works too
    common.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    sub = _Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)

    p = sub.add_parser(
        "scan",
        help="run the detectors over local CloudTrail files and print the findings",
        description="Read CloudTrail data in any shape (S3 delivery .json/.json.gz, JSON Lines, a JSON array, "
        "a single record, `aws cloudtrail lookup-events` output, EventBridge envelopes, or directories of them), "
        "run the detectors and print one finding per line. Exit status: 2 if any input could not be read "
        "(wins), else 1 if --fail-on was given and a finding at or above it exists, else 0.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (searched recursively)")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output format (default: jsonl)")
    p.add_argument("--detector", action="append", metavar="ID", help="run only this detector (repeatable)")
    p.add_argument(
        "--fail-on",
        choices=[str(s) for s in Severity],
        metavar="SEVERITY",
        help="exit 1 when a finding at or above this severity exists (info, low, medium, high, critical)",
    )
    p.add_argument("--workers", type=int, default=None, help="parsing processes (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    p.add_argument(
        "--lake",
        metavar="LAKE",
        help="a lake (directory or s3:// URI) as history: stateful detectors compare the scanned events with "
        "its days before them, so known cross-account pairs are quiet; without it every pair is new",
    )

    sub.add_parser("detectors", help="list the detectors in the catalog")

    m = sub.add_parser(
        "demo",
        help="run the whole flow on a generated day of three accounts, with no AWS account and no Slack",
        description="Generate a realistic day of CloudTrail activity with a story inside it, ingest it into a local "
        "lake, run every detector into the outbox, show the findings, and write the exact Slack messages that "
        "would be posted to a file.",
    )
    m.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo lives (default: .demo, recreated)")
    m.add_argument("--events", type=int, default=20_000, help="about how many events (default: 20000)")

    _lake_commands(sub)
    _service_commands(sub)

    g = sub.add_parser("generate", help="write a generated day of CloudTrail activity as S3-shaped .json.gz objects")
    g.add_argument("out", type=Path, metavar="DIR")
    g.add_argument("--events", type=int, default=20_000, help="about how many events (default: 20000)")
    g.add_argument("--seed", type=int, default=7)
    return parser


def _lake_commands(sub: Any) -> None:
    """ingest, detect, findings and compact: the commands over the lake and the state file."""
    i = sub.add_parser(
        "ingest",
        help="fill the Parquet lake from S3, SQS, LookupEvents or local files",
        description="Ingest CloudTrail events into the lake, exactly once after de-duplication. Sources: "
        "s3://bucket[/prefix] (the trail bucket, listed), sqs://<region>/<account-id>/<queue> (new-object "
        "notifications), lookup://<region>[,<region>...] (the LookupEvents API), or a local path. Without "
        "--since/--until S3 lists today and yesterday; with them it backfills those days. Re-running is a no-op. "
        "Exit status 2 if any input could not be read or any read was incomplete.",
    )
    i.add_argument("--source", action="append", metavar="URI", help="a source (repeatable; default: sources)")
    i.add_argument("--lake", metavar="URI", help="lake directory or s3://bucket/prefix (default: lake.uri)")
    i.add_argument("--state", type=Path, metavar="FILE", help="SQLite state file (default: state.path)")
    i.add_argument("--since", type=_when, metavar="TIME", help="ISO date/time (UTC) or a duration ago: 7d, 12h")
    i.add_argument("--until", type=_when, metavar="TIME", help="ISO date/time (UTC) or a duration ago")
    i.add_argument("--account", action="append", default=[], help="S3: only this account (repeatable)")
    i.add_argument("--region", action="append", default=[], help="S3: only this region (repeatable)")
    i.add_argument("--role-arn", help="a role to assume for reading the sources (refreshing credentials)")
    i.add_argument("--workers", type=int, default=None, help="parsing processes (default: one per core)")
    _engine_arguments(
        i,
        "pandas (default): worker processes here; dask: groups of inputs as tasks on a Dask cluster "
        "(needs trailguard[dask]); the ledger is written here, for committed groups only",
    )
    i.add_argument(
        "--commit-inputs",
        type=int,
        default=500,
        metavar="N",
        help="commit to the lake and the ledger at least every N inputs (default: 500)",
    )
    i.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    d = sub.add_parser(
        "detect",
        help="run the detectors over a time range of the lake and store the findings",
        description="Run every enabled detector over the lake between --since and --until and store the findings "
        "in the state file's outbox: a finding already stored grows instead of repeating. With --alert, new "
        "findings are also queued for delivery and shown on the console.",
    )
    d.add_argument("--lake", metavar="URI", help="default: lake.uri from the configuration")
    d.add_argument("--state", type=Path, metavar="FILE", help="default: state.path from the configuration")
    d.add_argument("--since", required=True, type=_when, metavar="TIME", help="ISO date/time (UTC) or 7d, 12h")
    d.add_argument("--until", type=_when, metavar="TIME", help="default: now")
    d.add_argument("--detector", action="append", metavar="ID", help="run only this detector (repeatable)")
    d.add_argument(
        "--slice-hours",
        type=int,
        default=24,
        choices=(1, 2, 3, 4, 6, 8, 12, 24),
        metavar="HOURS",
        help="detect this many hours at a time (default 24; fewer hold fewer events in memory per task)",
    )
    _engine_arguments(
        d,
        "pandas (default): one day at a time in this process, memory flat over any range; dask: the days as tasks "
        "on a Dask cluster (needs trailguard[dask]), with the same findings and ids",
    )
    d.add_argument("--alert", action="store_true", help="queue new findings for delivery and deliver them")
    d.add_argument(
        "--suppressions",
        type=Path,
        metavar="FILE",
        help="TOML file of [[suppress]] rules: matching findings are stored and counted, never sent",
    )
    d.add_argument(
        "--post-each",
        action="store_true",
        help="with --alert over a range that ended more than a day ago (a backfill): post every finding, "
        "not just one summary",
    )
    d.add_argument("--jsonl", type=Path, metavar="FILE", help="with --alert: also append new findings to this file")
    d.add_argument(
        "--slack-webhook",
        action="store_true",
        help="with --alert: post through the incoming webhook in SLACK_WEBHOOK_URL (minimal mode: no threads, "
        "at-least-once)",
    )
    d.add_argument(
        "--slack-channel",
        metavar="CHANNEL",
        help="with --alert: post to this Slack channel (bot token from SLACK_BOT_TOKEN or the file "
        "named by SLACK_BOT_TOKEN_FILE; SLACK_API_URL overrides the API address)",
    )

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
    f.add_argument("--since", type=_when, metavar="TIME", help="with list: last seen at or after this time")

    c = sub.add_parser("compact", help="rewrite a closed day of the lake into few large sorted files")
    c.add_argument("--lake", metavar="URI", help="default: lake.uri from the configuration")
    c.add_argument("--date", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    c.add_argument("--force", action="store_true", help="compact even a day that may still receive events")


def _engine_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--engine", choices=("pandas", "dask"), default="pandas", help=what)
    parser.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="with --engine dask: the scheduler to use (tcp://host:8786); default: a local cluster, a worker per core",
    )


def _service_commands(sub: Any) -> None:
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


def _from_config(args: argparse.Namespace, cfg: config_module.Config) -> None:
    """What the command line leaves out comes from the configuration: sources, lake and state."""
    wanted = {
        "source": ([s.address() for s in cfg.sources], "--source URI or sources"),
        "lake": (cfg.lake, "--lake URI or lake.uri"),
        "state": (cfg.state, "--state FILE or state.path"),
    }
    problems = []
    for name, (value, how) in wanted.items():
        if args.command == "scan" or getattr(args, name, "") is not None:  # scan's --lake is optional history
            continue
        if not value:
            problems.append(f"needs {how} in the configuration")
        setattr(args, name, value)
    if problems:
        raise config_module.ConfigError(args.command, problems)


def _when(text: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a duration before now: 30m, 12h, 7d."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        try:
            return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
        except (OverflowError, ValueError):
            raise argparse.ArgumentTypeError(f"too far back: {text!r}") from None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time or a duration like 7d: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_range(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--since must come before --until (or now), whatever form each was given in."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and since >= (until or datetime.now(UTC)):
        end = until.isoformat() if until else "now"
        parser.error(f"--since ({since.isoformat()}) must be before --until ({end})")


def _ingest(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
    lake, state = Lake(args.lake), State(args.state)
    started = time.monotonic()
    show = err.is_terminal and not args.no_progress
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True, disable=not show)
    task = bar.add_task("ingesting")

    def update(summary: Summary) -> None:
        rate = summary.events / max(time.monotonic() - started, 1e-6)
        text = f"ingesting: {summary.inputs} inputs, {summary.events:,} events, {rate:,.0f} events/s"
        bar.update(task, description=text)

    workers, mapper = args.workers, None
    if args.engine == "dask":
        spread = _dask(args)
        dask = spread.client(args.dask_scheduler)
        workers, mapper = args.workers or spread.workers(dask), spread.mapper(dask)
    with bar:
        options = {"accounts": args.account, "regions": args.region, "role_arn": args.role_arn}
        summary = from_uris(
            args.source,
            lake,
            state,
            args.since,
            args.until,
            workers,
            update,
            args.commit_inputs,
            None,
            mapper,
            cfg.limits,
            **options,
        )
    for line in summary.errors:
        err.print(f"error: {printable(line)}", markup=False, highlight=False)
    lag = summary.lag()
    err.print(
        f"ingested {summary.inputs} inputs, {summary.events} events ({summary.duplicates} duplicates dropped), "
        f"{summary.quarantined} quarantined, {summary.bad_records} bad records, {summary.retry_later} to retry"
        + (f", lag {lag / 60:.0f} min" if lag is not None else ""),
        markup=False,
        highlight=False,
    )
    return EXIT_INPUT if summary.errors else 0


def _detectors(args: argparse.Namespace, cfg: config_module.Config) -> tuple[type[Detector], ...]:
    return tuple(d for d in choose(load(), getattr(args, "detector", None)) if d.id not in cfg.disabled_detectors)


def _detect(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
    state = State(args.state)
    until = args.until or datetime.now(UTC)
    accounts = inventory.load(cfg, state)
    sinks = (
        delivery.build(
            cfg,
            state,
            delivery.guides(load()),
            channel=args.slack_channel,
            webhook=args.slack_webhook,
            jsonl=args.jsonl,
            inventory=accounts,
            console=_console(),
        )
        if args.alert
        else delivery.Sinks()
    )
    rules = suppressions.load(args.suppressions or cfg.alerts.suppressions)
    today = datetime.now(UTC).date()
    for rule in rules.expired(today):
        err.print(f"warning: suppression {printable(rule.name)} has expired and no longer applies", markup=False)
    ctx = Context(accounts.settings(cfg.detection))
    names = sinks.names
    engine = _engine(args)
    slicing = timedelta(hours=args.slice_hours)
    detectors = _detectors(args, cfg)
    # a range that ended more than a day ago is a backfill: one summary per channel, the same after a restart
    backfill = args.alert and until < datetime.now(UTC) - timedelta(days=1) and not args.post_each
    batch = slack_module.backfill_batch(args.since, until, [d.id for d in detectors]) if backfill else None
    result = detect(
        Lake(args.lake),
        state,
        detectors,
        ctx,
        args.since,
        until,
        names,
        rules.matcher(today),
        engine,
        slicing,
        batch,
    )
    if args.alert:
        _console().print(f"[bold]{len(set(result.new) - set(result.suppressed))} new findings[/]")
    delivered = sinks.deliver()
    for line in delivered.lines:
        err.print(line, markup=False, highlight=False)
    errors = list(result.detector_errors) + delivered.errors
    for line in errors:
        err.print(f"error: {printable(line)}", markup=False, highlight=False)
    err.print(
        f"{result.events} events, {len(result.findings)} findings: {len(result.new)} new "
        f"({len(result.suppressed)} suppressed), {len(result.grown)} grown with new events",
        markup=False,
    )
    return EXIT_INPUT if errors else 0


def _hygiene(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
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


def _dask(args: argparse.Namespace) -> Any:
    """monitor.detect.dask_engine, imported only when asked for: Dask is an optional dependency."""
    try:
        return importlib.import_module("monitor.detect.dask_engine")
    except ImportError as exc:
        raise config_module.ConfigError(
            "--engine dask", [f"needs the dask extra: pip install 'trailguard[dask]' ({exc})"]
        ) from exc


def _engine(args: argparse.Namespace) -> pipeline.Engine:
    """The local engine, or a Dask cluster's."""
    if args.engine == "pandas":
        return pipeline.local_engine
    spread = _dask(args)
    engine: pipeline.Engine = spread.DaskEngine(spread.client(args.dask_scheduler))
    return engine


def _findings(args: argparse.Namespace, err: Console) -> int:
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


def _compact(args: argparse.Namespace, err: Console) -> int:
    if not args.force and args.date >= datetime.now(UTC).date() - timedelta(days=2):
        err.print(f"error: {args.date} may still receive events (use --force)", markup=False)
        return EXIT_INPUT
    done = Lake(args.lake).compact(args.date)
    err.print(
        f"compacted {done.day}: {done.files_before} files -> {done.files_after}, "
        f"{done.rows_before} rows -> {done.rows_after} unique events",
        markup=False,
    )
    return 0


def _progress_bar(console: Console, enabled: bool) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    if not enabled:
        return None, None
    bar = Progress(
        TextColumn("scanning"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console, transient=True
    )
    task = bar.add_task("scan", total=None)

    def update(done: int, total: int) -> None:
        if total >= _PROGRESS_BYTES:
            bar.update(task, completed=done, total=total)

    return bar, update


def _scan(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
    detectors = _detectors(args, cfg)
    bar, update = _progress_bar(err, err.is_terminal and not args.no_progress)
    if bar:
        bar.start()
    try:
        ctx = Context(inventory.load(cfg).settings(cfg.detection))
        lake = Lake(args.lake) if args.lake else None
        result = scan(args.paths, detectors, ctx, args.workers, update, lake, cfg.limits)
    finally:
        if bar:
            bar.stop()
    if args.format == "jsonl":
        jsonl.write(result.findings, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        console_sink.render(result.findings, _console())
    for line in result.errors + result.detector_errors:
        err.print(f"error: {printable(line)}", markup=False, highlight=False)
    err.print(
        f"scanned {result.files} files, {result.events} events ({result.duplicates} duplicates), "
        f"{len(result.findings)} findings, {len(result.errors)} unreadable inputs",
        markup=False,
        highlight=False,
    )
    if result.errors or result.detector_errors:
        return EXIT_INPUT
    threshold = Severity.parse(args.fail_on) if args.fail_on else None
    if threshold is not None and any(Severity.parse(s) >= threshold for s in result.findings["severity"]):
        return EXIT_FINDINGS
    return 0


def _demo(args: argparse.Namespace, cfg: config_module.Config) -> int:
    out = _console()
    done = demo.run(args.dir, args.events, cfg)
    ingested, found = done.result.ingest, done.result.detect
    out.print(
        f"[bold]TrailGuard demo[/]: {ingested.events:,} events from {ingested.inputs} objects ingested into a lake "
        f"holding {demo.HISTORY_DAYS} days of history (the cross-account baseline)"
    )
    if found is not None:
        console_sink.render(found.findings, out, done.accounts.names())
    out.print(f"\nSlack messages that would be posted: {done.slack_file}", markup=False, highlight=False)
    if done.posted is not None:
        for line in done.posted.lines + [f"error: {e}" for e in done.posted.errors]:
            out.print(printable(line), markup=False, highlight=False)
    out.print(f"Parquet lake: {done.lake} (DuckDB: deploy/duckdb/events.sql)", markup=False, highlight=False)
    state = done.root / "state.db"
    out.print(f"State and findings outbox: {state} (trailguard findings list --state {state})", markup=False)
    out.print(f"Investigate in Jupyter: {done.notebooks_command()}", markup=False, highlight=False, soft_wrap=True)
    return 0


def _run(args: argparse.Namespace, cfg: config_module.Config) -> int:
    logs.setup()
    service = Service(cfg, _detectors(args, cfg))
    with deliverer(service.state_path):
        if args.once:
            return 0 if service.once() else EXIT_INPUT
        return service.run()


def _state(args: argparse.Namespace) -> int:
    out = _console()
    checked = state_check(args.state)
    for what, problem in checked:
        mark = "[red]FAIL[/]" if problem else "[green]ok[/]"
        out.print(f"{mark} {escape(printable(what))}" + (f": {escape(printable(problem))}" if problem else ""))
    return EXIT_INPUT if any(problem for _, problem in checked) else 0


def _check(args: argparse.Namespace, cfg: config_module.Config) -> int:
    out = _console()
    _detectors(args, cfg)  # the catalog and the configuration agree
    checked = check.run(cfg, args.offline)
    for what, problem in checked.lines:
        mark = "[red]FAIL[/]" if problem else "[green]ok[/]"
        out.print(
            f"{mark} {escape(what)}" + (f": {escape(problem)}" if problem else ""), highlight=False, soft_wrap=True
        )
    sys.stdout.write(check.policy_text(cfg) + "\n")
    return EXIT_INPUT if checked.failed else 0


def _list_detectors() -> int:
    out = _console()
    for cls in load():
        out.print(f"[bold]{cls.id}[/] ({cls.severity}) {cls.title}: reads {', '.join(cls.reads())}")
    for check_cls in POSTURE:
        out.print(
            f"[bold]{check_cls.id}[/] ({check_cls.severity}) {check_cls.title}: reads IAM state (trailguard hygiene)"
        )
    return 0


def _generate(args: argparse.Namespace, err: Console) -> int:
    written = generate_trail(args.out, args.events, seed=args.seed)
    err.print(f"wrote {len(written)} objects under {args.out}", markup=False)
    return 0


def _delivering(state: Path | None, command: Callable[[], int]) -> int:
    """Run a command that delivers findings holding its state file's delivery lock (one deliverer at a time)."""
    with deliverer(state) if state is not None else nullcontext():
        return command()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_range(parser, args)
    err = _console(stderr=True)
    try:
        cfg = config_module.load(args.config)
        _from_config(args, cfg)
        commands: dict[str, Callable[[], int]] = {
            "scan": lambda: _scan(args, cfg, err),
            "detectors": _list_detectors,
            "demo": lambda: _demo(args, cfg),
            "ingest": lambda: _ingest(args, cfg, err),
            "compact": lambda: _compact(args, err),
            "detect": lambda: _delivering(args.state if args.alert else None, lambda: _detect(args, cfg, err)),
            "findings": lambda: _findings(args, err),
            "run": lambda: _run(args, cfg),
            "check": lambda: _check(args, cfg),
            "hygiene": lambda: _delivering(args.state if args.alert else None, lambda: _hygiene(args, cfg, err)),
            "generate": lambda: _generate(args, err),
            "state": lambda: _state(args),
        }
        return commands[args.command]()
    except config_module.ConfigError as exc:
        for problem in exc.problems:
            err.print(f"error: {exc.source}: {problem}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_INPUT
    except (CatalogError, StateError, LakeError, demo.DemoError) as exc:
        err.print(f"error: {printable(str(exc))}", markup=False, highlight=False)
        return EXIT_INPUT
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        sys.stderr.close()
        return 0
    except Exception:  # a bug: its traceback, with every secret masked, for the report
        for line in traceback.format_exc().splitlines():
            err.print(printable(line), markup=False, highlight=False)
        err.print("error: internal error (a bug in TrailGuard: please report it with the lines above)", markup=False)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
