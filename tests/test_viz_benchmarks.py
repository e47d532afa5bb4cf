"""fancydl.viz.benchmarks: the RESULTS.md rows the chapters quote exist and print."""

import ast
import json
import pathlib

from fancydl.viz.benchmarks import benchmark_rows, find_results, result_rows

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _quoted_prefixes():
    """Every string passed to benchmark_rows(...) in a chapter's code cells."""
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            if cell["cell_type"] != "code" or "benchmark_rows(" not in "".join(cell["source"]):
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == \
                        "benchmark_rows":
                    for arg in node.args:
                        yield notebook.name, arg.value


def test_every_quoted_row_is_recorded():
    rows = result_rows((ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8"))
    quoted = list(_quoted_prefixes())
    assert len(quoted) >= 10  # six chapters quote rows
    for notebook, prefix in quoted:
        assert any(row["case"].startswith(prefix) for row in rows), (notebook, prefix)


def test_rows_name_both_sides_and_the_target():
    rows = result_rows((ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8"))
    assert rows
    for row in rows:
        assert row["measured"].split()[0] in ("fancydl", "torch", "NumPy"), row
        assert row["ratio"].endswith("×") and row["target"], row


def test_find_results_from_the_book_folder():
    assert find_results(ROOT / "book") == ROOT / "benchmarks" / "RESULTS.md"


def test_outside_the_repository_says_where_the_file_is(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    benchmark_rows("conv2d")
    assert "in the book's repository" in capsys.readouterr().out
