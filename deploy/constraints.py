"""Write deploy/constraints.txt: the exact version of every package TrailGuard's runtime needs (its whole dependency
tree, extras excluded), as installed in this environment, where the tests passed. The container build,
`make demo` and `make test` install with these pins, so what is tested is what ships.

Usage: .venv/bin/python deploy/constraints.py   (what `make constraints` runs after upgrading)
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

OUT = Path(__file__).resolve().parent / "constraints.txt"
HEADER = "# TrailGuard's runtime dependency tree, pinned (python deploy/constraints.py writes it)\n"


def closure(root: str = "trailguard") -> dict[str, str]:
    """Every distribution `root` needs at runtime on this interpreter, with its installed version."""
    pinned: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        dist = distribution(name)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra's, or another platform's
            key = canonicalize_name(requirement.name)
            if key in pinned:
                continue
            try:
                pinned[key] = distribution(key).version
            except PackageNotFoundError:
                sys.exit(f"{key} (needed by {name}) is not installed: install TrailGuard first")
            todo.append(key)
    return dict(sorted(pinned.items()))


def text() -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in closure().items())


if __name__ == "__main__":
    OUT.write_text(text())
    print(OUT)
