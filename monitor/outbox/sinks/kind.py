"""What the registry knows of a sink: when the configuration wants it and how its route is built."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from rich.console import Console

from detectors.core.base import Guide
from monitor.config import Config
from monitor.outbox.dispatcher import Route


@dataclass(frozen=True)
class Secrets:
    """From the environment, never the configuration."""

    token: str | None = None
    webhook_url: str | None = None


@dataclass(frozen=True)
class Setup:
    """Everything a sink is built from."""

    cfg: Config
    guides: Mapping[str, Guide] = field(default_factory=dict)
    accounts: Mapping[str, str] = field(default_factory=dict)  # account id -> name, from the inventory
    channels: Mapping[str, str] = field(default_factory=dict)  # account id -> its channel (the configuration's win)
    secrets: Secrets = Secrets()
    extra: frozenset[str] = frozenset()  # sinks this process adds whatever the configuration: "log", "console"
    console: Console | None = None


class Kind(NamedTuple):
    wanted: Callable[[Config, frozenset[str]], bool]  # from the configuration alone: no secret is needed to queue
    route: Callable[[Setup], Route]
