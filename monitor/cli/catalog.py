"""`detectors`: what the catalog holds and what each detector reads."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console

from detectors.core.lazy import Later
from monitor.cli.common import Commands, catalog, console, say, table

if TYPE_CHECKING:
    from detectors.core import registry
    from monitor.config import Config
else:
    registry = Later("detectors.core.registry")


def add(sub: Commands) -> None:
    sub.add_parser("detectors", detectors)


def detectors(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    """One line per detector: its id, the most severe finding it raises, its title and what it fires on; the
    configured Sigma rules after the catalog's own."""
    rows = [
        (d.id, d.max_severity(), f"{d.title}: {d.fires_on()}")
        for d in [*registry.load(), *catalog.sigma_rules(cfg).detectors, *registry.POSTURE]
    ]
    say(console(), *table(("DETECTOR", "UP TO", "WHAT IT FIRES ON"), rows))
    return 0
