"""Exercises of the batch-normalization chapter (``check("batch_norm.<name>", answer)``).

Each reference is fancydl's own operator, itself checked against PyTorch by the tests.
"""

from __future__ import annotations

import numpy as np

from .. import batch_norm, fold_batch_norm, group_norm, vjp
from . import AUTODIFF, exercise

_rng = np.random.default_rng(2015)


def _cases_nc(count, shapes):
    return [(_rng.standard_normal(shape) * 2 + 1, _rng.standard_normal(shape[1]),
             _rng.standard_normal(shape), 1e-5) for shape in shapes[:count]]


def _with_eps(cases, index, eps):
    """The same cases, case ``index`` with a large eps (where forgetting eps shows)."""
    cases[index] = cases[index][:3] + (eps,)
    return cases


@exercise("batch_norm.input_gradient",
          cases=_with_eps(_cases_nc(3, [(4, 3), (16, 5), (2, 1)]), 2, 0.05),
          rtol=1e-6, atol=1e-9,
          forbid=AUTODIFF + ("fancydl.batch_norm", "torch.nn.functional.batch_norm"))
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
    (_rng.standard_normal((3, 4, 2, 2)), 4, 1e-2)],
          forbid=("fancydl.group_norm", "fancydl.layer_norm", "fancydl.instance_norm",
                  "fancydl.batch_norm", "torch.nn.functional.group_norm"))
def group_norm_forward(x, num_groups, eps):
    """Group normalization of x (N, C, ...) without weight and bias."""
    return group_norm(x, num_groups, eps=eps)


# --- derivations -----------------------------------------------------------------------

@exercise("batch_norm.jacobian_m3", rtol=1e-9, atol=1e-12)
def jacobian_m3():
    """Jacobian dy_i/dx_j of training-mode BN (gamma 1, beta 0, eps 0) of one channel
    with the batch x = (1, 2, 4): (s / m) (m I - 1 1^T - x_hat x_hat^T)."""
    x = np.array([1.0, 2.0, 4.0])
    m, s = len(x), 1 / x.std()
    x_hat = (x - x.mean()) * s
    return s / m * (m * np.eye(m) - np.ones((m, m)) - np.outer(x_hat, x_hat))


@exercise("batch_norm.two_examples", cases=[
    (3.0, 1.0, 0.0), (1.0, 3.0, 0.0), (0.1, 0.0, 1e-5), (5.0, -5.0, 1e-5), (2.0, 2.5, 0.1),
    (-1.0, 4.0, 1.0)], rtol=1e-12, atol=1e-15)
def two_examples(a, b, eps):
    """Training-mode BN (gamma 1, beta 0) of a batch of two values (a, b) of one channel:
    (d, -d) / sqrt(d^2 + eps) with d = (a - b) / 2; with eps = 0, (+-1, -+1)."""
    d = (a - b) / 2
    return np.array([d, -d]) / np.sqrt(d * d + eps)
