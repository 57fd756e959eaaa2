"""A scan's pre-filter: which records some detector could select, asked of a few raw fields per record.

Every detector of the catalog declares its select as data (`Detector.wants`: the values a column takes, or a
pattern its whole value matches), and its `select` is built from that declaration. A glance decodes only the
fields of each record that those columns are (`events.Glance`, typed as the full decode types them, so that
each value is the one the column would hold), and only the records some detector wants are decoded in full.
So it cannot leave out a record a select would choose: both ask the same question of the same value.

A detector that writes its own `select` (a Sigma rule), or wants a column a glance does not hold, turns the
pre-filter off: every record is then decoded, as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core.base import Detector
from monitor.ingest.events import GLANCED


class Prefilter:
    """The union of the detectors' wants, per column: a record is wanted if one of its columns holds a value
    some detector takes, or one some detector's pattern matches."""

    def __init__(self, detectors: Sequence[type[Detector]]) -> None:
        self.values: dict[str, set[str]] = {}
        self.patterns: dict[str, list[re.Pattern[str]]] = {}
        for det in detectors:
            for column, wanted in det.wants.items():
                self.values.setdefault(column, set()).update(wanted.values)
                if wanted.pattern is not None:
                    self.patterns.setdefault(column, []).append(re.compile(wanted.pattern))

    @classmethod
    def of(cls, detectors: Sequence[type[Detector]]) -> Prefilter | None:
        """The pre-filter of these detectors, or None when one of them can only be asked of a built column."""
        if not detectors or any(not d.wants or not set(d.wants) <= GLANCED for d in detectors):
            return None
        return cls(detectors)

    def __call__(self, columns: Mapping[str, pa.Array]) -> np.ndarray:
        """Which rows of a glance's columns (`events.glanced`) some detector wants."""
        wanted = np.zeros(len(columns["event_id"]), dtype=bool)
        for column, values in self.values.items():
            held, patterns, taken = columns[column], self.patterns.get(column, ()), list(values)
            if patterns:  # asked once per distinct value, a null as "", as `Wanted.mask` asks each row
                held = pc.fill_null(held, "")
                taken += [v for v in pc.unique(held).to_pylist() if any(p.fullmatch(v) for p in patterns)]
            chosen = pc.is_in(held, value_set=pa.array(taken, pa.string()))
            wanted |= pc.fill_null(chosen, False).to_numpy(zero_copy_only=False)
        return wanted
