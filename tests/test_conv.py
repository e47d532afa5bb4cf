"""Tests of fancydl.conv: conv2d, conv_transpose2d, im2col/col2im, loops and arithmetic.

PyTorch is the oracle of every forward and gradient (with a random upstream gradient);
torch.nn.grad.conv2d_input / conv2d_weight are a second oracle of the gradients;
conv2d_loops and the zero-insertion construction (fancydl.references) are independent
NumPy oracles.
"""

import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import fancydl
from fancydl import conv as conv_module
from fancydl import parallel, windows
from fancydl.windows import (WindowGeometry, conv_output_size, conv_transpose_output_size,
                             effective_kernel_size, receptive_field)

DTYPES = (np.float32, np.float64)


def tolerance(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)


def assert_close(ours, theirs, dtype):
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert ours.dtype == np.dtype(dtype)
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    tol = tolerance(dtype)
    np.testing.assert_allclose(ours, theirs, rtol=tol["rtol"], atol=tol["atol"] * scale)


def maybe_pair(draw, a, b):
    """An int when both entries agree and the draw says so, else the pair (or a list)."""
    if a == b and draw(st.booleans()):
        return a
    return draw(st.sampled_from([(a, b), [a, b]]))


# --- strategies -------------------------------------------------------------------------

@st.composite
def conv_cases(draw, allow_same=True):
    """Random valid conv2d calls: shapes, groups, stride, padding, dilation, dtype."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["numbers", "same", "valid"] if allow_same else ["numbers"]))
    if mode == "same":
        sh = sw = 1
        padding = "same"
        pads = (dh * (kh - 1), dw * (kw - 1))
    else:
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        ph, pw = (0, 0) if mode == "valid" else (draw(st.integers(0, 2)),
                                                 draw(st.integers(0, 2)))
        padding = "valid" if mode == "valid" else maybe_pair(draw, ph, pw)
        pads = (2 * ph, 2 * pw)
    height = max(1, effective_kernel_size(kh, dh) - pads[0] + draw(st.integers(0, 5)))
    width = max(1, effective_kernel_size(kw, dw) - pads[1] + draw(st.integers(0, 5)))
    case = dict(
        x_shape=(draw(st.integers(1, 3)), c_in, height, width),
        w_shape=(c_out, c_in // groups, kh, kw),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)),
        kwargs=dict(stride=maybe_pair(draw, sh, sw), padding=padding,
                    dilation=maybe_pair(draw, dh, dw), groups=groups),
        seed=draw(st.integers(0, 2**31 - 1)))
    return case


@st.composite
def conv_transpose_cases(draw):
    """Random valid conv_transpose2d calls, output_padding included."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out_per_group = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    ah = draw(st.integers(0, max(sh, dh) - 1))
    aw = draw(st.integers(0, max(sw, dw) - 1))
    height, width = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if (height - 1) * sh + dh * (kh - 1) + ah < 2 * ph or (
            (width - 1) * sw + dw * (kw - 1) + aw < 2 * pw):  # no output: make it fit
        ph = pw = 0
    return dict(
        x_shape=(draw(st.integers(1, 3)), c_in, height, width),
        w_shape=(c_in, c_out_per_group, kh, kw),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)),
        kwargs=dict(stride=maybe_pair(draw, sh, sw), padding=maybe_pair(draw, ph, pw),
                    output_padding=maybe_pair(draw, ah, aw), groups=groups,
                    dilation=maybe_pair(draw, dh, dw)),
        seed=draw(st.integers(0, 2**31 - 1)))


def make_arrays(case, transposed=False):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"]).astype(case["dtype"])
    w = rng.standard_normal(case["w_shape"]).astype(case["dtype"])
    out_channels = (case["w_shape"][1] * case["kwargs"]["groups"] if transposed
                    else case["w_shape"][0])
    b = rng.standard_normal(out_channels).astype(case["dtype"]) if case["bias"] else None
    return rng, x, w, b


def torch_forward_and_grads(torch_fn, x, w, b, upstream, kwargs):
    import torch
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    with warnings.catch_warnings():  # torch warns that even 'same' kernels copy the input
        warnings.filterwarnings("ignore", message="Using padding='same'")
        out = torch_fn(tx, tw, tb, **kwargs)
    if upstream is None:
        return out.detach().numpy(), None
    tracked = [tx, tw] + ([] if tb is None else [tb])
    grads = torch.autograd.grad(out, tracked, torch.tensor(upstream))
    return out.detach().numpy(), [g.numpy() for g in grads]


def check_against_torch(fancy_fn, torch_fn, x, w, b, rng, kwargs, dtype):
    out, pullback = fancydl.vjp(lambda x, w, b: fancy_fn(x, w, b, **kwargs), x, w, b)
    upstream = rng.standard_normal(out.shape).astype(dtype)
    t_out, t_grads = torch_forward_and_grads(torch_fn, x, w, b, upstream, kwargs)
    assert_close(out, t_out, dtype)
    grads = pullback(upstream)
    ours = [grads[0], grads[1]] + ([] if b is None else [grads[2]])
    if b is None:
        assert grads[2] is None
    for mine, theirs in zip(ours, t_grads):
        assert_close(mine, theirs, dtype)


# --- conv2d against PyTorch -----------------------------------------------------------

@given(conv_cases())
def test_conv2d_forward_and_gradients_match_torch(case):
    torch = pytest.importorskip("torch")
    rng, x, w, b = make_arrays(case)
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, b, rng,
                        case["kwargs"], case["dtype"])


# Strategies that ordinary cases rarely reach, forced on: the stride-1 shifted GEMM
# (normally >= 16 channels) and the gathered columns (normally inputs that are mostly
# padding, issue D2).
FORCED_PATHS = pytest.mark.parametrize("setting, value", [
    ("SHIFTED_GEMM_MIN_CHANNELS", 1), ("MOSTLY_PADDING_RATIO", 0)])


@FORCED_PATHS
@given(case=conv_cases())
def test_conv2d_through_a_forced_path_matches_torch(setting, value, case):
    torch = pytest.importorskip("torch")
    rng, x, w, b = make_arrays(case)
    with mock.patch.object(conv_module, setting, value):
        check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, b, rng,
                            case["kwargs"], case["dtype"])


@FORCED_PATHS
@given(case=conv_transpose_cases())
def test_conv_transpose2d_through_a_forced_path_matches_torch(setting, value, case):
    torch = pytest.importorskip("torch")
    rng, x, w, b = make_arrays(case, transposed=True)
    with mock.patch.object(conv_module, setting, value):
        check_against_torch(fancydl.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                            x, w, b, rng, case["kwargs"], case["dtype"])


def test_shifted_gemm_path_is_used_for_wide_stride_one_layers(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 16, 7, 6))
    w = rng.standard_normal((3, 16, 3, 2))
    geom = conv_module._conv2d_geometry("conv2d", x, w, None, 1, 1, 1, 1)
    assert conv_module._use_shifted_gemm(w.shape, geom)
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                        dict(padding=(2, 1), dilation=(1, 2)), np.float64)


@given(conv_cases(allow_same=False))
def test_conv2d_gradients_match_torch_nn_grad(case):
    torch = pytest.importorskip("torch")
    rng, x, w, _ = make_arrays(case)
    kw = case["kwargs"]
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kw), x, w)
    upstream = rng.standard_normal(out.shape).astype(case["dtype"])
    gx, gw = pullback(upstream)
    args = dict(stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"],
                groups=kw["groups"])
    ref_x = torch.nn.grad.conv2d_input(x.shape, torch.tensor(w), torch.tensor(upstream),
                                       **args)
    ref_w = torch.nn.grad.conv2d_weight(torch.tensor(x), w.shape, torch.tensor(upstream),
                                        **args)
    assert_close(gx, ref_x.numpy(), case["dtype"])
    assert_close(gw, ref_w.numpy(), case["dtype"])


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(DTYPES), st.integers(0, 2**31 - 1))
def test_depthwise_fast_path_matches_torch(channels, multiplier, kernel, stride, dtype,
                                           seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels + 1, 6, 7)).astype(dtype)
    w = rng.standard_normal(((channels + 1) * multiplier, 1, kernel, kernel)).astype(dtype)
    b = rng.standard_normal(w.shape[0]).astype(dtype)
    assert conv_module._is_depthwise(w.shape, channels + 1)
    kwargs = dict(stride=stride, padding=1, groups=channels + 1)
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, b, rng, kwargs,
                        dtype)


@given(conv_cases())
def test_conv2d_loops_agree_with_conv2d(case):
    _, x, w, b = make_arrays(case)
    np.testing.assert_allclose(fancydl.conv2d_loops(x, w, b, **case["kwargs"]),
                               fancydl.conv2d(x, w, b, **case["kwargs"]),
                               **tolerance(case["dtype"]))


