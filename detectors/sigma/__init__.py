"""Sigma rules over the lake: the community's CloudTrail rules as detectors (see `rules`). This package's own
module holds only what needs no Sigma parser, so that commands without rules never import one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.sigma.rules import SigmaDetector


@dataclass
class Loaded:
    """The rules of some paths: those that became detectors, and every other file with why."""

    detectors: list[type[SigmaDetector]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
