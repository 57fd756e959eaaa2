"""Structured logs: one JSON object per line, with fields instead of prose to parse.

Findings and events are logged by id, never by body, and anything shaped like a Slack token or
webhook URL is masked before it is written, whatever code path produced it.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_SECRETS = re.compile(
    r"xox[a-z]-[A-Za-z0-9-]+|https://hooks\.slack\.com/[^\s\"'\\]+|(?<=aws_secret_access_key=)[^\s\"'\\&]+"
)


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


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
        return redact(orjson.dumps(entry, default=str).decode())


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
