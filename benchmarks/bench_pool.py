"""Pooling forward + backward, float32.

Targets: max_pool2d and avg_pool2d at (32, 64, 32, 32), kernel 3, stride 2, padding 1:
<= 1.5x PyTorch. ROI Align on 1,000 boxes of mixed sizes: <= 2x the baseline.
Also reported (no target): max_unpool2d of a 2x2 max pooling's output.

torchvision cannot be installed here, so ROI Align's baseline is the pure-PyTorch
formulation that does torchvision's work: ``grid_sample`` at every sample point of every
bin (bilinear, all channels), then an average over each bin's samples. The boxes of one
image that share a sampling grid size (``gy`` × ``gx`` per bin) form one grid: one
``grid_sample`` call per (image, grid size), on that image's feature map itself (a view:
no copy of the feature map per box). Border rule: ``padding_mode="border"`` clamps like
torchvision inside [-1, H], but does not zero the samples beyond (same work, slightly
different values for boxes that leave the map). The grouping of boxes by grid size is
index bookkeeping done once in the setup; the sample coordinates are computed in the
timed step.
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


# 128 boxes of 4 to 20 pixels, 2 x 2 samples per bin.
_ROI_FIXED = """
import numpy as np
rng = np.random.default_rng(0)
n, c, h, w, k, size, ratio, aligned = 2, 256, 50, 50, 128, 7, 2, True
x = rng.standard_normal((n, c, h, w)).astype(np.float32)
corner = rng.uniform(0, 40, (k, 2))
extent = rng.uniform(4, 20, (k, 2))
boxes = np.column_stack([rng.integers(0, n, k), corner, np.minimum(corner + extent, 49)]
                        ).astype(np.float32)
g = rng.standard_normal((k, c, size, size)).astype(np.float32)
"""

# 1,000 boxes whose sides are log-uniform from 2 to 48 pixels, per-box sampling grids
# (sampling_ratio=-1, torchvision's default): 1 x 1 up to 7 x 7 samples per bin.
_ROI_MIXED = """
import numpy as np
rng = np.random.default_rng(0)
n, c, h, w, k, size, ratio, aligned = 2, 256, 50, 50, 1000, 7, -1, True
x = rng.standard_normal((n, c, h, w)).astype(np.float32)
extent = np.exp(rng.uniform(np.log(2), np.log(48), (k, 2)))
corner = rng.uniform(0, 1, (k, 2)) * (50 - extent)
boxes = np.column_stack([rng.integers(0, n, k), corner, corner + extent]).astype(np.float32)
g = rng.standard_normal((k, c, size, size)).astype(np.float32)
"""

_ROI_FANCYDL = """
import fancydl
def step():
    out, pullback = fancydl.vjp(lambda t: fancydl.roi_align(
        t, boxes, size, 1.0, ratio, aligned), x)
    return pullback(g)
"""

_ROI_TORCH = """
import math
import torch
F = torch.nn.functional
t = torch.tensor(x, requires_grad=True)
b = torch.tensor(boxes)

# Setup (bookkeeping): the sampling grid of every box, torchvision's rule, and the
# groups of boxes of one image with one grid size.
shift = 0.5 if aligned else 0.0
sides = (boxes[:, 3:5] - boxes[:, 1:3]).astype(np.float64)
if not aligned:
    sides = np.maximum(sides, 1.0)
grids = (np.full(sides.shape, ratio) if ratio > 0
         else np.maximum(np.ceil(sides / size), 0)).astype(int)  # (K, 2): gx, gy
groups = {}
for i, (image, gx, gy) in enumerate(zip(boxes[:, 0].astype(int), grids[:, 0], grids[:, 1])):
    groups.setdefault((image, gy, gx), []).append(i)
groups = [(image, gy, gx, torch.tensor(ids)) for (image, gy, gx), ids in groups.items()
          if gy > 0 and gx > 0]
order = torch.cat([ids for *_, ids in groups])
tg = torch.tensor(g)[order]

def axis_samples(start, end, g, extent):
    # (k, size * g) normalized sample coordinates along one axis (align_corners=False).
    length = end - start if aligned else torch.clamp(end - start, min=1.0)
    bin_size = length / size
    steps = torch.arange(size, dtype=t.dtype)[:, None] + (torch.arange(g) + 0.5) / g
    pixels = start[:, None] + bin_size[:, None] * steps.reshape(-1)
    return (2 * pixels + 1) / extent - 1

def roi_align_grid_sample():
    outs = []
    for image, gy, gx, ids in groups:
        x1, y1, x2, y2 = (b[ids, i] - shift for i in range(1, 5))
        ys = axis_samples(y1, y2, gy, h)                      # (k, size * gy)
        xs = axis_samples(x1, x2, gx, w)                      # (k, size * gx)
        grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), -1)
        grid = grid.reshape(1, -1, size * gx, 2)              # boxes stacked along rows
        samples = F.grid_sample(t[image:image + 1], grid, mode="bilinear",
                                padding_mode="border", align_corners=False)
        pooled = F.avg_pool2d(samples, (gy, gx))              # (1, c, k * size, size)
        outs.append(pooled.reshape(c, len(ids), size, size).transpose(0, 1))
    return torch.cat(outs)

def step():
    t.grad = None
    roi_align_grid_sample().backward(tg)
"""


# Max unpooling of a 2x2 max pooling's output, with its switches; no target.
_UNPOOL_DATA = _POOL_DATA + """
import torch
pooled, switches = (a.numpy() for a in torch.nn.functional.max_pool2d(
    torch.tensor(x), 2, return_indices=True))
upstream = rng.standard_normal(x.shape).astype(np.float32)
"""

_UNPOOL = Case(
    name="max_unpool2d fwd+bwd (32, 64, 16, 16) -> 32 x 32, k2 float32",
    target=None,
    fancydl_setup=_UNPOOL_DATA + """
import fancydl
def step():
    out, pullback = fancydl.vjp(lambda t: fancydl.max_unpool2d(t, switches, 2), pooled)
    return pullback(upstream)
""",
    fancydl_stmt="step()",
    torch_setup=_UNPOOL_DATA + """
t, ti, tg = torch.tensor(pooled, requires_grad=True), torch.tensor(switches), \
    torch.tensor(upstream)
def step():
    t.grad = None
    torch.nn.functional.max_unpool2d(t, ti, 2).backward(tg)
""",
    torch_stmt="step()",
)


def _roi_case(name, data, target):
    return Case(name=name, target=target, fancydl_setup=data + _ROI_FANCYDL,
                fancydl_stmt="step()", torch_setup=data + _ROI_TORCH, torch_stmt="step()",
                baseline="torch grid_sample")


CASES = [
    _pool_case("max_pool2d", "max_pool2d(t, 3, 2, 1)", 1.5),
    _pool_case("avg_pool2d", "avg_pool2d(t, 3, 2, 1)", 1.5),
    _UNPOOL,
    _roi_case("roi_align fwd+bwd (2, 256, 50, 50), 128 boxes, 7x7, ratio 2, float32",
              _ROI_FIXED, None),
    _roi_case("roi_align fwd+bwd (2, 256, 50, 50), 1000 mixed boxes 2-48 px, 7x7, "
              "per-box grids, float32", _ROI_MIXED, 2.0),
]
