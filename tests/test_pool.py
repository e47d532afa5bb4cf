"""Tests of fancydl.pool: max/avg/min/adaptive/stochastic pooling, roi_pool and roi_align."""

import contextlib
import threading
import time
import tracemalloc
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import fancydl
from fancydl import parallel
from parallel_switch import threads

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


# --- helpers ---------------------------------------------------------------------------

def _values(rng, shape, dtype, kind):
    """Random input: 'normal', 'ties' (few distinct integers), or 'nan' (normal with NaNs
    and infinities sprinkled in)."""
    if kind == "ties":
        return rng.integers(-2, 3, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "nan" and x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, x.size, max(1, x.size // 8))] = np.nan
        flat[rng.integers(0, x.size, max(1, x.size // 16))] = -np.inf
    return x


def _torch_run(torch, fn, x, upstream_rng, **kwargs):
    """Run a torch pooling; return (outputs as numpy, input gradient for a random upstream)."""
    t = torch.tensor(x, requires_grad=True)
    result = fn(t, **kwargs)
    out = result[0] if isinstance(result, tuple) else result
    upstream = upstream_rng.standard_normal(tuple(out.shape)).astype(x.dtype)
    (grad,) = torch.autograd.grad(out, t, torch.tensor(upstream))
    outputs = tuple(r.detach().numpy() for r in result) if isinstance(result, tuple) \
        else result.detach().numpy()
    return outputs, grad.numpy(), upstream


def _ours(op, x, upstream, **kwargs):
    out, pullback = fancydl.vjp(lambda t: op(t, **kwargs), x)
    first = out[0] if isinstance(out, tuple) else out
    (grad,) = pullback((upstream, None) if isinstance(out, tuple) else upstream)
    assert np.asarray(first).dtype == x.dtype
    return out, grad


def _assert_close(ours, theirs, dtype):
    np.testing.assert_allclose(ours, theirs, equal_nan=True, **TOL[dtype])


@st.composite
def pool_cases(draw, dilation=True, valid=True):
    """Shapes and arguments of a fixed-window pooling.

    With ``valid`` the input is at least as large as the padded kernel along both axes
    (a non-empty output; the batch may be empty); otherwise it is smaller along one axis.
    """
    square = draw(st.booleans())
    short = None if valid else draw(st.integers(0, 1))  # the axis made too small
    kernel = [draw(st.integers(2 if i == short or (square and not valid) else 1, 4))
              for i in (0, 1)]
    if square:
        kernel[1] = kernel[0]
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    # at most half the kernel; on the short axis, small enough that the padded window
    # is at least 2 pixels (so that an input of 1 pixel or more can be too small)
    most = [k // 2 if i != short else min(k // 2, (d * (k - 1) - 1) // 2)
            for i, (k, d) in enumerate(zip(kernel, dil))]
    padding = [draw(st.integers(0, min(most) if square else most[i])) for i in (0, 1)]
    if square:
        padding[1] = padding[0]
    smallest = [max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(kernel, padding, dil)]
    size = tuple(draw(st.integers(n, n + 8)) if i != short else draw(st.integers(1, n - 1))
                 for i, n in enumerate(smallest))
    batched = draw(st.booleans())
    shape = ((draw(st.integers(0, 2)),) if batched else ()) + (draw(st.integers(1, 3)),) + size
    kwargs = dict(kernel_size=kernel[0] if square else tuple(kernel),
                  padding=padding[0] if square else tuple(padding))
    if draw(st.booleans()):  # strides beyond the kernel too: the cost must not grow
        stride = st.one_of(st.integers(1, 3), st.sampled_from([5, 4096]))
        kwargs["stride"] = (draw(stride), draw(stride))
    if dilation:
        kwargs["dilation"] = dil
    # ceil_mode rounds a negative span up to one window: PyTorch accepts it (so do we).
    kwargs["ceil_mode"] = draw(st.booleans()) if valid else False
    return shape, kwargs




def _has_window_of_padding_only(shape, kwargs):
    """With dilation, a window can miss the input entirely (e.g. W = 1, padding 1,
    dilation 2). PyTorch then reports an index outside the window (and may abort in
    backward); fancydl outputs -inf with no gradient. Such cases are not compared."""
    kw = {k: v for k, v in kwargs.items() if k != "return_indices"}
    return bool(np.isneginf(fancydl.max_pool2d(np.zeros(shape), **kw)).any())


@given(data=st.data(), op=st.sampled_from(["max_pool2d", "avg_pool2d"]))
def test_windows_larger_than_the_padded_input_are_refused_like_torch(data, op):
    torch = pytest.importorskip("torch")
    shape, kwargs = data.draw(pool_cases(dilation=op == "max_pool2d", valid=False))
    x = np.zeros(shape)
    with pytest.raises(RuntimeError):
        getattr(torch.nn.functional, op)(torch.tensor(x), **kwargs)
    with pytest.raises(ValueError, match=f"{op}: the dilated kernel .*larger than the padded"):
        getattr(fancydl, op)(x, **kwargs)


# --- max / min pooling against PyTorch ---------------------------------------------------

@given(case=pool_cases(), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]), dtype=st.sampled_from(DTYPES),
       return_indices=st.booleans(), threaded=st.booleans())
def test_max_pool2d_matches_torch(case, seed, kind, dtype, return_indices, threaded):
    torch = pytest.importorskip("torch")
    shape, kwargs = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    F = torch.nn.functional
    kwargs["return_indices"] = return_indices
    assume(not _has_window_of_padding_only(shape, kwargs))
    theirs, their_grad, upstream = _torch_run(torch, F.max_pool2d, x, rng, **kwargs)
    with threads(threaded):
        ours, our_grad = _ours(fancydl.max_pool2d, x, upstream, **kwargs)
    if return_indices:
        _assert_close(ours[0], theirs[0], dtype)
        np.testing.assert_array_equal(ours[1], theirs[1])
        assert ours[1].dtype == np.int64
    else:
        _assert_close(ours, theirs, dtype)
    _assert_close(our_grad, their_grad, dtype)


@given(case=pool_cases(), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]), dtype=st.sampled_from(DTYPES))
def test_min_pool2d_is_negated_max_pool_of_negation(case, seed, kind, dtype):
    torch = pytest.importorskip("torch")
    shape, kwargs = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    F = torch.nn.functional
    kwargs["return_indices"] = True
    assume(not _has_window_of_padding_only(shape, kwargs))

    def torch_min(t, **kw):
        out, idx = F.max_pool2d(-t, **kw)
        return -out, idx

    theirs, their_grad, upstream = _torch_run(torch, torch_min, x, rng, **kwargs)
    ours, our_grad = _ours(fancydl.min_pool2d, x, upstream, **kwargs)
    _assert_close(ours[0], theirs[0], dtype)
    np.testing.assert_array_equal(ours[1], theirs[1])
    _assert_close(our_grad, their_grad, dtype)


def test_max_pool2d_tie_sends_whole_gradient_to_first_maximum():
    x = np.array([[[[5.0, 1.0, 5.0],
                    [0.0, 5.0, 2.0],
                    [5.0, 3.0, 4.0]]]])
    out, pullback = fancydl.vjp(lambda t: fancydl.max_pool2d(t, 3), x)
    (grad,) = pullback(np.array([[[[2.0]]]]))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0] = 2.0  # the first 5 in row-major order, not a share of four
    np.testing.assert_array_equal(out, [[[[5.0]]]])
    np.testing.assert_array_equal(grad, expected)


