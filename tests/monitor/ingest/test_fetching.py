"""A worker fetches the inputs of its group several at a time, and one input that cannot be fetched stays its own."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.ingest.run import Options, ingest
from monitor.ingest.sources.inputs import Work
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import PROD, event, iam_user
from tests.s3_objects import FAKE_ENV, Objects, serve

BUCKET = "org-trail"
HELD = 30  # seconds a GET waits for another to arrive: only a worker that fetches one at a time waits it out


def _objects(n: int) -> dict[tuple[str, str], bytes]:
    found = {}
    for i in range(n):
        records = [event("ListBuckets", "s3.amazonaws.com", iam_user("alice", PROD), time=f"2024-05-01T10:{i:02d}:00Z")]
        found[(BUCKET, f"AWSLogs/{PROD}/CloudTrail/us-east-1/2024/05/01/o{i}.json.gz")] = gzip.compress(
            json.dumps({"Records": records}).encode()
        )
    return found


@pytest.fixture
def s3_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Objects]:
    """The stand-in S3, where a GET is answered only once a second one is in flight (or after HELD seconds)."""
    both = threading.Barrier(2, timeout=HELD)

    def together(key: str) -> None:
        try:
            both.wait()
        except threading.BrokenBarrierError:  # the last GET of an odd count, or no overlap at all
            both.reset()

    objects = Objects(_objects(6), together)
    server, url = serve(objects)
    for name, value in {**FAKE_ENV, "AWS_ENDPOINT_URL": url}.items():
        monkeypatch.setenv(name, value)
    yield objects
    server.shutdown()


def _works(objects: Objects, missing: int = 0) -> list[Work]:
    keys = [k for _, k in objects.objects] + [f"AWSLogs/{PROD}/gone{i}.json.gz" for i in range(missing)]
    return [Work("s3", BUCKET, k, "0", 100) for k in sorted(keys)]


def test_a_worker_fetches_its_inputs_several_at_a_time(s3_at: Objects, tmp_path: Path) -> None:
    with State(tmp_path / "state.db") as state:
        summary = ingest(_works(s3_at), Lake(str(tmp_path / "lake")), state, options=Options(workers=1))
    assert (summary.inputs, summary.events, summary.errors) == (6, 6, [])
    assert s3_at.most_in_flight >= 2  # one at a time, each GET would have waited HELD seconds for a partner
    assert s3_at.served == 6


def test_an_input_that_cannot_be_fetched_is_kept_for_later_and_the_others_go_on(s3_at: Objects, tmp_path: Path) -> None:
    with State(tmp_path / "state.db") as state:
        summary = ingest(_works(s3_at, missing=2), Lake(str(tmp_path / "lake")), state, options=Options(workers=1))
    assert (summary.inputs, summary.events, summary.retry_later) == (6, 6, 2)
    assert sorted(summary.errors) == [
        f"s3://{BUCKET}/AWSLogs/{PROD}/gone{i}.json.gz: cannot fetch (NoSuchKey)" for i in range(2)
    ]
