"""Every command-line option, defined once: a command takes its own with `options(parser, "lake", ...)`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from detectors.core.severity import Severity
from monitor.cli.common import at_least_one, existing, when

SEVERITIES = tuple(str(s) for s in Severity)  # least severe first
_ENGINE = "pandas (default): worker processes and one day at a time here, memory flat over any range; dask: the "
_ENGINE += "work as tasks on a Dask cluster (needs trailguard[dask]), with the same results"

OPTIONS: dict[str, dict[str, Any]] = {
    "lake": {"metavar": "URI", "help": "lake directory or s3://bucket/prefix (default: lake.uri)"},
    "state": {"type": Path, "metavar": "FILE", "help": "SQLite state file (default: state.path)"},
    "since": {"type": when, "metavar": "TIME", "help": "ISO date/time (UTC) or a duration ago: 7d, 12h"},
    "until": {"type": when, "metavar": "TIME", "help": "ISO date/time (UTC) or a duration ago (default: now)"},
    "detector": {"action": "append", "metavar": "ID", "help": "run only this detector (repeatable)"},
    "rules": {
        "action": "append",
        "type": existing,
        "default": [],
        "metavar": "PATH",
        "help": "Sigma rule files or folders to run as detectors too (repeatable; besides [sigma] paths)",
    },
    "workers": {"type": at_least_one, "default": None, "help": "parsing processes (default: one per core)"},
    "no-progress": {"action": "store_true", "help": "never show the progress bar"},
    "alert": {"action": "store_true", "help": "queue new findings for delivery and deliver them"},
    "engine": {"choices": ("pandas", "dask"), "default": "pandas", "help": _ENGINE},
    "dask-scheduler": {"metavar": "ADDRESS", "help": "with --engine dask: its scheduler (default: a local cluster)"},
    # ingest
    "source": {"action": "append", "metavar": "URI", "help": "a source (repeatable; default: sources)"},
    "account": {"action": "append", "default": [], "metavar": "ID", "help": "only this account (repeatable)"},
    "region": {"action": "append", "default": [], "help": "s3, securitylake: only this region (repeatable)"},
    "role-arn": {"help": "a role to assume for reading the sources (refreshing credentials)"},
    "commit-inputs": {"type": at_least_one, "default": 500, "metavar": "N", "help": "commit at least every N inputs"},
    # compact
    "date": {"type": date.fromisoformat, "metavar": "YYYY-MM-DD", "help": "the day (UTC)"},
    "force": {"action": "store_true", "help": "compact even a day that may still receive events"},
    # detect
    "slice-hours": {
        "type": int,
        "default": 24,
        "choices": (1, 2, 3, 4, 6, 8, 12, 24),
        "metavar": "HOURS",
        "help": "detect this many hours at a time (default 24; fewer hold fewer events in memory per task)",
    },
    "suppressions": {"type": Path, "metavar": "FILE", "help": "TOML [[suppress]] rules: matched findings never sent"},
    "post-each": {"action": "store_true", "help": "with --alert over a backfill: post every finding, not a summary"},
    "jsonl": {"type": Path, "metavar": "FILE", "help": "with --alert: also append new findings to this file"},
    "slack-webhook": {"action": "store_true", "help": "with --alert: post through SLACK_WEBHOOK_URL (at least once)"},
    "slack-channel": {"metavar": "ID", "help": "with --alert: post to this channel (token: SLACK_BOT_TOKEN[_FILE])"},
    # scan
    "format": {"choices": ("jsonl", "table"), "default": "jsonl", "help": "output format (default: jsonl)"},
    "fail-on": {
        "choices": SEVERITIES,
        "metavar": "SEVERITY",
        "help": "exit 1 when a finding at or above this severity exists (info, low, medium, high, critical)",
    },
    "history": {
        "dest": "lake",
        "metavar": "LAKE",
        "help": "a lake as history: stateful detectors compare the scanned events with its days before them",
    },
    # demo and generate
    "dir": {"type": Path, "help": "where the demo lives (default: .demo, or .demo-live with --live; recreated)"},
    "live": {"action": "store_true", "help": "run the service on a folder where new activity lands, until Ctrl-C"},
    "every": {"type": float, "default": 5.0, "help": "--live: seconds between steps (default: 5)"},
    "steps": {"type": int, "help": "--live: stop after this many steps (the story is told in the first 10)"},
    "events": {"type": int, "default": 20_000, "help": "about how many events a day (default: 20000)"},
    "days": {"type": int, "default": 1, "help": "days of activity, the story in the last (default: 1)"},
    "accounts": {"type": int, "default": 3, "help": "accounts of the organization, at least 3 (default: 3)"},
    "seed": {"type": int, "default": 7, "help": "the random seed: the same seed, the same day (default: 7)"},
    # notebooks
    "folder": {"type": Path, "default": Path("notebooks"), "help": "where the notebooks go (default: ./notebooks)"},
    "ip": {"default": "127.0.0.1", "help": "the address Jupyter listens on (default: 127.0.0.1)"},
    "port": {"type": int, "default": 8888, "help": "its port (default: 8888)"},
    "no-start": {"action": "store_true", "help": "only write the notebooks out"},
    # the others
    "once": {"action": "store_true", "help": "run one cycle and exit (2 if it had errors), e.g. from cron"},
    "offline": {"action": "store_true", "help": "only validate the configuration and print the policy"},
    "note": {"help": "why it is resolved"},
    "status": {"choices": ("open", "resolved"), "help": "only these"},
    "severity": {"choices": SEVERITIES, "metavar": "SEVERITY", "help": "only findings at least this severe"},
}


def options(
    parser: argparse.ArgumentParser, *names: str, required: tuple[str, ...] = (), helps: Mapping[str, str] = {}
) -> None:
    """Add these options, each as `--name` (`history` as `--lake`), those in `required` required, with `helps`
    saying what one means for this command."""
    for name in names:
        wanted = ({"required": True} if name in required else {}) | ({"help": helps[name]} if name in helps else {})
        parser.add_argument("--lake" if name == "history" else f"--{name}", **OPTIONS[name] | wanted)