def test_min_pool2d_first_minimum_and_padding_never_wins():
    x = np.array([[[[1.0, 0.0], [0.0, 3.0]]]])
    out, idx = fancydl.min_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(out[0, 0], [[0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(idx[0, 0], [[1, 1], [1, 1]])


def test_max_pool2d_all_minus_inf_window_routes_to_first_real_pixel():
    x = np.full((1, 1, 2, 2), -np.inf)
    out, idx = fancydl.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    assert np.all(out == -np.inf)
    np.testing.assert_array_equal(idx[0, 0], [[0, 0], [0, 0]])


def test_max_pool2d_window_of_padding_only_is_minus_inf_without_gradient():
    # W = 1, padding 1, dilation 2: the window reads columns -1 and 1, both padding.
    x = np.ones((1, 1, 2, 1))
    (out, idx), pullback = fancydl.vjp(lambda t: fancydl.max_pool2d(
        t, (1, 2), padding=(0, 1), dilation=(1, 2), return_indices=True), x)
    np.testing.assert_array_equal(out.ravel(), [-np.inf, -np.inf])
    np.testing.assert_array_equal(idx.ravel(), [-1, -1])
    np.testing.assert_array_equal(pullback((np.ones(out.shape), None))[0], 0.0)


def test_max_pool2d_empty_batch():
    out, idx = fancydl.max_pool2d(np.zeros((0, 2, 5, 5)), 2, return_indices=True)
    assert out.shape == idx.shape == (0, 2, 2, 2)


def _min_pool_in_torch(F):
    return lambda t, *args, **kw: -F.max_pool2d(-t, *args, **kw)


@pytest.mark.parametrize("name, args, kwargs", [
    ("max_pool2d", (3,), dict(stride=2, padding=1, ceil_mode=True)),
    ("min_pool2d", (2,), {}),
    ("avg_pool2d", (3,), dict(stride=2, padding=1, count_include_pad=False)),
    ("adaptive_max_pool2d", ((3, 2),), {}),
    ("adaptive_avg_pool2d", (4,), {}),
])
def test_empty_batch_matches_torch_forward_and_backward(name, args, kwargs):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    theirs_fn = _min_pool_in_torch(F) if name == "min_pool2d" else getattr(F, name)
    x = np.zeros((0, 3, 7, 6))
    t = torch.tensor(x, requires_grad=True)
    theirs = theirs_fn(t, *args, **kwargs)
    upstream = np.zeros(tuple(theirs.shape))
    (their_grad,) = torch.autograd.grad(theirs, t, torch.tensor(upstream))
    ours, our_grad = _ours(getattr(fancydl, name), x, upstream, **dict(
        zip(["kernel_size" if "adaptive" not in name else "output_size"], args), **kwargs))
    assert ours.shape == tuple(theirs.shape) and our_grad.shape == tuple(their_grad.shape)


@pytest.mark.parametrize("training", [True, False])
def test_stochastic_pool2d_empty_batch(training):
    x = np.zeros((0, 3, 6, 6))
    out, pullback = fancydl.vjp(lambda t: fancydl.stochastic_pool2d(
        t, 2, training=training, rng=np.random.default_rng(0)), x)
    assert out.shape == (0, 3, 3, 3)
    assert pullback(out)[0].shape == x.shape


@pytest.mark.parametrize("op", [fancydl.roi_align, fancydl.roi_pool])
@pytest.mark.parametrize("batch", [0, 2])
def test_roi_zero_boxes_forward_and_backward(op, batch):
    # torchvision: a (0, C, PH, PW) output, a zero gradient of the input's shape.
    x = np.ones((batch, 3, 5, 5))
    out, pullback = fancydl.vjp(lambda t: op(t, np.zeros((0, 5)), (2, 3)), x)
    assert out.shape == (0, 3, 2, 3)
    grad = pullback(out)[0]
    assert grad.shape == x.shape and not grad.any()


def _finishes_within(seconds, fn):
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    started = time.perf_counter()
    runner.start()
    runner.join(seconds)
    assert not runner.is_alive(), f"still running after {seconds} s"
    return result["value"], time.perf_counter() - started


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d", "min_pool2d"])
def test_huge_stride_costs_nothing_more(op):
    # The windows a stride of 2**40 leaves are the first ones only; today's cost must
    # not grow with stride**2 (it used to take 21 s and 5 GB at stride 4096).
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))

    def run(stride):
        out, pullback = fancydl.vjp(lambda t: getattr(fancydl, op)(
            t, 2, stride=stride, padding=1, ceil_mode=True), x)
        return out, pullback(np.ones(out.shape))[0]

    (huge, huge_grad), seconds = _finishes_within(30, lambda: run(2 ** 40))
    small, small_grad = run(16)  # also only the first window along each axis
    np.testing.assert_array_equal(huge, small)
    np.testing.assert_array_equal(huge_grad, small_grad)
    assert seconds < 5


def test_stochastic_pool2d_huge_stride():
    x = np.random.default_rng(0).uniform(0, 1, (1, 2, 9, 9))
    (out, _), _ = _finishes_within(30, lambda: (
        fancydl.stochastic_pool2d(x, 3, stride=(2 ** 40, 4096), training=False), None))
    np.testing.assert_allclose(out, fancydl.stochastic_pool2d(x, 3, stride=9,
                                                              training=False))


def test_threads_reach_the_worker_in_pooling(monkeypatch):
    # The strategies with threaded=True run parallel.halves' threaded branch.
    ran_on = []
    original = parallel._get_worker

    def spy():
        ran_on.append(threading.current_thread().name)
        return original()

    monkeypatch.setattr(parallel, "_get_worker", spy)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    with threads(True):
        out, pullback = fancydl.vjp(lambda t: fancydl.max_pool2d(t, 2), x)
        pullback(np.ones(out.shape))
    assert len(ran_on) == 2  # forward and backward
    with threads(False):
        fancydl.max_pool2d(x, 2)
    assert len(ran_on) == 2


# --- average pooling against PyTorch --------------------------------------------------

@given(case=pool_cases(dilation=False), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "nan"]), dtype=st.sampled_from(DTYPES),
       count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.sampled_from([-3, -2, -1, 1, 2, 5, 7])),
       threaded=st.booleans())
def test_avg_pool2d_matches_torch(case, seed, kind, dtype, count_include_pad,
                                  divisor_override, threaded):
    torch = pytest.importorskip("torch")
    shape, kwargs = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    F = torch.nn.functional
    kwargs.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    theirs, their_grad, upstream = _torch_run(torch, F.avg_pool2d, x, rng, **kwargs)
    with threads(threaded):
        ours, our_grad = _ours(fancydl.avg_pool2d, x, upstream, **kwargs)
    _assert_close(ours, theirs, dtype)
    _assert_close(our_grad, their_grad, dtype)


def test_avg_pool2d_ceil_mode_divisor_excludes_the_overhang():
    # H = 3, k = 2, s = 2, ceil: the last window covers row 2 and a row beyond the
    # input (no padding), so PyTorch divides by 2, not 4, even with count_include_pad.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out = fancydl.avg_pool2d(x, 2, ceil_mode=True)
    np.testing.assert_allclose(out[0, 0], [[2.0, 3.5], [6.5, 8.0]])


# --- adaptive pooling against PyTorch ---------------------------------------------------

@st.composite
def adaptive_cases(draw):
    shape = ((draw(st.integers(1, 2)),) if draw(st.booleans()) else ()) + (
        draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    size = draw(st.one_of(st.integers(1, 10), st.tuples(
        st.one_of(st.none(), st.integers(1, 10)), st.one_of(st.none(), st.integers(1, 10)))))
    return shape, size


@given(case=adaptive_cases(), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]), dtype=st.sampled_from(DTYPES))
def test_adaptive_max_pool2d_matches_torch(case, seed, kind, dtype):
    torch = pytest.importorskip("torch")
    shape, size = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    F = torch.nn.functional
    theirs, their_grad, upstream = _torch_run(torch, F.adaptive_max_pool2d, x, rng,
                                              output_size=size, return_indices=True)
    ours, our_grad = _ours(fancydl.adaptive_max_pool2d, x, upstream, output_size=size,
                           return_indices=True)
    _assert_close(ours[0], theirs[0], dtype)
    np.testing.assert_array_equal(ours[1], theirs[1])
    _assert_close(our_grad, their_grad, dtype)


@given(case=adaptive_cases(), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "nan"]), dtype=st.sampled_from(DTYPES))
def test_adaptive_avg_pool2d_matches_torch(case, seed, kind, dtype):
    torch = pytest.importorskip("torch")
    shape, size = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    F = torch.nn.functional
    theirs, their_grad, upstream = _torch_run(torch, F.adaptive_avg_pool2d, x, rng,
                                              output_size=size)
    ours, our_grad = _ours(fancydl.adaptive_avg_pool2d, x, upstream, output_size=size)
    _assert_close(ours, theirs, dtype)
    _assert_close(our_grad, their_grad, dtype)


@pytest.mark.parametrize("shape, output_size, upstream, dtype", [
    # gather (a NaN in channel 0): channel 1's shares must be divided before summing
    ((1, 2, 2, 1), (1, 3), [[[[np.nan, 2e38, 2e38]], [[2e38, 2e38, 2e38]]]],
     np.float32),
    # dense products: 1e308 overflows inside them, and inf times their zeros is NaN
    ((1, 1, 1, 2), (3, 3), np.full((1, 1, 3, 3), 1e308), np.float64),
    # more bins than pixels (each pixel in 3 of them), sums near the float32 limit
    ((1, 1, 1, 2), (1, 5), np.full((1, 1, 1, 5), 1e38), np.float32),
])
def test_adaptive_avg_pool2d_backward_overflows_where_torch_does(shape, output_size,
                                                                  upstream, dtype):
    """Huge but finite upstream values: inf exactly where PyTorch's gradient is inf
    (never NaN from an overflow meeting a zero weight, never inf from summing before
    dividing by the bin's area)."""
    torch = pytest.importorskip("torch")
    x = np.zeros(shape, dtype)
    upstream = np.asarray(upstream, dtype)
    _, pullback = fancydl.vjp(lambda t: fancydl.adaptive_avg_pool2d(t, output_size), x)
    (ours,) = pullback(upstream)
    t = torch.tensor(x, requires_grad=True)
    (theirs,) = torch.autograd.grad(
        torch.nn.functional.adaptive_avg_pool2d(t, output_size), t, torch.tensor(upstream))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs.numpy()))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs.numpy()))
    _assert_close(ours, theirs.numpy(), dtype)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_backward_splits_by_the_size_of_the_input(op, monkeypatch):
    """The backward scatters into an input-sized gradient: whether its two halves go to
    the worker is decided by the input's size, not by the (4 times smaller, stride 2)
    output's. Deciding by the output made avg_pool2d's benchmark case run whole."""
    from fancydl import pool
    sizes = []

    def recording(fn, *arrays, size=None):
        sizes.append(arrays[0].size if size is None else size)
        return parallel.halves(fn, *arrays, size=size)

    x = np.random.default_rng(0).standard_normal((4, 2, 8, 8))
    out, pullback = fancydl.vjp(lambda t: getattr(fancydl, op)(t, 3, 2, 1), x)
    monkeypatch.setattr(pool, "halves", recording)
    pullback(np.ones(out.shape))
    assert sizes == [x.size]


