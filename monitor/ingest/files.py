"""Read CloudTrail data in every shape users keep it, one file at a time.

Shapes: S3 delivery objects `{"Records": [...]}` (`.json` or `.json.gz`), JSON Lines (gz or
not), a JSON array, a single record, `aws cloudtrail lookup-events` output
(`Events[].CloudTrailEvent`), EventBridge/CloudWatch envelopes (`detail` holds the record), OpenSearch
hits (`hits.hits[]._source`, or elasticdump's one hit per line), Splunk exports (`result._raw`), and the
table exports of CloudTrail Lake and Athena (`monitor.ingest.exports`), each known by its content.
The S3 shape takes a typed fast path; everything else is unwrapped and each record decoded on
its own so that one bad record is reported, not fatal. A file never raises: it returns its
events and, if anything was wrong, one error line that names it.
"""

from __future__ import annotations

import codecs
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any

import msgspec
import pyarrow as pa

from monitor.ingest import coerce, exports, ocsf
from monitor.ingest.events import (
    COLUMNS,
    DELIVERY_DECODER,
    RECORD_DECODER,
    SPANS_DECODER,
    BadRecord,
    Normalized,
    Record,
    empty_batch,
    to_batch,
)
from monitor.ingest.limits import InputError, Limits, Nesting, inflate, nested_too_deep, too_large
from monitor.ingest.sources.inputs import Work

SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".csv", ".csv.gz", ".parquet")
_PARQUET = b"PAR1"
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_NOT_CLOUDTRAIL = "not CloudTrail data (no Records, Events, detail, hits, _raw or eventID)"
_CONTENT = re.compile(rb"[^ \t\n\r\x0b\x0c]")  # the first byte that is not whitespace
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # a line and its end, as bytes.splitlines cuts them
# an escaped backslash, a surrogate pair, or a lone surrogate, in one pass: `\\ud800` (a backslash, then text)
# is never taken for an escape
_HIGH, _LOW = rb"\\u[dD][89abAB][0-9a-fA-F]{2}", rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_ESCAPES = re.compile(rb"\\\\|" + _HIGH + _LOW + b"|" + _HIGH + b"|" + _LOW)
_LONE = "lone surrogate"  # what a repaired escape is counted as, among the coerced fields
_UTF16 = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class FileResult:
    """What one file gave: its normalized events, how many records it held, and any error."""

    path: str
    batch: pa.RecordBatch
    records: int
    bad_records: int = 0
    error: str | None = None


def is_digest(path: Path) -> bool:
    return "CloudTrail-Digest" in path.parts or "CloudTrail-Digest" in path.name


@dataclass(frozen=True)
class Found:
    """A file to read, with what `stat` said of it when it was found."""

    path: Path
    size: int
    mtime_ns: int


def _wanted(name: str) -> bool:
    return name.lower().endswith(SUFFIXES) and not name.startswith(".")  # `Export.JSON` as well


def discover(paths: Iterable[str | Path]) -> tuple[list[Found], list[str]]:
    """Expand files and directories (recursively, through links to folders, each folder once) into the files to
    read, and one error per path that does not exist, cannot be listed or read, or is not a file to read (a
    pipe or a device in a folder is named, never opened: it could block or never end). Never a silent "0 files"."""
    found: list[Found] = []
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        try:
            stat = path.stat()
        except OSError as exc:
            errors.append(f"{path}: {_reason(exc)}")
            continue
        if not S_ISDIR(stat.st_mode):
            found.append(Found(path, stat.st_size, stat.st_mtime_ns))
            continue
        walk = os.walk(
            path, onerror=lambda exc: errors.append(f"{exc.filename}: cannot list ({_reason(exc)})"), followlinks=True
        )
        listed: set[tuple[int, int]] = set()
        for folder, dirs, names in walk:
            here = os.stat(folder)
            if (here.st_dev, here.st_ino) in listed:  # a link back up, or a second way to one folder
                dirs.clear()
                continue
            listed.add((here.st_dev, here.st_ino))
            dirs.sort()
            for name in sorted(filter(_wanted, names)):
                file = Path(folder, name)
                if is_digest(file):
                    continue
                try:
                    stat = file.stat()
                except OSError as exc:
                    errors.append(f"{file}: {_reason(exc)}")
                    continue
                if S_ISREG(stat.st_mode):
                    found.append(Found(file, stat.st_size, stat.st_mtime_ns))
                elif not S_ISDIR(stat.st_mode):  # a folder named like a file is listed by the walk
                    errors.append(f"{file}: not a regular file (a pipe, a socket or a device): not read")
    return found, errors


