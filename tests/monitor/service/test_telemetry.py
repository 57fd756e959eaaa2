"""Health reasons, the stalled state, scheduler signals, and log redaction."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, JobExecutionEvent

from monitor.config import Config, SourceSettings
from monitor.logs import JsonFormatter, redact
from monitor.service.run import Service
from monitor.service.telemetry import Health


def test_health_ok_degraded_and_stalled() -> None:
    health = Health(interval=0.05)
    assert health.report() == (200, {"status": "ok", "reasons": []})
    health.set("sources", "2 errors in the last cycle")
    assert health.report() == (200, {"status": "degraded", "reasons": ["sources: 2 errors in the last cycle"]})
    health.set("sources", None)
    time.sleep(0.2)  # three intervals without a completed cycle
    code, body = health.report()
    assert (code, body["status"]) == (503, "stalled")
    assert body["reasons"][0].startswith("no cycle has completed for")
    health.succeeded()
    assert health.report()[0] == 200


def test_scheduler_errors_and_skipped_runs_become_health_signals(tmp_path: Path) -> None:
    folder = tmp_path
    cfg = Config(sources=(SourceSettings(str(folder)),), lake=str(folder / "lake"), state=folder / "state.db")
    svc = Service(cfg, ())
    svc.on_scheduler_event(JobExecutionEvent(EVENT_JOB_MAX_INSTANCES, "cycle", None, None))
    assert svc.telemetry.health.report()[1]["reasons"] == [
        "scheduler: a scheduled cycle was skipped: the previous cycle was still running"
    ]
    svc.on_scheduler_event(JobExecutionEvent(EVENT_JOB_ERROR, "cycle", None, None, exception=RuntimeError("boom")))
    assert svc.telemetry.health.report()[1]["reasons"] == ["scheduler: cycle job raised: RuntimeError('boom')"]
    assert svc.telemetry.registry.get_sample_value("trailguard_scheduler_missed_runs_total") == 1
    assert svc.telemetry.registry.get_sample_value("trailguard_scheduler_job_errors_total") == 1


def test_log_lines_are_json_and_secrets_are_masked() -> None:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "token %s", ("xoxb-123-456-abc",), None)
    record.fields = {"url": "https://hooks.slack.com/services/T0/B0/XYZ", "finding_id": "f1"}
    line = JsonFormatter().format(record)
    assert "xoxb-123" not in line
    assert "hooks.slack.com" not in line
    assert '"finding_id":"f1"' in line
    assert redact("aws_secret_access_key=abc123 rest") == "aws_secret_access_key=[redacted] rest"
