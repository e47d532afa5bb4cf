"""Re-execute chapter notebooks in place: the one way their stored outputs change.

For each notebook: (1) write the Colab setup cell (the first cell, tagged
``remove-cell`` so the book hides it) from the repository URL in ``_config.yml``, the
one place that URL is set; (2) execute top to bottom in a fresh kernel, storing outputs but
not ipywidgets state: live widgets only work with a kernel, so the book shows
``fancydl.viz.explore`` instead and loads no widget manager; (3) report the
time, and fail if it exceeds the book's 60 s budget.

Usage: ``python tools/notebooks.py book/softmax.ipynb [...]`` (``make notebooks``).
"""

from __future__ import annotations

import pathlib
import sys
import time

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUDGET_SECONDS = 60
SETUP_TAG = "colab-setup"


def repository_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"]


def setup_cell_source(url=None):
    """The first cell of every chapter: installs fancydl on Colab, a no-op elsewhere."""
    url = url or repository_url()
    return (
        "# Colab setup: install fancydl when it is not importable (a no-op locally and\n"
        "# under nbval). Colab's own numpy, torch and ipywidgets are left as they are.\n"
        "import importlib.util\n"
        "\n"
        f'REPOSITORY = "git+{url}"\n'
        'if importlib.util.find_spec("fancydl") is None:\n'
        '    get_ipython().run_line_magic("pip", f"install --quiet {REPOSITORY}")'
    )


def with_setup_cell(nb):
    """Return ``nb`` whose first cell is the current setup cell."""
    cell = nbformat.v4.new_code_cell(setup_cell_source())
    cell.metadata["tags"] = ["remove-cell", SETUP_TAG]
    first = nb.cells[0] if nb.cells else None
    if first is not None and SETUP_TAG in first.get("metadata", {}).get("tags", []):
        nb.cells[0] = cell
    else:
        nb.cells.insert(0, cell)
    return nb


def execute(path):
    nb = with_setup_cell(nbformat.read(path, as_version=4))
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            # True, then dropped: with False nbclient 0.x fails on
                            # an ipywidgets Output (KeyError in output_widget.py).
                            store_widget_state=True)
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return seconds


def main(paths):
    slow = []
    for name in paths:
        seconds = execute(pathlib.Path(name))
        print(f"{name}: executed in {seconds:.1f} s")
        if seconds > BUDGET_SECONDS:
            slow.append(name)
    if slow:
        sys.exit(f"over the {BUDGET_SECONDS} s budget: {', '.join(slow)}")


if __name__ == "__main__":
    main(sys.argv[1:])
