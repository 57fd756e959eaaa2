"""A new sink is one small class and a registry entry: the postbox below, written in a few lines, delivers
each finding exactly once across a SIGKILL, because the dispatcher asks it (`find`) before any resend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from monitor.outbox.dispatcher import Dispatcher, Route
from monitor.outbox.finding import Finding
from monitor.outbox.transport import Mark, Receipt
from monitor.store.state import State
from monitor.text import json_bytes
from tests.cloudtrail import stored_finding


class Postbox:
    """Each finding as a file of its own in a folder."""

    name = "postbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, finding: Finding) -> Receipt:
        with (self.folder / "sends.log").open("a") as log:
            log.write(finding.finding_id + "\n")
        temporary = self.folder / f".{finding.finding_id}"
        temporary.write_bytes(json_bytes(finding.record()))
        temporary.rename(self.folder / f"{finding.finding_id}.json")
        return Receipt()

    def find(self, finding: Finding, mark: Mark) -> Receipt | None:
        return Receipt() if (self.folder / f"{finding.finding_id}.json").exists() else None


class Dying(Postbox):
    """The postbox in a process killed right after its third delivery, before the outbox records it."""

    def send(self, finding: Finding) -> Receipt:
        receipt = super().send(finding)
        if len((self.folder / "sends.log").read_text().splitlines()) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return receipt


def deliver(state: Path, folder: Path, sink: str) -> int:
    command = [sys.executable, "-m", "tests.monitor.outbox.test_dispatcher", str(state), str(folder), sink]
    return subprocess.run(command, check=False, timeout=120).returncode


def test_a_sink_of_a_few_lines_delivers_exactly_once_across_a_sigkill(tmp_path: Path) -> None:
    state_path, folder = tmp_path / "state.db", tmp_path / "postbox"
    folder.mkdir()
    state = State(state_path)
    ids = [f"{n:032d}" for n in range(5)]
    state.store_findings([stored_finding(finding_id=fid) for fid in ids], ["postbox"])
    assert deliver(state_path, folder, "dying") == -signal.SIGKILL
    assert [d["status"] for fid in ids for d in state.deliveries(fid)].count("posting") == 1
    assert deliver(state_path, folder, "postbox") == 0
    assert sorted((folder / "sends.log").read_text().splitlines()) == ids  # each sent once, none lost
    assert {d["status"] for fid in ids for d in state.deliveries(fid)} == {"sent"}


if __name__ == "__main__":
    where = Path(sys.argv[2])
    Dispatcher(State(Path(sys.argv[1]))).deliver(Route(Dying(where) if sys.argv[3] == "dying" else Postbox(where)))