def test_conv2d_batch_chunks_give_the_same_result(monkeypatch, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 3))
    whole = fancydl.conv2d(x, w, stride=2, padding=1, groups=2)
    upstream = rng.standard_normal(whole.shape)
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 1)  # one image per chunk
    assert len(conv_module._batch_chunks(5, 100)) == 5
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                        dict(stride=2, padding=1, groups=2), np.float64)
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, stride=2, padding=1,
                                                            groups=2), x, w)
    np.testing.assert_allclose(out, whole, rtol=1e-12)
    assert all(g.shape == a.shape for g, a in zip(pullback(upstream), (x, w)))
    # The strided depthwise input-gradient walks the batch in cache blocks: one image
    # per block here.
    monkeypatch.setattr(conv_module, "CACHE_BLOCK_BYTES", 1)
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x,
                        rng.standard_normal((8, 1, 3, 2)), None, rng,
                        dict(stride=(1, 2), padding=1, groups=4), np.float64)


def test_conv2d_unbatched_input_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 5, 6))
    w = rng.standard_normal((2, 3, 2, 3))
    b = rng.standard_normal(2)
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, b, rng,
                        dict(padding="same"), np.float64)


def test_conv2d_empty_batch_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = np.zeros((0, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    out = fancydl.conv2d(x, w, padding=1)
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1)
    assert out.shape == tuple(expected.shape) == (0, 4, 5, 5)


@pytest.mark.parametrize("channels, groups", [(2, 1), (16, 1), (4, 4)],
                         ids=["im2col", "shifted-gemm", "depthwise"])
def test_conv2d_nan_and_inf_propagate_like_torch(rng, channels, groups):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, channels, 6, 7))
    x[0, 0, 1, 0] = np.nan   # left edge: the shifted rows read it across the row wrap
    x[0, 1, 4, 4] = np.inf
    w = rng.standard_normal((3 * groups, channels // groups, 3, 3))
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, groups=groups), x, w)
    upstream = rng.standard_normal(out.shape)
    gx, gw = pullback(upstream)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    t_out = torch.nn.functional.conv2d(tx, tw, groups=groups)
    t_gx, t_gw = torch.autograd.grad(t_out, (tx, tw), torch.tensor(upstream))
    for mine, theirs in ((out, t_out.detach().numpy()), (gx, t_gx.numpy()),
                         (gw, t_gw.numpy())):
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(mine[finite], theirs[finite], rtol=1e-10)


@pytest.mark.parametrize("channels, groups, stride, kernel", [
    (2, 1, 1, 3), (16, 1, 1, 3), (16, 1, 2, 2), (16, 1, 2, 4), (4, 4, 1, 3), (4, 4, 2, 3)],
    ids=["im2col", "shifted", "phases", "phases-k4", "depthwise", "depthwise-s2"])
def test_conv2d_with_a_non_finite_weight_propagates_nan_like_torch(
        rng, channels, groups, stride, kernel):
    """The input-gradient as a full correlation also multiplies the weight by the zeros
    around the upstream gradient: with an infinite tap that made NaN where PyTorch's
    gradient is ±inf or finite (it now falls back to the scatter)."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, channels, 7, 8))
    w = rng.standard_normal((4 * groups, channels // groups, kernel, kernel))
    w[0, 0, 0, 0], w[-1, -1, -1, 1] = np.inf, np.nan
    kwargs = dict(stride=stride, padding=1, groups=groups)
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
    upstream = rng.standard_normal(out.shape)
    mine = (out,) + tuple(pullback(upstream))
    for a, b in zip(mine, _torch_call(torch.nn.functional.conv2d, x, w, upstream, kwargs)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        finite = np.isfinite(b)
        np.testing.assert_array_equal(a[~finite], b[~finite])
        np.testing.assert_allclose(a[finite], b[finite], rtol=1e-10)


@pytest.mark.parametrize("padding, dilation", [(1, 1), (0, 1), (2, 2), ((1, 0), 1)],
                         ids=["same", "valid", "same-dilated", "uneven"])
@pytest.mark.parametrize("where", ["input", "upstream"])
def test_depthwise_shared_columns_backward_propagates_nan_and_inf_like_torch(
        rng, padding, dilation, where):
    """Both gradients of a stride-1 depthwise convolution come from the columns of the
    padded upstream gradient, whose grid extends past the input (zeros there); a
    non-finite input or upstream value must give PyTorch's NaN and inf, no more."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 6, 7))
    w = rng.standard_normal((4, 1, 3, 3))
    kwargs = dict(padding=padding, dilation=dilation, groups=4)
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
    upstream = rng.standard_normal(out.shape)
    if where == "input":
        x[0, 0, 1, 0], x[1, 3, 5, 6] = np.nan, np.inf
        out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
    else:
        upstream[0, 0, 0, -1], upstream[1, 2, -1, 0] = np.nan, -np.inf
    gx, gw = pullback(upstream)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    t_out = torch.nn.functional.conv2d(tx, tw, **kwargs)
    t_gx, t_gw = torch.autograd.grad(t_out, (tx, tw), torch.tensor(upstream))
    for mine, theirs in ((out, t_out.detach().numpy()), (gx, t_gx.numpy()),
                         (gw, t_gw.numpy())):
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_array_equal(mine[~finite], theirs[~finite])
        np.testing.assert_allclose(mine[finite], theirs[finite], rtol=1e-10)