@pytest.mark.parametrize("output_size", [(2, 2 ** 16 + 3), (5, 3 * 2 ** 17 + 1)])
def test_adaptive_avg_pool2d_backward_costs_input_plus_output(output_size):
    """The backward used to multiply by dense (out, size) bin-averaging matrices: for
    (2, 2**16 + 3) from 2**17 columns, one of 2**16 x 2**17 float64 values (64 GiB).
    Each pixel now gathers from the bins that cover it (two at most in the first case,
    four in the second, with three times more bins than pixels): memory and time
    O(input + output)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 3, 2 ** 17))
    out, pullback = fancydl.vjp(lambda t: fancydl.adaptive_avg_pool2d(t, output_size), x)
    upstream = rng.standard_normal(out.shape)
    tracemalloc.start()
    try:
        (grad,), seconds = _finishes_within(30, lambda: pullback(upstream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 5
    assert peak < 16 * (x.nbytes + upstream.nbytes)
    t = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.adaptive_avg_pool2d(t, output_size)
    (their_grad,) = torch.autograd.grad(theirs, t, torch.tensor(upstream))
    np.testing.assert_allclose(out, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, their_grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, kwargs", [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", dict(kernel_size=2, stride=4096)),
    ("adaptive_avg_pool2d", dict(output_size=(3, 2))),
    ("adaptive_avg_pool2d", dict(output_size=(9, 11))),
    ("adaptive_max_pool2d", dict(output_size=(3, 2))),
])
def test_non_finite_upstream_gradient_stays_in_its_window(name, kwargs):
    # An inf or NaN upstream value reaches only the inputs of its own window, as in
    # PyTorch (a product with zero weights would spread NaN everywhere).
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    t = torch.tensor(x, requires_grad=True)
    theirs = getattr(torch.nn.functional, name)(t, **kwargs)
    upstream = _sprinkle(rng, rng.standard_normal(tuple(theirs.shape)))
    (their_grad,) = torch.autograd.grad(theirs, t, torch.tensor(upstream))
    _, our_grad = _ours(getattr(fancydl, name), x, upstream, **kwargs)
    _assert_close(our_grad, their_grad.numpy(), np.float64)


def test_adaptive_bins_by_hand():
    # 5 pixels into 3 bins: [0, 2), [1, 4), [3, 5) (overlapping, unequal).
    start, end = fancydl.pool.adaptive_bins(5, 3)
    np.testing.assert_array_equal(start, [0, 1, 3])
    np.testing.assert_array_equal(end, [2, 4, 5])
    x = np.array([[[[1.0, 5.0, 2.0, 4.0, 3.0]]]])
    np.testing.assert_allclose(fancydl.adaptive_avg_pool2d(x, (1, 3))[0, 0, 0],
                               [3.0, 11.0 / 3.0, 3.5])
    np.testing.assert_array_equal(fancydl.adaptive_max_pool2d(x, (1, 3))[0, 0, 0],
                                  [5.0, 5.0, 4.0])


# --- gradcheck ------------------------------------------------------------------------

@pytest.mark.parametrize("op, kwargs", [
    (fancydl.max_pool2d, dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2),
                              ceil_mode=True)),
    (fancydl.min_pool2d, dict(kernel_size=(2, 3), stride=1, padding=1)),
    (fancydl.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False)),
    (fancydl.avg_pool2d, dict(kernel_size=2, divisor_override=3)),
    (fancydl.adaptive_avg_pool2d, dict(output_size=(4, 3))),
    (fancydl.adaptive_max_pool2d, dict(output_size=(3, None))),
])
def test_gradcheck_fixed_and_adaptive(op, kwargs, rng):
    x = rng.standard_normal((2, 2, 7, 6))  # distinct values: no ties at the maxima
    assert fancydl.gradcheck(lambda t: op(t, **kwargs), x)


def test_gradcheck_stochastic_both_modes(rng):
    x = rng.uniform(0.1, 2.0, (2, 2, 6, 6))  # positive: differences stay in the domain
    assert fancydl.gradcheck(lambda t: fancydl.stochastic_pool2d(t, 2, training=False), x)
    assert fancydl.gradcheck(
        lambda t: fancydl.stochastic_pool2d(t, (2, 3), stride=(2, 1),
                                            rng=np.random.default_rng(7)), x)


# --- stochastic pooling ------------------------------------------------------------------

def test_stochastic_test_mode_by_hand():
    x = np.array([[[[1.0, 2.0, 0.0, 0.0],
                    [3.0, 4.0, 0.0, 0.0]]]])
    out = fancydl.stochastic_pool2d(x, 2, training=False)
    # (1 + 4 + 9 + 16) / (1 + 2 + 3 + 4) = 3; the all-zero region gives 0.
    np.testing.assert_allclose(out[0, 0], [[3.0, 0.0]])
    _, pullback = fancydl.vjp(lambda t: fancydl.stochastic_pool2d(t, 2, training=False), x)
    (grad,) = pullback(np.array([[[[1.0, 1.0]]]]))
    # (2 a_i S - sum a^2) / S^2 = (20 a_i - 30) / 100
    np.testing.assert_allclose(grad[0, 0, :, :2], [[-0.1, 0.1], [0.3, 0.5]])
    np.testing.assert_array_equal(grad[0, 0, :, 2:], 0.0)


def test_stochastic_training_is_seeded_and_picks_region_elements(rng):
    x = rng.uniform(0, 1, (2, 3, 8, 8)).round(1)
    a = fancydl.stochastic_pool2d(x, 2, rng=np.random.default_rng(1))
    b = fancydl.stochastic_pool2d(x, 2, rng=np.random.default_rng(1))
    c = fancydl.stochastic_pool2d(x, 2, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    regions = x.reshape(2, 3, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 4, 4, 4)
    assert np.all((regions == a[..., None]).any(axis=-1))
    positive = regions.sum(-1) > 0
    assert np.all(a[positive] > 0)  # a zero is never drawn from a region with mass
    assert np.all(a[~positive] == 0)


def test_stochastic_sampling_frequencies_match_probabilities():
    stats = pytest.importorskip("scipy.stats")
    values = np.array([0.0, 1.0, 2.0, 5.0])
    n = 20000
    x = np.broadcast_to(values.reshape(1, 1, 2, 2), (1, n, 2, 2)).copy()
    out = fancydl.stochastic_pool2d(x, 2, rng=np.random.default_rng(0)).ravel()
    counts = np.array([(out == v).sum() for v in values])
    assert counts.sum() == n and counts[0] == 0
    expected = n * values[1:] / values.sum()
    chi2 = ((counts[1:] - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, df=2)


def test_stochastic_mean_of_training_outputs_is_test_output(rng):
    x = rng.uniform(0, 1, (1, 2, 4, 4))
    draws = 4000
    batch = np.broadcast_to(x, (draws, 2, 4, 4)).copy()
    mean = fancydl.stochastic_pool2d(batch, 2, rng=np.random.default_rng(3)).mean(0)
    test = fancydl.stochastic_pool2d(x, 2, training=False)[0]
    regions = x[0].reshape(2, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(2, 2, 2, 4)
    p = regions / regions.sum(-1, keepdims=True)
    std = np.sqrt((p * regions ** 2).sum(-1) - test ** 2)
    assert np.all(np.abs(mean - test) <= 5 * std / np.sqrt(draws))


def test_stochastic_float32_stays_float32(rng):
    x = rng.uniform(0, 1, (1, 2, 4, 4)).astype(np.float32)
    assert fancydl.stochastic_pool2d(x, 2, rng=rng).dtype == np.float32
    assert fancydl.stochastic_pool2d(x, 2, training=False).dtype == np.float32


# --- ROI pooling and ROI Align: an independent loop reference -------------------------
# The loops (torchvision's kernels, one box, bin and sample at a time) are public in
# fancydl/references.py, where the roi_pooling chapter calls them too.

from fancydl.references import (c_round, roi_align_loops,  # noqa: E402
                                roi_align_loops_grad, roi_pool_loops,
                                roi_pool_loops_grad)


@given(st.floats(-1e6, 1e6) | st.integers(-1000, 1000).map(lambda i: i / 2))
def test_reference_c_round_rounds_half_away_from_zero(value):
    expected = int(Decimal(repr(float(value))).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert c_round(value) == expected


@st.composite
def roi_cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    k = draw(st.integers(0, 4))
    coord = st.integers(-8, 40).map(lambda q: q / 4)  # quarter pixels: rounding ties
    rois = [(draw(st.integers(0, n - 1)), draw(coord), draw(coord), draw(coord), draw(coord))
            for _ in range(k)]
    output = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    scale = draw(st.sampled_from([1.0, 0.5, 0.75, 2.0]))
    return (n, c, h, w), np.array(rois, dtype=np.float64).reshape(k, 5), output, scale


@given(case=roi_cases(), seed=st.integers(0, 2 ** 32 - 1), ties=st.booleans())
def test_roi_pool_matches_loop_reference(case, seed, ties):
    shape, rois, output, scale = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, np.float64, "ties" if ties else "normal")
    expected, argmax = roi_pool_loops(x, rois, output, scale)
    out, pullback = fancydl.vjp(lambda t: fancydl.roi_pool(t, rois, output, scale), x)
    np.testing.assert_array_equal(out, expected)
    upstream = rng.standard_normal(out.shape)
    np.testing.assert_allclose(pullback(upstream)[0],
                               roi_pool_loops_grad(x.shape, rois, argmax, upstream),
                               rtol=1e-12, atol=1e-12)


def _sprinkle(rng, a):
    """A copy of ``a`` with some entries replaced by NaN, inf or -inf."""
    a = a.copy()
    flat = a.reshape(-1)
    if flat.size:
        spots = rng.integers(0, flat.size, max(1, flat.size // 6))
        flat[spots] = rng.choice([np.nan, np.inf, -np.inf], len(spots))
    return a


@given(case=roi_cases(), seed=st.integers(0, 2 ** 32 - 1),
       sampling_ratio=st.integers(-1, 3), aligned=st.booleans(),
       nonfinite=st.sampled_from([None, "input", "upstream"]), threaded=st.booleans())
def test_roi_align_matches_loop_reference(case, seed, sampling_ratio, aligned, nonfinite,
                                          threaded):
    # Non-finite values propagate as in torchvision's sums of products: a tap of
    # weight zero on an infinite value gives NaN there too.
    shape, rois, output, scale = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if nonfinite == "input":
        x = _sprinkle(rng, x)
    with np.errstate(invalid="ignore"):  # 0 * inf in the reference's sums
        expected, taps = roi_align_loops(x, rois, output, scale, sampling_ratio, aligned)
    with threads(threaded):
        out, pullback = fancydl.vjp(lambda t: fancydl.roi_align(
            t, rois, output, scale, sampling_ratio, aligned), x)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
        upstream = rng.standard_normal(out.shape)
        if nonfinite == "upstream":
            upstream = _sprinkle(rng, upstream)
        with np.errstate(invalid="ignore"):
            expected_grad = roi_align_loops_grad(x.shape, taps, upstream)
        np.testing.assert_allclose(pullback(upstream)[0], expected_grad, rtol=1e-10,
                                   atol=1e-12)


@given(case=roi_cases(), seed=st.integers(0, 2 ** 32 - 1), aligned=st.booleans())
def test_roi_ops_float32_agree_with_float64(case, seed, aligned):
    shape, rois, output, _ = case
    # Bin edges and sample counts are floors and ceilings of box sizes over the output
    # size: where they land exactly on an integer, float32 and float64 may round to
    # different sides (torchvision computes in the input's dtype too). Outputs of 1 or 2
    # bins and power-of-two scales keep every such quotient exact in both dtypes.
    output, scale = tuple(min(size, 2) for size in output), 0.5
    x = np.random.default_rng(seed).standard_normal(shape)
    for op, kwargs in ((fancydl.roi_align, dict(aligned=aligned)), (fancydl.roi_pool, {})):
        single = op(x.astype(np.float32), rois.astype(np.float32), output, scale, **kwargs)
        double = op(x, rois, output, scale, **kwargs)
        assert single.dtype == np.float32 and single.shape == double.shape
        np.testing.assert_allclose(single, double, rtol=1e-4, atol=1e-4)


def _ramp(h=8, w=8):
    return (10 * np.arange(h, dtype=np.float64)[:, None] + np.arange(w))[None, None]


def test_roi_align_known_values():
    box = np.array([[0.0, 1.0, 1.0, 5.0, 5.0]])
    np.testing.assert_allclose(fancydl.roi_align(_ramp(), box, 2)[0, 0],
                               [[22.0, 24.0], [42.0, 44.0]])
    np.testing.assert_allclose(fancydl.roi_align(_ramp(), box, 2, aligned=True)[0, 0],
                               [[16.5, 18.5], [36.5, 38.5]])


def test_roi_align_border_clamp_by_hand():
    # A box hanging past the right edge of a 1x4 image (values 0..3), one sample per
    # bin: x = 3.0 is the last pixel, x = 4.0 = W still clamps to it, x = 5.0 > W is 0.
    img = np.arange(4.0).reshape(1, 1, 1, 4)
    out = fancydl.roi_align(img, np.array([[0.0, 2.5, 0.0, 5.5, 1.0]]), (1, 3),
                            sampling_ratio=1)
    np.testing.assert_allclose(out[0, 0, 0], [3.0, 3.0, 0.0])


def test_roi_pool_rounds_half_away_from_zero_by_hand():
    # x1 = 2.5 rounds to 3 (numpy's round would give 2): the box covers columns 3..5.
    out = fancydl.roi_pool(_ramp(), np.array([[0.0, 2.5, 0.0, 5.0, 0.0]]), (1, 3))
    np.testing.assert_array_equal(out[0, 0, 0], [3.0, 4.0, 5.0])
    # An empty bin (box entirely outside the image) outputs 0 and takes no gradient.
    box = np.array([[0.0, 20.0, 20.0, 30.0, 30.0]])
    out, pullback = fancydl.vjp(lambda t: fancydl.roi_pool(t, box, 2), _ramp())
    assert np.all(out == 0) and np.all(pullback(np.ones(out.shape))[0] == 0)


def test_roi_boxes_as_list_equal_boxes_as_array(rng):
    x = rng.standard_normal((2, 3, 8, 8))
    per_image = [np.array([[0.5, 1.0, 4.0, 6.5]]), np.array([[1.0, 1.0, 7.0, 3.0],
                                                              [0.0, 0.0, 2.0, 2.0]])]
    stacked = np.array([[0, 0.5, 1.0, 4.0, 6.5], [1, 1.0, 1.0, 7.0, 3.0],
                        [1, 0.0, 0.0, 2.0, 2.0]])
    for op in (fancydl.roi_align, fancydl.roi_pool):
        np.testing.assert_array_equal(op(x, per_image, 3), op(x, stacked, 3))


def test_roi_gradcheck(rng):
    x = rng.standard_normal((2, 2, 6, 7))
    boxes = np.array([[1.0, 0.3, 0.7, 4.2, 5.1], [0.0, -1.5, 2.0, 8.0, 3.0]])
    for aligned in (False, True):
        assert fancydl.gradcheck(
            lambda t: fancydl.roi_align(t, boxes, (3, 2), 0.9, -1, aligned), x)
    assert fancydl.gradcheck(lambda t: fancydl.roi_pool(t, boxes, (3, 2), 0.9), x)


def test_roi_ops_match_torchvision(rng):
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    x = rng.standard_normal((2, 3, 9, 8))
    boxes = np.array([[1.0, 0.3, 0.7, 4.2, 5.1], [0.0, -1.5, 2.0, 8.5, 3.5],
                      [0.0, 2.5, 2.5, 2.5, 2.5]])
    for aligned in (False, True):
        theirs = ops.roi_align(torch.tensor(x), torch.tensor(boxes), (3, 2), 0.75, -1,
                               aligned).numpy()
        np.testing.assert_allclose(fancydl.roi_align(x, boxes, (3, 2), 0.75, -1, aligned),
                                   theirs, rtol=1e-10, atol=1e-12)
    theirs = ops.roi_pool(torch.tensor(x), torch.tensor(boxes), (3, 2), 0.75).numpy()
    np.testing.assert_allclose(fancydl.roi_pool(x, boxes, (3, 2), 0.75), theirs)


# --- bad input -------------------------------------------------------------------------

X = np.zeros((1, 2, 4, 4))


@pytest.mark.parametrize("call, error, match", [
    (lambda: fancydl.max_pool2d(X, 7), ValueError,
     r"the dilated kernel \(7, 7\).*larger than the padded input \(4, 4\)"),
    (lambda: fancydl.max_pool2d(X, 3, padding=2), ValueError,
     r"padding must be at most half of kernel_size \(1, 1\), got padding=\(2, 2\)"),
    (lambda: fancydl.avg_pool2d(X, 2, stride=0), ValueError, r"stride.*got 0"),
    (lambda: fancydl.max_pool2d(X, 2, dilation=(1, 0)), ValueError, r"dilation.*\(1, 0\)"),
    (lambda: fancydl.max_pool2d(X, 2.0), TypeError, r"kernel_size must be .* got float 2.0"),
    (lambda: fancydl.max_pool2d(X[0, 0], 2), ValueError, r"input must have 3 or 4 dim"),
    (lambda: fancydl.max_pool2d(X.astype(int), 2), TypeError, r"input must have dtype float"),
    (lambda: fancydl.min_pool2d(X, 5), ValueError, r"min_pool2d: the dilated kernel \(5, 5\)"),
    (lambda: fancydl.max_pool2d(np.zeros((1, 0, 4, 4)), 2), ValueError, r"non-empty"),
    (lambda: fancydl.avg_pool2d(X, 2, divisor_override=0), ValueError,
     r"divisor_override must be non-zero, got 0"),
    (lambda: fancydl.avg_pool2d(X, 2, divisor_override=1.5), TypeError, r"divisor_override"),
    (lambda: fancydl.adaptive_avg_pool2d(X, -1), ValueError, r"output_size.*got \(-1, -1\)"),
    (lambda: fancydl.adaptive_max_pool2d(X, (1, 2, 3)), TypeError, r"output_size"),
    (lambda: fancydl.stochastic_pool2d(X - 1, 2), ValueError,
     r"finite and non-negative.*got a value -1"),
    (lambda: fancydl.stochastic_pool2d(X + np.nan, 2), ValueError, r"non-negative.*nan"),
    (lambda: fancydl.stochastic_pool2d(X, 2, rng=0), TypeError, r"rng must be a numpy"),
    (lambda: fancydl.stochastic_pool2d(X, 5), ValueError, r"larger than the padded input"),
    (lambda: fancydl.roi_align(X, np.zeros((2, 4)), 2), ValueError,
     r"boxes must have shape \(K, 5\).*got shape \(2, 4\)"),
    (lambda: fancydl.roi_pool(X, [np.zeros((2, 5))], 2), ValueError,
     r"boxes\[0\] of shape \(2, 5\)"),
    (lambda: fancydl.roi_align(X, np.array([[1.0, 0, 0, 2, 2]]), 2), ValueError,
     r"batch indices must be integers in \[0, 1\).*got 1.0"),
    (lambda: fancydl.roi_pool(X, np.array([[0.5, 0, 0, 2, 2]]), 2), ValueError,
     r"batch indices.*got 0.5"),
    (lambda: fancydl.roi_align(X, np.zeros((1, 5), np.int64), 2), TypeError,
     r"boxes must have dtype float"),
    (lambda: fancydl.roi_align(X[0], np.zeros((1, 5)), 2), ValueError,
     r"input must have 4 dim"),
    (lambda: fancydl.roi_align(X, np.zeros((1, 5)), 0), ValueError, r"output_size"),
    (lambda: fancydl.roi_align(X, np.zeros((1, 5)), 2, spatial_scale=0), ValueError,
     r"spatial_scale must be > 0"),
    (lambda: fancydl.roi_align(X, np.zeros((1, 5)), 2, sampling_ratio=1.5), TypeError,
     r"sampling_ratio must be an int"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("op", [fancydl.roi_align, fancydl.roi_pool])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30, -2.0 ** 25])
def test_roi_non_finite_or_huge_box_coordinates_are_refused(op, bad):
    boxes = np.array([[0.0, 1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 0.0, 2.0, 2.0]])
    boxes[1, 3] = bad
    with pytest.raises(ValueError, match=r"boxes must have finite coordinates.*box 1"):
        op(X, boxes, 2)
    # the limit applies after spatial_scale: 2**25 / 4 is fine
    if np.isfinite(bad) and abs(bad) < 1e10:
        assert np.isfinite(op(X, boxes, 2, spatial_scale=0.25)).all()


def test_roi_align_far_box_costs_only_its_samples_inside_the_map():
    # A box of 2**24 pixels at 1 sample per pixel would be 2**48 samples; only the
    # ones in [-1, H] are generated, and the output matches the loop reference's
    # formula on a box cut to the map (bins outside read nothing).
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 6))
    boxes = np.array([[0.0, -2.0 ** 23, -3.0, 2.0 ** 23, 4.0]])
    out, pullback = fancydl.vjp(lambda t: fancydl.roi_align(t, boxes, (2, 3)), x)
    grad = pullback(np.ones(out.shape))[0]
    assert np.isfinite(out).all() and np.isfinite(grad).all()
    # The middle column of bins straddles the map: it averages ceil(2**24 / 3)
    # samples of which at most W + 2 read the map, so its output is tiny but not 0.
    assert np.all(np.abs(out[..., 1]) < 1e-4) and np.all(out[..., [0, 2]] == 0)


def test_roi_align_each_box_is_cropped_to_its_own_reach():
    # One large box must not make the small boxes' work large.
    from fancydl.pool import _RoIAlignPlan

    boxes = np.array([[0.0, 1, 1, 3, 3], [0.0, 0, 0, 60, 60], [0.0, 10, 10, 13, 12]])
    plan = _RoIAlignPlan((1, 1, 64, 64), np.zeros(3, np.intp), boxes[:, 1:], (7, 7), 1.0,
                         -1, True, np.dtype(np.float64))
    crops = {int(k): crop for boxes_, crop in plan.groups for k in boxes_}
    assert crops[1][0] >= 60 and crops[1][1] >= 60
    assert max(crops[0]) <= 4 and max(crops[2]) <= 6


def test_roi_align_groups_split_into_halves_of_equal_work():
    from fancydl.pool import _balanced_order

    works = [9, 1, 4, 4, 2, 7, 3]
    order = _balanced_order(works)
    first, second = np.split(order, 2)
    load = [sum(works[i] for i in side if i >= 0) for side in (first, second)]
    assert sorted(i for i in order if i >= 0) == list(range(len(works)))
    assert abs(load[0] - load[1]) <= max(works) and sum(load) == sum(works)
    assert _balanced_order([]).size == 0


def test_roi_pool_each_box_loops_over_its_own_bins(monkeypatch):
    from fancydl import pool

    seen = []
    original = pool._bin_maxima

    def spy(table, plane, h0, h1, w0, w1, width, tall, wide):
        seen.append((len(plane), tall, wide))
        return original(table, plane, h0, h1, w0, w1, width, tall, wide)

    monkeypatch.setattr(pool, "_bin_maxima", spy)
    x = np.random.default_rng(0).standard_normal((1, 2, 64, 64))
    boxes = np.array([[0.0, 1, 1, 3, 3]] * 5 + [[0.0, 0, 0, 63, 63]])
    out = fancydl.roi_pool(x, boxes, 2)
    expected, _ = roi_pool_loops(x, boxes, (2, 2), 1.0)
    np.testing.assert_array_equal(out, expected)
    assert sorted(seen) == [(1, 32, 32), (5, 2, 2)]


def test_roi_empty_box_list_gives_empty_output():
    for op in (fancydl.roi_align, fancydl.roi_pool):
        assert op(X, np.zeros((0, 5)), (2, 3)).shape == (0, 2, 2, 3)


# --- global average pooling ------------------------------------------------------------

@given(shape=st.sampled_from([(2, 3, 5, 4), (0, 3, 4, 4), (3, 1, 7), (1, 2, 1, 1)]),
       seed=st.integers(0, 2 ** 32 - 1), kind=st.sampled_from(["normal", "nan"]),
       dtype=st.sampled_from(DTYPES))
def test_global_average_pooling_matches_torch(shape, seed, kind, dtype):
    # adaptive_avg_pool2d(x, 1): one mean per channel, the head of SE blocks and of
    # all-convolutional classifiers.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    theirs, their_grad, upstream = _torch_run(torch, torch.nn.functional.adaptive_avg_pool2d,
                                              x, rng, output_size=1)
    ours, our_grad = _ours(fancydl.adaptive_avg_pool2d, x, upstream, output_size=1)
    assert ours.shape == shape[:-2] + (1, 1)
    _assert_close(ours, theirs, dtype)
    _assert_close(ours, x.mean(axis=(-2, -1), keepdims=True), dtype)
    _assert_close(our_grad, their_grad, dtype)


# --- max unpooling ---------------------------------------------------------------------

@contextlib.contextmanager
def torch_one_thread(torch):
    """PyTorch's CPU max_unpool2d writes repeated indices in row-major order (the last
    one stays) only on one thread; with more, which one stays varies between runs."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@st.composite
