"""What every command group shares: exit codes, consoles, times on the command line, the command table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from rich.console import Console

from detectors.core.lazy import Later
from monitor import logs
from monitor.cli.texts import COMMANDS
from monitor.text import printable

if TYPE_CHECKING:
    from rich import progress as bars

    from monitor import app as app  # noqa: PLC0414 (re-exported: at run time the lazy ones below)
    from monitor.config import Config
    from monitor.detect import catalog as catalog  # noqa: PLC0414
else:
    app, catalog = Later("monitor.app"), Later("monitor.detect.catalog")
    bars = Later("rich.progress")  # only a command that shows a bar loads it

T = TypeVar("T")
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_BUG = 3


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`| head`): the command ends as it does when a plain write finds that (rich's
        own answer is to exit with 1, as if something had failed)."""
        self.quiet = True
        raise BrokenPipeError


def console(stderr: bool = False) -> Console:
    """A console that wraps on a terminal only: piped output keeps one line per line (one per bad input).
    Everything written to stderr goes through the secrets mask."""
    console = _Console(file=cast("IO[str]", logs.RedactedStream(sys.stderr))) if stderr else _Console()
    console.soft_wrap = not console.is_terminal
    return console


Handler = Callable[[argparse.Namespace, "Config", Console], int]
CONFIG_HELP = "TOML configuration, before or after the command (default: embedded defaults)"


@dataclass
class Commands:
    """The subcommands, each with the options every command takes."""

    sub: Any
    common: argparse.ArgumentParser
    prefix: str = ""  # a group's name and a space, for its commands' help

    def group(self, name: str) -> Commands:
        """A command of commands (`findings list`, `findings show ID`)."""
        summary, description = COMMANDS[name]
        parser = self.sub.add_parser(name, help=summary, description=description or summary)
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        return Commands(actions, self.common, f"{name} ")

    def add_parser(self, name: str, handler: Handler) -> argparse.ArgumentParser:
        """A command run by `handler(args, cfg, err)`, which returns its exit status; its help from `texts`."""
        summary, description = COMMANDS[self.prefix + name]
        parser: argparse.ArgumentParser = self.sub.add_parser(
            name, parents=[self.common], help=summary, description=description or summary
        )
        parser.set_defaults(handler=handler)
        return parser


def request(kind: Callable[..., T], args: argparse.Namespace, **given: Any) -> T:
    """A typed request from the options of the same names, with `given` on top."""
    names = {f.name for f in fields(cast("Any", kind))}
    return kind(**{n: getattr(args, n) for n in names if hasattr(args, n)} | given)


def progress_bar(err: Console, quiet: bool, *columns: bars.ProgressColumn | str) -> bars.Progress:
    """A progress bar on a terminal only: never in piped output, nor with --no-progress; gone when done."""
    return bars.Progress(*columns, console=err, transient=True, disable=quiet or not err.is_terminal)


def spinner(err: Console, quiet: bool) -> bars.Progress:
    """A spinner and a line of text, for work whose size is not known in advance."""
    return progress_bar(err, quiet, bars.SpinnerColumn(), bars.TextColumn("{task.description}"))


@contextmanager
def byte_progress(err: Console, quiet: bool, label: str, least: int) -> Iterator[Callable[[int, int], None]]:
    """A bar of bytes done, for work on at least `least` bytes (under that, it would only flicker)."""
    columns = (bars.TextColumn(label), bars.BarColumn(), bars.DownloadColumn(), bars.TimeRemainingColumn())
    bar = progress_bar(err, quiet, *columns)
    task = bar.add_task(label, total=None)

    def progress(done: int, total: int) -> None:
        if total >= least:
            bar.update(task, completed=done, total=total)

    with bar:
        yield progress


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Lines of a plain table, columns padded to their widest cell except the last, which runs on: it reads
    the same on a terminal and through `grep`, `sort` or `cut`. Cells are made printable."""
    cells = [[printable(str(c)) for c in row] for row in [header, *rows]]
    widths = [max(len(row[n]) for row in cells) for n in range(len(header) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in cells]


def findings_table(items: Iterable[Mapping[str, Any]], status: bool = False) -> list[str]:
    """Findings one per line: the most telling fields first, the summary last; ids shortened (a prefix is enough
    for `findings show`)."""
    header = ("SEVERITY", "DETECTOR", "ACCOUNT", "LAST SEEN (UTC)", "FINDING", *(("STATUS",) if status else ()))
    rows = [
        (
            f["severity"],
            f["detector"],
            f["account_id"] or "-",
            str(f["last_seen"] or "")[:19].replace("T", " "),
            f["finding_id"][:12],
            *((f["status"],) if status else ()),
            f["summary"],
        )
        for f in items
    ]
    return table((*header, "SUMMARY"), rows)


def say(out: Console, *lines: str) -> None:
    """Each line as it is (no markup), made printable: event fields never reach the terminal raw."""
    for line in lines:
        out.print(printable(line), markup=False, highlight=False)


def report(
    out: Console, errors: Iterable[str], line: str, coerced: Mapping[str, int], notes: Iterable[str] = ()
) -> None:
    """A run's end: one line per input that failed, its notes (what the inputs' shapes hide, rules not loaded),
    and its summary line, ending with the fields of a wrong type that were coerced, most frequent first."""
    counts = sorted(coerced.items(), key=lambda item: (-item[1], item[0]))
    fixed = f", {sum(coerced.values())} fields coerced ({', '.join(f'{k} {n}' for k, n in counts)})" if counts else ""
    say(out, *(f"error: {e}" for e in errors), *notes, line + fixed)


_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def when(text: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a duration before now: 30m, 12h, 7d. Between 1970
    and 9000: a range's context and baselines reach days beyond it, which year 1 or 9999 cannot give."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    ago = text[-1:] in units and text[:-1].isdigit()
    try:
        value = datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])}) if ago else None
        value = value or datetime.fromisoformat(text)
    except (OverflowError, ValueError):
        problem = "too far back" if ago else "not an ISO date/time or a duration like 7d"
        raise argparse.ArgumentTypeError(f"{problem}: {text!r}") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if value < _EARLIEST:
        raise argparse.ArgumentTypeError(f"too far back: {text!r} (before 1970)")
    if value >= _LATEST:
        raise argparse.ArgumentTypeError(f"too far ahead: {text!r} (after 9000)")
    return value


def at_least_one(text: str) -> int:
    """A count of processes or inputs: a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number from 1: {text!r}")
    return value


def existing(text: str) -> Path:
    """A file or folder that is there: a mistyped rule pack is an error, not a run without it."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or folder: {text!r}")
    return path
