"""`detectors`: what the catalog holds and what each detector reads."""

from __future__ import annotations

import argparse

from rich.console import Console

from detectors.core.registry import POSTURE, load
from monitor.cli.common import Commands, console
from monitor.config import Config


def add(sub: Commands) -> None:
    sub.add_parser("detectors", detectors)


def detectors(args: argparse.Namespace, cfg: Config, err: Console) -> int:
    out = console()
    for cls in load():
        out.print(f"[bold]{cls.id}[/] ({cls.severity}) {cls.title}: reads {', '.join(cls.reads())}")
    for check in POSTURE:
        out.print(f"[bold]{check.id}[/] ({check.severity}) {check.title}: reads IAM state (trailguard hygiene)")
    return 0
