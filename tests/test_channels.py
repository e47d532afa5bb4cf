"""Tests of fancydl.channels: channel_shuffle, squeeze-and-excitation, the composed
blocks, parameter / MAC counting, and depthwise / grouped conv2d against PyTorch."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fancydl

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _torch():
    return pytest.importorskip("torch")


def _assert_close(ours, theirs, dtype):
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_allclose(ours, theirs, **TOL[dtype])


def _torch_vjp(fn, args, upstream):
    """Output and gradients (None for non-arrays / None) of a torch function."""
    torch = _torch()
    tensors = [torch.tensor(a, requires_grad=True) if isinstance(a, np.ndarray) else a
               for a in args]
    out = fn(*tensors)
    tracked = [t for t in tensors if isinstance(t, torch.Tensor)]
    grads = iter(torch.autograd.grad(out, tracked, torch.tensor(upstream)))
    return out.detach().numpy(), [next(grads).numpy() if isinstance(t, torch.Tensor)
                                  else None for t in tensors]


def _compare_with_torch(ours_fn, torch_fn, args, dtype, seed):
    """Forward and every gradient (one random upstream gradient) against torch."""
    rng = np.random.default_rng(seed)
    out, pullback = fancydl.vjp(ours_fn, *args)
    upstream = rng.standard_normal(out.shape).astype(dtype)
    grads = pullback(upstream)
    t_out, t_grads = _torch_vjp(torch_fn, args, upstream)
    _assert_close(out, t_out, dtype)
    for g, tg in zip(grads, t_grads):
        if tg is not None:
            _assert_close(g, tg, dtype)


def _randn(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


# --- channel_shuffle ----------------------------------------------------------------

def test_channel_shuffle_documented_order():
    # SEMANTICS.md: C = 6, groups = 3 gives [0, 2, 4, 1, 3, 5].
    x = np.arange(6.0).reshape(1, 6, 1, 1)
    assert fancydl.channel_shuffle(x, 3).ravel().tolist() == [0, 2, 4, 1, 3, 5]


@given(n=st.integers(0, 3), per_group=st.integers(1, 4), groups=st.integers(1, 4),
       spatial=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_channel_shuffle_matches_torch(n, per_group, groups, spatial, dtype, seed):
    torch = _torch()
    rng = np.random.default_rng(seed)
    x = _randn(rng, (n, per_group * groups, *spatial), dtype)
    _compare_with_torch(lambda a: fancydl.channel_shuffle(a, groups),
                        lambda a: torch.nn.functional.channel_shuffle(a, groups),
                        [x], dtype, seed)


def test_channel_shuffle_zero_channels():
    # torch's forward accepts C = 0 (its backward then fails: groups 0 in the inverse).
    torch = _torch()
    x = np.zeros((2, 0, 3, 3))
    out, pullback = fancydl.vjp(lambda a: fancydl.channel_shuffle(a, 3), x)
    assert out.shape == tuple(torch.nn.functional.channel_shuffle(torch.tensor(x), 3).shape)
    assert pullback(out)[0].shape == x.shape


def test_channel_shuffle_matches_nn_module_and_keeps_integer_dtype():
    torch = _torch()
    x = np.arange(2 * 12 * 2 * 3).reshape(2, 12, 2, 3)
    expected = torch.nn.ChannelShuffle(4)(torch.tensor(x)).numpy()
    out = fancydl.channel_shuffle(x, 4)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, expected)


def test_channel_shuffle_inverse_and_copy(rng):
    x = rng.standard_normal((2, 12, 3, 3))
    y = fancydl.channel_shuffle(x, 3)
    np.testing.assert_array_equal(fancydl.channel_shuffle(y, 4), x)
    # groups = 1 is the identity permutation but still a new array, as in torch.
    same = fancydl.channel_shuffle(x, 1)
    np.testing.assert_array_equal(same, x)
    assert not np.shares_memory(same, x)


def test_channel_shuffle_nan_and_inf_move_with_their_channel():
    x = np.zeros((1, 4, 1, 1))
    x[0, 1], x[0, 2] = np.nan, np.inf
    out = fancydl.channel_shuffle(x, 2).ravel()  # order [0, 2, 1, 3]
    assert np.isinf(out[1]) and np.isnan(out[2]) and out[0] == out[3] == 0


def test_channel_shuffle_gradcheck(rng):
    x = rng.standard_normal((2, 6, 2, 3))
    assert fancydl.gradcheck(lambda a: fancydl.channel_shuffle(a, 3), x)


@pytest.mark.parametrize("x, groups, error, match", [
    (np.zeros((2, 6)), 3, ValueError, r"input must have at least 3 dimensions.*\(2, 6\)"),
    (np.zeros((1, 5, 2, 2)), 2, ValueError, r"divisible by groups, got 5 channels and groups=2"),
    (np.zeros((1, 6, 2, 2)), 0, ValueError, r"groups must be >= 1, got 0"),
    (np.zeros((1, 6, 2, 2)), 2.0, TypeError, r"groups must be an int, got float"),
    ([[[1.0]]], 1, TypeError, r"input must be a numpy.ndarray, got list"),
])
def test_channel_shuffle_bad_input(x, groups, error, match):
    with pytest.raises(error, match=match):
        fancydl.channel_shuffle(x, groups)


# --- squeeze-and-excitation -----------------------------------------------------------

def _se_arrays(rng, n, channels, reduced, height, width, dtype, bias=True):
    return [_randn(rng, (n, channels, height, width), dtype),
            _randn(rng, (reduced, channels, 1, 1), dtype),
            _randn(rng, (reduced,), dtype) if bias else None,
            _randn(rng, (channels, reduced, 1, 1), dtype),
            _randn(rng, (channels,), dtype) if bias else None]


def _torch_se(x, w1, b1, w2, b2):
    """torchvision.ops.SqueezeExcitation's forward, written with torch operators."""
    torch = _torch()
    F = torch.nn.functional
    scale = F.adaptive_avg_pool2d(x, 1)
    scale = torch.sigmoid(F.conv2d(F.relu(F.conv2d(scale, w1, b1)), w2, b2))
    return x * scale


