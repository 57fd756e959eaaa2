"""Findings as structured log lines: the service's console. Ids and metadata only, never event bodies."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.logs import log
from monitor.state import State

LOG = logging.getLogger("trailguard.findings")


@dataclass
class LogSink:
    state: State
    name: str = "log"

    def deliver(self) -> int:
        count = 0
        for status in ("posting", "pending"):
            for finding, _ in self.state.deliveries_in(self.name, status):
                ids = finding.event_ids
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
                    events=len(ids),
                    event_ids=ids[:10],
                )
                self.state.update_delivery(finding.finding_id, self.name, status="sent", delivered_events=len(ids))
                count += 1
        return count
