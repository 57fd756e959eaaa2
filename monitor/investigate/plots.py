"""The notebooks' figures, with matplotlib: each takes a frame from `monitor.investigate.queries` and returns
its Figure, so a notebook cell is one call and the figure can also be saved or tested.

Every label drawn comes from events, which attackers write: it goes through `_text`, so that a `$`
in an event name is a dollar sign, not the start of matplotlib's math mode (which fails to draw
unbalanced `$`, or draws something else), and control characters are shown as escapes."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from monitor.text import printable

HIGHLIGHT, NEW, DENIED, QUIET = "#d62728", "#d62728", "#ff7f0e", "#7f7f7f"


def timeline(
    frame: pd.DataFrame, highlight: Collection[str] = (), title: str = "Events", rows: str = "event_name"
) -> Figure:
    """Each event as a dot on the row of its `rows` column (event name, or principal for an address); the
    highlighted events (a finding's) in red."""
    labels = frame[rows].fillna("-").map(_label)
    names = list(dict.fromkeys(labels))
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.35 * len(names) + 1.2)))
    row = labels.map({n: i for i, n in enumerate(names)})
    marked = frame["event_id"].isin(list(highlight))
    ax.scatter(frame.loc[~marked, "event_time"], row[~marked], s=14, color=QUIET, label="other events")
    ax.scatter(frame.loc[marked, "event_time"], row[marked], s=40, color=HIGHLIGHT, label="events in findings")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # first seen on top, read downwards like the tables
    ax.set_title(_text(title))
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def heatmap(table: pd.DataFrame, title: str) -> Figure:
    """Counts of rows (e.g. services) by columns (time buckets), darker for more."""
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.4 * len(table) + 1.5)))
    image = ax.imshow(table.to_numpy(), aspect="auto", cmap="Blues", vmin=0)
    ax.set_yticks(range(len(table.index)), [_text(i) for i in table.index])
    step = max(1, len(table.columns) // 12)
    ax.set_xticks(range(0, len(table.columns), step), [_text(_short(c)) for c in table.columns[::step]], rotation=45)
    ax.set_title(_text(title))
    fig.colorbar(image, ax=ax, label="events")
    fig.tight_layout()
    return fig


def bars(table: pd.DataFrame, title: str, colors: Mapping[str, str] | None = None) -> Figure:
    """One horizontal bar per row, stacked by column (e.g. sign-ins with MFA, without, failed)."""
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.45 * len(table) + 1.2)))
    left = pd.Series(0, index=table.index)
    for column in table.columns:
        ax.barh(
            [_label(i) for i in table.index],
            table[column],
            left=left,
            label=_text(column),
            color=(colors or {}).get(column),
        )
        left = left + table[column]
    ax.set_title(_text(title))
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def access_map(
    edges: pd.DataFrame, names: Mapping[str, str] | None = None, title: str = "Cross-account access"
) -> Figure:
    """Accounts on a circle, an arrow per (source account -> role's account): red when new in the
    window, orange dashed when only denied, grey when known; each arrow names its roles."""
    names = names or {}
    accounts = sorted(set(edges["source_account"]) | set(edges["target_account"]))
    fig, ax = plt.subplots(figsize=(9, 7))
    place = {
        a: (math.cos(2 * math.pi * i / max(1, len(accounts))), math.sin(2 * math.pi * i / max(1, len(accounts))))
        for i, a in enumerate(accounts)
    }
    for (source, target), group in edges.groupby(["source_account", "target_account"]):
        new, ok = bool(group["new"].any()), bool(group["calls"].sum())
        color = NEW if new else (QUIET if ok else DENIED)
        (x1, y1), (x2, y2) = place[str(source)], place[str(target)]
        ax.annotate(
            "",
            xy=(x2, y2),
            xytext=(x1, y1),
            arrowprops={
                "arrowstyle": "-|>",
                "color": color,
                "lw": 2,
                "linestyle": "-" if ok else "--",
                "shrinkA": 18,
                "shrinkB": 18,
            },
        )
        roles = _text(", ".join(sorted({str(r).rsplit("/", 1)[-1] for r in group["role_arn"]})))
        ax.text((x1 + x2) / 2, (y1 + y2) / 2, roles, fontsize=8, color=color, ha="center")
    for account, (x, y) in place.items():
        ax.scatter([x], [y], s=900, color="#1f77b4", zorder=3)
        label = f"{_text(account)}\n{_text(names.get(account, ''))}"
        ax.text(x, y - 0.2, label, ha="center", va="top", fontsize=8)
    ax.set_title(f"{_text(title)} (red: new, orange dashed: denied only, grey: known)")
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.6, 1.4)
    ax.axis("off")
    fig.tight_layout()
    return fig


def lifecycle(keys: pd.DataFrame, title: str = "Access keys") -> Figure:
    """A line per key from creation (or first use) to deletion (or last use), with its events marked."""
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.5 * len(keys) + 1.2)))
    rows: list[dict[str, Any]] = keys.to_dict("records")  # type: ignore[assignment]
    marks = {
        "created": ("o", "#2ca02c"),
        "first_used": (">", "#1f77b4"),
        "last_used": ("|", "#9467bd"),
        "deleted": ("x", HIGHLIGHT),
    }
    labelled: set[str] = set()
    for i, key in enumerate(rows):
        start = key["created"] if pd.notna(key["created"]) else key["first_used"]
        end = key["deleted"] if pd.notna(key["deleted"]) else key["last_used"]
        if pd.notna(start) and pd.notna(end):
            ax.plot([start, end], [i, i], color=QUIET, lw=3)
        for column, (mark, color) in marks.items():
            if pd.notna(key[column]):
                label = None if column in labelled else column.replace("_", " ")
                labelled.add(column)
                ax.scatter([key[column]], [i], marker=mark, color=color, s=80, zorder=3, label=label)
    labels = [f"{_text(k)} ({_text(u)})" for k, u in zip(keys["access_key_id"], keys["user"], strict=True)]
    ax.set_yticks(range(len(keys)), labels)
    ax.set_title(_text(title))
    ax.legend(fontsize="small", loc="lower right")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _text(value: object) -> str:
    """Event text as a label: drawn as written (no math mode), control characters as escapes."""
    return printable(str(value)).replace("$", r"\$")


def _label(value: object, width: int = 48) -> str:
    """An axis label that fits: an ARN as its resource and account, anything longer than `width` cut in the middle
    (the start says what it is, the end which one)."""
    text = _text(value)
    parts = text.split(":", 5)
    if text.startswith("arn:") and len(parts) == 6:
        text = f"{parts[5]} ({parts[4]})" if parts[4] else parts[5]
    half = (width - 1) // 2
    return text if len(text) <= width else text[:half] + "…" + text[-(width - 1 - half) :]


def _short(value: object) -> str:
    return value.strftime("%m-%d %H:%M") if isinstance(value, pd.Timestamp) else str(value)
