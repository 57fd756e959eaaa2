"""The outbox's delivery state machine, in one place, for every sink.

A delivery is `pending` until its sink's turn; `posting` (committed) before the transport is called,
so a crash in between leaves a mark; then `sent`, or `pending` again after a growing delay when the
transport refused (`failed` past MAX_ATTEMPTS, for `findings retry`), or `failed` at once when the
finding can never be sent as it is. A `posting` delivery met again is looked up first when the
transport can look (`Searchable.find`): recorded as sent, or sent again. So a searchable transport
delivers each finding exactly once, and one that cannot look at least once. Deliveries of findings
below a route's minimum severity are suppressed, and queued again by the outbox should they grow
more severe. A threaded transport's batches, replies, escalations and resolutions are in `threads`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.outbox import threads
from monitor.outbox.finding import Finding, rank
from monitor.outbox.transport import Mark, Receipt, Refused, Searchable, Threaded, Transport, Unknown, Unsendable
from monitor.store.outbox import BELOW_FLOOR, Outbox

MAX_ATTEMPTS = 8
Due = tuple[Finding, dict[str, Any]]  # a finding and its delivery to one sink


@dataclass(frozen=True)
class Route:
    """A transport and the policy it is delivered with."""

    transport: Transport
    floor: str = "info"  # less severe findings are stored and listed, not delivered
    max_posts: int | None = None  # per pass: a backlog yields to new, more severe findings between passes
    burst: int | None = None  # more due at once than this in one channel: a summary (threaded transports)


@dataclass
class Outcome:
    sent: int = 0
    recovered: int = 0
    retrying: int = 0
    failed: int = 0
    summaries: int = 0
    replies: int = 0
    escalations: int = 0
    retold: int = 0  # incident messages updated with the findings that joined them
    resolutions: int = 0
    more: bool = False  # deliveries were left for the next pass (more were due than one pass makes)
    errors: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        """Another pass's counts added to these."""
        for counter in fields(self):
            if counter.type == "int":
                setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        self.errors += other.errors


@dataclass
class Dispatcher:
    state: Outbox
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def deliver(self, route: Route, stop: threading.Event | None = None) -> Outcome:
        """One pass for one route: settle the deliveries a crash left `posting`, send what is due (most severe
        first, at most `max_posts`, none once `stop` is set), then a threaded transport's follow-ups."""
        sink, out = route.transport, Outcome()
        threaded = sink if isinstance(sink, Threaded) else None
        if threaded is not None:
            threads.recover_summaries(self.state, threaded, out)
        for finding, delivery in self.state.deliveries_in(sink.name, "posting", due_by=self.now().isoformat()):
            self.recover(sink, finding, delivery, out)
        pending = self.state.deliveries_in(sink.name, "pending", due_by=self.now().isoformat())
        due = self.below_floor(sink.name, pending, route.floor)
        batches = threads.Batches(self.state, threaded, route.burst, due) if threaded else None
        posts = 0
        for finding, delivery in batches.due if batches else due:
            thread = channel = None
            head = self.state.incident_head(delivery["incident_id"], sink.name, finding.finding_id)
            if threaded is not None and head is not None and not threads.backfilled(delivery):
                thread, channel = head["ts"], head["channel"]  # joining an incident already posted: in its thread
            elif batches is not None and (batch := batches.of(finding, delivery)) is not None:
                thread = batches.summary(batch, finding, out)
                if thread is None:  # its summary is not posted (yet): its findings wait with it
                    continue
                if batch.startswith(threads.BACKFILL):  # a backfill's findings are delivered through its summary
                    self.sent(sink.name, finding, Receipt(batches.sink.channel(finding), None, thread))
                    continue
            if (route.max_posts is not None and posts >= route.max_posts) or (stop is not None and stop.is_set()):
                out.more = True
                break
            self.send(sink, finding, delivery, out, thread, channel)
            posts += 1
        if batches is not None:
            batches.recount(out)
            threads.follow_up(self.state, batches.sink, out)
        return out

    def send(
        self,
        sink: Transport,
        finding: Finding,
        delivery: dict[str, Any],
        out: Outcome,
        thread: str | None = None,
        channel: str | None = None,
    ) -> None:
        """Post one finding (into `thread` in `channel` when given: an incident's or a summary's)."""
        fid, attempts = finding.finding_id, int(delivery["attempts"]) + 1
        channel = channel or (sink.channel(finding) if isinstance(sink, Threaded) else None)
        self.state.update_delivery(
            fid, sink.name, status="posting", channel=channel, thread_ts=thread, attempts=attempts
        )
        try:
            if thread and isinstance(sink, Threaded):
                receipt = sink.send_in(thread, finding, channel)
            else:
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

    def recover(self, sink: Transport, finding: Finding, delivery: dict[str, Any], out: Outcome) -> None:
        """A delivery whose outcome is unknown (a crash, a timeout, a dropped connection): looked for before it
        is ever sent again, where the transport can look. A lookup that fails (the sink is down) counts as an
        attempt and is tried again after the refused posts' growing delay, so that a sink that stays down makes
        the delivery undelivered (the watchdog's alert), then failed; its mark keeps the time of the post."""
        if isinstance(sink, Searchable):
            mark = Mark(delivery["channel"], delivery["thread_ts"], datetime.fromisoformat(delivery["updated_at"]))
            try:
                receipt = sink.find(finding, mark)
            except (OSError, Refused, Unknown) as exc:  # cannot tell yet: stays `posting`
                fid, attempts, error = finding.finding_id, int(delivery["attempts"]) + 1, f"lookup: {exc}"
                out.errors.append(f"{sink.name}: finding {fid}: {error}")
                if attempts >= MAX_ATTEMPTS:
                    self.state.update_delivery(fid, sink.name, status="failed", attempts=attempts, error=error)
                    out.failed += 1
                else:
                    self.state.lookup_failed(fid, sink.name, attempts, self.later(attempts).isoformat(), error)
                return
            if receipt is not None:
                self.sent(sink.name, finding, receipt)
                out.recovered += 1
                return
        thread = delivery["thread_ts"]
        self.send(sink, finding, delivery, out, thread, delivery["channel"] if thread else None)

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
        self.state.update_delivery(
            finding_id,
            sink,
            status="pending",
            attempts=attempts,
            error=error,
            next_attempt_at=self.later(attempts).isoformat(),
        )
        out.retrying += 1

    def later(self, attempts: int) -> datetime:
        """When a delivery tried `attempts` times is due again: a delay that doubles, up to an hour."""
        return self.now() + timedelta(seconds=min(30 * 2**attempts, 3600))

    def below_floor(self, sink: str, due: list[Due], floor: str) -> list[Due]:
        """Deliveries of findings less severe than the route's minimum are suppressed; the rest are returned."""
        kept = []
        for finding, delivery in due:
            if rank(finding.severity) < rank(floor):
                self.state.update_delivery(finding.finding_id, sink, status="suppressed", rule=BELOW_FLOOR)
            else:
                kept.append((finding, delivery))
        return kept
