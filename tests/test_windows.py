"""The sliding-window mechanism: stride phases read and write what offset views do."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fancydl.parallel import halves
from fancydl.windows import (add_to_offset, conv_output_size, merge_phases, offset_view,
                             pad2d, phase_view, phase_zeros, pool_output_size,
                             stride_phases, unpad2d)


@given(height=st.integers(1, 9), width=st.integers(1, 9), stride=st.tuples(
    st.integers(1, 3), st.integers(1, 3)), dilation=st.tuples(st.integers(1, 2),
                                                               st.integers(1, 2)),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=st.integers(0, 99))
def test_phase_views_read_and_write_like_offset_views(height, width, stride, dilation,
                                                      kernel, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, height, width))
    out_size = tuple(conv_output_size(n, k, s, 0, d)
                     for n, k, s, d in zip((height, width), kernel, stride, dilation))
    if min(out_size) < 1:
        return
    phases = stride_phases(x, stride)
    grad_offsets = np.zeros_like(x)
    grad_phases = phase_zeros(x.shape, stride, x.dtype)
    for offset in itertools.product(range(kernel[0]), range(kernel[1])):
        expected = offset_view(x, offset, stride, dilation, out_size)
        np.testing.assert_array_equal(phase_view(phases, offset, stride, dilation, out_size),
                                      expected)
        piece = rng.standard_normal(expected.shape)
        add_to_offset(grad_offsets, offset, stride, dilation, piece)
        view = phase_view(grad_phases, offset, stride, dilation, out_size)
        view += piece
    np.testing.assert_allclose(merge_phases(grad_phases, x.shape, stride), grad_offsets)


@pytest.mark.parametrize("stride", [(1, 1), (2, 3), (3, 2)])
@pytest.mark.parametrize("crop", [((0, 0), (0, 0)), ((1, 2), (0, 1)), ((2, 1), (3, 1))])
def test_merge_phases_inverts_the_split_and_crops(rng, stride, crop):
    x = rng.standard_normal((2, 3, 8, 9))
    merged = merge_phases(stride_phases(x, stride), x.shape, stride, crop)
    np.testing.assert_array_equal(merged, unpad2d(x, crop))
    out = np.empty_like(merged)
    assert merge_phases(stride_phases(x, stride), x.shape, stride, crop, out=out) is out
    np.testing.assert_array_equal(out, merged)


def test_pool_output_size_ceil_mode_last_window_rule():
    # the last window must start inside the input or the left padding
    assert pool_output_size(5, 2, 2, ceil_mode=True) == 3
    assert pool_output_size(6, 3, 3, padding=1, ceil_mode=True) == 3
    assert pool_output_size(6, 3, 3, padding=1, ceil_mode=False) == 2


def test_pad2d_fills_only_the_border():
    padded = pad2d(np.ones((1, 2, 2)), ((1, 0), (0, 2)), value=-np.inf)
    assert padded.shape == (1, 3, 4)
    assert np.isneginf(padded[0, 0]).all() and np.isneginf(padded[0, 1:, 2:]).all()
    np.testing.assert_array_equal(padded[0, 1:, :2], 1.0)


@pytest.mark.parametrize("n", [1, 2, 5, 64])
def test_halves_cover_the_batch_in_order(n):
    x = np.arange(n * 5000.0).reshape(n, 5000)      # large enough for the worker thread
    parts = halves(lambda half: half.sum(axis=1), x)
    np.testing.assert_array_equal(np.concatenate(parts), x.sum(axis=1))
    assert len(parts) == (1 if n < 2 else 2)
