"""The investigation notebooks: committed without outputs, and each one executed (papermill, a real
kernel) on a lake and state file built by the demo, answering with the demo's story."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from monitor.demo import run as demo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "monitor" / "investigate" / "notebooks").glob("*.ipynb"))
JACKSON = "arn:aws:iam::222222222222:user/jackson"
# what each notebook must show on the demo, with the parameters it is run with
EXPECTED = {
    "triage": (
        {},
        [
            "root-usage",
            "ConsoleLogin",
            "ListUsers",
            "CreateAccessKey",
            "203.0.113.66",
            "6 findings",  # the incident: root and jackson's stolen key, through the shared address
            "jackson (IAM user in 222222222222)",
            "Conclusion",
        ],
    ),
    "principal": (
        {"principal": JACKSON},
        [
            "AKIAJACKSONNEWKEY001",
            "issued by CreateAccessKey",
            "user/jack ",
            "Client.UnauthorizedOperation",
            "StopLogging",
        ],
    ),
    "address": (
        {},
        ["203.0.113.66", "arn:aws:iam::111111111111:root", JACKSON, "ConsoleLogin", "StopLogging", "never appeared"],
    ),
    "cross_account": ({}, ["999988887777", "vendor-audit", "shared-services", "True"]),
    "root_and_credentials": ({}, ["AKIAROOTNEWKEY000001", "without MFA", "arn:aws:iam::111111111111:root"]),
}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    demo.run(root, 3000)
    return root


def test_every_notebook_is_committed_clean_with_a_parameters_cell() -> None:
    assert [p.stem for p in NOTEBOOKS] == sorted(EXPECTED)
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), f"{path.name}: outputs not stripped"
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, path.name
        assert "from monitor.investigate import plots, queries" in "".join(c.source for c in code), path.name


def test_the_docs_show_each_notebook() -> None:
    page = (ROOT / "docs" / "investigation.md").read_text()
    for path in NOTEBOOKS:
        assert (ROOT / "docs" / "notebooks" / f"{path.stem}.png").stat().st_size > 5000
        assert f"](notebooks/{path.stem}.png)" in page


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_demo_lake(path: Path, demo_dir: Path, tmp_path: Path) -> None:
    extra, wanted = EXPECTED[path.stem]
    parameters = {"lake": str(demo_dir / "lake"), **extra}
    if "state" in path.read_text():
        parameters["state"] = str(demo_dir / "state.db")
    executed = tmp_path / path.name
    papermill.execute_notebook(
        path, executed, parameters, kernel_name="python3", cwd=str(path.parent), progress_bar=False
    )
    outputs = [o for c in nbformat.read(executed, as_version=4).cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, "every notebook draws at least one figure"
    shown = "\n".join(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", "")) for o in outputs)
    shown += "\n".join(c.source for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "markdown")
    missing = [w for w in wanted if w not in shown]
    assert missing == []
