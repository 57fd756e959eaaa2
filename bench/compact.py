"""`trailguard compact` of a busy day at 1M and 10M events: its peak memory must stay flat.

    python -m bench.compact [--events 10000000]

The day is the generated 1M-event busy day of bench.sigma (cached), copied with fresh event ids until it
holds --events, in files of 25,000 events as ingest leaves them, plus a second copy of one file in twenty
(re-processed objects: compaction drops them). Beside it, on the 1M-event day, the whole-day compaction
TrailGuard did before (read the day, drop copies, sort, write): the baseline of the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.measure import Run, measure
from bench.sigma import DAY, OUT, day_lake
from monitor.lake import SORT_KEYS, Lake, drop_duplicates

_FILE_ROWS = 25_000


def busy_day(events: int) -> Lake:
    """The cached 1M-event day, copied with fresh ids until it holds `events`, and one file in twenty twice."""
    root = OUT / f"compact-day-{events}"
    lake, done = Lake(str(root / "lake")), root / ".complete"
    if done.exists():
        return lake
    shutil.rmtree(root, ignore_errors=True)
    source = day_lake(1_000_000)
    folder, written = lake.partition(DAY.date()), 0
    while written < events:
        for path in source.files(DAY.date()):
            table = pq.ParquetFile(path).read()
            copy = pc.binary_join_element_wise(table["event_id"], pa.scalar(f"-{written}"), "")
            table = table.set_column(table.schema.get_field_index("event_id"), "event_id", copy)
            for offset in range(0, table.num_rows, _FILE_ROWS):
                part = table.slice(offset, min(_FILE_ROWS, events - written))
                if part.num_rows == 0:
                    break
                lake.write_file(part, folder)
                if (written // _FILE_ROWS) % 20 == 0:
                    lake.write_file(part, folder)
                written += part.num_rows
    done.write_text("ok")
    return lake


def whole_day(lake_uri: str) -> None:
    """The baseline: the whole day in memory at once."""
    lake = Lake(lake_uri)
    before = lake.files(DAY.date())
    table = drop_duplicates(lake.dataset(before).to_table()).sort_by([(k, "ascending") for k in SORT_KEYS])
    lake.write_file(table.drop_columns(["date"]), lake.partition(DAY.date()))


def compact(lake: Lake, command: list[str]) -> Run:
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        copy = Path(scratch) / "lake"
        shutil.copytree(lake.root, copy)
        run = measure([sys.executable, *command, str(copy)], Path(scratch) / "out.txt")
        if run.returncode:
            raise SystemExit(f"{' '.join(command)} failed ({run.returncode})")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    trailguard = [*["-m", "monitor.cli", "compact", "--force", "--date"], DAY.date().isoformat(), "--lake"]
    rows = []
    for events in sorted({1_000_000, args.events}):
        lake = busy_day(events)
        run = compact(lake, trailguard)
        rows.append({"pipeline": "trailguard compact", "events": events} | _figures(run, events))
        if events == 1_000_000:
            run = compact(lake, ["-m", "bench.compact", "--whole-day"])
            rows.append({"pipeline": "whole day in memory", "events": events} | _figures(run, events))
    ours = [row["peak_process_mib"] for row in rows if row["pipeline"] == "trailguard compact"]
    flat = ours[-1] / ours[0]
    report = {"rows": rows, "trailguard_peak_growth_1m_to_max": round(flat, 2)}
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"trailguard_peak_growth_1m_to_max={report['trailguard_peak_growth_1m_to_max']}")
    (OUT / "compact.json").write_text(json.dumps(report, indent=2))


def _figures(run: Run, events: int) -> dict[str, float]:
    return {
        "seconds": round(run.seconds, 1),
        "events_per_s": round(events / run.seconds),
        "peak_process_mib": round(run.peak_process_mib),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--whole-day"]:
        whole_day(sys.argv[2])
    else:
        main()
