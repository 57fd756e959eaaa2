"""A Sigma rule's condition as vectorised masks over the normalized events.

pySigma parses the rule: selections, lists, modifiers and `1 of`/`all of` become a tree of AND, OR, NOT
and field tests whose values carry their modifiers (wildcards for `contains`/`startswith`/`endswith`, a
regular expression, a CIDR network, a field reference, a comparison, exists, null). Each test becomes a
pandas operation over a whole column. A field inside one of CloudTrail's free-form objects is read from its
JSON text only for the rows the rule's other conditions leave (AND evaluates its cheap children first and
narrows the rows for the rest), once per path and row. Anything the compiler does not know is
`Unsupported`, with the reason: a rule is never run with part of its condition ignored.

Sigma's semantics: string matches are case-insensitive (unless `cased`), wildcards match whole values,
`re` searches (case-sensitive unless `i`), a list of values matches any (all with `all`), and a field
holding a list (inside a JSON object) matches when any of its values does.
"""

from __future__ import annotations

import ipaddress
import math
import re
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import re2
from sigma import conditions as cond
from sigma import types as st
from sigma.types import SpecialChars

from detectors.core.base import Judge
from detectors.core.lazy import np, pa, pc, pd
from detectors.sigma.fields import Field, resolve

Predicate = Callable[[str], bool]  # one value, as text
_FRAMES: dict[int, tuple[weakref.ref[pd.DataFrame], Frame]] = {}


class Unsupported(Exception):
    """What a rule uses that cannot be evaluated here (the rule is reported, not run)."""


@dataclass
class Frame:
    """The events conditions are evaluated on, shared by every rule that judges the same events (`of`): each column
    factorized once into codes and distinct values, each (column, path) read from JSON text once per row."""

    events: pd.DataFrame
    nested: dict[Field, pd.Series] = field(default_factory=dict)
    factorized: dict[str, tuple[np.ndarray, list[str | None]]] = field(default_factory=dict)
    verdicts: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, events: pd.DataFrame) -> Frame:
        """The Frame of these events (the same DataFrame object), made on first use; forgotten with them."""
        known = _FRAMES.get(id(events))
        if known is not None and known[0]() is events:
            return known[1]
        frame = cls(events)
        key, frames = id(events), _FRAMES  # the callback keeps its own reference: it may run at exit
        _FRAMES[key] = (weakref.ref(events, lambda _: frames.pop(key, None)), frame)
        return frame

    def judged(self, column: str, check: Predicate) -> np.ndarray:
        """`check` over a whole column, each distinct value judged once (for all rules asking the same)."""
        if column not in self.factorized:  # factorized first: only the distinct values are made text
            found, distinct = pd.factorize(self.events[column], use_na_sentinel=True)
            self.factorized[column] = (found, [_text(d) for d in distinct])
        codes, uniques = self.factorized[column]
        key = (column, id(check))
        if key not in self.verdicts:
            self.verdicts[key] = _verdicts(check, uniques)
        verdict: np.ndarray = self.verdicts[key][codes]
        return verdict

    def values(self, where: Field, rows: pd.Series) -> pd.Series:
        """The field's values for `rows`: the column itself, or for a path one row per value found (index
        repeated for a list), read from the JSON text of rows not read before."""
        if not where.path:
            column: pd.Series = self.events.loc[rows, where.column]
            return column
        known = self.nested.get(where, pd.Series(dtype=object))
        wanted = rows[rows].index.difference(known.index.unique())
        if len(wanted):
            found = [
                (i, v) for i, text in self.events.loc[wanted, where.column].items() for v in _leaves(text, where.path)
            ]
            fresh = pd.Series([v for _, v in found], index=[i for i, _ in found], dtype=object)
            seen = pd.Series(pd.NA, index=wanted.difference(fresh.index), dtype=object)  # read, nothing there
            known = pd.concat([known, fresh, seen])
            self.nested[where] = known
        return known[known.index.isin(rows[rows].index)]


class Node:
    """A compiled condition: `mask(frame, rows)` is True where it holds, within `rows` only."""

    cost = 0  # 0: a column; 1: a path in JSON text, read only for rows still in question

    def mask(self, frame: Frame, rows: pd.Series) -> pd.Series:
        raise NotImplementedError

    def fields(self) -> Iterator[Field]:
        raise NotImplementedError


@dataclass
class Group(Node):
    """AND or OR of parts, the cheap ones (columns) judged first: the rows they settle are not read further."""

    parts: list[Node]

    def __post_init__(self) -> None:
        self.parts.sort(key=lambda p: p.cost)
        self.cost = max((p.cost for p in self.parts), default=0)

    def fields(self) -> Iterator[Field]:
        for part in self.parts:
            yield from part.fields()


class All(Group):
    def mask(self, frame: Frame, rows: pd.Series) -> pd.Series:
        for part in self.parts:
            if not rows.any():
                break
            rows = rows & part.mask(frame, rows)
        return rows


class Any_(Group):
    def mask(self, frame: Frame, rows: pd.Series) -> pd.Series:
        found, left = pd.Series(False, index=rows.index), rows
        for part in self.parts:
            if not left.any():
                break
            hit = part.mask(frame, left)
            found, left = found | hit, left & ~hit
        return found


