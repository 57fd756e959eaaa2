"""Inputs for the fault suite: good CloudTrail objects, and mutations of them whose fate is known in
advance (wholly bad: quarantined and named once; partly bad: named once, their good records kept).

Every mutation is seeded, so a failing campaign is replayed with the same `--fuzz-seed`.
"""

from __future__ import annotations

import codecs
import gzip
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tests.cloudtrail import PROD, console_login, event, iam_user, root

# the limits the campaign runs with (a configuration file in each test): small, so bombs are cheap
LIMITS = "[limits]\nmax_inflated_mb = 8\nmax_depth = 64\nmax_record_kb = 256\nmax_records = 2000\n"
INFLATED = 8 << 20
MAX_RECORDS = 2000


@dataclass(frozen=True)
class Input:
    """One file or object: its name (suffix included), bytes, expected fate, and the events it must give."""

    name: str
    data: bytes
    fate: str  # "good": never named; "partial": named once, `events` kept; "bad": named once, nothing kept
    events: frozenset[str] = field(default_factory=frozenset)
    kind: str = "good"


def _records(rng: random.Random, count: int) -> list[dict[str, Any]]:
    people = ("alice", "bob", "carol", "dave")
    return [
        event(
            "ListBuckets",
            "s3.amazonaws.com",
            iam_user(rng.choice(people), PROD),
            time=f"2024-05-01T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
            eventID=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            userAgent=rng.choice(["aws-cli/2.15.0", "Boto3/1.34 \u202egpj.exe", "curl/8 \x1b]8;;x\x07"]),
        )
        for _ in range(count)
    ]


def _delivery(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"Records": records}).encode()


