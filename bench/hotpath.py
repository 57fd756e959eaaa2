"""Where a worker's time goes: one worker's hot path, profiled in this process, per 1,000-record object.

    python -m bench.hotpath scan               # a scan worker over the busy trail, the whole catalog
    python -m bench.hotpath ingest --top 20    # an ingest worker, into a throwaway lake

The objects come from the benchmarks' generated trail (`bench.scan`). A first group warms the caches the
workers keep (the pre-filter's verdicts, the lake's handle); the next ones are profiled. Each line is a
function's own time (not what it calls), as milliseconds per object and as a share of the whole.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.scan import dataset
from monitor.config import Config
from monitor.detect import scan
from monitor.detect.catalog import detectors_of
from monitor.ingest import run
from monitor.ingest.limits import Limits
from monitor.ingest.sources.inputs import Work

_GROUP = 32  # objects per profiled call: about what a worker is given at a time


def _scan_worker() -> Callable[[Sequence[Path]], object]:
    scan._init_worker(detectors_of(Config()), Limits())
    return scan._scan_group


def _ingest_worker(lake: str) -> Callable[[Sequence[Path]], object]:
    def group(paths: Sequence[Path]) -> object:
        works = [Work("file", "", str(p.resolve()), "bench", p.stat().st_size) for p in paths]
        return run.ingest_group(lake, Limits(), works, threads=1)

    return group


def profile(worker: Callable[[Sequence[Path]], object], objects: list[Path], top: int) -> None:
    worker(objects[:_GROUP])  # warm
    measured = objects[_GROUP:]
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for i in range(0, len(measured), _GROUP):
        worker(measured[i : i + _GROUP])
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own = sorted(((tt, f"{Path(file).name}:{line} {name}") for (file, line, name), (_, _, tt, _, _) in stats.items()))
    total = sum(tt for tt, _ in own)
    print(f"{len(measured)} objects, {wall / len(measured) * 1000:.2f} ms each (profiled: {total:.2f} s)")
    for tt, where in reversed(own[-top:]):
        print(f"{tt / len(measured) * 1000:7.3f} ms  {tt / total:6.1%}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("worker", choices=("scan", "ingest"))
    parser.add_argument("--objects", type=int, default=160, help="objects profiled, besides the warm-up's")
    parser.add_argument("--top", type=int, default=15, help="functions listed")
    args = parser.parse_args()
    objects = sorted(dataset(1_000_000, 7).rglob("*.json.gz"))[: args.objects + _GROUP]
    with tempfile.TemporaryDirectory() as lake:
        worker = _scan_worker() if args.worker == "scan" else _ingest_worker(lake)
        profile(worker, objects, args.top)


if __name__ == "__main__":
    main()
