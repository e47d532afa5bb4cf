"""conv2d / conv_transpose2d against PyTorch, float32, each side in a fresh process.

Targets (issue 3 and issue 4): dense 3×3 forward <= 2.5x, forward+backward <= 4x,
7×7 stride-2 stem <= 2.5x, transposed 4×4 stride 2 <= 3x, depthwise 3×3 <= 5x;
(issue 11) transposed 4×4 stride 2 forward+backward (16,64,16,16) -> 32 channels <= 2x.
Peak memory of the dense and the stem forward is printed by
``python benchmarks/bench_conv.py``; ``python benchmarks/bench_conv.py --large`` measures
the peak resident memory (a fresh process each) of fancydl's and PyTorch's forward on
one large image, (1, 3, 2048, 2048) * (64, 3, 7, 7) (issue 11: within 1.5x PyTorch's).
"""

from harness import Case


def _data(x_shape, w_shape):
    return f"""
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal({x_shape}).astype(np.float32)
w = (0.1 * rng.standard_normal({w_shape})).astype(np.float32)
"""


_FANCYDL = """
import fancydl
"""

_TORCH = """
import torch
torch.set_grad_enabled(False)
tx, tw = torch.tensor(x), torch.tensor(w)
"""

_FANCYDL_TRAIN = """
import fancydl
g = rng.standard_normal(fancydl.conv2d(x, w, padding={padding}).shape).astype(np.float32)
def step():
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, padding={padding}), x, w)
    return pullback(g)
"""

_TORCH_TRAIN = """
import torch
tx = torch.tensor(x, requires_grad=True)
tw = torch.tensor(w, requires_grad=True)
tg = torch.tensor(rng.standard_normal(
    torch.nn.functional.conv2d(tx, tw, padding={padding}).shape).astype(np.float32))
def step():
    tx.grad = tw.grad = None
    torch.nn.functional.conv2d(tx, tw, padding={padding}).backward(tg)
"""


def _forward_case(name, target, x_shape, w_shape, call):
    data = _data(x_shape, w_shape)
    return Case(name=name, target=target,
                fancydl_setup=data + _FANCYDL, fancydl_stmt=f"fancydl.{call.format(x='x', w='w')}",
                torch_setup=data + _TORCH,
                torch_stmt=f"torch.nn.functional.{call.format(x='tx', w='tw')}")


DENSE = ((32, 64, 32, 32), (64, 64, 3, 3))

_TRANSPOSED_TRAIN = """
g = rng.standard_normal((16, 32, 32, 32)).astype(np.float32)
"""

_FANCYDL_TRANSPOSED_STEP = """
import fancydl
def step():
    out, pullback = fancydl.vjp(
        lambda x, w: fancydl.conv_transpose2d(x, w, stride=2, padding=1), x, w)
    return pullback(g)
"""

_TORCH_TRANSPOSED_STEP = """
import torch
tx = torch.tensor(x, requires_grad=True)
tw = torch.tensor(w, requires_grad=True)
tg = torch.tensor(g)
def step():
    out = torch.nn.functional.conv_transpose2d(tx, tw, stride=2, padding=1)
    return torch.autograd.grad(out, (tx, tw), tg)
"""

CASES = [
    _forward_case("conv2d fwd x(32,64,32,32) w(64,64,3,3) p1", 2.5, *DENSE,
                  "conv2d({x}, {w}, padding=1)"),
    Case(name="conv2d fwd+bwd x(32,64,32,32) w(64,64,3,3) p1", target=4.0,
         fancydl_setup=_data(*DENSE) + _FANCYDL_TRAIN.format(padding=1),
         fancydl_stmt="step()",
         torch_setup=_data(*DENSE) + _TORCH_TRAIN.format(padding=1),
         torch_stmt="step()"),
    _forward_case("conv2d 7x7/2 stem x(8,3,224,224) w(64,3,7,7) p3", 2.5,
                  (8, 3, 224, 224), (64, 3, 7, 7), "conv2d({x}, {w}, stride=2, padding=3)"),
    _forward_case("conv_transpose2d x(16,64,16,16) w(64,64,4,4) s2 p1", 3.0,
                  (16, 64, 16, 16), (64, 64, 4, 4),
                  "conv_transpose2d({x}, {w}, stride=2, padding=1)"),
    _forward_case("depthwise conv2d x(32,128,32,32) w(128,1,3,3) p1", 5.0,
                  (32, 128, 32, 32), (128, 1, 3, 3), "conv2d({x}, {w}, padding=1, groups=128)"),
    Case(name="conv_transpose2d fwd+bwd x(16,64,16,16) w(64,32,4,4) s2 p1", target=2.0,
         fancydl_setup=_data((16, 64, 16, 16), (64, 32, 4, 4)) + _TRANSPOSED_TRAIN
         + _FANCYDL_TRANSPOSED_STEP,
         fancydl_stmt="step()",
         torch_setup=_data((16, 64, 16, 16), (64, 32, 4, 4)) + _TRANSPOSED_TRAIN
         + _TORCH_TRANSPOSED_STEP,
         torch_stmt="step()"),
]


def peak_forward_memory(x_shape, w_shape, **kwargs):
    """Peak bytes allocated by NumPy during one fancydl.conv2d forward (tracemalloc)."""
    import tracemalloc

    import numpy as np

    import fancydl
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    tracemalloc.start()
    out = fancydl.conv2d(x, w, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, x.nbytes, out.nbytes


_LARGE = """
import resource, sys
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 3, 2048, 2048)).astype(np.float32)
w = rng.standard_normal((64, 3, 7, 7)).astype(np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
{call}
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before * 1024, after * 1024)
"""


def peak_rss_large():
    """Peak resident bytes (before the call, after it) of a fresh process running one
    forward on (1, 3, 2048, 2048) * (64, 3, 7, 7), padding 3, for fancydl and torch."""
    import subprocess
    import sys
    calls = {"fancydl": "import fancydl\nout = fancydl.conv2d(x, w, padding=3)",
             "torch": "import torch\ntorch.set_grad_enabled(False)\n"
                      "out = torch.nn.functional.conv2d(torch.from_numpy(x), "
                      "torch.from_numpy(w), padding=3)"}
    result = {}
    for side, call in calls.items():
        done = subprocess.run([sys.executable, "-c", _LARGE.format(call=call)],
                              capture_output=True, text=True, check=True)
        result[side] = tuple(int(v) for v in done.stdout.split())
    return result


if __name__ == "__main__":
    import sys

    import fancydl.windows
    mib = 2.0**20
    if "--large" in sys.argv:
        for side, (before, after) in peak_rss_large().items():
            print(f"{side}: peak RSS {after / mib:.0f} MiB ({before / mib:.0f} MiB before "
                  f"the call)")
        sys.exit()
    print(f"workspace budget: {fancydl.windows.WORKSPACE_BYTES / mib:.0f} MiB")
    for name, shapes, kwargs in [("dense 3x3 (shifted GEMMs)", DENSE, dict(padding=1)),
                                 ("7x7/2 stem (im2col, chunked)",
                                  ((8, 3, 224, 224), (64, 3, 7, 7)),
                                  dict(stride=2, padding=3))]:
        peak, x_bytes, out_bytes = peak_forward_memory(*shapes, **kwargs)
        print(f"{name}: peak {peak / mib:.1f} MiB (input {x_bytes / mib:.1f} MiB, output "
              f"{out_bytes / mib:.1f} MiB)")
