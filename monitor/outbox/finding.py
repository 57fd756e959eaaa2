"""What the outbox knows of findings besides their fields: the one severity order, which findings are
the monitor's own, and which are too severe to be folded into a summary.

Severities are stored and exchanged as their names ("high"); `Severity` (from the detector contract)
orders them, here and in SQL, so no other module lists them again.
"""

from __future__ import annotations

from detectors.core.base import Severity

OWN_DETECTOR = "trailguard-health"  # the monitor's findings about itself (see monitor.service.watchdog)
NAMES: tuple[str, ...] = tuple(str(s) for s in Severity)  # least severe first
ALONE = Severity.HIGH  # at or above: always posted as a message of its own, never only inside a summary
MOST_SEVERE_FIRST = (  # an SQL ordering over a `severity` column; the monitor's own after detections
    "CASE severity " + " ".join(f"WHEN '{name}' THEN {-n}" for n, name in enumerate(NAMES)) + " END, "
    f"detector = '{OWN_DETECTOR}'"
)


def rank(severity: str) -> Severity:
    return Severity.parse(severity)


def worst(*severities: str) -> str:
    return max(severities, key=rank)


def alone(severity: str) -> bool:
    """Too severe to reach people only inside a summary's thread, which notifies no one."""
    return rank(severity) >= ALONE


def order(severity: str, detector: str) -> tuple[int, bool]:
    """A sort key: most severe first, and at one severity, detections before the monitor's own findings."""
    return -rank(severity), detector == OWN_DETECTOR
