"""Exercises of the batch-normalization chapter (``check("batch_norm.<name>", answer)``).

Each reference is fancydl's own operator, itself checked against PyTorch by the tests.
"""

from __future__ import annotations

import numpy as np

from .. import batch_norm, fold_batch_norm, group_norm, vjp
from . import exercise

_rng = np.random.default_rng(2015)


def _cases_nc(count, shapes):
    return [(_rng.standard_normal(shape) * 2 + 1, _rng.standard_normal(shape[1]),
             _rng.standard_normal(shape), 1e-5) for shape in shapes[:count]]


@exercise("batch_norm.input_gradient",
          cases=_cases_nc(3, [(4, 3), (16, 5), (2, 1)]), rtol=1e-6, atol=1e-9)
def input_gradient(x, gamma, grad, eps):
    """dL/dx of training-mode batch norm of x (N, C) with weight gamma (C,), given the
    upstream gradient ``grad`` (N, C)."""
    _, pullback = vjp(lambda x_: batch_norm(x_, None, None, gamma, None, True, 0.1, eps), x)
    return pullback(grad)[0]


@exercise("batch_norm.running_update", cases=[
    (np.zeros(3), np.ones(3), _rng.standard_normal((8, 3)), 0.1),
    (_rng.standard_normal(2), _rng.random(2) + 0.5, _rng.standard_normal((5, 2)) * 3, 0.5),
    (np.zeros(4), np.ones(4), _rng.standard_normal((2, 4)), 1.0)])
def running_update(running_mean, running_var, x, momentum):
    """The running buffers after one training step on x (N, C), PyTorch's convention
    (momentum weights the new batch; unbiased variance). Returns (mean, var)."""
    mean, var = running_mean.copy(), running_var.copy()
    batch_norm(x, mean, var, training=True, momentum=momentum)
    return mean, var


@exercise("batch_norm.fold_linear", cases=[
    (_rng.standard_normal((3, 5)), _rng.standard_normal(3), _rng.standard_normal(3),
     _rng.random(3) + 0.5, _rng.standard_normal(3), _rng.standard_normal(3), 1e-5),
    (_rng.standard_normal((2, 2)), _rng.standard_normal(2), _rng.standard_normal(2),
     _rng.random(2) + 0.1, _rng.standard_normal(2), _rng.standard_normal(2), 1e-3)])
def fold_linear(weight, bias, running_mean, running_var, gamma, beta, eps):
    """Weight (out, in) and bias (out,) of one linear layer equal to
    ``batch_norm(linear(x, weight, bias), running_mean, running_var, gamma, beta)``."""
    return fold_batch_norm(weight, bias, running_mean, running_var, gamma, beta, eps)


@exercise("batch_norm.group_norm", cases=[
    (_rng.standard_normal((2, 6, 3, 3)), 3, 1e-5),
    (_rng.standard_normal((1, 4, 5)) * 4 + 2, 2, 1e-5),
    (_rng.standard_normal((3, 4, 2, 2)), 4, 1e-2)])
def group_norm_forward(x, num_groups, eps):
    """Group normalization of x (N, C, ...) without weight and bias."""
    return group_norm(x, num_groups, eps=eps)
