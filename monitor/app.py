"""What each command does, as a function of a typed request: the CLI parses into these and prints what they
return; anything else (a notebook, a script, the demo) calls them the same way. The lake and the state
file default to the configuration's, and every choice of policy (which sinks, a backfill's summary, the
delivery lock) is made here or below, never in the CLI."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from detectors.core.base import Context
from detectors.core.lazy import Later
from detectors.core.registry import load
from detectors.iam_hygiene import IamHygiene
from monitor import RequestError
from monitor.config import Config, ConfigError
from monitor.detect import suppressions
from monitor.detect.catalog import detectors_of, sigma_rules
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.source import Window
from monitor.outbox.finding import Finding, rank
from monitor.service import inventory
from monitor.store.database import deliverer
from monitor.store.state import State

# each command loads what it runs: a scan needs no Slack client, `findings list` no data library
if TYPE_CHECKING:
    from monitor import compaction
    from monitor import lake as lakes
    from monitor.demo import generator
    from monitor.detect import pipeline
    from monitor.detect import scan as scanning
    from monitor.ingest import run as ingesting
    from monitor.ingest import workers as pools
    from monitor.outbox import delivery
    from monitor.service import hygiene as hygiene_checks
else:
    compaction, lakes, generator = Later("monitor.compaction"), Later("monitor.lake"), Later("monitor.demo.generator")
    pipeline, scanning, ingesting = (
        Later("monitor.detect.pipeline"),
        Later("monitor.detect.scan"),
        Later("monitor.ingest.run"),
    )
    delivery, hygiene_checks = Later("monitor.outbox.delivery"), Later("monitor.service.hygiene")
    pools = Later("monitor.ingest.workers")


class AppError(RequestError):
    """A request that cannot be done as asked: one line that says why."""


_HOW = {"sources": "--source URI or sources", "lake": "--lake URI or lake.uri", "state": "--state FILE or state.path"}


@dataclass(frozen=True)
class Where:
    """Where a command reads and writes: the request's, or else the configuration's."""

    sources: tuple[SourceSettings, ...]
    lake: str
    state: Path


def where(cfg: Config, command: str, *needed: str, **given: Any) -> Where:
    """The sources, lake and state file of a request (`given`) or the configuration; every one `needed` and missing
    is named at once."""
    sources, lake, state = (
        given.get("sources") or cfg.sources,
        given.get("lake") or cfg.lake,
        given.get("state") or cfg.state,
    )
    present = {"sources": bool(sources), "lake": bool(lake), "state": bool(state)}
    problems = [f"needs {_HOW[name]} in the configuration" for name in _HOW if name in needed and not present[name]]
    if problems:
        raise ConfigError(command, problems)
    return Where(tuple(sources), str(lake or ""), Path(state or ""))


@contextmanager
def delivering(state: Path | None) -> Iterator[None]:
    """Holding the state file's delivery lock (one deliverer at a time), when there is one to hold."""
    with deliverer(state) if state is not None else nullcontext():
        yield


def _dask() -> Any:
    """monitor.detect.dask_engine, imported only when asked for: Dask is an optional dependency."""
    try:
        return importlib.import_module("monitor.detect.dask_engine")
    except ImportError as exc:
        raise ConfigError("--engine dask", [f"needs the dask extra: pip install 'trailguard[dask]' ({exc})"]) from exc


@dataclass(frozen=True)
class Engine:
    """Where the work runs: worker processes here (`pandas`), or a Dask cluster (a local one by default)."""

    name: str = "pandas"
    scheduler: str | None = None


@dataclass(frozen=True)
class IngestRequest:
    sources: tuple[SourceSettings, ...] = ()  # default: the configuration's
    lake: str | None = None
    state: Path | None = None
    since: datetime | None = None
    until: datetime | None = None
    workers: int | None = None
    commit_inputs: int | None = None  # default: ingest's own
    engine: Engine = Engine()


def ingest(
    cfg: Config,
    request: IngestRequest,
    progress: Callable[[ingesting.Summary], None] | None = None,
    stop: threading.Event | None = None,
) -> ingesting.Summary:
    """Ingest the request's sources; once `stop` is set (Ctrl-C), the groups in flight are committed and no more
    start."""
    at = where(
        cfg, "ingest", "sources", "lake", "state", sources=request.sources, lake=request.lake, state=request.state
    )
    if request.engine.name != "dask":
        pools.boot_forkserver(pools.INGEST_PRELOAD)  # boots while this process loads the data libraries
    sources, lake, state = at.sources, lakes.Lake(at.lake), State(at.state)
    workers, mapper = request.workers, None
    if request.engine.name == "dask":
        spread = _dask()
        dask = spread.client(request.engine.scheduler)
        workers, mapper = request.workers or spread.workers(dask), spread.mapper(dask)
    commits = ingesting.COMMIT_INPUTS if request.commit_inputs is None else request.commit_inputs
    options = ingesting.Options(workers, mapper, commits, cfg.limits, progress, stop)
    return ingesting.from_sources(sources, lake, state, Window(request.since, request.until), options)


