"""Ingest from S3 with S3's wait before the first byte: workers fetching one object at a time beside the
same workers fetching several at once, side by side in one run.

    python -m bench.fetch [--events 200000] [--latency-ms 30] [--split 1]

The trail's objects (1,000 records each, as `bench.scan` generates them) are served by a local stand-in for
S3's GetObject (`tests.s3_objects`) that waits `--latency-ms` before answering each GET, as S3 does before its
first byte (tens of milliseconds); boto3 reaches it as it reaches S3. Both runs use the real pool of worker
processes (one per core) and write a fresh lake; only `Options.fetch_threads` differs. `--split 20` cuts each
object into 20 of 50 records: many small objects, as a trail of many quiet accounts and regions delivers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import time
from pathlib import Path

from bench.scan import OUT, dataset
from monitor.ingest.run import FETCH_THREADS, Options, ingest
from monitor.ingest.sources.inputs import Work
from monitor.lake import Lake
from monitor.store.state import State
from tests.s3_objects import FAKE_ENV, Objects, serve

BUCKET = "trail"


def _cut(path: Path, parts: int) -> list[bytes]:
    """A delivery object as `parts` delivery objects of its records in turn."""
    if parts <= 1:
        return [path.read_bytes()]
    records = json.loads(gzip.decompress(path.read_bytes()))["Records"]
    size = -(-len(records) // parts)
    return [
        gzip.compress(json.dumps({"Records": records[i : i + size]}).encode()) for i in range(0, len(records), size)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--split", type=int, default=1, help="objects each generated object is cut into")
    args = parser.parse_args()
    trail = dataset(args.events, args.seed)
    files = sorted(trail.rglob("*.json.gz"))
    objects = Objects(
        {(BUCKET, f"{f.relative_to(trail)}.{i}"): part for f in files for i, part in enumerate(_cut(f, args.split))},
        lambda key: time.sleep(args.latency_ms / 1000),
    )
    server, url = serve(objects)
    os.environ.update({**FAKE_ENV, "AWS_ENDPOINT_URL": url})
    works = [Work("s3", BUCKET, key, "0", len(body)) for (_, key), body in sorted(objects.objects.items())]
    rows = []
    for threads in (1, FETCH_THREADS):
        work = OUT / f"fetch-{args.events}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        start = time.perf_counter()
        with State(work / "state.db") as state:
            summary = ingest(works, Lake(str(work / "lake")), state, options=Options(fetch_threads=threads))
        seconds = time.perf_counter() - start
        if summary.errors or summary.inputs != len(works):
            raise SystemExit(f"fetch_threads={threads}: {summary.inputs} of {len(works)} inputs, {summary.errors[:3]}")
        rate = round(summary.events / seconds)
        rows.append(
            {"fetch_threads": threads, "seconds": round(seconds, 2), "events": summary.events, "events_per_s": rate}
        )
        shutil.rmtree(work, ignore_errors=True)
    server.shutdown()
    speedup = round(rows[0]["seconds"] / rows[1]["seconds"], 2)
    rows.append({"speedup": speedup, "latency_ms": args.latency_ms, "objects": len(works)})
    Path(OUT / f"fetch-{args.events}-{args.split}.json").write_text(
        json.dumps({"events": args.events, "rows": rows}, indent=2)
    )
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