def unpool_cases(draw):
    """Input shape, unpooling arguments (kernel, stride, padding, output_size as None,
    (H, W) or (N, C, H, W)) and the output plane size they give."""
    batch = (draw(st.integers(0, 2)),) if draw(st.booleans()) else ()
    shape = batch + (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    steps = kernel if stride is None else stride
    default = tuple((n - 1) * s + k - 2 * p
                    for n, k, s, p in zip(shape[-2:], kernel, steps, padding))
    form = draw(st.sampled_from(["default", "pair", "full"]))
    size = default if form == "default" else tuple(
        d + draw(st.integers(-s + 1, s - 1)) for d, s in zip(default, steps))
    assume(min(size) >= 1)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding)
    if form != "default":
        full = (1,) * (4 - len(shape)) + shape[:-2] + size  # PyTorch reads 2 or 4
        kwargs["output_size"] = size if form == "pair" else full
    return shape, kwargs, size


def _unpool_indices(rng, shape, plane, repeats):
    """Random flat indices into a plane of ``plane`` pixels: distinct within each
    plane, or drawn with repeats."""
    if repeats:
        return rng.integers(0, plane, shape)
    planes, count = int(np.prod(shape[:-2])), shape[-2] * shape[-1]
    chosen = np.argsort(rng.random((planes, plane)), axis=1)[:, :count]
    return chosen.reshape(shape)