@given(n=st.integers(1, 3), channels=st.integers(1, 8), reduced=st.integers(1, 4),
       height=st.integers(1, 5), width=st.integers(1, 5), bias=st.booleans(),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_squeeze_excitation_matches_torch(n, channels, reduced, height, width, bias,
                                          dtype, seed):
    args = _se_arrays(np.random.default_rng(seed), n, channels, reduced, height, width,
                      dtype, bias)
    _compare_with_torch(fancydl.squeeze_excitation, _torch_se, args, dtype, seed)


def test_squeeze_excitation_crosscheck_reports_all_five_gradients(rng):
    _torch()
    args = _se_arrays(rng, 2, 8, 2, 4, 3, np.float64)
    report = fancydl.crosscheck(fancydl.squeeze_excitation, *args)
    assert report and len(report.rows) == 6


def test_squeeze_excitation_gradcheck(rng):
    args = _se_arrays(rng, 2, 4, 2, 3, 3, np.float64)
    assert fancydl.gradcheck(fancydl.squeeze_excitation, *args)


def test_squeeze_excitation_scales_each_channel_by_its_weight(rng):
    x, w1, b1, w2, b2 = _se_arrays(rng, 2, 6, 3, 4, 4, np.float64)
    scale = fancydl.squeeze_excitation_scale(x, w1, b1, w2, b2)
    assert scale.shape == (2, 6, 1, 1) and np.all((scale > 0) & (scale < 1))
    pooled = x.mean(axis=(2, 3))
    hidden = np.maximum(pooled @ w1[:, :, 0, 0].T + b1, 0)
    expected = 1 / (1 + np.exp(-(hidden @ w2[:, :, 0, 0].T + b2)))
    np.testing.assert_allclose(scale[:, :, 0, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(fancydl.squeeze_excitation(x, w1, b1, w2, b2),
                               x * expected[:, :, None, None], rtol=1e-12)


def test_squeeze_excitation_nan_and_inf_like_torch(rng):
    _torch()
    x, w1, b1, w2, b2 = _se_arrays(rng, 2, 4, 2, 3, 3, np.float64)
    x[0, 1, 0, 0] = np.nan   # image 0: the pooled vector, hence every weight, is NaN
    x[1, 2, 1, 1] = np.inf   # image 1: an infinite mean saturates the sigmoids
    np.testing.assert_allclose(fancydl.squeeze_excitation(x, w1, b1, w2, b2),
                               _torch_se(*(_torch().tensor(a) for a in (x, w1, b1, w2, b2)))
                               .numpy(), rtol=1e-12)


def test_squeeze_excitation_matches_torchvision_module(rng):
    torch = _torch()
    ops = pytest.importorskip("torchvision.ops")
    module = ops.SqueezeExcitation(8, 2).double()
    x = rng.standard_normal((2, 8, 3, 3))
    params = [p.detach().numpy() for p in (module.fc1.weight, module.fc1.bias,
                                           module.fc2.weight, module.fc2.bias)]
    expected = module(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(fancydl.squeeze_excitation(x, *params), expected, rtol=1e-10)


def _se_bad(rng, **change):
    arrays = dict(zip(["input", "w1", "b1", "w2", "b2"],
                      _se_arrays(rng, 1, 4, 2, 3, 3, np.float64)))
    arrays.update(change)
    return arrays


@pytest.mark.parametrize("change, error, match", [
    (dict(input=np.zeros((4, 3, 3))), ValueError, r"input must have 4 dimensions"),
    (dict(input=np.zeros((1, 4, 0, 3))), ValueError, r"at least one pixel.*\(1, 4, 0, 3\)"),
    (dict(w1=np.zeros((2, 5, 1, 1))), ValueError, r"w1 must have shape \(2, 4, 1, 1\)"),
    (dict(w1=np.zeros((2, 4, 3, 3))), ValueError, r"w1 must have shape \(2, 4, 1, 1\)"),
    (dict(b1=np.zeros(3)), ValueError, r"b1 must have shape \(2,\).*got \(3,\)"),
    (dict(w2=np.zeros((4, 3, 1, 1))), ValueError, r"w2 must have shape \(4, 2, 1, 1\)"),
    (dict(b2=np.zeros(2)), ValueError, r"b2 must have shape \(4,\)"),
    (dict(w2=None), TypeError, r"w2 must be a numpy.ndarray"),
    (dict(b2=np.zeros(4, np.float32)), TypeError, r"share one dtype.*b2 is float32"),
    (dict(input=np.zeros((1, 4, 3, 3), np.int64)), TypeError, r"input must have dtype"),
])
def test_squeeze_excitation_bad_input(rng, change, error, match):
    with pytest.raises(error, match=match):
        fancydl.squeeze_excitation(**_se_bad(rng, **change))


# --- depthwise and grouped conv2d (through fancydl.conv2d) ------------------------------

@given(n=st.integers(1, 2), channels=st.integers(1, 4), multiplier=st.integers(1, 2),
       groups_kind=st.sampled_from(["depthwise", "grouped"]), size=st.integers(3, 7),
       k=st.integers(1, 3), stride=st.integers(1, 2), padding=st.integers(0, 1),
       dilation=st.integers(1, 2), bias=st.booleans(), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**31))
def test_depthwise_and_grouped_conv2d_match_torch(n, channels, multiplier, groups_kind,
                                                  size, k, stride, padding, dilation, bias,
                                                  dtype, seed):
    torch = _torch()
    rng = np.random.default_rng(seed)
    groups = channels if groups_kind == "depthwise" else 2
    in_channels = channels if groups_kind == "depthwise" else 2 * channels
    out_channels = groups * multiplier
    assume(size + 2 * padding >= dilation * (k - 1) + 1)
    args = [_randn(rng, (n, in_channels, size, size), dtype),
            _randn(rng, (out_channels, in_channels // groups, k, k), dtype),
            _randn(rng, (out_channels,), dtype) if bias else None]
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _compare_with_torch(lambda x, w, b: fancydl.conv2d(x, w, b, **options),
                        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **options),
                        args, dtype, seed)


# --- depthwise-separable convolution ---------------------------------------------------

def _separable_arrays(rng, n, c_in, multiplier, c_out, size, k, dtype, bias=True):
    mid = c_in * multiplier
    return [_randn(rng, (n, c_in, size, size), dtype),
            _randn(rng, (mid, 1, k, k), dtype),
            _randn(rng, (c_out, mid, 1, 1), dtype),
            _randn(rng, (mid,), dtype) if bias else None,
            _randn(rng, (c_out,), dtype) if bias else None]


def _torch_separable(x, wd, wp, bd, bp, stride=1, padding=0, dilation=1):
    F = _torch().nn.functional
    h = F.conv2d(x, wd, bd, stride=stride, padding=padding, dilation=dilation,
                 groups=x.shape[1])
    return F.conv2d(h, wp, bp)


@given(n=st.integers(1, 2), c_in=st.integers(1, 4), multiplier=st.integers(1, 2),
       c_out=st.integers(1, 5), size=st.integers(3, 6), k=st.sampled_from([1, 3]),
       stride=st.integers(1, 2), padding=st.integers(0, 1), bias=st.booleans(),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_depthwise_separable_conv_matches_torch(n, c_in, multiplier, c_out, size, k, stride,
                                                padding, bias, dtype, seed):
    args = _separable_arrays(np.random.default_rng(seed), n, c_in, multiplier, c_out, size,
                             k, dtype, bias)
    options = dict(stride=stride, padding=padding)
    _compare_with_torch(
        lambda *a: fancydl.depthwise_separable_conv(*a, **options),
        lambda *a: _torch_separable(*a, **options), args, dtype, seed)


def test_depthwise_separable_conv_gradcheck_and_crosscheck(rng):
    args = _separable_arrays(rng, 2, 3, 2, 4, 5, 3, np.float64)
    assert fancydl.gradcheck(fancydl.depthwise_separable_conv, *args, padding=1)
    _torch()
    assert fancydl.crosscheck(fancydl.depthwise_separable_conv, *args, stride=2, padding=1)


def test_depthwise_separable_conv_equals_a_standard_conv_of_rank_one_kernels(rng):
    # Multiplier 1: the equivalent standard kernel is W[o, c] = P[o, c] * D[c].
    x, wd, wp, _, _ = _separable_arrays(rng, 1, 3, 1, 4, 6, 3, np.float64)
    standard = wp[:, :, 0, 0][:, :, None, None] * wd[:, 0][None]
    np.testing.assert_allclose(fancydl.depthwise_separable_conv(x, wd, wp, padding=1),
                               fancydl.conv2d(x, standard, padding=1), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("change, match", [
    (dict(depthwise_weight=np.zeros((3, 2, 3, 3))), r"depthwise_weight must have shape \(3·m, 1"),
    (dict(depthwise_weight=np.zeros((4, 1, 3, 3))), r"depthwise_weight.*got \(4, 1, 3, 3\)"),
    (dict(pointwise_weight=np.zeros((4, 3, 3, 3))), r"pointwise_weight must have shape"),
    (dict(pointwise_weight=np.zeros((4, 5, 1, 1))), r"pointwise_weight.*1×1 convolution of 3"),
    (dict(input=np.zeros((3, 5, 5))), r"input must have 4 dimensions"),
])
def test_depthwise_separable_conv_bad_input(rng, change, match):
    names = ["input", "depthwise_weight", "pointwise_weight"]
    arrays = dict(zip(names, _separable_arrays(rng, 1, 3, 1, 4, 5, 3, np.float64)))
    arrays.update(change)
    with pytest.raises(ValueError, match=match):
        fancydl.depthwise_separable_conv(**arrays)


@pytest.mark.parametrize("shape", [(1, 3, 0, 5), (2, 3, 4, 0)])
def test_blocks_refuse_an_empty_image_naming_themselves(rng, shape):
    """Issue D4: with padding, conv2d accepted a 0-row input (PyTorch refuses it), and
    so did the blocks built on it."""
    x = np.zeros(shape)
    _, wd, wp, _, _ = _separable_arrays(rng, 1, 3, 1, 4, 5, 3, np.float64)
    with pytest.raises(ValueError, match=r"depthwise_separable_conv: input must have a "
                                         r"non-empty height and width"):
        fancydl.depthwise_separable_conv(x, wd, wp, padding=2)
    args = _shufflenet_arrays(rng, 1, 6, 6, 3, 4, 3, np.float64)
    with pytest.raises(ValueError, match=r"shufflenet_unit: input must have a non-empty"):
        fancydl.shufflenet_unit(np.zeros(shape[:1] + (6,) + shape[2:]), *args[1:])


# --- ShuffleNet unit --------------------------------------------------------------------

def _shufflenet_arrays(rng, n, channels, mid, groups, size, k, dtype, bias=True):
    return [_randn(rng, (n, channels, size, size), dtype),
            _randn(rng, (mid, channels // groups, 1, 1), dtype),
            _randn(rng, (mid, 1, k, k), dtype),
            _randn(rng, (channels, mid // groups, 1, 1), dtype),
            groups,
            _randn(rng, (mid,), dtype) if bias else None,
            _randn(rng, (mid,), dtype) if bias else None,
            _randn(rng, (channels,), dtype) if bias else None]


def _torch_shufflenet(x, w1, wd, w2, groups, b1, bd, b2):
    torch = _torch()
    F = torch.nn.functional
    k = wd.shape[-1]
    h = F.relu(F.conv2d(x, w1, b1, groups=groups))
    h = torch.nn.ChannelShuffle(groups)(h)
    h = F.conv2d(h, wd, bd, padding=k // 2, groups=h.shape[1])
    return F.relu(x + F.conv2d(h, w2, b2, groups=groups))


@given(n=st.integers(1, 2), groups=st.integers(1, 3), per_group=st.integers(1, 2),
       mid_per_group=st.integers(1, 2), size=st.integers(1, 5), k=st.sampled_from([1, 3]),
       bias=st.booleans(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_shufflenet_unit_matches_torch(n, groups, per_group, mid_per_group, size, k, bias,
                                       dtype, seed):
    args = _shufflenet_arrays(np.random.default_rng(seed), n, groups * per_group,
                              groups * mid_per_group, groups, size, k, dtype, bias)
    _compare_with_torch(fancydl.shufflenet_unit, _torch_shufflenet, args, dtype, seed)


def test_shufflenet_unit_gradcheck_and_crosscheck(rng):
    args = _shufflenet_arrays(rng, 2, 6, 6, 3, 4, 3, np.float64)
    assert fancydl.gradcheck(fancydl.shufflenet_unit, *args)
    _torch()
    assert fancydl.crosscheck(fancydl.shufflenet_unit, *args)


@pytest.mark.parametrize("change, error, match", [
    (dict(groups=4), ValueError, r"divisible by groups, got 6 channels and groups=4"),
    (dict(groups=0), ValueError, r"groups must be >= 1, got 0"),
    (dict(pointwise1_weight=np.zeros((6, 6, 1, 1))), ValueError,
     r"pointwise1_weight must have shape \(C_out, 2, 1, 1\)"),
    (dict(pointwise1_weight=np.zeros((4, 2, 1, 1))), ValueError,
     r"4 output channels must be divisible by groups=3"),
    (dict(depthwise_weight=np.zeros((6, 1, 2, 2))), ValueError, r"with k odd"),
    (dict(depthwise_weight=np.zeros((12, 1, 3, 3))), ValueError, r"\(6, 1, k, k\)"),
    (dict(pointwise2_weight=np.zeros((3, 2, 1, 1))), ValueError,
     r"map back to the input's 6 channels"),
])
def test_shufflenet_unit_bad_input(rng, change, error, match):
    names = ["input", "pointwise1_weight", "depthwise_weight", "pointwise2_weight", "groups"]
    arrays = dict(zip(names, _shufflenet_arrays(rng, 1, 6, 6, 3, 4, 3, np.float64)))
    arrays.update(change)
    with pytest.raises(error, match=match):
        fancydl.shufflenet_unit(**arrays)


# --- counting ---------------------------------------------------------------------------

@given(groups=st.integers(1, 4), in_per_group=st.integers(1, 3), out_per_group=st.integers(1, 3),
       k=st.tuples(st.integers(1, 4), st.integers(1, 4)), bias=st.booleans())
def test_conv2d_param_count_matches_torch_module(groups, in_per_group, out_per_group, k, bias):
    torch = _torch()
    c_in, c_out = groups * in_per_group, groups * out_per_group
    module = torch.nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)
    expected = sum(p.numel() for p in module.parameters())
    assert fancydl.conv2d_param_count(c_in, c_out, k, groups=groups, bias=bias) == expected


@given(groups=st.integers(1, 3), in_per_group=st.integers(1, 3), out_per_group=st.integers(1, 3),
       k=st.integers(1, 4), size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 2))
def test_conv2d_macs_counts_one_dot_product_per_output(groups, in_per_group, out_per_group,
                                                       k, size, stride, padding, dilation):
    torch = _torch()
    c_in, c_out = groups * in_per_group, groups * out_per_group
    assume(min(size) + 2 * padding >= dilation * (k - 1) + 1)
    out = torch.nn.functional.conv2d(torch.zeros(1, c_in, *size),
                                     torch.zeros(c_out, in_per_group, k, k), stride=stride,
                                     padding=padding, dilation=dilation, groups=groups)
    expected = out.numel() * in_per_group * k * k
    assert fancydl.conv2d_macs(c_in, c_out, k, size, stride=stride, padding=padding,
                               dilation=dilation, groups=groups) == expected


def test_counting_known_values():
    # AlexNet's second convolution: 256 kernels of 5×5×48 on 27×27 maps (two GPUs).
    assert fancydl.conv2d_param_count(96, 256, 5, groups=2, bias=False) == 256 * 48 * 25
    assert fancydl.conv2d_macs(96, 256, 5, 27, padding=2, groups=2) == 27 * 27 * 256 * 48 * 25


@pytest.mark.parametrize("call, error, match", [
    (lambda: fancydl.conv2d_param_count(6, 4, 3, groups=4), ValueError,
     r"groups must divide in_channels and out_channels, got in_channels=6, out_channels=4"),
    (lambda: fancydl.conv2d_param_count(0, 4, 3), ValueError, r"in_channels must be >= 1, got 0"),
    (lambda: fancydl.conv2d_param_count(4, 4, (3, 3, 3)), TypeError, r"kernel_size must be"),
    (lambda: fancydl.conv2d_macs(4, 4, 3, 8, stride=0), ValueError, r"stride must be"),
    (lambda: fancydl.conv2d_macs(4, 4, 3, 8, padding=-1), ValueError, r"padding must be"),
    (lambda: fancydl.conv2d_macs(4, 4.0, 3, 8), TypeError, r"out_channels must be an int"),
    # issue D5: a configuration with no output is refused (it counted 0), as torch does
    (lambda: fancydl.conv2d_macs(4, 4, 5, (8, 2)), ValueError,
     r"conv2d_macs: the dilated kernel \(5, 5\) .*larger than the padded input \(8, 2\)"),
    (lambda: fancydl.conv2d_macs(4, 4, 1, (0, 4), padding=1), ValueError,
     r"input_size must be a positive int"),
])
def test_counting_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- empty batches (issue 11) -------------------------------------------------------

def _empty_batch_cases(rng):
    x = np.zeros((0, 4, 5, 5))
    refs = fancydl.references
    return {
        "squeeze_excitation": (fancydl.squeeze_excitation, refs._torch_squeeze_excitation,
                               (x, rng.standard_normal((2, 4, 1, 1)), rng.standard_normal(2),
                                rng.standard_normal((4, 2, 1, 1)), rng.standard_normal(4))),
        "depthwise_separable_conv": (
            lambda *a: fancydl.depthwise_separable_conv(*a, padding=1),
            lambda torch, *a: refs._torch_depthwise_separable_conv(torch, *a, padding=1),
            (x, rng.standard_normal((8, 1, 3, 3)), rng.standard_normal((6, 8, 1, 1)),
             rng.standard_normal(8), rng.standard_normal(6))),
        "shufflenet_unit": (
            lambda x, a, b, c: fancydl.shufflenet_unit(x, a, b, c, 2),
            lambda torch, x, a, b, c: refs._torch_shufflenet_unit(torch, x, a, b, c, 2),
            (x, rng.standard_normal((4, 2, 1, 1)), rng.standard_normal((4, 1, 3, 3)),
             rng.standard_normal((4, 2, 1, 1)))),
    }


@pytest.mark.parametrize("name", ["squeeze_excitation", "depthwise_separable_conv",
                                  "shufflenet_unit"])
def test_composed_blocks_on_an_empty_batch_match_torch(rng, name):
    torch = _torch()
    ours, theirs, args = _empty_batch_cases(rng)[name]
    out, pullback = fancydl.vjp(ours, *args)
    grads = pullback(np.zeros(out.shape))
    t_out, t_grads = _torch_vjp(lambda *a: theirs(torch, *a), args, np.zeros(out.shape))
    assert out.shape == t_out.shape
    for g, tg in zip(grads, t_grads):
        assert g.shape == tg.shape
        np.testing.assert_array_equal(g, tg)


def test_squeeze_excitation_refuses_empty_channels(rng):
    with pytest.raises(ValueError, match=r"w1 must have at least one channel"):
        fancydl.squeeze_excitation(rng.standard_normal((1, 4, 2, 2)), np.zeros((0, 4, 1, 1)),
                                   None, np.zeros((4, 0, 1, 1)), None)


# --- who sees whom: one reachability mechanism (issue 11) ----------------------------

@given(groups=st.integers(1, 4), per_group=st.integers(1, 3), depth=st.integers(1, 3),
       shuffle=st.booleans(), seed=st.integers(0, 2**31))
def test_grouped_connectivity_is_the_gradient_pattern_of_a_grouped_stack(
        groups, per_group, depth, shuffle, seed):
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    x = rng.standard_normal((1, channels, 1, 1))
    weights = [rng.uniform(0.5, 1.5, (channels, per_group, 1, 1)) for _ in range(depth)]

    def stack(x, *weights):
        for layer, w in enumerate(weights):
            if shuffle and layer > 0:
                x = fancydl.channel_shuffle(x, groups)
            x = fancydl.conv2d(x, w, groups=groups)
        return x

    pattern = np.zeros((channels, channels), bool)
    for o in range(channels):
        _, pullback = fancydl.vjp(stack, x, *weights)
        upstream = np.zeros((1, channels, 1, 1))
        upstream[0, o] = 1.0
        pattern[o] = pullback(upstream)[0][0, :, 0, 0] != 0
    np.testing.assert_array_equal(
        fancydl.grouped_connectivity(channels, groups, depth, shuffle), pattern)


def test_mixing_depth_known_values_and_the_viz_and_exercise_share_it():
    from fancydl.exercises.grouped_conv_shuffle import depth_to_mix
    from fancydl.viz import channels as viz_channels

    assert viz_channels.grouped_connectivity is fancydl.grouped_connectivity
    for channels, groups, depth in [(12, 3, 2), (32, 8, 3), (6, 1, 1), (1, 1, 1), (27, 3, 2),
                                    (64, 8, 2), (27, 9, 3)]:
        assert fancydl.mixing_depth(channels, groups) == depth_to_mix(channels, groups) == depth
        assert fancydl.grouped_connectivity(channels, groups, depth, True).all()
        assert not fancydl.grouped_connectivity(channels, groups, depth - 1, True).all() \
            if depth > 1 else True


@pytest.mark.parametrize("channels", [2, 4, 7])
def test_one_channel_per_group_never_mixes_and_does_not_loop_forever(channels):
    import signal

    from fancydl.exercises.grouped_conv_shuffle import depth_to_mix

    def timeout(signum, frame):
        raise AssertionError("mixing_depth did not stop")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(10)
    try:
        with pytest.raises(ValueError, match=r"never mix"):
            depth_to_mix(channels, channels)
        with pytest.raises(ValueError, match=r"never mix"):
            fancydl.mixing_depth(channels, channels)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("call, match", [
    (lambda: fancydl.mixing_depth(6, 4), r"groups must divide channels"),
    (lambda: fancydl.mixing_depth(0, 1), r"channels must be >= 1"),
    (lambda: fancydl.grouped_connectivity(6, 3, 0, True), r"depth must be >= 1"),
])
def test_reachability_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