def test_depthwise_columns_in_blocks_of_one_channel_on_two_threads_match_torch(
        rng, monkeypatch):
    """Blocks of one channel each and both halves of the channels on the worker: the
    forward, the shared-columns backward and the strided weight-gradient."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(conv_module, "COLUMN_BLOCK_BYTES", 1)
    monkeypatch.setattr(parallel, "THREADED_SIZE", 1)
    x = rng.standard_normal((3, 5, 8, 9))
    for w, kwargs in ((rng.standard_normal((5, 1, 3, 3)), dict(padding=1, groups=5)),
                      (rng.standard_normal((5, 1, 3, 2)), dict(padding=(0, 2), groups=5)),
                      (rng.standard_normal((10, 1, 3, 3)), dict(padding=1, groups=5)),
                      (rng.standard_normal((10, 1, 2, 3)), dict(stride=2, groups=5))):
        check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                            kwargs, np.float64)


def test_same_padding_with_even_kernel_pads_bottom_right():
    # A 2x2 kernel of ones on a 3x3 image: 'same' pads one zero row/column at the end,
    # so the last row/column only sums what is inside.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out = fancydl.conv2d(x, np.ones((1, 1, 2, 2)), padding="same")[0, 0]
    expected = np.array([[0 + 1 + 3 + 4, 1 + 2 + 4 + 5, 2 + 5],
                         [3 + 4 + 6 + 7, 4 + 5 + 7 + 8, 5 + 8],
                         [6 + 7, 7 + 8, 8]], dtype=float)
    np.testing.assert_array_equal(out, expected)


def test_conv2d_gradcheck():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    assert fancydl.gradcheck(lambda x, w, b: fancydl.conv2d(
        x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2), x, w, b)
    wd = rng.standard_normal((8, 1, 3, 3))
    assert fancydl.gradcheck(lambda x, w: fancydl.conv2d(x, w, padding="same", groups=4,
                                                         dilation=2), x, wd)


def test_conv2d_composes_under_vjp(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 6, 6))
    w1 = rng.standard_normal((4, 3, 3, 3))
    w2 = rng.standard_normal((2, 4, 1, 1))

    def net(x, w1, w2):
        return fancydl.conv2d(fancydl.relu(fancydl.conv2d(x, w1, padding=1)), w2)

    out, pullback = fancydl.vjp(net, x, w1, w2)
    upstream = rng.standard_normal(out.shape)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, w1, w2)]
    F = torch.nn.functional
    t_out = F.conv2d(F.relu(F.conv2d(tensors[0], tensors[1], padding=1)), tensors[2])
    t_grads = torch.autograd.grad(t_out, tensors, torch.tensor(upstream))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10)
    for mine, theirs in zip(pullback(upstream), t_grads):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-9, atol=1e-10)


# --- conv_transpose2d ---------------------------------------------------------------

@given(conv_transpose_cases())
def test_conv_transpose2d_forward_and_gradients_match_torch(case):
    torch = pytest.importorskip("torch")
    rng, x, w, b = make_arrays(case, transposed=True)
    check_against_torch(fancydl.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                        x, w, b, rng, case["kwargs"], case["dtype"])


@given(conv_transpose_cases())
def test_zero_insertion_construction_equals_conv_transpose2d(case):
    _, x, w, b = make_arrays(case, transposed=True)
    np.testing.assert_allclose(
        fancydl.conv_transpose2d_zero_insertion(x, w, b, **case["kwargs"]),
        fancydl.conv_transpose2d(x, w, b, **case["kwargs"]), **tolerance(case["dtype"]))


@given(conv_cases(allow_same=False))
def test_conv_transpose2d_is_the_input_gradient_of_conv2d(case):
    rng, x, w, _ = make_arrays(case)
    kw = case["kwargs"]
    out, pullback = fancydl.vjp(lambda x: fancydl.conv2d(x, w, **kw), x)
    y = rng.standard_normal(out.shape).astype(case["dtype"])
    (gx,) = pullback(y)
    # Dumoulin & Visin's "a": the rows/columns the strided conv never reached.
    stride = np.broadcast_to(kw["stride"], 2)
    dilation = np.broadcast_to(kw["dilation"], 2)
    padding = (0, 0) if kw["padding"] == "valid" else np.broadcast_to(kw["padding"], 2)
    extra = tuple(int((size + 2 * p - d * (k - 1) - 1) % s) for size, k, s, p, d in zip(
        x.shape[2:], w.shape[2:], stride, padding, dilation))
    transposed = fancydl.conv_transpose2d(y, w, stride=kw["stride"], padding=tuple(padding),
                                          output_padding=extra, groups=kw["groups"],
                                          dilation=kw["dilation"])
    np.testing.assert_allclose(transposed, gx, **tolerance(case["dtype"]))
    # ... so it is conv2d's adjoint: <conv2d(x), y> = <x, conv_transpose2d(y)>.
    np.testing.assert_allclose(np.vdot(out, y), np.vdot(x, transposed), rtol=1e-3)


def test_conv_transpose2d_gradcheck():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 4))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(6)
    assert fancydl.gradcheck(lambda x, w, b: fancydl.conv_transpose2d(
        x, w, b, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2,
        dilation=(1, 2)), x, w, b)


@st.composite
def transposed_phase_cases(draw):
    """conv_transpose2d calls that take the stride-phase path with kept columns: one
    group, no dilation, a stride > 1 on some axis and kernels that are multiples of it."""
    sh, sw = draw(st.sampled_from([(2, 2), (3, 3), (2, 1), (1, 3), (3, 2)]))
    kh, kw = sh * draw(st.integers(1, 2)), sw * draw(st.integers(1, 2))
    height, width = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    ah, aw = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    ph = draw(st.integers(0, max(0, ((height - 1) * sh + kh + ah - 1) // 2)))
    pw = draw(st.integers(0, max(0, ((width - 1) * sw + kw + aw - 1) // 2)))
    return dict(
        x_shape=(draw(st.integers(0, 3)), draw(st.integers(1, 4)), height, width),
        w_shape=(None, draw(st.integers(1, 4)), kh, kw),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)),
        kwargs=dict(stride=(sh, sw), padding=(ph, pw), output_padding=(ah, aw)),
        seed=draw(st.integers(0, 2**31 - 1)))


@given(transposed_phase_cases())
def test_conv_transpose2d_by_stride_phases_matches_torch(case):
    """The forward's columns over flat planes padded before only, kept for both
    gradients (:func:`fancydl.conv._transposed_phase_backward`)."""
    torch = pytest.importorskip("torch")
    case["w_shape"] = (case["x_shape"][1],) + case["w_shape"][1:]
    case["kwargs"]["groups"] = 1
    rng, x, w, b = make_arrays(case, transposed=True)
    geom, out_size = conv_module._conv_transpose2d_geometry(
        "conv_transpose2d", x, w, b, **case["kwargs"], dilation=1)
    with mock.patch.object(conv_module, "SHIFTED_GEMM_MIN_CHANNELS", 1):
        assert conv_module._use_transposed_phases(x, w, geom, out_size)
        check_against_torch(fancydl.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                            x, w, b, rng, case["kwargs"], case["dtype"])


def test_conv_transpose2d_by_stride_phases_one_gradient_at_a_time(rng):
    """Without the weight-gradient no columns are kept; either gradient alone matches."""
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal((2, 8, 5, 4)), rng.standard_normal((8, 4, 4, 4))
    kwargs = dict(stride=2, padding=1, output_padding=1)
    t_out, t_gx, t_gw = _torch_call(torch.nn.functional.conv_transpose2d, x, w,
                                    upstream := rng.standard_normal((2, 4, 11, 9)), kwargs)
    (gx,) = fancydl.vjp(lambda x: fancydl.conv_transpose2d(x, w, **kwargs), x)[1](upstream)
    (gw,) = fancydl.vjp(lambda w: fancydl.conv_transpose2d(x, w, **kwargs), w)[1](upstream)
    np.testing.assert_allclose(gx, t_gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, t_gw, rtol=1e-10, atol=1e-12)


def test_conv_transpose2d_by_stride_phases_gradcheck():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 3, 4)), rng.standard_normal((3, 4, 4, 2))
    geom, out_size = conv_module._conv_transpose2d_geometry(
        "conv_transpose2d", x, w, None, (2, 2), (1, 0), (1, 0), 1, 1)
    assert conv_module._use_transposed_phases(x, w, geom, out_size)
    assert fancydl.gradcheck(lambda x, w: fancydl.conv_transpose2d(
        x, w, stride=2, padding=(1, 0), output_padding=(1, 0)), x, w)


def test_conv_transpose2d_beyond_the_workspace_takes_the_im2col_backward(rng, monkeypatch):
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal((3, 8, 5, 5)), rng.standard_normal((8, 4, 4, 4))
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 1000)
    geom, out_size = conv_module._conv_transpose2d_geometry(
        "conv_transpose2d", x, w, None, 2, 1, 0, 1, 1)
    assert not conv_module._use_transposed_phases(x, w, geom, out_size)
    check_against_torch(fancydl.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                        x, w, None, rng, dict(stride=2, padding=1), np.float64)


@pytest.mark.parametrize("where", ["input", "weight", "upstream"])
def test_conv_transpose2d_by_stride_phases_propagates_nan_and_inf_like_torch(rng, where):
    """The backward multiplies the columns by a zero gradient at the phase positions
    that fall in the cropped padding, which PyTorch never does: a non-finite input or
    weight must not make a NaN that PyTorch's gradients do not have. (In float64:
    PyTorch's float32 oneDNN kernels put NaN in more positions than its own float64.)"""
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal((2, 8, 5, 6)), rng.standard_normal((8, 4, 4, 4))
    kwargs = dict(stride=2, padding=1)
    upstream = rng.standard_normal((2, 4, 10, 12))
    if where == "input":
        x[0, 0, 0, 0], x[1, 3, 4, 5], x[0, 5, 2, 3] = np.nan, np.inf, -np.inf
    elif where == "weight":
        w[1, 2, 0, 3], w[6, 0, 2, 2] = np.inf, np.nan
    else:
        upstream[0, 0, 0, -1], upstream[1, 2, 5, 0] = np.nan, -np.inf
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv_transpose2d(x, w, **kwargs), x, w)
    mine = (out,) + tuple(pullback(upstream))
    theirs = _torch_call(torch.nn.functional.conv_transpose2d, x, w, upstream, kwargs)
    for a, b in zip(mine, theirs):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        finite = np.isfinite(b)
        np.testing.assert_array_equal(a[~finite], b[~finite])
        np.testing.assert_allclose(a[finite], b[finite], rtol=1e-10)


def test_conv_transpose2d_by_stride_phases_float32_overflow_gives_torchs_inf():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    kwargs = dict(stride=2, padding=1)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(25):
            # finite inputs whose products overflow (3e38 would round some inputs to
            # inf, whose weight-gradient is another matter)
            scale = rng.choice([1e19, 1e20, 1e37])
            x = (rng.standard_normal((2, 8, 6, 6)) * (rng.random((2, 8, 6, 6)) < 0.1)
                 * scale).astype(np.float32)
            w = (rng.standard_normal((8, 4, 4, 4)) * rng.choice([1.0, 1e19])).astype(
                np.float32)
            out, pullback = fancydl.vjp(
                lambda x, w: fancydl.conv_transpose2d(x, w, **kwargs), x, w)
            upstream = rng.standard_normal(out.shape).astype(np.float32)
            mine = (out,) + tuple(pullback(upstream))
            for a, b in zip(mine, _torch_call(F.conv_transpose2d, x, w, upstream, kwargs)):
                assert not (np.isnan(a) & np.isinf(b)).any()


def test_conv_transpose2d_unbatched_and_output_padding_beyond_stride(rng):
    torch = pytest.importorskip("torch")
    # output_padding may reach dilation - 1 when dilation > stride.
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((2, 3, 2, 2))
    check_against_torch(fancydl.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                        x, w, None, rng, dict(stride=1, output_padding=2, dilation=3),
                        np.float64)


# --- im2col / col2im ---------------------------------------------------------------

@st.composite
def window_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    height = max(1, effective_kernel_size(kh, dh) - 2 * ph + draw(st.integers(0, 4)))
    width = max(1, effective_kernel_size(kw, dw) - 2 * pw + draw(st.integers(0, 4)))
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), height, width),
                kwargs=dict(kernel_size=maybe_pair(draw, kh, kw),
                            dilation=maybe_pair(draw, dh, dw),
                            padding=maybe_pair(draw, ph, pw),
                            stride=maybe_pair(draw, sh, sw)),
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**31 - 1)))


@given(window_cases())
def test_im2col_and_col2im_match_unfold_and_fold(case):
    check_unfold_and_fold_against_torch(case)


