"""Structured logs: one JSON object per line, with fields instead of prose to parse.

Findings and events are logged by id, never by body, and anything shaped like a Slack token or
webhook URL, and the value of every secret the environment holds, is masked before it is
written, whatever code path produced it (the command line's error output goes through the same
mask).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from monitor.text import json_bytes

_SECRETS = re.compile(
    r"xox[a-z]-[A-Za-z0-9-]+|https://hooks\.slack\.com/[^\s\"'\\]+|(?<=aws_secret_access_key=)[^\s\"'\\&]+"
)


# the environment variables that hold secrets; values this short are not masked (they are not secrets)
SECRET_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_SHORTEST_SECRET = 8


def _secret_values(env: Mapping[str, str]) -> list[str]:
    values = [env.get(name, "") for name in SECRET_VARIABLES]
    token_file = env.get("SLACK_BOT_TOKEN_FILE")
    if token_file:
        with suppress(OSError, UnicodeDecodeError):
            values.append(Path(token_file).read_text().strip())
    return sorted({v for v in values if len(v) >= _SHORTEST_SECRET}, key=len, reverse=True)


def redact(text: str, env: Mapping[str, str] = os.environ) -> str:
    """The text with every secret masked: the environment's secret values, and anything shaped like one."""
    for value in _secret_values(env):
        text = text.replace(value, "[redacted]")
    return _SECRETS.sub("[redacted]", text)


class RedactedStream(io.TextIOBase):
    """A text stream that masks secrets in everything written to it (for the command line's stderr)."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return redact(json_bytes(entry).decode())


def setup(level: int = logging.INFO) -> None:
    """JSON lines on stderr for every logger (the scheduler's and the SDKs' too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    logger.log(level, msg, extra={"fields": fields})
