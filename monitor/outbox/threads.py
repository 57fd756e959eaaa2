"""What a threaded transport (Slack) gets besides one message per finding, decided once for any such
transport: summaries of batches, and follow-ups in a posted finding's thread.

A batch (a backfill's, or a burst of more than `burst` findings due at once in one channel) gets one
summary per channel, recorded like a post so that it is posted once whatever restarts: a backfill's
findings are delivered through it, a burst's are posted in its thread. High and critical findings are
never folded into a summary (a thread reply notifies no one). A posted finding's thread gets a reply
when it gains events (and its message a counter), when it grows more severe (and the whole alert in
the new severity's channel), and when it is resolved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.outbox.finding import Finding, alone, rank
from monitor.outbox.transport import Receipt, Refused, Threaded, Undelivered
from monitor.store.outbox import Outbox

if TYPE_CHECKING:
    from monitor.outbox.dispatcher import Due, Outcome

BACKFILL = "backfill-"  # a backfill's batch: its findings are delivered through the summary, never one by one
BURST = "burst-"  # a burst's batch: its findings are posted in the summary's thread


def backfilled(delivery: Mapping[str, Any]) -> bool:
    """Delivered through a backfill's summary, never one by one."""
    return str(delivery["batch"] or "").startswith(BACKFILL)


def backfill_batch(since: datetime, until: datetime, detectors: Collection[str]) -> str:
    """The batch of a backfill over these days with these detectors: the same after any restart that day."""
    text = "\x1f".join([since.date().isoformat(), until.date().isoformat(), *sorted(detectors)])
    return BACKFILL + hashlib.sha256(text.encode()).hexdigest()[:16]


class Batches:
    """The batches of one pass's due deliveries, and their summaries (posted at most once per channel)."""

    def __init__(self, state: Outbox, sink: Threaded, burst: int | None, due: list[Due]) -> None:
        self.state, self.sink = state, sink
        self.due = due if burst is None else self._bursts(due, burst)
        self.threads: dict[tuple[str, str], str | None] = {}

    @staticmethod
    def of(finding: Finding, delivery: Mapping[str, Any]) -> str | None:
        """The batch a finding is delivered through: none for one too severe to be folded into a summary."""
        return None if alone(finding.severity) else delivery["batch"]

    def summary(self, batch: str, finding: Finding, out: Outcome) -> str | None:
        """The ts of the batch's summary in the finding's channel, posted first if need be; None while it is
        not (known to be) posted."""
        channel = self.sink.channel(finding)
        if (batch, channel) not in self.threads:
            members = [f for f, d in self.due if self.of(f, d) == batch and self.sink.channel(f) == channel]
            self.threads[batch, channel] = self._post(batch, channel, members, out)
        return self.threads[batch, channel]

    def _post(self, batch: str, channel: str, members: list[Finding], out: Outcome) -> str | None:
        known = self.state.summary(batch, self.sink.name, channel)
        if known is not None:  # sent; or posting, and its lookup failed this pass: not posted again until found
            return str(known["ts"]) if known["status"] == "sent" else None
        self.state.set_summary(batch, self.sink.name, channel, "posting", None, len(members))
        try:
            receipt = self.sink.summarize(batch, channel, members, batch.startswith(BACKFILL))
        except Undelivered as exc:
            out.errors.append(f"{self.sink.name}: summary for {channel}: {exc}")
            if isinstance(exc, Refused):  # not posted: the next pass tries again
                self.state.forget_summary(batch, self.sink.name, channel)
            return None
        self.state.set_summary(batch, self.sink.name, channel, "sent", receipt.ts, len(members))
        out.summaries += 1
        return receipt.ts

    def recount(self, out: Outcome) -> None:
        """A backfill's summary that gained findings (a restarted backfill's): its count updated, best effort."""
        for batch, channel in self.threads:
            known = self.state.summary(batch, self.sink.name, channel)
            if not batch.startswith(BACKFILL) or known is None or known["status"] != "sent":
                continue
            total = self.state.delivered_through(self.sink.name, batch, known["ts"])
            if total == int(known["findings"]):
                continue
            try:
                self.sink.recount(Receipt(channel, known["ts"]), total)
            except Undelivered as exc:
                out.errors.append(f"{self.sink.name}: summary for {channel}: count update: {exc}")
                continue
            self.state.set_summary(batch, self.sink.name, channel, "sent", known["ts"], total)

    def _bursts(self, due: list[Due], burst: int) -> list[Due]:
        """More than `burst` incidents due at once in one channel, outside any batch, become a burst's batch (a
        finding joining an incident already posted goes to its thread, not into a burst)."""
        loose: dict[str, list[str]] = {}
        stories: dict[str, set[str]] = {}
        for finding, delivery in due:
            fid, incident = finding.finding_id, delivery["incident_id"]
            joining = self.state.incident_head(incident, self.sink.name, fid) is not None
            if delivery["batch"] is None and not alone(finding.severity) and not joining:
                channel = self.sink.channel(finding)
                loose.setdefault(channel, []).append(fid)
                stories.setdefault(channel, set()).add(incident or fid)
        for channel, ids in loose.items():
            if len(stories[channel]) > burst:
                batch = BURST + hashlib.sha256("\x1f".join(sorted(ids)).encode()).hexdigest()[:16]
                self.state.join_batch(self.sink.name, ids, batch)
                joined = set(ids)
                due = [(f, d | {"batch": batch}) if f.finding_id in joined else (f, d) for f, d in due]
        return due


