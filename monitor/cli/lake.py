"""`ingest`, `detect` and `compact`: the commands over the lake."""

from __future__ import annotations

import argparse
import importlib
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn

from detectors.core.base import Context
from detectors.core.registry import load
from monitor import config as config_module
from monitor.cli.common import EXIT_INPUT, Commands, console, detectors_of, when
from monitor.detect import pipeline, suppressions
from monitor.detect.pipeline import detect
from monitor.ingest.run import Summary, from_sources
from monitor.lake import Lake
from monitor.outbox import delivery
from monitor.service import inventory
from monitor.store.state import State
from monitor.text import printable


def add(sub: Commands) -> None:
    """ingest, detect and compact: the commands over the lake."""
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
    i.add_argument("--since", type=when, metavar="TIME", help="ISO date/time (UTC) or a duration ago: 7d, 12h")
    i.add_argument("--until", type=when, metavar="TIME", help="ISO date/time (UTC) or a duration ago")
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
    d.add_argument("--since", required=True, type=when, metavar="TIME", help="ISO date/time (UTC) or 7d, 12h")
    d.add_argument("--until", type=when, metavar="TIME", help="default: now")
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


def ingest_command(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
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
        summary = from_sources(
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


def detect_command(args: argparse.Namespace, cfg: config_module.Config, err: Console) -> int:
    state = State(args.state)
    until = args.until or datetime.now(UTC)
    accounts = inventory.load(cfg, state)
    sinks = (
        delivery.build(
            delivery.configured(cfg, channel=args.slack_channel, webhook=args.slack_webhook, jsonl=args.jsonl),
            state,
            delivery.guides(load()),
            extra=["console"],
            inventory=accounts,
            console=console(),
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
    detectors = detectors_of(args, cfg)
    batch = delivery.backfill(args.since, until, [d.id for d in detectors], args.post_each) if args.alert else None
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
        console().print(f"[bold]{len(set(result.new) - set(result.suppressed))} new findings[/]")
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


def compact_command(args: argparse.Namespace, err: Console) -> int:
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