def _reason(exc: OSError) -> str:
    return "no such file or directory" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc)).lower()


def _typed(value: Any) -> Record:
    return RECORD_DECODER.decode(msgspec.json.encode(value))


def _unwrap(value: Any, where: str, nested: bool = False) -> Iterator[tuple[str, Any]]:
    """Yield (location, record-like object) from any supported container shape; an array may hold
    containers, but not arrays (nothing keeps CloudTrail that way)."""
    if isinstance(value, list) and not nested:
        for i, item in enumerate(value, 1):
            yield from _unwrap(item, f"{where}item {i}" if not where else f"{where}, item {i}", nested=True)
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
    elif isinstance(value.get("QueryResultRows"), list):  # CloudTrail Lake get-query-results
        yield from ((f"{where + ', ' if where else ''}{n}", row) for n, row in exports.query_rows(value))
    elif isinstance(value.get("hits"), dict) and isinstance(value["hits"].get("hits"), list):  # OpenSearch search
        for i, hit in enumerate(value["hits"]["hits"], 1):
            source = hit.get("_source") if isinstance(hit, dict) else None
            yield from _unwrap(source, f"{where + ', ' if where else ''}hit {i}", nested=True)
    elif isinstance(value.get("_source"), dict):  # one hit, as elasticdump writes them
        yield from _unwrap(value["_source"], where, nested=True)
    elif isinstance(value.get("result"), dict):  # a Splunk export line
        yield where or "document", _splunk(value["result"])
    elif isinstance(value.get("results"), list):  # Splunk search results as one document
        for i, result in enumerate(value["results"], 1):
            yield f"{where + ', ' if where else ''}result {i}", _splunk(result) if isinstance(result, dict) else None
    elif "eventID" in value or "eventTime" in value or "eventName" in value:
        yield where or "document", value
    else:
        yield where or "document", None


def _splunk(result: dict[str, Any]) -> msgspec.Raw | None:
    """A Splunk result's event: the raw text Splunk indexed (`_raw`)."""
    raw = result.get("_raw")
    return msgspec.Raw(raw.encode()) if isinstance(raw, str) else None


