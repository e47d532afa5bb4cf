"""The book's frame: table of contents, notebooks stored executed, the Colab setup cell."""

import json
import pathlib
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
    counts = [c["execution_count"] for c in nb["cells"]
              if c["cell_type"] == "code" and "".join(c["source"]).strip()]
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


def test_repository_url_is_set_only_in_config():
    url = repository_url()
    places = [p for p in ROOT.rglob("*") if p.is_file() and p.suffix in
              {".py", ".md", ".yml", ".toml", ".cfg", ".txt"}
              and not {".venv", "_build", ".git"} & set(p.relative_to(ROOT).parts)
              and url in p.read_text(encoding="utf-8", errors="ignore")]
    assert [p.relative_to(ROOT).as_posix() for p in places] == ["_config.yml"]


def test_requirements_pin_every_package_exactly():
    lines = [line.strip() for line in
             (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert "-e ." in lines
    pins = [line for line in lines if line != "-e ."]
    assert all("==" in line for line in pins), [p for p in pins if "==" not in p]
    assert "torch==2.13.0" in pins
    assert any(p.startswith("jupyter-book==1.") for p in pins)
