"""The monitor watching itself: findings for the failures a silent monitor would otherwise hide.

- `silent-source`: an account and region that delivered events has sent none for longer than the
  configured window (a trail stopped, its bucket policy or notification broke);
- `incomplete-reads`: a source could not be read completely for several cycles in a row;
- `undelivered-alerts`: findings a sink could not deliver (sent to the fallback sink, not to the
  sink that is failing).

They take the findings contract's shape (no events behind them) and the normal outbox path, so
they are deduplicated, suppressible and delivered exactly like detector findings. The id of a
silence is tied to its last event, so one silence is one finding however long it lasts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from detectors.core.base import Guide, finding_id
from detectors.core.severity import Severity
from monitor.outbox.finding import OWN_DETECTOR, Finding, iso
from monitor.store.ledger import Activity
from monitor.store.state import State

DETECTOR = OWN_DETECTOR
GUIDES: Mapping[str, Guide] = {
    DETECTOR: Guide(
        triage=(
            "Silent source: check the trail is logging (`aws cloudtrail get-trail-status`) and its S3/SNS "
            "delivery errors; an account or region that is quiet by nature can be suppressed.",
            "Incomplete reads: the finding's details name the source and the last error (throttling, access "
            "denied, a broken object).",
            "Undelivered alerts: the details list the findings and the sink's last error; the findings are in "
            "the outbox (`trailguard findings show ID`).",
        ),
        investigation=(
            "Compare with the source: was the trail stopped (`StopLogging`, `DeleteTrail`) or its bucket policy "
            "changed just before the silence?",
        ),
        false_positives=("A region with no activity at all; an account closed on purpose.",),
        response=(
            "Restore the trail or the delivery, then `trailguard findings resolve ID --note ...`; for alerts, fix "
            "the sink (token, channel) and run `trailguard findings retry`.",
        ),
    )
}

TITLES = {
    "silent-source": "An account and region stopped delivering events",
    "incomplete-reads": "A source cannot be read completely",
    "undelivered-alerts": "Alerts cannot be delivered",
}


def _finding(
    kind: str, key: str, since: datetime, now: datetime, severity: Severity, summary: str, **extra: Any
) -> Finding:
    return Finding(
        finding_id=finding_id(DETECTOR, kind, key, since),
        detector=DETECTOR,
        kind=kind,
        severity=str(severity),
        title=TITLES[kind],
        summary=summary,
        event_ids=(),
        event_names=(),
        event_time=iso(since),
        last_seen=iso(now),
        account_id=extra.pop("account_id", None),
        region=extra.pop("region", None),
        dedup_key=key,
        details=extra,
    )


def watched(
    activity: Mapping[tuple[str, str], Activity],
    settle: timedelta,
    after: timedelta,
    configured: Collection[tuple[str, str]] = (),
) -> dict[tuple[str, str], datetime]:
    """The (account, region) pairs whose silence means something, with their newest event.

    Events are attacker-controlled: anyone who can put a file in front of the monitor can name any
    account and region. So a pair is watched when it is configured, or when it has delivered for
    at least `settle` by the monitor's own clock and was live while watched (its newest event
    within `after` of when the monitor first saw it): a burst of made-up or old events never is.
    """
    found = {}
    for pair, seen in activity.items():
        live = seen.first_seen is None or (
            seen.last_seen - seen.first_seen >= settle and seen.newest_event >= seen.first_seen - after
        )
        if pair in configured or live:
            found[pair] = seen.newest_event
    return found


def silent_sources(activity: Mapping[tuple[str, str], datetime], now: datetime, after: timedelta) -> list[Finding]:
    """A finding per watched account and region whose newest event is older than `after`."""
    found = []
    for (account, region), newest in sorted(activity.items()):
        quiet = now - newest
        if quiet > after:
            hours = quiet.total_seconds() / 3600
            summary = (
                f"No CloudTrail events from account {account} in {region} for {hours:.1f} h "
                f"(last event {iso(newest)}): the trail may have stopped or its delivery broken."
            )
            found.append(
                _finding(
                    "silent-source",
                    f"{account}/{region}",
                    newest,
                    now,
                    Severity.HIGH,
                    summary,
                    account_id=account,
                    region=region,
                    silent_hours=round(hours, 1),
                )
            )
    return found


def incomplete_reads(
    state: State, sources: Sequence[str], failing: Mapping[str, str], now: datetime, cycles: int
) -> list[Finding]:
    """Count each source's cycles in a row with incomplete reads (kept in the state file); a finding past `cycles`."""
    found = []
    for uri in sources:
        previous = state.cursor("watchdog", "incomplete", uri)
        if uri not in failing:
            if previous:
                state.set_cursor("watchdog", "incomplete", uri, "")
            continue
        count, _, started = (previous or "").partition("|")
        streak = int(count or 0) + 1
        since = datetime.fromisoformat(started) if started else now
        state.set_cursor("watchdog", "incomplete", uri, f"{streak}|{since.isoformat()}")
        if streak >= cycles:
            summary = f"Source {uri} could not be read completely for {streak} cycles in a row: {failing[uri]}"
            found.append(
                _finding(
                    "incomplete-reads",
                    uri,
                    since,
                    now,
                    Severity.MEDIUM,
                    summary,
                    source=uri,
                    cycles=streak,
                    error=failing[uri],
                )
            )
    return found


def undelivered(state: State, sinks: Iterable[str], now: datetime, min_attempts: int = 3) -> list[Finding]:
    """One finding per sink (per day) listing the findings it failed to deliver, or to follow up in their threads
    (a follow-up's message is delivered to `<sink>:<what>`)."""
    by_sink: dict[str, list[dict[str, Any]]] = {}
    for item in state.undelivered(list(sinks), min_attempts):
        by_sink.setdefault(item["sink"].partition(":")[0], []).append(item)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    found = []
    for sink, items in sorted(by_sink.items()):
        summary = f"{len(items)} findings could not be delivered to {sink}; last error: {items[-1]['error']}"
        found.append(
            _finding(
                "undelivered-alerts",
                sink,
                day,
                now,
                Severity.HIGH,
                summary,
                sink=sink,
                findings=[i["finding_id"] for i in items],
                error=items[-1]["error"],
            )
        )
    return found
