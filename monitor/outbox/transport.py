"""What a sink is to the dispatcher: a transport that sends one finding and says how it went.

A transport never sees the outbox. It raises `Refused` (the other end answered no: try again later),
`Unknown` (it may have arrived: look before any resend) or `Unsendable` (it never can, as it is).
One that can look a delivery up is `Searchable`; one with channels and threads (Slack) is `Threaded`
and also gets the batches' summaries, the follow-ups of what it posted, and incidents: a finding joining an
incident already posted goes into its thread, and the incident's message is retold as it grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from monitor.outbox.finding import Finding


class Undelivered(Exception):
    """A transport could not deliver (one of the three kinds below)."""


class Refused(Undelivered):
    """The transport answered and did not take it: not delivered, tried again later."""


class Unknown(Undelivered):
    """It may have been delivered (a connection dropped after sending): looked up before any resend."""


class Unsendable(Undelivered):
    """It can never be delivered as it is (the transport rejects its shape): failed, not retried."""


@dataclass(frozen=True)
class Receipt:
    """Where a delivery landed, for the transports that can tell (a Slack channel and message ts)."""

    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None

    @property
    def thread(self) -> str | None:
        """The thread a reply to it goes into: its own, or the one it was posted in (none for a channel alone)."""
        return self.thread_ts or self.ts


@dataclass(frozen=True)
class Mark:
    """Where and since when a delivery of unknown outcome was being made: where a lookup starts."""

    channel: str | None
    thread_ts: str | None
    since: datetime


@dataclass(frozen=True)
class Tag:
    """What a follow-up message is: its finding, and what it says of it ("escalated:high"). The message carries
    it, so a follow-up whose outcome is unknown is looked up by it, as a finding is by its id."""

    finding_id: str
    about: str


class Transport(Protocol):
    name: str

    def send(self, finding: Finding) -> Receipt: ...


@runtime_checkable
class Searchable(Protocol):
    """A transport that can tell whether a finding already reached it."""

    def find(self, finding: Finding, mark: Mark) -> Receipt | None: ...


@runtime_checkable
class Threaded(Protocol):
    """A transport with channels and threads: a batch gets one summary per channel with its findings in the
    summary's thread, and a posted finding's thread hears when it grows, escalates or is resolved. Each such
    follow-up is posted `where` it is told (a thread, or a channel alone), carries its tag and returns where it
    landed; `find_follow_up` looks for one by its tag."""

    name: str

    def channel(self, finding: Finding) -> str: ...

    def send_in(self, thread: str, finding: Finding, channel: str | None = None) -> Receipt: ...

    def find(self, finding: Finding, mark: Mark) -> Receipt | None: ...

    def summarize(self, batch: str, channel: str, findings: list[Finding], backfill: bool) -> Receipt: ...

    def find_summary(self, batch: str, channel: str, since: datetime) -> Receipt | None: ...

    def recount(self, summary: Receipt, findings: int) -> None: ...

    def grew(self, where: Receipt, tag: Tag, finding: Finding, before: int) -> Receipt: ...

    def refresh(self, where: Receipt, finding: Finding) -> None: ...

    def escalated(self, where: Receipt, tag: Tag, finding: Finding, before: str) -> Receipt: ...

    def resolved(self, where: Receipt, tag: Tag, note: str) -> Receipt: ...

    def retell(self, where: Receipt, head: Finding, incident: Mapping[str, Any]) -> None: ...

    def incident_escalated(
        self, where: Receipt, tag: Tag, head: Finding, incident: Mapping[str, Any], before: str
    ) -> Receipt: ...

    def find_follow_up(self, tag: Tag, mark: Mark) -> Receipt | None: ...