@dataclass
class Not(Node):
    part: Node

    def __post_init__(self) -> None:
        self.cost = self.part.cost

    def mask(self, frame: Frame, rows: pd.Series) -> pd.Series:
        return rows & ~self.part.mask(frame, rows)

    def fields(self) -> Iterator[Field]:
        yield from self.part.fields()


@dataclass
class Test(Node):
    """One field against one value. `check` judges one value as text (booleans `true`/`false`, numbers as
    written, objects as JSON), so each distinct value of a column is judged once; `missing` is what a row
    without the field gives (True for a null test); `other` is the field a `fieldref` compares with."""

    where: Field
    check: Predicate
    missing: bool = False
    other: Field | None = None

    def __post_init__(self) -> None:
        self.cost = 1 if self.where.path else 0

    def mask(self, frame: Frame, rows: pd.Series) -> pd.Series:
        if not self.where.path and self.other is None:  # a column: judged whole, once for every rule
            hit_all = frame.judged(self.where.column, self.check)
            if self.missing:
                hit_all = hit_all | frame.events[self.where.column].isna().to_numpy()
            return rows & hit_all
        values = frame.values(self.where, rows)
        present = values.notna()
        if self.other is None:
            hit = (_each(values, self.check) & present).groupby(level=0).any()
        else:  # a fieldref: the two fields side by side, row by row, compared as text without case
            other = frame.values(self.other, rows).groupby(level=0).first()
            pairs = zip([_text(v) for v in values], [_text(v) for v in other.reindex(values.index)], strict=True)
            same = [a is not None and b is not None and a.lower() == b.lower() for a, b in pairs]
            hit = pd.Series(same, index=values.index, dtype=bool).groupby(level=0).any()
        out = pd.Series(False, index=rows.index)
        out[hit[hit].index] = True
        if self.missing:
            none = (~present).groupby(level=0).all()
            out[none[none].index] = True
        return out & rows

    def fields(self) -> Iterator[Field]:
        yield self.where
        if self.other is not None:
            yield self.other


def necessary(node: Node, columns: frozenset[str]) -> dict[str, list[Judge]] | None:
    """What every row the condition holds for holds, in terms of `columns` only: in one of the columns returned,
    a value one of its judges takes; None when nothing is known. A test of a column is its own need (judged as
    `Frame.judged` judges it); an AND needs what any of its parts needs (the one with the fewest judges), an
    OR what all of its parts need; a NOT, a null test or a field inside JSON text needs nothing known."""
    if isinstance(node, Test):
        if node.where.path or node.other is not None or node.missing or node.where.column not in columns:
            return None
        check = node.check
        return {node.where.column: [lambda values: _verdicts(check, [_text(v) for v in values])[:-1]]}
    if isinstance(node, All):
        known = [n for n in (necessary(p, columns) for p in node.parts) if n is not None]
        return min(known, key=lambda n: sum(map(len, n.values())), default=None)
    if isinstance(node, Any_):
        parts = [necessary(p, columns) for p in node.parts]
        if not parts or any(n is None for n in parts):
            return None
        merged: dict[str, list[Judge]] = {}
        for need in parts:
            for column, judges in (need or {}).items():
                merged.setdefault(column, []).extend(judges)
        return merged
    return None


def compile_tree(node: Any) -> Node:
    """pySigma's parsed condition as a Node; Unsupported names what cannot be evaluated."""
    if isinstance(node, cond.ConditionAND):
        return All([compile_tree(a) for a in node.args])
    if isinstance(node, cond.ConditionOR):
        return Any_([compile_tree(a) for a in node.args])
    if isinstance(node, cond.ConditionNOT):
        return Not(compile_tree(node.args[0]))
    if isinstance(node, cond.ConditionFieldEqualsValueExpression):
        return _test(node.field, node.value)
    if isinstance(node, cond.ConditionValueExpression):
        raise Unsupported("a keyword without a field (CloudTrail rules name their fields)")
    raise Unsupported(f"condition element {type(node).__name__}")


def _test(name: str, value: Any) -> Test:
    where = resolve(name)
    if where is None:
        raise Unsupported(f"unknown field {name!r}")
    if isinstance(value, st.SigmaNull):
        return Test(where, lambda text: False, missing=True)
    if isinstance(value, st.SigmaExists):
        return Test(where, lambda text: value.exists, missing=not value.exists)
    if isinstance(value, st.SigmaFieldReference):
        other = resolve(value.field)
        if other is None:
            raise Unsupported(f"unknown field {value.field!r}")
        return Test(where, lambda text: False, other=other)
    return Test(where, _predicate(value))


