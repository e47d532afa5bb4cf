"""The rows of ``benchmarks/RESULTS.md`` that a chapter quotes.

Chapters time nothing themselves (one run on a shared machine is noisy); they print the
rows that ``make bench`` recorded, so that every speed they mention comes from that file.
"""

from __future__ import annotations

import pathlib
import re
import textwrap

#: Where RESULTS.md sits in the repository, relative to its root.
RESULTS_PATH = pathlib.Path("benchmarks", "RESULTS.md")


def find_results(start=None):
    """``benchmarks/RESULTS.md`` in ``start`` (default: the working directory) or the
    nearest parent directory that has one; None outside the repository."""
    here = pathlib.Path.cwd() if start is None else pathlib.Path(start)
    for folder in (here, *here.resolve().parents):
        if (folder / RESULTS_PATH).is_file():
            return folder / RESULTS_PATH
    return None


def result_rows(text):
    """The measurements of a RESULTS.md table, one dict per row.

    Parameters
    ----------
    text : str
        The file's text; its results table has the columns case, measured time,
        baseline time, ratio and target (more columns are ignored).

    Returns
    -------
    list of dict
        Keys ``case``, ``measured``, ``baseline``, ``ratio``, ``target``: the cells'
        text, as written.

    Examples
    --------
    >>> table = '''| case | measured ms | baseline ms | ratio | target |
    ... | --- | ---: | ---: | ---: | --- |
    ... | relu (8,) | fancydl 1.00 (1.10) | torch 0.50 (0.52) | 2.00× | ≤ 3× (met) |'''
    >>> result_rows(table)[0]["ratio"]
    '2.00×'
    """
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) < 5 or cells[0] == "case" \
                or set(cells[1]) <= set("-: "):
            continue
        rows.append(dict(zip(("case", "measured", "baseline", "ratio", "target"), cells)))
    return rows


def benchmark_rows(*prefixes, results=None):
    """Print the recorded rows whose case name starts with one of ``prefixes``.

    Parameters
    ----------
    *prefixes : str
        Beginnings of case names, in the order to print them.
    results : path, optional
        The RESULTS.md file (default: :func:`find_results`).

    Each row prints as its case name, then the measured side's and the baseline's best
    times over the repeats, their ratio and the target.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder, "RESULTS.md")
    ...     _ = path.write_text("| case | measured ms | baseline ms | ratio | target |\\n"
    ...                         "| relu (8,) | fancydl 1.00 (1.10) | torch 0.50 (0.52) | "
    ...                         "2.00× | ≤ 3× (met) |\\n", encoding="utf-8")
    ...     benchmark_rows("relu", "gelu", results=path)
    relu (8,)
      fancydl 1.00 ms, torch 0.50 ms: ratio 2.00×; target ≤ 3× (met)
    gelu: no such row in benchmarks/RESULTS.md
    """
    path = find_results() if results is None else pathlib.Path(results)
    if path is None or not path.is_file():
        print("benchmarks/RESULTS.md is in the book's repository (not installed with "
              "fancydl)")
        return
    rows = result_rows(path.read_text(encoding="utf-8"))
    for prefix in prefixes:
        found = [row for row in rows if row["case"].startswith(prefix)]
        if not found:
            print(f"{prefix}: no such row in {RESULTS_PATH.as_posix()}")
        for row in found:
            print(textwrap.fill(row["case"], 79))
            print(f"  {_best(row['measured'])} ms, {_best(row['baseline'])} ms: "
                  f"ratio {row['ratio']}; target {row['target']}")


def _best(cell):
    """``"torch 2.17 (2.19)"`` (name, best and median) -> ``"torch 2.17"``."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", cell)
