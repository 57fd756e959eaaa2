"""`trailguard run`: cycles on a schedule, delivery beside them, health and metrics, and a graceful stop.

APScheduler 3's BlockingScheduler runs one cycle at start and then every interval (with jitter,
so that many monitors do not hit an API in step). `max_instances=1` and `coalesce` mean a slow
cycle delays the next instead of overlapping it; runs that had to be skipped are counted and
reported by `/healthz`. Delivery is a job of its own on its own thread, run every few seconds
and at once after each cycle: a slow or failing sink (Slack paced at a post a second, or down)
never holds up ingestion or detection, and each of its passes starts from the most severe
finding due. SIGTERM or SIGINT stops the scheduler: the cycle in flight finishes the group it is
ingesting, commits it, detects what it ingested, delivery stops between posts (the outbox keeps
the rest for the next start), and the process exits 0. A SIGKILL at any point loses nothing:
every step is committed before the next one relies on it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from rich.console import Console

from detectors.core.base import Context, Detector
from monitor.config import Config, ConfigError
from monitor.detect import pipeline, suppressions
from monitor.ingest.run import Options, Summary
from monitor.ingest.sources.settings import SourceSettings
from monitor.lake import Lake
from monitor.logs import log
from monitor.outbox import delivery
from monitor.service import hygiene, inventory, watchdog
from monitor.service.telemetry import Telemetry
from monitor.store.state import State

LOG = logging.getLogger("trailguard.service")


class Service:
    def __init__(
        self,
        cfg: Config,
        detectors: Sequence[type[Detector]],
        clock: Callable[[], datetime] | None = None,
        console: Console | None = None,
    ) -> None:
        """`console`: findings are shown there as cards instead of logged as JSON (the live demo's terminal)."""
        problems = cfg.missing_for_run()
        try:
            delivery.secrets(cfg)  # before anything is scheduled: a sink without its secret is a bad configuration
        except ConfigError as exc:
            problems += [f"{exc.source}: {problem}" for problem in exc.problems]
        if problems or cfg.lake is None or cfg.state is None:
            raise ConfigError("configuration", problems)
        self.cfg = cfg
        self.state_path = cfg.state
        self.lake = Lake(cfg.lake)
        self.detectors = tuple(detectors)
        self.guides = delivery.guides(self.detectors)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rules = suppressions.load(cfg.alerts.suppressions)
        self.streamed, self.sources = cfg.streamed()
        self.stop = threading.Event()
        self.busy = threading.Lock()
        self.delivering = threading.Lock()
        self.console = console
        self.extra = ["console"] if console else ["log"]
        self.sink_names = delivery.sink_names(cfg, self.extra)
        self.telemetry = Telemetry(
            cfg.state, cfg.schedule.interval_seconds, cfg.service.failing_cycles, self.clock, self.watched
        )
        State(cfg.state).close()  # migrate now: a state file from a newer version fails at start, not later

    def cycle(self, sources: Sequence[SourceSettings] | None = None) -> bool:
        """One cycle over `sources` (the interval's), never raising (the scheduler keeps going); True when it had
        no errors.

        A cycle fails when it raises, or when it read inputs and could store none of them (the lake or
        the state refusing every write): that is what readiness counts. Errors it contained (a bad file,
        a source's error) leave it complete and the service degraded."""
        health = self.telemetry.health
        with self.busy:
            if self.stop.is_set():
                return True
            started = time.monotonic()
            state = State(self.state_path)
            try:
                clean, ingested = self._cycle(state, self.sources if sources is None else sources)
            except Exception as exc:
                LOG.exception("cycle failed")
                self.telemetry.cycles.labels("failed").inc()
                health.set("cycle", f"the last cycle failed: {type(exc).__name__}: {exc}")
                health.completed(failed=True)
                return False
            finally:
                state.close()
                self.telemetry.cycle_seconds.observe(time.monotonic() - started)
            stored_nothing = ingested.retry_later and not (ingested.inputs or ingested.quarantined)
            failure = f"no input could be stored, {ingested.retry_later} to retry" if stored_nothing else None
            self.telemetry.cycles.labels("failed" if failure else "ok" if clean else "errors").inc()
            health.set("cycle", failure)
            health.completed(failed=failure is not None)
            self.telemetry.last_success.set_to_current_time()
            if time.monotonic() - started < self.cfg.schedule.interval_seconds:
                health.set("scheduler", None)
            return clean

    def _cycle(self, state: State, sources: Sequence[SourceSettings]) -> tuple[bool, Summary]:
        cfg, now, health = self.cfg, self.clock(), self.telemetry.health
        stale = inventory.refresh(cfg, state, now)
        health.set("inventory", stale)
        accounts = inventory.load(cfg, state)
        state.introduce([d.id for d in self.detectors], now)
        staged = state.staged(now, timedelta(days=cfg.service.burn_in_days))
        matcher = suppressions.with_burn_in(self.rules.matcher(now.date()), staged)
        lookback = timedelta(hours=cfg.schedule.detect_lookback_hours)
        plan = pipeline.Plan(
            self.sink_names,
            matcher,
            lookback=lookback,
            max_pairs=cfg.service.max_tracked_pairs,
            linking=cfg.incidents.linking(),
        )
        result = pipeline.cycle(
            sources,
            self.lake,
            state,
            self.detectors,
            Context(accounts.settings(cfg.detection), now=now),
            plan,
            Options(cfg.schedule.workers, limits=cfg.limits, stop=self.stop),
        )
        ingested, found = result.ingest, result.detect
        self.telemetry.ingested(ingested)
        if ingested.oldest is not None and ingested.oldest < now - lookback:
            since = f"{ingested.oldest:%Y-%m-%d}"
            log(
                LOG,
                logging.WARNING,
                "older events not detected",
                oldest=ingested.oldest.isoformat(),
                detect_lookback_hours=cfg.schedule.detect_lookback_hours,
                hint=f"trailguard detect --since {since} (a cycle detects only within detect_lookback_hours)",
            )
        errors = list(ingested.errors) + (found.detector_errors if found else []) + ([stale] if stale else [])
        if found is not None:
            fresh = found.findings[found.findings["finding_id"].isin(found.new)]
            for detector, severity in zip(fresh["detector"], fresh["severity"], strict=True):
                self.telemetry.new_findings.labels(detector, severity).inc()
        silent = watchdog.silent_sources(self.watched(state), now, timedelta(minutes=cfg.service.silent_after_minutes))
        stuck = watchdog.incomplete_reads(
            state, [s.name for s in sources], ingested.incomplete, now, cfg.service.incomplete_cycles
        )
        state.store_findings(silent + stuck, self.sink_names, matcher)
        if hygiene.due(cfg, state, now):
            context = Context(accounts.settings(cfg.detection), now=now)
            checked = hygiene.run(cfg, state, context, self.sink_names, matcher)
            errors += checked.errors
            health.set("hygiene", "; ".join(checked.errors) or None)
        health.set("sources", f"{len(ingested.errors)} errors in the last cycle" if ingested.errors else None)
        health.set("incomplete", ", ".join(sorted(ingested.incomplete)) or None)
        health.set("silent", ", ".join(f.dedup_key for f in silent) or None)
        untracked = (
            f"{result.untracked} account/region pairs over service.max_tracked_pairs" if result.untracked else None
        )
        health.set("activity", untracked)
        health.set("detectors", "; ".join(found.detector_errors) if found and found.detector_errors else None)
        for line in errors:
            log(LOG, logging.WARNING, "error", error=line)
        log(
            LOG,
            logging.INFO,
            "cycle",
            inputs=ingested.inputs,
            events=ingested.events,
            quarantined=ingested.quarantined,
            coerced=dict(ingested.coerced),
            new_findings=len(found.new) if found else 0,
            grown_findings=len(found.grown) if found else 0,
            errors=len(errors),
            stopping=self.stop.is_set(),
        )
        return not errors, ingested

    def watched(self, state: State) -> dict[tuple[str, str], datetime]:
        """The account/region pairs watched for silence (and shown in the lag metric), with their newest event."""
        service = self.cfg.service
        return watchdog.watched(
            state.activity(),
            timedelta(hours=service.settle_hours),
            timedelta(minutes=service.silent_after_minutes),
            self.cfg.watched_pairs(),
        )

    def deliver(self) -> bool:
        """One delivery run, never raising: every sink until nothing is due (or the service stops); then the
        monitor's own news of what could not be delivered, to the log and the fallback file. True when clean."""
        with self.delivering:
            state = State(self.state_path)
            try:
                errors = self._deliver(state)
            except Exception as exc:  # a sink that cannot even be built (a missing token) fails delivery only
                LOG.exception("delivery failed")
                errors = [f"{type(exc).__name__}: {exc}"]
                self.telemetry.health.set("alerts", f"delivery failed: {errors[0]}")
            finally:
                state.close()
            self.telemetry.delivery_errors.inc(len(errors))
            for line in errors:
                log(LOG, logging.WARNING, "error", error=line)
            return not errors

    def _deliver(self, state: State) -> list[str]:
        cfg, now = self.cfg, self.clock()
        accounts = inventory.load(cfg, state)
        sinks = delivery.build(
            cfg,
            state,
            self.guides,
            extra=self.extra,
            fallback=True,
            now=self.clock,
            inventory=accounts,
            console=self.console,
        )
        delivered = sinks.deliver(self.stop)
        lost = watchdog.undelivered(state, [n for n in sinks.names if n not in self.extra], now)
        state.store_findings(lost, (*self.extra, delivery.FALLBACK))
        if lost:
            delivered.sent += sinks.deliver_fallback()
        self.telemetry.health.set("alerts", f"{len(lost[0].details['findings'])} undelivered" if lost else None)
        if delivered.sent or delivered.errors:
            log(LOG, logging.INFO, "delivered", sent=delivered.sent, errors=len(delivered.errors))
        return delivered.errors

    def once(self) -> bool:
        """`run --once`: a cycle of every source, then its delivery; True when both were clean."""
        clean = self.cycle([*self.streamed, *self.sources])
        return self.deliver() and clean

    def stream(self, delivered: Callable[[], None]) -> None:
        """Stream mode: cycles of the streamed sources back to back until the service stops, each one's findings
        delivered at once. Each cycle waits for notifications (schedule.stream_wait_seconds) and then ingests,
        detects and stores them like any cycle: the same ledger, cursor and outbox, so the same exactly-once."""
        while not self.stop.is_set():
            clean = self.cycle(self.streamed)
            delivered()
            if not clean:  # a queue that cannot be read answers at once: wait as an empty receive would
                self.stop.wait(self.cfg.schedule.stream_wait_seconds)

    def on_scheduler_event(self, event: JobExecutionEvent) -> None:
        """A job that raised, and a cycle skipped, are health signals. A delivery run still going when the next is
        due is not: posts are paced (a backlog takes a second a post) and the run going on is the one due."""
        if event.code == EVENT_JOB_ERROR:
            self.telemetry.job_errors.inc()
            self.telemetry.health.set("scheduler", f"{event.job_id} job raised: {event.exception!r}")
            return
        if event.job_id != "cycle":
            return
        self.telemetry.missed.inc()
        why = "the previous cycle was still running" if event.code == EVENT_JOB_MAX_INSTANCES else "it was late"
        self.telemetry.health.set("scheduler", f"a scheduled cycle was skipped: {why}")
        log(LOG, logging.WARNING, "cycle skipped", reason=why)

    def _cycle_done(self, deliver_now: Callable[[], None]) -> Callable[[JobExecutionEvent], None]:
        """After each interval cycle, deliver at once what it found (not at the delivery job's next tick)."""

        def listener(event: JobExecutionEvent) -> None:
            if event.job_id == "cycle":
                deliver_now()

        return listener

    def _deliver_now(self, scheduler: BlockingScheduler) -> Callable[[], None]:
        def now() -> None:
            if not self.stop.is_set():
                with suppress(JobLookupError):  # the scheduler is shutting down
                    scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))

        return now

    def _watch(self, scheduler: BlockingScheduler) -> Callable[[SchedulerEvent], None]:
        """Once started, liveness follows the scheduler (until then the process is starting, not dead)."""

        def listener(event: SchedulerEvent) -> None:
            self.telemetry.health.scheduler = lambda: bool(scheduler.running) or self.stop.is_set()

        return listener

    def run(self) -> int:
        """Serve health and metrics, run cycles until SIGTERM/SIGINT, and exit 0 once the cycle in flight committed."""
        cfg = self.cfg
        server = self.telemetry.serve(cfg.service.metrics_host, cfg.service.metrics_port)
        host, port = server.server_address[:2]
        log(LOG, logging.INFO, "listening", host=str(host), port=port, paths=["/healthz", "/metrics"])
        scheduler = BlockingScheduler(timezone=UTC)
        interval = cfg.schedule.interval_seconds
        deliver_now = self._deliver_now(scheduler)
        if self.sources:
            scheduler.add_job(
                self.cycle,
                IntervalTrigger(seconds=interval, jitter=cfg.schedule.jitter_seconds or None),
                id="cycle",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=cfg.schedule.misfire_grace_seconds or interval,
                next_run_time=datetime.now(UTC),
            )
        if self.streamed:  # one job that runs until the service stops
            scheduler.add_job(self.stream, args=[deliver_now], id="stream", next_run_time=datetime.now(UTC))
        scheduler.add_job(
            self.deliver,
            IntervalTrigger(seconds=cfg.schedule.delivery_seconds),
            id="deliver",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.add_listener(self.on_scheduler_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        scheduler.add_listener(self._cycle_done(deliver_now), EVENT_JOB_EXECUTED)
        scheduler.add_listener(self._watch(scheduler), EVENT_SCHEDULER_STARTED)

        def stop(signum: int, frame: FrameType | None) -> None:
            if self.stop.is_set():
                return
            log(LOG, logging.INFO, "stopping", signal=signal.Signals(signum).name)
            self.stop.set()
            scheduler.shutdown(wait=False)

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log(
                LOG,
                logging.INFO,
                "started",
                mode=cfg.schedule.mode,
                interval_seconds=interval,
                sources=len(self.sources) + len(self.streamed),
            )
            scheduler.start()
            with self.busy, self.delivering:  # the cycle in flight commits, delivery stops between posts
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            server.shutdown()
        log(LOG, logging.INFO, "stopped")
        return 0
