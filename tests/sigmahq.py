"""Where the SigmaHQ CloudTrail rules are: the pinned reference copy beside the repository (`../shared/sigma`),
or beside the repository a clone was made from (a clean clone elsewhere); `TRAILGUARD_SIGMA_RULES` overrides."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _origin() -> Path | None:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"], capture_output=True, text=True, check=False
    )
    url = done.stdout.strip()
    return Path(url) if url.startswith("/") else None


def sigmahq() -> Path:
    """The reference copy's folder (with rules/ and unsupported/); skips, naming where it looked, without one."""
    given = os.environ.get("TRAILGUARD_SIGMA_RULES")
    origin = _origin()
    places = [Path(given)] if given else [ROOT.parent / "shared" / "sigma"]
    if origin is not None and not given:
        places.append(origin.parent / "shared" / "sigma")
    for place in places:
        if (place / "rules").is_dir():
            return place
    pytest.skip(f"the SigmaHQ reference rules are not at {', '.join(map(str, places))}")
