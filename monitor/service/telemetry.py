"""Health and metrics: `/livez`, `/healthz` and `/metrics` (Prometheus text format) on one small HTTP server.

Counters describe what the running process did; the outbox and ingestion-lag gauges are read
from the state file at scrape time, so they are right after a restart too. See `Health` for what
the two health answers mean and which probe wants which.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.ingest.run import Summary
from monitor.store.state import State


class _Outbox(Collector):
    """Findings, deliveries and lag per watched account/region, read from the state file on each scrape
    (only watched pairs: made-up accounts in forged events never become label series)."""

    def __init__(
        self,
        state_path: Path,
        now: Callable[[], datetime],
        watched: Callable[[State], Mapping[tuple[str, str], datetime]],
    ) -> None:
        self.state_path = state_path
        self.now = now
        self.watched = watched

    def collect(self) -> Iterator[GaugeMetricFamily]:
        findings = GaugeMetricFamily(
            "trailguard_findings", "Findings in the outbox", labels=["detector", "severity", "status"]
        )
        alerts = GaugeMetricFamily(
            "trailguard_alerts",
            "Deliveries by sink and status (sent, pending, posting, failed, suppressed)",
            labels=["sink", "status"],
        )
        lag = GaugeMetricFamily(
            "trailguard_ingestion_lag_seconds", "Now minus the newest event ingested", labels=["account", "region"]
        )
        state = State(self.state_path, create=False)
        try:
            by_finding, by_delivery = state.counts()
            activity = self.watched(state)
        finally:
            state.close()
        for (detector, severity, status), count in sorted(by_finding.items()):
            findings.add_metric([detector, severity, status], count)
        for (sink, status), count in sorted(by_delivery.items()):
            alerts.add_metric([sink, status], count)
        now = self.now()
        for (account, region), newest in sorted(activity.items()):
            lag.add_metric([account, region], (now - newest).total_seconds())
        yield from (findings, alerts, lag)


STALL_INTERVALS = 3  # no cycle completed for this many intervals: the process is stuck


@dataclass
class Health:
    """Two answers for two questions. Liveness (`/livez`): is the process working at all? It fails only
    when the scheduler is not running or no cycle has completed, failed or not, for three intervals:
    restarting may help. Health and readiness (`/healthz`): can its results be trusted? It also fails
    when the last `failing_after` cycles all failed (the lake or the state cannot be written); what it
    watches going wrong without stopping cycles (a sink failing, a source's errors) is `degraded`, 200."""

    interval: float
    failing_after: int = 3
    started: float = field(default_factory=time.monotonic)
    last_completed: float | None = None
    failures: int = 0  # cycles in a row that failed
    reasons: dict[str, str] = field(default_factory=dict)  # what is degraded now, by topic
    scheduler: Callable[[], bool] = lambda: True  # is the scheduler running?
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, topic: str, reason: str | None) -> None:
        with self.lock:
            if reason:
                self.reasons[topic] = reason
            else:
                self.reasons.pop(topic, None)

    def completed(self, failed: bool) -> None:
        with self.lock:
            self.last_completed = time.monotonic()
            self.failures = self.failures + 1 if failed else 0

    def liveness(self) -> tuple[int, dict[str, Any]]:
        if not self.scheduler():
            return 503, {"status": "dead", "reasons": ["the scheduler is not running"]}
        with self.lock:
            since = self.last_completed or self.started
            never = self.last_completed is None
        if time.monotonic() - since > STALL_INTERVALS * self.interval:
            what = "no cycle has completed" if never else "no cycle completed"
            return 503, {"status": "stalled", "reasons": [f"{what} for {STALL_INTERVALS * self.interval:.0f} s"]}
        return 200, {"status": "alive", "reasons": []}

    def report(self) -> tuple[int, dict[str, Any]]:
        code, live = self.liveness()
        with self.lock:
            reasons = [f"{topic}: {reason}" for topic, reason in sorted(self.reasons.items())]
            failures = self.failures
        if code != 200:
            return code, {"status": live["status"], "reasons": live["reasons"] + reasons}
        if failures >= self.failing_after:
            return 503, {"status": "failing", "reasons": [f"the last {failures} cycles failed", *reasons]}
        return 200, {"status": "degraded" if reasons else "ok", "reasons": reasons}


