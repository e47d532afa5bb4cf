"""Exercises of the chapter "Stochastic pooling"."""

import numpy as np

from . import exercise


def _regions():
    rng = np.random.default_rng(5)
    return [(np.array([1.0, 2.0, 0.0, 4.0]),), (np.zeros(4),), (np.array([0.0, 0.0, 3.0]),),
            (rng.uniform(0, 2, 9),), (np.array([2.5]),)]


@exercise("stochastic_pooling.probabilities", cases=_regions())
def probabilities(a):
    """p_i = a_i / sum(a) for a non-negative region (all zeros for an all-zero region)."""
    total = a.sum()
    return a / total if total > 0 else np.zeros_like(a)


@exercise("stochastic_pooling.test_gradient", cases=_regions())
def test_gradient(a):
    """d/da_i of sum(a^2) / sum(a), the test-time output (zeros for an all-zero region)."""
    s, q = a.sum(), (a ** 2).sum()
    return (2 * a * s - q) / s ** 2 if s > 0 else np.zeros_like(a)


@exercise("stochastic_pooling.inverse_cdf_sample", cases=[
    (np.array([1.0, 2.0, 0.0, 4.0]), 0.0), (np.array([1.0, 2.0, 0.0, 4.0]), 0.2),
    (np.array([1.0, 2.0, 0.0, 4.0]), 3 / 7), (np.array([1.0, 2.0, 0.0, 4.0]), 0.99),
    (np.array([0.0, 5.0, 0.0, 5.0]), 0.5), (np.array([0.0, 0.0, 2.0]), 0.7)])
def inverse_cdf_sample(a, u):
    """Index drawn for the uniform number u in [0, 1): the first i whose running sum of
    a exceeds u * sum(a) (a zero element is never drawn)."""
    return int(np.argmax(np.cumsum(a) > u * a.sum()))
