"""Sigma's aggregation, `<selection> | count([field]) [by field] > N` within a `timeframe`: the matching events
counted over a sliding window (per value of the `by` field), a distinct count of `field` when one is named. This
is the old syntax of SigmaHQ's "unsupported" AWS rules; it reads as an event_count (or value_count)
correlation over the rule's own selection, which is how it is evaluated here."""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from detectors.core.base import Context
from detectors.core.lazy import np, pd
from detectors.sigma.compile import Frame, Node, Unsupported
from detectors.sigma.fields import Field, resolve

PIPE = re.compile(
    r"(?P<base>.+?)\s*\|\s*count\(\s*(?P<field>[\w.]+)?\s*\)\s*(?:by\s+(?P<by>[\w.]+)\s*)?(?P<op>>=|<=|>|<|==|=)\s*(?P<n>\d+)"
)
_OPS: dict[str, Callable[[int, int], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "==": operator.eq,
}
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class Aggregation:
    """A count over a rule's matches: of events, or of distinct values of `counted`, per value of the `by`
    fields, within `span`, tested against a threshold."""

    by: tuple[Field, ...]
    counted: Field | None
    test: Callable[[int, int], bool]
    threshold: int
    span: timedelta
    text: str
    members: tuple[Node, ...] = ()  # a temporal correlation's rules: each must match within the span
    ordered: bool = False  # temporal_ordered: one after another, in the order the correlation names them

    @classmethod
    def from_pipe(cls, condition: str, timeframe: Any) -> tuple[str, Aggregation]:
        """The old syntax: (the selection's condition, its aggregation)."""
        found = PIPE.fullmatch(condition.strip())
        if found is None:
            raise Unsupported(f"aggregation {condition!r} (only `| count([field]) [by field] <op> N` is evaluated)")
        if timeframe is None:
            raise Unsupported("an aggregation without a timeframe")
        counted, by = _column(found["field"]), _column(found["by"])
        grouped = f" by {found['by']}" if found["by"] else ""
        text = f"count({found['field'] or ''}){grouped} {found['op']} {found['n']}"
        test, span = _OPS[found["op"]], _span(str(timeframe))
        return found["base"], cls(tuple(f for f in (by,) if f), counted, test, int(found["n"]), span, text)

    @classmethod
    def from_correlation(cls, correlation: Any, members: tuple[Node, ...]) -> Aggregation:
        """A correlation rule (pySigma's SigmaCorrelationRule) over the conditions of the rules it names."""
        kind = correlation.type.name.lower()
        group_by = list(correlation.group_by or ())
        by = tuple(f for f in map(_column, group_by) if f)
        span = timedelta(seconds=correlation.timespan.seconds)
        if kind in ("temporal", "temporal_ordered"):
            ordered = kind == "temporal_ordered"
            rules = f"all {len(members)} rules{' in order' if ordered else ''}"
            text = f"{kind}: {rules} by {', '.join(group_by) or 'nothing'}"
            return cls(by, None, operator.ge, len(members), span, text, members, ordered)
        if kind not in ("event_count", "value_count"):
            raise Unsupported(
                f"a {kind} correlation (event_count, value_count, temporal and temporal_ordered are evaluated)"
            )
        condition = correlation.condition
        counted = _column(condition.fieldref) if kind == "value_count" else None
        of = f" of {condition.fieldref}" if counted else ""
        text = f"{kind}{of} by {', '.join(group_by) or 'nothing'} {condition.op.name.lower()} {condition.count}"
        return cls(by, counted, _NAMED[condition.op.name], condition.count, span, text)


_NAMED = {"GT": operator.gt, "GTE": operator.ge, "LT": operator.lt, "LTE": operator.le, "EQ": operator.eq}


def _column(name: str | None) -> Field | None:
    if name is None:
        return None
    where = resolve(name)
    if where is None or where.path:
        raise Unsupported(f"an aggregation over {name!r}, which is not a column of the lake")
    return where


def _span(text: str) -> timedelta:
    found = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if found is None:
        raise Unsupported(f"timeframe {text!r} (expected a number and s, m, h or d)")
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


class Counted:
    """Mixed into a rule's detector: its matching events are findings only where the count holds."""

    aggregation: ClassVar[Aggregation]
    severity: ClassVar[Any]

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        spec = self.aggregation
        events = events.sort_values("event_time", kind="stable")
        key = pd.Series("*", index=events.index)
        if spec.by:
            key = events[spec.by[0].column].fillna("-").astype(str)
            for extra in spec.by[1:]:
                key = key + "|" + events[extra.column].fillna("-").astype(str)
        parts = [pd.Series(_counts(group, spec), index=group.index) for _, group in events.groupby(key, sort=False)]
        counts = pd.concat(parts).reindex(events.index) if parts else pd.Series(0, index=events.index)
        hit = counts.map(lambda n: spec.test(n, spec.threshold)).astype(bool)
        found = events[hit]
        return found.assign(
            kind="count",
            severity=self.severity,
            dedup_key=key[hit],
            summary=counts[hit].astype(str) + f" matching events within {spec.span} ({spec.text}), by " + key[hit],
        )


def _counts(events: pd.DataFrame, spec: Aggregation) -> Sequence[int]:
    """For each of one group's events (in time order), what its `span` holds: events, distinct values of the
    counted field, or the rules matched (in their order for temporal_ordered)."""
    if spec.members:
        rows = pd.Series(True, index=events.index)
        masks = [node.mask(Frame.of(events), rows).to_numpy() for node in spec.members]
        matched = [tuple(i for i, m in enumerate(masks) if m[n]) for n in range(len(events))]
        return (_in_order if spec.ordered else _sliding)(list(events["event_time"]), matched, spec.span)
    if spec.counted:
        return _sliding(list(events["event_time"]), [(v,) for v in events[spec.counted.column]], spec.span)
    moments = events["event_time"].to_numpy(dtype="datetime64[us]")  # events: where the span began, by bisection
    began = np.searchsorted(moments, moments - np.timedelta64(spec.span), side="left")
    counted: Sequence[int] = (np.arange(len(moments)) - began + 1).tolist()
    return counted


def _sliding(times: list[Any], values: list[tuple[Any, ...]], span: timedelta) -> list[int]:
    """For each event (in time order): the distinct values among the events of the `span` ending at it."""
    out, start, seen = [], 0, Counter[Any]()
    for i, moment in enumerate(times):
        seen.update(values[i])
        while times[start] < moment - span:
            seen.subtract(values[start])
            for gone in [v for v in values[start] if not seen[v]]:
                del seen[gone]
            start += 1
        out.append(len(seen))
    return out


def _in_order(times: list[Any], values: list[tuple[int, ...]], span: timedelta) -> list[int]:
    """For each event (in time order): how many of the rules, from the first, matched one after another (each on
    a later event than the one before) within the `span` ending at it."""
    out, starts = [], dict[int, Any]()  # rule index -> the latest start of a chain reaching it
    for moment, matched in zip(times, values, strict=True):
        for member in sorted(matched, reverse=True):  # an event is one step of a chain, never two
            if member == 0:
                starts[0] = moment
            elif member - 1 in starts:
                starts[member] = starts[member - 1]
        out.append(max((k + 1 for k, start in starts.items() if start >= moment - span), default=0))
    return out