@dataclass(frozen=True)
class Alerting:
    """Where `detect --alert` delivers besides the configuration's sinks, and how a backfill is told."""

    jsonl: Path | None = None
    slack_channel: str | None = None
    slack_webhook: bool = False
    post_each: bool = False  # a backfill's findings each posted, not one summary per channel
    console: Console | None = None  # new findings shown here as they are delivered


@dataclass(frozen=True)
class DetectRequest:
    since: datetime
    until: datetime | None = None  # default: now
    lake: str | None = None
    state: Path | None = None
    detectors: tuple[str, ...] | None = None  # default: the catalog, less the configuration's disabled
    rules: tuple[str, ...] = ()  # Sigma rule files or folders, besides the configuration's
    slice_hours: int = 24
    engine: Engine = Engine()
    suppressions: Path | None = None  # default: the configuration's
    alert: Alerting | None = None  # None: findings are stored, not queued for delivery


@dataclass
class Detected:
    result: pipeline.DetectResult
    delivered: delivery.Delivered = field(default_factory=lambda: delivery.Delivered())  # noqa: PLW0108 (loaded when used)
    warnings: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return list(self.result.detector_errors) + self.delivered.errors


def detect(cfg: Config, request: DetectRequest) -> Detected:
    """Detect over the range and store the findings; with `alert`, queue the new ones and deliver them (holding
    the delivery lock). A range that ended more than a day ago is a backfill: one summary per channel."""
    at = where(cfg, "detect", "lake", "state", lake=request.lake, state=request.state)
    lake = lakes.Lake.existing(at.lake)  # before the state file is made: a mistyped lake changes nothing
    with delivering(at.state if request.alert else None):
        state, until, today = State(at.state), request.until or datetime.now(UTC), datetime.now(UTC).date()
        accounts = inventory.load(cfg, state)
        loaded = sigma_rules(cfg, request.rules)
        sinks, batch, detectors = delivery.Sinks(), None, detectors_of(cfg, request.detectors, loaded)
        if request.alert is not None:
            alert = request.alert
            wanted = delivery.configured(
                cfg, channel=alert.slack_channel, webhook=alert.slack_webhook, jsonl=alert.jsonl
            )
            extra = ["console"] if alert.console else []
            sinks = delivery.build(
                wanted, state, delivery.guides(load()), extra=extra, inventory=accounts, console=alert.console
            )
            batch = delivery.backfill(request.since, until, [d.id for d in detectors], alert.post_each)
        rules = suppressions.load(request.suppressions or cfg.alerts.suppressions)
        warnings = [f"suppression {rule.name} has expired and no longer applies" for rule in rules.expired(today)]
        warnings += [f"rule not loaded: {path}: {why}" for path, why in loaded.refused]
        engine = pipeline.local_engine
        if request.engine.name == "dask":
            spread = _dask()
            engine = spread.DaskEngine(spread.client(request.engine.scheduler))
        ctx = Context(accounts.settings(cfg.detection))
        plan = pipeline.Plan(
            sinks.names,
            rules.matcher(today),
            engine,
            timedelta(hours=request.slice_hours),
            batch,
            linking=cfg.incidents.linking(),
        )
        result = pipeline.detect(lake, state, detectors, ctx, request.since, until, plan)
        return Detected(result, sinks.deliver(), warnings)


def compact(cfg: Config, day: date, lake: str | None = None, force: bool = False) -> compaction.Compaction:
    if not force and day >= datetime.now(UTC).date() - timedelta(days=2):
        raise AppError(f"{day} may still receive events (use --force)")
    return compaction.compact_day(lakes.Lake.existing(where(cfg, "compact", "lake", lake=lake).lake), day)


@dataclass(frozen=True)
class ScanRequest:
    paths: tuple[str, ...]
    detectors: tuple[str, ...] | None = None
    workers: int | None = None
    lake: str | None = None  # history for the stateful detectors; never the configuration's unless given
    rules: tuple[str, ...] = ()  # Sigma rule files or folders, besides the configuration's


