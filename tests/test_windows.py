"""The sliding-window mechanism: stride phases read and write what offset views do."""

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fancydl import windows
from fancydl.parallel import THREADED_SIZE, halves
from fancydl.windows import (WindowGeometry, add_rows, add_to_offset, conv_output_size,
                             effective_kernel_size, merge_phases, offset_view, pad2d,
                             phase_view, phase_zeros, pool_output_size, stride_phases,
                             unpad2d, work_chunks)


@given(extra=st.tuples(st.integers(0, 6), st.integers(0, 6)), stride=st.tuples(
    st.integers(1, 3), st.integers(1, 3)), dilation=st.tuples(st.integers(1, 2),
                                                               st.integers(1, 2)),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=st.integers(0, 99))
def test_phase_views_read_and_write_like_offset_views(extra, stride, dilation, kernel,
                                                      seed):
    # Valid draws only: each side is at least the dilated kernel.
    height, width = (effective_kernel_size(k, d) + e for k, d, e in zip(kernel, dilation,
                                                                        extra))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, height, width))
    out_size = tuple(conv_output_size(n, k, s, 0, d)
                     for n, k, s, d in zip((height, width), kernel, stride, dilation))
    assert min(out_size) >= 1
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
    x = np.arange(n * 5000.0).reshape(n, 5000)
    parts = halves(lambda half: half.sum(axis=1), x, size=THREADED_SIZE)  # split
    np.testing.assert_array_equal(np.concatenate(parts), x.sum(axis=1))
    assert len(parts) == (1 if n < 2 else 2)


# --- the one window geometry, chunker and row scatter (issue 11) ------------------------

@given(size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)))
def test_window_geometry_places_windows_where_offset_views_read(size, kernel, stride,
                                                                padding, dilation):
    geom = WindowGeometry.symmetric(kernel, stride, padding, dilation)
    out_size = geom.output_size(*size)
    assume(min(out_size) >= 1)
    assert out_size == tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                             zip(size, kernel, stride, padding, dilation))
    assert geom.padded_shape((2,) + size) == (2, size[0] + 2 * padding[0],
                                              size[1] + 2 * padding[1])
    # Tap (i, j) of output (h, w) reads input pixel (rows, cols): the offset view of a
    # padded image of coordinates says the same.
    height, width = geom.padded_shape(size)
    coords = np.stack(np.meshgrid(np.arange(height) - padding[0],
                                  np.arange(width) - padding[1], indexing="ij"))
    rows, cols = geom.window_origins(out_size, np.int64)
    for tap, offset in enumerate(itertools.product(range(kernel[0]), range(kernel[1]))):
        view = offset_view(coords, offset, stride, dilation, out_size)
        np.testing.assert_array_equal(rows[:, tap], view[0].ravel())
        np.testing.assert_array_equal(cols[:, tap], view[1].ravel())
    fixed = WindowGeometry.symmetric(kernel, stride, padding, dilation, out_size=(1, 1))
    assert fixed.output_size(*size) == (1, 1)


@given(batch=st.integers(0, 9), per_image=st.integers(1, 400), rows=st.integers(1, 12),
       budget=st.integers(1, 1000))
def test_work_chunks_cover_the_work_once_within_the_budget(batch, per_image, rows, budget):
    pieces = work_chunks(batch, per_image, rows=rows, budget=budget)
    seen = np.zeros((batch, rows), int)
    for images, block in pieces:
        seen[images, block] += 1
        piece_bytes = (images.stop - images.start) * per_image * (
            (block.stop - block.start) / rows)
        smallest = per_image / rows if rows > 1 else per_image   # one row of one image
        assert piece_bytes <= budget or piece_bytes <= -(-smallest // 1)
    np.testing.assert_array_equal(seen, 1)
    if per_image <= budget:   # whole images: as few chunks as the budget allows
        assert len(pieces) == -(-batch // (budget // per_image))


def test_work_chunks_read_the_one_budget_at_call_time(monkeypatch):
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 250)
    assert len(work_chunks(4, 100)) == 2
    assert [r for _, r in work_chunks(1, 1000, rows=8)] == [slice(0, 2), slice(2, 4),
                                                           slice(4, 6), slice(6, 8)]


@given(rows=st.lists(st.integers(0, 5), max_size=30), channels=st.integers(1, 4),
       seed=st.integers(0, 99))
def test_add_rows_sums_repeated_rows_like_add_at(rows, channels, seed):
    rng = np.random.default_rng(seed)
    rows = np.array(rows, np.intp).reshape(-1)
    values = rng.standard_normal((rows.size, channels))
    table = rng.standard_normal((6, channels))
    expected = table.copy()
    np.add.at(expected, rows, values)
    add_rows(table, rows, values)
    np.testing.assert_allclose(table, expected, rtol=1e-13)
