"""Render the README's notebook images: run each notebook on a demo directory (built by
`trailguard demo --dir DIR`) with papermill and save its first figure as docs/notebooks/<name>.png.

Usage: python docs/notebooks/screenshots.py DEMO_DIR   (what `make screenshots` runs)
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

OUT = Path(__file__).resolve().parent
HERE = OUT.parents[1] / "monitor" / "investigate" / "notebooks"
# the demo's stolen key is the principal worth showing; the other notebooks take their defaults
PARAMETERS = {"principal": {"principal": "arn:aws:iam::222222222222:user/jackson"}}
FIGURE = {"root_and_credentials": 1}  # the keys' lifecycle tells more than root's one burst


def figures(notebook: Path) -> list[bytes]:
    book = nbformat.read(notebook, as_version=4)
    return [
        base64.b64decode(output["data"]["image/png"])
        for cell in book.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]


def main(demo: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    where = {"lake": str((demo / "lake").resolve()), "state": str((demo / "state.db").resolve())}
    with tempfile.TemporaryDirectory() as scratch:
        for notebook in sorted(HERE.glob("*.ipynb")):
            executed = Path(scratch) / notebook.name
            parameters = {k: v for k, v in where.items() if k != "state" or notebook.stem != "root_and_credentials"}
            papermill.execute_notebook(
                notebook, executed, parameters | PARAMETERS.get(notebook.stem, {}), kernel_name="python3", cwd=HERE
            )
            (OUT / f"{notebook.stem}.png").write_bytes(figures(executed)[FIGURE.get(notebook.stem, 0)])
            print(f"{OUT / notebook.stem}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