def scan(cfg: Config, request: ScanRequest, progress: Callable[[int, int], None] | None = None) -> scanning.ScanResult:
    ctx = Context(inventory.load(cfg).settings(cfg.detection))
    history = lakes.Lake(request.lake) if request.lake else None
    loaded = sigma_rules(cfg, request.rules)
    detectors = detectors_of(cfg, request.detectors, loaded)
    result = scanning.scan(request.paths, detectors, ctx, request.workers, progress, history, cfg.limits)
    result.notes += [f"rule not loaded: {path}: {why}" for path, why in loaded.refused]
    return result


@dataclass(frozen=True)
class Staged:
    """A detector on burn-in: when it ends, its findings per day, and the newest one's summary."""

    detector: str
    until: datetime
    per_day: dict[str, int]
    sample: str | None


def burn_in(cfg: Config, state: Path | None = None, now: datetime | None = None) -> list[Staged]:
    """The detectors on burn-in in a state file, with what they would have sent."""
    with State(where(cfg, "rules report", "state", state=state).state, create=False) as store:
        staged = store.staged(now or datetime.now(UTC), timedelta(days=cfg.service.burn_in_days))
        found = store.findings_per_day(staged)
    return [Staged(d, end, *found[d]) for d, end in sorted(staged.items())]


def promote(cfg: Config, detector: str, state: Path | None = None) -> str:
    """End a detector's burn-in: its next findings are sent (those stored during it stay unsent)."""
    with State(where(cfg, "rules promote", "state", state=state).state, create=False) as store:
        if store.promote(detector, datetime.now(UTC)):
            return f"{detector}: promoted; its new findings are delivered from the next cycle"
    raise AppError(f"{detector}: not on burn-in (trailguard rules report lists those that are)")


@dataclass
class Hygiene:
    result: hygiene_checks.HygieneResult
    open: list[Finding]
    delivered: delivery.Delivered


def hygiene(cfg: Config, state: Path | None = None, alert: bool = False) -> Hygiene:
    """Read every configured account's IAM state now; with `alert`, deliver what changed."""
    state_path = where(cfg, "hygiene", "state", state=state).state
    with delivering(state_path if alert else None):
        store = State(state_path)
        accounts = inventory.load(cfg, store)
        sinks = delivery.build(cfg, store, delivery.guides(load()), inventory=accounts) if alert else delivery.Sinks()
        now = datetime.now(UTC)
        ctx = Context(accounts.settings(cfg.detection), now=now)
        rules = suppressions.load(cfg.alerts.suppressions).matcher(now.date())
        result = hygiene_checks.run(cfg, store, ctx, sinks.names, rules)
        found = [f for account in result.accounts for f in store.open_findings(IamHygiene.id, account)]
        return Hygiene(result, found, sinks.deliver())


@dataclass(frozen=True)
class FindingsRequest:
    state: Path | None = None
    status: str | None = None  # open or resolved
    since: datetime | None = None  # last seen at or after
    detectors: tuple[str, ...] = ()
    severity: str | None = None  # at least this severe
    accounts: tuple[str, ...] = ()  # in or against one of these accounts


def findings(cfg: Config, request: FindingsRequest) -> list[dict[str, Any]]:
    """Stored findings, newest first, as the findings contract's objects with their status."""
    when = request.since.isoformat().replace("+00:00", "Z") if request.since else None
    store = State(where(cfg, "findings", "state", state=request.state).state, create=False)
    floor = rank(request.severity) if request.severity else None
    return [
        f
        for f in store.list_findings(request.status, when)
        if (not request.detectors or f["detector"] in request.detectors)
        and (floor is None or rank(f["severity"]) >= floor)
        and (not request.accounts or bool({f["account_id"], f.get("target_account_id")} & set(request.accounts)))
    ]


def _one(store: State, given: str) -> str:
    """The finding id a unique prefix stands for."""
    return _unique(store.ids_starting(given.lower()), given, "finding")


def _unique(found: list[str], given: str, what: str) -> str:
    if len(found) != 1:
        raise AppError(f"no {what} {given!r}" if not found else f"{given!r} is the start of several {what} ids")
    return found[0]


def finding(cfg: Config, state: Path | None, finding_id: str) -> dict[str, Any]:
    store = State(where(cfg, "findings", "state", state=state).state, create=False)
    found = store.finding(_one(store, finding_id))
    assert found is not None
    return found


