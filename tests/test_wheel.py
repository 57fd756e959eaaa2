"""The wheel a user installs, used as a user would: built here, installed alone in a fresh virtual environment
(its dependencies taken from this one, with no network), then the demo and the service on generated data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_NOT_SOURCE = (".git", ".venv", "build", "dist", "site", ".demo*", "out", "*.egg-info", "__pycache__", ".*_cache")


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh environment holding only the wheel (and a path to this one's dependencies)."""
    root = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools builds inside the source tree, and another test process may be building too
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist", source, cwd=root
    )
    [wheel] = (root / "dist").glob("trailguard-*.whl")
    venv.create(root / "env", with_pip=False)
    env_python = root / "env" / "bin" / "python"
    site = run(env_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # a path, not a site dir
    run(sys.executable, "-m", "pip", "--python", env_python, "install", "--no-deps", "--no-index", wheel, cwd=root)
    where = run(env_python, "-c", "import monitor, detectors; print(monitor.__file__, detectors.__file__)", cwd=root)
    assert str(ROOT) not in where.stdout  # the wheel's code, not this checkout's
    assert Path(site, "detectors", "py.typed").is_file()
    return root / "env" / "bin"


def test_the_wheel_runs_the_demo_and_its_hints(installed: Path, tmp_path: Path) -> None:
    demo = run(installed / "trailguard", "demo", "--dir", tmp_path / "demo", cwd=tmp_path).stdout
    assert "root-usage" in demo
    state = re.search(r"\(trailguard findings list --state (\S+)\)", demo)
    assert state is not None
    listed = run(installed / "trailguard", "findings", "list", "--state", state[1], cwd=tmp_path).stdout
    shown = re.search(r"^(\d+) findings$", demo, re.MULTILINE)
    assert shown is not None
    assert len(listed.splitlines()) == int(shown[1]) >= 7
    told = re.search(r"^(\d+) incidents, .*\((trailguard incidents list .*)\)$", demo, re.MULTILINE)
    assert told is not None
    incidents = run(installed / "trailguard", *told[2].split()[1:], cwd=tmp_path).stdout.splitlines()
    assert len(incidents) == int(told[1]) + 1 < int(shown[1])  # a header, then fewer incidents than findings
    views = re.search(r"duckdb -init (\S+),", demo)
    assert views is not None
    query = "import duckdb, sys; c = duckdb.connect(); c.execute(open(sys.argv[1]).read()); "
    query += "print(c.execute('SELECT count(*) FROM trailguard_events').fetchone()[0])"
    assert int(run(installed / "python", "-c", query, views[1], cwd=tmp_path).stdout) > 10_000
    notebooks = re.search(r"Investigate in Jupyter: (trailguard notebooks .*)$", demo, re.MULTILINE)
    assert notebooks is not None
    written = run(installed / notebooks[1].split()[0], *notebooks[1].split()[1:], "--no-start", cwd=tmp_path)
    shipped = sorted(p.name for p in (ROOT / "monitor" / "investigate" / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in (tmp_path / "notebooks").glob("*.ipynb")) == shipped
    assert "address.ipynb" in shipped
    assert f"{len(shipped)} notebooks" in written.stderr
    command = [installed / "trailguard", "notebooks"]
    without = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert (without.returncode, without.stderr.splitlines()[-1]) == (
        2,
        "error: Jupyter Lab is not installed: pip install 'trailguard[notebooks]' (or make notebooks)",
    )


def test_the_wheel_runs_the_service_on_generated_activity(installed: Path, tmp_path: Path) -> None:
    run(installed / "trailguard", "generate", tmp_path / "trail", "--events", "2000", cwd=tmp_path)
    config = tmp_path / "laptop.toml"
    config.write_text(
        f"sources = [{json.dumps(str(tmp_path / 'trail'))}]\n"
        f"lake.uri = {json.dumps(str(tmp_path / 'lake'))}\nstate.path = {json.dumps(str(tmp_path / 'state.db'))}\n"
        "[schedule]\nworkers = 1\n"
    )
    run(installed / "trailguard", "run", "--once", "--config", config, cwd=tmp_path)
    listed = run(installed / "trailguard", "findings", "list", "--config", config, cwd=tmp_path).stdout
    detectors = {json.loads(line)["detector"] for line in listed.splitlines()}
    assert {"root-usage", "access-key-created", "console-login-without-mfa"} <= detectors
