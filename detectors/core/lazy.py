"""Modules imported when first used, so that a command loads only what it runs: listing the catalog or starting
a scan needs no pandas, only running a detector does (the data libraries, the AWS SDK and Slack's client are
each a few tenths of a second). `np`, `pd`, `pa` and `pc` stand for the data libraries under their usual names."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


class Later:
    """A module imported when first used; typed as the module itself under TYPE_CHECKING where it is declared."""

    def __init__(self, module: str) -> None:
        self.__module = module  # mangled: never in the way of one of the module's own names

    def __getattr__(self, attribute: str) -> Any:
        """Called only for a name not yet looked up: kept, so that later uses (per value, in a hot loop) cost what
        an attribute of the module itself costs. Protocol names (copy's, pickle's) are not the module's."""
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        value = getattr(importlib.import_module(self.__module), attribute)
        setattr(self, attribute, value)
        return value

    def __reduce__(self) -> tuple[type[Later], tuple[str]]:
        return Later, (self.__module,)  # a copy is the same promise, loaded when used


if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np, pd, pa, pc = Later("numpy"), Later("pandas"), Later("pyarrow"), Later("pyarrow.compute")

__all__ = ["Later", "np", "pa", "pc", "pd"]
