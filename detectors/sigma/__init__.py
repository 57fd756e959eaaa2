"""Sigma rules over the lake: the community's CloudTrail rules as detectors (see `rules`). This package's own
module holds only what needs no Sigma parser, so that commands without rules never import one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.sigma.rules import SigmaDetector


@dataclass
class Loaded:
    """The rules of some paths: those that became detectors, and every other file with why."""

    detectors: list[type[SigmaDetector]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def load(paths: Sequence[str | Path], disabled: Iterable[str] = (), enabled: Iterable[str] = ()) -> Loaded:
    """The rules of `paths` (files or folders): only those `enabled` names by detector id or tag (all, when it
    names none), less those `disabled` names; and every file refused. Without paths, no Sigma parser is imported."""
    if not paths:
        return Loaded()
    from detectors.sigma import rules  # noqa: PLC0415

    loaded = rules.load(paths)
    on, off = set(enabled), set(disabled)
    chosen = [d for d in loaded.detectors if not on or d.id in on or on & set(d.tags)]
    loaded.detectors = [d for d in chosen if d.id not in off and not off & set(d.tags)]
    return loaded
