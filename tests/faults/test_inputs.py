"""One bad input costs only itself: the cases the campaign found, each through the real commands."""

from __future__ import annotations

import gzip
import json
import os
import stat
import sys
import zlib
from pathlib import Path

import orjson
import pyarrow as pa

from monitor.lake import Lake
from tests import ocsf
from tests.cloudtrail import console_login, event, iam_user, normalize_batch, root
from tests.exports import athena_csv
from tests.faults.conftest import no_traceback, run, trailguard
from tests.faults.test_fuzz import lake_ids
from tests.lakes import service_config


def root_login(**fields: object) -> dict[str, object]:
    return console_login(root(), **fields)


def delivery(path: Path, *records: dict[str, object]) -> set[str]:
    data = json.dumps({"Records": list(records)}).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return {str(r["eventID"]) for r in records}


def bomb(path: Path, inflated: int = 2 << 30) -> None:
    """About 2 MB of gzip that inflates to 2 GiB: the same 16 MiB member of spaces over and over."""
    chunk = 16 << 20
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = squeeze.compress(b" " * chunk) + squeeze.flush()
    head = gzip.compress(b'{"Records": [')
    path.write_bytes(head + member * (inflated // chunk))


def ingest(trail: Path, root_dir: Path, *extra: str) -> list[str]:
    lake, state = root_dir / "lake", root_dir / "state.db"
    return ["ingest", "--source", str(trail), "--lake", str(lake), "--state", str(state), "--no-progress", *extra]


DEEP = ("deep.json", "deeper-than-the-limit.json")


def test_a_file_nested_a_thousand_levels_deep_costs_only_itself(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    (trail / "deep.json").write_text("[" * 1000 + "]" * 1000)
    good = delivery(trail / "good.json", root_login())
    (trail / "deeper-than-the-limit.json").write_text('{"Records": ' + "[" * 100 + "]" * 100 + "}")
    scanned = trailguard("scan", str(trail))
    no_traceback(scanned)
    assert scanned.code == 2  # an unreadable input, not "findings found"
    too_deep = [f"error: {trail / name}: JSON nested deeper than 64 levels (limits.max_depth)" for name in DEEP]
    assert sorted(scanned.errors) == too_deep
    assert {orjson.loads(line)["detector"] for line in scanned.out.splitlines()} == {
        "root-usage",
        "console-login-without-mfa",
    }
    ingested = trailguard(*ingest(trail, tmp_path))
    no_traceback(ingested)
    assert set(lake_ids(tmp_path / "lake")) == good
    assert sorted(ingested.errors) == too_deep  # 100 levels too: under Python's own limit, over ours
    (tmp_path / "svc").mkdir()
    config = service_config(tmp_path / "svc", [str(trail)])
    first, second = trailguard("run", "--once", config=config), trailguard("run", "--once", config=config)
    no_traceback(first)
    assert first.code == 2  # the cycle reports the bad file once...
    assert second.code == 0  # ...and every later cycle goes on without it


def test_flipped_gzip_bytes_quarantine_the_object_in_a_worker(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    good = delivery(trail / "a-good.json.gz", *[event("ListBuckets", "s3.amazonaws.com", iam_user()) for _ in range(5)])
    data = bytearray(gzip.compress(json.dumps({"Records": [root_login() for _ in range(50)]}).encode()))
    for at in range(20, 36):
        data[at] ^= 0xFF
    (trail / "b-flipped.json.gz").write_bytes(bytes(data))
    result = trailguard(*ingest(trail, tmp_path, "--workers", "2"))
    no_traceback(result)
    [error] = result.errors
    assert error.startswith(f"error: {(trail / 'b-flipped.json.gz').resolve()}: corrupt or truncated gzip")
    assert "1 quarantined" in result.err
    assert set(lake_ids(tmp_path / "lake")) == good
    again = trailguard(*ingest(trail, tmp_path, "--workers", "2"))
    assert (again.code, again.errors) == (0, [])


def test_a_gzip_bomb_is_refused_in_bounded_memory_and_spares_its_group(tmp_path: Path) -> None:
    """2 MB that inflate to 2 GiB, beside a good file in the same group: with the default limits."""
    trail = tmp_path / "trail"
    trail.mkdir()
    bomb(trail / "a-bomb.json.gz")
    good = delivery(trail / "b-good.json.gz", root_login())
    assert (trail / "a-bomb.json.gz").stat().st_size < 3 << 20
    scanned = trailguard("scan", str(trail))
    no_traceback(scanned)
    assert scanned.errors == [
        f"error: {trail / 'a-bomb.json.gz'}: inflates past the 128 MiB limit (limits.max_inflated_mb)"
    ]
    assert scanned.peak_mib < 1024, scanned.peak_mib
    ingested = trailguard(*ingest(trail, tmp_path, "--workers", "1"))
    no_traceback(ingested)
    assert ingested.peak_mib < 1024, ingested.peak_mib
    assert set(lake_ids(tmp_path / "lake")) == good
    assert trailguard(*ingest(trail, tmp_path, "--workers", "1")).code == 0  # and never tried again


def test_records_and_inputs_over_their_limits(tmp_path: Path) -> None:
    trail, config = tmp_path / "trail", tmp_path / "limits.toml"
    trail.mkdir()
    config.write_text("[limits]\nmax_record_kb = 64\nmax_records = 10\nmax_inflated_mb = 1\n")
    small, big = root_login(), root_login(userAgent="x" * (100 << 10))
    delivery(trail / "a-big-record.json", small, big)
    delivery(trail / "b-many.json", *[root_login() for _ in range(11)])
    (trail / "c-large.json").write_bytes(b'{"Records": [' + b" " * (1 << 20) + b"]}")
    result = trailguard(*ingest(trail, tmp_path), config=config)
    no_traceback(result)
    folder, size = trail.resolve(), (trail / "c-large.json").stat().st_size
    [record, many, large] = result.errors
    assert record.startswith(f"error: {folder / 'a-big-record.json'}: record 2: record of 10")
    assert record.endswith("bytes, over the 64 KiB limit (limits.max_record_kb)")
    assert many == f"error: {folder / 'b-many.json'}: holds 11 records, over the limit (limits.max_records)"
    assert (
        large == f"error: {folder / 'c-large.json'}: is {size:,} bytes, over the 1 MiB limit (limits.max_inflated_mb)"
    )
    assert set(lake_ids(tmp_path / "lake")) == {small["eventID"]}


def test_a_directory_that_cannot_be_listed_is_an_error_not_zero_files(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    (trail / "locked").mkdir(parents=True)
    delivery(trail / "good.json", root_login())
    delivery(trail / "locked" / "hidden.json", root_login())
    (trail / "locked").chmod(0)
    command = [sys.executable, "-m", "monitor.cli", "scan", str(trail)]
    if os.geteuid() == 0:  # root lists anything: without the capabilities that let it, it cannot
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    try:
        result = run(command)
    finally:
        (trail / "locked").chmod(0o755)
    no_traceback(result)
    assert result.code == 2
    assert result.errors == [f"error: {trail / 'locked'}: cannot list (permission denied)"]
    assert "scanned 1 files, 1 events" in result.err


def test_hostile_text_is_escaped_in_every_output(tmp_path: Path) -> None:
    """A file name with a right-to-left override, records whose fields carry terminal escapes and bidi
    controls: JSON Lines, the table and the error lines show them as escapes."""
    trail = tmp_path / "trail"
    trail.mkdir()
    hostile = "\x1b]8;;https://evil\x07click\x1b]8;;\x07 \u202egpj.exe \x9b31m \u2066x\u2069"
    delivery(trail / "good.json", root_login(userAgent=hostile, sourceIPAddress="203.0.113.9\u202e"))
    (trail / "evil\u202enosj.json").write_text("{not json")
    as_json = trailguard("scan", str(trail))
    as_table = trailguard("scan", str(trail), "--format", "table")
    for output in (as_json.out, as_json.err, as_table.out, as_table.err):
        assert not any(c in output for c in "\x1b\x07\x9b\u202e\u2066\u2069"), output
    assert r"\u202egpj.exe" in as_json.out
    assert json.loads(as_json.out.splitlines()[0])["user_agent"] == hostile  # the same data to a JSON reader
    assert f"error: {trail}/evil\\u202enosj.json: invalid JSON" in as_json.err


def test_an_unreadable_file_and_a_missing_path(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    (trail / "dir.json").mkdir(parents=True)  # a directory named like a file is searched, not read
    delivery(trail / "good.json", root_login())
    socket_like = trail / "fifo.json"
    os.mkfifo(socket_like)
    result = trailguard("scan", str(trail), str(tmp_path / "missing"))
    no_traceback(result)
    assert result.code == 2
    assert f"error: {tmp_path / 'missing'}: no such file or directory" in result.errors
    assert stat.S_ISFIFO(socket_like.stat().st_mode)
    assert "scanned 1 files" in result.err  # the pipe is not a regular file: never opened (it would block)...
    assert f"error: {socket_like}: not a regular file (a pipe, a socket or a device): not read" in result.errors


def test_hostile_exports_and_parquet_cost_only_themselves(tmp_path: Path) -> None:
    """A Parquet file claiming more rows than the limit (refused from its metadata, before anything is read),
    one that inflates past the limit, a truncated one, a CSV whose struct text never closes and a CSV with a
    huge field: each is its own error or coercion, and the good file beside them is ingested."""
    trail, config = tmp_path / "trail", tmp_path / "limits.toml"
    trail.mkdir()
    config.write_text("[limits]\nmax_records = 10\nmax_inflated_mb = 1\nmax_record_kb = 64\n")
    good = delivery(trail / "a-good.json", root_login())
    (trail / "b-rows.parquet").write_bytes(ocsf.parquet([root_login() for _ in range(11)]))
    wide = root_login(userAgent="z" * (2 << 20))  # 2 MiB of text in a file of a few KiB
    (trail / "c-wide.parquet").write_bytes(ocsf.parquet([wide]))
    whole = ocsf.parquet([root_login()])
    (trail / "d-cut.parquet").write_bytes(whole[: len(whole) // 2])
    broken = athena_csv([root_login()]).replace(b'"{type=Root', b'"{type=Root, arn=[never closed')
    (trail / "e-struct.csv").write_bytes(broken)
    (trail / "f-huge.csv").write_bytes(athena_csv([root_login(userAgent="y" * (200 << 10))]))
    result = trailguard(*ingest(trail, tmp_path), config=config)
    no_traceback(result)
    folder = trail.resolve()
    errors = sorted(result.errors)
    assert errors[0] == f"error: {folder / 'b-rows.parquet'}: holds 11 records, over the limit (limits.max_records)"
    assert errors[1] == f"error: {folder / 'c-wide.parquet'}: inflates past the 1 MiB limit (limits.max_inflated_mb)"
    assert errors[2].startswith(f"error: {folder / 'd-cut.parquet'}: cannot decode")
    assert errors[3].startswith(f"error: {folder / 'f-huge.csv'}: line 2: record of ")
    assert len(errors) == 4
    assert "fields coerced (userIdentity 1)" in result.err.splitlines()[-1]  # the broken struct: its field, kept
    assert set(lake_ids(tmp_path / "lake")) >= good
    assert len(lake_ids(tmp_path / "lake")) == 2


def test_a_time_past_year_9999_in_utc_refuses_its_record_only(tmp_path: Path) -> None:
    """`9999-12-31T23:59:59-01:00` is a valid time whose UTC is in year 10000, where Arrow still counts and
    Python cannot: one such record, in another file or among good ones, is refused alone; the detectors and the
    object's other records are unaffected."""
    trail = tmp_path / "trail"
    trail.mkdir()
    login, key = root_login(), event("CreateAccessKey", "iam.amazonaws.com", root())
    far = [event("ListBuckets", "s3.amazonaws.com", iam_user(), time=t) for t in ("9999-12-31T23:59:59-01:00",)]
    early = [event("ListBuckets", "s3.amazonaws.com", iam_user(), time="0001-01-01T00:30:00+01:00")]
    good = delivery(trail / "a.json", login, *far, key)
    delivery(trail / "b.json", *early)
    scanned = trailguard("scan", str(trail))
    no_traceback(scanned)
    assert sorted(scanned.errors) == [
        f"error: {trail / 'a.json'}: record 2: record without a valid eventTime",
        f"error: {trail / 'b.json'}: record 1: record without a valid eventTime",
    ]
    assert {orjson.loads(line)["detector"] for line in scanned.out.splitlines()} == {
        "root-usage",
        "console-login-without-mfa",
        "access-key-created",
    }
    ingested = trailguard(*ingest(trail, tmp_path))
    no_traceback(ingested)
    assert set(lake_ids(tmp_path / "lake")) == good - {far[0]["eventID"]}
    assert "2 bad records" in ingested.err


def test_a_file_name_that_is_not_utf8_is_read_and_known_again(tmp_path: Path) -> None:
    """A name's bytes that are not UTF-8 (Python carries them as lone surrogates, which SQLite and Arrow refuse)
    are shown and stored as `\\xff` escapes: the file is ingested once, its folder's other files with it."""
    trail = tmp_path / "trail"
    trail.mkdir()
    good = delivery(trail / "good.json", root_login())
    odd = os.fsdecode(bytes(trail / "other") + b"\xff.json")
    good |= delivery(Path(odd), root_login())
    first = trailguard(*ingest(trail, tmp_path))
    no_traceback(first)
    assert (first.code, first.errors) == (0, [])
    assert set(lake_ids(tmp_path / "lake")) == good
    assert "ingested 2 inputs" in first.err
    again = trailguard(*ingest(trail, tmp_path))
    assert (again.code, again.errors) == (0, [])
    assert "ingested 0 inputs" in again.err


def test_a_file_of_tiny_records_is_refused_as_it_is_read(tmp_path: Path) -> None:
    """Three million `{}` lines (9 MB; each decodes to about 250 bytes): refused once past the limit, not after
    decoding every one (750 MB)."""
    trail, config = tmp_path / "trail", tmp_path / "limits.toml"
    trail.mkdir()
    config.write_text("[limits]\nmax_records = 1000\n")
    (trail / "tiny.jsonl.gz").write_bytes(gzip.compress(b"{}\n" * 3_000_000))
    good = delivery(trail / "good.json", root_login())
    scanned = trailguard("scan", str(trail), "--workers", "1", config=config)
    no_traceback(scanned)
    assert scanned.errors == [
        f"error: {trail / 'tiny.jsonl.gz'}: holds over 1,000 records, over the limit (limits.max_records)"
    ]
    assert scanned.peak_mib < 400, scanned.peak_mib
    ingested = trailguard(*ingest(trail, tmp_path), config=config)
    assert ingested.peak_mib < 400, ingested.peak_mib
    assert set(lake_ids(tmp_path / "lake")) == good


def test_a_device_named_as_input_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    """`/dev/zero` has no size for the limit to check first: it is read up to the limit, then refused."""
    config = tmp_path / "limits.toml"
    config.write_text("[limits]\nmax_inflated_mb = 8\n")
    scanned = trailguard("scan", "/dev/zero", "--workers", "1", config=config, timeout=120)
    no_traceback(scanned)
    assert (scanned.code, scanned.errors) == (
        2,
        ["error: /dev/zero: reads past the 8 MiB limit (limits.max_inflated_mb)"],
    )
    assert scanned.peak_mib < 400, scanned.peak_mib


def test_folders_through_links_and_names_in_capitals_are_read_once(tmp_path: Path) -> None:
    """A trail folder linked into the scanned one (as an archive mounted elsewhere is), a link back up to it (a
    loop), and `.JSON`/`.json.GZ` names: every file is read, each once."""
    trail, archive = tmp_path / "trail", tmp_path / "archive" / "2024"
    trail.mkdir()
    archive.mkdir(parents=True)
    ids = delivery(trail / "a.json", root_login())
    ids |= delivery(archive / "b.json.GZ", root_login())
    ids |= delivery(archive / "Export.JSON", root_login())
    (trail / "2024").symlink_to(archive, target_is_directory=True)
    (archive / "up").symlink_to(trail, target_is_directory=True)
    scanned = trailguard("scan", str(trail))
    no_traceback(scanned)
    assert scanned.errors == []
    assert "scanned 3 files, 3 events (0 duplicates)" in scanned.err
    ingested = trailguard(*ingest(trail, tmp_path))
    assert (ingested.code, ingested.errors) == (0, [])
    assert set(lake_ids(tmp_path / "lake")) == ids


def test_scan_pointed_at_a_lake_says_what_reads_one(tmp_path: Path) -> None:
    """A lake's Parquet files are not Security Lake's: each is named with what to run instead, not read as OCSF
    rows without an eventID."""
    lake = Lake(str(tmp_path / "lake"))
    lake.write(pa.Table.from_batches([normalize_batch(root_login())]))
    scanned = trailguard("scan", str(tmp_path / "lake"))
    no_traceback(scanned)
    [error] = scanned.errors
    assert error.endswith(
        "not Security Lake's OCSF (no class_uid column): a file of a TrailGuard lake: run detect --lake on the lake"
    )
