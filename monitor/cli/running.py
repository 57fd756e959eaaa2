"""Running a parsed command: the configuration, the sources given on the command line, what each kind of
error exits with, and Ctrl-C. Loaded only once a command runs (the parser alone is light)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

from detectors.core.registry import CatalogError
from monitor import RequestError
from monitor import config as config_module
from monitor.cli.common import EXIT_BUG, EXIT_INPUT, console, say
from monitor.ingest.sources.settings import SourceError, SourceSettings
from monitor.ingest.sources.settings import parse as parse_source

if TYPE_CHECKING:
    from types import FrameType

    from rich.progress import Progress

EXIT_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for a command that Ctrl-C ended
STOPPING = "stopping: committing what is in flight (Ctrl-C again to abort)"


def run(args: argparse.Namespace) -> int:
    """The command's exit status: its own, or what its error is (bad input 2, a bug 3, its traceback masked; Ctrl-C
    130, as a shell reports it)."""
    err = console(stderr=True)
    try:
        cfg = config_module.load(args.config)
        if getattr(args, "source", None):
            args.source = given_sources(args)
        status: int = args.handler(args, cfg, err)
        return status
    except config_module.ConfigError as exc:
        for problem in exc.problems:
            err.print(f"error: {exc.source}: {problem}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_INPUT
    except (CatalogError, RequestError) as exc:
        say(err, f"error: {exc}")
        return EXIT_INPUT
    except KeyboardInterrupt:  # Ctrl-C where the command has no stop of its own (`ingest` and `run` have one)
        say(err, "interrupted: stopped before the end")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        sys.stderr.close()
        return 0
    except Exception:  # a bug: its traceback, with every secret masked, for the report
        say(err, *traceback.format_exc().splitlines())
        err.print("error: internal error (a bug in TrailGuard: please report it with the lines above)", markup=False)
        return EXIT_BUG


@contextmanager
def interruptible(stop: threading.Event, err: Console, bar: Progress) -> Iterator[None]:
    """Ctrl-C sets `stop`, so the command ends as it would at its end, with what it has in flight committed (a
    KeyboardInterrupt would lose that). A second Ctrl-C ends the process at once, as a kill would: what is
    committed stays, and what was written but not yet recorded (lake files) is written again by a rerun and
    read once. A process started with Ctrl-C ignored (a shell's background job) keeps ignoring it."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            stop.set()
            for task in bar.task_ids:
                bar.update(task, description=STOPPING)
            return
        bar.stop()
        say(err, "error: aborted by a second Ctrl-C: what was committed stays, a rerun does the rest")
        err.file.flush()
        os._exit(EXIT_INTERRUPTED)  # not an exception: a worker pool's shutdown would wait for what is in flight

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def given_sources(args: argparse.Namespace) -> list[SourceSettings]:
    """`--source` URIs, each with its query's options, `--role-arn`, and for s3:// and securitylake:// `--account`
    and `--region`."""
    found, problems = [], []
    for uri in args.source:
        extra: dict[str, object] = {"role_arn": args.role_arn}
        if uri.startswith(("s3://", "securitylake://")):
            extra |= {"accounts": tuple(args.account), "regions": tuple(args.region)}
        try:
            found.append(parse_source(uri, **extra))
        except SourceError as exc:
            problems += [f"{uri}: {option}: {problem}" for option, problem in exc.problems]
    if problems:
        raise config_module.ConfigError("--source", problems)
    return found