def _decode_each(
    items: Iterable[tuple[str, Any]], limit: int
) -> tuple[list[Record], list[str], list[BadRecord], Counter[str]]:
    """Each record on its own; one whose fields have the wrong types is coerced (and the fields counted), so
    that only what is not a JSON object at all is bad. Past `limit` records the input is refused at once: a file
    of tiny records weighs about 85 times its size once decoded."""
    records: list[Record] = []
    where: list[str] = []
    bad: list[BadRecord] = []
    coerced: Counter[str] = Counter()
    for location, item in items:
        if len(records) + len(bad) >= limit:
            raise InputError(f"holds over {limit:,} records, over the limit (limits.max_records)")
        try:
            rec, fixed = typed_record(item)
        except (InputError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            bad.append(BadRecord(location, str(exc)))
            continue
        records.append(rec)
        where.append(location)
        coerced.update(fixed)
    return records, where, bad, coerced


def typed_record(item: Any) -> tuple[Record, list[str]]:
    """A typed record, strictly if it can be, else coerced (with the fields that were)."""
    if item is None:
        raise InputError(_NOT_CLOUDTRAIL)
    if isinstance(item, dict) and coerce.wanted(item):
        return coerce.record(item)
    try:
        return (RECORD_DECODER.decode(item) if isinstance(item, msgspec.Raw) else _typed(item)), []
    except msgspec.ValidationError:
        value = msgspec.json.decode(item) if isinstance(item, msgspec.Raw) else item
        if not isinstance(value, dict):
            raise InputError(f"not a JSON object but {_kind(value)}") from None
        return coerce.record(value)


def _kind(value: Any) -> str:
    return {str: "a string", list: "an array", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _lines(data: bytes) -> Iterator[bytes]:
    """`data.splitlines()`, a line at a time: the list of every line of a file of tiny records would weigh more
    than the file many times over."""
    return (line.group().rstrip(b"\r\n") for line in _LINE.finditer(data))


def _json_lines(data: bytes, depth: int) -> Iterator[tuple[str, Any]]:
    nesting = Nesting(depth)
    for number, line in enumerate(_lines(data), 1):
        if not line.strip():
            continue
        try:
            value = nesting.decode(msgspec.json.decode, line)
        except msgspec.DecodeError as exc:
            yield f"line {number}", _Invalid(f"invalid JSON: {exc}")
            continue
        except RecursionError:  # one line too deep is that line's problem, not the file's
            yield f"line {number}", _Invalid(nested_too_deep(depth))
            continue
        yield from _unwrap(value, f"line {number}")


class _Invalid:
    """Marks a JSON Lines line that is not usable JSON, so that its line number survives."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def delivery_shaped(data: bytes, name: str) -> bool:
    """Whether an input is read as an S3 delivery object first: a JSON object, in a file not named as JSON Lines."""
    start = _CONTENT.search(data)
    return start is not None and data[start.start()] == ord("{") and not name.lower().endswith(_JSONL_SUFFIXES)


def _delivery(data: bytes, name: str, limits: Limits) -> Decoded | None:
    """An S3 delivery object's records, typed at once; record by record if one of them is refused; None for a
    document that is not one (read the general way)."""
    nesting = Nesting(limits.max_depth)
    try:
        delivery = nesting.decode(DELIVERY_DECODER.decode, data)
        if delivery.Records is not None:
            return Decoded(name, delivery.Records, lambda i: f"record {i + 1}", [])
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        spans = nesting.decode(SPANS_DECODER.decode, data).Records
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if spans is None:
        return None
    each = ((f"record {i}", raw) for i, raw in enumerate(spans, 1))
    records, where, bad, coerced = _decode_each(each, limits.max_records)
    return Decoded(name, records, where.__getitem__, bad, coerced=coerced)


def _records(data: bytes, name: str, limits: Limits) -> Decoded:
    """Decode a file's bytes into typed records, trying the S3 delivery fast path first. A delivery object with
    a record the typed decoder refuses is read record by record, so that each record is judged on its own."""
    start = _CONTENT.search(data)
    head = data[start.start() : start.start() + 64] if start else b""
    lines = name.lower().endswith(_JSONL_SUFFIXES)
    depth = limits.max_depth
    nesting = Nesting(depth)
    delivered = _delivery(data, name, limits) if delivery_shaped(head, name) else None
    if delivered is not None:
        return delivered
    if not head:
        raise InputError("empty file")
    absent: frozenset[str] = frozenset()
    parquet = data.startswith(_PARQUET)
    table = None if parquet or head.startswith((b"{", b"[")) else exports.csv_rows(data)
    if table is None and name.lower().endswith((".csv", ".csv.gz")):
        raise InputError("not a CloudTrail export (no eventID column)")
    if table is not None:  # a CSV export: its header says which fields no record of it can carry
        header, items = table
        absent = exports.absent(header)
    elif parquet:  # Amazon Security Lake's OCSF
        items = ocsf.records(data, limits)
    elif lines:
        items = _json_lines(data, depth)
    else:
        try:
            document = nesting.decode(msgspec.json.decode, data)
        except msgspec.DecodeError as exc:
            if "trailing characters" not in str(exc):
                raise InputError(f"invalid JSON: {exc}") from exc
            items = _json_lines(data, depth)
        else:
            items = _unwrap(document, "")
            if isinstance(document, dict) and isinstance(document.get("QueryResultRows"), list):
                absent = exports.absent(exports.query_columns(document))
    invalid: list[BadRecord] = []

    def keep_valid() -> Iterator[tuple[str, Any]]:
        for location, item in items:
            if isinstance(item, _Invalid):
                invalid.append(BadRecord(location, item.reason))
            else:
                yield location, item

    records, where, bad, coerced = _decode_each(keep_valid(), limits.max_records)
    return Decoded(name, records, where.__getitem__, invalid + bad, coerced=coerced, absent=absent)


@dataclass(frozen=True)
class Decoded:
    """A file's typed records (not yet normalized), where each came from, and what was wrong."""

    name: str
    records: list[Record]
    locate: Callable[[int], str]
    bad: list[BadRecord]
    error: str | None = None
    max_record: int | None = None  # bytes: a bigger record is left out as bad when normalized
    coerced: Counter[str] = field(default_factory=Counter)  # field -> records whose value had to be coerced
    absent: frozenset[str] = frozenset()  # record fields the input's shape cannot carry (a table export's columns)

    def normalize(self, rows: Sequence[int] | None = None, columns: Sequence[str] = COLUMNS) -> Normalized:
        """These records (all by default, else those at `rows` of `records`), each bad one named by its place."""
        if rows is None:
            return to_batch(self.records, self.name, self.locate, columns, max_record=self.max_record)
        chosen = [self.records[i] for i in rows]
        return to_batch(chosen, self.name, lambda i: self.locate(rows[i]), columns, max_record=self.max_record)


def _failed(name: str, reason: str) -> Decoded:
    return Decoded(name, [], str, [], f"{name}: {reason}")


def _utf8(data: bytes) -> bytes:
    """The text as the decoders read it: UTF-8 without a byte-order mark (Windows tools write one, and
    PowerShell's `aws cloudtrail lookup-events > out.json` writes UTF-16)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :]
    if data.startswith(_UTF16):
        try:
            return data.decode("utf-16").encode()
        except UnicodeError as exc:
            raise InputError(f"not UTF-8, and not valid UTF-16 after its byte-order mark ({exc})") from None
    return data


def _repaired(data: bytes, name: str, limits: Limits) -> Decoded:
    """The records, read again with each lone UTF-16 surrogate escape made U+FFFD where one made the document or
    a line unreadable: `\\ud800` alone is JSON's grammar but not text, and the decoders refuse the whole document
    for it, so that one attacker-chosen user agent would hide every event delivered with it. Only an input
    that failed is searched for them."""
    try:
        decoded = _records(data, name, limits)
    except InputError:
        fixed, lone = _lone_surrogates(data)
        if not lone:
            raise
        return _with_lone(_records(fixed, name, limits), lone)
    if not decoded.bad:
        return decoded
    fixed, lone = _lone_surrogates(data)
    return _with_lone(_records(fixed, name, limits), lone) if lone else decoded


def _lone_surrogates(data: bytes) -> tuple[bytes, int]:
    lone = 0

    def fix(escape: re.Match[bytes]) -> bytes:
        nonlocal lone
        if len(escape[0]) != 6:  # an escaped backslash, or a pair
            return escape[0]
        lone += 1
        return b"\\ufffd"  # as long as what it replaces

    return _ESCAPES.sub(fix, data), lone


def _with_lone(decoded: Decoded, lone: int) -> Decoded:
    return replace(decoded, coerced=decoded.coerced + Counter({_LONE: lone}))


def decode(data: bytes, name: str, limits: Limits = Limits()) -> Decoded:
    """Decode one input's bytes (gzipped or not) within `limits`; `name` (a path or URI) is used in errors
    and as source_uri. The containment boundary: whatever the bytes are, this returns, never raises."""
    try:
        decoded = _repaired(_utf8(inflate(data, limits.max_inflated)), name, limits)
    except InputError as exc:
        return _failed(name, str(exc))
    except RecursionError:
        return _failed(name, nested_too_deep(limits.max_depth))
    except MemoryError:
        return _failed(name, "out of memory while decoding it (lower limits.max_inflated_mb)")
    except Exception as exc:  # anything else these bytes provoke is still only this input's problem
        return _failed(name, f"cannot decode ({type(exc).__name__}: {exc})")
    held = len(decoded.records) + len(decoded.bad)
    if held > limits.max_records:
        return _failed(name, f"holds {held:,} records, over the limit (limits.max_records)")
    if not decoded.records and decoded.bad and all(b.reason == _NOT_CLOUDTRAIL for b in decoded.bad):
        return _failed(name, _NOT_CLOUDTRAIL)
    return replace(decoded, max_record=limits.max_record)


def read_bytes(path: Path, limits: Limits = Limits()) -> bytes:
    """A local file's bytes, refusing (InputError) one too large to be decoded within the limits. Never more than
    the limit is read: a device or a pipe named as input (`/dev/zero`) has no size to check first."""
    size = path.stat().st_size
    if size > limits.max_inflated:
        raise InputError(too_large(size, limits.max_inflated))
    with path.open("rb") as file:
        data = file.read(limits.max_inflated + 1)
    if len(data) > limits.max_inflated:
        raise InputError(too_large(None, limits.max_inflated))
    return data


def decode_file(path: Path, limits: Limits = Limits()) -> Decoded:
    """Decode one local file; a whole-file problem is returned as `error`, never raised."""
    try:
        data = read_bytes(path, limits)
    except InputError as exc:
        return _failed(str(path), str(exc))
    except OSError as exc:
        return _failed(str(path), f"cannot read ({_reason(exc)})")
    return decode(data, str(path), limits)


def describe(path: str, bad: Sequence[BadRecord]) -> str | None:
    """One error line for a file's bad records: the first, and how many more."""
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more bad records)" if len(bad) > 1 else ""
    return f"{path}: {bad[0].location}: {bad[0].reason}{more}"


def read_file(path: Path, limits: Limits = Limits()) -> FileResult:
    """Read one file into fully normalized events; errors are returned, never raised."""
    decoded = decode_file(path, limits)
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
    return [Work("file", "", str(f.path.resolve()), f"{f.size}-{f.mtime_ns}", f.size) for f in found], errors
