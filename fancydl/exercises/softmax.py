"""Exercises of the softmax and cross-entropy chapter."""

import numpy as np

from . import exercise


def _logit_cases():
    rng = np.random.default_rng(2024)
    return [
        (np.array([1.0, 2.0, 3.0]),),
        (np.array([1000.0, 0.0, -1000.0]),),
        (np.array([-1000.0, -1000.5, -1001.0]),),
        (rng.standard_normal((4, 5)) * 50,),
        (np.array([[710.0, 709.0], [0.0, 0.0]]),),
    ]


@exercise("softmax.stable_softmax", cases=_logit_cases(), rtol=1e-9, atol=1e-12)
def stable_softmax(z):
    """Softmax over the last axis that never overflows."""
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


@exercise("softmax.logsumexp", cases=_logit_cases(), rtol=1e-9, atol=1e-9)
def logsumexp_last_axis(z):
    """log(sum(exp(z))) over the last axis, stable for any finite z."""
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


def _gradient_cases():
    rng = np.random.default_rng(7)
    return [(rng.standard_normal((n, c)) * scale, rng.integers(0, c, n))
            for n, c, scale in [(1, 3, 1.0), (5, 4, 3.0), (8, 10, 100.0)]]


@exercise("softmax.cross_entropy_gradient", cases=_gradient_cases(), rtol=1e-8, atol=1e-12)
def cross_entropy_gradient(logits, target):
    """d(mean cross-entropy)/d logits for logits (N, C) and class indices (N,)."""
    n, c = logits.shape
    return (stable_softmax(logits) - np.eye(c)[target]) / n


@exercise("softmax.smoothing_floor", rtol=1e-9)
def smoothing_floor():
    """Smallest cross-entropy reachable with label smoothing 0.1 over 10 classes.

    The loss -sum q'_c log y_c is minimal at y = q' (Gibbs' inequality), where it
    equals the entropy of the smoothed target q' = 0.9 one_hot + 0.1 / 10.
    """
    q = np.full(10, 0.1 / 10)
    q[0] += 0.9
    return float(-(q * np.log(q)).sum())
