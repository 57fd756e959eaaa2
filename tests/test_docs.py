"""The guide: the README leads in at most ~200 lines and every page it points to exists; `make docs` builds the
site from docs/ with mkdocs in strict mode, so a broken link or anchor fails (shown by breaking one)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).parent / "mkdocs"


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [str(MKDOCS), "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=root)


def test_the_readme_is_a_short_guide_whose_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.split("\n```sh\n", 1)[1].startswith("make demo ")  # the two commands come first
    linked = re.findall(r"\]\((docs/[^)#]+)\)", readme)
    assert len(linked) >= 10
    assert [link for link in linked if not (ROOT / link).is_file()] == []


def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    assert (tmp_path / "site" / "detectors" / "index.html").read_text().count('id="root-usage"') == 1


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    page = copy / "docs" / "lake.md"
    page.write_text(page.read_text() + "\nSee [the schema](detection.md#no-such-section).\n")
    done = build(copy, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-section" in done.stderr
