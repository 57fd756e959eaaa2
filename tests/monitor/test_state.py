from pathlib import Path

import pytest

from monitor.store.database import MIGRATIONS, StateError
from monitor.store.ledger import ObjectRecord
from monitor.store.state import State


def test_migrations_are_versioned_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    state = State(tmp_path / "s.db")
    assert state.version == len(MIGRATIONS)
    assert state.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    state.db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    state.close()
    with pytest.raises(StateError, match="newer than this TrailGuard"):
        State(tmp_path / "s.db")


def test_ledger_and_cursors(tmp_path: Path) -> None:
    state = State(tmp_path / "s.db")
    state.record([ObjectRecord("s3", "b", "k1", "e1", events=3), ObjectRecord("s3", "b", "k2", "e2", "quarantined")])
    assert state.seen("s3", "b", [("k1", "e1"), ("k1", "other-etag"), ("k2", "e2")]) == {("k1", "e1"), ("k2", "e2")}
    assert [o.key for o in state.objects("quarantined")] == ["k2"]
    state.set_cursor("lookup", "1", "us-east-1", "2024-05-01T00:00:00+00:00")
    reopened = State(tmp_path / "s.db")
    assert reopened.cursor("lookup", "1", "us-east-1") == "2024-05-01T00:00:00+00:00"
    assert reopened.cursor("lookup", "1", "eu-west-1") is None
