"""Inputs normalized together, a batch of records at a time, are stored and reported exactly as if each were
normalized alone: the fuzz corpus (good objects, bad records, bad times, huge records, wrong types, other
shapes, inputs that cannot be decoded at all) ingested in one group against one input per group."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from tests.faults.conftest import Run, no_traceback, trailguard
from tests.faults.corpus import LIMITS, corpus
from tests.faults.test_fuzz import folder


def _stored(lake: Path) -> pa.Table:
    """The lake's rows in a fixed order, without the one column that differs between runs."""
    table = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table()
    table = table.drop_columns(["ingested_at"])
    return table.sort_by([("source_uri", "ascending"), ("event_id", "ascending")])


def _ingest(trail: Path, root: Path, config: Path, per_group: int) -> Run:
    lake, state = root / "lake", root / "state.db"
    args = ["--lake", str(lake), "--state", str(state), "--commit-inputs", str(per_group), "--no-progress"]
    return trailguard("ingest", "--source", str(trail), *args, config=config)


def test_inputs_normalized_together_are_stored_and_reported_as_if_alone(tmp_path: Path) -> None:
    trail = folder(tmp_path / "trail", corpus(16, 300))
    config = tmp_path / "limits.toml"
    config.write_text(LIMITS)
    alone, together = tmp_path / "alone", tmp_path / "together"
    one_by_one, all_at_once = _ingest(trail, alone, config, 1), _ingest(trail, together, config, 500)
    for run in (one_by_one, all_at_once):
        no_traceback(run)
    assert sorted(all_at_once.errors) == sorted(one_by_one.errors)
    assert all_at_once.err.splitlines()[-1] == one_by_one.err.splitlines()[-1]  # inputs, events, bad records...
    assert _stored(together / "lake").equals(_stored(alone / "lake"))
    assert len(one_by_one.errors) > 20  # the corpus is what it says: bad inputs, bad records, many events
    assert _stored(alone / "lake").num_rows > 1000
