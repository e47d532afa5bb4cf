"""Run every benchmark (or those whose module name contains an argument) and report.

Usage: ``python benchmarks/run.py [--repeat N] [conv pool ...]`` (``make bench``).
Prints the environment, then one line per case with its ratio, its target and whether
it is met, and a summary. A full run (no module named) writes the same to
``benchmarks/RESULTS.md``. On a loaded machine, more repeats (``--repeat 15``) give a
best time closer to the quiet one; the medians show how noisy the run was.
"""

from __future__ import annotations

import datetime
import importlib
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import (PROCESSES, WARMUP_SECONDS, describe, environment,  # noqa: E402
                     measure)

VERDICT = {True: "met", False: "MISSED", None: "no target"}


def _target(result):
    return "-" if result["target"] is None else f"<= {result['target']:g}x"


def _print_line(r):
    print(f"{r['name']:<62} {r['subject']} {r['fancydl_ms']:9.2f} ms "
          f"(median {r['fancydl_median_ms']:9.2f})  "
          f"{r['baseline']} {r['baseline_ms']:9.2f} ms "
          f"(median {r['baseline_median_ms']:9.2f})  ratio {r['ratio']:5.2f}  "
          f"target {_target(r):>8}  {VERDICT[r['met']]}", flush=True)


def _table(rows):
    lines = ["| case | measured ms: best (median) | baseline ms: best (median) | ratio | "
             "target | peak MiB measured / baseline |",
             "| --- | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        target = "-" if r["target"] is None else f"≤ {r['target']:g}× ({VERDICT[r['met']]})"
        lines.append(f"| {r['name']} | {r['subject']} {r['fancydl_ms']:.2f} "
                     f"({r['fancydl_median_ms']:.2f}) | {r['baseline']} "
                     f"{r['baseline_ms']:.2f} ({r['baseline_median_ms']:.2f})"
                     f" | {r['ratio']:.2f}× | {target} | "
                     f"{r['fancydl_peak_mb']:.0f} / {r['baseline_peak_mb']:.0f} |")
    return lines


def main(filters, repeat=5):
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [m for m in modules if not filters or any(f in m for f in filters)]
    info = environment()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = describe(info)
    print("\n".join(header), flush=True)
    rows = []
    for name in chosen:
        for case in importlib.import_module(name).CASES:
            rows.append(measure(case, repeat))
            _print_line(rows[-1])
    targeted = [r for r in rows if r["met"] is not None]
    missed = [r["name"] for r in targeted if not r["met"]]
    summary = ("no case with a target" if not targeted else
               f"{len(targeted) - len(missed)} of {len(targeted)} targets met"
               + (f"; missed: {', '.join(missed)}" if missed else ""))
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg()) \
        if hasattr(os, "getloadavg") else "unknown"
    print(summary)
    lines = ["# Benchmark results", "",
             f"Run {started} by `make bench` (`benchmarks/run.py`). Each side is timed in "
             f"{PROCESSES} fresh processes, each after {WARMUP_SECONDS:g} s of untimed "
             f"calls: best and median of their {repeat} repeats of `timeit` each; the "
             "ratio is the measured side's "
             "best (fancydl's, unless the cell names another) over the baseline's best. "
             "Peak memory is each process's maximum resident set, setup (the input arrays) "
             "included.", "",
             "## Environment", "", *header,
             f"- Load average (1, 5, 15 min) when the run ended: {load_end}", "",
             "## Results", "", *_table(rows), "", summary + "."]
    if not filters:
        (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    repeats = 5
    if arguments[:1] == ["--repeat"]:
        repeats, arguments = int(arguments[1]), arguments[2:]
    main(arguments, repeats)
