"""What every command group shares: exit codes, consoles, times on the command line, the catalog."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from rich.console import Console

from detectors.core.base import Detector
from detectors.core.registry import choose, load
from monitor import config as config_module
from monitor import logs
from monitor.store.database import deliverer

EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_BUG = 3


def console(stderr: bool = False) -> Console:
    """A console that wraps on a terminal only: piped output keeps one line per line (one per bad input).
    Everything written to stderr goes through the secrets mask."""
    console = Console(file=cast("IO[str]", logs.RedactedStream(sys.stderr))) if stderr else Console()
    console.soft_wrap = not console.is_terminal
    return console


CONFIG_HELP = "TOML configuration, before or after the command (default: embedded defaults)"


@dataclass
class Commands:
    """The subcommands, each with the options every command takes."""

    sub: Any
    common: argparse.ArgumentParser

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.sub.add_parser(name, parents=[self.common], **kwargs)
        return parser


def when(text: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a duration before now: 30m, 12h, 7d."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        try:
            return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
        except (OverflowError, ValueError):
            raise argparse.ArgumentTypeError(f"too far back: {text!r}") from None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time or a duration like 7d: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def detectors_of(args: argparse.Namespace, cfg: config_module.Config) -> tuple[type[Detector], ...]:
    return tuple(d for d in choose(load(), getattr(args, "detector", None)) if d.id not in cfg.disabled_detectors)


def delivering(state: Path | None, command: Callable[[], int]) -> int:
    """Run a command that delivers findings holding its state file's delivery lock (one deliverer at a time)."""
    with deliverer(state) if state is not None else nullcontext():
        return command()
