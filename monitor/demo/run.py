"""`trailguard demo`: the whole flow on a generated day, with no AWS account and no Slack workspace.

Three accounts in two regions with a story inside a day of benign noise (root signs in without
MFA from a new address and mints itself a key; a user creates a key for another user; a role is
assumed from outside the organization) go through the real pipeline: files -> lake -> detectors
-> outbox -> console, and the exact Slack messages are written to a file (or posted, when a bot
token and channel are given). The lake starts with a week of history, so the organization's own
nightly deploy pipeline is known to the cross-account baseline and stays quiet.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from shlex import quote

from detectors.core.base import Context, Settings
from detectors.core.registry import load
from monitor import RequestError
from monitor.config import Config
from monitor.demo.generator import ORG_ACCOUNTS, generate_history, generate_trail
from monitor.detect.pipeline import CycleResult, Plan, cycle
from monitor.ingest.run import Options, from_uris
from monitor.ingest.sources.settings import SourceSettings
from monitor.lake import Lake
from monitor.lake_sql import duckdb_view
from monitor.outbox import delivery
from monitor.outbox.delivery import Delivered
from monitor.outbox.dispatcher import Dispatcher, Route
from monitor.outbox.sinks.jsonl import JsonlSink
from monitor.outbox.sinks.slack_client import token_from_environment
from monitor.outbox.sinks.slack_message import render
from monitor.service.inventory import Account, Inventory
from monitor.store.state import State

DEMO_DAY = datetime(2024, 3, 1, 23, 59, tzinfo=UTC)
DEMO_CHANNEL = "#security-alerts"
ORG_NAMES = ("prod", "dev", "shared-services")
HISTORY_DAYS = 7


@dataclass(frozen=True)
class Demo:
    root: Path
    result: CycleResult
    slack_file: Path
    accounts: Inventory = field(default_factory=Inventory)
    posted: Delivered | None = None  # when a Slack channel and token were set

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def views(self) -> Path:
        """The DuckDB view over this demo's lake (`duckdb -init` it)."""
        return self.root / "views.sql"

    def notebooks_command(self) -> str:
        """The command that opens the investigation notebooks on this demo's lake and state."""
        lake, state = quote(str(self.lake.resolve())), quote(str((self.root / "state.db").resolve()))
        return f"trailguard notebooks --lake {lake} --state {state}"


class DemoError(RequestError):
    """The demo's directory cannot be used: it holds what the demo did not make."""


MARKER = ".trailguard-demo"
_MADE = frozenset(
    {MARKER, "trail", "history", "lake", "slack-messages.jsonl", "undelivered.jsonl", "views.sql"}
    | {"trailguard.toml", "findings.jsonl"}  # the live demo's
)


def fresh(root: Path) -> None:
    """Empty `root` for a new demo, refusing to delete anything the demo did not make there."""
    if root.exists():
        if not root.is_dir():
            raise DemoError(f"{root}: not a directory")
        foreign = [p.name for p in root.iterdir() if p.name not in _MADE and not p.name.startswith("state.db")]
        if foreign and not (root / MARKER).exists():
            raise DemoError(
                f"{root}: holds files the demo did not make ({', '.join(sorted(foreign)[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}): "
                "give --dir a new or empty directory"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("made by trailguard demo, which empties this directory on every run\n")


def run(root: Path, events: int = 20_000, cfg: Config | None = None) -> Demo:
    """Build the demo from scratch under `root` (emptied first, if the demo made it) and run one cycle over it.

    With a Slack channel configured (`TRAILGUARD__SLACK__CHANNEL`) and a bot token in the
    environment, the messages are also posted for real.
    """
    cfg = cfg or Config()
    fresh(root)
    trail, history = root / "trail", root / "history"
    generate_trail(trail, events)
    generate_history(history, HISTORY_DAYS)
    lake, state = Lake(str(root / "lake")), State(root / "state.db")
    from_uris([str(history)], lake, state, options=Options(workers=1))  # the lake already holds last week: the baseline
    catalog = load()
    accounts = Inventory({i: Account(i, name, "organization") for i, name in zip(ORG_ACCOUNTS, ORG_NAMES, strict=True)})
    state.replace_org_accounts((a.id, a.name, "ACTIVE") for a in accounts.accounts.values())  # as a refresh would
    ctx = Context(accounts.settings(Settings()), now=DEMO_DAY)
    guides = delivery.guides(catalog)
    post = bool(cfg.slack.channel and token_from_environment())
    sinks = delivery.build(cfg, state, guides, inventory=accounts) if post else delivery.Sinks(Dispatcher(state))
    slack_file = root / "slack-messages.jsonl"
    channel, names = cfg.slack.channel or DEMO_CHANNEL, accounts.names()
    written = JsonlSink(  # the messages Slack would get, as `chat.postMessage` arguments
        slack_file,
        name="slack-file",
        line=lambda finding: render(finding, guides.get(finding.detector), names).post(channel),
        key=lambda line: line["metadata"]["event_payload"]["finding_id"],
    )
    sinks.routes.insert(0, Route(written))
    result = cycle([SourceSettings(str(trail))], lake, state, catalog, ctx, Plan(sinks.names), Options(workers=1))
    posted = sinks.deliver()
    (root / "views.sql").write_text(duckdb_view(str((root / "lake").resolve())))
    return Demo(root, result, slack_file, accounts, posted if post else None)
