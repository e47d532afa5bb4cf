"""Tests of fancydl.norm: batch, instance, group and layer normalization, the
BatchNorm2d layer and fold_batch_norm, against PyTorch and finite differences."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fancydl
from fancydl import parallel
from parallel_switch import threads
from fancydl import BatchNorm2d, batch_norm, fold_batch_norm, group_norm, instance_norm, \
    layer_norm

DTYPES = [np.float32, np.float64]


def tolerance(dtype):
    """(rtol, atol relative to the largest reference value) for our dtype."""
    return (1e-4, 1e-4) if dtype == np.float32 else (1e-9, 1e-10)


def assert_close(ours, theirs, dtype, what=""):
    """Entry-wise |ours - theirs| <= atol * scale + rtol * |theirs|; ours has ``dtype``.

    PyTorch runs in float64 on the same values (see :func:`tensor`): the reference is
    exact, so float32 inputs test our float32 rounding only, not PyTorch's as well
    (its float32 layer norm loses ~1e-3 on two close values, for example)."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours is not None, what
    assert ours.shape == theirs.shape, what
    assert ours.dtype == dtype, what
    rtol, atol = tolerance(dtype)
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=what)


def sample(seed, shape, dtype, loc=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (loc + scale * rng.standard_normal(shape)).astype(dtype)


@st.composite
def channel_inputs(draw, min_rank=2, max_rank=4):
    """An (N, C, *spatial) input of rank 2..4 with small sizes, and its dtype."""
    rank = draw(st.integers(min_rank, max_rank))
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4))) + tuple(
        draw(st.integers(1, 4)) for _ in range(rank - 2))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    loc = draw(st.floats(-3, 3))
    scale = draw(st.floats(0.2, 5))
    return sample(seed, shape, dtype, loc, scale), seed


def well_conditioned(groups):
    """Whether float32 can normalize these groups (one per row) to ~1e-4: rounding
    errors of x - mean are ~1e-7 * max|x|, and the gradient divides them by the std.
    float64 inputs always qualify."""
    if groups.dtype == np.float64 or groups.size == 0:
        return True
    spread = groups.astype(np.float64).std(axis=1).min()
    return spread >= 0.05 * max(1.0, float(np.abs(groups).max()))


def affine_parameters(seed, shape, dtype, affine):
    if not affine:
        return None, None
    return sample(seed + 1, shape, dtype), sample(seed + 2, shape, dtype)


def torch_grads(torch, out, tensors, upstream):
    """PyTorch's gradients of ``out`` pulled back with ``upstream`` (None for absent)."""
    present = [t for t in tensors if t is not None]
    grads = iter(torch.autograd.grad(out, present, torch64(torch, upstream)))
    return [None if t is None else next(grads) for t in tensors]




def run_ours(op, x, weight, bias, upstream, *args, **kwargs):
    """Our output and gradients of (x, weight, bias) for the given upstream gradient."""
    out, pullback = fancydl.vjp(lambda x_, w_, b_: op(x_, *args, weight=w_, bias=b_,
                                                       **kwargs), x, weight, bias)
    return out, pullback(upstream)


def torch_input(x, single_value_groups):
    """The input to give PyTorch. When every group holds a single value, x_hat is 0
    whatever x is, but PyTorch's rounding of x - mean, amplified by 1/sqrt(eps), makes
    it up to ~1e-3 in float32; its answer at x = 0 is the exact answer at any x."""
    return np.zeros_like(x) if single_value_groups else x


def torch64(torch, a):
    """A float64 tensor of ``a``'s values, or None."""
    return None if a is None else torch.tensor(a.astype(np.float64))


def tensor(torch, a, grad=True):
    """A float64 tensor of ``a``'s values that PyTorch differentiates, or None."""
    return None if a is None else torch64(torch, a).requires_grad_(grad)


# --- forward, every gradient and the running buffers against PyTorch -------------------

@given(data=channel_inputs(), training=st.booleans(), affine=st.booleans(),
       momentum=st.floats(0.0, 1.0), eps=st.sampled_from([1e-5, 1e-3, 0.5]),
       buffers=st.booleans(), threaded=st.booleans())
