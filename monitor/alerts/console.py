"""Findings for people in the terminal: a header line per finding and its summary below it,
which stays readable at any terminal width (ARNs do not fit table cells)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape

from monitor.alerts.text import printable

_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _cell(value: object) -> str:
    """Event fields are attacker-controlled: no rich markup, no terminal escapes, missing shown plainly."""
    return "-" if value is None or value == "" else escape(printable(str(value)))


def render(findings: pd.DataFrame, console: Console) -> None:
    console.print(f"[bold]{len(findings)} findings[/]")
    for f in findings.to_dict("records"):
        severity = f["severity"]
        console.print(
            f"\n[{_STYLE[severity]}]{severity.upper():>8}[/] [bold]{f['detector']}[/] ({_cell(f['kind'])})  "
            f"account {_cell(f['account_id'])}  {f['event_time']:%Y-%m-%d %H:%M:%S} UTC"
        )
        console.print(f"         {_cell(f['summary'])}", highlight=False)
        console.print(f"         [dim]finding {f['finding_id']}, {len(f['event_ids'])} events[/]")