def retry(cfg: Config, state: Path | None, finding_ids: tuple[str, ...] = ()) -> int:
    """Failed deliveries (of these findings, or all) queued again; returns how many."""
    store = State(where(cfg, "findings", "state", state=state).state, create=False)
    return store.retry_failed([_one(store, f) for f in finding_ids])


def resolve(cfg: Config, state: Path | None, finding_id: str, note: str) -> str:
    """Close a finding; its Slack thread gets the note. Resolving a resolved finding changes nothing.
    Returns what happened, in words."""
    path = where(cfg, "findings", "state", state=state).state
    store = State(path, create=False)
    fid = _one(store, finding_id)
    found = store.finding(fid)
    assert found is not None
    if found["status"] == "resolved":
        return f"finding {fid} was already resolved ({found['note'] or 'no note'}): nothing changed"
    store.resolve(fid, note)
    return delivery.resolve_in_slack(store, path)


def incidents(cfg: Config, state: Path | None, status: str | None, since: datetime | None) -> list[dict[str, Any]]:
    """Stored incidents, newest first, with their status (open while any of their findings is)."""
    store = State(where(cfg, "incidents", "state", state=state).state, create=False)
    return store.list_incidents(status, since.isoformat().replace("+00:00", "Z") if since else None)


def incident(cfg: Config, state: Path | None, incident_id: str) -> dict[str, Any]:
    """One incident with its timeline: each finding's time, detector, severity, status and summary, in order."""
    store = State(where(cfg, "incidents", "state", state=state).state, create=False)
    found = store.incident(_one_incident(store, incident_id))
    assert found is not None
    members = [store.finding(f) for f in found["finding_ids"]]
    shown = ("event_time", "detector", "severity", "status", "finding_id", "summary")
    return found | {"timeline": [{k: m[k] for k in shown} for m in members if m is not None]}


def resolve_incident(cfg: Config, state: Path | None, incident_id: str, note: str) -> str:
    """Close an incident: each of its open findings is resolved with the note (and its thread told)."""
    path = where(cfg, "incidents", "state", state=state).state
    store = State(path, create=False)
    iid = _one_incident(store, incident_id)
    opened = [f for f in store.members(iid) if (store.finding(f) or {}).get("status") == "open"]
    if not opened:
        return f"incident {iid} was already resolved: nothing changed"
    for finding_id in opened:
        store.resolve(finding_id, note)
    return f"incident {iid}: {len(opened)} findings resolved; " + delivery.resolve_in_slack(store, path)


def _one_incident(store: State, given: str) -> str:
    return _unique(store.incident_ids_starting(given.lower()), given, "incident")


@dataclass(frozen=True)
class GenerateRequest:
    out: Path
    date: date | None = None  # the last day; default: the 24 hours before now, so that `run` reads them
    days: int = 1
    accounts: int = 3
    events: int = 20_000  # a day
    seed: int = 7


@dataclass(frozen=True)
class Generated:
    written: list[Path]
    start: datetime
    end: datetime


def generate(request: GenerateRequest) -> Generated:
    """Generated CloudTrail activity as S3-shaped objects: routine days, the story in the last."""
    if request.days < 1 or request.events < 1 or request.accounts < 3:
        raise AppError("--days and --events must be at least 1, --accounts at least 3 (the story needs three)")
    if request.date is not None:
        last = datetime.combine(request.date, time(), UTC)
    else:
        last = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    written = generator.generate_days(
        request.out, request.events, request.days, last, accounts=request.accounts, seed=request.seed
    )
    return Generated(written, last - timedelta(days=request.days - 1), last + timedelta(days=1))


def notebooks(into: Path) -> list[Path]:
    """The investigation notebooks, copied into a folder of the user's; a copy already there is kept (it may have
    been edited). Returns every notebook in the folder."""
    into.mkdir(parents=True, exist_ok=True)
    for book in resources.files("monitor.investigate").joinpath("notebooks").iterdir():
        if book.name.endswith(".ipynb") and not (into / book.name).exists():
            (into / book.name).write_bytes(book.read_bytes())
    return sorted(into.glob("*.ipynb"))


def jupyter(into: Path, ip: str, port: int) -> list[str]:
    """The command that serves the folder in Jupyter Lab, headless (it prints its address and token); AppError
    when Jupyter is not installed."""
    if importlib.util.find_spec("jupyterlab") is None:
        raise AppError("Jupyter Lab is not installed: pip install 'trailguard[notebooks]' (or make notebooks)")
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
    ]
    command += [f"--ServerApp.root_dir={into}", *(["--allow-root"] if os.geteuid() == 0 else [])]
    return command