def test_batch_norm_matches_torch(data, training, affine, momentum, eps, buffers, threaded):
    torch = pytest.importorskip("torch")
    x, seed = data
    n, c = x.shape[:2]
    assume(not training or x.size // c > 1)  # one value per channel: refused (below)
    assume(not training or well_conditioned(np.moveaxis(x, 1, 0).reshape(c, -1)))
    dtype = x.dtype
    weight, bias = affine_parameters(seed, (c,), dtype, affine)
    buffers = buffers or not training
    mean = sample(seed + 3, (c,), dtype) if buffers else None
    var = (np.abs(sample(seed + 4, (c,), dtype)) + 0.5).astype(dtype) if buffers else None
    t_mean, t_var = torch64(torch, mean), torch64(torch, var)
    tx, tw, tb = tensor(torch, x), tensor(torch, weight), tensor(torch, bias)
    expected = torch.nn.functional.batch_norm(tx, t_mean, t_var, tw, tb, training,
                                              momentum, eps)
    upstream = sample(seed + 5, x.shape, dtype)
    with threads(threaded):
        out, (gx, gw, gb) = run_ours(batch_norm, x, weight, bias, upstream, mean, var,
                                     training=training, momentum=momentum, eps=eps)
    assert_close(out, expected, dtype, "output")
    for ours, theirs, name in zip((gx, gw, gb), torch_grads(torch, expected, [tx, tw, tb],
                                                              upstream), "xwb"):
        if theirs is not None:
            assert_close(ours, theirs, dtype, f"gradient of {name}")
    if buffers:
        assert_close(mean, t_mean, dtype, "running_mean")
        assert_close(var, t_var, dtype, "running_var")


@given(data=channel_inputs(min_rank=3), use_input_stats=st.booleans(), affine=st.booleans(),
       buffers=st.booleans(), momentum=st.floats(0.0, 1.0), threaded=st.booleans())
def test_instance_norm_matches_torch(data, use_input_stats, affine, buffers, momentum,
                                     threaded):
    torch = pytest.importorskip("torch")
    x, seed = data
    c = x.shape[1]
    assume(not (use_input_stats and x[0, 0].size == 1))  # torch refuses one value
    assume(not use_input_stats or well_conditioned(x.reshape(x.shape[0] * c, -1)))
    dtype = x.dtype
    weight, bias = affine_parameters(seed, (c,), dtype, affine)
    buffers = buffers or not use_input_stats
    mean = sample(seed + 3, (c,), dtype) if buffers else None
    var = (np.abs(sample(seed + 4, (c,), dtype)) + 0.5).astype(dtype) if buffers else None
    t_mean, t_var = torch64(torch, mean), torch64(torch, var)
    tx, tw, tb = tensor(torch, x), tensor(torch, weight), tensor(torch, bias)
    expected = torch.nn.functional.instance_norm(tx, t_mean, t_var, tw, tb, use_input_stats,
                                                 momentum)
    upstream = sample(seed + 5, x.shape, dtype)
    with threads(threaded):
        out, grads = run_ours(instance_norm, x, weight, bias, upstream, mean, var,
                              use_input_stats=use_input_stats, momentum=momentum)
    assert_close(out, expected, dtype, "output")
    for ours, theirs, name in zip(grads, torch_grads(torch, expected, [tx, tw, tb],
                                                     upstream), "xwb"):
        if theirs is not None:
            assert_close(ours, theirs, dtype, f"gradient of {name}")
    if buffers:
        assert_close(mean, t_mean, dtype, "running_mean")
        assert_close(var, t_var, dtype, "running_var")


@given(data=channel_inputs(), groups_index=st.integers(0, 3), affine=st.booleans(),
       eps=st.sampled_from([1e-5, 0.1]), threaded=st.booleans())
def test_group_norm_matches_torch(data, groups_index, affine, eps, threaded):
    torch = pytest.importorskip("torch")
    x, seed = data
    c = x.shape[1]
    divisors = [g for g in range(1, c + 1) if c % g == 0]
    num_groups = divisors[groups_index % len(divisors)]
    assume(x.size // num_groups > 1)  # PyTorch refuses one value (tested below)
    dtype = x.dtype
    weight, bias = affine_parameters(seed, (c,), dtype, affine)
    single = x[0].size // num_groups == 1
    assume(single or well_conditioned(x.reshape(x.shape[0] * num_groups, -1)))
    tx, tw, tb = tensor(torch, torch_input(x, single)), tensor(torch, weight), \
        tensor(torch, bias)
    expected = torch.nn.functional.group_norm(tx, num_groups, tw, tb, eps)
    upstream = sample(seed + 5, x.shape, dtype)
    with threads(threaded):
        out, grads = run_ours(group_norm, x, weight, bias, upstream, num_groups, eps=eps)
    assert_close(out, expected, dtype, "output")
    for ours, theirs, name in zip(grads, torch_grads(torch, expected, [tx, tw, tb],
                                                     upstream), "xwb"):
        if theirs is not None:
            assert_close(ours, theirs, dtype, f"gradient of {name}")


@given(data=channel_inputs(), k=st.integers(1, 3), affine=st.booleans(),
       as_int=st.booleans())
def test_layer_norm_matches_torch(data, k, affine, as_int):
    torch = pytest.importorskip("torch")
    x, seed = data
    k = min(k, x.ndim)
    normalized_shape = x.shape[x.ndim - k:]
    dtype = x.dtype
    weight, bias = affine_parameters(seed, normalized_shape, dtype, affine)
    single = np.prod(normalized_shape) == 1
    assume(single or well_conditioned(x.reshape(-1, int(np.prod(normalized_shape)))))
    tx, tw, tb = tensor(torch, torch_input(x, single)), tensor(torch, weight), \
        tensor(torch, bias)
    expected = torch.nn.functional.layer_norm(tx, normalized_shape, tw, tb)
    upstream = sample(seed + 5, x.shape, dtype)
    shape_arg = normalized_shape[0] if as_int and k == 1 else list(normalized_shape)
    out, grads = run_ours(layer_norm, x, weight, bias, upstream, shape_arg)
    assert_close(out, expected, dtype, "output")
    for ours, theirs, name in zip(grads, torch_grads(torch, expected, [tx, tw, tb],
                                                     upstream), "xwb"):
        if theirs is not None:
            assert_close(ours, theirs, dtype, f"gradient of {name}")


@given(data=channel_inputs(), use_input_stats=st.booleans())
def test_gradient_of_running_statistics_in_evaluation(data, use_input_stats):
    """PyTorch refuses to differentiate the running buffers: compare with its autograd of
    the evaluation formula written out."""
    torch = pytest.importorskip("torch")
    x, seed = data
    c, dtype = x.shape[1], x.dtype
    weight, bias = affine_parameters(seed, (c,), dtype, True)
    mean = sample(seed + 3, (c,), dtype)
    var = (np.abs(sample(seed + 4, (c,), dtype)) + 0.5).astype(dtype)
    upstream = sample(seed + 5, x.shape, dtype)
    _, grads = fancydl.vjp(batch_norm, x, mean, var, weight, bias)
    ours = grads(upstream)
    tx, tm, tv, tw, tb = (tensor(torch, a) for a in (x, mean, var, weight, bias))
    shape = (1, c) + (1,) * (x.ndim - 2)
    expected = (tx - tm.reshape(shape)) / torch.sqrt(tv.reshape(shape) + 1e-5) \
        * tw.reshape(shape) + tb.reshape(shape)
    theirs = torch.autograd.grad(expected, [tx, tm, tv, tw, tb], torch64(torch, upstream))
    for o, t, name in zip(ours, theirs, ["input", "running_mean", "running_var", "weight",
                                         "bias"]):
        assert_close(o, t, dtype, f"gradient of {name}")


# --- gradcheck (float64, finite differences) -----------------------------------------

@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3), (3, 2, 2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(rng, shape, training):
    x = rng.standard_normal(shape) * 2 + 1
    c = shape[1]
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    assert fancydl.gradcheck(batch_norm, x, mean, var, w, b, training=training, eps=1e-3)
    assert fancydl.gradcheck(batch_norm, x, mean, var, training=training, eps=1e-3)


@pytest.mark.parametrize("op, extra", [
    (instance_norm, {}), (group_norm, {"num_groups": 2}), (layer_norm, {})])
def test_family_gradcheck(rng, op, extra):
    x = rng.standard_normal((2, 4, 3)) * 2 + 1
    if op is layer_norm:
        w, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
        assert fancydl.gradcheck(lambda x, w, b: layer_norm(x, (4, 3), w, b), x, w, b)
    else:
        w, b = rng.standard_normal(4), rng.standard_normal(4)
        assert fancydl.gradcheck(lambda x, w, b: op(x, weight=w, bias=b, **extra), x, w, b)


def test_instance_norm_gradcheck_with_running_statistics(rng):
    x = rng.standard_normal((2, 3, 4))
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5
    assert fancydl.gradcheck(instance_norm, x, mean, var, use_input_stats=False)


# --- vjp and the in-place update; the sum-loss trap ----------------------------------

@pytest.mark.parametrize("training", [True, False])
def test_vjp_updates_the_callers_buffers_and_zero_gradient_in_training(rng, training):
    x = rng.standard_normal((6, 3, 4))
    mean, var = np.zeros(3), np.ones(3)
    before = mean.copy(), var.copy()
    _, pullback = fancydl.vjp(batch_norm, x, mean, var, None, None, training, 0.25)
    if training:
        batch_mean, batch_var = x.mean(axis=(0, 2)), x.var(axis=(0, 2), ddof=1)
        np.testing.assert_allclose(mean, 0.25 * batch_mean, rtol=1e-12)
        np.testing.assert_allclose(var, 0.75 + 0.25 * batch_var, rtol=1e-12)
    else:
        np.testing.assert_array_equal(mean, before[0])
        np.testing.assert_array_equal(var, before[1])
    gx, gmean, gvar, *_ = pullback(rng.standard_normal(x.shape))
    assert gx.shape == x.shape
    if training:
        np.testing.assert_array_equal(gmean, np.zeros(3))
        np.testing.assert_array_equal(gvar, np.zeros(3))
    else:
        assert np.any(gmean != 0) and np.any(gvar != 0)


def test_sum_of_outputs_gives_zero_input_gradient(rng):
    """Why a sum loss cannot test batch norm: the normalized values of a channel always
    sum to 0, so the sum's gradient vanishes (up to rounding)."""
    x = rng.standard_normal((8, 3, 5)) * 3 + 2
    w = rng.standard_normal(3)
    _, pullback = fancydl.vjp(batch_norm, x, None, None, w, None, True)
    gx = pullback(np.ones_like(x))[0]
    np.testing.assert_allclose(gx, 0, atol=1e-13)
    gx_random = pullback(rng.standard_normal(x.shape))[0]
    assert np.abs(gx_random).max() > 0.1


# --- the layer against nn.BatchNorm2d ---------------------------------------------------

@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
@pytest.mark.parametrize("affine, track", [(True, True), (False, True), (True, False)])
def test_batchnorm2d_matches_torch_over_several_steps(rng, momentum, affine, track):
    torch = pytest.importorskip("torch")
    ours = BatchNorm2d(3, momentum=momentum, affine=affine, track_running_stats=track)
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum, affine=affine,
                                  track_running_stats=track)
    for step in range(5):
        x = (rng.standard_normal((4, 3, 5, 5)) * (step + 1) + step).astype(np.float32)
        if step == 3:
            ours.eval()
            theirs.eval()
        expected = theirs(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(ours(x), expected, rtol=1e-4, atol=1e-5)
        if track:
            np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(),
                                       rtol=1e-5, atol=1e-6)
            assert ours.num_batches_tracked == int(theirs.num_batches_tracked)
        else:
            assert ours.running_mean is None and ours.num_batches_tracked is None
    assert ours.train() is ours and ours.training


def test_batchnorm2d_inside_vjp_matches_torch(rng):
    torch = pytest.importorskip("torch")
    ours, theirs = BatchNorm2d(3, dtype=np.float64), torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.standard_normal(3)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(3)))
    ours.weight, ours.bias = theirs.weight.detach().numpy().copy(), \
        theirs.bias.detach().numpy().copy()
    x = rng.standard_normal((4, 3, 2, 3))
    upstream = rng.standard_normal(x.shape)
    out, pullback = fancydl.vjp(lambda x, w, b: ours(x, w, b), x, ours.weight, ours.bias)
    tx = torch.tensor(x, requires_grad=True)
    expected = theirs(tx)
    theirs_grads = torch.autograd.grad(expected, [tx, theirs.weight, theirs.bias],
                                       torch.tensor(upstream))
    for o, t in zip((out,) + pullback(upstream), (expected,) + theirs_grads):
        np.testing.assert_allclose(o, t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)


