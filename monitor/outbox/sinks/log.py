"""Findings as structured log lines: the service's console. Ids and metadata only, never event bodies."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.logs import log
from monitor.outbox.dispatcher import Route
from monitor.outbox.finding import Finding
from monitor.outbox.sinks.kind import Kind
from monitor.outbox.transport import Receipt

LOG = logging.getLogger("trailguard.findings")


@dataclass
class LogSink:
    name: str = "log"

    def send(self, finding: Finding) -> Receipt:
        log(
            LOG,
            logging.WARNING,
            "finding",
            finding_id=finding.finding_id,
            detector=finding.detector,
            kind=finding.kind,
            severity=finding.severity,
            account_id=finding.account_id,
            region=finding.region,
            events=len(finding.event_ids),
            event_ids=list(finding.event_ids[:10]),
        )
        return Receipt()


KIND = Kind(lambda cfg, extra: "log" in extra, lambda setup: Route(LogSink()))
