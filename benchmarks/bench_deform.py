"""deform_conv2d against PyTorch, float32, each side in a fresh process.

Shapes (issue 5): x (4, 32, 24, 24), weight (32, 32, 3, 3), padding 1, random offsets
and a mask. Two baselines:

* the real target: at most 3x the time of the same operator composed in PyTorch from
  ``grid_sample`` (fancydl's registered cross-check reference), forward and
  forward+backward (gradients of input, offset, weight, bias and mask);
* reported only: PyTorch's plain ``conv2d`` on the same shapes, the price of
  deformability.

``python benchmarks/bench_deform.py`` prints the peak memory (tracemalloc) of one
forward and one forward+backward at this size.
"""

from harness import Case

_DATA = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 32, 24, 24)).astype(np.float32)
w = (0.1 * rng.standard_normal((32, 32, 3, 3))).astype(np.float32)
b = rng.standard_normal(32).astype(np.float32)
offset = (2 * rng.standard_normal((4, 18, 24, 24))).astype(np.float32)
mask = rng.uniform(0, 1, (4, 9, 24, 24)).astype(np.float32)
g = rng.standard_normal((4, 32, 24, 24)).astype(np.float32)
"""

_FANCYDL = _DATA + """
import fancydl
def forward():
    return fancydl.deform_conv2d(x, offset, w, b, padding=1, mask=mask)
def train_step():
    out, pullback = fancydl.vjp(fancydl.deform_conv2d, x, offset, w, b, 1, 1, 1, mask)
    return pullback(g)
"""

_GRID_SAMPLE = _DATA + """
import torch
from fancydl.references import _deform_conv2d_torch as reference
tx, to, tw, tb, tm = (torch.tensor(a, requires_grad=True) for a in (x, offset, w, b, mask))
tg = torch.tensor(g)
def forward():
    with torch.no_grad():
        return reference(torch, tx, to, tw, tb, padding=1, mask=tm)
def train_step():
    for t in (tx, to, tw, tb, tm):
        t.grad = None
    reference(torch, tx, to, tw, tb, padding=1, mask=tm).backward(tg)
"""

_CONV2D = _DATA + """
import torch
tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
tg = torch.tensor(g)
def forward():
    with torch.no_grad():
        return torch.nn.functional.conv2d(tx, tw, tb, padding=1)
def train_step():
    for t in (tx, tw, tb):
        t.grad = None
    torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(tg)
"""

_SHAPES = "x (4,32,24,24) w (32,32,3,3) p1"

CASES = [
    Case(name=f"deform_conv2d fwd {_SHAPES} vs grid_sample", target=3.0,
         fancydl_setup=_FANCYDL, fancydl_stmt="forward()",
         torch_setup=_GRID_SAMPLE, torch_stmt="forward()", baseline="torch grid_sample"),
    Case(name=f"deform_conv2d fwd+bwd {_SHAPES} vs grid_sample", target=3.0,
         fancydl_setup=_FANCYDL, fancydl_stmt="train_step()",
         torch_setup=_GRID_SAMPLE, torch_stmt="train_step()", baseline="torch grid_sample"),
    Case(name=f"deform_conv2d fwd {_SHAPES} vs conv2d", target=None,
         fancydl_setup=_FANCYDL, fancydl_stmt="forward()",
         torch_setup=_CONV2D, torch_stmt="forward()", baseline="torch conv2d"),
    Case(name=f"deform_conv2d fwd+bwd {_SHAPES} vs conv2d", target=None,
         fancydl_setup=_FANCYDL, fancydl_stmt="train_step()",
         torch_setup=_CONV2D, torch_stmt="train_step()", baseline="torch conv2d"),
]


def peak_memory():
    """Peak traced allocation (MiB) of one forward and one forward+backward."""
    import tracemalloc

    namespace = {}
    exec(_FANCYDL, namespace)
    peaks = {}
    for name in ("forward", "train_step"):
        namespace[name]()  # warm up imports and caches outside the measurement
        tracemalloc.start()
        namespace[name]()
        peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return peaks


_CPU_TIMER = """
import os, time
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"
{setup}
try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    pass
{stmt}
best = float("inf")
for _ in range(7):
    start = time.process_time()
    for _ in range(5):
        {stmt}
    best = min(best, (time.process_time() - start) / 5)
print(best)
"""


def cpu_time(setup, stmt):
    """Best CPU time per call (s) of ``stmt``, one thread, in a fresh interpreter.

    On a shared machine, wall-clock times swing by 10x with the load of other
    processes; single-threaded CPU time is the stable comparison of the work done.
    """
    import subprocess
    import sys

    code = _CPU_TIMER.format(setup=setup, stmt=stmt)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return float(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    for step, mib in peak_memory().items():
        print(f"deform_conv2d {step} {_SHAPES} float32: peak {mib:.1f} MiB (tracemalloc)")
    for case in CASES:
        ours = cpu_time(case.fancydl_setup, case.fancydl_stmt)
        theirs = cpu_time(case.torch_setup, case.torch_stmt)
        print(f"{case.name}: one-thread CPU time fancydl {ours * 1e3:.2f} ms, "
              f"{case.baseline} {theirs * 1e3:.2f} ms, ratio {ours / theirs:.2f}")
