"""Real local servers for the tests: moto's AWS over HTTP on 127.0.0.1, with fake credentials."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from tests.s3_objects import FAKE_ENV
from tests.service import service_setup
from tests.slack_server import FakeSlack, serve


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-inputs",
        type=int,
        default=1200,
        help="inputs per path in the fault suite's fuzz campaign (half of them mutated); default 1200",
    )
    parser.addoption("--fuzz-seed", type=int, default=16, help="the fuzz campaign's random seed")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns real failures
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto account for one test; boto3 and pyarrow reach it through AWS_ENDPOINT_URL."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    for name, value in {**FAKE_ENV, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    return moto_endpoint


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, str]]:
    """The local Slack Web API endpoint and its base URL."""
    fake = FakeSlack()
    server, url = serve(fake)
    yield fake, url
    server.shutdown()


@pytest.fixture
def setup(aws: str, tmp_path: Path, slack: tuple[FakeSlack, str]) -> dict[str, Any]:
    """A service to run: its bucket and queue in moto, its configuration under tmp_path (see tests.service)."""
    return service_setup(tmp_path, slack[1])


@pytest.fixture
def slack_env(slack: tuple[FakeSlack, str], monkeypatch: pytest.MonkeyPatch) -> FakeSlack:
    """The local Slack, reached through the environment like the service does (a fake bot token)."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", slack[1])
    return slack[0]
