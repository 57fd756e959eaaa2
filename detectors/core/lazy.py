"""Modules imported when first used, so that a command loads only what it runs: listing the catalog or starting
a scan needs no pandas, only running a detector does (the data libraries, the AWS SDK and Slack's client are
each a few tenths of a second). `np`, `pd`, `pa` and `pc` stand for the data libraries under their usual names."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


class Later:
    """A module imported when first used; typed as the module itself under TYPE_CHECKING where it is declared."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        """Called only for a name not yet looked up: kept, so that later uses (per value, in a hot loop) cost what
        an attribute of the module itself costs."""
        value = getattr(importlib.import_module(self.name), attribute)
        setattr(self, attribute, value)
        return value


if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np, pd, pa, pc = Later("numpy"), Later("pandas"), Later("pyarrow"), Later("pyarrow.compute")

__all__ = ["Later", "np", "pa", "pc", "pd"]
