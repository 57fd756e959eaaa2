"""A findings frame becomes findings: every row, in order, times in UTC, nulls as None."""

import orjson
import pandas as pd

from detectors.core.base import FINDING_COLUMNS
from monitor.outbox.finding import from_frame


def test_a_frame_larger_than_a_slice_gives_every_finding_in_order_with_utc_times() -> None:
    rows = 5000  # more than one slice of rows
    start = pd.Timestamp("2024-03-01T01:00:00.123456", tz="Europe/Paris")
    frame = pd.DataFrame(
        {
            **{c: [f"{c}-{i}" for i in range(rows)] for c in FINDING_COLUMNS},
            "event_ids": [[f"id-{i}"] for i in range(rows)],
            "event_names": [["ConsoleLogin"]] * rows,
            "event_time": [start + pd.Timedelta(seconds=i) for i in range(rows)],
            "last_seen": pd.Series([start] * rows).dt.tz_convert("UTC"),
            "region": [None if i % 2 else "eu-west-1" for i in range(rows)],
            "details": [orjson.dumps({"n": i}).decode() for i in range(rows)],
        }
    )
    found = list(from_frame(frame))
    assert [f.finding_id for f in found] == [f"finding_id-{i}" for i in range(rows)]
    assert (found[0].event_time, found[-1].event_time) == ("2024-03-01T00:00:00.123456Z", "2024-03-01T01:23:19.123456Z")
    assert {f.last_seen for f in found} == {"2024-03-01T00:00:00.123456Z"}
    assert (found[4097].region, found[4098].region, found[4097].event_ids) == (None, "eu-west-1", ("id-4097",))
    assert found[-1].record()["details"] == {"n": rows - 1}
