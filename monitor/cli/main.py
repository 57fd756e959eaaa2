"""The `trailguard` command line: one parser of the command groups, the configuration, and exit codes."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from detectors.core.registry import CatalogError
from monitor import __version__, app
from monitor import config as config_module
from monitor.cli import catalog, demo, detect, findings, hygiene, incidents, ingest, investigate, rules, scan, service
from monitor.cli.common import CONFIG_HELP, EXIT_BUG, EXIT_INPUT, Commands, console, say
from monitor.demo.run import DemoError
from monitor.ingest.sources.settings import SourceError, SourceSettings
from monitor.ingest.sources.settings import parse as parse_source
from monitor.lake import LakeError
from monitor.store.database import StateError


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
    for group in (scan, catalog, demo, ingest, detect, findings, incidents, rules, investigate, service, hygiene):
        group.add(sub)
    return parser


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
        if getattr(args, "source", None):
            args.source = given_sources(args)
        status: int = args.handler(args, cfg, err)
        return status
    except config_module.ConfigError as exc:
        for problem in exc.problems:
            err.print(f"error: {exc.source}: {problem}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_INPUT
    except (CatalogError, StateError, LakeError, DemoError, app.AppError) as exc:
        say(err, f"error: {exc}")
        return EXIT_INPUT
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        sys.stderr.close()
        return 0
    except Exception:  # a bug: its traceback, with every secret masked, for the report
        say(err, *traceback.format_exc().splitlines())
        err.print("error: internal error (a bug in TrailGuard: please report it with the lines above)", markup=False)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
