"""The configured catalog: the built-in detectors and the configured Sigma rules, less those disabled. It loads
no data library, so that listing the catalog costs what reading the configuration costs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detectors import sigma
from detectors.core.base import Detector
from detectors.core.registry import choose, load
from detectors.sigma import Loaded
from monitor.config import Config


def detectors_of(
    cfg: Config, chosen: tuple[str, ...] | None = None, rules: Sequence[str | Path] | Loaded = ()
) -> tuple[type[Detector], ...]:
    """The catalog's detectors and the Sigma rules of `[sigma] paths` and `rules` (only those chosen, if any), less
    those the configuration disables. `rules` may be what `sigma_rules` loaded: a folder of rules takes a
    fraction of a second to read, and a caller that also reports the refused ones reads it once."""
    loaded = rules if isinstance(rules, Loaded) else sigma_rules(cfg, rules)
    catalog = load() + tuple(loaded.detectors)
    return tuple(d for d in choose(catalog, list(chosen) if chosen else None) if d.id not in cfg.disabled_detectors)


def sigma_rules(cfg: Config, rules: Sequence[str | Path] = ()) -> Loaded:
    """The Sigma rules of `[sigma] paths` and `rules`, less those disabled by id or tag; and every file refused."""
    return sigma.load([*cfg.sigma.paths, *rules], cfg.sigma.disabled, cfg.sigma.enabled)
