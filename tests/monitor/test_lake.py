"""The lake: atomic files, pruned de-duplicated reads, compaction, retention, and outside readers."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.compaction import CompactionError, compact_day
from monitor.demo.generator import generate_trail
from monitor.ingest.events import SCHEMA
from monitor.ingest.run import Options, from_uris
from monitor.lake import SORT_KEYS, Lake
from monitor.lake_sql import athena_ddl, duckdb_view
from monitor.store.state import State
from tests.cloudtrail import event, iam_user, normalize_batch

ROOT = Path(__file__).resolve().parents[2]


def events(day: str, n: int) -> pa.Table:
    recs = [event("ListBuckets", "s3.amazonaws.com", iam_user(), time=f"{day}T{h:02d}:00:00Z") for h in range(n)]
    return pa.Table.from_batches([normalize_batch(*recs)])


def window(first: str, last: str) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(f"{first}T00:00:00+00:00"), datetime.fromisoformat(f"{last}T00:00:00+00:00")


def test_days_split_into_hive_partitions_and_no_temporary_files(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    written = lake.write(pa.concat_tables([events("2024-05-01", 3), events("2024-05-02", 2)]))
    assert sorted(Path(p).parent.name for p in written) == ["date=2024-05-01", "date=2024-05-02"]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert pa.parquet.read_schema(written[0]) == SCHEMA  # type: ignore[attr-defined]


def test_reads_prune_by_window_and_drop_duplicates(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    day1, day2 = events("2024-05-01", 4), events("2024-05-02", 4)
    lake.write(day1)
    lake.write(day1)  # re-processed after a crash
    lake.write(day2)
    got = lake.read(*window("2024-05-01", "2024-05-02"), ["event_id", "event_name"])
    assert got.column_names == ["event_id", "event_name"]
    assert sorted(got["event_id"].to_pylist()) == sorted(day1["event_id"].to_pylist())
    partial = lake.read(datetime(2024, 5, 1, 1, tzinfo=UTC), datetime(2024, 5, 1, 3, tzinfo=UTC))
    assert partial.num_rows == 2
    assert Lake(str(tmp_path / "empty")).read(*window("2024-05-01", "2024-05-02")).num_rows == 0


def test_compaction_keeps_every_event_once_sorted(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    day = events("2024-05-01", 6)
    for chunk in (day.slice(0, 2), day.slice(2, 4), day.slice(0, 3)):
        lake.write(chunk)
    crashed = tmp_path / "events/date=2024-05-01/.20240501T000000-dead.parquet.partial"
    crashed.write_bytes(b"half a file")
    an_hour_ago = time.time() - 3700
    os.utime(crashed, (an_hour_ago, an_hour_ago))
    writing = tmp_path / "events/date=2024-05-01/.20240501T000001-live.parquet.partial"  # an ingest's, in flight
    writing.write_bytes(b"being written")
    done = compact_day(lake, date(2024, 5, 1))
    assert not crashed.exists()
    assert writing.exists()  # never taken from under the writer that is still writing it
    assert (done.files_before, done.files_after, done.rows_before, done.rows_after) == (3, 1, 9, 6)
    assert sorted(lake.read(*window("2024-05-01", "2024-05-02"))["event_id"].to_pylist()) == sorted(
        day["event_id"].to_pylist()
    )


def test_compaction_in_small_buckets_is_sorted_whole_and_loses_nothing(tmp_path: Path) -> None:
    """Buckets of a few kilobytes make a day of mixed accounts, services and hours into many buckets: the
    files still come out in one sort order, every event once, copies dropped, nothing left behind."""
    lake = Lake(str(tmp_path / "lake"))
    records = [
        event(name, source, iam_user(account=account), time=f"2024-05-01T{hour:02d}:{minute:02d}:00Z")
        for account in ("111111111111", "222222222222", "333333333333")
        for source, name in (("s3.amazonaws.com", "ListBuckets"), ("iam.amazonaws.com", "CreateUser"))
        for hour in (23, 0, 7, 12)
        for minute in range(0, 60, 7)
    ] + [event("ListBuckets", "s3.amazonaws.com", iam_user(), recipientAccountId=None, time="2024-05-01T05:00:00Z")]
    day = pa.Table.from_batches([normalize_batch(*records)])
    for chunk in (day.slice(0, 100), day.slice(100), day.slice(40, 80)):  # 80 copies, across buckets' inputs
        lake.write(chunk)
    done = compact_day(lake, date(2024, 5, 1), bucket_bytes=4096)
    assert (done.rows_before, done.rows_after, done.files_after) == (day.num_rows + 80, day.num_rows, 1)
    file = pa.parquet.ParquetFile(lake.files(date(2024, 5, 1))[0])  # type: ignore[attr-defined]
    assert file.metadata.num_row_groups > 10  # one per bucket: the buckets were many
    written = file.read()
    assert written.num_rows == day.num_rows
    assert written.select(list(SORT_KEYS)) == written.select(list(SORT_KEYS)).sort_by(
        [(k, "ascending") for k in SORT_KEYS]
    )
    assert sorted(written["event_id"].to_pylist()) == sorted(day["event_id"].to_pylist())
    assert [p.name for p in tmp_path.rglob(".*")] == []


def test_compaction_removes_the_spill_a_killed_compaction_left_and_nothing_younger(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    lake.write(events("2024-05-01", 3))
    killed, running = tmp_path / ".compacting-killed", tmp_path / ".compacting-running"
    for folder in (killed, running):
        folder.mkdir()
        (folder / "000000.arrow").write_bytes(b"spilled")
    os.utime(killed, (time.time() - 2 * 86_400, time.time() - 2 * 86_400))
    compact_day(lake, date(2024, 5, 1))
    assert not killed.exists()
    assert (running / "000000.arrow").exists()


def test_compaction_of_a_day_with_an_unreadable_file_names_it_and_changes_nothing(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    lake.write(events("2024-05-01", 3))
    broken = Path(lake.partition(date(2024, 5, 1))) / "zz-torn.parquet"
    broken.write_bytes(Path(lake.files(date(2024, 5, 1))[0]).read_bytes()[:-100])
    before = lake.files(date(2024, 5, 1))
    with pytest.raises(CompactionError, match=r"zz-torn\.parquet: cannot be read"):
        compact_day(lake, date(2024, 5, 1))
    assert lake.files(date(2024, 5, 1)) == before
    assert [p.name for p in tmp_path.rglob(".*")] == []


def test_a_file_whose_writing_fails_never_appears(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))

    def half_written() -> None:
        with lake.writer(str(tmp_path / "events/date=2024-05-01")) as out:
            out.write(events("2024-05-01", 2))
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        half_written()
    assert list(tmp_path.rglob("*.parquet")) == []
    assert list(tmp_path.rglob(".*")) == []


def test_retention_removes_whole_old_days(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    for d in ("2024-05-01", "2024-05-10", "2024-05-20"):
        lake.write(events(d, 1))
    assert lake.expire(timedelta(days=15), today=date(2024, 5, 21)) == [date(2024, 5, 1)]
    assert lake.days() == [date(2024, 5, 10), date(2024, 5, 20)]


def test_folders_left_in_the_lake_are_no_days(tmp_path: Path) -> None:
    """A folder that is not a day's partition (`date=garbage`, a copy `events/old/`) holding Parquet files: the
    days, the notebooks' window and retention go on without it."""
    lake = Lake(str(tmp_path))
    lake.write(events("2024-05-10", 1))
    for stray in ("date=garbage", "old"):
        (tmp_path / "events" / stray).mkdir()
        pq.write_table(events("2024-05-11", 1), tmp_path / "events" / stray / "x.parquet")
    assert lake.days() == [date(2024, 5, 10)]
    assert lake.expire(timedelta(days=15), today=date(2024, 5, 21)) == []


