"""Detection and backfill on a Dask cluster: the same day slices, the same ingest groups and the
same code as on one machine, spread over workers (`trailguard detect|ingest --engine dask`).

Each slice is one task that reads its own day of the lake (with the detectors' context on each
side, only the columns they need) and runs every detector on it, so a burst across midnight is
judged exactly as one machine judges it. Stateful detectors' baselines are reduced first: one
task per whole day summarizes it (or takes the summary cached beside the lake), the driver
gathers the small summaries and broadcasts them, and each slice merges the days it needs. No raw
event ever crosses the network; findings, and their ids, are those of the local engine.

A backfill sends each group of S3 objects to a worker, which fetches, normalizes and writes them
as one uniquely named lake file and returns only counts. The driver records a group in the ledger
when its result arrives, never before: a worker lost mid-group loses nothing (the group runs
again elsewhere), and what it may already have written is a duplicate the lake drops on read.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from distributed import Client, LocalCluster

from detectors.core.base import Context, Detector
from monitor.detect import baselines
from monitor.detect.pipeline import Slice, detect_slice
from monitor.ingest.run import Group
from monitor.ingest.workers import Crashed, Mapper
from monitor.lake import Lake

Summaries = Mapping[str, Mapping[date, pd.DataFrame]]


def client(address: str | None = None) -> Client:
    """A client of the scheduler at `address`, or of a local cluster (one worker process per core, loopback only)."""
    if address:
        return Client(address)
    cluster = LocalCluster(
        n_workers=os.cpu_count() or 1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    return Client(cluster)


class DaskEngine:
    """Runs `pipeline.detect`'s slices as tasks; pass it as `detect(..., engine=DaskEngine(client))`."""

    def __init__(self, dask: Client) -> None:
        self.dask = dask

    def __call__(
        self, lake: Lake, detectors: Sequence[type[Detector]], ctx: Context, slices: list[tuple[datetime, datetime]]
    ) -> Iterator[Slice]:
        # as one opaque object under a fresh key: a dict would be scattered under its own keys, shared across runs
        [shared] = self.dask.scatter([self._summaries(lake, detectors, ctx, slices)], broadcast=True, hash=False)
        futures = [
            self.dask.submit(_slice, _where(lake), tuple(detectors), ctx, since, until, shared, pure=False)
            for since, until in slices
        ]
        for future in futures:  # in order, so that findings are stored as the local engine stores them
            yield future.result()

    def _summaries(
        self, lake: Lake, detectors: Sequence[type[Detector]], ctx: Context, slices: list[tuple[datetime, datetime]]
    ) -> dict[str, dict[date, pd.DataFrame]]:
        """Every whole day's summary any slice's baseline needs, one task per detector and day."""
        wanted = {
            (cls, day)
            for cls in detectors
            if cls.history is not None
            for since, until in slices
            # a slice's baseline is as of where its frame starts (between since - lookbehind and until), its
            # window counted from the slice
            for day in _days(baselines.history_days(cls(), ctx, until, since)[0], until.date())
        }
        keys = sorted(wanted, key=lambda k: (k[0].id, k[1]))
        futures = [self.dask.submit(_day, _where(lake), cls, ctx, day, pure=False) for cls, day in keys]
        found: dict[str, dict[date, pd.DataFrame]] = {}
        for (cls, day), summary in zip(keys, self.dask.gather(futures), strict=True):
            found.setdefault(cls.id, {})[day] = summary
        return found


def mapper(dask: Client) -> Mapper:
    """`ingest`'s group map on the cluster: at most `window` groups in flight, results in order; a group
    whose task failed for good (its workers kept dying) comes back as `Crashed`, like a local worker's."""

    def settle(item: Any, future: Any) -> Group | Crashed[Any]:
        try:
            result: Group = future.result()
        except Exception as exc:
            return Crashed(item, f"its task failed on the cluster ({type(exc).__name__}: {exc})")
        return result

    def run(fn: Callable[[Any], Group], items: Iterable[Any], workers: int, window: int) -> Iterator[Any]:
        pending: deque[tuple[Any, Any]] = deque()
        for item in items:
            pending.append((item, dask.submit(fn, item, pure=False)))
            if len(pending) >= window:
                yield settle(*pending.popleft())
        while pending:
            yield settle(*pending.popleft())

    return run


def workers(dask: Client) -> int:
    """The cluster's worker threads: how many groups to keep busy."""
    threads: int = sum(w["nthreads"] for w in dask.scheduler_info()["workers"].values())
    return max(1, threads)


def _days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((end - first).days)]


def _where(lake: Lake) -> str:
    """The lake as a worker must name it: an S3 URI as given, a local directory as an absolute path
    (a relative one would be resolved in each worker's own directory)."""
    return lake.uri if "://" in lake.uri and not lake.local else lake.root


def _day(lake_uri: str, detector: type[Detector], ctx: Context, day: date) -> pd.DataFrame:
    return baselines.day_summary(Lake(lake_uri), detector(), ctx, day)


def _slice(
    lake_uri: str,
    detectors: tuple[type[Detector], ...],
    ctx: Context,
    since: datetime,
    until: datetime,
    summaries: Summaries,
) -> Slice:
    lake = Lake(lake_uri)

    def baseline(det: Detector, context: Context, at: datetime, start: datetime | None) -> pd.DataFrame:
        return baselines.build(lake, det, context, at, start, summaries.get(det.id, {}))

    return detect_slice(lake, detectors, ctx, since, until, baseline)
