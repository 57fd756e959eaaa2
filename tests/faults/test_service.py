"""The running service: forged events cannot steer its health, idle clients cannot starve it, a Slack that
fails every call costs only deliveries."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pyarrow.dataset as ds

from tests.cloudtrail import PROD, console_login, event, iam_user, root
from tests.faults.conftest import wait_until
from tests.lakes import service_config
from tests.service import Running, metric


def records(folder: Path, name: str, *recs: dict[str, object]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"Records": list(recs)}))


def stamp(delta: timedelta) -> str:
    return f"{datetime.now(UTC) + delta:%Y-%m-%dT%H:%M:%SZ}"


def serve(config: Path, files: int | None = None, env: dict[str, str] | None = None) -> Running:
    def limit() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    command = [sys.executable, "-m", "monitor.cli", "--config", str(config), "run"]
    # the limit is set in the child before it runs Python: no thread of the child exists yet
    return Running(
        subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, preexec_fn=limit)  # noqa: PLW1509
    )


def cycles(running: Running) -> int:
    return sum(e.get("msg") == "cycle" for e in running.logs)


def test_forged_accounts_and_future_times_do_not_steer_the_watch(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    forged = [
        event("ListBuckets", "s3.amazonaws.com", iam_user(account=f"{9000 + n:012d}"), time=stamp(-timedelta(hours=4)))
        | {"awsRegion": f"xx-fake-{n}"}
        for n in range(30)
    ]
    real = event("ListBuckets", "s3.amazonaws.com", iam_user(), time=stamp(-timedelta(minutes=5)))
    ahead = event("ListBuckets", "s3.amazonaws.com", iam_user(), time=stamp(timedelta(days=1)))
    records(trail, "a", real, ahead, *forged)
    extra = f'[service]\nmetrics_port = 0\nwatch = ["{PROD}/us-east-1"]'
    running = serve(service_config(tmp_path, [str(trail)], "interval_seconds = 2\njitter_seconds = 0", extra))
    try:
        wait_until(lambda: cycles(running) >= 1, "a cycle")
        _, body = running.get("/metrics")
    finally:
        running.proc.kill()
    text = body.decode()
    lags = [line for line in text.splitlines() if line.startswith("trailguard_ingestion_lag_seconds{")]
    assert lags == [line for line in lags if f'account="{PROD}"' in line]  # no series for a made-up account
    lag = metric(text, f'trailguard_ingestion_lag_seconds{{account="{PROD}",region="us-east-1"}}')
    assert lag > 60  # the real event's age: the record dated tomorrow did not move it


def test_idle_clients_cannot_starve_the_service_of_file_descriptors(tmp_path: Path) -> None:
    """A thousand connections to the metrics port that never send a request, against a process allowed 256
    file descriptors: cycles go on, and health answers again once the clients are gone."""
    trail = tmp_path / "trail"
    records(trail, "a", event("ListBuckets", "s3.amazonaws.com", iam_user(), time=stamp(-timedelta(minutes=5))))
    extra = "[service]\nmetrics_port = 0"
    running = serve(service_config(tmp_path, [str(trail)], "interval_seconds = 1\njitter_seconds = 0", extra), 256)
    clients: list[socket.socket] = []
    try:
        port = running.port()
        wait_until(lambda: cycles(running) >= 1, "a first cycle")
        deadline = time.monotonic() + 120
        for _ in range(1000):  # one after the other, each connected before the next, as a patient attacker would
            client = socket.socket()
            client.settimeout(10)
            if client.connect_ex(("127.0.0.1", port)) == 0:
                clients.append(client)
            if time.monotonic() > deadline:  # a server that stopped accepting: fail, do not hang
                break
        assert len(clients) > 900
        before = cycles(running)
        wait_until(lambda: cycles(running) >= before + 3, "cycles while the clients hang on")
        assert psutil.Process(running.proc.pid).num_fds() < 128
        assert not [e for e in running.logs if e.get("msg") == "cycle failed"]
        for client in clients:
            client.close()
        wait_until(lambda: _answers(port), "health to answer again")
    finally:
        for client in clients:
            client.close()
        running.proc.kill()


def test_a_slack_that_fails_every_call_never_stops_ingestion_and_only_failing_cycles_fail_readiness(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "trail"
    records(trail, "a", console_login(root(), time=stamp(-timedelta(minutes=5))))
    with socket.socket() as closed:  # a port nothing listens on: every Slack call is refused
        closed.bind(("127.0.0.1", 0))
        slack_url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": slack_url}
    extra = '[service]\nmetrics_port = 0\nfailing_cycles = 2\n[slack]\nchannel = "C0ALERTS"'
    running = serve(service_config(tmp_path, [str(trail)], "interval_seconds = 2\njitter_seconds = 0", extra), env=env)
    try:
        wait_until(lambda: cycles(running) >= 1, "a first cycle")
        records(
            trail,
            "b",
            event("CreateAccessKey", "iam.amazonaws.com", iam_user("alice"), time=stamp(-timedelta(minutes=1))),
        )
        wait_until(lambda: _stored(tmp_path, "access-key-created"), "the next file's finding, Slack down")
        wait_until(
            lambda: any(e.get("msg") == "error" and "slack" in e.get("error", "") for e in running.logs),
            "a failed post",
        )
        code, body = running.get("/healthz")
        assert code == 200, body  # deliveries fail, cycles do not: degraded at most, never unready
        assert running.get("/livez")[0] == 200
        assert _lake_events(tmp_path) == 2

        _block(tmp_path / "lake" / "events")  # the lake cannot be written, even by root
        records(
            trail, "c", event("ListUsers", "iam.amazonaws.com", iam_user("alice"), time=stamp(-timedelta(minutes=1)))
        )
        wait_until(lambda: running.get("/healthz")[0] == 503, "readiness to fail with the cycles")
        code, body = running.get("/healthz")
        assert json.loads(body)["status"] == "failing"
        assert running.get("/livez")[0] == 200  # failing cycles still complete: a restart would not help
    finally:
        running.proc.kill()


def _block(folder: Path) -> None:
    """Put a file where a folder was, even while a cycle may be writing into it (it may make the folder again)."""
    for attempt in range(100):
        try:
            if folder.is_dir():
                folder.rename(folder.with_name(f"{folder.name}-gone-{attempt}"))
            folder.write_text("not a directory")
            return
        except OSError:
            continue
    raise AssertionError(f"{folder} could not be replaced by a file")


def _stored(root: Path, detector: str) -> bool:
    with contextlib.closing(sqlite3.connect(root / "state.db")) as db:
        return db.execute("SELECT count(*) FROM findings WHERE detector = ?", (detector,)).fetchone()[0] > 0


def _lake_events(root: Path) -> int:
    return ds.dataset(root / "lake" / "events", format="parquet", partitioning="hive").count_rows()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.0 200")
    except OSError:
        time.sleep(0.2)
        return False


def test_a_stream_whose_queue_cannot_be_read_waits_between_tries_and_stays_alive(aws: str, tmp_path: Path) -> None:
    """A receive that fails answers at once: without a pause the stream would spin, flooding logs and the API."""
    config = service_config(
        tmp_path,
        ["sqs://us-east-1/123456789012/no-such-queue"],
        'mode = "stream"\nstream_wait_seconds = 2',
        "[service]\nmetrics_port = 0",
    )
    running = serve(config)
    try:
        wait_until(lambda: cycles(running) >= 1, "a first stream cycle")
        first = cycles(running)
        time.sleep(6)  # at most four more tries in that time, each after a 2 s pause (fewer on a loaded machine)
        assert cycles(running) - first <= 4
        assert any("no-such-queue" in e.get("error", "") for e in running.logs)
        assert running.get("/livez")[0] == 200
    finally:
        running.proc.kill()
