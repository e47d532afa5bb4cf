"""Normalization at (32, 64, 32, 32), float32, against PyTorch. Targets: batch_norm
training forward + backward <= 2.5x, batch_norm evaluation forward <= 2x, group_norm
(32 groups) forward + backward <= 2x. Also reported (no target): batch_norm training
against single-threaded PyTorch, and group_norm with both sides on one thread (fancydl
without its second thread): the cost of the computation itself, without the threads'
hand-offs (on a loaded machine, two-thread timings of either side vary several-fold).
For batch_norm evaluation, two rows measure what the target asks of NumPy: NumPy's own
two passes for ``x * scale + shift`` (no fancydl at all) against PyTorch's fused
kernel, and PyTorch making the same two passes against its fused kernel."""

from harness import Case

_DATA = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
grad = rng.standard_normal(x.shape).astype(np.float32)
weight = rng.standard_normal(64).astype(np.float32)
bias = rng.standard_normal(64).astype(np.float32)
running_mean = np.zeros(64, np.float32)
running_var = np.ones(64, np.float32)
"""

_TORCH = _DATA + """
import torch
F = torch.nn.functional
tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(grad)
tw, tb = torch.tensor(weight, requires_grad=True), torch.tensor(bias, requires_grad=True)
trm, trv = torch.tensor(running_mean), torch.tensor(running_var)
def step(op, *args, **kw):
    out = op(tx, *args, **kw)
    return torch.autograd.grad(out, [tx, tw, tb], tg)
"""

_FANCYDL = _DATA + """
import fancydl
def step(op, *args, **kw):
    out, pullback = fancydl.vjp(lambda x, w, b: op(x, *args, weight=w, bias=b, **kw),
                                x, weight, bias)
    return pullback(grad)
"""

# Evaluation is affine in x, y = x * scale + shift with one scale and one shift per
# channel: NumPy needs two passes over the data for it (a multiply, then an add in
# place), where PyTorch's kernel makes one. The result is dropped on return, as the
# other statements' are (a statement ``y = x * scale`` would keep the previous output
# alive during the multiply: two outputs in turn, 8 MiB more for the cache).
_EVALUATION_FACTORS = """
scale = (weight / np.sqrt(running_var + 1e-5)).astype(np.float32)
shift = (bias - running_mean * scale).reshape(1, -1, 1, 1)
scale = scale.reshape(1, -1, 1, 1)
def two_passes(x, scale, shift):
    y = x * scale
    y += shift
    return y
"""

# NumPy as fancydl runs it: freed memory kept mapped (fancydl.allocator) and a small
# ufunc buffer (fancydl.norm.ROW_BUFFER; NumPy's default buffer made the broadcast
# passes about 2.5 times slower).
_AS_FANCYDL_RUNS_NUMPY = """
import fancydl.allocator, fancydl.norm
np.setbufsize(fancydl.norm.ROW_BUFFER)
"""

_TORCH_FACTORS = """
tx_data, tscale, tshift = tx.detach(), torch.tensor(scale), torch.tensor(shift)
"""

# PyTorch's fused evaluation-mode batch_norm, the baseline of three rows.
_TORCH_EVALUATION = "with torch.no_grad(): F.batch_norm(tx, trm, trv, tw, tb)"

CASES = [
    Case(
        name="batch_norm training fwd+bwd (32, 64, 32, 32) float32",
        target=2.5,
        fancydl_setup=_FANCYDL,
        fancydl_stmt="step(fancydl.batch_norm, running_mean, running_var, training=True)",
        torch_setup=_TORCH,
        torch_stmt="step(F.batch_norm, trm, trv, weight=tw, bias=tb, training=True)",
    ),
    Case(
        name="batch_norm training fwd+bwd, torch on 1 thread",
        target=None,
        fancydl_setup=_FANCYDL,
        fancydl_stmt="step(fancydl.batch_norm, running_mean, running_var, training=True)",
        torch_setup=_TORCH + "torch.set_num_threads(1)",
        torch_stmt="step(F.batch_norm, trm, trv, weight=tw, bias=tb, training=True)",
    ),
    Case(
        name="batch_norm evaluation forward (32, 64, 32, 32) float32",
        target=2.0,
        fancydl_setup=_DATA + "import fancydl",
        fancydl_stmt="fancydl.batch_norm(x, running_mean, running_var, weight, bias)",
        torch_setup=_TORCH,
        torch_stmt=_TORCH_EVALUATION,
    ),
    Case(
        name="batch_norm evaluation: NumPy alone, y = x * scale; y += shift (two "
             "passes, one thread)",
        target=None,
        fancydl_setup=_DATA + _EVALUATION_FACTORS + _AS_FANCYDL_RUNS_NUMPY,
        fancydl_stmt="two_passes(x, scale, shift)",
        torch_setup=_TORCH,
        torch_stmt=_TORCH_EVALUATION,
        subject="NumPy two passes",
    ),
    Case(
        name="batch_norm evaluation: PyTorch's x * scale + shift (two passes) against "
             "its fused batch_norm",
        target=None,
        fancydl_setup=_TORCH + _EVALUATION_FACTORS + _TORCH_FACTORS,
        fancydl_stmt="two_passes(tx_data, tscale, tshift)",
        torch_setup=_TORCH,
        torch_stmt=_TORCH_EVALUATION,
        subject="torch two passes",
    ),
    Case(
        name="group_norm (32 groups) fwd+bwd (32, 64, 32, 32) float32",
        target=2.0,
        fancydl_setup=_FANCYDL,
        fancydl_stmt="step(fancydl.group_norm, 32)",
        torch_setup=_TORCH,
        torch_stmt="step(F.group_norm, 32, weight=tw, bias=tb)",
    ),
    Case(
        name="group_norm (32 groups) fwd+bwd, both on 1 thread",
        target=None,
        fancydl_setup=_FANCYDL + "fancydl.parallel.THREADED_SIZE = 2 ** 62",
        fancydl_stmt="step(fancydl.group_norm, 32)",
        torch_setup=_TORCH + "torch.set_num_threads(1)",
        torch_stmt="step(F.group_norm, 32, weight=tw, bias=tb)",
    ),
]
