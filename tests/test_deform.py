"""Tests of fancydl.deform_conv2d: torchvision.ops.deform_conv2d's semantics.

The PyTorch reference is the independent grid_sample composition registered in
fancydl/references.py (torchvision cannot be installed beside our torch); an optional test
compares with torchvision itself where it imports.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fancydl
from fancydl import deform, references, windows
from fancydl.deform import bilinear_sample, deform_conv2d, deform_sampling_points

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def fractional_offsets(rng, shape, dtype, spread=3):
    """Offsets whose fractional part stays in [0.05, 0.95]: no sampling point is near an
    integer coordinate, where bilinear interpolation is not differentiable."""
    whole = rng.integers(-spread, spread + 1, shape)
    return (whole + rng.uniform(0.05, 0.95, shape)).astype(dtype)


def make_case(rng, dtype, n=2, groups=1, offset_groups=1, channels_per=1, out_per=1,
              size=(5, 6), kernel=(3, 3), stride=(1, 1), padding=(1, 1),
              dilation=(1, 1), use_mask=False, use_bias=True, offsets=None):
    stride, padding, dilation = (v if isinstance(v, tuple) else (v, v)
                                 for v in (stride, padding, dilation))
    c = groups * offset_groups * channels_per
    c_out = groups * out_per
    kh, kw = kernel
    ho, wo = (out_size(size[a], kernel[a], stride[a], padding[a], dilation[a])
              for a in (0, 1))
    x = rng.standard_normal((n, c, *size)).astype(dtype)
    w = rng.standard_normal((c_out, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if use_bias else None
    shape = (n, 2 * offset_groups * kh * kw, ho, wo)
    o = fractional_offsets(rng, shape, dtype) if offsets is None else offsets(shape)
    m = (rng.uniform(-0.5, 1.5, (n, offset_groups * kh * kw, ho, wo)).astype(dtype)
         if use_mask else None)
    return x, o, w, b, m, dict(stride=stride, padding=padding, dilation=dilation)


def ours_with_grads(x, o, w, b, m, kw, upstream):
    names = ["input", "offset", "weight"] + (["bias"] if b is not None else []) + \
        (["mask"] if m is not None else [])

    def f(*arrays):
        named = dict(zip(names, arrays))
        return deform_conv2d(named["input"], named["offset"], named["weight"],
                             named.get("bias"), mask=named.get("mask"), **kw)

    arrays = [a for a in (x, o, w, b, m) if a is not None]
    out, pullback = fancydl.vjp(f, *arrays)
    return out, dict(zip(names, pullback(upstream)))


def reference_with_grads(torch, x, o, w, b, m, kw, upstream):
    tensors = {k: torch.tensor(v, requires_grad=True)
               for k, v in dict(input=x, offset=o, weight=w, bias=b, mask=m).items()
               if v is not None}
    out = references._deform_conv2d_torch(torch, tensors["input"], tensors["offset"],
                                      tensors["weight"], tensors.get("bias"),
                                      mask=tensors.get("mask"), **kw)
    grads = torch.autograd.grad(out, list(tensors.values()), torch.tensor(upstream))
    return out.detach().numpy(), {k: g.numpy() for k, g in zip(tensors, grads)}


def assert_matches_reference(torch, case, rng, dtype):
    x, o, w, b, m, kw = case
    upstream = rng.standard_normal(deform_conv2d(x, o, w, b, mask=m, **kw).shape).astype(dtype)
    ours, our_grads = ours_with_grads(x, o, w, b, m, kw, upstream)
    theirs, their_grads = reference_with_grads(torch, x, o, w, b, m, kw, upstream)
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, theirs, **TOL[dtype])
    assert set(our_grads) == set(their_grads)
    for name in their_grads:
        assert our_grads[name].dtype == dtype, name
        np.testing.assert_allclose(our_grads[name], their_grads[name], **TOL[dtype],
                                   err_msg=f"gradient of {name}")


# --- against the grid_sample reference ------------------------------------------------

@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float64, np.float32]),
       n=st.integers(1, 2), groups=st.integers(1, 2), offset_groups=st.integers(1, 3),
       channels_per=st.integers(1, 2), out_per=st.integers(1, 2),
       size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       use_mask=st.booleans(), use_bias=st.booleans())
def test_matches_grid_sample_reference(seed, dtype, n, groups, offset_groups, channels_per,
                                       out_per, size, kernel, stride, padding, dilation,
                                       use_mask, use_bias):
    torch = pytest.importorskip("torch")
    if any(out_size(size[a], kernel[a], stride[a], padding[a], dilation[a]) < 1
           for a in (0, 1)):
        return  # no output: the bad-input tests cover this
    rng = np.random.default_rng(seed)
    case = make_case(rng, dtype, n, groups, offset_groups, channels_per, out_per, size,
                     kernel, stride, padding, dilation, use_mask, use_bias)
    assert_matches_reference(torch, case, rng, dtype)


@pytest.mark.parametrize("use_mask", [False, True])
def test_crosscheck_reports_every_gradient(rng, use_mask):
    pytest.importorskip("torch")
    x, o, w, b, m, kw = make_case(rng, np.float64, groups=2, offset_groups=2,
                                  stride=(2, 1), dilation=(1, 2), use_mask=use_mask)
    args = (x, o, w, b, kw["stride"], kw["padding"], kw["dilation"]) + ((m,) if use_mask else ())
    report = fancydl.crosscheck(deform_conv2d, *args)
    assert report, report
    assert len(report.rows) == 1 + 4 + use_mask  # output + input, offset, weight, bias (+ mask)


def test_large_offsets_sample_zeros_outside(rng):
    torch = pytest.importorskip("torch")
    case = make_case(rng, np.float64, use_mask=True,
                     offsets=lambda shape: fractional_offsets(rng, shape, np.float64, 9))
    assert_matches_reference(torch, case, rng, np.float64)


# --- the boundary rule -------------------------------------------------------------------

def test_bilinear_sample_known_values():
    image = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    y = np.array([0.0, 0.5, 1.0, 1.5, -0.5, -1.0, 2.0, 0.25, -1.0 + 1e-9, 0.0])
    x = np.array([0.0, 0.5, 2.0, 0.0, 0.0, 1.0, 1.0, 2.5, 0.0, 3.0])
    expected = [1.0,
                (1 + 2 + 4 + 5) / 4,
                6.0,
                0.5 * 4,             # half of row 1, half of the missing row 2
                0.5 * 1,             # half of the missing row -1
                0.0,                 # y = -1 exactly: outside
                0.0,                 # y = H exactly: outside
                0.5 * (0.75 * 3 + 0.25 * 6),
                1e-9 * 1,            # just inside the top edge
                0.0]                 # x = W exactly: outside
    np.testing.assert_allclose(bilinear_sample(image, y, x), expected, atol=1e-15)


def test_exact_boundary_positions_match_reference():
    """1x1 taps placed exactly at y = -1, y = H, x = -1, x = W and just inside them."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    h = w = 4
    x = rng.standard_normal((1, 2, h, w))
    weight = rng.standard_normal((3, 2, 1, 1))
    rows = np.array([-1.0, -0.5, h - 0.5, h])       # sampling row of output row 0..3
    cols = np.array([w, 1.25, -1.0, -0.75])         # sampling column of output column 0..3
    offset = np.zeros((1, 2, h, w))
    offset[0, 0] = (rows - np.arange(h))[:, None]
    offset[0, 1] = (cols - np.arange(w))[None, :]
    ours = deform_conv2d(x, offset, weight)
    theirs = references._deform_conv2d_torch(torch, torch.tensor(x), torch.tensor(offset),
                                         torch.tensor(weight)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    outside = (rows[:, None] <= -1) | (rows[:, None] >= h) | (cols <= -1) | (cols >= w)
    assert np.all(ours[0][:, outside] == 0) and np.all(ours[0][:, ~outside] != 0)
    expected = bilinear_sample(x[0, 0], *np.meshgrid(rows, cols, indexing="ij")) * weight[0, 0] + \
        bilinear_sample(x[0, 1], *np.meshgrid(rows, cols, indexing="ij")) * weight[0, 1]
    np.testing.assert_allclose(ours[0, 0], expected, rtol=1e-14, atol=1e-14)


def test_offset_gradient_on_the_boundary_follows_torchvision():
    """torchvision returns a 0 sample for y <= -1 or y >= H but computes the offset
    gradient with the corner rule alone: at y = -1 exactly the right-hand slope
    (1 - lx) x[0, x0] + lx x[0, x0 + 1] toward the image, at y = H exactly 0."""
    image = np.arange(1.0, 13.0).reshape(1, 1, 3, 4)
    one = np.ones((1, 1, 1, 1))
    for row, slope in [(-1.0, 0.75 * 2.0 + 0.25 * 3.0), (3.0, 0.0), (-1.5, 0.0)]:
        offset = np.zeros((1, 2, 3, 4))
        offset[0, :, 0, 0] = row, 1.25                  # output (0, 0) samples (row, 1.25)
        out, pullback = fancydl.vjp(lambda o: deform_conv2d(image, o, one), offset)
        upstream = np.zeros_like(out)
        upstream[0, 0, 0, 0] = 1.0
        (grad,) = pullback(upstream)
        assert out[0, 0, 0, 0] == 0.0
        assert grad[0, 0, 0, 0] == slope, (row, grad[0, 0, 0, 0])


def test_gradient_at_integer_positions_is_right_derivative(rng):
    """At integer coordinates floor() picks the cell to the right (torchvision's rule):
    the offset gradient is the one-sided derivative for a positive step."""
    x, _, w, b, _, kw = make_case(rng, np.float64, size=(5, 5))
    offset = rng.integers(-2, 3, (2, 18, 5, 5)).astype(np.float64)
    upstream = rng.standard_normal((2, 1, 5, 5))
    _, pullback = fancydl.vjp(lambda o: deform_conv2d(x, o, w, b, **kw), offset)
    (grad,) = pullback(upstream)
    direction = rng.uniform(0, 1, offset.shape)  # every point moves down and right
    step = 1e-7
    moved = deform_conv2d(x, offset + step * direction, w, b, **kw)
    still = deform_conv2d(x, offset, w, b, **kw)
    one_sided = np.sum(upstream * (moved - still)) / step
    assert np.isclose(np.sum(grad * direction), one_sided, rtol=1e-5, atol=1e-6)


# --- special cases: zero and integer offsets -------------------------------------------

def _torch_conv2d(x, w, **kw):
    torch = pytest.importorskip("torch")
    return torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w),
                                      groups=x.shape[1] // w.shape[1], **kw).numpy()


