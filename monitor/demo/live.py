"""`trailguard demo --live`: the service at work on a laptop, with no AWS account and no Slack.

A folder plays the trail bucket: every few seconds a new object of routine activity lands in it for each
account and region, and every other step one beat of the demo's story (root signing in without MFA, a key
made for another user and tried from the attacker's address, a role assumed from outside the
organization, and benign look-alikes), timed now. The real service's cycle and delivery (`Service.once`,
what `trailguard run` schedules) ingest it, detect and show each new finding as a card, as it would
reach Slack. The lake starts with a week of history, as in the demo, and the configuration the service
runs with is written beside it, so `trailguard check --config` and `trailguard run --config` work on it.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from shlex import quote
from types import FrameType

from rich.console import Console

from detectors.core.registry import load
from monitor.config import load as load_config
from monitor.demo.generator import ORG_ACCOUNTS, REGIONS, Beat, TrailWriter, generate_history, retimed, routine, story
from monitor.demo.run import HISTORY_DAYS, ORG_NAMES, fresh
from monitor.ingest.run import Options, from_uris
from monitor.lake import Lake
from monitor.service.run import Service
from monitor.store.state import State

CONFIG = """\
# Written by `trailguard demo --live`: the service watching {root}/trail, where generated activity lands.
[[sources]]
uri = "{root}/trail"

[lake]
uri = "{root}/lake"

[state]
path = "{root}/state.db"

[schedule]
interval_seconds = {every}

[alerts]
jsonl = "{root}/findings.jsonl"   # every finding, as JSON lines
"""


@dataclass
class Feed:
    """What lands in the trail folder at each step: `per_object` routine calls in every account and region in the
    last `every` seconds, and on every other step the story's next beat, ending now."""

    writer: TrailWriter
    every: float
    per_object: int = 20
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    step: int = 0
    beats: list[Beat] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.beats = story(self.rng, datetime.now(UTC))

    def next(self, now: datetime) -> str:
        """Write this step's objects; returns what they hold, for the terminal."""
        self.step += 1
        told = self.beats[self.step // 2 - 1] if self.step % 2 == 0 and self.step // 2 <= len(self.beats) else None
        planted = retimed(told, now) if told else []
        span = max(1, int(self.every))
        for account in ORG_ACCOUNTS:
            for region in REGIONS:
                calls = [
                    routine(self.rng, now - timedelta(seconds=self.rng.randrange(span)), account, region)
                    for _ in range(self.per_object)
                ]
                calls += [r for r in planted if (r["recipientAccountId"], r["awsRegion"]) == (account, region)]
                calls.sort(key=lambda r: r["eventTime"])
                self.writer.write(account, region, now, calls, f"{self.step:06d}")
        routine_calls = self.per_object * len(ORG_ACCOUNTS) * len(REGIONS)
        return f"{routine_calls} routine calls" + (f" + {told.caption}" if told else "")


def live(root: Path, every: float, steps: int | None, out: Console) -> int:
    """Feed the folder and run the service's cycle after each step, until `steps` are done or SIGINT/SIGTERM."""
    fresh(root)
    root = root.resolve()
    config = root / "trailguard.toml"
    config.write_text(CONFIG.format(root=root, every=max(1, round(every))))
    cfg = load_config(config)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    generate_history(root / "history", HISTORY_DAYS, day=today)
    state = State(root / "state.db")
    try:  # the lake already holds last week (the baseline) and knows the organization, as a refresh would
        from_uris([str(root / "history")], Lake(str(root / "lake")), state, options=Options(workers=1))
        state.replace_org_accounts((a, name, "ACTIVE") for a, name in zip(ORG_ACCOUNTS, ORG_NAMES, strict=True))
    finally:
        state.close()
    service = Service(cfg, tuple(load()), console=out)
    feed = Feed(TrailWriter(root / "trail"), every)
    out.print(
        f"[bold]TrailGuard live demo[/]: new activity lands in {root / 'trail'} every {every:g} s; the service "
        f"ingests it, detects and shows each new finding. Configuration: {config}. Stop with Ctrl-C.",
        highlight=False,
    )
    with _stopping(service.stop):
        while steps is None or feed.step < steps:
            now = datetime.now(UTC)
            out.print(f"[dim]{now:%H:%M:%S}[/] step {feed.step + 1}: {feed.next(now)}", highlight=False)
            service.once()
            if service.stop.wait(every):
                break
    out.print(
        f"Stopped after {feed.step} steps. Findings: trailguard findings list --state {quote(str(root / 'state.db'))}; "
        f"the same service on a schedule: trailguard run --config {quote(str(config))}",
        highlight=False,
    )
    return 0


@contextmanager
def _stopping(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM end the loop after the step in flight (its cycle commits first)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
