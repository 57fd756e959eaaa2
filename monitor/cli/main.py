"""The `trailguard` command line: one parser of the command groups, the configuration, and exit codes."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from detectors.core.registry import CatalogError
from monitor import __version__
from monitor import config as config_module
from monitor.cli import findings, lake, local, service
from monitor.cli.common import CONFIG_HELP, EXIT_BUG, EXIT_INPUT, Commands, console, delivering
from monitor.cli.findings import findings_command
from monitor.cli.lake import compact_command, detect_command, ingest_command
from monitor.cli.local import demo_command, detectors_command, generate_command, scan_command
from monitor.cli.service import check_command, hygiene_command, run_command, state_command
from monitor.demo import run as demo
from monitor.ingest.sources.settings import SourceError, SourceSettings
from monitor.ingest.sources.settings import parse as parse_source
from monitor.lake import LakeError
from monitor.store.database import StateError
from monitor.text import printable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trailguard",
        description="Watch AWS identities in CloudTrail: root use, console logins without MFA, new access keys, "
        "cross-account role assumptions.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"trailguard {__version__}")
    common = argparse.ArgumentParser(add_help=False)  # --config after the command works too
    common.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    sub = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)

    for group in (local, lake, findings, service):
        group.add(sub)
    return parser


def given_sources(args: argparse.Namespace) -> list[SourceSettings]:
    """`--source` URIs, each with its query's options, `--role-arn`, and for s3:// `--account`/`--region`."""
    found, problems = [], []
    for uri in args.source:
        extra: dict[str, object] = {"role_arn": args.role_arn}
        if uri.startswith("s3://"):
            extra |= {"accounts": tuple(args.account), "regions": tuple(args.region)}
        try:
            found.append(parse_source(uri, **extra))
        except SourceError as exc:
            problems += [f"{uri}: {option}: {problem}" for option, problem in exc.problems]
    if problems:
        raise config_module.ConfigError("--source", problems)
    return found


def from_config(args: argparse.Namespace, cfg: config_module.Config) -> None:
    """What the command line leaves out comes from the configuration: sources, lake and state."""
    if getattr(args, "source", None) is not None:
        args.source = given_sources(args)
    wanted = {
        "source": (list(cfg.sources), "--source URI or sources"),
        "lake": (cfg.lake, "--lake URI or lake.uri"),
        "state": (cfg.state, "--state FILE or state.path"),
    }
    problems = []
    for name, (value, how) in wanted.items():
        if args.command == "scan" or getattr(args, name, "") is not None:  # scan's --lake is optional history
            continue
        if not value:
            problems.append(f"needs {how} in the configuration")
        setattr(args, name, value)
    if problems:
        raise config_module.ConfigError(args.command, problems)


def check_range(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--since must come before --until (or now), whatever form each was given in."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and since >= (until or datetime.now(UTC)):
        end = until.isoformat() if until else "now"
        parser.error(f"--since ({since.isoformat()}) must be before --until ({end})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_range(parser, args)
    err = console(stderr=True)
    try:
        cfg = config_module.load(args.config)
        from_config(args, cfg)
        commands: dict[str, Callable[[], int]] = {
            "scan": lambda: scan_command(args, cfg, err),
            "detectors": detectors_command,
            "demo": lambda: demo_command(args, cfg),
            "ingest": lambda: ingest_command(args, cfg, err),
            "compact": lambda: compact_command(args, err),
            "detect": lambda: delivering(args.state if args.alert else None, lambda: detect_command(args, cfg, err)),
            "findings": lambda: findings_command(args, err),
            "run": lambda: run_command(args, cfg),
            "check": lambda: check_command(args, cfg),
            "hygiene": lambda: delivering(args.state if args.alert else None, lambda: hygiene_command(args, cfg, err)),
            "generate": lambda: generate_command(args, err),
            "state": lambda: state_command(args),
        }
        return commands[args.command]()
    except config_module.ConfigError as exc:
        for problem in exc.problems:
            err.print(f"error: {exc.source}: {problem}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_INPUT
    except (CatalogError, StateError, LakeError, demo.DemoError) as exc:
        err.print(f"error: {printable(str(exc))}", markup=False, highlight=False)
        return EXIT_INPUT
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        sys.stderr.close()
        return 0
    except Exception:  # a bug: its traceback, with every secret masked, for the report
        for line in traceback.format_exc().splitlines():
            err.print(printable(line), markup=False, highlight=False)
        err.print("error: internal error (a bug in TrailGuard: please report it with the lines above)", markup=False)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