@given(case=unpool_cases(), seed=st.integers(0, 2 ** 32 - 1), repeats=st.booleans(),
       kind=st.sampled_from(["normal", "nan"]), dtype=st.sampled_from(DTYPES))
def test_max_unpool2d_matches_torch(case, seed, repeats, kind, dtype):
    torch = pytest.importorskip("torch")
    shape, kwargs, size = case
    plane = size[0] * size[1]
    assume(repeats or plane >= shape[-2] * shape[-1])
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    indices = _unpool_indices(rng, shape, plane, repeats)
    t = torch.tensor(x, requires_grad=True)
    with torch_one_thread(torch):
        theirs = torch.nn.functional.max_unpool2d(t, torch.tensor(indices), **kwargs)
    upstream = rng.standard_normal(tuple(theirs.shape)).astype(dtype)
    (their_grad,) = torch.autograd.grad(theirs, t, torch.tensor(upstream))
    ours, our_grad = _ours(lambda v, **kw: fancydl.max_unpool2d(v, indices, **kw), x,
                           upstream, **kwargs)
    assert ours.shape == tuple(theirs.shape) == shape[:-2] + size
    np.testing.assert_array_equal(ours, theirs.detach().numpy())
    np.testing.assert_array_equal(our_grad, their_grad.numpy())


