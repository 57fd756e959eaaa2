"""What a threaded transport (Slack) gets besides one message per finding, decided once for any such
transport: summaries of batches, and follow-ups in a posted finding's thread.

A batch (a backfill's, or a burst of more than `burst` findings due at once in one channel) gets one
summary per channel, recorded like a post so that it is posted once whatever restarts: a backfill's
findings are delivered through it, a burst's are posted in its thread. High and critical findings are
never folded into a summary (a thread reply notifies no one). A posted finding's thread gets a reply
when it gains events (and its message a counter), when it grows more severe (and the whole alert in
the new severity's channel), and when it is resolved.

Each message of such a follow-up is a delivery of its own (sink `<sink>:<what>`, beside the finding's),
moved by the dispatcher exactly as a finding's: marked before it is posted, looked up by its tag after
an unknown outcome, retried after a growing delay when refused, failed past the attempts. A message sent
is never sent again; once all of a follow-up's are, the finding's delivery records what its thread was
told and their deliveries go, in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from monitor.outbox import dispatcher  # an import cycle, used at call time only: the dispatcher delivers follow-ups
from monitor.outbox.finding import Finding, alone, rank
from monitor.outbox.transport import Mark, Receipt, Refused, Tag, Threaded, Undelivered
from monitor.store.outbox import Outbox

Post = Callable[[Receipt, Tag], Receipt]  # posts a follow-up's message where it goes, with its tag

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

    def __init__(self, state: Outbox, sink: Threaded, burst: int | None, due: list[dispatcher.Due]) -> None:
        self.state, self.sink = state, sink
        self.due = due if burst is None else self._bursts(due, burst)
        self.threads: dict[tuple[str, str], str | None] = {}

    @staticmethod
    def of(finding: Finding, delivery: Mapping[str, Any]) -> str | None:
        """The batch a finding is delivered through: none for one too severe to be folded into a summary."""
        return None if alone(finding.severity) else delivery["batch"]

    def summary(self, batch: str, finding: Finding, out: dispatcher.Outcome) -> str | None:
        """The ts of the batch's summary in the finding's channel, posted first if need be; None while it is
        not (known to be) posted."""
        channel = self.sink.channel(finding)
        if (batch, channel) not in self.threads:
            members = [f for f, d in self.due if self.of(f, d) == batch and self.sink.channel(f) == channel]
            self.threads[batch, channel] = self._post(batch, channel, members, out)
        return self.threads[batch, channel]

    def _post(self, batch: str, channel: str, members: list[Finding], out: dispatcher.Outcome) -> str | None:
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

    def recount(self, out: dispatcher.Outcome) -> None:
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

    def _bursts(self, due: list[dispatcher.Due], burst: int) -> list[dispatcher.Due]:
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


def recover_summaries(state: Outbox, sink: Threaded, out: dispatcher.Outcome) -> None:
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


@dataclass
class _Part:
    """One message of a follow-up as a transport of its own (`name`, its delivery's sink), so that the dispatcher
    delivers it as it delivers a finding: `post`ed `where` it goes (a thread, or a channel alone), found there
    by its tag."""

    name: str
    tag: Tag
    where: Receipt
    sink: Threaded
    post: Post

    def send(self, finding: Finding) -> Receipt:
        return self.post(self.where, self.tag)

    def find(self, finding: Finding, mark: Mark) -> Receipt | None:
        return self.sink.find_follow_up(self.tag, Mark(self.where.channel, self.where.thread, mark.since))


def _part(sink: Threaded, kind: str, value: object, of: Finding, where: Receipt, post: Post) -> _Part:
    """The part `kind` saying `value` (a severity, a count) of a finding's follow-up."""
    return _Part(f"{sink.name}:{kind}", Tag(of.finding_id, f"{kind}:{value}"), where, sink, post)


def _announced(
    sink: Threaded, kind: str, of: Finding, severity: str, where: Receipt, channel: str, post: Post
) -> list[_Part]:
    """An escalation: the news in the thread, and the message in the new severity's channel when that is another
    (a paging one); each is posted once, so a page refused never repeats the reply."""
    parts = [_part(sink, kind, severity, of, where, post)]
    if channel != where.channel:
        parts.append(_part(sink, f"{kind}-page", severity, of, Receipt(channel), post))
    return parts


def _told(state: Outbox, finding: Finding, parts: list[_Part], out: dispatcher.Outcome) -> bool:
    """Each part not sent yet delivered by the dispatcher, as a finding is: looked up first when its outcome is
    unknown, sent when due, retried later when refused; True once every part is sent."""
    deliverer, done = dispatcher.Dispatcher(state), True
    for part in parts:
        delivery, report = state.follow_up(finding.finding_id, part.name), dispatcher.Outcome()
        due = delivery["next_attempt_at"] is None or delivery["next_attempt_at"] <= deliverer.now().isoformat()
        if delivery["status"] == "posting":
            deliverer.recover(part, finding, delivery, report)
        elif delivery["status"] == "pending" and due:
            deliverer.send(part, finding, delivery, report, part.where.thread, part.where.channel)
        done = done and (delivery["status"] == "sent" or report.sent + report.recovered > 0)
        report.sent = 0  # no finding was delivered: the follow-up is counted once told
        out.add(report)
    return done


def follow_up(state: Outbox, sink: Threaded, out: dispatcher.Outcome) -> None:
    """Replies in the threads of posted findings that grew, escalated or were resolved; each is recorded as told
    once all its parts are sent, so one that fails is tried again (or looked up) by a later pass."""
    for finding, delivery in state.grown_since_delivery(sink.name):
        fid, where, total = finding.finding_id, _where(delivery), len(finding.event_ids)
        post = partial(sink.grew, finding=finding, before=int(delivery["delivered_events"]))
        parts = [_part(sink, "grew", total, finding, where, post)]
        if not _told(state, finding, parts, out):
            continue
        state.update_delivery(fid, sink.name, [p.name for p in parts], delivered_events=total)
        out.replies += 1
        # its own message (not one delivered through a summary, nor one retold as its incident) shows the new count
        if delivery["ts"] and not delivery["thread_ts"] and int(delivery["incident_size"]) <= 1:
            try:
                sink.refresh(where, finding)
            except Undelivered as exc:
                out.errors.append(f"{sink.name}: finding {fid}: counter update: {exc}")
    for finding, delivery in state.escalated_since_delivery(sink.name):
        fid, where = finding.finding_id, _where(delivery)
        post = partial(sink.escalated, finding=finding, before=delivery["delivered_severity"])
        parts = _announced(sink, "escalated", finding, finding.severity, where, sink.channel(finding), post)
        if int(delivery["incident_size"]) > 1:  # its incident's message is announced again, not the finding
            state.update_delivery(fid, sink.name, [p.name for p in parts], delivered_severity=finding.severity)
            continue
        if _told(state, finding, parts, out):
            state.update_delivery(fid, sink.name, [p.name for p in parts], delivered_severity=finding.severity)
            out.escalations += 1
    retold(state, sink, out)
    resolutions(state, sink, out)


def retold(state: Outbox, sink: Threaded, out: dispatcher.Outcome) -> None:
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
        before, severity = str(where["incident_severity"] or head.severity), str(incident["severity"])
        if rank(severity) > rank(before):
            channel = sink.channel(replace(head, severity=severity))
            post = partial(sink.incident_escalated, head=head, incident=incident, before=before)
            parts = _announced(sink, "incident-escalated", head, severity, receipt, channel, post)
            if _told(state, head, parts, out):
                state.update_delivery(head.finding_id, sink.name, [p.name for p in parts], incident_severity=severity)
                out.escalations += 1


def resolutions(state: Outbox, sink: Threaded, out: dispatcher.Outcome) -> None:
    """Resolved findings (by an operator, or a posture check that no longer sees the problem): the note in
    each one's thread, once; one the transport refuses is retried later, and failed past the attempts."""
    for finding, delivery in state.resolutions_due(sink.name):
        note = delivery["note"] or ""
        post = partial(sink.resolved, note=note)
        digest = hashlib.sha256(note.encode()).hexdigest()[:16]
        parts = [_part(sink, "resolved", digest, finding, _where(delivery), post)]
        if _told(state, finding, parts, out):
            state.update_delivery(finding.finding_id, sink.name, [p.name for p in parts], resolution_posted=1)
            out.resolutions += 1
