"""The IAM hygiene checks on their schedule: read each account's IAM state, store what is wrong, and
resolve what was wrong and is not any more.

A problem keeps one finding while it lasts: a snapshot that still shows it moves the open
finding's `last_seen` (same id, same alert thread, the summary as first alerted); the first
snapshot without it resolves the finding with a
note that the Slack sink replies in the thread. If the problem comes back later, it is a new
finding and a new alert. An account that could not be read resolves nothing and is reported; it
is read again at the next run, not every cycle, so that a missing permission does not hammer IAM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from detectors.core.base import Context
from detectors.iam_hygiene import IamHygiene, IamSnapshot
from monitor.config import Config
from monitor.ingest.sources import aws, iam
from monitor.ingest.sources.probe import caller
from monitor.outbox.finding import Finding, from_frame
from monitor.store.state import State


@dataclass
class HygieneResult:
    accounts: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def due(cfg: Config, state: State, now: datetime) -> bool:
    """Enabled, and the last complete run is older than the interval."""
    last = state.cursor("hygiene", "", "")
    interval = timedelta(hours=cfg.hygiene.interval_hours)
    return cfg.hygiene.enabled and (last is None or now - datetime.fromisoformat(last) >= interval)


def run(
    cfg: Config,
    state: State,
    ctx: Context,
    sinks: Sequence[str] = (),
    suppressed_by: Callable[[Finding], str | None] | None = None,
) -> HygieneResult:
    """Snapshot every configured account now and reconcile the findings; errors name the account."""
    result = HygieneResult()
    for listed, role in cfg.hygiene.targets():
        where = listed or "the current account"
        try:
            account = listed or caller().split(":")[4]
            snap = iam.snapshot(account, ctx.now, aws.session(role) if role else None)
        except (ClientError, BotoCoreError, ValueError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            result.errors.append(f"iam hygiene in {where}: {code or f'{type(exc).__name__}: {exc}'}")
            continue
        new, resolved = reconcile(state, IamHygiene(), snap, ctx, sinks, suppressed_by)
        result.accounts.append(account)
        result.new += new
        result.resolved += resolved
    state.set_cursor("hygiene", "", "", ctx.now.isoformat())  # an unreadable account waits for the next run too
    return result


def reconcile(
    state: State,
    check: IamHygiene,
    snap: IamSnapshot,
    ctx: Context,
    sinks: Sequence[str] = (),
    suppressed_by: Callable[[Finding], str | None] | None = None,
) -> tuple[list[str], list[str]]:
    """Store the snapshot's problems (an open one keeps its id) and resolve the open ones it no longer has.

    Returns the ids of the new findings and of the resolved ones.
    """
    still = {(f.kind, f.dedup_key): f for f in state.open_findings(check.id, snap.account_id)}
    found = []
    for item in from_frame(check.evaluate(snap, ctx)):
        prior = still.pop((item.kind, item.dedup_key), None)
        found.append(replace(item, finding_id=prior.finding_id) if prior else item)
    stored = state.store_findings(found, sinks, suppressed_by)
    taken = f"{snap.taken_at:%Y-%m-%d %H:%M} UTC"
    for prior in still.values():
        state.resolve(prior.finding_id, f"fixed: the IAM state of {snap.account_id} read at {taken} no longer shows it")
    return stored.new, [f.finding_id for f in still.values()]
