"""Worker processes that contain what they run, shared by `scan` and `ingest`.

A worker that dies (killed, out of memory, a crash in native code) breaks a process pool and
every task then in flight with it; which task killed it cannot be told. So `bounded_map`
reports each of those items as `Crashed` instead of raising, starts a new pool for the rest,
and leaves it to the caller to run the crashed items again one at a time, where a second crash
names its culprit. Workers never outlive the process that started them: each checks every
second that its starter still runs, and exits when it does not (a SIGKILLed `ingest` would
otherwise leave its workers and their forkserver waiting for work that never comes).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import resource
import select
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_WATCH_SECONDS = 1.0
INGEST_PRELOAD = ("monitor.ingest.run",)  # what ingest's forkserver imports once for all its workers


@dataclass(frozen=True)
class Crashed(Generic[T]):
    """An item whose worker died while it was in flight (it, or another item in flight, killed it)."""

    item: T
    reason: str


# how items are mapped: bounded_map's local processes, or a Dask cluster (monitor.detect.dask_engine.mapper)
Mapper = Callable[[Callable[[Any], Any], Iterable[Any], int, int], Iterator[Any]]


def _starter_gone(pid: int, pidfd: int | None) -> bool:
    if pidfd is not None:
        return bool(select.select([pidfd], [], [], 0)[0])  # a process's pidfd turns readable when it exits
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _start_worker(
    starter: int, environment: dict[str, str], initializer: Callable[..., None] | None, initargs: Sequence[Any]
) -> None:
    """In each worker: the starter's environment as it is now (a forkserver's is from when it started), Ctrl-C
    left to the starter (it finishes and commits what is in flight), an exit when the starter is gone,
    then the caller's own initializer.

    The check runs from a timer signal rather than a thread, so a worker stays single-threaded
    (the decoders' nesting limit relies on that)."""
    os.environ.clear()
    os.environ.update(environment)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pidfd: int | None = os.pidfd_open(starter)
    except (AttributeError, OSError):  # not Linux, or the starter already exited
        pidfd = None

    def check(signum: int, frame: Any) -> None:
        if _starter_gone(starter, pidfd):
            os._exit(1)

    signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, _WATCH_SECONDS, _WATCH_SECONDS)
    check(signal.SIGALRM, None)
    if initializer is not None:
        initializer(*initargs)


@dataclass(frozen=True)
class Pool:
    """How worker processes start: `context`, the modules a forkserver imports once for all (`preload`), an
    `initializer` with its arguments, and the CPU seconds a worker may spend on one item."""

    context: str = "forkserver"
    preload: Sequence[str] = ()
    initializer: Callable[..., None] | None = None
    initargs: Sequence[Any] = ()
    cpu_seconds: int | None = None

    def start(self, workers: int) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context(self.context)
        if self.context == "forkserver":
            ctx.set_forkserver_preload(list(self.preload))
        starter = (os.getpid(), dict(os.environ), self.initializer, self.initargs)
        return ProcessPoolExecutor(workers, ctx, initializer=_start_worker, initargs=starter)


def boot_forkserver(preload: Sequence[str]) -> None:
    """Start the forkserver now, importing `preload`: it boots on another core while this process goes on with
    its own imports and listing, not after them (a one-file ingest: 1.04 -> 0.85 s). It boots even when the
    listing then finds nothing new (0.2 s more for such a run, on the other core, until the forkserver has
    imported and sees its starter gone). The first pool to start one fixes its preload."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
    multiprocessing.forkserver.ensure_running()


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, window: int, pool: Pool = Pool()
) -> Iterator[R | Crashed[T]]:
    """Like Executor.map, in order, with at most `window` items in flight (results never pile up), in
    `workers` processes; an item whose worker died comes back as `Crashed`, and the rest go on.

    forkserver (the default) workers never inherit the starter's threads or its AWS SDK state
    (neither is fork-safe); `preload` names the modules the forkserver imports once for all.
    With `cpu_seconds`, a worker that spends more CPU than that on one item is killed by the
    kernel (SIGXCPU), which makes the item `Crashed` like any other death.
    """
    executor = pool.start(workers)
    pending: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            while True:
                try:
                    future = executor.submit(_within, fn, pool.cpu_seconds, item)
                    break
                except BrokenProcessPool:  # a worker died: what was in flight is lost, the rest gets a new pool
                    yield from _drain(pending)
                    executor.shutdown(wait=True)
                    executor = pool.start(workers)
            pending.append((item, future))
            yield from _drain(pending, keep=window - 1)
        yield from _drain(pending)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _within(fn: Callable[[T], R], cpu_seconds: int | None, item: T) -> R:
    """Run one item in a worker, with the kernel's CPU limit moved to what it has used plus the budget."""
    if cpu_seconds is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(usage.ru_utime + usage.ru_stime) + 1 + cpu_seconds
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    return fn(item)


def _drain(pending: deque[tuple[T, Future[R]]], keep: int = 0) -> Iterator[R | Crashed[T]]:
    """Results in order until at most `keep` items are in flight."""
    while len(pending) > keep:
        item, future = pending.popleft()
        try:
            yield future.result()
        except BrokenProcessPool:
            yield Crashed(
                item, "its worker process died (killed, out of memory, crashed, or over limits.max_cpu_seconds)"
            )
        except Exception as exc:  # whatever failed on the way back (a result that cannot be pickled) is the item's
            yield Crashed(item, f"its worker failed ({type(exc).__name__}: {exc})")
