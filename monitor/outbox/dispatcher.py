"""The outbox's delivery state machine, in one place, for every sink.

A delivery is `pending` until its sink's turn; `posting` (committed) before the transport is called,
so a crash in between leaves a mark; then `sent`, or `pending` again after a growing delay when the
transport refused (`failed` past MAX_ATTEMPTS, for `findings retry`), or `failed` at once when the
finding can never be sent as it is. A `posting` delivery met again is looked up first when the
transport can look (`Searchable.find`): recorded as sent, or sent again. So a searchable transport
delivers each finding exactly once, and one that cannot look at least once. Deliveries of findings
below a sink's minimum severity are suppressed, and queued again by the outbox should they grow
more severe.

Sinks are transports: `send(finding) -> Receipt`, raising `Refused`, `Unknown` or `Unsendable`. Adding
one is a module with that class and an entry in `monitor.outbox.delivery`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from monitor.outbox.finding import Finding, rank
from monitor.store.outbox import BELOW_FLOOR, Outbox

MAX_ATTEMPTS = 8
Due = tuple[Finding, dict[str, Any]]  # a finding and its delivery to one sink


class Refused(Exception):
    """The transport answered and did not take it: not delivered, tried again later."""


class Unknown(Exception):
    """It may have been delivered (a connection dropped after sending): looked up before any resend."""


class Unsendable(Exception):
    """It can never be delivered as it is (the transport rejects its shape): failed, not retried."""


@dataclass(frozen=True)
class Receipt:
    """Where a delivery landed, for the transports that can tell (a Slack channel and message ts)."""

    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None


class Transport(Protocol):
    name: str

    def send(self, finding: Finding) -> Receipt: ...


@runtime_checkable
class Searchable(Protocol):
    """A transport that can tell whether a finding already reached it."""

    def find(self, finding: Finding) -> Receipt | None: ...


@dataclass
class Outcome:
    sent: int = 0
    recovered: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        """Another pass's counts added to these (a subclass's counters too)."""
        for counter in fields(self):
            if counter.type == "int":
                setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        self.errors += other.errors


@dataclass
class Dispatcher:
    state: Outbox
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def deliver(self, sink: Transport, floor: str = "info", stop: threading.Event | None = None) -> Outcome:
        """One pass for one sink: settle the deliveries a crash left `posting`, then send what is due, most
        severe first, until done or `stop` is set."""
        out = Outcome()
        for finding, delivery in self.state.deliveries_in(sink.name, "posting"):
            if isinstance(sink, Searchable):
                try:
                    receipt = sink.find(finding)
                except (OSError, Refused, Unknown) as exc:  # cannot tell yet: stays `posting`
                    out.errors.append(f"{sink.name}: finding {finding.finding_id}: lookup: {exc}")
                    continue
                if receipt is not None:
                    self.sent(sink.name, finding, receipt)
                    out.recovered += 1
                    continue
            self.send(sink, finding, delivery, out)
        pending = self.state.deliveries_in(sink.name, "pending", due_by=self.now().isoformat())
        for finding, delivery in self.below_floor(sink.name, pending, floor):
            if stop is not None and stop.is_set():
                break
            self.send(sink, finding, delivery, out)
        return out

    def send(self, sink: Transport, finding: Finding, delivery: dict[str, Any], out: Outcome) -> None:
        fid, attempts = finding.finding_id, int(delivery["attempts"]) + 1
        self.state.update_delivery(fid, sink.name, status="posting", attempts=attempts)
        try:
            receipt = sink.send(finding)
        except Unsendable as exc:
            self.state.update_delivery(fid, sink.name, status="failed", error=str(exc))
            out.errors.append(f"{sink.name}: finding {fid}: {exc}")
            out.failed += 1
        except Refused as exc:
            self.retry_later(sink.name, fid, attempts, str(exc), out)
        except Unknown as exc:  # it may have arrived: stays `posting`, looked up before any resend
            self.state.update_delivery(fid, sink.name, error=str(exc))
            out.errors.append(f"{sink.name}: finding {fid}: outcome unknown: {exc}")
        else:
            self.sent(sink.name, finding, receipt)
            out.sent += 1

    def sent(self, sink: str, finding: Finding, receipt: Receipt) -> None:
        self.state.update_delivery(
            finding.finding_id,
            sink,
            status="sent",
            channel=receipt.channel,
            ts=receipt.ts,
            thread_ts=receipt.thread_ts,
            delivered_events=len(finding.event_ids),
            delivered_severity=finding.severity,
            error=None,
        )

    def retry_later(self, sink: str, finding_id: str, attempts: int, error: str, out: Outcome) -> None:
        """A refused delivery stays pending, due again after a growing delay; past MAX_ATTEMPTS it is failed."""
        out.errors.append(f"{sink}: finding {finding_id}: {error}")
        if attempts >= MAX_ATTEMPTS:
            self.state.update_delivery(finding_id, sink, status="failed", attempts=attempts, error=error)
            out.failed += 1
            return
        due = self.now() + timedelta(seconds=min(30 * 2**attempts, 3600))
        self.state.update_delivery(
            finding_id, sink, status="pending", attempts=attempts, error=error, next_attempt_at=due.isoformat()
        )
        out.retrying += 1

    def below_floor(self, sink: str, due: list[Due], floor: str) -> list[Due]:
        """Deliveries of findings less severe than the sink's minimum are suppressed; the rest are returned."""
        kept = []
        for finding, delivery in due:
            if rank(finding.severity) < rank(floor):
                self.state.update_delivery(finding.finding_id, sink, status="suppressed", rule=BELOW_FLOOR)
            else:
                kept.append((finding, delivery))
        return kept
