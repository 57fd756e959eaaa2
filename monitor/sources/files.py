"""Read CloudTrail data in every shape users keep it, one file at a time.

Shapes: S3 delivery objects `{"Records": [...]}` (`.json` or `.json.gz`), JSON Lines (gz or
not), a JSON array, a single record, `aws cloudtrail lookup-events` output
(`Events[].CloudTrailEvent`), and EventBridge/CloudWatch envelopes (`detail` holds the record).
The S3 shape takes a typed fast path; everything else is unwrapped and each record decoded on
its own so that one bad record is reported, not fatal. A file never raises: it returns its
events and, if anything was wrong, one error line that names it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
from isal import igzip  # ISA-L: the same gzip, about 1.5x faster to inflate

from monitor.events import (
    COLUMNS,
    DELIVERY_DECODER,
    RECORD_DECODER,
    BadRecord,
    Normalized,
    Record,
    empty_batch,
    to_batch,
)
from monitor.sources.inputs import Work

SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_NOT_CLOUDTRAIL = "not CloudTrail data (no Records, Events, detail or eventID)"


@dataclass(frozen=True)
class FileResult:
    """What one file gave: its normalized events, how many records it held, and any error."""

    path: str
    batch: pa.RecordBatch
    records: int
    bad_records: int = 0
    error: str | None = None


class InputError(Exception):
    """The whole file is unreadable (bad gzip, invalid JSON, not CloudTrail)."""


def is_digest(path: Path) -> bool:
    return "CloudTrail-Digest" in path.parts or "CloudTrail-Digest" in path.name


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Expand files and directories (recursively) into the files to read, and errors for missing paths."""
    found: list[Path] = []
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.name.endswith(SUFFIXES) and not is_digest(p) and not p.name.startswith(".")
            )
        elif path.is_file():
            found.append(path)
        else:
            errors.append(f"{path}: no such file or directory")
    return found, errors


def _inflate(data: bytes) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        inflated: bytes = igzip.decompress(data)  # type: ignore[no-untyped-call]
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"corrupt or truncated gzip ({exc})") from exc
    return inflated


def _typed(value: Any) -> Record:
    return RECORD_DECODER.decode(msgspec.json.encode(value))


