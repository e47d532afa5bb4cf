"""fancydl.init: gains and fans exactly as torch.nn.init, distributions as torch's.

Values cannot equal torch's (NumPy's generator is not torch's), so the draws are
tested by their law: exact bounds, moments over large draws, and Kolmogorov-Smirnov
tests against the theoretical distribution and against torch's own draws, all with
fixed seeds (deterministic).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from fancydl import init

NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh", "relu",
                  "leaky_relu", "selu"]
P_MIN = 1e-3   # KS p-value threshold; the seeds are fixed, so this is not flaky


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.torch
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("param", [None, 0, 0.2, math.sqrt(5), 3])
def test_calculate_gain_equals_torchs(nonlinearity, param):
    torch = _torch()
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


@pytest.mark.torch
@given(shape=st.lists(st.integers(0, 7), min_size=2, max_size=5).map(tuple))
def test_fans_equal_torchs(shape):
    torch = _torch()
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.fan_in_and_fan_out(shape) == expected


def _kaiming_std(shape, a, mode, nonlinearity):
    fan_in, fan_out = init.fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return init.calculate_gain(nonlinearity, a) / math.sqrt(fan)


def _xavier_std(shape, gain):
    fan_in, fan_out = init.fan_in_and_fan_out(shape)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


CASES = [
    # (function, kwargs, std of the law, uniform?)
    ("kaiming_uniform", dict(shape=(300, 40, 3, 3)), None, True),
    ("kaiming_uniform", dict(shape=(300, 40, 3, 3), a=0.2, mode="fan_out"), None, True),
    ("kaiming_uniform", dict(shape=(600, 200), nonlinearity="relu"), None, True),
    ("kaiming_normal", dict(shape=(300, 40, 3, 3), nonlinearity="relu"), None, False),
    ("kaiming_normal", dict(shape=(600, 200), a=1.0, mode="fan_out"), None, False),
    ("xavier_uniform", dict(shape=(300, 40, 3, 3)), None, True),
    ("xavier_uniform", dict(shape=(600, 200), gain=5 / 3), None, True),
    ("xavier_normal", dict(shape=(600, 200), gain=2.0), None, False),
]


def _law_std(name, kwargs):
    shape = kwargs["shape"]
    if name.startswith("kaiming"):
        return _kaiming_std(shape, kwargs.get("a", 0), kwargs.get("mode", "fan_in"),
                            kwargs.get("nonlinearity", "leaky_relu"))
    return _xavier_std(shape, kwargs.get("gain", 1.0))


def _law(std, uniform):
    if uniform:
        bound = math.sqrt(3.0) * std
        return stats.uniform(loc=-bound, scale=2 * bound)
    return stats.norm(scale=std)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kwargs, _, uniform", CASES)
def test_draws_follow_the_law(name, kwargs, _, uniform, dtype):
    w = getattr(init, name)(np.random.default_rng(7), dtype=dtype, **kwargs)
    std = _law_std(name, kwargs)
    assert w.shape == kwargs["shape"] and w.dtype == dtype
    if uniform:
        bound = math.sqrt(3.0) * std
        assert np.abs(w).max() <= dtype(bound)
        assert np.abs(w).max() > 0.999 * bound
    assert abs(w.std() / std - 1) < 0.01
    assert abs(w.mean()) < 0.01 * std
    assert stats.kstest(w.ravel().astype(np.float64), _law(std, uniform).cdf).pvalue > P_MIN


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs, _, uniform", CASES)
def test_draws_have_torchs_distribution(name, kwargs, _, uniform):
    torch = _torch()
    ours = getattr(init, name)(np.random.default_rng(11), **kwargs)
    tensor = torch.empty(kwargs["shape"], dtype=torch.float64)
    torch_kwargs = {k: v for k, v in kwargs.items() if k != "shape"}
    getattr(torch.nn.init, name + "_")(tensor, generator=torch.Generator().manual_seed(11),
                                      **torch_kwargs)
    theirs = tensor.numpy()
    assert stats.ks_2samp(ours.ravel(), theirs.ravel()).pvalue > P_MIN
    assert abs(ours.std() / theirs.std() - 1) < 0.02
    if uniform:   # the same support, to the sampling resolution
        assert abs(np.abs(ours).max() / np.abs(theirs).max() - 1) < 1e-3


@given(seed=st.integers(0, 2**32 - 1),
       name=st.sampled_from(["kaiming_uniform", "kaiming_normal", "xavier_uniform",
                             "xavier_normal"]),
       shape=st.lists(st.integers(1, 6), min_size=2, max_size=4).map(tuple))
def test_deterministic_given_the_generator(seed, name, shape):
    fn = getattr(init, name)
    a = fn(np.random.default_rng(seed), shape)
    b = fn(np.random.default_rng(seed), shape)
    np.testing.assert_array_equal(a, b)
    if a.size > 1:
        assert not np.array_equal(a, fn(np.random.default_rng(seed + 1), shape))


@given(seed=st.integers(0, 2**32 - 1), in_channels=st.integers(1, 12),
       out_mult=st.integers(1, 4), groups=st.sampled_from([1, 2, 3]),
       kernel=st.one_of(st.integers(1, 5), st.tuples(st.integers(1, 5), st.integers(1, 5))),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_conv2d_params_shapes_and_bounds(seed, in_channels, out_mult, groups, kernel,
                                         dtype):
    in_channels *= groups
    out_channels = out_mult * groups
    p = init.conv2d_params(np.random.default_rng(seed), in_channels, out_channels, kernel,
                           groups=groups, dtype=dtype)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    assert p["weight"].shape == (out_channels, in_channels // groups, kh, kw)
    assert p["bias"].shape == (out_channels,)
    bound = dtype(1 / math.sqrt(in_channels // groups * kh * kw))
    for value in p.values():
        assert value.dtype == dtype and np.abs(value).max() <= bound


@pytest.mark.torch
@pytest.mark.parametrize("in_channels, out_channels, kernel, groups", [
    (64, 128, 3, 1), (64, 128, (3, 5), 4), (32, 2048, 1, 32)])
def test_conv2d_params_distributed_as_torchs_conv2d(in_channels, out_channels, kernel,
                                                    groups):
    torch = _torch()
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(in_channels, out_channels, kernel, groups=groups)
    ours = init.conv2d_params(np.random.default_rng(0), in_channels, out_channels, kernel,
                              groups=groups)
    for name in ("weight", "bias"):
        theirs = getattr(conv, name).detach().numpy()
        assert ours[name].shape == theirs.shape
        assert stats.ks_2samp(ours[name].ravel(), theirs.ravel()).pvalue > P_MIN
    fan_in = conv.weight[0].numel()
    law = stats.uniform(loc=-1 / math.sqrt(fan_in), scale=2 / math.sqrt(fan_in))
    assert stats.kstest(ours["weight"].ravel(), law.cdf).pvalue > P_MIN


@pytest.mark.torch
def test_linear_params_distributed_as_torchs_linear():
    torch = _torch()
    torch.manual_seed(0)
    layer = torch.nn.Linear(50, 4000)
    ours = init.linear_params(np.random.default_rng(0), 50, 4000, dtype=np.float32)
    for name in ("weight", "bias"):
        theirs = getattr(layer, name).detach().numpy()
        assert ours[name].shape == theirs.shape and ours[name].dtype == np.float32
        assert stats.ks_2samp(ours[name].ravel(), theirs.ravel()).pvalue > P_MIN
        assert np.abs(ours[name]).max() <= np.float32(1 / math.sqrt(50))
    assert abs(ours["bias"].std() * math.sqrt(3 * 50) - 1) < 0.05


def test_no_bias_and_batch_norm():
    p = init.linear_params(np.random.default_rng(0), 3, 2, bias=False)
    assert set(p) == {"weight"}
    p = init.conv2d_params(np.random.default_rng(0), 3, 2, 3, bias=False)
    assert set(p) == {"weight"}
    bn = init.batch_norm_params(4, dtype=np.float32)
    np.testing.assert_array_equal(bn["weight"], np.ones(4, np.float32))
    np.testing.assert_array_equal(bn["bias"], np.zeros(4, np.float32))
    buffers = init.batch_norm_buffers(4)
    np.testing.assert_array_equal(buffers["running_mean"], 0.0)
    np.testing.assert_array_equal(buffers["running_var"], 1.0)
    assert buffers["running_var"].dtype == np.float64


def test_weight_then_bias_from_one_stream():
    """conv2d_params draws the weight, then the bias, from the same generator."""
    rng = np.random.default_rng(3)
    p = init.conv2d_params(np.random.default_rng(3), 2, 4, 3)
    bound = 1 / math.sqrt(18)
    # (the weight's bound is computed as torch does, sqrt(3) * gain / sqrt(fan_in):
    # equal to 1 / sqrt(fan_in) up to rounding)
    np.testing.assert_allclose(p["weight"], rng.uniform(-bound, bound, (4, 2, 3, 3)),
                               rtol=1e-14)
    np.testing.assert_array_equal(p["bias"], rng.uniform(-bound, bound, (4,)))


def test_empty_shape_gives_an_empty_array():
    w = init.kaiming_uniform(np.random.default_rng(0), (0, 3))
    assert w.shape == (0, 3)
    assert init.xavier_normal(np.random.default_rng(0), (4, 0, 3)).shape == (4, 0, 3)


RNG = np.random.default_rng(0)
BAD = [
    (lambda: init.kaiming_uniform(0, (3, 4)), TypeError,
     "kaiming_uniform: rng must be a numpy.random.Generator.*got int"),
    (lambda: init.xavier_normal(np.random.RandomState(0), (3, 4)), TypeError,
     "rng must be a numpy.random.Generator.*got RandomState"),
    (lambda: init.kaiming_normal(RNG, (3,)), ValueError,
     r"at least 2 dimensions.*got \(3,\)"),
    (lambda: init.kaiming_normal(RNG, 3), TypeError, "shape must be a tuple of ints"),
    (lambda: init.kaiming_normal(RNG, (3, -1)), ValueError, "shape must be >= 0"),
    (lambda: init.kaiming_uniform(RNG, (3, 4), mode="fan_avg"), ValueError,
     "mode must be one of 'fan_in', 'fan_out', got 'fan_avg'"),
    (lambda: init.kaiming_uniform(RNG, (3, 4), nonlinearity="gelu"), ValueError,
     "nonlinearity must be one of.*got 'gelu'"),
    (lambda: init.kaiming_uniform(RNG, (3, 4), a="x"), TypeError,
     "kaiming_uniform: a must be a real number, got str"),
    (lambda: init.kaiming_normal(RNG, (3, 4), a=math.nan), ValueError,
     r"kaiming_normal: a must be a number \(not NaN\), got nan"),
    (lambda: init.calculate_gain("leaky_relu", math.nan), ValueError,
     r"calculate_gain: param must be a number \(not NaN\), got nan"),
    (lambda: init.xavier_uniform(RNG, (3, 4), gain=-1.0), ValueError,
     r"xavier_uniform: gain must be >= 0.0, got -1.0"),
    (lambda: init.xavier_normal(RNG, (3, 4), gain=-1.0), ValueError,
     r"xavier_normal: gain must be >= 0.0, got -1.0"),
    (lambda: init.xavier_normal(RNG, (3, 4), gain=math.nan), ValueError,
     r"xavier_normal: gain must be >= 0.0, got nan"),
    (lambda: init.xavier_uniform(RNG, (3, 4), gain=math.inf), ValueError,
     "xavier_uniform: gain must be finite, got inf"),
    (lambda: init.xavier_uniform(RNG, (3, 4), gain=None), TypeError, "gain"),
    (lambda: init.xavier_uniform(RNG, (3, 4), dtype=np.int32), TypeError,
     "dtype must be float32 or float64, got int32"),
    (lambda: init.conv2d_params(RNG, 3, 4, 3, groups=2), ValueError,
     "in_channels must be divisible by groups=2, got 3"),
    (lambda: init.conv2d_params(RNG, 4, 3, 3, groups=2), ValueError,
     "out_channels must be divisible by groups=2, got 3"),
    (lambda: init.conv2d_params(RNG, 4, 4, 0), ValueError, "kernel_size"),
    (lambda: init.conv2d_params(RNG, 0, 4, 3), ValueError, "in_channels must be >= 1"),
    (lambda: init.conv2d_params(RNG, 4, 4, 3, bias=1), TypeError, "bias must be a bool"),
    (lambda: init.linear_params(RNG, 4, 2.0), TypeError, "out_features must be an int"),
    (lambda: init.linear_params(None, 4, 2), TypeError, "linear_params: rng"),
    (lambda: init.batch_norm_params(0), ValueError, "num_features must be >= 1"),
    (lambda: init.batch_norm_buffers(2, dtype="int8"), TypeError, "dtype"),
    (lambda: init.calculate_gain("softmax"), ValueError, "nonlinearity"),
]


@pytest.mark.parametrize("make, error, match", BAD)
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(init)
    assert result.failed == 0 and result.attempted > 10
