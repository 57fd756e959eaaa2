"""CloudTrail as query engines and SIEMs export it, turned back into records.

Table-shaped exports (CloudTrail Lake query results, as `get-query-results` JSON pages or the console's CSV,
and Athena query results over the standard CloudTrail table) hold one row per event with a column per
field: column names in any case (`eventid`, `eventID`), empty text for null, and nested fields as JSON text
or as the struct text Hive and Trino print (`{type=IAMUser, arn=arn:aws:iam::...:user/alice,
sessioncontext={attributes={mfaauthenticated=false}}}`), with lower-case keys. A row becomes the record
CloudTrail wrote, so the rest of the decoder (and every detector) sees no difference; a column the export
does not have is a field no record of it can carry, which `blind_spots` names per detector.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, cast

import msgspec
from msgspec import inspect

from monitor.ingest.events import Record

_RECORD = cast(inspect.StructType, inspect.type_info(Record))
csv.field_size_limit(1 << 30)  # a long field (a policy, a user agent) is a record's, bounded by limits.max_record_kb
_RESOURCE_KEYS = {"arn": "ARN", "accountid": "accountId", "type": "type"}


def _names(kind: inspect.StructType) -> dict[str, tuple[str, inspect.StructType | None]]:
    """lower-case name -> (CloudTrail's name, the struct it holds, if any), for a struct's fields."""
    names = {}
    for field in kind.fields:
        allowed = field.type.types if isinstance(field.type, inspect.UnionType) else (field.type,)
        struct = next((t for t in allowed if isinstance(t, inspect.StructType)), None)
        names[field.encode_name.lower()] = (field.encode_name, struct)
    return names


_TOP = _names(_RECORD)
# fields CloudTrail writes as booleans, which a table export writes as text
_FLAGS = frozenset(
    f.encode_name
    for f in _RECORD.fields
    if any(isinstance(t, inspect.BoolType) for t in getattr(f.type, "types", (f.type,)))
)


def table_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudTrail record of one exported row: columns renamed to CloudTrail's fields, nested text parsed."""
    record: dict[str, Any] = {}
    for column, value in row.items():
        name, struct = _TOP.get(column.strip().lower(), (column.strip(), None))
        if value is None or value in ("", "null"):  # a tuple: a value may be an (unhashable) object
            record[name] = None
        elif struct is not None:
            record[name] = _renamed(_nested(value), struct)
        elif name in _FLAGS and isinstance(value, str) and value.lower() in ("true", "false"):
            record[name] = value.lower() == "true"
        elif name == "resources":
            parsed = _nested(value)
            items = parsed if isinstance(parsed, list) else []
            record[name] = [
                {_RESOURCE_KEYS.get(k.lower(), k): v for k, v in r.items()} for r in items if isinstance(r, dict)
            ]
        elif name in ("requestParameters", "responseElements", "additionalEventData", "serviceEventDetails"):
            record[name] = _inner(_nested(value))
        else:
            record[name] = value
    return record


def _renamed(value: Any, struct: inspect.StructType) -> Any:
    """A struct's keys in CloudTrail's case (Hive prints them lower-case), recursively."""
    if not isinstance(value, dict):
        return value
    names = _names(struct)
    out = {}
    for key, item in value.items():
        name, inner = names.get(key.lower(), (key, None))
        out[name] = _renamed(item, inner) if inner is not None else item
    return out


def _inner(value: Any) -> Any:
    """A map whose values are JSON text (CloudTrail Lake keeps request and response objects as string maps)."""
    if isinstance(value, dict):
        return {k: _nested(v) if isinstance(v, str) and v.startswith(("{", "[")) else v for k, v in value.items()}
    return value


def _nested(value: Any) -> Any:
    """A nested field as exported: JSON text, Hive struct text, or already an object."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.startswith(("{", "[")):
        return value
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        pass
    try:
        parsed, end = _Hive(text).value(0, "")
    except ValueError:
        return value
    return parsed if end == len(text) else value


_KEY = re.compile(r"[A-Za-z_][\w.:-]*=")
_JSON = json.JSONDecoder()


class _Hive:
    """Struct, map and array text as Hive and Trino print them: `{k=v, k2={...}}`, `[a, b]`, `null`. A scalar
    runs to the next `, key=` in a struct (or `, ` in an array) or its closing bracket, so that commas and
    spaces inside values (user agents, policy text) survive."""

    def __init__(self, text: str) -> None:
        self.text = text

    def value(self, at: int, closing: str) -> tuple[Any, int]:
        if self.text.startswith(('{"', '["', "[{"), at):  # JSON inside a map's value (CloudTrail Lake's)
            with suppress(ValueError):
                return _JSON.raw_decode(self.text, at)
        if self.text.startswith("{", at):
            return self.struct(at + 1)
        if self.text.startswith("[", at):
            return self.array(at + 1)
        end = self.scalar_end(at, closing)
        scalar = self.text[at:end]
        return (None if scalar == "null" else scalar), end

    def struct(self, at: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        more = not self.text.startswith("}", at)
        at += 0 if more else 1
        while more:
            key = _KEY.match(self.text, at)
            if key is None:
                raise ValueError(f"no key at {at}")
            out[key.group()[:-1]], at = self.value(key.end(), "}")
            more, at = self.after(at, "}")
        return out, at

    def array(self, at: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        more = not self.text.startswith("]", at)
        at += 0 if more else 1
        while more:
            item, at = self.value(at, "]")
            out.append(item)
            more, at = self.after(at, "]")
        return out, at

    def after(self, at: int, closing: str) -> tuple[bool, int]:
        """Past what follows a value: a separator (more to come) or the closing bracket (done)."""
        if self.text.startswith(", ", at):
            return True, at + 2
        if self.text.startswith(closing, at):
            return False, at + 1
        raise ValueError(f"unexpected text at {at}")

    def scalar_end(self, at: int, closing: str) -> int:
        """Where a scalar ends: before `, key=` (in a struct) or `, ` (in an array), or before a closing bracket
        that ends the text or is followed by a separator or another closing bracket."""
        i = at
        while i < len(self.text):
            if self.text.startswith(", ", i) and (closing == "]" or _KEY.match(self.text, i + 2)):
                return i
            if self.text[i] == closing and (i + 1 == len(self.text) or self.text[i + 1] in ",}]"):
                return i
            i += 1
        if closing:
            raise ValueError("unclosed")
        return i


def query_columns(value: Mapping[str, Any]) -> list[str]:
    """The columns a CloudTrail Lake result page holds (those of its first row)."""
    rows = value["QueryResultRows"]
    first = rows[0] if rows and isinstance(rows[0], list) else []
    return [k for cell in first if isinstance(cell, dict) for k in cell]


def query_rows(value: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """CloudTrail Lake `get-query-results` JSON: each row a list of one-column objects."""
    for n, row in enumerate(value["QueryResultRows"], 1):
        cells = row if isinstance(row, list) else []
        merged = {k: v for cell in cells if isinstance(cell, dict) for k, v in cell.items()}
        yield f"row {n}", table_record(merged)


def csv_rows(data: bytes) -> tuple[list[str], Iterator[tuple[str, dict[str, Any]]]] | None:
    """The header and rows of a CSV export of CloudTrail (a column named eventID, in any case), else None."""
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    if "eventid" not in {h.strip().lower() for h in header}:
        return None

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for n, cells in enumerate(reader, 2):
            if cells:
                yield f"line {n}", table_record(dict(zip(header, cells, strict=False)))

    return header, rows()


# the record fields behind each normalized column a detector may read
SOURCES: Mapping[str, tuple[str, ...]] = {
    "mfa_used": ("additionalEventData",),
    "saml_provider_arn": ("additionalEventData",),
    "console_login_result": ("responseElements",),
    "new_access_key_id": ("responseElements",),
    "target_user_name": ("requestParameters",),
    "role_arn": ("requestParameters",),
    "succeeded": ("errorCode", "responseElements"),
    "error_code": ("errorCode",),
    "error_message": ("errorMessage",),
    "source_ip": ("sourceIPAddress",),
    "source_ip_is_service": ("sourceIPAddress",),
    "user_agent": ("userAgent",),
    "invoked_by": ("userIdentity",),
    "principal": ("userIdentity",),
    "user_type": ("userIdentity",),
    "user_arn": ("userIdentity",),
    "user_name": ("userIdentity",),
    "user_account_id": ("userIdentity",),
    "access_key_id": ("userIdentity",),
    "session_issuer_arn": ("userIdentity",),
    "session_mfa_authenticated": ("userIdentity",),
    "event_type": ("eventType",),
    "read_only": ("readOnly",),
    "resources": ("resources",),
}


def absent(header: Sequence[str]) -> frozenset[str]:
    """The record fields detectors read that a table export with this header cannot carry."""
    present = {_TOP.get(h.strip().lower(), (h.strip(), None))[0] for h in header}
    return frozenset(f for fields in SOURCES.values() for f in fields if f not in present)