def recover_summaries(state: Outbox, sink: Threaded, out: Outcome) -> None:
    """Summaries whose post has an unknown outcome: found, or forgotten so that they are posted."""
    for batch, channel, summary in state.summaries_in(sink.name, "posting"):
        try:
            found = sink.find_summary(batch, channel, datetime.fromisoformat(summary["updated_at"]))
        except Undelivered as exc:
            out.errors.append(f"{sink.name}: summary for {channel}: lookup: {exc}")
            continue
        if found is None:
            state.forget_summary(batch, sink.name, channel)
            continue
        state.set_summary(batch, sink.name, channel, "sent", found.ts, int(summary["findings"]))
        out.recovered += 1


def _where(delivery: Mapping[str, Any]) -> Receipt:
    return Receipt(delivery["channel"], delivery["ts"], delivery["thread_ts"])


def follow_up(state: Outbox, sink: Threaded, out: Outcome) -> None:
    """Replies in the threads of posted findings that grew, escalated or were resolved; each is recorded
    only once posted, so one that fails is tried again by the next pass."""
    for finding, delivery in state.grown_since_delivery(sink.name):
        try:
            sink.grew(_where(delivery), finding, int(delivery["delivered_events"]))
        except Undelivered as exc:
            out.errors.append(f"{sink.name}: finding {finding.finding_id}: thread reply: {exc}")
            continue
        state.update_delivery(finding.finding_id, sink.name, delivered_events=len(finding.event_ids))
        out.replies += 1
        # its own message (not one delivered through a summary, nor one retold as its incident) shows the new count
        if delivery["ts"] and not delivery["thread_ts"] and int(delivery["incident_size"]) <= 1:
            try:
                sink.refresh(_where(delivery), finding)
            except Undelivered as exc:
                out.errors.append(f"{sink.name}: finding {finding.finding_id}: counter update: {exc}")
    for finding, delivery in state.escalated_since_delivery(sink.name):
        if int(delivery["incident_size"]) > 1:  # its incident's message is announced again, not the finding
            state.update_delivery(finding.finding_id, sink.name, delivered_severity=finding.severity)
            continue
        try:
            sink.escalated(_where(delivery), finding, delivery["delivered_severity"])
        except Undelivered as exc:
            out.errors.append(f"{sink.name}: finding {finding.finding_id}: escalation: {exc}")
            continue
        state.update_delivery(finding.finding_id, sink.name, delivered_severity=finding.severity)
        out.escalations += 1
    retold(state, sink, out)
    resolutions(state, sink, out)


def retold(state: Outbox, sink: Threaded, out: Outcome) -> None:
    """Each incident message behind its incident: retold with the findings that joined it, and, when the
    incident grew more severe, announced once more (in the new severity's channel when that is another)."""
    for head, where, incident in state.heads_behind(sink.name):
        receipt, size = Receipt(where["channel"], where["ts"]), len(incident["finding_ids"])
        if size != int(where["incident_shown"]):
            try:
                sink.retell(receipt, head, incident)
            except Undelivered as exc:
                out.errors.append(f"{sink.name}: incident {incident['incident_id']}: update: {exc}")
                continue
            state.update_delivery(head.finding_id, sink.name, incident_shown=size)
            out.retold += 1
        before = str(where["incident_severity"] or head.severity)
        if rank(incident["severity"]) > rank(before):
            try:
                sink.incident_escalated(receipt, head, incident, before)
            except Undelivered as exc:
                out.errors.append(f"{sink.name}: incident {incident['incident_id']}: escalation: {exc}")
                continue
            state.update_delivery(head.finding_id, sink.name, incident_severity=incident["severity"])
            out.escalations += 1


def resolutions(state: Outbox, sink: Threaded, out: Outcome) -> None:
    """Resolved findings (by an operator, or a posture check that no longer sees the problem): the note in
    each one's thread; one the transport refuses for good (an archived channel) is not tried again."""
    for finding, delivery in state.resolutions_due(sink.name):
        try:
            sink.resolved(_where(delivery), delivery["note"] or "")
        except Undelivered as exc:
            out.errors.append(f"{sink.name}: finding {finding.finding_id}: resolution reply: {exc}")
            if isinstance(exc, Refused):
                state.update_delivery(finding.finding_id, sink.name, resolution_posted=2)
            continue
        state.update_delivery(finding.finding_id, sink.name, resolution_posted=1)
        out.resolutions += 1
