"""The limits every input is decoded within, so that one hostile input costs only itself.

A gzip bomb, a document nested a thousand levels deep, a record of a gigabyte or a file of a
million tiny records would otherwise exhaust a worker's memory or stack, and take the other
inputs of its group down with it. Each limit turns into that input's quarantine (or, for a
record, a bad record), with the limit and the configuration key that raises it named.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Annotated, TypeVar, cast

from isal import isal_zlib  # ISA-L: the same gzip, about 1.5x faster to inflate
from pydantic import Field

from monitor.typed import Section, Whole

T = TypeVar("T")
_GZIP = b"\x1f\x8b"
_CORRUPT = cast("type[Exception]", isal_zlib.error)  # the class (isal's stubs declare an instance)
_GZIP_WBITS = 31  # a gzip header and trailer around a deflate stream


class InputError(Exception):
    """The whole input is unusable: corrupt, too large, too deep, or not CloudTrail."""


class Limits(Section):
    """Per-input limits; the defaults keep two workers well inside a 2 GiB container. One shape escapes the 3.5x
    estimate: a delivery object of tiny records (`{}` is 3 bytes, a decoded record about 240) weighs up to 80
    times its inflated size before `max_records` refuses it (JSON Lines are refused as they are read); a worker
    that runs out of memory on one is contained as any crash is (its input tried alone, then named)."""

    max_inflated_mb: Annotated[int, Whole(1, 16_384)] = Field(
        128, description="MiB an input may inflate to (decoding takes about 3.5x that)"
    )
    max_depth: Annotated[int, Whole(16, 500)] = Field(64, description="JSON nesting (CloudTrail nests about 10 deep)")
    max_record_kb: Annotated[int, Whole(1, 1 << 20)] = Field(1024, description="KiB of one record")
    max_records: Annotated[int, Whole(1, 100_000_000)] = Field(500_000, description="records in one input")
    max_cpu_seconds: Annotated[int, Whole(1, 86_400)] = Field(
        300, description="CPU a worker may spend on one task (decoding takes about 2 s per 100 MiB)"
    )

    @property
    def max_inflated(self) -> int:
        return self.max_inflated_mb << 20

    @property
    def max_record(self) -> int:
        return self.max_record_kb << 10


def inflate(data: bytes, limit: int) -> bytes:
    """Gunzip (every member) without ever holding more than `limit` bytes; plain data is returned as is."""
    if data[:2] != _GZIP:
        if len(data) > limit:
            raise InputError(too_large(len(data), limit))
        return data
    out: list[bytes] = []
    total = 0
    rest = data
    try:
        while rest:
            inflater = isal_zlib.decompressobj(_GZIP_WBITS)
            pending = rest
            while pending:
                chunk = inflater.decompress(pending, limit + 1 - total)
                total += len(chunk)
                if total > limit:
                    raise InputError(too_large(total, limit, inflated=True))
                out.append(chunk)
                pending = inflater.unconsumed_tail
            if not inflater.eof:
                raise InputError("corrupt or truncated gzip (the stream ends early)")
            rest = inflater.unused_data.lstrip(b"\0")
            if rest and rest[:2] != _GZIP:
                raise InputError("corrupt gzip (data after the end of the stream)")
    except _CORRUPT as exc:
        raise InputError(f"corrupt or truncated gzip ({exc})") from exc
    return b"".join(out)


def too_large(size: int | None, limit: int, inflated: bool = False) -> str:
    """Why an input is refused: its size, or (None) a stream read past the limit, or its inflated size."""
    verb = "inflates past" if inflated else "reads past" if size is None else f"is {size:,} bytes, over"
    return f"{verb} the {limit >> 20} MiB limit (limits.max_inflated_mb)"


class Nesting:
    """Decodes within a nesting depth. Decoders count nesting against the interpreter's recursion
    limit, so lowering it around a decode makes `depth` the deepest nesting accepted and raises
    RecursionError beyond it.

    The limit belongs to the process, so it is only lowered where no other thread could be caught
    by it (worker processes, the command line); elsewhere the interpreter's own limit (about a
    thousand levels) applies, and the RecursionError is contained all the same. The caller's
    stack depth is measured at the first decode: a loop that decodes line after line calls from
    the same depth every time.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.limit: int | None = None

    def decode(self, decoder: Callable[[bytes], T], data: bytes) -> T:
        if threading.active_count() > 1:
            return decoder(data)
        previous = sys.getrecursionlimit()
        if self.limit is None:
            frame, frames = sys._getframe(), 0
            while frame is not None:
                frames += 1
                frame = frame.f_back  # type: ignore[assignment]
            self.limit = frames + self.depth + 1  # a decoder called from here gets `depth` levels
        sys.setrecursionlimit(min(previous, self.limit))
        try:
            return decoder(data)
        finally:
            sys.setrecursionlimit(previous)


def nested_too_deep(depth: int) -> str:
    return f"JSON nested deeper than {depth} levels (limits.max_depth)"