@given(case=pool_cases(dilation=False), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]), dtype=st.sampled_from(DTYPES))
def test_unpooling_the_pooled_maxima_puts_them_back_at_their_switches(case, seed, kind,
                                                                       dtype):
    shape, kwargs = case
    x = _values(np.random.default_rng(seed), shape, dtype, kind)
    pooled, switches = fancydl.max_pool2d(x, return_indices=True, **kwargs)
    geometry = {k: kwargs.get(k) for k in ("kernel_size", "stride", "padding")}
    restored = fancydl.max_unpool2d(pooled, switches, output_size=shape[-2:], **geometry)
    assert restored.shape == x.shape and restored.dtype == x.dtype
    def per_plane(a):
        return a.reshape(int(np.prod(shape[:-2])), a.shape[-2] * a.shape[-1])

    flat_x, flat_restored, where = per_plane(x), per_plane(restored), per_plane(switches)
    # each maximum is back where it was found, and equals the input there
    at_switch = np.take_along_axis(flat_restored, where, axis=1)
    np.testing.assert_array_equal(at_switch, per_plane(pooled))
    np.testing.assert_array_equal(at_switch, np.take_along_axis(flat_x, where, axis=1))
    # and every other pixel is zero
    elsewhere = np.ones(flat_x.shape, bool)
    np.put_along_axis(elsewhere, where, False, axis=1)
    assert not flat_restored[elsewhere].any()


def test_max_unpool2d_repeated_index_keeps_last_value_and_gathers_gradient():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    indices = np.array([[[[0, 0], [0, 3]]]])
    out, pullback = fancydl.vjp(lambda t: fancydl.max_unpool2d(t, indices, 2), x)
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 0, 0], expected[0, 0, 0, 3] = 3.0, 4.0  # the last of 1, 2, 3 stays
    np.testing.assert_array_equal(out, expected)
    upstream = np.arange(16.0).reshape(1, 1, 4, 4) + 1
    # every repeat reads the gradient of the pixel it was written to, as in PyTorch
    np.testing.assert_array_equal(pullback(upstream)[0], [[[[1.0, 1.0], [1.0, 4.0]]]])


def test_max_unpool2d_gradcheck(rng):
    x = rng.standard_normal((2, 3, 3, 4))
    indices = _unpool_indices(rng, x.shape, 7 * 9, repeats=False)
    assert fancydl.gradcheck(
        lambda t: fancydl.max_unpool2d(t, indices, (3, 2), stride=(2, 3), padding=(0, 1),
                                       output_size=(7, 9)), x)
    unbatched = _unpool_indices(rng, x.shape[1:], 6 * 8, repeats=False)
    assert fancydl.gradcheck(lambda t: fancydl.max_unpool2d(t, unbatched, 2), x[0])


def test_max_unpool2d_empty_batch_matches_torch():
    torch = pytest.importorskip("torch")
    x, indices = np.zeros((0, 2, 3, 3)), np.zeros((0, 2, 3, 3), np.int64)
    theirs = torch.nn.functional.max_unpool2d(torch.tensor(x), torch.tensor(indices), 2)
    out, pullback = fancydl.vjp(lambda t: fancydl.max_unpool2d(t, indices, 2), x)
    assert out.shape == tuple(theirs.shape) == (0, 2, 6, 6)
    assert pullback(out)[0].shape == x.shape


def test_max_unpool2d_refuses_traced_indices():
    x = np.ones((1, 1, 2, 2))
    with pytest.raises(TypeError, match="max_unpool2d: cannot differentiate with respect "
                                        "to indices"):
        fancydl.vjp(lambda t, i: fancydl.max_unpool2d(t, i, 2), x, np.zeros((1, 1, 2, 2)))


U = np.ones((1, 1, 2, 2))
I = np.array([[[[0, 1], [4, 5]]]])


@pytest.mark.parametrize("call, error, match", [
    (lambda: fancydl.max_unpool2d(U, I + 11, 2), ValueError,
     r"indices must lie in \[0, 16\) for an output plane of \(4, 4\), got 16"),
    (lambda: fancydl.max_unpool2d(U, I - 1, 2), ValueError, r"indices must lie.*got -1"),
    (lambda: fancydl.max_unpool2d(U, I[..., :1], 2), ValueError,
     r"indices must have the shape of input \(1, 1, 2, 2\), got shape \(1, 1, 2, 1\)"),
    (lambda: fancydl.max_unpool2d(U, I.astype(float), 2), TypeError,
     r"indices must have an integer dtype, got float64"),
    (lambda: fancydl.max_unpool2d(U, I.tolist(), 2), TypeError,
     r"indices must be a numpy.ndarray"),
    (lambda: fancydl.max_unpool2d(U, I, 2, output_size=(2, 4)), ValueError,
     r"output_size\[-2\] must be between 2 and 6 \(exclusive\).*got 2"),
    (lambda: fancydl.max_unpool2d(U, I, 2, output_size=(4, 6)), ValueError,
     r"output_size\[-1\] must be between 2 and 6"),
    (lambda: fancydl.max_unpool2d(U, I, 2, output_size=(1, 4, 4)), TypeError,
     r"output_size must be a sequence of 2 ints \(H, W\) or 4"),
    (lambda: fancydl.max_unpool2d(U, I, 2, output_size=4), TypeError, r"output_size"),
    (lambda: fancydl.max_unpool2d(U, I, 2, output_size=(4.0, 4)), TypeError,
     r"output_size must hold ints"),
    (lambda: fancydl.max_unpool2d(U, I, 0), ValueError, r"kernel_size.*got 0"),
    (lambda: fancydl.max_unpool2d(U, I, 2, stride=(1, 0)), ValueError, r"stride.*\(1, 0\)"),
    (lambda: fancydl.max_unpool2d(U, I, 2, padding=-1), ValueError, r"padding.*got -1"),
    (lambda: fancydl.max_unpool2d(U, I, 2, padding=3), ValueError,
     r"output size \(-2, -2\) is negative"),
    (lambda: fancydl.max_unpool2d(U.astype(int), I, 2), TypeError,
     r"input must have dtype float"),
    (lambda: fancydl.max_unpool2d(U[0, 0], I[0, 0], 2), ValueError,
     r"input must have 3 or 4 dim"),
    (lambda: fancydl.max_unpool2d(np.ones((1, 0, 2, 2)), I[:, :0], 2), ValueError,
     r"non-empty"),
])
def test_max_unpool2d_bad_input(call, error, match):
    with pytest.raises(error, match=f"max_unpool2d: .*{match}"):
        call()


# --- windows of many taps: reduced one axis at a time ------------------------------------

@contextlib.contextmanager
def by_axes(decision=True):
    """Force :func:`fancydl.pool.by_axes`' decision, so that small arrays take the path
    of windows of many taps (or keep the tap loop)."""
    from fancydl import pool
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pool, "by_axes", lambda *args: decision)
        yield


@given(case=pool_cases(), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]), dtype=st.sampled_from(DTYPES),
       threaded=st.booleans())
def test_max_pool2d_by_axes_matches_torch(case, seed, kind, dtype, threaded):
    """The maximum, the index (first maximum in row-major order, last NaN, never the
    padding) and the gradient of the reduction along columns, then rows."""
    torch = pytest.importorskip("torch")
    shape, kwargs = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    kwargs["return_indices"] = True
    assume(not _has_window_of_padding_only(shape, kwargs))
    theirs, their_grad, upstream = _torch_run(torch, torch.nn.functional.max_pool2d, x, rng,
                                              **kwargs)
    with by_axes(), threads(threaded):
        ours, our_grad = _ours(fancydl.max_pool2d, x, upstream, **kwargs)
        (min_out, min_idx), min_grad = _ours(fancydl.min_pool2d, -x, upstream, **kwargs)
    _assert_close(ours[0], theirs[0], dtype)
    np.testing.assert_array_equal(ours[1], theirs[1])
    _assert_close(our_grad, their_grad, dtype)
    _assert_close(-min_out, theirs[0], dtype)
    np.testing.assert_array_equal(min_idx, theirs[1])
    _assert_close(min_grad, their_grad, dtype)


@given(case=pool_cases(), seed=st.integers(0, 2 ** 32 - 1))
@example(case=((1, 1, 5, 1), dict(kernel_size=2, stride=1, padding=1, dilation=2)), seed=0)
def test_max_pool2d_by_axes_window_of_padding_only_as_the_tap_loop(case, seed):
    """Where a dilated window misses the input (PyTorch is not compared there: its
    backward may abort), both paths output -inf there and index -1."""
    shape, kwargs = case
    x = _values(np.random.default_rng(seed), shape, np.float64, "nan")
    upstream = np.random.default_rng(seed + 1).standard_normal(
        fancydl.max_pool2d(x, **kwargs).shape)
    kwargs["return_indices"] = True
    taps, taps_grad = _ours(fancydl.max_pool2d, x, upstream, **kwargs)
    with by_axes():
        axes, axes_grad = _ours(fancydl.max_pool2d, x, upstream, **kwargs)
    np.testing.assert_array_equal(axes[0], taps[0])
    np.testing.assert_array_equal(axes[1], taps[1])
    np.testing.assert_allclose(axes_grad, taps_grad, rtol=1e-12, atol=1e-12)


@given(case=pool_cases(dilation=False), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "nan"]), dtype=st.sampled_from(DTYPES),
       count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.sampled_from([-3, 1, 7])),
       threaded=st.booleans())
def test_avg_pool2d_by_axes_matches_torch(case, seed, kind, dtype, count_include_pad,
                                          divisor_override, threaded):
    torch = pytest.importorskip("torch")
    shape, kwargs = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    kwargs.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    theirs, their_grad, upstream = _torch_run(torch, torch.nn.functional.avg_pool2d, x, rng,
                                              **kwargs)
    with by_axes(), threads(threaded):
        ours, our_grad = _ours(fancydl.avg_pool2d, x, upstream, **kwargs)
    _assert_close(ours, theirs, dtype)
    _assert_close(our_grad, their_grad, dtype)