@given(seed=st.integers(0, 2**32 - 1), groups=st.integers(1, 3),
       size=st.tuples(st.integers(3, 7), st.integers(3, 7)),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       offset_groups=st.integers(1, 2), use_mask=st.booleans())
def test_zero_offsets_equal_conv2d(seed, groups, size, kernel, stride, padding, dilation,
                                   offset_groups, use_mask):
    ho, wo = (out_size(size[a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    assume(ho >= 1 and wo >= 1)
    rng = np.random.default_rng(seed)
    c = groups * offset_groups
    x = rng.standard_normal((2, c, *size))
    w = rng.standard_normal((2 * groups, c // groups, *kernel))
    offset = np.zeros((2, 2 * offset_groups * kernel[0] * kernel[1], ho, wo))
    mask = np.ones((2, offset_groups * kernel[0] * kernel[1], ho, wo)) if use_mask else None
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    expected = _torch_conv2d(x, w, **kw)
    np.testing.assert_allclose(deform_conv2d(x, offset, w, mask=mask, **kw), expected,
                               rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(expected.shape)
    _, ours = fancydl.vjp(lambda x, w: deform_conv2d(x, offset, w, mask=mask, **kw), x, w)
    _, conv = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, groups=groups, **kw), x, w)
    for a, b in zip(ours(upstream), conv(upstream)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_uniform_integer_offset_is_a_shifted_convolution(rng):
    """Every tap moved by the same integer (dy, dx): a convolution of the input seen
    through a window moved by (dy, dx), with zeros beyond the image."""
    x = rng.standard_normal((2, 3, 7, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    stride, padding, dilation = (2, 1), (1, 2), (1, 2)
    ho, wo = out_size(7, 3, 2, 1, 1), out_size(8, 3, 1, 2, 2)
    for dy, dx in [(1, 0), (-2, 3), (0, -1), (9, 0)]:
        offset = np.zeros((2, 18, ho, wo))
        offset[:, 0::2], offset[:, 1::2] = dy, dx
        big = 12
        canvas = np.pad(x, ((0, 0), (0, 0), (big, big), (big, big)))
        top, left = big - padding[0] + dy, big - padding[1] + dx
        expected = _torch_conv2d(canvas[:, :, top:, left:], w, stride=stride,
                                 dilation=dilation)[:, :, :ho, :wo]
        ours = deform_conv2d(x, offset, w, stride=stride, padding=padding, dilation=dilation)
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_per_tap_integer_offsets_are_a_larger_sparse_kernel(rng):
    """Spatially constant integer offsets per tap move each kernel weight to another
    place of a larger kernel: a plain convolution with that kernel."""
    x = rng.standard_normal((1, 2, 9, 9))
    w = rng.standard_normal((3, 2, 2, 2))
    shifts = np.array([[0, 0], [1, 2], [-1, 1], [2, -2]])   # (dy, dx) per tap
    ho = wo = 10                                          # 9 + 2 - 2 + 1
    offset = np.zeros((1, 8, ho, wo))
    offset[0, 0::2] = shifts[:, 0, None, None]
    offset[0, 1::2] = shifts[:, 1, None, None]
    ours = deform_conv2d(x, offset, w, padding=1)
    rows = np.array([0, 0, 1, 1]) + shifts[:, 0]
    cols = np.array([0, 1, 0, 1]) + shifts[:, 1]
    big = np.zeros((3, 2, rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
    for k in range(4):
        big[:, :, rows[k] - rows.min(), cols[k] - cols.min()] += w[:, :, k // 2, k % 2]
    canvas = np.pad(x, ((0, 0), (0, 0), (8, 8), (8, 8)))
    top, left = 8 - 1 + rows.min(), 8 - 1 + cols.min()
    expected = _torch_conv2d(canvas[:, :, top:, left:], big)[:, :, :ho, :wo]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


# --- gradients ------------------------------------------------------------------------

@pytest.mark.parametrize("groups, offset_groups, stride, padding, dilation", [
    (1, 1, 1, 1, 1), (2, 1, (2, 1), (1, 0), (1, 2)), (1, 2, 1, 2, 2), (2, 2, 2, 0, 1)])
def test_gradcheck_every_input(rng, groups, offset_groups, stride, padding, dilation):
    x, o, w, b, m, kw = make_case(rng, np.float64, n=1, groups=groups,
                                  offset_groups=offset_groups, size=(4, 5), kernel=(2, 3),
                                  stride=stride, padding=padding, dilation=dilation,
                                  use_mask=True)

    def f(x, o, w, b, m):
        return deform_conv2d(x, o, w, b, mask=m, **kw)

    report = fancydl.gradcheck(f, x, o, w, b, m)
    assert report, report
    assert sorted(report.max_errors) == [0, 1, 2, 3, 4]


def test_mask_positional_and_keyword_agree(rng):
    x, o, w, b, m, kw = make_case(rng, np.float64, use_mask=True)
    upstream = rng.standard_normal(deform_conv2d(x, o, w, b, mask=m, **kw).shape)
    _, by_keyword = fancydl.vjp(lambda x, o, w, m: deform_conv2d(x, o, w, b, mask=m, **kw),
                                x, o, w, m)
    _, positional = fancydl.vjp(deform_conv2d, x, o, w, b, kw["stride"], kw["padding"],
                                kw["dilation"], m)
    first, second = by_keyword(upstream), positional(upstream)
    for a, c in zip(first, [second[i] for i in (0, 1, 2, 7)]):
        np.testing.assert_array_equal(a, c)


def test_chunking_changes_nothing(rng, monkeypatch):
    x, o, w, b, m, kw = make_case(rng, np.float64, n=5, use_mask=True)
    upstream = rng.standard_normal(deform_conv2d(x, o, w, b, mask=m, **kw).shape)

    def run():
        out, pullback = fancydl.vjp(deform_conv2d, x, o, w, b, kw["stride"], kw["padding"],
                                    kw["dilation"], m)
        return [out] + [g for g in pullback(upstream) if isinstance(g, np.ndarray)]

    whole = run()
    window = deform._window(w.shape[2:], (1, 1), (1, 1), (1, 1), spatial=x.shape[2:])
    geometry = deform._Deformation(x.shape, w.shape, 1, window)
    per_image = 5 * 6 * 9 * x.shape[1] * 8
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", per_image)  # one image per chunk
    assert len(deform._chunks(geometry, 8)) == 5
    for a, c in zip(whole, run()):
        np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-13)
    # Issue D3: a single image beyond the budget is cut into blocks of output rows.
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", per_image // 2)
    pieces = deform._chunks(geometry, 8)
    assert len(pieces) == 5 * 3 and all(rows.stop - rows.start <= 2 for _, rows in pieces)
    for a, c in zip(whole, run()):
        np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, 2, (1, 2)),
                                                       ((3, 1), (0, 2), 2)])
def test_row_blocks_of_one_image_match_the_reference(rng, monkeypatch, stride, padding,
                                                     dilation):
    """Issue D3: row blocks of a single image shift their windows' origin; every
    gradient (the input's added up over the blocks) matches the reference."""
    torch = pytest.importorskip("torch")
    case = make_case(rng, np.float64, n=1, groups=2, offset_groups=2, channels_per=2,
                     out_per=2, size=(9, 7), stride=stride, padding=padding,
                     dilation=dilation, use_mask=True)
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 1)  # one output row per piece
    assert_matches_reference(torch, case, rng, np.float64)


def test_single_image_memory_is_bounded_like_a_batch(rng):
    """Issue D3: one (1, 4, 128, 128) image peaked at about twice the memory of the
    same pixels as a batch of four (1, 4, 64, 64) images: it was one 4.7 MB column
    chunk, not cut by rows."""
    import tracemalloc

    def peak(n, size):
        x, o, w, b, m, kw = make_case(rng, np.float64, n=n, channels_per=4, out_per=4,
                                      size=(size, size))
        tracemalloc.start()
        out, pullback = fancydl.vjp(lambda x, o, w: deform_conv2d(x, o, w, **kw), x, o, w)
        pullback(np.ones(out.shape))
        result = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return result

    budget = 2**20
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows, "WORKSPACE_BYTES", budget)
        single, batch = peak(1, 128), peak(4, 64)
    assert single < 1.25 * batch


def test_chunking_bounds_peak_memory(rng, monkeypatch):
    import tracemalloc
    x, o, w, b, m, kw = make_case(rng, np.float64, n=16, channels_per=8, out_per=4,
                                  size=(12, 12))

    def peak():
        tracemalloc.start()
        deform_conv2d(x, o, w, b, **kw)
        result = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return result

    whole = peak()
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 1)
    assert peak() < whole / 4


def test_empty_batch(rng):
    x, o, w, b, m, kw = make_case(rng, np.float64, n=0, use_mask=True)
    out, pullback = fancydl.vjp(deform_conv2d, x, o, w, b, 1, 1, 1, m)
    np.testing.assert_array_equal(out, np.zeros((0, 1, 5, 6)))
    gx, go, gw, gb, *_, gm = pullback(np.zeros_like(out))
    assert gx.shape == x.shape and go.shape == o.shape and gm.shape == m.shape
    np.testing.assert_array_equal(gw, 0)


def test_float32_stays_float32(rng):
    x, o, w, b, m, kw = make_case(rng, np.float32, use_mask=True)
    out, pullback = fancydl.vjp(deform_conv2d, x, o, w, b, 1, 1, 1, m)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in pullback(np.ones_like(out)) if g is not None)


def test_nonfinite_offsets_like_torchvision(rng):
    """An infinite offset puts the point outside the image (sample 0: torchvision returns
    early); a NaN offset makes the sample NaN."""
    x, o, w, b, _, kw = make_case(rng, np.float64, use_bias=False)
    off_image = o.copy()
    off_image[0, 0, 2, 3] = np.inf                  # tap 0 of output (2, 3), image 0
    masked = np.ones((2, 9, *o.shape[2:]))
    masked[0, 0, 2, 3] = 0.0
    np.testing.assert_array_equal(deform_conv2d(x, off_image, w, **kw),
                                  deform_conv2d(x, o, w, mask=masked, **kw))
    nan = o.copy()
    nan[1, 5, 0, 1] = np.nan
    out = deform_conv2d(x, nan, w, **kw)
    assert np.isnan(out[1, :, 0, 1]).all()
    assert np.isfinite(np.delete(out.reshape(2, 1, -1), 1, axis=2)).all()


def test_sampling_points_of_zero_offsets_are_the_regular_grid():
    offset = np.zeros((1, 2 * 2 * 6, 3, 4))
    y, x = deform_sampling_points(offset, (2, 3), stride=2, padding=(1, 0), dilation=(2, 1))
    assert y.shape == x.shape == (1, 2, 2, 3, 3, 4)
    h, w = np.arange(3)[:, None], np.arange(4)[None, :]
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(y[0, 1, i, j], np.broadcast_to(2 * h - 1 + 2 * i, (3, 4)))
            np.testing.assert_array_equal(x[0, 1, i, j], np.broadcast_to(2 * w + j, (3, 4)))


# --- bad input ------------------------------------------------------------------------

def _good():
    rng = np.random.default_rng(0)
    return make_case(rng, np.float64, groups=2, offset_groups=1, use_mask=True)


@pytest.mark.parametrize("change, error, match", [
    (lambda a: a.update(offset=a["offset"][:, :17]), ValueError,
     r"offset.shape\[1\] must be a positive multiple of 2 \* kH \* kW = 18.*got 17"),
    (lambda a: a.update(offset=a["offset"][:, :, :4]), ValueError,
     r"offset must have shape .* = \(2, 18, 5, 6\), got \(2, 18, 4, 6\)"),
    (lambda a: a.update(offset=a["offset"][:1]), ValueError,
     r"offset must have shape .* = \(2, 18, 5, 6\), got \(1, 18, 5, 6\)"),
    (lambda a: a.update(mask=a["mask"][:, :, :, :5]), ValueError,
     r"mask must have shape .* = \(2, 9, 5, 6\), got \(2, 9, 5, 5\)"),
    (lambda a: a.update(mask=a["mask"][:, :8]), ValueError,
     r"mask must have shape .* = \(2, 9, 5, 6\), got \(2, 8, 5, 6\)"),
    (lambda a: a.update(weight=np.ones((2, 3, 3, 3))), ValueError,
     r"weight.shape\[1\] \(C_in / groups\) must divide the 2 input channels, got 3"),
    (lambda a: a.update(weight=np.ones((2, 1, 0, 3))), ValueError,
     r"weight must have kernel sizes >= 1, got shape \(2, 1, 0, 3\)"),
    (lambda a: a.update(weight=np.ones((3, 1, 3, 3))), ValueError,
     r"weight.shape\[0\] \(out channels, 3\) must be divisible by groups .* = 2"),
    (lambda a: a.update(offset=np.zeros((2, 54, 5, 6))), ValueError,
     r"the 2 input channels must be divisible by the 3 offset groups"),
    (lambda a: a.update(input=a["input"][0]), ValueError, r"input must have 4 dimensions"),
    (lambda a: a.update(input=a["input"].astype(np.float32)), TypeError,
     r"arrays must share one dtype"),
    (lambda a: a.update(input=a["input"].astype(int)), TypeError,
     r"input must have dtype float32 or float64, got int64"),
    (lambda a: a.update(bias=np.ones(3)), ValueError, r"bias must have shape \(2,\)"),
    (lambda a: a.update(stride=0), ValueError, r"stride must be a positive int"),
    (lambda a: a.update(padding=-1), ValueError, r"padding must be an int >= 0"),
    (lambda a: a.update(dilation=(1, 1, 1)), TypeError, r"dilation must be a positive int"),
    (lambda a: a.update(weight=np.ones((2, 1, 9, 9)), offset=np.zeros((2, 162, 5, 6))),
     ValueError, r"output size \(-1, 0\) is too small"),
])
def test_bad_input_is_refused_clearly(change, error, match):
    x, o, w, b, m, kw = _good()
    arguments = dict(input=x, offset=o, weight=w, bias=b, mask=m, **kw)
    change(arguments)
    with pytest.raises(error, match="deform_conv2d: " + match):
        deform_conv2d(**arguments)


# --- torchvision itself, where it imports ---------------------------------------------

def test_matches_torchvision_when_available(rng):
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    x, o, w, b, m, kw = make_case(rng, np.float64, groups=2, offset_groups=2,
                                  stride=(2, 1), dilation=(1, 2), use_mask=True)
    upstream = rng.standard_normal(deform_conv2d(x, o, w, b, mask=m, **kw).shape)
    ours, our_grads = ours_with_grads(x, o, w, b, m, kw, upstream)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, o, w, b, m)]
    out = ops.deform_conv2d(*tensors[:4], mask=tensors[4], **kw)
    grads = torch.autograd.grad(out, tensors, torch.tensor(upstream))
    np.testing.assert_allclose(ours, out.detach().numpy(), rtol=1e-10, atol=1e-10)
    for name, g in zip(["input", "offset", "weight", "bias", "mask"], grads):
        np.testing.assert_allclose(our_grads[name], g.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, offset_shape, match", [
    ((2, 4, 5, 5), (0, 4, 3, 3), (2, 18, 5, 5), r"at least one output channel"),
    ((2, 0, 5, 5), (4, 1, 3, 3), (2, 18, 5, 5), r"non-empty channels"),
    ((2, 4, 0, 5), (4, 4, 1, 1), (2, 2, 2, 7), r"non-empty channels"),
    ((2, 4, 5, 5), (4, 4, 0, 3), (2, 18, 5, 5), r"kernel sizes >= 1"),
])
def test_empty_dimensions_raise_naming_the_argument(x_shape, w_shape, offset_shape, match):
    # Issue 11: C_in = 0 used to divide by zero groups; C_out = 0 returned an empty map
    # where torchvision refuses the weight.
    with pytest.raises(ValueError, match=match):
        deform_conv2d(np.zeros(x_shape), np.zeros(offset_shape), np.zeros(w_shape),
                      padding=1)


def test_non_finite_values_raise_no_warning(rng):
    """Issue D7: NumPy warned "invalid value encountered in matmul" on an inf pixel."""
    import warnings
    x, o, w, b, m, kw = make_case(rng, np.float64, n=2, channels_per=2, out_per=2,
                                  use_mask=True)
    x[0, 0, 1, 1], w[0, 0, 0, 0], o[1, 0, 0, 0], b[0] = np.inf, -np.inf, np.nan, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, pullback = fancydl.vjp(deform_conv2d, x, o, w, b, kw["stride"], kw["padding"],
                                    kw["dilation"], m)
        upstream = rng.standard_normal(out.shape)
        upstream[0, 0, 0, 0] = np.inf
        pullback(upstream)
