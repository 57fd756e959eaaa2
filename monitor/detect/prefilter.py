"""A scan's pre-filter: which records some detector could select, asked of a few raw fields per record.

Every detector says what each row its select chooses holds, in terms of a few columns (`Detector.needs`): the
catalog's detectors declare their select as data (`wants`: the values a column takes, or a pattern its whole
value matches) and both their `select` and their needs are built from it; a Sigma rule's needs are derived
from its condition (a field test on a column, any part of an AND, every part of an OR). A glance decodes only
the fields of each record those columns are (`events.Glance`, typed as the full decode types them and
normalized as it normalizes them, so that each value is the one the column would hold), and only the records
some detector could select are decoded in full. It cannot leave out a record a select would choose: each
need is asked of the value the select would see.

A detector with no such condition over the glanced columns (a site detector that writes its own `select`, a
Sigma rule that tests only fields inside JSON objects) turns the pre-filter off: every record is then decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core.base import Detector, Judge
from monitor.ingest.events import GLANCED

_MOST_KNOWN = 100_000  # verdicts kept per column: attacker-chosen values cannot grow them without bound
_TRIAL = 5_000  # records glanced before judging whether glancing pays
_WORTH = 0.5  # glancing pays while it wants at most this share: beyond it, decoding every record costs less


class Prefilter:
    """The detectors' needs, per column: a record is wanted when one of its columns holds a value some judge of
    that column takes. Each distinct value is judged once per process (a trail holds a few hundred names)."""

    def __init__(self, judges: Mapping[str, Sequence[Judge]], exact: bool = False) -> None:
        self.judges = judges
        self.exact = exact  # what it wants is what the selects choose: every detector's select is its `wants`
        self.known: dict[str, dict[str | None, bool]] = {column: {} for column in judges}
        self.glanced = self.wanted = 0

    @property
    def worth(self) -> bool:
        """Whether glancing still pays in this process: not when most records are wanted (a Sigma rule that
        needs only `userIdentity.type: AssumedRole`). Either way the findings are the same."""
        return self.glanced < _TRIAL or self.wanted <= self.glanced * _WORTH

    @classmethod
    def of(cls, detectors: Sequence[type[Detector]]) -> Prefilter | None:
        """The pre-filter of these detectors, or None when one of them has no needs over the glanced columns."""
        judges: dict[str, list[Judge]] = {}
        for det in detectors:
            needs = det.needs(GLANCED)
            if needs is None:
                return None
            for column, judged in needs.items():
                judges.setdefault(column, []).extend(judged)
        exact = all(det.wants and det.select is Detector.select for det in detectors)
        return cls(judges, exact=exact) if detectors else None

    def __call__(self, columns: Mapping[str, pa.Array]) -> np.ndarray:
        """Which rows of a glance's columns (`events.glance_columns`) some detector could select."""
        wanted = np.zeros(len(columns["event_id"]), dtype=bool)
        for column, judges in self.judges.items():
            held, known = columns[column], self.known[column]
            distinct = pc.unique(held).to_pylist()
            if len(known) > _MOST_KNOWN:
                known.clear()
            fresh = [v for v in distinct if v not in known]
            if fresh:
                verdicts = np.zeros(len(fresh), dtype=bool)
                for judge in judges:
                    verdicts |= judge(fresh)
                known.update(zip(fresh, verdicts.tolist(), strict=True))
            taken = pa.array([v for v in distinct if known[v]], held.type)
            chosen = pc.is_in(held, value_set=taken, skip_nulls=False)  # a null is taken when null is
            wanted |= pc.fill_null(chosen, False).to_numpy(zero_copy_only=False)
        self.glanced, self.wanted = self.glanced + len(wanted), self.wanted + int(wanted.sum())
        return wanted