@given(case=adaptive_cases(), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]), dtype=st.sampled_from(DTYPES))
def test_adaptive_max_pool2d_by_axes_matches_torch(case, seed, kind, dtype):
    torch = pytest.importorskip("torch")
    shape, size = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, dtype, kind)
    theirs, their_grad, upstream = _torch_run(torch, torch.nn.functional.adaptive_max_pool2d,
                                              x, rng, output_size=size, return_indices=True)
    with by_axes():
        ours, our_grad = _ours(fancydl.adaptive_max_pool2d, x, upstream, output_size=size,
                               return_indices=True)
    _assert_close(ours[0], theirs[0], dtype)
    np.testing.assert_array_equal(ours[1], theirs[1])
    _assert_close(our_grad, their_grad, dtype)


@given(case=roi_cases(), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]), decision=st.booleans())
def test_roi_pool_by_axes_matches_loop_reference(case, seed, kind, decision):
    shape, rois, output, scale = case
    rng = np.random.default_rng(seed)
    x = _values(rng, shape, np.float64, kind)
    if kind == "nan":
        x = _sprinkle(rng, x)
    expected, argmax = roi_pool_loops(x, rois, output, scale)
    with by_axes(decision):
        out, pullback = fancydl.vjp(lambda t: fancydl.roi_pool(t, rois, output, scale), x)
        upstream = rng.standard_normal(out.shape)
        grad = pullback(upstream)[0]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(grad, roi_pool_loops_grad(x.shape, rois, argmax, upstream),
                               rtol=1e-12, atol=1e-12)


def test_roi_pool_by_axes_chunks_the_boxes(monkeypatch):
    # A work buffer of a few hundred bytes: one box per chunk, same result.
    from fancydl import windows
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    boxes = np.array([[1.0, 0.3, 0.7, 7.2, 8.1], [0.0, -1.5, 2.0, 8.5, 3.5],
                      [0.0, 2.5, 2.5, 2.5, 2.5], [1.0, 0.0, 0.0, 7.0, 8.0]])
    expected, _ = roi_pool_loops(x, boxes, (2, 3), 1.0)
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 300)
    with by_axes():
        np.testing.assert_array_equal(fancydl.roi_pool(x, boxes, (2, 3)), expected)


def test_by_axes_keeps_ordinary_windows_on_the_tap_loop():
    from fancydl.pool import by_axes as decide, pool_geometry, _fixed_by_axes
    for shape, k, s, p in [((32, 64, 32, 32), 3, 2, 1), ((32, 64, 32, 32), 2, 2, 0),
                           ((32, 64, 32, 32), 3, 1, 1), ((1, 3, 7, 7), 3, 1, 1)]:
        geom = pool_geometry("max_pool2d", np.zeros(shape), k, s, p)
        assert not _fixed_by_axes(geom, shape)
    geom = pool_geometry("max_pool2d", np.zeros((1, 1, 1024, 1024)), 1024)
    assert _fixed_by_axes(geom, (1, 1, 1024, 1024))
    assert decide((32, 32), per_tap=64, first_pass=64 * 32) and not decide((1, 2), 1, 1)


@pytest.mark.parametrize("name, call", [
    ("max_pool2d", lambda x: fancydl.max_pool2d(x, 1024)),
    ("min_pool2d", lambda x: fancydl.min_pool2d(x, (1024, 512), stride=(1, 512))),
    ("avg_pool2d", lambda x: fancydl.avg_pool2d(x, 1024)),
    ("adaptive_max_pool2d", lambda x: fancydl.adaptive_max_pool2d(x, 1)),
    ("roi_pool", lambda x: fancydl.roi_pool(x, np.array([[0, 0, 0, 1023, 1023.0]],
                                                        np.float32), 1)),
    ("roi_pool 512", lambda x: fancydl.roi_pool(x, np.array([[0, 0, 0, 511, 511.0]],
                                                            np.float32), 1)),
])
def test_huge_window_on_one_image_costs_milliseconds(name, call):
    """One NumPy call per kernel tap made these take 2 to 15 s (a million calls for a
    1024 x 1024 window); one axis at a time they take milliseconds, as in PyTorch."""
    x = np.random.default_rng(0).standard_normal((1, 1, 1024, 1024)).astype(np.float32)

    def run():
        out, pullback = fancydl.vjp(call, x)
        return out, pullback(np.ones(out.shape, np.float32))[0]

    (out, grad), seconds = _finishes_within(60, run)
    assert seconds < 1.0
    if name == "max_pool2d":
        assert out.ravel()[0] == x.max()
        assert grad.sum() == 1 and grad.ravel()[x.argmax()] == 1
    if name == "avg_pool2d":
        np.testing.assert_allclose(out.ravel()[0], x.astype(np.float64).mean(), atol=1e-6)
        np.testing.assert_allclose(grad, 2.0 ** -20)
    if name == "min_pool2d":  # two windows: the left and the right half
        np.testing.assert_array_equal(out.ravel(), [x[..., :512].min(), x[..., 512:].min()])
    if name in ("adaptive_max_pool2d", "roi_pool"):
        assert out.ravel()[0] == x.max() and grad.ravel()[x.argmax()] == 1
    if name == "roi_pool 512":
        assert out.ravel()[0] == x[..., :512, :512].max()
    assert grad.sum() == out.size  # one pixel per window takes its gradient of 1


# --- extreme values: rounding, scaling, warnings ------------------------------------------

@pytest.mark.parametrize("value, dtype", [
    (0.49999999999999994, np.float64), (0.49999997, np.float32), (-0.49999997, np.float32),
    (2.5, np.float64), (-2.5, np.float32), (2.0 ** 23 + 1, np.float32),
    (2.0 ** 24 - 1, np.float32), (-(2.0 ** 23 + 3), np.float32), (2.0 ** 52 + 1, np.float64),
    (4503599627370495.5, np.float64),
])
def test_roi_pool_rounds_corners_as_c_round(value, dtype):
    """floor(|x| + 0.5) rounded the largest float below 0.5 up, and in float32 the odd
    integers from 2**23 to 2**24 up to the next even one."""
    from fancydl.pool import _round_half_away
    x = np.asarray(value, dtype)
    assert _round_half_away(x) == c_round(x)


@given(st.floats(-2.0 ** 24, 2.0 ** 24, width=32), st.sampled_from(DTYPES))
def test_roi_pool_rounding_is_c_round_for_every_float(value, dtype):
    from fancydl.pool import _round_half_away
    x = np.asarray(value, dtype)
    assert _round_half_away(x) == c_round(x)


@pytest.mark.parametrize("dtype, coordinate", [(np.float64, 0.49999999999999994),
                                               (np.float32, 0.49999997)])
def test_roi_pool_box_below_half_a_pixel_starts_at_0(dtype, coordinate):
    img = -np.arange(16.0, dtype=dtype).reshape(1, 1, 4, 4)
    box = np.array([[0, coordinate, coordinate, 3, 3]], dtype)
    expected, _ = roi_pool_loops(img, box, 1)
    out = fancydl.roi_pool(img, box, 1)
    np.testing.assert_array_equal(out, expected)
    assert out.ravel()[0] == 0.0  # the box starts at pixel (0, 0), whose value is 0


def test_roi_pool_odd_float32_corner_beyond_2_to_23():
    # x1 = x2 = 2**23 + 1: the box is column 8388609 (C's round), not 8388610.
    width = 2 ** 23 + 3
    img = np.zeros((1, 1, 1, width), np.float32)
    img[0, 0, 0, 2 ** 23 + 1] = 1.0
    box = np.array([[0, 2.0 ** 23 + 1, 0, 2.0 ** 23 + 1, 0]], np.float32)
    assert fancydl.roi_pool(img, box, 1).ravel()[0] == 1.0


@pytest.mark.parametrize("window, dtype", [
    ([2e19, 2e19, 2e19, 2e19], np.float32), ([3e38, 1.5e38, 7.5e37, 0.0], np.float32),
    ([1e-25, 1e-25, 1e-25, 1e-25], np.float32), ([1e-22, 5e-23, 2.5e-23, 0.0], np.float32),
    ([1e-310, 1e-310, 1e-310, 1e-310], np.float64), ([1e155, 5e154, 0.0, 2.5e154], np.float64),
])
def test_stochastic_pool2d_evaluation_of_extreme_magnitudes(window, dtype):
    """sum a^2 / sum a overflowed (2e19 squared in float32: inf) or underflowed (1e-25
    squared: 0, so 0 / 4e-25) where the answer is finite; the gradient
    (2 a_i S - sum a^2) / S^2 too."""
    from fractions import Fraction
    x = np.array(window, dtype).reshape(1, 1, 2, 2)
    a = [Fraction(float(v)) for v in x.ravel()]
    s, q = sum(a), sum(v * v for v in a)
    expected = float(q / s)
    expected_grad = [float((2 * v * s - q) / (s * s)) for v in a]
    out, pullback = fancydl.vjp(lambda t: fancydl.stochastic_pool2d(t, 2, training=False), x)
    (grad,) = pullback(np.ones((1, 1, 1, 1), dtype))
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(float(out.ravel()[0]), expected, rtol=rtol)
    np.testing.assert_allclose(grad.ravel().astype(np.float64), expected_grad, rtol=rtol,
                               atol=rtol * max(abs(g) for g in expected_grad))