def check_unfold_and_fold_against_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(case["dtype"])
    kw = case["kwargs"]
    cols, pullback = fancydl.vjp(lambda x: fancydl.im2col(x, **kw), x)
    tx = torch.tensor(x, requires_grad=True)
    t_cols = F.unfold(tx, **kw)
    assert_close(cols, t_cols.detach().numpy(), case["dtype"])
    upstream = rng.standard_normal(cols.shape).astype(case["dtype"])
    (t_grad,) = torch.autograd.grad(t_cols, tx, torch.tensor(upstream))
    assert_close(pullback(upstream)[0], t_grad.numpy(), case["dtype"])

    size = case["shape"][2:]
    image, pullback = fancydl.vjp(lambda c: fancydl.col2im(c, size, **kw), upstream)
    tc = torch.tensor(upstream, requires_grad=True)
    t_image = F.fold(tc, size, **kw)
    assert_close(image, t_image.detach().numpy(), case["dtype"])
    g = rng.standard_normal(image.shape).astype(case["dtype"])
    (t_grad,) = torch.autograd.grad(t_image, tc, torch.tensor(g))
    assert_close(pullback(g)[0], t_grad.numpy(), case["dtype"])


def test_im2col_and_col2im_accept_unbatched_input_like_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 5, 4))
    cols = fancydl.im2col(x, (2, 3), padding=1)
    expected = torch.nn.functional.unfold(torch.tensor(x), (2, 3), padding=1).numpy()
    np.testing.assert_allclose(cols, expected, rtol=1e-12)
    image = fancydl.col2im(cols, (5, 4), (2, 3), padding=1)
    expected = torch.nn.functional.fold(torch.tensor(cols), (5, 4), (2, 3), padding=1)
    np.testing.assert_allclose(image, expected.numpy(), rtol=1e-12)


def test_im2col_gemm_is_conv2d(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 2, 3))
    cols = fancydl.im2col(x, (2, 3), padding=1, stride=2)
    out = (w.reshape(4, -1) @ cols).reshape(2, 4, *WindowGeometry(
        (2, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)).output_size(6, 5))
    np.testing.assert_allclose(out, fancydl.conv2d(x, w, padding=1, stride=2), rtol=1e-12)


def test_im2col_col2im_gradcheck(rng):
    x = rng.standard_normal((1, 2, 4, 5))
    assert fancydl.gradcheck(lambda x: fancydl.im2col(x, (2, 2), 1, 1, (1, 2)), x)
    cols = rng.standard_normal((1, 8, 15))
    assert fancydl.gradcheck(lambda c: fancydl.col2im(c, (4, 5), (2, 2), 1, 1, (1, 2)),
                             cols)


# --- output-size arithmetic ---------------------------------------------------------

def _size_or_error(call):
    """The output length ``call()`` gives, or "error" when it raises (ValueError for
    fancydl, RuntimeError for torch)."""
    try:
        return call()
    except (ValueError, RuntimeError):
        return "error"


@given(st.integers(1, 20), st.integers(1, 5), st.integers(1, 4), st.integers(0, 12),
       st.integers(1, 3))
