"""Time fancydl against PyTorch, each side in a fresh Python process.

A benchmark module ``benchmarks/bench_<topic>.py`` defines ``CASES``, a list of
:class:`Case`. For each case, each side runs in its own subprocess (in one process,
PyTorch's CPU kernels were measured up to 17x slower right after heavy NumPy work):
the setup code runs once, then the statement is timed with ``timeit`` and the best
of several repeats is kept. The ratio is fancydl's time over PyTorch's.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

_TIMER = textwrap.dedent("""
    import json, timeit
    {setup}
    timer = timeit.Timer({stmt!r}, globals=globals())
    number, _ = timer.autorange()
    number = max(1, number // 4)
    best = min(timer.repeat(repeat={repeat}, number=number)) / number
    print(json.dumps(best))
""")


@dataclasses.dataclass
class Case:
    """One measurement: the same work in fancydl and in PyTorch.

    Attributes
    ----------
    name : str
        What is measured, with its shapes.
    target : float or None
        The largest acceptable ratio fancydl / PyTorch (None: reported only).
    fancydl_setup, fancydl_stmt : str
        Code run once, and the timed statement, on the fancydl side.
    torch_setup, torch_stmt : str
        The same on the PyTorch side.
    baseline : str
        What the other side is (e.g. "torch" or "scikit-image").
    """

    name: str
    target: float | None
    fancydl_setup: str
    fancydl_stmt: str
    torch_setup: str
    torch_stmt: str
    baseline: str = "torch"


def time_fresh(setup, stmt, repeat=5):
    """Best time per call of ``stmt`` (seconds), in a fresh interpreter."""
    code = _TIMER.format(setup=textwrap.dedent(setup), stmt=stmt, repeat=repeat)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(case, repeat=5):
    """Time both sides of ``case``; returns a dict with the times and the ratio."""
    ours = time_fresh(case.fancydl_setup, case.fancydl_stmt, repeat)
    theirs = time_fresh(case.torch_setup, case.torch_stmt, repeat)
    ratio = ours / theirs
    met = None if case.target is None else ratio <= case.target
    return {"name": case.name, "fancydl_ms": ours * 1e3, "baseline_ms": theirs * 1e3,
            "baseline": case.baseline, "ratio": ratio, "target": case.target, "met": met}