@pytest.mark.parametrize("values", [[3e38, 2e38, 1e38, 0.0], [1e-44, 2e-44, 3e-45, 0.0]])
def test_stochastic_pool2d_sampling_frequencies_at_extreme_magnitudes(values):
    """A float32 region whose sum overflows used to draw its last positive entry every
    time (u * inf is never crossed); the frequencies must stay proportional."""
    stats = pytest.importorskip("scipy.stats")
    n = 20000
    values = np.array(values, np.float32)
    x = np.broadcast_to(values.reshape(1, 1, 2, 2), (1, n, 2, 2)).copy()
    out = fancydl.stochastic_pool2d(x, 2, rng=np.random.default_rng(0)).ravel()
    counts = np.array([(out == v).sum() for v in values[:3]])
    assert counts.sum() == n
    weights = values[:3].astype(np.float64)
    expected = n * weights / weights.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, df=2)


@pytest.mark.parametrize("name, args, values", [
    ("avg_pool2d", (2,), [[np.inf, -np.inf], [0.0, 0.0]]),
    ("avg_pool2d", (2,), np.full((2, 2), 3e38, np.float32)),
    ("avg_pool2d", (2, 1, 1), [[np.inf, 1.0], [-np.inf, 0.0]]),
    ("adaptive_avg_pool2d", (1,), [[np.inf, -np.inf], [0.0, 0.0]]),
    ("adaptive_avg_pool2d", ((3, 1),), np.full((2, 2), 3e38, np.float32)),
    ("max_pool2d", (2, 1), np.diag([0.0, 9.0, 0.0])),
])
def test_non_finite_values_give_torchs_result_without_warnings(name, args, values):
    """inf + -inf = NaN and float32 sums beyond 3.4e38 = inf, forward and backward
    (with inf and -inf upstream into overlapping windows), as in PyTorch, without a
    RuntimeWarning (pytest.ini makes one an error)."""
    torch = pytest.importorskip("torch")
    x = np.asarray(values, getattr(values, "dtype", np.float64))[None, None]
    out, pullback = fancydl.vjp(lambda t: getattr(fancydl, name)(t, *args), x)
    upstream = np.full(out.shape, 3e38, x.dtype)
    upstream.flat[0] = np.inf
    upstream.flat[-1] = -np.inf if out.size > 1 else np.inf
    (grad,) = pullback(upstream)
    t = torch.tensor(x, requires_grad=True)
    t_out = getattr(torch.nn.functional, name)(t, *args)
    (t_grad,) = torch.autograd.grad(t_out, t, torch.tensor(upstream))
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_allclose(grad, t_grad.numpy(), rtol=1e-6)


# --- empty outputs and maps, shapes as arrays, cross-checks without a reference ----------

@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("output_size", [0, (0, 2), (2, 0), (0, None)])
def test_adaptive_pooling_to_an_empty_output_like_torch(op, output_size):
    """PyTorch returns the empty output (its backward then raises; ours is zero)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    kwargs = dict(return_indices=True) if op == "adaptive_max_pool2d" else {}
    theirs = getattr(torch.nn.functional, op)(torch.tensor(x), output_size, **kwargs)
    out, pullback = fancydl.vjp(lambda t: getattr(fancydl, op)(t, output_size, **kwargs), x)
    if kwargs:
        assert out[1].shape == tuple(theirs[1].shape) and out[1].dtype == np.int64
        out, theirs = out[0], theirs[0]
        (grad,) = pullback((np.ones(out.shape), None))
    else:
        (grad,) = pullback(np.ones(out.shape))
    assert out.shape == tuple(theirs.shape) and out.dtype == x.dtype
    assert grad.shape == x.shape and not grad.any()


@pytest.mark.parametrize("op", [fancydl.roi_align, fancydl.roi_pool])
@pytest.mark.parametrize("shape", [(2, 0, 4, 4), (2, 3, 0, 4), (2, 3, 4, 0), (1, 0, 0, 0)])
def test_roi_ops_on_an_empty_map_give_zeros(op, shape):
    """No channel: the empty (K, 0, PH, PW) output, as torchvision; an empty map: zeros
    (torchvision's roi_pool; its roi_align would read outside the map). ROI Align used
    to fail inside NumPy on both."""
    boxes = np.array([[0, 0.0, 0.0, 2.0, 2.0], [1, 0.5, 1.0, 3.0, 2.5]])[:shape[0]]
    out, pullback = fancydl.vjp(lambda t: op(t, boxes, (2, 3)), np.ones(shape))
    assert out.shape == (len(boxes), shape[1], 2, 3) and not out.any()
    (grad,) = pullback(np.ones(out.shape))
    assert grad.shape == shape and not grad.any()


def test_max_unpool2d_takes_the_output_size_as_an_integer_array():
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 8))
    out, idx = fancydl.max_pool2d(x, 2, return_indices=True)
    expected = fancydl.max_unpool2d(out, idx, 2, output_size=(7, 8))
    for size in (np.array([7, 8]), np.array([1, 2, 7, 8], np.int32)):
        np.testing.assert_array_equal(fancydl.max_unpool2d(out, idx, 2, output_size=size),
                                      expected)
    with pytest.raises(TypeError, match="output_size must be a sequence"):
        fancydl.max_unpool2d(out, idx, 2, output_size=np.array([7.0, 8.0]))


@pytest.mark.parametrize("op, args, reason", [
    (fancydl.roi_align, (np.ones((1, 1, 4, 4)), np.array([[0, 0, 0, 2, 2.0]]), 2),
     "torchvision.ops.roi_align needs torchvision, which is not installed"),
    (fancydl.roi_pool, (np.ones((1, 1, 4, 4)), [np.array([[0, 0, 2, 2.0]])], 2),
     "torchvision.ops.roi_pool needs torchvision, which is not installed"),
    (fancydl.stochastic_pool2d, (np.ones((1, 1, 4, 4)), 2),
     "PyTorch has no operator named 'stochastic_pool2d'"),
])
def test_crosscheck_without_a_pytorch_counterpart_skips_saying_why(op, args, reason,
                                                                    monkeypatch):
    """It used to raise "no operator named"; without PyTorch it already skipped."""
    pytest.importorskip("torch")
    import sys
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    report = fancydl.crosscheck(op, *args)
    assert not report and not report.rows
    assert repr(report) == f"crosscheck of {op.__name__}: skipped, " + (
        "its counterpart " if "torchvision" in reason else "") + reason + (
        "" if "torchvision" in reason else " and none is registered with "
        "fancydl.crosscheck.torch_reference")


def test_crosscheck_of_roi_ops_calls_torchvision_when_installed(monkeypatch):
    """The references registered for roi_pool and roi_align are torchvision.ops's,
    called with the same arguments (a stand-in module records them here)."""
    torch = pytest.importorskip("torch")
    import sys
    import types
    calls = []

    def stand_in(name, reference):
        def op(input, boxes, *args):
            calls.append((name, args))
            out = reference(input.detach().numpy(), boxes.detach().numpy(), *args)
            return torch.tensor(out[0] if isinstance(out, tuple) else out) + 0 * input.sum()
        return op

    ops = types.SimpleNamespace(roi_pool=stand_in("roi_pool", roi_pool_loops),
                                roi_align=stand_in("roi_align", roi_align_loops))
    package = types.ModuleType("torchvision")
    package.ops = ops
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.ops", ops)
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    boxes = np.array([[0, 0.5, 1.0, 4.0, 5.0]])
    report = fancydl.crosscheck(fancydl.roi_pool, x, boxes, (2, 3), 0.5)
    assert "against torchvision.ops.roi_pool" in repr(report)
    assert report.rows[0][:2] == ("output", True)
    report = fancydl.crosscheck(fancydl.roi_align, x, boxes, 2, 1.0, 2, True)
    assert report.rows[0][:2] == ("output", True)
    assert calls == [("roi_pool", ((2, 3), 0.5)), ("roi_align", (2, 1.0, 2, True))]


@pytest.mark.parametrize("op", [fancydl.max_pool2d, fancydl.avg_pool2d, fancydl.min_pool2d])
def test_one_element_tuples_mean_both_axes_as_in_torch(op):
    """PyTorch's 2-d pooling expands kernel_size=(2,) (and stride, padding, dilation)."""
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 6))
    np.testing.assert_array_equal(op(x, (3,), stride=(2,), padding=(1,)),
                                  op(x, 3, stride=2, padding=1))
    if op is not fancydl.avg_pool2d:
        np.testing.assert_array_equal(op(x, (2,), dilation=(2,)), op(x, 2, dilation=2))


@pytest.mark.parametrize("pool", [
    lambda x: fancydl.max_pool2d(x, 2, return_indices=True),
    lambda x: fancydl.adaptive_max_pool2d(x, 2, return_indices=True)])
@pytest.mark.parametrize("along_axes", [False, True])
def test_changing_returned_indices_does_not_change_the_gradient(pool, along_axes):
    """The indices the backward scatters by were returned to the caller themselves."""
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    upstream = np.random.default_rng(1).standard_normal((1, 2, 2, 2))
    with by_axes() if along_axes else contextlib.nullcontext():
        (out, indices), pullback = fancydl.vjp(pool, x)
    expected = pullback((upstream, None))[0].copy()
    indices[...] = 0
    np.testing.assert_array_equal(pullback((upstream, None))[0], expected)
