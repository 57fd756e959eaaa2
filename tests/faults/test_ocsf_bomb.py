"""A Security Lake (OCSF) Parquet file whose metadata is within every limit but whose rows decode to hundreds of
MiB: one long string, dictionary-encoded, in every row."""

from __future__ import annotations

from pathlib import Path

from tests import ocsf
from tests.faults.conftest import no_traceback, trailguard
from tests.faults.test_fuzz import lake_ids
from tests.faults.test_inputs import delivery, ingest, root_login


def test_a_parquet_dictionary_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """60 KB of Parquet (704 KB in its row groups' metadata) that decodes to 305 MiB of strings, beside a good
    file and an Arrow-written one whose dictionary column inside a struct spans two row groups (which pyarrow
    cannot read as one table): the bomb is refused at the 8 MiB limit, the others ingested."""
    trail, config = tmp_path / "trail", tmp_path / "limits.toml"
    trail.mkdir()
    config.write_text("[limits]\nmax_inflated_mb = 8\n")
    (trail / "a-bomb.parquet").write_bytes(ocsf.repeated(20_000, "A" * 16_000))
    assert (trail / "a-bomb.parquet").stat().st_size < 100_000
    (trail / "b-arrow.parquet").write_bytes(ocsf.repeated(2_000, '{"bucketName": "logs"}', arrow_schema=True))
    good = delivery(trail / "c-good.json", root_login()) | {f"repeated-{n}" for n in range(2_000)}
    refused = "inflates past the 8 MiB limit (limits.max_inflated_mb)"
    scanned = trailguard("scan", str(trail), "--workers", "1", config=config)
    no_traceback(scanned)
    assert scanned.errors == [f"error: {trail / 'a-bomb.parquet'}: {refused}"]
    assert "scanned 3 files, 2001 events" in scanned.err
    assert scanned.peak_mib < 400, scanned.peak_mib  # decoded whole, the bomb takes over 1 GiB
    ingested = trailguard(*ingest(trail, tmp_path, "--workers", "1"), config=config)
    no_traceback(ingested)
    assert ingested.errors == [f"error: {trail.resolve() / 'a-bomb.parquet'}: {refused}"]
    assert ingested.peak_mib < 400, ingested.peak_mib
    assert set(lake_ids(tmp_path / "lake")) == good