def _predicate(value: Any) -> Predicate:
    if isinstance(value, st.SigmaBool):
        wanted = "true" if value.boolean else "false"
        return lambda text: text.lower() == wanted
    if isinstance(value, st.SigmaNumber):
        number = value.number
        return lambda text: _number(text) == number
    if isinstance(value, st.SigmaCompareExpression):
        compare, limit = _OPS[value.op.name], value.number.number
        return lambda text: (n := _number(text)) is not None and compare(n, limit)
    if isinstance(value, st.SigmaCIDRExpression):
        network = value.network
        return lambda text: _in(text, network)
    if isinstance(value, st.SigmaRegularExpression):
        return _regex(value)
    if isinstance(value, st.SigmaString):
        return _string(value, cased=isinstance(value, st.SigmaCasedString))
    if isinstance(value, st.SigmaExpansion):  # windash, base64offset: the value in each of its spellings
        spellings = [_predicate(v) for v in value.values]
        return lambda text: any(check(text) for check in spellings)
    raise Unsupported(f"value {type(value).__name__} (a modifier this engine does not evaluate)")


def _string(value: st.SigmaString, cased: bool) -> Predicate:
    if value.contains_placeholder():
        raise Unsupported(f"a placeholder in {value} (the expand modifier needs values this engine is not given)")
    if not value.contains_special():
        plain = value.to_plain()
        lowered = plain.lower()
        return (lambda text: text == plain) if cased else (lambda text: text.lower() == lowered)
    parts = []
    for part in value.s:
        if part == SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif part == SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        elif isinstance(part, str):
            parts.append(re.escape(part))
        else:
            raise Unsupported(f"a placeholder in {value}")
    return Pattern(f"(?s{'' if cased else 'i'})^{''.join(parts)}$")


_FLAGS = {"IGNORECASE": "i", "MULTILINE": "m", "DOTALL": "s"}
_COUNTED = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")  # {m}, {m,} and {m,n}: what RE2 expands
_MOST_REPEATS = 2000


def _regex(value: st.SigmaRegularExpression) -> Predicate:
    """With RE2, which runs in time linear in the text: event text is an attacker's, and a rule's regular
    expression that backtracks would let one user agent stall detection. RE2 has no lookaround or
    backreference; a rule that needs them is refused, not run on a backtracking engine."""
    inline = "".join(_FLAGS[flag.name] for flag in value.flags)
    try:
        return Pattern(f"(?{inline}){value.regexp.to_plain()}" if inline else value.regexp.to_plain())
    except re2.error as exc:
        raise Unsupported(f"a regular expression RE2 cannot run in linear time ({exc})") from None


class Pattern:
    """A check that is an RE2 expression, searched: one text with re2, a column's distinct texts in one call
    to Arrow's RE2 (the same engine and syntax)."""

    def __init__(self, expression: str) -> None:
        options = re2.Options()
        options.log_errors = False
        self.expression, self.compiled = expression, re2.compile(expression, options)

    def __call__(self, text: str) -> bool:
        return self.compiled.search(text) is not None

    def many(self, texts: list[str | None]) -> np.ndarray:
        found = pc.match_substring_regex(pa.array(texts, pa.string()), self.expression).fill_null(False)
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def refuse_large_patterns(detection: Any, modifiers: tuple[str, ...] = ()) -> None:
    """Refuse a regular expression that would take seconds to compile, before anything compiles it (pySigma too):
    RE2 writes each counted repetition out, and a rule repeating thousands of times would stall loading."""
    seen: set[int] = set()  # YAML aliases share objects: each is looked at once

    def walk(node: Any, modifiers: tuple[str, ...]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, tuple(str(key).split("|")[1:]))
        elif isinstance(node, list):
            for item in node:
                walk(item, modifiers)
        elif isinstance(node, str) and "re" in modifiers:
            repeats = sum(int(most or least) for least, most in _COUNTED.findall(node))
            if repeats > _MOST_REPEATS:
                raise Unsupported(f"a regular expression with {repeats} counted repetitions (at most {_MOST_REPEATS})")

    walk(detection, modifiers)


def _in(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:  # an AWS service's name where an address would be
        return False


_OPS: dict[str, Callable[[float, float], bool]] = {
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _each(values: pd.Series, check: Predicate) -> pd.Series:
    """`check` over each distinct value once (a column of a million events holds a few hundred names)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return pd.Series(_verdicts(check, [_text(u) for u in uniques])[codes], index=values.index)


def _verdicts(check: Predicate, texts: list[str | None]) -> np.ndarray:
    """`check` of each distinct text (a missing one is False), then False for factorize's code -1 (missing)."""
    if isinstance(check, Pattern):
        judged = check.many(texts)
    else:
        judged = np.array([text is not None and check(text) for text in texts], dtype=bool)
    return np.append(judged, False)


def _text(value: Any) -> str | None:
    """A value as Sigma compares it: text, booleans as `true`/`false`, numbers as written, objects as JSON."""
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return str(value)


def _leaves(text: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at `path` in a JSON object's text; lists along the way are searched element by element."""
    if not isinstance(text, str):
        return []
    try:
        found = [msgspec.json.decode(text)]
    except msgspec.DecodeError:
        return []
    for key in path:
        step = []
        for item in found:
            for element in item if isinstance(item, list) else [item]:
                if isinstance(element, dict) and key in element:
                    step.append(element[key])
        found = step
    flat = []
    for item in found:
        flat.extend(item if isinstance(item, list) else [item])
    return [_text(v) for v in flat if v is not None]