# --- folding ----------------------------------------------------------------------------

@pytest.mark.parametrize("with_bias, affine", [(True, True), (False, True), (True, False)])
def test_fold_batch_norm_equals_conv_then_batch_norm(rng, with_bias, affine):
    torch = pytest.importorskip("torch")
    conv_w = rng.standard_normal((4, 3, 3, 3))
    conv_b = rng.standard_normal(4) if with_bias else None
    mean, var = rng.standard_normal(4), rng.random(4) + 0.1
    w, b = (rng.standard_normal(4), rng.standard_normal(4)) if affine else (None, None)
    x = torch.tensor(rng.standard_normal((2, 3, 6, 6)))
    t = (lambda a: None if a is None else torch.tensor(a))
    conv = torch.nn.functional.conv2d(x, t(conv_w), t(conv_b), padding=1)
    expected = batch_norm(conv.numpy(), mean, var, w, b, eps=1e-3)
    folded_w, folded_b = fold_batch_norm(conv_w, conv_b, mean, var, w, b, eps=1e-3)
    got = torch.nn.functional.conv2d(x, t(folded_w), t(folded_b), padding=1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    if affine:
        from torch.nn.utils.fusion import fuse_conv_bn_weights
        ref_w, ref_b = fuse_conv_bn_weights(t(conv_w), t(conv_b), t(mean), t(var), 1e-3,
                                            t(w), t(b))
        np.testing.assert_allclose(folded_w, ref_w.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(folded_b, ref_b.detach().numpy(), rtol=1e-13, atol=1e-14)


# --- degenerate input like PyTorch -------------------------------------------------------

def test_nan_and_empty_like_torch():
    torch = pytest.importorskip("torch")
    x = np.arange(12.0).reshape(4, 3)
    x[0, 0] = np.nan
    mean, var = np.zeros(3), np.ones(3)
    t_mean, t_var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    expected = torch.nn.functional.batch_norm(torch.tensor(x), t_mean, t_var, training=True)
    np.testing.assert_allclose(batch_norm(x, mean, var, training=True), expected.numpy())
    np.testing.assert_allclose(mean, t_mean.numpy())
    np.testing.assert_allclose(var, t_var.numpy())
    assert np.isnan(mean[0]) and np.isfinite(mean[1:]).all()
    for op, mode in [(batch_norm, {"training": True}), (instance_norm, {})]:
        for shape in [(0, 3, 4), (2, 3, 0)]:
            mean, var = np.zeros(3), np.ones(3)
            t_mean, t_var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
            expected = getattr(torch.nn.functional, op.__name__)(
                torch.zeros(shape, dtype=torch.float64), t_mean, t_var, **mode)
            out = op(np.zeros(shape), mean, var, **mode)
            assert out.shape == tuple(expected.shape)
            np.testing.assert_array_equal(mean, t_mean.numpy())  # NaN for empty instance
            np.testing.assert_array_equal(var, t_var.numpy())    # norm batches, like torch


@pytest.mark.parametrize("op, shape, args", [
    ("batch_norm", (0, 3, 4, 4), dict(training=True)),
    ("batch_norm", (2, 3, 0, 4), dict(training=True)),
    ("batch_norm", (0, 3), dict(training=True)),
    ("batch_norm", (0, 3, 4, 4), dict(training=False)),
    ("instance_norm", (2, 3, 0, 4), {}),
    ("group_norm", (0, 6, 4, 4), dict(num_groups=3)),
    ("layer_norm", (0, 3, 4), dict(normalized_shape=(3, 4))),
    ("layer_norm", (2, 3, 0), dict(normalized_shape=(3, 0))),
])
def test_empty_input_like_torch(op, shape, args):
    """An empty batch (or empty groups): empty output, zero weight and bias gradients
    (not NaN), running statistics untouched, as in PyTorch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    pshape = args["normalized_shape"] if op == "layer_norm" else (shape[1],)
    weight, bias = rng.standard_normal(pshape), rng.standard_normal(pshape)
    buffers = op == "batch_norm"
    mean, var = (np.zeros(shape[1]), np.ones(shape[1])) if buffers else (None, None)
    t_mean, t_var = torch64(torch, mean), torch64(torch, var)
    positional = (mean, var) if buffers else ()
    t_positional = (t_mean, t_var) if buffers else ()
    extra = dict(args)
    if op == "group_norm":
        positional = t_positional = (extra.pop("num_groups"),)
    if op == "layer_norm":
        positional = t_positional = (extra.pop("normalized_shape"),)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upstream = rng.standard_normal(shape)
        out, grads = run_ours(getattr(fancydl, op), x, weight, bias, upstream, *positional,
                              **extra)
    tx, tw, tb = tensor(torch, x), tensor(torch, weight), tensor(torch, bias)
    expected = getattr(torch.nn.functional, op)(tx, *t_positional, weight=tw, bias=tb,
                                                **extra)
    assert out.shape == tuple(expected.shape)
    for ours, theirs in zip(grads, torch_grads(torch, expected, [tx, tw, tb], upstream)):
        np.testing.assert_array_equal(ours, theirs.numpy())
    if buffers:
        np.testing.assert_array_equal(mean, t_mean.numpy())
        np.testing.assert_array_equal(var, t_var.numpy())


@pytest.mark.parametrize("op, shape, args", [
    ("instance_norm", (0, 3, 4, 4), {}),   # PyTorch: IndexError with a weight
    ("group_norm", (2, 6, 0, 4), dict(num_groups=3)),  # PyTorch: NaN weight gradient
])
def test_empty_input_where_torch_fails_gives_zero_gradients(op, shape, args):
    rng = np.random.default_rng(0)
    x, weight, bias = rng.standard_normal(shape), np.ones(shape[1]), np.zeros(shape[1])
    positional = (args["num_groups"],) if op == "group_norm" else ()
    out, grads = run_ours(getattr(fancydl, op), x, weight, bias, np.ones(shape),
                          *positional)
    assert out.shape == shape and grads[0].shape == shape
    np.testing.assert_array_equal(grads[1], np.zeros(shape[1]))
    np.testing.assert_array_equal(grads[2], np.zeros(shape[1]))


@pytest.mark.parametrize("op", ["batch_norm", "instance_norm"])
@pytest.mark.parametrize("read_only", ["running_mean", "running_var"])
def test_training_refuses_read_only_buffers_before_changing_any(op, read_only):
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    buffers = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    buffers[read_only].flags.writeable = False
    before = {k: v.copy() for k, v in buffers.items()}
    args = dict(training=True) if op == "batch_norm" else {}
    with pytest.raises(ValueError, match=f"{read_only} must be writeable"):
        getattr(fancydl, op)(x, buffers["running_mean"], buffers["running_var"], **args)
    for name, value in buffers.items():
        np.testing.assert_array_equal(value, before[name])
    # Evaluation only reads them: read-only buffers are fine there.
    if op == "batch_norm":
        batch_norm(x, buffers["running_mean"], buffers["running_var"])


def test_batch_norm_validates_everything_before_updating_buffers():
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    mean, var = np.zeros(3), np.ones(3)
    for bad in [dict(weight=np.ones(4)), dict(bias=np.ones((3, 1))), dict(eps=-1.0),
                dict(momentum="0.1"), dict(weight=np.ones(3, np.float32))]:
        with pytest.raises((ValueError, TypeError)):
            batch_norm(x, mean, var, training=True, **bad)
        np.testing.assert_array_equal(mean, np.zeros(3))
        np.testing.assert_array_equal(var, np.ones(3))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_does_not_count_a_call_that_raised(momentum):
    bn = BatchNorm2d(3, momentum=momentum)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for bad in [np.zeros((2, 4, 3, 3), np.float32), np.zeros((1, 3, 1, 1), np.float32),
                np.zeros((2, 3, 4, 4))]:
        with pytest.raises((ValueError, TypeError)):
            bn(bad)
    assert bn.num_batches_tracked == 0
    np.testing.assert_array_equal(bn.running_mean, np.zeros(3))
    bn(x)
    assert bn.num_batches_tracked == 1
    factor = 0.1 if momentum is not None else 1.0  # cumulative average of one batch
    np.testing.assert_allclose(bn.running_mean, factor * x.mean(axis=(0, 2, 3)), rtol=1e-5,
                               atol=1e-7)


def test_group_norm_weight_with_zeros_matches_torch():
    """A zero in the weight: the input gradient is not factored by the weight."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 4, 5))
    weight, bias = rng.standard_normal(6), rng.standard_normal(6)
    weight[[1, 4]] = 0.0
    upstream = rng.standard_normal(x.shape)
    out, grads = run_ours(group_norm, x, weight, bias, upstream, 3)
    tx, tw, tb = tensor(torch, x), tensor(torch, weight), tensor(torch, bias)
    expected = torch.nn.functional.group_norm(tx, 3, tw, tb)
    assert_close(out, expected, np.float64)
    for ours, theirs in zip(grads, torch_grads(torch, expected, [tx, tw, tb], upstream)):
        assert_close(ours, theirs, np.float64)


@pytest.mark.parametrize("op, args", [(group_norm, (4,)), (instance_norm, ())])
def test_per_sample_statistics_hand_each_pass_to_the_worker_once(monkeypatch, op, args):
    """Group and instance norm run each half's whole forward, then whole backward, on
    one thread: two hand-offs per step, and the same result with or without them."""
    from fancydl import norm

    calls = []

    def counting(fn, *arrays, **kwargs):
        calls.append(fn)
        return parallel.halves(fn, *arrays, **kwargs)

    rng = np.random.default_rng(1)
    x, weight, bias = rng.standard_normal((6, 8, 5, 5)), rng.standard_normal(8), \
        rng.standard_normal(8)
    upstream = rng.standard_normal(x.shape)
    expected = run_ours(op, x, weight, bias, upstream, *args)
    monkeypatch.setattr(norm, "halves", counting)
    with threads():
        out, grads = run_ours(op, x, weight, bias, upstream, *args)
    assert len(calls) == 2
    np.testing.assert_allclose(out, expected[0], rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(grads, expected[1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op, args", [
    (batch_norm, dict(running_mean=np.zeros(8), running_var=np.ones(8), training=True)),
    (batch_norm, dict(running_mean=np.full(8, 0.5), running_var=np.full(8, 2.0))),
    (group_norm, dict(num_groups=4)), (instance_norm, {})])
def test_plain_call_equals_traced_call(op, args):
    """Without a pullback the forward pass writes the output over its own centered copy
    (training) or takes x * scale + shift (evaluation): the same values as inside vjp,
    with the halves on the worker thread."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 8, 48, 48)).astype(np.float32) * 3 + 1
    weight, bias = rng.standard_normal(8).astype(np.float32), np.ones(8, np.float32)
    args = {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v
            for k, v in args.items()}
    copies = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in args.items()}
    with threads():
        plain = op(x, weight=weight, bias=bias, **args)
        traced, _ = fancydl.vjp(lambda x_: op(x_, weight=weight, bias=bias, **copies), x)
    np.testing.assert_allclose(plain, traced, rtol=1e-6, atol=1e-6)
    x64 = x.astype(np.float64)
    axes = (0, 2, 3) if args.get("training") else None
    if axes:
        mean, var = x64.mean(axis=axes, keepdims=True), x64.var(axis=axes, keepdims=True)
        reference = (x64 - mean) / np.sqrt(var + 1e-5) * weight[:, None, None] + 1
        np.testing.assert_allclose(plain, reference, rtol=1e-4, atol=1e-4)


# --- bad input ----------------------------------------------------------------------------

X = np.zeros((4, 3, 5))
C3 = np.zeros(3)
BAD = [
    (lambda: batch_norm(X, np.zeros(4), np.ones(3), training=True), ValueError,
     r"running_mean must have one entry per channel, shape \(3,\), got shape \(4,\)"),
    (lambda: batch_norm(X, C3, np.ones((1, 3)), training=True), ValueError,
     r"running_var must have one entry per channel, shape \(3,\), got shape \(1, 3\)"),
    (lambda: batch_norm(X, C3, None, training=True), ValueError,
     "running_mean and running_var must both be arrays or both be None"),
    (lambda: batch_norm(X, None, None), ValueError,
     "running_mean and running_var are required"),
    (lambda: batch_norm(np.zeros(3), None, None, training=True), ValueError,
     r"input must have at least 2 dimensions .* got shape \(3,\)"),
    (lambda: batch_norm(np.zeros((1, 3)), None, None, training=True), ValueError,
     r"expected more than 1 value per channel .* got input of shape \(1, 3\)"),
    (lambda: batch_norm(np.zeros((1, 3, 1, 1)), None, None, training=True), ValueError,
     r"more than 1 value per channel"),
    (lambda: batch_norm(X, None, None, training=True, eps=-1e-5), ValueError,
     r"eps must be > 0.0, got -1e-05"),
    (lambda: batch_norm(X, None, None, training=True, eps=0.0), ValueError,
     r"eps must be > 0.0, got 0.0"),
    (lambda: batch_norm(X, C3, C3 + 1, eps=-1.0), ValueError, r"eps must be >= 0.0, got -1"),
    (lambda: batch_norm(X, None, None, np.ones(2), training=True), ValueError,
     r"weight must have one entry per channel, shape \(3,\), got shape \(2,\)"),
    (lambda: batch_norm(X, None, None, None, np.ones(4), training=True), ValueError,
     r"bias must have one entry per channel"),
    (lambda: batch_norm(X, C3.astype(np.float32), C3.astype(np.float32)), TypeError,
     "running_mean is float32"),
    (lambda: batch_norm(X.astype(int), None, None, training=True), TypeError,
     "input must have dtype float32 or float64, got int64"),
    (lambda: batch_norm([[1.0, 2.0]], None, None, training=True), TypeError,
     "input must be a numpy.ndarray, got list"),
    (lambda: batch_norm(X, None, None, training=True, momentum="0.1"), TypeError,
     "momentum must be a real number"),
    (lambda: instance_norm(np.zeros((2, 3, 1))), ValueError,
     r"expected more than 1 value per instance .* got input of shape \(2, 3, 1\)"),
    (lambda: instance_norm(X, use_input_stats=False), ValueError,
     "running_mean and running_var are required"),
    (lambda: instance_norm(X, np.zeros(4), np.ones(4)), ValueError,
     r"running_mean must have one entry per channel, shape \(3,\)"),
    (lambda: instance_norm(X, eps=-1.0), ValueError, "eps must be >= 0.0, got -1.0"),
    (lambda: group_norm(X, 2), ValueError,
     "num_groups must divide the number of channels 3, got num_groups=2"),
    (lambda: group_norm(np.zeros((1, 2)), 2), ValueError,
     r"expected more than 1 value per channel .* got input of shape \(1, 2\)"),
    (lambda: group_norm(X, 0), ValueError, "num_groups must be >= 1, got 0"),
    (lambda: group_norm(X, 1.5), TypeError, "num_groups must be an int"),
    (lambda: group_norm(X, 3, np.ones(5)), ValueError,
     r"weight must have one entry per channel, shape \(3,\), got shape \(5,\)"),
    (lambda: group_norm(np.zeros(6), 3), ValueError, "input must have at least 2 dim"),
    (lambda: layer_norm(X, (4,)), ValueError,
     r"input's last dimensions must equal normalized_shape \(4,\), got input of shape "
     r"\(4, 3, 5\)"),
    (lambda: layer_norm(X, (5,), np.ones(4)), ValueError,
     r"weight must have shape normalized_shape \(5,\), got shape \(4,\)"),
    (lambda: layer_norm(X, (5,), None, np.ones((1, 5))), ValueError,
     r"bias must have shape normalized_shape"),
    (lambda: layer_norm(X, ()), TypeError, "normalized_shape must be an int or a non-empty"),
    (lambda: layer_norm(X, 5, eps=-0.1), ValueError, "eps must be >= 0.0, got -0.1"),
    (lambda: BatchNorm2d(3)(X), ValueError,
     r"input must have 4 dimensions \(N, C, H, W\), got shape \(4, 3, 5\)"),
    (lambda: BatchNorm2d(3)(np.zeros((2, 4, 2, 2), np.float32)), ValueError,
     r"running_mean must have one entry per channel, shape \(4,\), got shape \(3,\)"),
    (lambda: BatchNorm2d(0), ValueError, "num_features must be >= 1, got 0"),
    (lambda: BatchNorm2d(3, momentum="x"), TypeError, "momentum must be a real number"),
    (lambda: BatchNorm2d(3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (lambda: fold_batch_norm(np.zeros(3), None, C3, C3), ValueError,
     r"conv_weight must have at least 2 dimensions"),
    (lambda: fold_batch_norm(np.zeros((3, 2, 1, 1)), np.zeros(2), C3, C3), ValueError,
     r"conv_bias must have one entry per channel, shape \(3,\), got shape \(2,\)"),
    (lambda: fold_batch_norm(np.zeros((3, 2, 1, 1)), None, C3, None), ValueError,
     "running_mean and running_var must both be arrays"),
    (lambda: fold_batch_norm(np.zeros((3, 2, 1, 1)), None, C3, C3, eps=-1), ValueError,
     "eps must be >= 0.0"),
]


@pytest.mark.parametrize("call, error, match", BAD)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_short_ufunc_buffer_stays_inside_the_normalization():
    # _numerics() shortens NumPy's ufunc buffer for the passes over short rows and
    # silences NaN/inf warnings; neither may leak out, on either thread.
    x = np.random.default_rng(0).standard_normal((4, 6, 3, 3))
    weight = np.ones(6)
    before = (np.getbufsize(), np.geterr())
    with threads(True):
        out, pullback = fancydl.vjp(lambda x, w: group_norm(x, 3, weight=w), x, weight)
        pullback(np.ones_like(out))
    assert (np.getbufsize(), np.geterr()) == before
    with np.errstate(invalid="raise"):  # the caller's setting is back after the call
        group_norm(x, 3)
        with pytest.raises(FloatingPointError):
            np.zeros(1) / np.zeros(1)


# --- arguments PyTorch takes ------------------------------------------------------------

@pytest.mark.parametrize("op", ["batch_norm", "instance_norm", "BatchNorm2d"])
def test_nan_momentum_makes_the_running_statistics_nan_like_torch(op):
    """PyTorch checks no momentum: a NaN one makes the running statistics NaN (it used
    to be refused, with a garbled message)."""
    torch = pytest.importorskip("torch")
    x = sample(0, (4, 3, 5, 2), np.float64)
    mean, var = np.zeros(3), np.ones(3)
    t_mean, t_var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    nan = float("nan")
    if op == "BatchNorm2d":
        layer, t_layer = BatchNorm2d(3, momentum=nan, dtype=np.float64), \
            torch.nn.BatchNorm2d(3, momentum=nan, dtype=torch.float64)
        out, expected = layer(x), t_layer(torch.tensor(x))
        mean, var, t_mean, t_var = (layer.running_mean, layer.running_var,
                                    t_layer.running_mean, t_layer.running_var)
    else:
        keyword = "training" if op == "batch_norm" else "use_input_stats"
        out = getattr(fancydl, op)(x, mean, var, momentum=nan, **{keyword: True})
        expected = getattr(torch.nn.functional, op)(torch.tensor(x), t_mean, t_var,
                                                    momentum=nan, **{keyword: True})
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(mean, t_mean.numpy())
    np.testing.assert_array_equal(var, t_var.numpy())
    assert np.isnan(mean).all() and np.isnan(var).all()


def test_layer_norm_takes_a_shape_as_an_integer_array():
    """A 1-D integer array is NumPy's spelling of a shape (PyTorch's is its torch.Size)."""
    x = sample(1, (2, 4, 3), np.float64)
    for shape in (np.array([3]), np.array([4, 3], np.int32)):
        np.testing.assert_array_equal(layer_norm(x, shape), layer_norm(x, tuple(shape)))
    with pytest.raises(TypeError, match="normalized_shape must be an int"):
        layer_norm(x, np.array([3.0]))
