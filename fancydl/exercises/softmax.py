"""Exercises of the softmax and cross-entropy chapter."""

import numpy as np

from . import AUTODIFF, exercise


def _logit_cases():
    rng = np.random.default_rng(2024)
    return [
        (np.array([1.0, 2.0, 3.0]),),
        (np.array([1000.0, 0.0, -1000.0]),),
        (np.array([-1000.0, -1000.5, -1001.0]),),
        # rows far apart: subtracting one global maximum underflows whole rows
        (rng.standard_normal((4, 5)) * 50 + np.array([[0.0], [900.0], [0.0], [-900.0]]),),
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


@exercise("softmax.cross_entropy_gradient", cases=_gradient_cases(), rtol=1e-8,
          atol=1e-12, forbid=AUTODIFF)
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


# --- derivations -----------------------------------------------------------------------

def _kl_cases():
    rng = np.random.default_rng(12)
    soft = rng.random(5)
    return [(np.array([0.7, 0.2, 0.1]), np.array([1.0, 0.0, -1.0])),
            (np.array([0.0, 1.0, 0.0]), np.array([2.0, 0.5, -3.0])),
            (soft / soft.sum(), rng.standard_normal(5) * 3),
            (np.array([0.5, 0.0, 0.5, 0.0]), np.array([40.0, 0.0, 0.0, -40.0]))]


@exercise("softmax.kl_divergence", cases=_kl_cases(), rtol=1e-9, atol=1e-12)
def kl_divergence(target, z):
    """KL(t || softmax(z)) for a probability vector t (zeros allowed: 0 log 0 = 0):
    the cross-entropy -sum t log y minus the entropy of t, computed in the log domain."""
    log_y = z - z.max() - np.log(np.exp(z - z.max()).sum())
    nonzero = target > 0
    return float((target[nonzero] * (np.log(target[nonzero]) - log_y[nonzero])).sum())


def _tempered_cases():
    rng = np.random.default_rng(13)
    return [(np.array([2.0, 1.0, 0.2, -1.0]), 0, 0.5),
            (np.array([2.0, 1.0, 0.2, -1.0]), 3, 2.0),
            (rng.standard_normal(6) * 2, 4, 0.25), (rng.standard_normal(3), 1, 1.0),
            (np.array([300.0, 0.0]), 1, 0.1)]


@exercise("softmax.tempered_gradient", cases=_tempered_cases(), rtol=1e-9, atol=1e-12,
          forbid=AUTODIFF)
def tempered_gradient(z, target, temperature):
    """d/dz of the cross-entropy -log softmax(z / T)[target] for a 1-D z:
    (softmax(z / T) - one_hot(target)) / T (y itself depends on T)."""
    one_hot = np.eye(len(z))[target]
    return (stable_softmax(z / temperature) - one_hot) / temperature
