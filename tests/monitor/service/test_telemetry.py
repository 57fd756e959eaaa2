"""Liveness and readiness, scheduler signals, and log redaction."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, JobExecutionEvent

from monitor.config import Config
from monitor.ingest.sources.settings import SourceSettings
from monitor.logs import JsonFormatter, redact
from monitor.service.run import Service
from monitor.service.telemetry import Health


def test_readiness_is_ok_degraded_or_failing_and_liveness_ignores_all_but_a_stuck_process() -> None:
    health = Health(interval=60, failing_after=2)
    alive = (200, {"status": "alive", "reasons": []})
    assert (health.liveness(), health.report()) == (alive, (200, {"status": "ok", "reasons": []}))
    health.set("alerts", "delivery failed: slack down")
    assert health.report() == (200, {"status": "degraded", "reasons": ["alerts: delivery failed: slack down"]})
    health.completed(failed=True)
    assert health.report()[0] == 200  # one failed cycle is not yet a failing service
    health.completed(failed=True)
    code, body = health.report()
    assert (code, body["status"], body["reasons"][0]) == (503, "failing", "the last 2 cycles failed")
    assert health.liveness() == alive  # failing cycles still complete: a restart would not help
    health.completed(failed=False)
    assert health.report()[0] == 200
    health.scheduler = lambda: False
    assert health.liveness() == (503, {"status": "dead", "reasons": ["the scheduler is not running"]})
    assert health.report()[0] == 503


def test_a_process_whose_cycles_stop_completing_is_stalled() -> None:
    health = Health(interval=60, started=time.monotonic() - 181)  # three intervals and more since the start
    code, body = health.liveness()
    assert (code, body["status"], body["reasons"]) == (503, "stalled", ["no cycle has completed for 180 s"])
    assert health.report()[:1] == (503,)
    health.completed(failed=True)
    assert health.liveness()[0] == 200


def test_scheduler_errors_and_skipped_runs_become_health_signals(tmp_path: Path) -> None:
    folder = tmp_path
    cfg = Config(sources=(SourceSettings(str(folder)),), lake=str(folder / "lake"), state=folder / "state.db")
    svc = Service(cfg, ())
    svc.on_scheduler_event(JobExecutionEvent(EVENT_JOB_MAX_INSTANCES, "cycle", None, None))
    assert svc.telemetry.health.report()[1]["reasons"] == [
        "scheduler: a scheduled cycle was skipped: the previous cycle was still running"
    ]
    svc.on_scheduler_event(JobExecutionEvent(EVENT_JOB_MAX_INSTANCES, "deliver", None, None))  # a long delivery
    assert svc.telemetry.registry.get_sample_value("trailguard_scheduler_missed_runs_total") == 1
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
