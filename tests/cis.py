"""The CIS monitoring filters (pinned in fixtures/cis_filters.txt) and an evaluator of their pattern language.

The evaluator implements what the filters use of CloudWatch Logs' JSON patterns: `$.a.b = value`,
`!=`, `NOT EXISTS`, `&&`, `||` and parentheses; values are compared as text, case-sensitively,
with `*` as a wildcard; a comparison on a missing (or non-text) field does not match. Tests run
the filters over the same raw records as the detectors, so "matches at least what CIS matches"
is checked against the published text rather than against a list copied from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).parent / "fixtures" / "cis_filters.txt"
_TOKEN = re.compile(r'\s*(\(|\)|&&|\|\||!=|=|NOT EXISTS|\$[\w.]+|"[^"]*"|[^\s()=!&|"]+)')


@dataclass(frozen=True)
class Control:
    item: str
    detector: str
    pattern: str

    def names(self) -> list[str]:
        """The event names the filter lists."""
        return re.findall(r'\$\.eventName\s*=\s*"?(\w+)"?', self.pattern)

    def source(self) -> str | None:
        """The event source the filter pins, if any."""
        found = re.search(r"\$\.eventSource\s*=\s*\"?([\w.]+)\"?", self.pattern)
        return found.group(1) if found else None

    def matches(self, record: dict[str, Any]) -> bool:
        return _Parser(self.pattern, record).parse()


def controls() -> dict[str, Control]:
    lines = [line for line in FIXTURE.read_text().splitlines() if line and not line.startswith("#")]
    return {item: Control(item, detector, pattern) for item, detector, pattern in (x.split("\t") for x in lines)}


class _Parser:
    """Recursive descent over the tokens; evaluates while parsing."""

    def __init__(self, pattern: str, record: dict[str, Any]) -> None:
        text = pattern.strip()
        assert text.startswith("{"), pattern
        assert text.endswith("}"), pattern
        self.tokens = _TOKEN.findall(text[1:-1].strip())
        self.record = record
        self.at = 0

    def parse(self) -> bool:
        value = self._or()
        assert self.at == len(self.tokens), f"unparsed: {self.tokens[self.at :]}"
        return value

    def _next(self) -> str:
        self.at += 1
        return str(self.tokens[self.at - 1])

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == "||":
            self._next()
            value = self._and() or value
        return value

    def _and(self) -> bool:
        value = self._atom()
        while self._peek() == "&&":
            self._next()
            value = self._atom() and value
        return value

    def _atom(self) -> bool:
        if self._peek() == "(":
            self._next()
            value = self._or()
            assert self._next() == ")"
            return value
        selector, op = self._next(), self._next()
        found = self._field(selector)
        if op == "NOT EXISTS":
            return found is _MISSING
        wanted = self._next().strip('"')
        if not isinstance(found, str | int | float) or isinstance(found, bool):
            return False
        equal = fnmatchcase(str(found), wanted) if "*" in wanted else str(found) == wanted
        return equal if op == "=" else not equal

    def _field(self, selector: str) -> Any:
        value: Any = self.record
        for part in selector.removeprefix("$.").split("."):
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return _MISSING if value is None else value


_MISSING = object()
