"""`ingest` and `compact`: filling the lake and keeping its days in few files."""

from __future__ import annotations

import argparse
import threading
import time
from typing import TYPE_CHECKING

from rich.console import Console

from detectors.core.lazy import Later
from monitor.cli.common import EXIT_INPUT, Commands, app, catalog, report, request, say, spinner
from monitor.cli.options import options

if TYPE_CHECKING:
    from monitor.cli import running
    from monitor.config import Config
    from monitor.detect import detection
    from monitor.ingest.run import Summary
else:
    detection, running = Later("monitor.detect.detection"), Later("monitor.cli.running")


def add(sub: Commands) -> None:
    i = sub.add_parser("ingest", ingest)
    options(i, "source", "lake", "state", "since", "until", "account", "region", "role-arn", "workers")
    options(i, "engine", "dask-scheduler", "commit-inputs", "no-progress")
    options(sub.add_parser("compact", compact), "lake", "date", "force", required=("date",))


def ingest(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    started, bar, stop = time.monotonic(), spinner(err, args.no_progress), threading.Event()
    task = bar.add_task("ingesting")

    def update(s: Summary) -> None:
        rate = s.events / max(time.monotonic() - started, 1e-6)
        doing = running.STOPPING if stop.is_set() else "ingesting"
        bar.update(task, description=f"{doing}: {s.inputs} inputs, {s.events:,} events, {rate:,.0f} events/s")

    engine = app.Engine(args.engine, args.dask_scheduler)
    with bar, running.interruptible(stop, err, bar):  # Ctrl-C: the groups in flight are committed, no more start
        given = request(app.IngestRequest, args, sources=tuple(args.source or ()), engine=engine)
        s = app.ingest(cfg, given, update, stop)
    lag = s.lag()
    line = (
        ("interrupted: " if stop.is_set() else "")
        + f"ingested {s.inputs} inputs, {s.events} events ({s.duplicates} duplicates dropped), {s.quarantined} "
        f"quarantined, {s.bad_records} bad records, {s.retry_later} to retry"
        + (f", lag {lag / 60:.0f} min" if lag is not None else "")
        + ("; these are committed, a rerun ingests the rest" if stop.is_set() else "")
    )
    report(
        err,
        s.errors,
        line,
        s.coerced,
        [f"blind spot: {b}" for b in detection.blind_spots(s.absent, catalog.detectors_of(cfg))],
    )
    return running.EXIT_INTERRUPTED if stop.is_set() else EXIT_INPUT if s.errors else 0


def compact(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    done = app.compact(cfg, args.date, args.lake, args.force)
    say(
        err,
        f"compacted {done.day}: {done.files_before} files -> {done.files_after}, "
        f"{done.rows_before} rows -> {done.rows_after} unique events",
    )
    return 0
