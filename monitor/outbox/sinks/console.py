"""Findings for people in the terminal: a header line per finding and its summary below it,
which stays readable at any terminal width (ARNs do not fit table cells)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from rich.console import Console
from rich.markup import escape

from monitor.text import printable

_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _cell(value: object) -> str:
    """Event fields are attacker-controlled: no rich markup, no terminal escapes, missing shown plainly."""
    return "-" if value is None or value == "" else escape(printable(str(value)))


def render(findings: pd.DataFrame, console: Console, accounts: Mapping[str, str] | None = None) -> None:
    """`accounts` names account ids (from the inventory), shown beside them."""
    names = accounts or {}

    def named(account: object) -> str:
        return _cell(account) + (f" ({_cell(names[str(account)])})" if str(account) in names else "")

    console.print(f"[bold]{len(findings)} findings[/]")
    for f in findings.to_dict("records"):
        severity = f["severity"]
        target = f" -> {named(f['target_account_id'])}" if f.get("target_account_id") else ""
        console.print(
            f"\n[{_STYLE[severity]}]{severity.upper():>8}[/] [bold]{f['detector']}[/] ({_cell(f['kind'])})  "
            f"account {named(f['account_id'])}{target}  {f['event_time']:%Y-%m-%d %H:%M:%S} UTC"
        )
        console.print(f"         {_cell(f['summary'])}", highlight=False)
        console.print(f"         [dim]finding {f['finding_id']}, {len(f['event_ids'])} events[/]")
