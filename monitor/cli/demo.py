"""`demo` and `generate`: the whole flow on a generated day, and the day itself."""

from __future__ import annotations

import argparse
from pathlib import Path
from shlex import quote
from typing import TYPE_CHECKING

from rich.console import Console

from detectors.core.lazy import Later
from monitor.cli.common import Commands, app, console, request, say
from monitor.cli.options import options

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.demo import live
    from monitor.demo import run as demo_run
    from monitor.outbox.sinks import console as console_sink
else:
    live = Later("monitor.demo.live")
    demo_run = Later("monitor.demo.run")
    console_sink = Later("monitor.outbox.sinks.console")


def add(sub: Commands) -> None:
    options(sub.add_parser("demo", demo), "dir", "events", "live", "every", "steps")
    g = sub.add_parser("generate", generate)
    g.add_argument("out", type=Path, metavar="DIR", help="where the objects are written (made if need be)")
    last = {"date": "the last day (default: the 24 hours before now)"}
    options(g, "date", "days", "accounts", "events", "seed", helps=last)


def demo(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    if args.live:
        return live.live(args.dir or Path(".demo-live"), args.every, args.steps, console())
    out, done = console(), demo_run.run(args.dir or Path(".demo"), args.events, cfg)
    ingested, found, state = done.result.ingest, done.result.detect, done.root / "state.db"
    out.print(
        f"[bold]TrailGuard demo[/]: {ingested.events:,} events from {ingested.inputs} objects ingested into a "
        f"lake holding {demo_run.HISTORY_DAYS} days of history (the cross-account baseline)"
    )
    if found is not None:
        console_sink.render(found.findings, out, done.accounts.names())
    say(out, "", f"Slack messages that would be posted: {done.slack_file}")
    if done.posted is not None:
        say(out, *done.posted.lines, *(f"error: {e}" for e in done.posted.errors))
    typed = quote(str(state))  # the commands as they can be pasted, whatever the folder's name holds
    say(
        out,
        f"Parquet lake: {done.lake} (in DuckDB: duckdb -init {quote(str(done.views))}, then FROM trailguard_events)",
        f"State and findings outbox: {state} (trailguard findings list --state {typed})",
        f"{len(found.incidents) if found else 0} incidents, the findings linked by shared identities and addresses"
        f" (trailguard incidents list --state {typed} --format table)",
    )
    out.print(f"Investigate in Jupyter: {done.notebooks_command()}", markup=False, highlight=False, soft_wrap=True)
    return 0


def generate(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    done = app.generate(request(app.GenerateRequest, args))
    say(
        err,
        f"wrote {len(done.written)} objects under {args.out}: {args.days} days of {args.accounts} accounts, "
        f"{done.start:%F %H:%M} to {done.end:%F %H:%M} UTC",
    )
    return 0