def test_output_sizes_match_torch_or_raise_where_it_raises(size, kernel, stride, padding,
                                                           dilation):
    """Issue D5: a size that comes out < 1 is an error, where it was returned (-1)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = torch.zeros(1, 1, size, 1)
    w = torch.zeros(1, 1, kernel, 1)
    ours = _size_or_error(lambda: conv_output_size(size, kernel, stride, padding,
                                                   dilation))
    theirs = _size_or_error(lambda: F.conv2d(x, w, stride=(stride, 1), padding=(padding, 0),
                                             dilation=(dilation, 1)).shape[2])
    assert ours == theirs
    for extra in range(max(stride, dilation)):
        ours = _size_or_error(lambda: conv_transpose_output_size(
            size, kernel, stride, padding, extra, dilation))
        theirs = _size_or_error(lambda: F.conv_transpose2d(
            x, w, stride=(stride, 1), padding=(padding, 0), output_padding=(extra, 0),
            dilation=(dilation, 1)).shape[2])
        assert ours == theirs


@pytest.mark.parametrize("call, error, match", [
    (lambda: conv_output_size(5, 3, 0), ValueError, r"conv_output_size: stride must be "
                                                    r">= 1, got 0"),
    (lambda: conv_output_size(1, 5, 2), ValueError,
     r"conv_output_size: the dilated kernel \(5,\) .*larger than the padded input "
     r"\(1,\) .*no output"),
    (lambda: conv_output_size(5, 3, 1, -1), ValueError, r"padding must be .*got -1"),
    (lambda: conv_output_size(5, 3, 1, (0, -1)), ValueError, r"padding must be .*got"),
    (lambda: conv_output_size(5.0, 3), TypeError, r"size must be an int, got float"),
    (lambda: conv_transpose_output_size(1, 1, 1, 5), ValueError,
     r"conv_transpose_output_size: .* = -9 .*too much padding"),
    (lambda: conv_transpose_output_size(4, 3, 2, 0, 2), ValueError,
     r"output_padding must be smaller than max\(stride, dilation\) = 2, got 2"),
    (lambda: conv_transpose_output_size(4, 0), ValueError, r"kernel_size must be >= 1"),
    (lambda: effective_kernel_size(0, 2), ValueError,
     r"effective_kernel_size: kernel_size must be >= 1, got 0"),
    (lambda: effective_kernel_size(3, 0), ValueError, r"dilation must be >= 1, got 0"),
    (lambda: receptive_field([(3, 0), (3, 1)]), ValueError,
     r"receptive_field: layers\[0\]: stride must be >= 1, got 0"),
    (lambda: receptive_field([(3, 1), (0,)]), ValueError,
     r"layers\[1\]: kernel_size must be >= 1"),
    (lambda: receptive_field([3, 3]), TypeError,
     r"receptive_field: layers\[0\] must be a tuple \(kernel_size, stride, dilation\)"),
    (lambda: receptive_field([(3, 1, 1, 1)]), TypeError, r"layers\[0\] must be a tuple"),
])
def test_size_helpers_refuse_bad_arguments_naming_them(call, error, match):
    with pytest.raises(error, match=match):
        call()


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
                min_size=1, max_size=4))
def test_receptive_field_counts_the_inputs_that_reach_one_output(layers):
    # Oracle: pull a unit gradient at one output of a stack of all-ones 1-D convs back
    # to the input, and count the input pixels that receive a non-zero gradient.
    field = receptive_field(layers)
    size = field + 4
    for kernel, stride, dilation in layers:
        size = (size - 1) * stride + effective_kernel_size(kernel, dilation)
    x = np.ones((1, 1, 1, size))

    def stack(x):
        for kernel, stride, dilation in layers:
            x = fancydl.conv2d(x, np.ones((1, 1, 1, kernel)), stride=(1, stride),
                               dilation=(1, dilation))
        return x

    out, pullback = fancydl.vjp(stack, x)
    upstream = np.zeros(out.shape)
    upstream[..., out.shape[-1] // 2] = 1.0
    (grad,) = pullback(upstream)
    reached = np.flatnonzero(grad[0, 0, 0])
    assert reached[-1] - reached[0] + 1 == field


def test_receptive_field_known_values():
    assert receptive_field([(3, 1, 1)] * 3) == 7           # three 3x3 = one 7x7
    assert receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == 15
    assert receptive_field([(7, 2), (3, 2), (3,)]) == 7 + 2 * 2 + 2 * 4


# --- bad input ------------------------------------------------------------------------

X = np.zeros((1, 4, 5, 5))
W = np.zeros((6, 2, 3, 3))
WT = np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize("call, error, match", [
    (lambda: fancydl.conv2d(X, W, groups=2, stride=0), ValueError, r"stride .*got 0"),
    (lambda: fancydl.conv2d(X, W, groups=2, stride=(1, -1)), ValueError, r"stride"),
    (lambda: fancydl.conv2d(X, W, groups=2, stride=1.5), TypeError, r"stride .*1\.5"),
    (lambda: fancydl.conv2d(X, W, groups=2, dilation=0), ValueError, r"dilation .*got 0"),
    (lambda: fancydl.conv2d(X, W, groups=2, padding=-1), ValueError, r"padding .*got -1"),
    (lambda: fancydl.conv2d(X, W, groups=2, padding="full"), ValueError,
     r"padding must be one of 'same', 'valid', got 'full'"),
    (lambda: fancydl.conv2d(X, W, groups=2, padding="same", stride=2), ValueError,
     r"padding='same'.*stride"),
    (lambda: fancydl.conv2d(X, np.zeros((6, 2, 6, 3)), groups=2), ValueError,
     r"kernel .*larger than the padded input"),
    (lambda: fancydl.conv2d(X, W, groups=2, dilation=3), ValueError,
     r"larger than the padded input"),
    (lambda: fancydl.conv2d(X, W), ValueError, r"groups=1 the input must have 2 channels"),
    (lambda: fancydl.conv2d(X, W, groups=4), ValueError, r"groups=4 must divide"),
    (lambda: fancydl.conv2d(X, W, groups=0), ValueError, r"groups must be >= 1, got 0"),
    (lambda: fancydl.conv2d(X[0, 0], W, groups=2), ValueError,
     r"input must have 3 or 4 dimensions"),
    (lambda: fancydl.conv2d(X, W[0], groups=2), ValueError,
     r"weight must have 4 dimensions"),
    (lambda: fancydl.conv2d(X, W, np.zeros(5), groups=2), ValueError,
     r"bias must have one entry per output channel \(6\), got shape \(5,\)"),
    (lambda: fancydl.conv2d(X.astype(np.float32), W, groups=2), TypeError,
     r"input is float32, weight is float64"),
    (lambda: fancydl.conv2d(X.astype(np.int64), W, groups=2), TypeError,
     r"input must have dtype float32 or float64, got int64"),
    (lambda: fancydl.conv2d(X.tolist(), W, groups=2), TypeError, r"input must be a numpy"),
    (lambda: fancydl.conv_transpose2d(X, WT, stride=2, output_padding=2), ValueError,
     r"output_padding must be smaller than either stride or dilation"),
    (lambda: fancydl.conv_transpose2d(X, WT, output_padding=-1), ValueError,
     r"output_padding .*got -1"),
    (lambda: fancydl.conv_transpose2d(X, WT, padding="same"), TypeError, r"padding"),
    (lambda: fancydl.conv_transpose2d(X, WT, padding=4), ValueError,
     r"output size .*too much padding"),
    (lambda: fancydl.conv_transpose2d(X, WT, groups=3), ValueError, r"groups=3 must divide"),
    (lambda: fancydl.conv_transpose2d(X, W), ValueError,
     r"expects 6 input channels .*input has 4"),
    (lambda: fancydl.conv_transpose2d(X, WT, dilation=0), ValueError, r"dilation"),
    (lambda: fancydl.conv_transpose2d(X, WT, stride=0), ValueError, r"stride"),
    (lambda: fancydl.im2col(X, 7), ValueError, r"larger than the padded input"),
    (lambda: fancydl.im2col(X, 0), ValueError, r"kernel_size .*got 0"),
    (lambda: fancydl.col2im(np.zeros((1, 8, 5)), (4, 4), 2), ValueError,
     r"5 columns .*9 blocks"),
    (lambda: fancydl.col2im(np.zeros((1, 7, 9)), (4, 4), 2), ValueError,
     r"divisible by kH·kW = 4"),
])
def test_bad_arguments_raise_naming_them(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- empty batches, empty dimensions (issue 11) ----------------------------------------

def _torch_call(torch_fn, x, w, upstream, kwargs):
    import torch
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    out = torch_fn(tx, tw, **kwargs)
    gx, gw = torch.autograd.grad(out, (tx, tw), torch.tensor(upstream), allow_unused=True)
    return out.detach().numpy(), gx.numpy(), gw.numpy()


@pytest.mark.parametrize("transposed, c_in, w_shape, kwargs", [
    (False, 4, (6, 4, 3, 3), dict(padding=1)),                 # im2col
    (False, 16, (6, 16, 3, 3), dict(padding=1)),               # shifted GEMM
    (False, 16, (6, 16, 2, 2), dict(stride=2)),                # phase GEMM
    (False, 4, (6, 2, 3, 3), dict(groups=2, stride=2)),        # grouped
    (False, 4, (6, 4, 1, 1), dict()),                          # 1x1
    (False, 4, (8, 1, 3, 3), dict(groups=4, padding=1)),       # depthwise, stride 1
    (False, 4, (4, 1, 3, 3), dict(groups=4, stride=2)),        # depthwise, strided
    (True, 4, (4, 3, 4, 4), dict(stride=2, padding=1)),        # transposed, im2col
    (True, 16, (16, 3, 4, 4), dict(stride=2, padding=1)),      # transposed, phases
    (True, 4, (4, 1, 3, 3), dict(groups=4, padding=1)),        # transposed depthwise
    (False, 4, (6, 2, 3, 3), dict(groups=2, stride=20, padding=30)),   # gathered
    (True, 4, (4, 3, 3, 3), dict(stride=20, padding=50)),      # transposed, gathered
], ids=["im2col", "shifted", "phases", "grouped", "1x1", "depthwise", "depthwise-s2",
        "T-im2col", "T-phases", "T-depthwise", "gathered", "T-gathered"])
def test_empty_batch_matches_torch_forward_and_backward(rng, transposed, c_in, w_shape,
                                                        kwargs):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fancy_fn, torch_fn = ((fancydl.conv_transpose2d, F.conv_transpose2d) if transposed
                          else (fancydl.conv2d, F.conv2d))
    x = np.zeros((0, c_in, 7, 6))
    w = rng.standard_normal(w_shape)
    out, pullback = fancydl.vjp(lambda x, w: fancy_fn(x, w, **kwargs), x, w)
    upstream = np.zeros(out.shape)
    gx, gw = pullback(upstream)
    t_out, t_gx, t_gw = _torch_call(torch_fn, x, w, upstream, kwargs)
    for mine, theirs in ((out, t_out), (gx, t_gx), (gw, t_gw)):
        assert mine.shape == theirs.shape
        np.testing.assert_array_equal(mine, theirs)


def test_im2col_col2im_empty_batch_match_torch_with_pullbacks(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.zeros((0, 4, 5, 5))
    cols, pullback = fancydl.vjp(lambda x: fancydl.im2col(x, 3, padding=1), x)
    t_cols = F.unfold(torch.tensor(x), 3, padding=1)
    assert cols.shape == tuple(t_cols.shape) == (0, 36, 25)
    assert pullback(np.zeros(cols.shape))[0].shape == x.shape
    image, pullback = fancydl.vjp(lambda c: fancydl.col2im(c, (5, 5), 3, padding=1), cols)
    assert image.shape == tuple(F.fold(t_cols, (5, 5), 3, padding=1).shape) == x.shape
    assert pullback(np.zeros(image.shape))[0].shape == cols.shape


def _torch_raises(call):
    try:
        call()
    except RuntimeError:
        return True
    return False


@pytest.mark.parametrize("x_shape, w_shape, transposed, match", [
    ((2, 4, 5, 5), (6, 4, 0, 3), False, r"weight must have no empty dimension"),
    ((2, 4, 5, 5), (0, 4, 3, 3), False, r"weight must have no empty dimension"),
    ((2, 4, 5, 5), (0, 2, 3, 3), False, r"weight must have no empty dimension"),
    ((2, 0, 5, 5), (0, 0, 3, 3), False, r"weight must have no empty dimension"),
    ((2, 4, 5, 5), (4, 6, 3, 0), True, r"weight must have no empty dimension"),
    ((2, 4, 5, 5), (4, 0, 3, 3), True, r"weight must have no empty dimension"),
    ((2, 0, 5, 5), (0, 3, 3, 3), True, r"weight must have no empty dimension"),
    ((2, 4, 0, 5), (6, 4, 1, 1), False, r"non-empty height and width"),
    ((1, 3, 0, 5), (2, 3, 3, 3), False, r"input must have a non-empty height"),
    ((1, 4, 0, 3), (4, 2, 3, 3), True, r"input must have a non-empty height"),
    ((1, 4, 3, 0), (4, 2, 1, 1), True, r"input must have a non-empty height"),
])
def test_empty_dimensions_raise_where_torch_raises(x_shape, w_shape, transposed, match):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fancy_fn, torch_fn = ((fancydl.conv_transpose2d, F.conv_transpose2d) if transposed
                          else (fancydl.conv2d, F.conv2d))
    x, w = np.zeros(x_shape), np.ones(w_shape)
    assert _torch_raises(lambda: torch_fn(torch.tensor(x), torch.tensor(w)))
    with pytest.raises(ValueError, match=match):
        fancy_fn(x, w)


def test_zero_input_channels_raise_a_documented_divergence():
    # PyTorch 2.13 accepts C_in = 0 with a (6, 0, 3, 3) weight but returns a (2, 0, 3, 3)
    # output that drops the weight's 6 output channels; fancydl refuses the call.
    with pytest.raises(ValueError, match=r"weight must have no empty dimension .*\(6, 0, 3, 3\)"):
        fancydl.conv2d(np.zeros((2, 0, 5, 5)), np.ones((6, 0, 3, 3)))


@pytest.mark.parametrize("call, match", [
    (lambda: fancydl.im2col(np.zeros((2, 0, 5, 5)), 3), r"non-empty channels"),
    (lambda: fancydl.im2col(np.zeros((2, 3, 0, 5)), 1, padding=1), r"non-empty channels"),
    (lambda: fancydl.col2im(np.zeros((2, 0, 9)), (5, 5), 3), r"must be non-empty"),
])
def test_im2col_col2im_empty_dimensions_raise_like_torch(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- float32 overflow (issue 11) ------------------------------------------------------

@pytest.mark.parametrize("channels, groups, stride, kernel", [
    (3, 1, 1, 3), (3, 1, 2, 3), (16, 1, 1, 3), (16, 1, 2, 2), (4, 4, 1, 3), (4, 4, 2, 3)],
    ids=["im2col", "im2col-s2", "shifted", "phases", "depthwise", "depthwise-s2"])
def test_float32_overflow_gives_torchs_inf_not_nan(channels, groups, stride, kernel):
    """Sparse huge values make float32 sums overflow. Where PyTorch's result is ±inf,
    ours must not be a NaN made by adding +inf and -inf partial sums in another order."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(25):
            scale = rng.choice([1e19, 1e20, 3e38])
            x = (rng.standard_normal((2, channels, 9, 9)) * (rng.random((2, channels, 9, 9))
                                                            < 0.1) * scale).astype(np.float32)
            w = (rng.standard_normal((4 * groups, channels // groups, kernel, kernel))
                 * rng.choice([1.0, 1e19, 1e20])).astype(np.float32)
            kwargs = dict(stride=stride, padding=1, groups=groups)
            out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
            upstream = rng.standard_normal(out.shape).astype(np.float32)
            mine = (out,) + tuple(pullback(upstream))
            theirs = _torch_call(F.conv2d, x, w, upstream, kwargs)
            for a, b in zip(mine, theirs):
                assert not (np.isnan(a) & np.isinf(b)).any()


def test_overflow_safe_recomputes_a_nan_in_float64():
    def bad_order(a):  # (b + c) first: -inf, then + inf = NaN
        return a[..., 0] + (a[..., 1] + a[..., 2])

    a = np.array([[np.inf, -3e38, -3e38], [np.inf, -np.inf, 1.0], [1.0, 2.0, 3.0]],
                 np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(bad_order(a)[0])
        out = conv_module._overflow_safe(bad_order)(a)
    assert out[0] == np.inf           # the exact sum is +inf
    assert np.isnan(out[1])           # inf - inf is NaN in any order
    assert out[2] == 6.0 and out.dtype == np.float32


# --- one huge image: chunked by output rows (issue 11) -----------------------------------

@pytest.mark.parametrize("kwargs", [dict(padding=3), dict(stride=2, padding=2, dilation=2),
                                    dict(stride=(1, 2), padding=(0, 1))])
def test_single_image_cut_into_row_blocks_matches_torch(rng, monkeypatch, kwargs):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 3, 23, 19))
    w = rng.standard_normal((4, 3, 7, 5))
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 4000)  # a few output rows per block
    geom = conv_module._conv2d_geometry("conv2d", x, w, None, kwargs.get("stride", 1),
                                        kwargs["padding"], kwargs.get("dilation", 1), 1)
    oh, ow = geom.output_size(23, 19)
    pieces = windows.work_chunks(1, 3 * 35 * oh * ow * 8, rows=oh)
    assert len(pieces) > 2 and all(rows.stop - rows.start < oh for _, rows in pieces)
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                        kwargs, np.float64)
    xt = rng.standard_normal((1, 4, 9, 8))
    check_against_torch(fancydl.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                        xt, w, None, rng, dict(stride=2, padding=1), np.float64)


