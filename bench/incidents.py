"""Top-level Slack messages per day, findings one by one beside incidents, on a generated month with attacks.

    python -m bench.incidents [--days 30] [--accounts 20] [--events 20000]

Generates `days` of an estate of `accounts` accounts (busy routine activity: changes and denials as in a large
estate; the organization's nightly deployment; the demo's story on the last day) with the demo's intrusion
injected on four more days (a week apart, each from its own address), ingests it into a lake (cached under
bench/out/), then runs the service's daily detection and Slack delivery twice over it, to the tests' local Slack
endpoint: with incidents, and with findings posted one by one (incidents off). Reports the top-level messages
per day of both, and on the attack days.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detectors.core.base import Context, Settings
from detectors.core.registry import BUILTIN
from monitor.demo.generator import TrailWriter, generate_days, organization, story
from monitor.detect.links import Linking
from monitor.detect.pipeline import Plan, detect
from monitor.ingest.run import Options, from_uris
from monitor.lake import Lake
from monitor.outbox.dispatcher import Dispatcher, Route
from monitor.outbox.sinks.slack import Channels, SlackSink
from monitor.outbox.sinks.slack_client import client
from monitor.store.state import State
from tests.slack_server import FakeSlack, serve

OUT = Path(__file__).resolve().parent / "out"
LAST = datetime(2024, 3, 30, tzinfo=UTC)


def month(days: int, accounts: int, events: int) -> tuple[Lake, list[datetime]]:
    """The lake of the month, and the days the intrusion was injected on."""
    root = OUT / f"incidents-busy-{days}d-{accounts}a-{events}"
    first = LAST - timedelta(days=days - 1)
    attacked = [first + timedelta(days=d) for d in range(6, days - 2, 7)]  # apart from the last day's story
    lake, done = Lake(str(root / "lake")), root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        generate_days(root / "trail", events, days, LAST, accounts=accounts, busy=True)
        writer = TrailWriter(root / "trail")
        for n, day in enumerate(attacked):  # root, the key it makes for another user, that key's use
            records = [r for beat in story(random.Random(n), day)[:3] for r in beat.records]
            for r in records:
                r["sourceIPAddress"] = (
                    f"203.0.113.{70 + n}" if r["sourceIPAddress"] == "203.0.113.66" else r["sourceIPAddress"]
                )
                at = datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00"))
                writer.write(r["recipientAccountId"], r["awsRegion"], at, [r], f"{n:02d}{r['eventID'][:6]}")
        from_uris([str(root / "trail")], lake, State(root / "state.db"), options=Options())
        shutil.rmtree(root / "trail")
        done.write_text("ok")
    return lake, attacked


def top_level_per_day(lake: Lake, days: int, accounts: int, linking: Linking | None, state_path: Path) -> list[int]:
    """Daily detection then delivery to Slack, as the service does it; each day's top-level messages."""
    fake = FakeSlack()
    server, url = serve(fake)
    try:
        state = State(state_path)
        ticks = [0.0]

        def sleep(seconds: float) -> None:
            ticks[0] += seconds

        sink = SlackSink(
            client("xoxb-bench", url, sleep=sleep), Channels("#alerts"), clock=lambda: ticks[0], sleep=sleep
        )
        route = Route(sink, "low", max_posts=10, burst=10)
        ctx = Context(Settings(organization_accounts=frozenset(organization(accounts))))
        counts, first = [], LAST - timedelta(days=days - 1)
        for d in range(days):
            before = len(fake.posts(thread=False))
            day = first + timedelta(days=d)
            detect(lake, state, BUILTIN, ctx, day, day + timedelta(days=1), Plan(("slack",), linking=linking))
            while Dispatcher(state).deliver(route).more:
                pass
            counts.append(len(fake.posts(thread=False)) - before)
        return counts
    finally:
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    lake, attacked = month(args.days, args.accounts, args.events)
    work = OUT / "incidents-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    findings = top_level_per_day(lake, args.days, args.accounts, None, work / "findings.db")
    incidents = top_level_per_day(lake, args.days, args.accounts, Linking(), work / "incidents.db")
    state = State(work / "incidents.db")
    sizes = Counter(len(i["finding_ids"]) for i in state.list_incidents())
    first = LAST - timedelta(days=args.days - 1)
    on_attack = [(first + timedelta(days=d)).date() in {a.date() for a in attacked} for d in range(args.days)]
    report = {
        "days": args.days,
        "accounts": args.accounts,
        "events_per_day": args.events,
        "findings_stored": sum(1 for _ in state.list_findings()),
        "incidents": sum(sizes.values()),
        "incident_sizes": dict(sorted(sizes.items())),
        "top_level_per_day_findings": findings,
        "top_level_per_day_incidents": incidents,
        "mean_after_first_week_findings": round(statistics.mean(findings[7:]), 2),
        "mean_after_first_week_incidents": round(statistics.mean(incidents[7:]), 2),
        "attack_days_findings": [n for n, a in zip(findings, on_attack, strict=True) if a],
        "attack_days_incidents": [n for n, a in zip(incidents, on_attack, strict=True) if a],
    }
    (OUT / "incidents.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
