"""Run every benchmark (or those whose module name contains an argument) and report.

Usage: ``python benchmarks/run.py [conv pool ...]`` (``make bench``). Prints a table
and writes it to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import importlib
import pathlib
import platform
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import measure  # noqa: E402


def main(filters):
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [m for m in modules if not filters or any(f in m for f in filters)]
    rows = []
    for name in chosen:
        for case in importlib.import_module(name).CASES:
            result = measure(case)
            rows.append(result)
            target = "-" if result["target"] is None else f"<= {result['target']:g}x"
            verdict = {True: "met", False: "MISSED", None: ""}[result["met"]]
            print(f"{result['name']:<60} fancydl {result['fancydl_ms']:9.2f} ms  "
                  f"{result['baseline']} {result['baseline_ms']:9.2f} ms  "
                  f"ratio {result['ratio']:5.2f}  target {target:>8} {verdict}", flush=True)
    lines = ["# Benchmark results", "",
             f"Machine: {platform.machine()}, {platform.python_version()}; each side timed "
             "in a fresh process (best of 5 repeats).", "",
             "| case | fancydl (ms) | baseline (ms) | ratio | target |",
             "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        target = "-" if r["target"] is None else f"≤ {r['target']:g}×"
        mark = {True: " (met)", False: " (missed)", None: ""}[r["met"]]
        lines.append(f"| {r['name']} | {r['fancydl_ms']:.2f} | {r['baseline']} "
                     f"{r['baseline_ms']:.2f} | {r['ratio']:.2f}× | {target}{mark} |")
    if not filters:
        (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
