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


# --- derivations -----------------------------------------------------------------------

def _score_cases():
    rng = np.random.default_rng(23)
    return [(np.array([1.0, 2.0, 0.5, 4.0]), 3), (np.array([1.0, 2.0, 0.5, 4.0]), 0),
            (rng.uniform(0.1, 2, 9), 5), (np.array([2.5]), 0), (np.array([3.0, 1.0]), 1)]


@exercise("stochastic_pooling.score_function", cases=_score_cases(), rtol=1e-9,
          atol=1e-12)
def score_function(a, index):
    """Gradient with respect to a (all positive) of log p_index, p_i = a_i / sum(a):
    e_index / a_index - 1 / sum(a)."""
    grad = np.full(a.shape, -1.0 / a.sum())
    grad[index] += 1.0 / a[index]
    return grad


@exercise("stochastic_pooling.output_variance", rtol=1e-9)
def output_variance():
    """Variance of the training-time output of stochastic pooling on a = (1, 2, 0, 4):
    E[a_I^2] - E[a_I]^2 = sum(a^3)/S - (sum(a^2)/S)^2 = 73/7 - 9 = 10/7."""
    a = np.array([1.0, 2.0, 0.0, 4.0])
    p = a / a.sum()
    return float((p * a ** 2).sum() - (p * a).sum() ** 2)
