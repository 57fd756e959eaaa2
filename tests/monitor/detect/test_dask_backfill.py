"""A distributed backfill from S3 (moto) on a LocalCluster of two worker processes, one of them
killed mid-way: nothing is lost, and after the lake's de-duplication every event is there once."""

from __future__ import annotations

import gzip
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import boto3
import orjson
from distributed import Client, LocalCluster

from monitor.demo.generator import generate_trail
from monitor.detect.dask_engine import mapper, workers
from monitor.ingest.run import Options, Summary, from_sources
from monitor.ingest.sources.settings import parse
from monitor.ingest.sources.source import Window
from monitor.lake import Lake
from monitor.store.state import State

DAY = datetime(2024, 3, 1, tzinfo=UTC)


def test_a_worker_killed_mid_backfill_loses_nothing_and_the_lake_is_exact(aws: str, tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    paths = generate_trail(trail, 24_000, per_object=600, with_story=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="org-trail")
    expected = []
    for path in paths:
        body = path.read_bytes()
        s3.put_object(Bucket="org-trail", Key=str(path.relative_to(trail)), Body=body)
        expected += [r["eventID"] for r in orjson.loads(gzip.decompress(body))["Records"]]
    lake, state = Lake(str(tmp_path / "lake")), State(tmp_path / "state.db")
    killed: list[int] = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as dask,
    ):
        pids = list(dask.run(os.getpid).values())

        def kill_one_worker(summary: Summary) -> None:
            if summary.inputs >= 4 and not killed:  # groups are still in flight on both workers
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        options = Options(workers(dask), mapper(dask), 1, progress=kill_one_worker)
        summary = from_sources([parse("s3://org-trail")], lake, state, Window(DAY, DAY), options)
    assert killed
    assert summary.errors == []
    assert summary.inputs == len(paths) == 40
    assert len(state.objects("ingested")) == 40  # the ledger holds every object, each once
    read = lake.read(DAY, DAY.replace(day=2), ["event_id"])["event_id"].to_pylist()
    assert sorted(read) == sorted(expected)  # exactly once after de-duplication
    written = lake.dataset().count_rows()
    assert written >= len(expected)  # a group the lost worker had written may be there twice, never missing
