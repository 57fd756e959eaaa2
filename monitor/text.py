"""Making attacker-controlled text safe to show: CloudTrail fields (user agents, user names, role
session names, error messages) and file names can carry terminal escape sequences and
bidirectional overrides that make a terminal, a log viewer or an editor show something else
than what is there (a right-to-left override turns `evil.json`, `RLO`, `nosj.doog` into a name that
reads `evil.jsongood.json`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

# C0 and C1 controls (ESC, CSI, OSC...), DEL, and the invisible characters that reorder or break text:
# the Arabic letter mark, LRM/RLM, the line and paragraph separators, embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# the same characters as they appear, UTF-8 encoded, in JSON that orjson wrote (it escapes C0 itself)
_UNSAFE_UTF8 = re.compile(rb"\x7f|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


def printable(text: str) -> str:
    """Unsafe characters become visible escapes: `\\x1b` for controls, `\\u202e` for the others."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def path_text(path: str) -> str:
    """A path as text that can be stored and shown: a name's bytes that are not UTF-8 (which Python carries as
    lone surrogates, refused by SQLite, Arrow and JSON) become `\\xff` escapes. The same for every name, so the
    ledger knows the file again; the file itself is still opened by its real name."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def json_bytes(value: Any, option: int = 0) -> bytes:
    """JSON whose strings carry unsafe characters as `\\uXXXX` escapes: the same data to any JSON reader,
    and nothing a terminal or `less` would act on."""
    return _UNSAFE_UTF8.sub(_escape, orjson.dumps(value, default=str, option=option))


def json_lines(values: Iterable[Any]) -> bytes:
    """Values as JSON Lines, each escaped as `json_bytes` escapes it (in one pass over all of them)."""
    raw = b"".join(orjson.dumps(v, default=str, option=orjson.OPT_APPEND_NEWLINE) for v in values)
    return _UNSAFE_UTF8.sub(_escape, raw)


def _escape(unsafe: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(unsafe[0].decode())
