"""Channel operators: depthwise conv2d (target <= 5x PyTorch, forward; issue 11:
forward+backward at (16, 128, 32, 32) <= 2x), separable vs standard convolution,
channel_shuffle and squeeze-and-excitation, all float32.

The depthwise case goes through the public ``fancydl.conv2d`` (groups == C_in), so
it measures whatever path conv2d takes for it.
"""

from harness import Case

_DEPTHWISE = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 128, 32, 32)).astype(np.float32)
wd = rng.standard_normal((128, 1, 3, 3)).astype(np.float32)
wp = rng.standard_normal((128, 128, 1, 1)).astype(np.float32)
ws = rng.standard_normal((128, 128, 3, 3)).astype(np.float32)
g = rng.standard_normal((32, 128, 32, 32)).astype(np.float32)
"""

_DEPTHWISE_16 = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((16, 128, 32, 32)).astype(np.float32)
wd = rng.standard_normal((128, 1, 3, 3)).astype(np.float32)
g = rng.standard_normal((16, 128, 32, 32)).astype(np.float32)
"""

_SE = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 128, 32, 32)).astype(np.float32)
w1 = rng.standard_normal((8, 128, 1, 1)).astype(np.float32)
b1 = rng.standard_normal(8).astype(np.float32)
w2 = rng.standard_normal((128, 8, 1, 1)).astype(np.float32)
b2 = rng.standard_normal(128).astype(np.float32)
g = rng.standard_normal((32, 128, 32, 32)).astype(np.float32)
"""

_FANCYDL = "\nimport fancydl\n"
_TORCH = """
import torch
F = torch.nn.functional
T = {k: torch.tensor(v) for k, v in list(globals().items()) if isinstance(v, np.ndarray)}
"""

CASES = [
    Case(
        name="depthwise conv2d fwd x(32,128,32,32) w(128,1,3,3) p=1",
        target=5.0,
        fancydl_setup=_DEPTHWISE + _FANCYDL,
        fancydl_stmt="fancydl.conv2d(x, wd, padding=1, groups=128)",
        torch_setup=_DEPTHWISE + _TORCH,
        torch_stmt="F.conv2d(T['x'], T['wd'], padding=1, groups=128)",
    ),
    Case(
        name="depthwise conv2d fwd+bwd x(16,128,32,32) w(128,1,3,3) p=1",
        target=2.0,
        fancydl_setup=_DEPTHWISE_16 + _FANCYDL + """
def step():
    out, pullback = fancydl.vjp(lambda a, b: fancydl.conv2d(a, b, padding=1, groups=128),
                                x, wd)
    return pullback(g)
""",
        fancydl_stmt="step()",
        torch_setup=_DEPTHWISE_16 + _TORCH + """
xt, wt = T['x'].requires_grad_(), T['wd'].requires_grad_()
def step():
    return torch.autograd.grad(F.conv2d(xt, wt, padding=1, groups=128), (xt, wt), T['g'])
""",
        torch_stmt="step()",
    ),
    Case(
        name="depthwise conv2d fwd+bwd x(32,128,32,32) (same shapes as above)",
        target=None,
        fancydl_setup=_DEPTHWISE + _FANCYDL + """
def step():
    out, pullback = fancydl.vjp(lambda a, b: fancydl.conv2d(a, b, padding=1, groups=128),
                                x, wd)
    return pullback(g)
""",
        fancydl_stmt="step()",
        torch_setup=_DEPTHWISE + _TORCH + """
xt, wt = T['x'].requires_grad_(), T['wd'].requires_grad_()
def step():
    return torch.autograd.grad(F.conv2d(xt, wt, padding=1, groups=128), (xt, wt), T['g'])
""",
        torch_stmt="step()",
    ),
    Case(
        name="depthwise-separable fwd 128->128, 3x3 (dw + 1x1)",
        target=None,
        fancydl_setup=_DEPTHWISE + _FANCYDL,
        fancydl_stmt="fancydl.depthwise_separable_conv(x, wd, wp, padding=1)",
        torch_setup=_DEPTHWISE + _TORCH,
        torch_stmt="F.conv2d(F.conv2d(T['x'], T['wd'], padding=1, groups=128), T['wp'])",
    ),
    Case(
        name="standard conv2d fwd 128->128, 3x3",
        target=None,
        fancydl_setup=_DEPTHWISE + _FANCYDL,
        fancydl_stmt="fancydl.conv2d(x, ws, padding=1)",
        torch_setup=_DEPTHWISE + _TORCH,
        torch_stmt="F.conv2d(T['x'], T['ws'], padding=1)",
    ),
    Case(
        name="fancydl separable vs fancydl standard 3x3 (MACs ratio 0.119)",
        target=None,
        fancydl_setup=_DEPTHWISE + _FANCYDL,
        fancydl_stmt="fancydl.depthwise_separable_conv(x, wd, wp, padding=1)",
        torch_setup=_DEPTHWISE + _FANCYDL,
        torch_stmt="fancydl.conv2d(x, ws, padding=1)",
        subject="fancydl separable", baseline="fancydl standard",
    ),
    Case(
        name="torch separable vs torch standard 3x3",
        target=None,
        fancydl_setup=_DEPTHWISE + _TORCH,
        fancydl_stmt="F.conv2d(F.conv2d(T['x'], T['wd'], padding=1, groups=128), T['wp'])",
        torch_setup=_DEPTHWISE + _TORCH,
        torch_stmt="F.conv2d(T['x'], T['ws'], padding=1)",
        subject="torch separable", baseline="torch standard",
    ),
    Case(
        name="channel_shuffle fwd (32,128,32,32) groups=4",
        target=None,
        fancydl_setup=_DEPTHWISE + _FANCYDL,
        fancydl_stmt="fancydl.channel_shuffle(x, 4)",
        torch_setup=_DEPTHWISE + _TORCH,
        torch_stmt="F.channel_shuffle(T['x'], 4)",
    ),
    Case(
        name="squeeze_excitation fwd+bwd (32,128,32,32) r=16",
        target=None,
        fancydl_setup=_SE + _FANCYDL + """
def step():
    out, pullback = fancydl.vjp(fancydl.squeeze_excitation, x, w1, b1, w2, b2)
    return pullback(g)
""",
        fancydl_stmt="step()",
        torch_setup=_SE + _TORCH + """
args = [T[k].requires_grad_() for k in ('x', 'w1', 'b1', 'w2', 'b2')]
def step():
    xt, w1t, b1t, w2t, b2t = args
    s = F.adaptive_avg_pool2d(xt, 1)
    s = torch.sigmoid(F.conv2d(F.relu(F.conv2d(s, w1t, b1t)), w2t, b2t))
    return torch.autograd.grad(xt * s, args, T['g'])
""",
        torch_stmt="step()",
    ),
]
