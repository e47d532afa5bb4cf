"""Pooling forward + backward, float32.

Targets: max_pool2d at (32, 64, 32, 32), kernel 3, stride 2, padding 1: <= 1.5x PyTorch.
avg_pool2d and roi_align are reported. torchvision cannot be installed here, so
roi_align's baseline is the usual pure-PyTorch formulation: ``grid_sample`` at the
sampling points, then a 2x2 average (same work, border rule slightly different).
"""

from harness import Case

_POOL_DATA = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
g = rng.standard_normal((32, 64, 16, 16)).astype(np.float32)
"""


def _pool_case(name, call, target):
    return Case(
        name=f"{name} fwd+bwd (32, 64, 32, 32) k3 s2 p1 float32",
        target=target,
        fancydl_setup=_POOL_DATA + f"""
import fancydl
def step():
    out, pullback = fancydl.vjp(lambda t: fancydl.{call}, x)
    return pullback(g)
""",
        fancydl_stmt="step()",
        torch_setup=_POOL_DATA + f"""
import torch
t = torch.tensor(x, requires_grad=True)
tg = torch.tensor(g)
def step():
    t.grad = None
    torch.nn.functional.{call}.backward(tg)
""",
        torch_stmt="step()",
    )


_ROI_DATA = """
import numpy as np
rng = np.random.default_rng(0)
n, c, h, w, k, size = 2, 256, 50, 50, 128, 7
x = rng.standard_normal((n, c, h, w)).astype(np.float32)
corner = rng.uniform(0, 40, (k, 2))
extent = rng.uniform(4, 20, (k, 2))
boxes = np.column_stack([rng.integers(0, n, k), corner, np.minimum(corner + extent, 49)]
                        ).astype(np.float32)
g = rng.standard_normal((k, c, size, size)).astype(np.float32)
"""

CASES = [
    _pool_case("max_pool2d", "max_pool2d(t, 3, 2, 1)", 1.5),
    _pool_case("avg_pool2d", "avg_pool2d(t, 3, 2, 1)", None),
    Case(
        name="roi_align fwd+bwd (2, 256, 50, 50), 128 boxes, 7x7, ratio 2, float32",
        target=None,
        fancydl_setup=_ROI_DATA + """
import fancydl
def step():
    out, pullback = fancydl.vjp(lambda t: fancydl.roi_align(
        t, boxes, size, 1.0, 2, True), x)
    return pullback(g)
""",
        fancydl_stmt="step()",
        torch_setup=_ROI_DATA + """
import torch
F = torch.nn.functional
t = torch.tensor(x, requires_grad=True)
tg = torch.tensor(g)
b = torch.tensor(boxes)
def roi_align_grid_sample(t, b, size, ratio=2):
    idx = b[:, 0].long()
    x1, y1, x2, y2 = (b[:, i] - 0.5 for i in range(1, 5))
    steps = (torch.arange(size * ratio, dtype=t.dtype) + 0.5) / (size * ratio)
    xs = x1[:, None] + (x2 - x1)[:, None] * steps          # (K, S) pixel coordinates
    ys = y1[:, None] + (y2 - y1)[:, None] * steps
    gx = (2 * xs + 1) / t.shape[3] - 1                      # align_corners=False
    gy = (2 * ys + 1) / t.shape[2] - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    samples = F.grid_sample(t[idx], grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
    return F.avg_pool2d(samples, ratio)
def step():
    t.grad = None
    roi_align_grid_sample(t, b, size).backward(tg)
""",
        torch_stmt="step()",
        baseline="torch grid_sample",
    ),
]
