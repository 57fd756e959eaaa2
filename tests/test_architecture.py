"""The boundaries the layout promises, checked on the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MONITOR = Path(__file__).resolve().parent.parent / "monitor"


def imports(path: Path) -> set[str]:
    """Every module a file imports, by its full name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in sorted((MONITOR / folder).glob("*.py")):
        bad = sorted(m for m in imports(path) if m.startswith(forbidden))
        if bad:
            found[path.name] = bad
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("outbox/sinks", ("monitor.store",)),  # sinks are transports: only the dispatcher keeps the outbox
        ("ingest/sources", ("monitor.store", "monitor.lake")),  # sources only read: ingest writes
        (
            "cli",
            (
                "monitor.outbox.dispatcher",
                "monitor.outbox.threads",
                "monitor.outbox.delivery",
                "monitor.store.database.deliverer",
            ),
        ),
    ],
    ids=["sinks-never-touch-the-stores", "sources-never-write", "cli-holds-no-delivery-policy"],
)
def test_layers_keep_to_themselves(folder: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(folder, forbidden) == {}


def test_each_command_group_is_a_thin_adapter() -> None:
    """A command group only parses and prints: its options live in cli/options.py, its help in cli/texts.py, and
    its code (from its first function on: the imports above it are loaded lazily, so they take more lines) is
    under 50 lines."""
    shared = {"__init__.py", "__main__.py", "main.py", "running.py", "common.py", "options.py", "texts.py"}
    groups = [p for p in sorted((MONITOR / "cli").glob("*.py")) if p.name not in shared]
    assert len(groups) >= 7

    def code(path: Path) -> int:
        lines = path.read_text().splitlines()
        return len(lines) - next(n for n, line in enumerate(lines) if line.startswith("def "))

    assert {p.name: n for p in groups if (n := code(p)) >= 50} == {}
