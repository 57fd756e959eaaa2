"""Running a parsed command: the configuration, the sources given on the command line, and what each kind of
error exits with. Loaded only once a command runs (the parser alone is light)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from detectors.core.registry import CatalogError
from monitor import RequestError
from monitor import config as config_module
from monitor.cli.common import EXIT_BUG, EXIT_INPUT, console, say
from monitor.ingest.sources.settings import SourceError, SourceSettings
from monitor.ingest.sources.settings import parse as parse_source


def run(args: argparse.Namespace) -> int:
    """The command's exit status: its own, or what its error is (bad input 2, a bug 3, its traceback masked)."""
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
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        sys.stderr.close()
        return 0
    except Exception:  # a bug: its traceback, with every secret masked, for the report
        say(err, *traceback.format_exc().splitlines())
        err.print("error: internal error (a bug in TrailGuard: please report it with the lines above)", markup=False)
        return EXIT_BUG


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
