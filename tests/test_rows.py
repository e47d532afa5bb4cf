"""Tests of fancydl.rows: per-channel constants applied as one row per sample."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fancydl.rows import add_channel_bias, channel_sums, sample_rows

_SHAPES = st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 4),
                    st.integers(0, 3))


def _layouts(a):
    """Three new arrays of ``a``'s values: C-contiguous, Fortran-ordered, and strided
    (every other value of a wider array)."""
    strided = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    strided[..., ::2] = a
    return [a.copy(order="C"), a.copy(order="F"), strided[..., ::2]]


@given(_SHAPES, st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_add_channel_bias_is_the_broadcast_add_in_place(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    expected = values + bias[:, None, None]
    for out in _layouts(values):
        add_channel_bias(out, bias)
        np.testing.assert_array_equal(out, expected)


@given(_SHAPES, st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_channel_sums_is_the_sum_over_all_axes_but_the_channels(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    grad = rng.standard_normal(shape).astype(dtype)
    expected = grad.astype(np.float64).sum(axis=(0, 2, 3))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for layout in _layouts(grad):
        sums = channel_sums(layout)
        assert sums.shape == (shape[1],) and sums.dtype == dtype
        np.testing.assert_allclose(sums, expected, rtol=tolerance, atol=tolerance)


def test_sample_rows_flattens_only_what_stays_a_view():
    out = np.zeros((3, 2, 4))
    per_channel = np.arange(2.0).reshape(1, 2, 1)
    rows, row = sample_rows(out, per_channel)
    assert rows.shape == (3, 8) and np.shares_memory(rows, out)
    np.testing.assert_array_equal(row, [[0, 0, 0, 0, 1, 1, 1, 1]])
    # A transposed (non-contiguous) out would be copied by a reshape: left unchanged.
    transposed = np.zeros((4, 2, 3)).transpose(2, 1, 0)
    unchanged = sample_rows(transposed, per_channel)
    assert unchanged[0] is transposed and unchanged[1] is per_channel
    # One sample, or a layout that is neither per-sample nor of out's shape: unchanged.
    assert sample_rows(out[:1], per_channel)[0].shape == (1, 2, 4)
    per_sample = np.ones((3, 1, 1))
    assert sample_rows(out, per_sample)[1] is per_sample
