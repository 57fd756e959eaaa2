"""The floor under every pipeline, on the same trail and all cores: what reading costs before TrailGuard.

    python -m bench.floor gunzip DIR   # read + gunzip (ISA-L, as ingest does) every object
    python -m bench.floor decode DIR   # the same + msgspec typed decode of every record (nested objects raw)

Each stage runs one process per core over all the objects (forkserver, as ingest starts its
workers) and prints what it read. `floor()` measures both as child processes, start-up
included, so that the scan and ingest benchmarks can report TrailGuard as a fraction of them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

from bench.measure import Run, measure
from monitor.ingest.events import DELIVERY_DECODER
from monitor.ingest.limits import Limits, inflate

STAGES = ("gunzip", "decode")
_LIMIT = Limits().max_inflated


def _gunzip(path: str) -> int:
    """Bytes inflated: read and gunzip, nothing else."""
    return len(inflate(Path(path).read_bytes(), _LIMIT))


def _decode(path: str) -> int:
    """Records decoded: read, gunzip, and the typed decode of the S3 delivery shape."""
    return len(DELIVERY_DECODER.decode(inflate(Path(path).read_bytes(), _LIMIT)).Records or ())


def run_stage(stage: str, root: str) -> dict[str, int]:
    paths = sorted(str(p) for p in Path(root).rglob("*.json.gz"))
    ctx = multiprocessing.get_context("forkserver")
    work = _decode if stage == "decode" else _gunzip
    with ctx.Pool(os.cpu_count() or 1) as pool:
        total = sum(pool.imap_unordered(work, paths, chunksize=8))
    return {"objects": len(paths), "records" if stage == "decode" else "bytes": total}


def floor(trail: Path, out: Path) -> dict[str, Run]:
    """Each stage measured as its own child process (start-up included), on this trail."""
    runs = {}
    for stage in STAGES:
        run = measure([sys.executable, "-m", "bench.floor", stage, str(trail)], out / f"floor-{stage}.json")
        if run.returncode != 0:
            raise SystemExit(f"floor stage {stage} exited {run.returncode}")
        runs[stage] = run
    return runs


def fraction(run: Run, decode_floor: Run) -> float:
    """A pipeline's throughput as a fraction of the decode floor's, measured in the same run."""
    return round(decode_floor.seconds / run.seconds, 2)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in STAGES:
        raise SystemExit(__doc__)
    print(json.dumps(run_stage(sys.argv[1], sys.argv[2])))
