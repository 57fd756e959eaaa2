"""Glance at an S3 delivery object's records before decoding them: count each as an event, and decode in
full only those a caller wants.

Two fast passes over the object: one cuts it into each record's raw text, the other decodes a few fields of
every record (`events.Glance`). The fields judge whether a record is an event, as a full decode would, and tell
the caller (a scan's pre-filter) whether to decode the rest. Anything out of the ordinary (another shape, a
field of the wrong type, a limit reached) returns None: the input is then read the usual way, which says why.
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
    RECORD_DECODER,
    SPANS_DECODER,
    BadRecord,
    Record,
    event_times,
    glanced,
    refused,
)
from monitor.ingest.files import typed_record
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


def glance(data: bytes, limits: Limits, want: Callable[[Mapping[str, pa.Array]], np.ndarray]) -> Glanced | None:
    """An S3 delivery object's records (gzipped or not), decoding in full only those `want` marks."""
    try:
        inflated = inflate(data, limits.max_inflated)
        nesting = Nesting(limits.max_depth)
        spans = nesting.decode(SPANS_DECODER.decode, inflated).Records
        glances = nesting.decode(GLANCE_DECODER.decode, inflated).Records
    except (InputError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if spans is None or glances is None or len(spans) > limits.max_records:
        return None
    columns = glanced(glances)
    ids = columns["event_id"]
    unusable, why = refused(ids, columns["event_name"], event_times(columns["event_time"])[1])
    bad = [BadRecord(f"record {i + 1}", why(i)) for i in np.flatnonzero(unusable).tolist()]
    wanted, where, coerced = [], [], Counter[str]()
    for i in np.flatnonzero(want(columns) & ~unusable).tolist():
        try:
            record = RECORD_DECODER.decode(spans[i])
        except msgspec.ValidationError:  # a field of the wrong type: coerced, as a record read on its own is
            record, fixed = typed_record(spans[i])
            coerced.update(fixed)
        wanted.append(record)
        where.append(f"record {i + 1}")
    return Glanced(len(spans), pc.filter(ids, pa.array(~unusable)), bad, wanted, where, coerced)
