"""Findings as a table for people, in the terminal."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _cell(value: object) -> str:
    """Event fields are attacker-controlled: escape rich markup and show missing values plainly."""
    return "-" if value is None or value == "" else escape(str(value))


def render(findings: pd.DataFrame, console: Console) -> None:
    table = Table(title=f"{len(findings)} findings", show_lines=False, expand=True)
    for name in ("time (UTC)", "severity", "detector", "account", "principal", "summary"):
        table.add_column(name, overflow="fold")
    for f in findings.to_dict("records"):
        table.add_row(
            f["event_time"].strftime("%Y-%m-%d %H:%M:%S"),
            f"[{_STYLE[f['severity']]}]{f['severity']}[/]",
            f["detector"],
            _cell(f["account_id"]),
            _cell(f["principal"]),
            _cell(f["summary"]),
        )
    console.print(table)
