"""Glance at an S3 delivery object's records before decoding them: count each as an event, and decode in
full only those a caller wants.

One fast pass decodes a few fields of every record (`events.Glance`). The fields judge whether a record is an
event, as a full decode would, and tell the caller (a scan's pre-filter) whether to decode the rest. Only when
some record is wanted does a second pass cut the object into each record's raw text; a wanted record is then
decoded on its own, as `files` decodes each record of a delivery object. Anything out of the ordinary
(another shape, text that is not UTF-8, a field of the wrong type where a glance looks, a limit reached)
returns None: the input is then read the usual way, which says why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.ingest.events import (
    GLANCE_DECODER,
    SPANS_DECODER,
    BadRecord,
    Record,
    event_times,
    glance_columns,
    refused,
)
from monitor.ingest.files import delivery_shaped, typed_record
from monitor.ingest.limits import InputError, Limits, Nesting, inflate


@dataclass(frozen=True)
class Glanced:
    """One input's records: how many, the ids of those that are events, the bad ones, and the wanted ones in full."""

    records: int
    event_ids: pa.Array
    bad: list[BadRecord]
    wanted: list[Record]
    where: list[str]  # each wanted record's place in the input
    coerced: Counter[str]


def glance(
    data: bytes, name: str, limits: Limits, want: Callable[[Mapping[str, pa.Array]], np.ndarray]
) -> Glanced | None:
    """An S3 delivery object's records (gzipped or not), decoding in full only those `want` marks."""
    try:
        inflated = inflate(data, limits.max_inflated)
        if not delivery_shaped(inflated, name) or not _utf8(inflated):
            return None
        nesting = Nesting(limits.max_depth)
        glances = nesting.decode(GLANCE_DECODER.decode, inflated).Records
        if glances is None or len(glances) > limits.max_records:
            return None
        columns = glance_columns(glances)
        ids = columns["event_id"]
        unusable, why = refused(ids, columns["event_name"], event_times(columns["event_time"])[1])
        chosen = np.flatnonzero(want(columns) & ~unusable).tolist()
        spans = nesting.decode(SPANS_DECODER.decode, inflated).Records if chosen else []  # none wanted: no cutting
    except (InputError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if spans is None or (chosen and len(spans) != len(glances)):
        return None
    wanted, where, bad, coerced = [], [], [], Counter[str]()
    dropped = unusable.copy()
    for i in chosen:
        try:
            record, fixed = typed_record(spans[i])
        except (InputError, msgspec.ValidationError, msgspec.DecodeError) as exc:  # as `files` finds it
            bad.append(BadRecord(f"record {i + 1}", str(exc)))
            dropped[i] = True
            continue
        wanted.append(record)
        where.append(f"record {i + 1}")
        coerced.update(fixed)
    bad += [BadRecord(f"record {i + 1}", why(i)) for i in np.flatnonzero(unusable).tolist()]
    return Glanced(len(glances), pc.filter(ids, pa.array(~dropped)), bad, wanted, where, coerced)


def _utf8(data: bytes) -> bool:
    """Whether the text is UTF-8, which a full decode checks in every field a glance skips."""
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