def _ids(records: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(r["eventID"] for r in records)


def good(rng: random.Random, n: int) -> Input:
    records = _records(rng, rng.randint(1, 12))
    return Input(f"{n:05d}-good.json.gz", gzip.compress(_delivery(records)), "good", _ids(records))


def _bitflip(rng: random.Random, n: int) -> Input:
    data = bytearray(gzip.compress(_delivery(_records(rng, 8))))
    for at in rng.sample(range(10, len(data) - 8), min(16, len(data) - 18)):
        data[at] ^= 1 << rng.randrange(8)
    return Input(f"{n:05d}-bitflip.json.gz", bytes(data), "bad", kind="bitflip")


def _truncated(rng: random.Random, n: int) -> Input:
    data = gzip.compress(_delivery(_records(rng, 8)))
    return Input(f"{n:05d}-truncated.json.gz", data[: rng.randint(10, len(data) - 9)], "bad", kind="truncated")


def _deep(rng: random.Random, n: int) -> Input:
    depth = rng.randint(100, 3000)
    doc = '{"Records": [' + '{"a": ' * depth + "1" + "}" * depth + "]}"
    return Input(f"{n:05d}-deep.json", doc.encode(), "bad", kind="deep")


@cache
def _bomb() -> bytes:
    return gzip.compress(b'{"Records": [' + b" " * (2 * INFLATED) + b"]}", compresslevel=9)


def _bomb_input(rng: random.Random, n: int) -> Input:
    return Input(f"{n:05d}-bomb.json.gz", _bomb(), "bad", kind="bomb")


def _random_bytes(rng: random.Random, n: int) -> Input:
    data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
    return Input(f"{n:05d}-noise.json", b"x" + data, "bad", kind="noise")


def _not_cloudtrail(rng: random.Random, n: int) -> Input:
    doc = {"name": "settings", "values": [rng.random() for _ in range(5)]}
    return Input(f"{n:05d}-config.json", json.dumps(doc).encode(), "bad", kind="not-cloudtrail")


def _empty(rng: random.Random, n: int) -> Input:
    return Input(f"{n:05d}-empty.json", b"", "bad", kind="empty")


def _nan(rng: random.Random, n: int) -> Input:
    return Input(f"{n:05d}-nan.json", b'{"Records": [NaN]}', "bad", kind="nan")


def _bad_utf8(rng: random.Random, n: int) -> Input:
    data = _delivery(_records(rng, 3)).replace(b'"Records"', b'"Rec\xffords"', 1)
    return Input(f"{n:05d}-utf8.json", data, "bad", kind="bad-utf8")


def _too_many(rng: random.Random, n: int) -> Input:
    records = [{"eventID": f"tiny-{n}-{i}", "eventTime": "2024-05-01T00:00:00Z"} for i in range(MAX_RECORDS + 1)]
    return Input(f"{n:05d}-many.json.gz", gzip.compress(_delivery(records)), "bad", kind="too-many")


def _oversize(rng: random.Random, n: int) -> Input:
    return Input(f"{n:05d}-huge.json", b'{"Records": [' + b" " * INFLATED + b"]}", "bad", kind="oversize")


def _wrong_types(rng: random.Random, n: int) -> Input:
    """Fields of the wrong type: an id, time or name that is not text refuses its record; any other field is
    coerced and the record kept."""
    records = _records(rng, 6)
    refusing: list[Callable[[dict[str, Any]], None]] = [
        lambda r: r.update(eventName=42),
        lambda r: r.update(eventTime="yesterday"),
        lambda r: r.pop("eventID"),
    ]
    coerced: list[Callable[[dict[str, Any]], None]] = [
        lambda r: r.update(userIdentity=["not", "an", "object"]),
        lambda r: r.update(readOnly={"no": 1}),
        lambda r: r.update(userAgent=["a", {"b": 2}]),
    ]
    wrong = rng.sample(range(6), rng.randint(1, 3))
    refused = {at for at in wrong if rng.random() < 0.5}
    for at in wrong:
        rng.choice(refusing if at in refused else coerced)(records[at])
    kept = [r for i, r in enumerate(records) if i not in refused]
    fate = "partial" if refused else "good"
    return Input(f"{n:05d}-types.json.gz", gzip.compress(_delivery(records)), fate, _ids(kept), "wrong-types")


def _huge_record(rng: random.Random, n: int) -> Input:
    """A root sign-in (which every scan judges) with a 300 KiB user agent, among good records."""
    records = _records(rng, 4)
    records[rng.randrange(4)] = console_login(
        root(PROD), eventID=str(uuid.UUID(int=rng.getrandbits(128), version=4)), userAgent="A" * (300 << 10)
    )
    kept = [r for r in records if len(r["userAgent"]) < 1000]
    return Input(f"{n:05d}-bigrecord.json.gz", gzip.compress(_delivery(records)), "partial", _ids(kept), "huge-record")


def _lines(rng: random.Random, n: int) -> Input:
    records = _records(rng, 6)
    lines = [json.dumps(r) for r in records]
    garbage = rng.choice(["{not json", "[" * 200 + "]" * 200, '"a string"', "\x00\x01"])
    at = rng.randrange(len(lines))
    lines[at] = garbage
    kept = [r for i, r in enumerate(records) if i != at]
    data = gzip.compress("\n".join(lines).encode())
    return Input(f"{n:05d}-lines.jsonl.gz", data, "partial", _ids(kept), "json-lines")


def _lone_surrogate(rng: random.Random, n: int) -> Input:
    """A user agent ending in a lone UTF-16 surrogate escape (JSON's grammar allows it, text does not): its
    record is kept with U+FFFD in its place, and so are the others."""
    records = _records(rng, 5)
    records[rng.randrange(5)]["userAgent"] = "aws-cli/2.15.0 \ud800"
    data = json.dumps({"Records": records}).encode()  # ensure_ascii writes the surrogate as `\ud800`
    assert b"\\ud800" in data
    return Input(f"{n:05d}-surrogate.json.gz", gzip.compress(data), "good", _ids(records), "lone-surrogate")


def _far_time(rng: random.Random, n: int) -> Input:
    """A time past year 9999 once in UTC (or before year 1): only its record is refused."""
    records = _records(rng, 5)
    at = rng.randrange(5)
    records[at]["eventTime"] = rng.choice(["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"])
    kept = [r for i, r in enumerate(records) if i != at]
    return Input(f"{n:05d}-far-time.json.gz", gzip.compress(_delivery(records)), "partial", _ids(kept), "far-time")


def _byte_order_mark(rng: random.Random, n: int) -> Input:
    """UTF-8 behind a byte-order mark, or UTF-16 as PowerShell's `>` writes it: read as any other text."""
    records = _records(rng, 4)
    text = json.dumps({"Records": records})
    data = rng.choice([codecs.BOM_UTF8 + text.encode(), text.encode("utf-16")])
    return Input(f"{n:05d}-bom.json", data, "good", _ids(records), "byte-order-mark")


MUTATIONS: dict[str, Callable[[random.Random, int], Input]] = {
    "bitflip": _bitflip,
    "truncated": _truncated,
    "deep": _deep,
    "bomb": _bomb_input,
    "noise": _random_bytes,
    "not-cloudtrail": _not_cloudtrail,
    "empty": _empty,
    "nan": _nan,
    "bad-utf8": _bad_utf8,
    "too-many": _too_many,
    "oversize": _oversize,
    "wrong-types": _wrong_types,
    "huge-record": _huge_record,
    "json-lines": _lines,
    "lone-surrogate": _lone_surrogate,
    "far-time": _far_time,
    "byte-order-mark": _byte_order_mark,
}


RARE = {"oversize": 3}  # kinds that cost megabytes each: a few are enough


def corpus(seed: int, count: int) -> list[Input]:
    """`count` inputs, half of them good and half mutated (every kind of mutation in turn), shuffled."""
    rng = random.Random(seed)
    turns = [k for k in MUTATIONS if k not in RARE]
    kinds = [kind for kind, times in RARE.items() for _ in range(times)]
    kinds += [turns[n % len(turns)] for n in range(count // 2 - len(kinds))]
    inputs = [MUTATIONS[kind](rng, n) for n, kind in enumerate(kinds)]
    inputs += [good(rng, n) for n in range(len(kinds), count)]
    rng.shuffle(inputs)
    return inputs