@pytest.mark.parametrize("kernel, kwargs", [((3, 3), dict(padding=1)),
                                            ((3, 2), dict(padding=(3, 1), dilation=2)),
                                            ((4, 4), dict(padding=1, stride=2))],
                         ids=["shifted", "shifted-dilated", "phases"])
def test_single_wide_image_cut_into_row_blocks_matches_torch(rng, monkeypatch, kernel,
                                                             kwargs):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 16, 26, 15))
    w = rng.standard_normal((4, 16, *kernel))
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", 20000)  # < one image's buffers
    calls = []
    original = conv_module._by_row_blocks
    monkeypatch.setattr(conv_module, "_by_row_blocks",
                        lambda *args: calls.append(len(args[-1])) or original(*args))
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                        kwargs, np.float64)
    assert calls and min(calls) > 2


def test_single_image_forward_memory_stays_near_the_output(rng, monkeypatch):
    import tracemalloc
    x = rng.standard_normal((1, 3, 128, 128)).astype(np.float32)
    w = rng.standard_normal((8, 3, 7, 7)).astype(np.float32)
    budget = 2**20
    monkeypatch.setattr(windows, "WORKSPACE_BYTES", budget)
    tracemalloc.start()
    out = fancydl.conv2d(x, w, padding=3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    im2col_bytes = 3 * 49 * 128 * 128 * 4            # 9.6 MB: what one piece used to hold
    assert peak < out.nbytes + 2 * x.nbytes + 3 * budget < im2col_bytes


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_columns_stay_within_their_block_budget(rng, monkeypatch, stride):
    """A depthwise layer with few channels and many large images: one channel's 9-fold
    columns (7.1 MiB with stride 1) exceed the block budget and must be cut by images,
    so that each core's buffer holds at most COLUMN_BLOCK_BYTES; forward and backward
    stay near the padded planes, the output and the gradients."""
    import tracemalloc
    monkeypatch.setattr(conv_module, "COLUMN_BLOCK_BYTES", 2**20)
    monkeypatch.setattr(parallel, "THREADED_SIZE", 1)  # two buffers: one per core
    x = rng.standard_normal((16, 2, 112, 112)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    kwargs = dict(stride=stride, padding=1, groups=2)
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
    g = rng.standard_normal(out.shape).astype(np.float32)
    grid = (114, 114) if stride == 1 else out.shape[2:]   # padded planes, or the output
    one_channel_columns = 9 * 16 * grid[0] * grid[1] * 4
    assert one_channel_columns > conv_module.COLUMN_BLOCK_BYTES
    tracemalloc.start()
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
    forward_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    pullback(g)
    backward_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    columns = 2 * conv_module.COLUMN_BLOCK_BYTES + 2**20
    assert forward_peak < 1.1 * x.nbytes + out.nbytes + columns
    assert backward_peak < 1.1 * (x.nbytes + 2 * g.nbytes) + out.nbytes + columns


# --- the strategies agree with PyTorch (issue 11: phases, depthwise, threads) -----------

@pytest.mark.parametrize("channels, kernel, stride, padding", [
    (16, 4, 2, 1), (4, 2, 2, 0), (2, 3, 3, 1), (8, (4, 3), (2, 1), (1, 0)), (16, 6, 3, 2)])
def test_phase_gemm_path_matches_torch(rng, channels, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.standard_normal((2, channels, 11, 13))
    w = rng.standard_normal((5, channels, *kernel))
    geom = conv_module._conv2d_geometry("conv2d", x, w, None, stride, padding, 1, 1)
    assert conv_module._use_phase_gemm(w.shape, geom)
    check_against_torch(fancydl.conv2d, F.conv2d, x, w, rng.standard_normal(5), rng,
                        dict(stride=stride, padding=padding), np.float64)
    xt = rng.standard_normal((2, 5, 6, 7))
    for extra in (0, 1):
        check_against_torch(fancydl.conv_transpose2d, F.conv_transpose2d, xt, w, None, rng,
                            dict(stride=stride, padding=padding,
                                 output_padding=tuple(min(extra, s - 1) for s in
                                                      np.broadcast_to(stride, 2))),
                            np.float64)


@given(channels=st.integers(1, 4), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=st.sampled_from([0, 1, 2, (0, 2), (3, 1), "same"]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1))
def test_stride_one_depthwise_paths_match_torch(channels, kernel, dilation, padding, dtype,
                                                seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels + 1, 9, 8)).astype(dtype)
    w = rng.standard_normal((channels + 1, 1, *kernel)).astype(dtype)
    check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                        dict(padding=padding, dilation=dilation, groups=channels + 1), dtype)


def test_depthwise_halves_on_two_threads_match_torch(rng, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(parallel, "THREADED_SIZE", 1)   # every split runs on the worker
    x = rng.standard_normal((5, 6, 8, 9))
    for w, kwargs in ((rng.standard_normal((6, 1, 3, 3)), dict(padding=1, groups=6)),
                      (rng.standard_normal((12, 1, 3, 2)), dict(stride=2, groups=6))):
        check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                            kwargs, np.float64)


@pytest.mark.parametrize("op, w_shape, kwargs", [
    ("conv2d", (6, 1, 3, 3), dict(padding=1, groups=6)),           # keeps padded planes
    ("conv_transpose2d", (6, 4, 4, 4), dict(stride=2, padding=1)),  # keeps (C, N·H·W)
])
def test_kept_input_forms_give_forward_time_gradients(rng, op, w_shape, kwargs):
    """The backward of these paths reads a copy of the input made in the forward pass:
    changing the input in place before the pullback leaves the gradients unchanged."""
    x = rng.standard_normal((3, 6, 7, 7))
    w = rng.standard_normal(w_shape)
    f = getattr(fancydl, op)
    out, pullback = fancydl.vjp(lambda w: f(x, w, **kwargs), w)
    g = rng.standard_normal(out.shape)
    expected = pullback(g)[0].copy()
    x *= 2
    np.testing.assert_array_equal(pullback(g)[0], expected)


@given(channels=st.integers(1, 5), out_channels=st.integers(1, 5),
       stride=st.integers(2, 3), multiple=st.integers(1, 2), padding=st.integers(0, 1),
       batch=st.integers(0, 3), seed=st.integers(0, 2**31 - 1))
def test_shared_im2col_backward_equals_the_separate_kernels(channels, out_channels, stride,
                                                           multiple, padding, batch, seed):
    """conv_transpose2d's backward computes conv2d's forward and weight-gradient from
    one im2col: the same values as the two kernels called one by one."""
    rng = np.random.default_rng(seed)
    kernel = stride * multiple  # >= 2 > padding
    g = rng.standard_normal((batch, channels, 4 * stride + kernel, 3 * stride + kernel))
    w = rng.standard_normal((out_channels, channels, kernel, kernel))
    geom = conv_module._conv2d_geometry("conv2d", g, w, None, stride, padding, 1, 1)
    out_size = geom.output_size(*g.shape[2:])
    x = rng.standard_normal((batch, out_channels) + out_size)
    shared = conv_module._im2col_forward_and_weight_grad(g, w, x, geom)
    np.testing.assert_allclose(shared[0], conv_module._conv_forward(g, w, geom), atol=1e-12)
    np.testing.assert_allclose(shared[1], conv_module._conv_weight_grad(x, g, w.shape, geom),
                               atol=1e-12)


# --- non-finite values on the depthwise shared-columns backward (issue D1) ---------------

def assert_matches_non_finite(mine, theirs, rtol=1e-10):
    """Same NaN and ±inf entries; the finite ones close."""
    theirs = np.asarray(theirs)
    assert mine.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_array_equal(mine[~finite], theirs[~finite])
    scale = max(1.0, float(np.abs(theirs[finite]).max(initial=0.0)))
    np.testing.assert_allclose(mine[finite], theirs[finite], rtol=rtol, atol=rtol * scale)


NON_FINITE = st.sampled_from([np.inf, -np.inf, np.nan])


@given(channels=st.integers(2, 4), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       dilation=st.sampled_from([1, 2, (2, 1)]),
       padding=st.sampled_from([1, 2, (2, 0), (0, 1), "same"]),
       bad_weights=st.lists(st.tuples(st.integers(0, 10**6), NON_FINITE), max_size=2),
       bad_upstream=st.lists(st.tuples(st.integers(0, 10**6), NON_FINITE), max_size=2),
       seed=st.integers(0, 2**31 - 1))
def test_depthwise_shared_columns_backward_with_non_finite_values_matches_torch(
        channels, kernel, dilation, padding, bad_weights, bad_upstream, seed):
    """Issue D1: the input-gradient of the shared-columns backward multiplies the
    rotated kernels by the zero padding around the upstream gradient; an infinite weight
    made NaN where PyTorch's input-gradient is finite or ±inf."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, 7, 8))
    w = rng.standard_normal((channels, 1) + kernel)
    for index, value in bad_weights:
        w.flat[index % w.size] = value
    kwargs = dict(padding=padding, dilation=dilation, groups=channels)
    geom = conv_module._conv2d_geometry("conv2d", x, w, None, 1, padding, dilation,
                                        channels)
    out_shape = (2, channels) + geom.output_size(7, 8)
    assume(conv_module._is_full_correlation(out_shape, x.shape, geom))
    upstream = rng.standard_normal(out_shape)
    for index, value in bad_upstream:
        upstream.flat[index % upstream.size] = value
    with mock.patch.object(conv_module, "_depthwise_planes_backward",
                           wraps=conv_module._depthwise_planes_backward) as shared:
        out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
        mine = (out,) + tuple(pullback(upstream))
    assert shared.called
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same'")
        theirs = _torch_call(torch.nn.functional.conv2d, x, w, upstream, kwargs)
    for a, b in zip(mine, theirs):
        assert_matches_non_finite(a, b)


def test_depthwise_shared_columns_input_gradient_of_an_infinite_weight_is_torchs():
    """The reviewer's case: PyTorch's input-gradient is [[inf inf 4] [inf inf 6]
    [4 6 4]] (ours had NaN in the last row and column)."""
    x, w, g = np.ones((1, 2, 3, 3)), np.ones((2, 1, 3, 3)), np.ones((1, 2, 3, 3))
    w[0, 0, 0, 0] = np.inf
    _, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, padding=1, groups=2), x, w)
    np.testing.assert_array_equal(pullback(g)[0][0, 0], [[np.inf, np.inf, 4],
                                                         [np.inf, np.inf, 6], [4, 6, 4]])


# --- padding, stride or dilation much larger than the kernel (issue D2) -----------------

# (Every conv2d and conv_transpose2d geometry through the gathered strategy:
# test_conv2d_through_a_forced_path_matches_torch and its transposed twin, above.)

@given(window_cases())
def test_im2col_and_col2im_through_gathered_columns_match_unfold_and_fold(case):
    with mock.patch.object(conv_module, "MOSTLY_PADDING_RATIO", 0):
        check_unfold_and_fold_against_torch(case)


@st.composite
def huge_window_cases(draw):
    """Small float64 arrays, paddings, strides and dilations up to tens of times the
    image: calls whose padded input is mostly padding."""
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    stride = draw(st.tuples(st.integers(1, 60), st.integers(1, 60)))
    padding = draw(st.tuples(st.integers(0, 60), st.integers(0, 60)))
    dilation = draw(st.tuples(st.integers(1, 40), st.integers(1, 40)))
    size = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    return dict(groups=groups, c_in=c_in, c_out=c_out, kernel=kernel, stride=stride,
                padding=padding, dilation=dilation, size=size,
                batch=draw(st.integers(1, 2)), seed=draw(st.integers(0, 2**31 - 1)))


@given(huge_window_cases())
def test_huge_padding_stride_and_dilation_match_torch(case):
    """Issue D2: conv2d, conv_transpose2d and im2col/col2im on the gathered columns,
    forward and every gradient (random upstream), where the padded input would be
    mostly padding."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(case["seed"])
    kernel, stride, padding, dilation = (case[k] for k in ("kernel", "stride", "padding",
                                                           "dilation"))
    geom = WindowGeometry.symmetric(kernel, stride, padding, dilation, case["groups"])
    out_size = geom.output_size(*case["size"])
    assume(min(out_size) >= 1 and conv_module._mostly_padding(geom, case["size"], out_size))
    x = rng.standard_normal((case["batch"], case["c_in"]) + case["size"])
    w = rng.standard_normal((case["c_out"], case["c_in"] // case["groups"]) + kernel)
    b = rng.standard_normal(case["c_out"])
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=case["groups"])
    check_against_torch(fancydl.conv2d, F.conv2d, x, w, b, rng, kwargs, np.float64)
    # conv_transpose2d of the output back to x's size (it is that conv2d's input-gradient)
    extra = tuple((n + 2 * p - d * (k - 1) - 1) % s for n, k, s, p, d in
                  zip(case["size"], kernel, stride, padding, dilation))
    assume(all(a < max(s, d) for a, s, d in zip(extra, stride, dilation)))
    y = rng.standard_normal((case["batch"], case["c_out"]) + out_size)
    check_against_torch(fancydl.conv_transpose2d, F.conv_transpose2d, y, w, None, rng,
                        dict(kwargs, output_padding=extra), np.float64)
    check_unfold_and_fold_against_torch(dict(
        shape=x.shape, dtype=np.float64, seed=case["seed"],
        kwargs=dict(kernel_size=kernel, dilation=dilation, padding=padding, stride=stride)))


@pytest.mark.parametrize("transposed", [False, True])
def test_gathered_columns_give_torchs_nan_and_inf(rng, transposed):
    """The gathered columns hold zeros for the padding: an infinite weight times them is
    NaN in the forward pass, an infinite upstream value times them NaN in the
    weight-gradient, as in PyTorch; the input-gradient drops the padding's products."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 2, 3, 4))
    w = rng.standard_normal((2, 3, 3, 2) if transposed else (3, 2, 3, 2))
    w[0, 1, 0, 1], w[1, 0, 2, 0] = np.inf, np.nan
    x[1, 0, 2, 3] = -np.inf
    kwargs = dict(stride=(7, 5), padding=(9, 6), dilation=(3, 2))
    fancy_fn, torch_fn = ((fancydl.conv_transpose2d, F.conv_transpose2d) if transposed
                          else (fancydl.conv2d, F.conv2d))
    gathered = mock.patch.object(conv_module, "_gathered_forward",
                                 wraps=conv_module._gathered_forward)
    with mock.patch.object(conv_module, "MOSTLY_PADDING_RATIO", 0), gathered as spy:
        out, pullback = fancydl.vjp(lambda x, w: fancy_fn(x, w, **kwargs), x, w)
        upstream = rng.standard_normal(out.shape)
        upstream[0, 1, 0, 0], upstream[1, 0, -1, -1] = np.inf, np.nan
        mine = (out,) + tuple(pullback(upstream))
    assert spy.called  # the gathered path ran (in the transposed case, its backward)
    for a, b in zip(mine, _torch_call(torch_fn, x, w, upstream, kwargs)):
        assert_matches_non_finite(a, b)


@pytest.mark.parametrize("op, x_shape, w_shape, kwargs", [
    ("conv2d", (1, 1, 1, 1), (1, 1, 1, 1), dict(stride=10**6, padding=10**6)),
    ("conv2d", (1, 16, 8, 8), (4, 16, 3, 3), dict(stride=1000, padding=1000)),
    ("conv2d", (1, 16, 8, 8), (4, 16, 3, 3), dict(padding="same", dilation=10**5)),
    ("conv2d", (2, 8, 8, 8), (8, 1, 8, 8), dict(padding="same", dilation=1000, groups=8)),
    ("conv_transpose2d", (1, 4, 3, 3), (4, 2, 3, 3), dict(stride=1000, padding=999)),
    ("im2col", (1, 16, 8, 8), None, dict(kernel_size=3, padding=10**5, stride=10**5)),
    ("col2im", (1, 9, 9), None, dict(output_size=(8, 8), kernel_size=3, padding=10**5,
                                     stride=10**5)),
], ids=["1x1-stride-1e6", "pad-stride-1000", "same-dilation-1e5", "depthwise-dilation-1000",
        "transposed-stride-1000", "im2col", "col2im"])
def test_extreme_geometries_cost_the_input_and_output_not_the_padding(op, x_shape, w_shape,
                                                                     kwargs):
    """Issue D2: these built the whole padded input (29 TiB, 74.5 GiB, 430 MiB, 31 MiB,
    ...) for outputs of a few pixels; forward and backward now stay within a few MiB
    (the largest, depthwise, has 0.5 MiB of columns)."""
    import tracemalloc
    f = getattr(fancydl, op)
    arrays = (np.ones(x_shape),) + (() if w_shape is None else (np.ones(w_shape),))
    tracemalloc.start()
    out, pullback = fancydl.vjp(lambda *arrays: f(*arrays, **kwargs), *arrays)
    grads = pullback(np.ones(out.shape))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert all(g.shape == a.shape for g, a in zip(grads, arrays))
    assert peak < 4 * 2**20


# --- one large image through the depthwise columns (issue D3) ----------------------------

@pytest.mark.parametrize("stride", [1, 2])
def test_single_image_depthwise_columns_stay_within_their_block_budget(rng, stride):
    """One channel of one image's columns (49 × 390² float32, 28 MiB with stride 1, 7
    MiB with stride 2) exceeded the block budget, and a block held at least one image:
    the columns are now cut into blocks of rows, forward and backward (memory near the
    input, output and gradients)."""
    import tracemalloc
    x = rng.standard_normal((1, 2, 384, 384)).astype(np.float32)
    w = rng.standard_normal((2, 1, 7, 7)).astype(np.float32)
    kwargs = dict(stride=stride, padding=3, groups=2)
    out = fancydl.conv2d(x, w, **kwargs)
    g = rng.standard_normal(out.shape).astype(np.float32)
    tracemalloc.start()
    out, pullback = fancydl.vjp(lambda x, w: fancydl.conv2d(x, w, **kwargs), x, w)
    forward_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    pullback(g)
    backward_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    columns = 2 * conv_module.COLUMN_BLOCK_BYTES + 2**20   # a block per core, and a row
    assert forward_peak < 1.2 * x.nbytes + out.nbytes + columns
    assert backward_peak < 1.2 * (x.nbytes + 2 * g.nbytes) + out.nbytes + columns


@pytest.mark.parametrize("kernel, kwargs", [
    ((3, 3), dict(padding=1)), ((3, 2), dict(padding=(0, 2))), ((2, 3), dict(padding="same",
                                                                             dilation=2)),
    ((3, 3), dict(stride=2, padding=1)), ((2, 2), dict(stride=(1, 2)))],
    ids=["same", "uneven", "same-dilated", "strided", "valid"])
def test_depthwise_columns_in_row_blocks_match_torch(rng, monkeypatch, kernel, kwargs):
    """A block budget below one image's columns: each block holds a few grid rows of
    one image, in the forward pass, the shared-columns backward (both its grid
    layouts) and the strided weight-gradient."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(conv_module, "COLUMN_BLOCK_BYTES", 600)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((6, 1) + kernel) if "stride" in kwargs else \
        rng.standard_normal((3, 1) + kernel)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same'")
        check_against_torch(fancydl.conv2d, torch.nn.functional.conv2d, x, w, None, rng,
                            dict(kwargs, groups=3), np.float64)