def test_duckdb_view_sees_every_event_once(tmp_path: Path) -> None:
    """Also where the lake's path holds a quote, and beside a file written before a column was added."""
    root = tmp_path / "bob's lake"
    lake = Lake(str(root))
    day = events("2024-05-01", 5)
    lake.write(day)
    lake.write(day.slice(0, 2))
    older = events("2024-05-02", 3).drop_columns(["saml_provider_arn"])
    (root / "events" / "date=2024-05-02").mkdir()
    pq.write_table(older, root / "events" / "date=2024-05-02" / "older.parquet")
    db = duckdb.connect()
    db.execute(duckdb_view(str(root)))
    assert db.execute("SELECT count(*), count(DISTINCT event_id) FROM trailguard_events").fetchone() == (8, 8)
    assert str(db.execute("SELECT max(date) FROM trailguard_events").fetchone()[0]) == "2024-05-02"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("deploy/athena/events.sql", athena_ddl("s3://YOUR-LAKE-BUCKET/trailguard")),
        ("deploy/duckdb/events.sql", duckdb_view("/var/lib/trailguard/lake")),
    ],
)
def test_shipped_sql_matches_the_schema(path: str, text: str) -> None:
    assert (ROOT / path).read_text() == text, f"regenerate {path} from monitor/lake_sql.py"


def test_the_lake_ingest_writes_from_a_generated_day_is_pinned(tmp_path: Path) -> None:
    """Every column of every event (but where and when it was ingested), pinned: a change here is a change of
    what every reader of the lake sees, never a side effect."""
    generate_trail(tmp_path / "day", 20_000, seed=7)
    lake = Lake(str(tmp_path / "lake"))
    from_uris([str(tmp_path / "day")], lake, State(tmp_path / "state.db"), options=Options(workers=1))
    table = lake.read(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
    table = table.drop_columns(["ingested_at", "source_uri"]).sort_by("event_id").combine_chunks()
    out = pa.BufferOutputStream()
    with pa.ipc.new_stream(out, table.schema) as stream:
        stream.write_table(table)
    assert table.num_rows == 20_016
    assert hashlib.sha256(out.getvalue().to_pybytes()).hexdigest() == (
        "03e1c15fc173eb0cf0db47893a4adab811432bc11f0595f6b619595b26d2b6cd"
    )


def test_compaction_takes_files_written_before_a_column_was_added_or_by_another_writer(tmp_path: Path) -> None:
    """A file without a column added since (null in the compacted day), one with times in nanoseconds and one
    with naive times (UTC, as the lake's only zone): every event kept once, in the lake's schema."""
    lake = Lake(str(tmp_path))
    lake.write(events("2024-05-01", 4))
    folder = tmp_path / "events" / "date=2024-05-01"
    older = events("2024-05-01", 3).drop_columns(["saml_provider_arn"])
    pq.write_table(older, folder / "older.parquet")
    for name, kind in (("ns", pa.timestamp("ns", tz="UTC")), ("naive", pa.timestamp("us"))):
        table = events("2024-05-01", 2)
        at = table.schema.get_field_index("event_time")
        pq.write_table(table.set_column(at, "event_time", table["event_time"].cast(kind)), folder / f"{name}.parquet")
    done = compact_day(lake, date(2024, 5, 1))
    assert (done.files_before, done.rows_after) == (4, 11)
    day = lake.read(*window("2024-05-01", "2024-05-02"))
    assert day.num_rows == 11
    assert day.schema == SCHEMA
    assert set(day["event_time"].to_pylist()) <= {datetime(2024, 5, 1, h, tzinfo=UTC) for h in range(4)}
