"""A module imported when first used, so that a command loads only what it runs (the AWS SDK, Slack's client,
the data libraries are each a few tenths of a second)."""

from __future__ import annotations

import importlib
from typing import Any


class Later:
    """A module imported when first used; typed as the module itself under TYPE_CHECKING where it is declared."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.name), attribute)
