"""Keep a record whose fields have the wrong JSON type, instead of refusing it.

Exports, SIEMs and hand-made samples write CloudTrail fields in other types than CloudTrail does: a
`userAgent` as an array, `readOnly` as `"true"`, `userIdentity` as a JSON string. Refusing the record
would hide a root sign-in because of its user agent's type, so each such field is coerced, counted, and
the record kept: text where text is expected (an array, an object or a number as its compact JSON text,
which is escaped before it is shown like any other text), a boolean from `"true"`/`"false"`, an object
from a string that holds one, and null where nothing sensible is left. Only the event's id, time and name
are never coerced: a record without them as text is refused. What each field should be is read
from the typed record (`events.Record`) itself, so this cannot drift from the decoder.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec
from msgspec import inspect

from monitor.ingest.events import RECORD_DECODER, Record

_TEXT = (inspect.StrType,)
_FLAG = (inspect.BoolType,)
_RECORD = cast(inspect.StructType, inspect.type_info(Record))
REQUIRED = ("eventID", "eventTime", "eventName")  # a record without them as text is refused, not coerced
# the free-form objects, which the strict decoder takes in any JSON type: text there may hold the object
_OBJECTS = tuple(f.encode_name for f in _RECORD.fields if isinstance(f.type, inspect.RawType))


def wanted(value: dict[str, Any]) -> bool:
    """Whether a record the strict decoder takes still needs coercing: an object written as JSON text."""
    return any(isinstance(value.get(name), str) for name in _OBJECTS)


def record(value: dict[str, Any]) -> tuple[Record, list[str]]:
    """The typed record of a JSON object that the strict decoder refused, and the fields coerced for it."""
    fixed: list[str] = []
    cleaned = _struct(value, _RECORD, "", fixed)
    for name in REQUIRED:
        if not isinstance(value.get(name), str):
            cleaned[name] = None
            fixed = [f for f in fixed if f != name]
    return RECORD_DECODER.decode(msgspec.json.encode(cleaned)), fixed


def _struct(value: dict[str, Any], kind: inspect.StructType, path: str, fixed: list[str]) -> dict[str, Any]:
    out = dict(value)
    for field in kind.fields:
        if field.encode_name in out:
            where = f"{path}{field.encode_name}"
            out[field.encode_name] = _field(out[field.encode_name], field.type, where, fixed)
    return out


def _field(value: Any, kind: inspect.Type, where: str, fixed: list[str]) -> Any:
    """`value` as `kind` (a union with None) takes it, noting `where` in `fixed` when it had to change."""
    raw = isinstance(kind, inspect.RawType)
    if value is None or (raw and not isinstance(value, str)):
        return value
    allowed = kind.types if isinstance(kind, inspect.UnionType) else (kind,)
    struct = next((t for t in allowed if isinstance(t, inspect.StructType)), None)
    if struct is not None or raw:
        parsed = _json_object(value) if isinstance(value, str) else value
        if parsed is not value:
            fixed.append(where)
        if struct is not None and isinstance(parsed, dict):
            return _struct(parsed, struct, f"{where}.", fixed)
        if raw:
            return parsed
        if parsed is value:
            fixed.append(where)
        return None
    texts, flags = any(isinstance(t, _TEXT) for t in allowed), any(isinstance(t, _FLAG) for t in allowed)
    if (isinstance(value, str) and texts) or (isinstance(value, bool) and flags):
        return value
    fixed.append(where)
    if flags and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if texts:
        return value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return None


def _json_object(text: str) -> Any:
    """The object or array a string holds as JSON, else the string itself."""
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
