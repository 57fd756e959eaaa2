"""A state file that cannot be trusted is refused, never started over; one writer delivers at a time."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.store.database import MIGRATIONS, StateBusy, StateError, deliverer
from monitor.store.state import State
from tests.cloudtrail import stored_finding
from tests.faults.conftest import no_traceback, trailguard, wait_until
from tests.faults.test_inputs import delivery, root_login
from tests.lakes import service_config


def empty(path: Path) -> None:
    path.write_bytes(b"")


def corrupt(path: Path) -> None:
    State(path).close()
    data = bytearray(path.read_bytes())
    data[:100] = b"\xde\xad" * 50  # the header: SQLite no longer knows the file
    path.write_bytes(bytes(data))


def newer(path: Path) -> None:
    state = State(path)
    state.db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    state.close()


def foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (empty, "the state file is empty"),
        (corrupt, "not a usable TrailGuard state file"),
        (newer, "is newer than this TrailGuard's"),
        (foreign, "an SQLite database, but not a TrailGuard state file"),
    ],
)
def test_a_spoiled_state_file_is_refused_by_every_command(
    tmp_path: Path, spoil: Callable[[Path], None], problem: str
) -> None:
    trail, state = tmp_path / "trail", tmp_path / "state.db"
    trail.mkdir()
    delivery(trail / "good.json", root_login())
    spoil(state)
    before = state.read_bytes()
    config = service_config(tmp_path, [str(trail)])
    lake = str(tmp_path / "lake")
    (tmp_path / "lake").mkdir()  # a lake without events yet: what `detect` is refused for is the state file
    commands = [
        ["ingest", "--source", str(trail), "--lake", lake, "--state", str(state)],
        ["detect", "--lake", lake, "--state", str(state), "--since", "2d"],
        ["findings", "list", "--state", str(state)],
        ["state", "check", "--state", str(state)],
    ]
    for args in commands:
        result = trailguard(*args)
        no_traceback(result)
        assert result.code == 2, (args, result.err)
        assert problem in result.err + result.out, (args, result.err)  # `state check` reports on stdout
    served = trailguard("run", "--once", config=config)
    assert (served.code, problem in served.err) == (2, True)
    assert state.read_bytes() == before  # never started over, never "repaired"
    assert list((tmp_path / "lake").iterdir()) == []  # nothing was ingested against it


def test_a_migration_keeps_a_backup_of_the_file_as_it_was(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with sqlite3.connect(state) as db:  # a state file as an older TrailGuard left it
        for number, script in enumerate(MIGRATIONS[:5], 1):
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {number}")
    result = trailguard("findings", "list", "--state", str(state))
    assert result.code == 0, result.err
    with sqlite3.connect(tmp_path / "state.db.v5.bak") as backup:
        assert backup.execute("PRAGMA user_version").fetchone()[0] == 5
    assert State(state).version == len(MIGRATIONS)
    checked = trailguard("state", "check", "--state", str(state))
    assert checked.code == 0
    assert f"ok version {len(MIGRATIONS)}" in checked.out


def test_a_missing_state_file_is_created_only_by_commands_that_write(tmp_path: Path) -> None:
    read = trailguard("findings", "list", "--state", str(tmp_path / "typo.db"))
    assert (read.code, read.errors) == (2, [f"error: {tmp_path / 'typo.db'}: no such state file"])
    assert not (tmp_path / "typo.db").exists()


def test_one_process_at_a_time_delivers_from_a_state_file(tmp_path: Path) -> None:
    """A second deliverer is refused with the holder named; the lease dies with a killed holder."""
    state = tmp_path / "state.db"
    State(state).close()
    (tmp_path / "lake").mkdir()
    hold = (
        "import pathlib, time\n"
        "from monitor.store.database import deliverer\n"
        f"with deliverer(pathlib.Path({str(state)!r})):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    try:
        second = trailguard(
            "detect", "--lake", str(tmp_path / "lake"), "--state", str(state), "--since", "2d", "--alert"
        )
        no_traceback(second)
        assert second.code == 2
        [error] = second.errors
        assert error.startswith(f"error: {state}: TrailGuard process {holder.pid} ")
        assert error.endswith("delivers from this state file (one process at a time)")
        assert "delivery lock: TrailGuard process" in trailguard("state", "check", "--state", str(state)).out
    finally:
        holder.kill()
        holder.wait()
    again = ["detect", "--lake", str(tmp_path / "lake"), "--state", str(state), "--since", "2d", "--alert"]
    wait_until(lambda: trailguard(*again).code == 0, "the killed holder's lease to go")


def test_a_link_to_the_state_file_shares_its_delivery_lock(tmp_path: Path) -> None:
    """Two services configured with the file and with a symbolic link to it are still one deliverer at a time."""
    state, link = tmp_path / "state.db", tmp_path / "elsewhere" / "state.db"
    State(state).close()
    link.parent.mkdir()
    link.symlink_to(state)
    with deliverer(state), pytest.raises(StateBusy, match="delivers from this state file"), deliverer(link):
        pass


class Impatient(State):
    BUSY_SECONDS = 0.1


def test_a_state_file_another_process_is_writing_is_a_clear_error(tmp_path: Path) -> None:
    """A writer that waited its time for another process's transaction says so in one line (the commands' exit
    2), not as an internal error."""
    state = tmp_path / "state.db"
    State(state).close()
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Impatient(state, create=False) as waiting, pytest.raises(StateError, match="another process holds it"):
            waiting.record([])
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_state_file_damaged_inside_fails_its_check(tmp_path: Path) -> None:
    """Pages spoiled in the middle (the header intact): `state check` reports what SQLite says, exit 2, instead
    of failing with the check itself."""
    state = tmp_path / "state.db"
    with State(state) as store:
        store.store_findings([stored_finding(finding_id=f"{n:032x}", summary="x" * 500) for n in range(400)], ["slack"])
    data = bytearray(state.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xff" * 8192
    state.write_bytes(bytes(data))
    checked = trailguard("state", "check", "--state", str(state))
    no_traceback(checked)
    assert checked.code == 2
    assert "FAIL state file" in checked.out
    assert "malformed" in checked.out
