"""The book's frame: table of contents, notebooks stored executed, the Colab setup cell."""

import json
import pathlib
import re
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from notebooks import repository_url, setup_cell_source  # noqa: E402

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    listed = _toc_files()
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry
    for notebook in NOTEBOOKS:
        assert f"book/{notebook.stem}" in listed, f"{notebook.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_in_order_without_errors_or_stderr(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    # A cell tagged skip-execution (a live widget kept for Colab and Binder, hidden
    # from the book) is never run by make notebooks; every other cell must be.
    counts = [c["execution_count"] for c in nb["cells"]
              if c["cell_type"] == "code" and "".join(c["source"]).strip()
              and "skip-execution" not in c["metadata"].get("tags", [])]
    assert None not in counts, "code cells without stored outputs: run make notebooks"
    assert counts == sorted(counts), "cells were executed out of order"
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", "".join(cell["source"])[:200]
            assert output.get("name") != "stderr", output.get("text")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_is_the_current_colab_setup_cell(path):
    first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
    assert "".join(first["source"]) == setup_cell_source(), "run make notebooks"
    assert "remove-cell" in first["metadata"]["tags"]


def test_repository_url_agrees_everywhere():
    """The URL is set in _config.yml; README badges and CITATION.cff, which GitHub
    renders without a build, repeat it: every GitHub repository URL must be that one."""
    url = repository_url()
    owner_repo = url.removeprefix("https://github.com/")
    pattern = re.compile(r"github(?:\.com|\.io)/([\w.-]+/[\w.-]+)|"
                         r"([\w.-]+)\.github\.io/([\w.-]+)")
    seen = {}
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if (not path.is_file() or {".venv", "_build", ".git"} & parts
                or path.suffix not in {".py", ".md", ".yml", ".toml", ".cff"}):
            continue
        for match in pattern.finditer(path.read_text(encoding="utf-8", errors="ignore")):
            found = match.group(1) or f"{match.group(2)}/{match.group(3)}"
            seen.setdefault(found, set()).add(path.relative_to(ROOT).as_posix())
    ours = {k: v for k, v in seen.items() if k.split("/")[0] == owner_repo.split("/")[0]}
    assert set(ours) <= {owner_repo}, ours
    assert "_config.yml" in ours.get(owner_repo, set())


def test_requirements_pin_every_package_exactly():
    lines = [line.strip() for line in
             (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert "-e ." in lines
    pins = [line for line in lines if line != "-e ."]
    assert all("==" in line for line in pins), [p for p in pins if "==" not in p]
    assert "torch==2.13.0" in pins
    assert any(p.startswith("jupyter-book==1.") for p in pins)


#: Longest code line that fits the book's column at 1280 px without scrolling.
MAX_CODE_LINE = 79


def _code_cells(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cell_lines_fit_the_column(path):
    """Cells whose input the page hides (the Colab setup cell) are exempt."""
    long = [(i, len(line), line) for i, cell in enumerate(_code_cells(path))
            if not {"remove-cell", "remove-input"} & set(cell["metadata"].get("tags", []))
            for line in "".join(cell["source"]).splitlines()
            if len(line) > MAX_CODE_LINE]
    assert not long, (f"{len(long)} code lines over {MAX_CODE_LINE} characters "
                      f"(code cell, length, line): {long[:5]}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_test_markers_are_cell_tags_not_comments(path):
    marked = [i for i, cell in enumerate(_code_cells(path))
              if "NBVAL_" in "".join(cell["source"]).upper()]
    assert not marked, f"code cells {marked} carry an NBVAL comment: use cell tags"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_and_alt_text(path):
    missing = []
    for i, cell in enumerate(_code_cells(path)):
        images = [o for o in cell.get("outputs", [])
                  if any(k.startswith("image/") for k in o.get("data", {}))]
        if not images:
            continue
        mystnb = cell["metadata"].get("mystnb", {})
        caption = mystnb.get("figure", {}).get("caption", "").strip()
        alt = mystnb.get("image", {}).get("alt", "").strip()
        if not (caption and alt):
            missing.append((i, "".join(cell["source"])[:60]))
    assert not missing, ("image cells without mystnb figure caption and image alt "
                         f"(code cell, start): {missing}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_live_widget_is_shown_in_the_page(path):
    """A widget is inert in the static book: replace it there by fancydl.viz.explore."""
    hidden = {"remove-cell", "remove-output", "remove_cell", "remove_output"}
    shown = [i for i, cell in enumerate(_code_cells(path))
             if not hidden & set(cell["metadata"].get("tags", []))
             and any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                     for o in cell.get("outputs", []))]
    assert not shown, f"code cells {shown} show a live widget in the static page"