# --- one-element sequences for both axes, as PyTorch's conv2d (issue D6) -----------------

@pytest.mark.parametrize("transposed, name, value", [
    (transposed, name, value) for transposed in (False, True)
    for name, value in [("stride", (2,)), ("padding", [1]), ("dilation", (2,)),
                        ("output_padding", (1,))]
    if transposed or name != "output_padding"])
def test_one_element_sequences_are_expanded_like_torch(rng, transposed, name, value):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    kwargs = {name: value}
    if name == "output_padding":
        kwargs["stride"] = 2
    fancy_fn, torch_fn = ((fancydl.conv_transpose2d, F.conv_transpose2d) if transposed
                          else (fancydl.conv2d, F.conv2d))
    w = w if transposed else w.transpose(1, 0, 2, 3).copy()
    check_against_torch(fancy_fn, torch_fn, x, w, None, rng, kwargs, np.float64)


@pytest.mark.parametrize("call, error, match", [
    (lambda: fancydl.conv2d(X, W, groups=2, stride=(1, 1, 1)), TypeError,
     r"conv2d: stride must be a positive int or a sequence of one or two of them"),
    (lambda: fancydl.conv2d(X, W, groups=2, stride=()), TypeError, r"stride"),
    (lambda: fancydl.conv2d(X, W, groups=2, padding=(-1,)), ValueError, r"padding .*-1"),
    (lambda: fancydl.conv_transpose2d(X, WT, dilation=(0,)), ValueError, r"dilation"),
    (lambda: fancydl.im2col(X, (2,)), TypeError, r"im2col: kernel_size must be a positive "
                                                 r"int or a pair of them"),
    (lambda: fancydl.col2im(np.zeros((1, 4, 16)), (5,), 2), TypeError, r"output_size"),
])
def test_other_sequence_lengths_are_refused_like_torch(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- no RuntimeWarning on non-finite or overflowing values (issue D7) ------------------

@pytest.mark.parametrize("transposed, c_in, w_shape, kwargs", [
    (False, 3, (4, 3, 3, 3), dict(padding=1)),                   # im2col
    (False, 3, (4, 3, 3, 3), dict(stride=2, padding=1)),         # im2col, strided
    (False, 16, (4, 16, 3, 3), dict(padding=1)),                 # shifted GEMM
    (False, 16, (4, 16, 2, 2), dict(stride=2)),                  # phase GEMM
    (False, 4, (4, 1, 3, 3), dict(groups=4, padding=1)),         # depthwise, shared columns
    (False, 4, (8, 1, 3, 3), dict(groups=4, stride=2, padding=1)),   # depthwise, strided
    (False, 4, (4, 4, 3, 3), dict(stride=9, padding=20)),        # gathered
    (True, 4, (4, 3, 3, 3), dict(stride=2, padding=1)),          # transposed, im2col
    (True, 16, (16, 3, 4, 4), dict(stride=2, padding=1)),        # transposed, phases
    (True, 4, (4, 1, 3, 3), dict(groups=4, padding=1)),          # transposed depthwise
], ids=["im2col", "im2col-s2", "shifted", "phases", "depthwise", "depthwise-s2", "gathered",
        "T-im2col", "T-phases", "T-depthwise"])
@pytest.mark.parametrize("values", ["non-finite", "overflow"])
def test_non_finite_and_overflowing_values_raise_no_warning(rng, transposed, c_in, w_shape,
                                                            kwargs, values):
    """NumPy warned "invalid value encountered in matmul" (an inf weight times the
    padding), "overflow encountered in matmul" and "invalid value encountered in add";
    the values were already PyTorch's."""
    f = fancydl.conv_transpose2d if transposed else fancydl.conv2d
    x = rng.standard_normal((2, c_in, 7, 6)).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[1] * kwargs.get("groups", 1) if transposed
                            else w_shape[0]).astype(np.float32)
    if values == "non-finite":
        w.flat[0], x[0, 0, 0, 0], b[0] = np.inf, -np.inf, -np.inf
    else:
        x *= np.float32(3e37)
        w *= np.float32(4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, pullback = fancydl.vjp(lambda x, w, b: f(x, w, b, **kwargs), x, w, b)
        upstream = rng.standard_normal(out.shape).astype(np.float32)
        upstream.flat[1] = np.nan if values == "non-finite" else np.float32(3e38)
        pullback(upstream)
        cols, pullback = fancydl.vjp(lambda x: fancydl.im2col(x, 3, padding=1), x)
        pullback(np.full(cols.shape, np.float32(3e38)))
        image, pullback = fancydl.vjp(lambda c: fancydl.col2im(c, (7, 6), 3, padding=1),
                                      np.full(cols.shape, np.float32(3e38)))
        pullback(image)


def test_insert_zeros_keeps_an_empty_axis_empty():
    """An axis of no pixel has no gap to fill: it used to ask NumPy for a negative size."""
    x = np.ones((1, 1, 0, 3))
    assert fancydl.insert_zeros(x, 2).shape == (1, 1, 0, 5)
    assert fancydl.insert_zeros(x.transpose(0, 1, 3, 2), (3, 2)).shape == (1, 1, 7, 0)


def test_conv2d_loops_refuses_traced_arguments():
    """The loop reference has no backward: inside vjp it used to fail with NumPy's
    "setting an array element with a sequence"."""
    weight = np.ones((1, 1, 1, 1))
    with pytest.raises(TypeError, match=r"conv2d_loops: a plain NumPy reference has no "
                                        r"backward"):
        fancydl.vjp(lambda x: fancydl.conv2d_loops(x, weight), np.ones((1, 1, 2, 2)))