def _unwrap(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Yield (location, record-like object) from any supported container shape."""
    if isinstance(value, list):
        for i, item in enumerate(value, 1):
            yield from _unwrap(item, f"{where}item {i}" if not where else f"{where}, item {i}")
        return
    if not isinstance(value, dict):
        yield where or "document", None
        return
    if isinstance(value.get("Records"), list):
        for i, item in enumerate(value["Records"], 1):
            yield f"{where + ', ' if where else ''}record {i}", item
    elif isinstance(value.get("Events"), list):
        for i, item in enumerate(value["Events"], 1):
            text = item.get("CloudTrailEvent") if isinstance(item, dict) else None
            yield (
                f"{where + ', ' if where else ''}event {i}",
                msgspec.Raw(text.encode()) if isinstance(text, str) else None,
            )
    elif isinstance(value.get("detail"), dict):
        yield where or "document", value["detail"]
    elif "eventID" in value or "eventTime" in value or "eventName" in value:
        yield where or "document", value
    else:
        yield where or "document", None


def _decode_each(items: Iterable[tuple[str, Any]]) -> tuple[list[Record], list[str], list[BadRecord]]:
    records: list[Record] = []
    where: list[str] = []
    bad: list[BadRecord] = []
    for location, item in items:
        try:
            if item is None:
                raise InputError(_NOT_CLOUDTRAIL)
            rec = RECORD_DECODER.decode(item) if isinstance(item, msgspec.Raw) else _typed(item)
        except (InputError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            bad.append(BadRecord(location, str(exc)))
            continue
        records.append(rec)
        where.append(location)
    return records, where, bad


def _json_lines(data: bytes) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            yield f"line {number}", _Invalid(str(exc))
            continue
        yield from _unwrap(value, f"line {number}")


class _Invalid:
    """Marks a JSON Lines line that is not JSON, so that its line number survives."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _records(data: bytes, name: str) -> tuple[list[Record], Callable[[int], str], list[BadRecord]]:
    """Decode a file's bytes into typed records, trying the S3 delivery fast path first."""
    head = data[:64].lstrip()
    lines = name.endswith(_JSONL_SUFFIXES)
    if head.startswith(b"{") and not lines:
        try:
            delivery = DELIVERY_DECODER.decode(data)
            if delivery.Records is not None:
                return delivery.Records, lambda i: f"record {i + 1}", []
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
    if not head:
        raise InputError("empty file")
    if lines:
        items: Iterable[tuple[str, Any]] = _json_lines(data)
    else:
        try:
            items = _unwrap(msgspec.json.decode(data), "")
        except msgspec.DecodeError as exc:
            if "trailing characters" not in str(exc):
                raise InputError(f"invalid JSON: {exc}") from exc
            items = _json_lines(data)
    invalid: list[BadRecord] = []

    def keep_valid() -> Iterator[tuple[str, Any]]:
        for location, item in items:
            if isinstance(item, _Invalid):
                invalid.append(BadRecord(location, f"invalid JSON: {item.reason}"))
            else:
                yield location, item

    records, where, bad = _decode_each(keep_valid())
    return records, where.__getitem__, invalid + bad


@dataclass(frozen=True)
class Decoded:
    """A file's typed records (not yet normalized), where each came from, and what was wrong."""

    name: str
    records: list[Record]
    locate: Callable[[int], str]
    bad: list[BadRecord]
    error: str | None = None

    def normalize(self, records: list[Record] | None = None, columns: Sequence[str] = COLUMNS) -> Normalized:
        return to_batch(self.records if records is None else records, self.name, self.locate, columns)


def decode(data: bytes, name: str) -> Decoded:
    """Decode one input's bytes (gzipped or not); `name` (a path or URI) is used in errors and as source_uri."""
    try:
        records, locate, bad = _records(_inflate(data), name)
    except InputError as exc:
        return Decoded(name, [], str, [], f"{name}: {exc}")
    if not records and bad and all(b.reason == _NOT_CLOUDTRAIL for b in bad):
        return Decoded(name, [], str, [], f"{name}: {_NOT_CLOUDTRAIL}")
    return Decoded(name, records, locate, bad)


def decode_file(path: Path) -> Decoded:
    """Decode one local file; a whole-file problem is returned as `error`, never raised."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Decoded(str(path), [], str, [], f"{path}: cannot read ({exc.strerror})")
    return decode(data, str(path))


def describe(path: str, bad: Sequence[BadRecord]) -> str | None:
    """One error line for a file's bad records: the first, and how many more."""
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more bad records)" if len(bad) > 1 else ""
    return f"{path}: {bad[0].location}: {bad[0].reason}{more}"


def read_file(path: Path) -> FileResult:
    """Read one file into fully normalized events; errors are returned, never raised."""
    decoded = decode_file(path)
    if decoded.error:
        return FileResult(str(path), empty_batch(), 0, 0, decoded.error)
    norm = decoded.normalize() if decoded.records else Normalized(empty_batch(), [], [])
    bad = decoded.bad + norm.bad
    return FileResult(
        str(path), norm.batch, len(decoded.records) + len(decoded.bad), len(bad), describe(str(path), bad)
    )


def works(paths: Iterable[str | Path]) -> tuple[list[Work], list[str]]:
    """Local files as ingest inputs; size and modification time stand in for an ETag."""
    found, errors = discover(paths)
    inputs = []
    for path in found:
        stat = path.stat()
        inputs.append(Work("file", "", str(path.resolve()), f"{stat.st_size}-{stat.st_mtime_ns}", stat.st_size))
    return inputs, errors
