"""Findings for people in the terminal: a header line per finding and its summary below it,
which stays readable at any terminal width (ARNs do not fit table cells)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from rich.console import Console
from rich.markup import escape

from monitor.outbox.dispatcher import Route
from monitor.outbox.finding import Finding, from_frame
from monitor.outbox.sinks.kind import Kind, Setup
from monitor.outbox.transport import Receipt
from monitor.text import printable

_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _cell(value: object) -> str:
    """Event fields are attacker-controlled: no rich markup, no terminal escapes, missing shown plainly."""
    return "-" if value is None or value == "" else escape(printable(str(value)))


def render(findings: pd.DataFrame, console: Console, accounts: Mapping[str, str] | None = None) -> None:
    """`accounts` names account ids (from the inventory), shown beside them."""
    console.print(f"[bold]{len(findings)} findings[/]")
    sink = ConsoleSink(console, accounts or {})
    for finding in from_frame(findings):
        sink.send(finding)


@dataclass
class ConsoleSink:
    """New findings in the terminal of `detect --alert`, as they are delivered."""

    console: Console
    accounts: Mapping[str, str] = field(default_factory=dict)
    name: str = "console"

    def send(self, finding: Finding) -> Receipt:
        def named(account: object) -> str:
            return _cell(account) + (
                f" ({_cell(self.accounts[str(account)])})" if str(account) in self.accounts else ""
            )

        severity = finding.severity
        target = f" -> {named(finding.target_account_id)}" if finding.target_account_id else ""
        when = finding.event_time[:19].replace("T", " ")
        self.console.print(
            f"\n[{_STYLE[severity]}]{severity.upper():>8}[/] [bold]{finding.detector}[/] ({_cell(finding.kind)})  "
            f"account {named(finding.account_id)}{target}  {when} UTC"
        )
        self.console.print(f"         {_cell(finding.summary)}", highlight=False)
        self.console.print(f"         [dim]finding {finding.finding_id}, {len(finding.event_ids)} events[/]")
        return Receipt()


def _route(setup: Setup) -> Route:
    return Route(ConsoleSink(setup.console or Console(stderr=True), setup.accounts))


KIND = Kind(lambda cfg, extra: "console" in extra, _route)