REQUEST_SECONDS = 5.0
MAX_CONNECTIONS = 32


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS of them; a connection over the bound is closed unserved."""

    daemon_threads = True
    request_queue_size = 128  # connections waiting to be accepted (and, over the bound, closed)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class Telemetry:
    def __init__(
        self,
        state_path: Path,
        interval: float,
        failing_after: int,
        now: Callable[[], datetime],
        watched: Callable[[State], Mapping[tuple[str, str], datetime]],
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("trailguard_events_ingested", "Events written to the lake", registry=r)
        self.objects = Counter("trailguard_objects_processed", "Inputs (objects, files) processed", registry=r)
        self.quarantined = Counter("trailguard_inputs_quarantined", "Inputs that could not be read", registry=r)
        self.bad_records = Counter("trailguard_bad_records", "Records skipped inside readable inputs", registry=r)
        self.source_errors = Counter("trailguard_source_errors", "Errors reported by sources", registry=r)
        self.coerced = Counter(
            "trailguard_fields_coerced", "Fields of a wrong type, coerced in records kept", ["field"], registry=r
        )
        self.incomplete = Counter(
            "trailguard_incomplete_reads", "Cycles in which a source was not read completely", ["source"], registry=r
        )
        self.new_findings = Counter(
            "trailguard_findings_new", "New findings stored", ["detector", "severity"], registry=r
        )
        self.delivery_errors = Counter("trailguard_delivery_errors", "Failed delivery attempts", registry=r)
        self.cycles = Counter("trailguard_cycles", "Cycles by outcome", ["outcome"], registry=r)
        self.cycle_seconds = Histogram(
            "trailguard_cycle_duration_seconds",
            "Duration of a cycle",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, float("inf")),
            registry=r,
        )
        self.last_success = Gauge(
            "trailguard_last_success_timestamp_seconds", "When the last cycle completed", registry=r
        )
        self.job_errors = Counter("trailguard_scheduler_job_errors", "Scheduler jobs that raised", registry=r)
        self.missed = Counter("trailguard_scheduler_missed_runs", "Cycles skipped: late or still running", registry=r)
        r.register(_Outbox(state_path, now, watched))
        self.health = Health(interval, failing_after)

    def ingested(self, summary: Summary) -> None:
        self.events.inc(summary.events)
        self.objects.inc(summary.inputs)
        self.quarantined.inc(summary.quarantined)
        self.bad_records.inc(summary.bad_records)
        self.source_errors.inc(len(summary.errors))
        for name, count in summary.coerced.items():
            self.coerced.labels(name).inc(count)
        for uri in summary.incomplete:
            self.incomplete.labels(uri).inc()

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        """Start the endpoints on a daemon thread; port 0 picks a free one (see `server_address`).

        Anyone who can reach the port can open connections, so they are bounded: a request must
        arrive within a few seconds, and at most `MAX_CONNECTIONS` are served at once (more are
        closed at once), so idle or slow clients cannot take the file descriptors the cycles need.
        """
        telemetry = self

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_SECONDS  # applied to the connection's socket: an idle client is dropped

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    status, body, kind = 200, generate_latest(telemetry.registry), CONTENT_TYPE_LATEST
                elif self.path in ("/healthz", "/health", "/livez"):
                    health = telemetry.health
                    status, report = health.liveness() if self.path == "/livez" else health.report()
                    body, kind = orjson.dumps(report), "application/json"
                else:
                    status, body, kind = 404, b"not found\n", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the logs

        server = _BoundedServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="telemetry", daemon=True).start()
        return server
