"""softmax, log_softmax, logsumexp, nll_loss and cross_entropy against PyTorch (when
installed) and against finite differences and closed forms (always)."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fancydl
from parallel_switch import threads

try:  # the gradchecks and known values below need no torch; the comparisons do
    import torch
except ImportError:  # pragma: no cover - torch is an optional dependency
    torch = F = None
else:
    F = torch.nn.functional

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def _torch_vjp(fn, arrays, upstream):
    """Output and gradients of a torch function for one upstream gradient."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    grads = torch.autograd.grad(out, tensors, torch.tensor(upstream), allow_unused=True)
    return out.detach().numpy(), [None if g is None else g.numpy() for g in grads]


def _assert_close(ours, theirs, dtype):
    np.testing.assert_allclose(ours, theirs, **TOL[dtype])


@st.composite
def logits_and_dim(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    dim = draw(st.integers(-ndim, ndim - 1))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1.0, 30.0, 1e3]))
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    return x, dim, seed


@requires_torch
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(case=logits_and_dim())
def test_softmax_family_matches_torch(name, case):
    x, dim, seed = case
    upstream = np.random.default_rng(seed + 1).standard_normal(x.shape).astype(x.dtype)
    out, pullback = fancydl.vjp(getattr(fancydl, name), x, dim)
    (gx, gdim) = pullback(upstream)
    ref_out, (ref_gx,) = _torch_vjp(lambda t: getattr(F, name)(t, dim), [x], upstream)
    assert out.dtype == x.dtype and gx.dtype == x.dtype and gdim is None
    _assert_close(out, ref_out, x.dtype.type)
    _assert_close(gx, ref_gx, x.dtype.type)


@requires_torch
@given(case=logits_and_dim(), keepdim=st.booleans(), two_dims=st.booleans())
def test_logsumexp_matches_torch(case, keepdim, two_dims):
    x, dim, seed = case
    dims = (dim, (dim + 1) % x.ndim) if two_dims and x.ndim > 1 else dim
    out, pullback = fancydl.vjp(lambda t: fancydl.logsumexp(t, dims, keepdim), x)
    upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    ref_out, (ref_gx,) = _torch_vjp(lambda t: torch.logsumexp(t, dims, keepdim), [x],
                                    upstream)
    _assert_close(out, ref_out, x.dtype.type)
    _assert_close(pullback(upstream)[0], ref_gx, x.dtype.type)


@st.composite
def loss_case(draw, probabilities=st.booleans()):
    """Logits (N, C, d...) or (C,), a target of indices or probabilities, options.

    ``probabilities``: a strategy for the kind of target, so that a test of one kind
    draws only that kind (never a draw it would have to discard)."""
    unbatched = draw(st.booleans())
    n_classes = draw(st.integers(1, 6))
    extra = () if unbatched else tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    batch = () if unbatched else (draw(st.integers(1, 5)),)
    shape = batch + (n_classes,) + extra
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    logits = (rng.standard_normal(shape) * draw(st.sampled_from([1.0, 20.0]))).astype(dtype)
    probabilities = draw(probabilities)
    ignore_index = draw(st.sampled_from([-100, 0, 2]))
    if probabilities:
        target = rng.random(shape).astype(dtype)
        target /= target.sum(axis=0 if unbatched else 1, keepdims=True)
    else:
        target = rng.integers(0, n_classes, batch + extra)
        if draw(st.booleans()) and target.size:
            target.flat[0] = ignore_index if ignore_index < 0 else target.flat[0]
    weight = rng.random(n_classes).astype(dtype) + 0.1 if draw(st.booleans()) else None
    options = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])),
                   label_smoothing=draw(st.sampled_from([0.0, 0.1, 0.5])))
    if not probabilities:
        options["ignore_index"] = ignore_index
    return logits, target, weight, options, rng


@requires_torch
@given(case=loss_case())
def test_cross_entropy_matches_torch(case):
    logits, target, weight, options, rng = case
    f = lambda z: fancydl.cross_entropy(z, target, weight=weight, **options)  # noqa: E731
    out, pullback = fancydl.vjp(f, logits)
    upstream = rng.standard_normal(out.shape).astype(logits.dtype)
    t_weight = None if weight is None else torch.tensor(weight)
    ref_out, (ref_gz,) = _torch_vjp(
        lambda z: F.cross_entropy(z, torch.tensor(target), weight=t_weight, **options),
        [logits], upstream)
    assert out.shape == ref_out.shape and out.dtype == logits.dtype
    _assert_close(out, ref_out, logits.dtype.type)
    _assert_close(pullback(upstream)[0], ref_gz, logits.dtype.type)


@requires_torch
@given(case=loss_case(probabilities=st.just(True)))
def test_cross_entropy_probability_target_gradient_matches_torch(case):
    logits, target, weight, options, rng = case
    assert np.issubdtype(target.dtype, np.floating) and "ignore_index" not in options
    out, pullback = fancydl.vjp(
        lambda z, q: fancydl.cross_entropy(z, q, weight=weight, **options), logits, target)
    upstream = rng.standard_normal(out.shape).astype(logits.dtype)
    t_weight = None if weight is None else torch.tensor(weight)
    ref_out, (ref_gz, ref_gq) = _torch_vjp(
        lambda z, q: F.cross_entropy(z, q, weight=t_weight, **options), [logits, target],
        upstream)
    gz, gq = pullback(upstream)
    _assert_close(out, ref_out, logits.dtype.type)
    _assert_close(gz, ref_gz, logits.dtype.type)
    _assert_close(gq, ref_gq, logits.dtype.type)


@requires_torch
@given(case=loss_case(probabilities=st.just(False)))
def test_nll_loss_matches_torch(case):
    logits, target, weight, options, rng = case
    assert np.issubdtype(target.dtype, np.integer)
    options.pop("label_smoothing")
    logp = fancydl.log_softmax(logits, 0 if logits.ndim == 1 else 1)
    out, pullback = fancydl.vjp(lambda p: fancydl.nll_loss(p, target, weight, **options),
                                logp)
    upstream = rng.standard_normal(out.shape).astype(logits.dtype)
    t_weight = None if weight is None else torch.tensor(weight)
    ref_out, (ref_g,) = _torch_vjp(
        lambda p: F.nll_loss(p, torch.tensor(target), t_weight, **options), [logp], upstream)
    _assert_close(out, ref_out, logits.dtype.type)
    _assert_close(pullback(upstream)[0], ref_g, logits.dtype.type)


# --- gradients PyTorch does not give: class weights ---------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("probabilities", [False, True])
def test_cross_entropy_gradcheck_all_arguments(rng, reduction, smoothing, probabilities):
    logits = rng.standard_normal((4, 3, 2))
    weight = rng.random(3) + 0.5
    if probabilities:
        target = rng.random(logits.shape)
        report = fancydl.gradcheck(
            lambda z, q, w: fancydl.cross_entropy(z, q, w, reduction=reduction,
                                                  label_smoothing=smoothing),
            logits, target, weight)
    else:
        target = rng.integers(0, 3, (4, 2))
        target[0, 0] = -100
        report = fancydl.gradcheck(
            lambda z, w: fancydl.cross_entropy(z, target, w, reduction=reduction,
                                               label_smoothing=smoothing),
            logits, weight)
    assert report, report


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_gradcheck_with_weights(rng, reduction):
    logp = rng.standard_normal((5, 4))
    target = np.array([0, 3, -100, 1, 3])
    assert fancydl.gradcheck(
        lambda p, w: fancydl.nll_loss(p, target, w, reduction=reduction),
        logp, rng.random(4) + 0.5)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_gradchecks(rng, dim):
    x = rng.standard_normal((3, 4))
    assert fancydl.gradcheck(fancydl.softmax, x, dim)
    assert fancydl.gradcheck(fancydl.log_softmax, x, dim)
    assert fancydl.gradcheck(lambda t: fancydl.logsumexp(t, dim), x)


# --- closed forms and extreme values ---------------------------------------------------

def test_cross_entropy_gradient_is_softmax_minus_one_hot(rng):
    logits = rng.standard_normal((7, 5))
    target = rng.integers(0, 5, 7)
    _, pullback = fancydl.vjp(fancydl.cross_entropy, logits, target)
    expected = (fancydl.softmax(logits, 1) - np.eye(5)[target]) / 7
    np.testing.assert_allclose(pullback(np.array(1.0))[0], expected, rtol=1e-12, atol=1e-15)


def test_log_softmax_known_values():
    np.testing.assert_array_equal(fancydl.log_softmax(np.array([1000.0, 0.0, -1000.0]), 0),
                                  [0.0, -1000.0, -2000.0])


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_huge_logits_stay_finite_without_warnings(rng, dtype, scale):
    logits = (rng.standard_normal((6, 4)) * scale).astype(dtype)
    target = rng.integers(0, 4, 6)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow is fine
        for f in (lambda z: fancydl.softmax(z, 1), lambda z: fancydl.log_softmax(z, 1),
                  lambda z: fancydl.logsumexp(z, 1),
                  lambda z: fancydl.cross_entropy(z, target, label_smoothing=0.1)):
            out, pullback = fancydl.vjp(f, logits)
            grad = pullback(np.ones_like(out))[0]
            assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    ref = F.cross_entropy(torch.tensor(logits), torch.tensor(target), label_smoothing=0.1)
    np.testing.assert_allclose(fancydl.cross_entropy(logits, target, label_smoothing=0.1),
                               ref.numpy(), rtol=1e-5)


@requires_torch
def test_nan_propagates_like_torch():
    x = np.array([[1.0, np.nan, 0.0], [1.0, 2.0, 3.0]])
    ours = fancydl.softmax(x, 1)
    theirs = F.softmax(torch.tensor(x), 1).numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[1], theirs[1])


@requires_torch
def test_logsumexp_of_all_minus_infinity_is_minus_infinity():
    x = np.full((2, 3), -np.inf)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = fancydl.logsumexp(x, 1)
    np.testing.assert_array_equal(out, torch.logsumexp(torch.tensor(x), 1).numpy())


@requires_torch
def test_all_targets_ignored_gives_nan_loss_and_zero_gradient(rng):
    logits = rng.standard_normal((3, 4))
    target = np.full(3, -100)
    out, pullback = fancydl.vjp(fancydl.cross_entropy, logits, target)
    z = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(z, torch.tensor(target))
    ref.backward()
    assert np.isnan(out) and torch.isnan(ref)
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], z.grad.numpy())


@requires_torch
def test_unbatched_input():
    z = np.array([0.5, -1.0, 2.0])
    ours = fancydl.cross_entropy(z, np.array(2), reduction="none")
    theirs = F.cross_entropy(torch.tensor(z), torch.tensor(2), reduction="none")
    assert ours.shape == tuple(theirs.shape) == ()
    np.testing.assert_allclose(ours, theirs.numpy())


def test_cross_entropy_float32_stays_float32(rng):
    z = rng.standard_normal((4, 3)).astype(np.float32)
    out, pullback = fancydl.vjp(fancydl.cross_entropy, z, np.array([0, 1, 2, 0]))
    assert out.dtype == np.float32 and pullback(np.float32(1))[0].dtype == np.float32


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: fancydl.softmax(np.ones((2, 3)), 2), ValueError, "dim out of range"),
    (lambda: fancydl.softmax(np.ones((2, 3)), 1.0), TypeError, "dim must be an int"),
    (lambda: fancydl.softmax([1.0, 2.0], 0), TypeError, "input must be a numpy.ndarray"),
    (lambda: fancydl.softmax(np.ones(3, dtype=int), 0), TypeError, "float32 or float64"),
    (lambda: fancydl.logsumexp(np.ones((2, 3)), -3), ValueError, "dim out of range"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([0, 3])), ValueError,
     "class index 3, outside \\[0, 3\\)"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([0, -1])), ValueError,
     "class index -1"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([0, 1, 2])), ValueError,
     "target of class indices must have shape \\(2,\\)"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.ones((2, 2))), ValueError,
     "class probabilities and must have input's shape"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([0, 1]), reduction="avg"),
     ValueError, "reduction must be one of"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([0, 1]), weight=np.ones(2)),
     ValueError, "weight must have one entry per class \\(3\\)"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([0, 1]), label_smoothing=1.5),
     ValueError, "label_smoothing must be in \\[0.0, 1.0\\]"),
    (lambda: fancydl.cross_entropy(np.ones(()), np.array(0)), ValueError,
     "at least 1 dimension"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([True, False])), TypeError,
     "target must have an integer dtype"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3), np.float32), np.ones((2, 3))), TypeError,
     "must share one dtype"),
    (lambda: fancydl.nll_loss(np.ones((2, 3)), np.ones((2, 3))), TypeError,
     "integer class indices"),
    (lambda: fancydl.cross_entropy(np.ones((2, 3)), np.array([0, 1]), ignore_index=1.5),
     TypeError, "ignore_index must be an int"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- empty and 0-d inputs, means over no weight -----------------------------------------

EMPTY_OR_0D = [((), 0), ((), -1), ((3, 0), 1), ((0, 3), 1), ((2, 0, 3), 1), ((2, 0, 3), 0)]


@requires_torch
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("shape, dim", EMPTY_OR_0D)
def test_empty_dim_and_0d_match_torch(name, shape, dim):
    x = np.asarray(np.random.default_rng(0).standard_normal(shape))
    ours = getattr(fancydl, name)
    theirs = torch.logsumexp if name == "logsumexp" else getattr(F, name)
    out, pullback = fancydl.vjp(lambda t: ours(t, dim), x)
    upstream = np.full(out.shape, 0.3)
    ref_out, (ref_gx,) = _torch_vjp(lambda t: theirs(t, dim), [x], upstream)
    assert out.shape == ref_out.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out, ref_out)
    (gx,) = pullback(upstream)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gx, ref_gx)


def test_0d_and_empty_values():
    x, g = np.array(0.7), np.array(0.3)
    for name, value, grad in [("softmax", 1.0, 0.0), ("log_softmax", 0.0, 0.0),
                              ("logsumexp", 0.7, 0.3)]:
        out, pullback = fancydl.vjp(lambda t: getattr(fancydl, name)(t, 0), x)
        assert out.shape == () and out == value and pullback(g)[0] == grad
    out = fancydl.logsumexp(np.zeros((2, 0), np.float32), 1, keepdim=True)
    assert out.shape == (2, 1) and out.dtype == np.float32 and np.all(out == -np.inf)
    assert fancydl.log_softmax(np.zeros((2, 0)), 1).shape == (2, 0)


@pytest.mark.parametrize("dim, match", [((1, 1), "each dimension once"),
                                        ((0, -2), "each dimension once"),
                                        ((), "at least one dimension")])
def test_logsumexp_rejects_repeated_or_missing_dims(dim, match):
    with pytest.raises(ValueError, match=match):
        fancydl.logsumexp(np.zeros((2, 3)), dim)


@requires_torch
@pytest.mark.parametrize("op, smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.3),
                                           ("nll_loss", 0.0)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("target", [[-100, -100, -100], [0, 0, -100]])
def test_mean_over_no_weight_matches_torch(op, reduction, smoothing, weighted, target):
    """Every target ignored, or every kept target of weight 0: PyTorch's nan (mean) or 0,
    and its gradient, without warnings."""
    logits = np.random.default_rng(1).standard_normal((3, 4))
    target = np.array(target)
    weight = np.array([0.0, 1.0, 2.0, 3.0]) if weighted or target[0] == 0 else None
    options = dict(reduction=reduction)
    if op == "cross_entropy":
        options["label_smoothing"] = smoothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, pullback = fancydl.vjp(
            lambda z: getattr(fancydl, op)(z, target, weight=weight, **options), logits)
        upstream = np.full(out.shape, 0.7)
        (gz,) = pullback(upstream)
    t_weight = None if weight is None else torch.tensor(weight)
    ref_out, (ref_gz,) = _torch_vjp(
        lambda z: getattr(F, op)(z, torch.tensor(target), weight=t_weight, **options),
        [logits], upstream)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gz, ref_gz, rtol=1e-12, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("probabilities", [False, True])
def test_empty_batch_loss_matches_torch(reduction, probabilities):
    logits = np.zeros((0, 4, 2))
    target = np.zeros((0, 4, 2)) if probabilities else np.zeros((0, 2), np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, pullback = fancydl.vjp(
            lambda z: fancydl.cross_entropy(z, target, reduction=reduction), logits)
        (gz,) = pullback(np.ones(out.shape))
    ref = F.cross_entropy(torch.tensor(logits), torch.tensor(target), reduction=reduction)
    assert out.shape == tuple(ref.shape) and gz.shape == logits.shape
    np.testing.assert_array_equal(out, ref.numpy())


@pytest.fixture
def on_worker():
    """Every split of two items or more runs its second half on the worker thread."""
    with threads():
        yield


@pytest.mark.parametrize("shape, dim", [((300, 1000), 1), ((1000, 300), 0),
                                        ((40, 70, 110), 1), ((3, 5), -1)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_and_softmax_by_blocks_and_halves(shape, dim, dtype, on_worker):
    """Large enough for several blocks of rows, with the halves on the worker thread
    (parallel_switch.threads): the same values as the formula on the whole."""
    rng = np.random.default_rng(2)
    z = (rng.standard_normal(shape) * 5).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    z64, g64 = z.astype(np.float64), g.astype(np.float64)
    shifted = z64 - z64.max(axis=dim, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    p = np.exp(log_p)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else \
        dict(rtol=1e-12, atol=1e-12)
    out, pullback = fancydl.vjp(fancydl.log_softmax, z, dim)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, log_p, **tol)
    np.testing.assert_allclose(pullback(g)[0], g64 - p * g64.sum(axis=dim, keepdims=True),
                               **tol)
    out, pullback = fancydl.vjp(fancydl.softmax, z, dim)
    np.testing.assert_allclose(out, p, **tol)
    np.testing.assert_allclose(pullback(g)[0],
                               p * (g64 - (g64 * p).sum(axis=dim, keepdims=True)), **tol)


@pytest.mark.parametrize("shape", [(300, 1000), (40, 70, 110), (3, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_by_blocks_and_halves(shape, dtype, on_worker):
    """cross_entropy's exp(z - max z), its row sums and its backward run by blocks of
    rows on the two halves (the second on the worker thread): the same values as the
    formula on the whole, with a random upstream gradient of reduction='none'."""
    rng = np.random.default_rng(3)
    z = (rng.standard_normal(shape) * 5).astype(dtype)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    g = rng.standard_normal(target.shape).astype(dtype)
    z64, g64 = z.astype(np.float64), g.astype(np.float64)
    shifted = z64 - z64.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    one_hot = np.moveaxis(np.eye(shape[1])[target], -1, 1)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else \
        dict(rtol=1e-12, atol=1e-12)
    out, pullback = fancydl.vjp(
        lambda z: fancydl.cross_entropy(z, target, reduction="none"), z)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, -(log_p * one_hot).sum(axis=1), **tol)
    np.testing.assert_allclose(pullback(g)[0],
                               (np.exp(log_p) - one_hot) * np.expand_dims(g64, 1), **tol)


# --- ignored items with non-finite scores, warnings, no class at all --------------------

@st.composite
def ignored_nonfinite_case(draw):
    """Scores whose ignored items hold -inf, inf or NaN; every other item is finite."""
    op = draw(st.sampled_from(["cross_entropy", "nll_loss"]))
    n_classes = draw(st.integers(1, 4))
    shape = (draw(st.integers(2, 4)), n_classes) + draw(st.sampled_from([(), (2,), (2, 3)]))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    scores = rng.standard_normal(shape).astype(dtype)
    if op == "nll_loss":
        scores = fancydl.log_softmax(scores, 1)
    target = rng.integers(0, n_classes, shape[:1] + shape[2:])
    ignored = rng.random(target.shape) < 0.5
    ignored.flat[0], ignored.flat[-1] = True, False  # a mean over some weight
    target[ignored] = -100
    spoiled = np.expand_dims(ignored, 1) & (rng.random(shape) < 0.7)
    spoiled[(0, slice(None)) + (0,) * (len(shape) - 2)] = True  # a whole ignored row
    bad = rng.choice(np.array([-np.inf, np.inf, np.nan], dtype), shape)
    scores = np.where(spoiled, bad, scores)
    weight = rng.uniform(0.5, 2.0, n_classes).astype(dtype) if draw(st.booleans()) else None
    options = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])))
    if op == "cross_entropy":
        options["label_smoothing"] = draw(st.sampled_from([0.0, 0.1]))
    return op, scores, target, weight, options, rng


@requires_torch
@given(case=ignored_nonfinite_case())
def test_ignored_items_with_non_finite_scores_are_left_out_like_torch(case):
    """An ignored item contributes nothing, whatever its scores: it used to be
    multiplied by its zero weight, and 0 * -inf turned the whole loss into NaN."""
    op, scores, target, weight, options, rng = case
    out, pullback = fancydl.vjp(
        lambda z: getattr(fancydl, op)(z, target, weight=weight, **options), scores)
    upstream = rng.standard_normal(out.shape).astype(scores.dtype)
    t_weight = None if weight is None else torch.tensor(weight)
    ref_out, (ref_g,) = _torch_vjp(
        lambda z: getattr(F, op)(z, torch.tensor(target), weight=t_weight, **options),
        [scores], upstream)
    assert np.isfinite(out).all()
    _assert_close(out, ref_out, scores.dtype.type)
    # torch's gradient of an ignored row of non-finite logits is NaN (softmax * 0): so
    # is ours.
    np.testing.assert_allclose(pullback(upstream)[0], ref_g, equal_nan=True,
                               **TOL[scores.dtype.type])


@requires_torch
@pytest.mark.parametrize("op, scores, target, options, expected", [
    ("cross_entropy", [[2.0, 0.5, -1.0], [-np.inf, -np.inf, -np.inf]], [0, -100], {},
     0.24131129665715703),
    ("nll_loss", [[-np.inf, np.log(0.5), np.log(0.5)], np.log([0.2, 0.3, 0.5])],
     [-100, 1], {}, 1.2039728043259361),
    ("cross_entropy", [[1.0, 2.0, -np.inf], [0.5, 0.1, 0.3]], [-100, 0],
     dict(label_smoothing=0.1), 0.9319014326242002),
])
def test_ignored_item_with_non_finite_scores_by_hand(op, scores, target, options,
                                                     expected):
    scores, target = np.asarray(scores), np.asarray(target)
    loss = getattr(fancydl, op)(scores, target, **options)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    per_item = getattr(fancydl, op)(scores, target, reduction="none", **options)
    assert per_item[target == -100] == 0.0 and np.isfinite(per_item).all()


@requires_torch
@pytest.mark.parametrize("name, call", [
    ("softmax of all -inf", lambda z: fancydl.softmax(z, 0)),
    ("softmax with +inf", lambda z: fancydl.softmax(z, 0)),
    ("logsumexp with +inf", lambda z: fancydl.logsumexp(z, 0)),
    ("nll_loss of inf and -inf", lambda z: fancydl.nll_loss(z, np.array([0, 0]))),
    ("cross_entropy, probability 0 on -inf",
     lambda z: fancydl.cross_entropy(z, np.array([[1.0, 0.0], [0.5, 0.5]]))),
])
def test_non_finite_values_give_torchs_result_without_warnings(name, call):
    """NaN and inf propagate as in PyTorch, without a RuntimeWarning (the warnings
    filter of pytest.ini turns one into an error), forward and backward."""
    inputs = {"softmax of all -inf": [-np.inf, -np.inf], "softmax with +inf": [np.inf, 0.0],
              "logsumexp with +inf": [np.inf, 1000.0],
              "nll_loss of inf and -inf": [[np.inf, 0.0], [-np.inf, 0.0]],
              "cross_entropy, probability 0 on -inf": [[0.0, -np.inf], [1.0, 2.0]]}
    theirs = {"softmax of all -inf": lambda t: F.softmax(t, 0),
              "softmax with +inf": lambda t: F.softmax(t, 0),
              "logsumexp with +inf": lambda t: torch.logsumexp(t, 0),
              "nll_loss of inf and -inf": lambda t: F.nll_loss(t, torch.tensor([0, 0])),
              "cross_entropy, probability 0 on -inf": lambda t: F.cross_entropy(
                  t, torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64))}
    z = np.array(inputs[name])
    out, pullback = fancydl.vjp(call, z)
    upstream = np.full(out.shape, 0.5)
    (grad,) = pullback(upstream)
    ref_out, (ref_grad,) = _torch_vjp(theirs[name], [z], upstream)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12)


@requires_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("probabilities", [False, True])
def test_no_class_at_all_matches_torch(reduction, smoothing, probabilities):
    """C = 0 (every index target is then ignore_index): PyTorch's nan for the mean (and
    its label smoothing's eps / 0 * 0 = nan for indices), empty gradients; it used to
    raise an IndexError or a ZeroDivisionError."""
    logits = np.zeros((3, 0))
    target = np.zeros((3, 0)) if probabilities else np.array([-100, -100, -100])
    out, pullback = fancydl.vjp(lambda z: fancydl.cross_entropy(
        z, target, reduction=reduction, label_smoothing=smoothing), logits)
    (grad,) = pullback(np.ones(out.shape))
    ref = F.cross_entropy(torch.tensor(logits), torch.tensor(target), reduction=reduction,
                          label_smoothing=smoothing).numpy()
    assert out.shape == ref.shape and grad.shape == logits.shape
    np.testing.assert_array_equal(out, ref)
    if not probabilities:
        ref = F.nll_loss(torch.tensor(logits), torch.tensor(target), reduction=reduction)
        np.testing.assert_array_equal(fancydl.nll_loss(logits, target, reduction=reduction),
                                      ref.numpy())


@requires_torch
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype, cast_to", [(np.float32, np.float64), (np.float64, np.float32),
                                            (np.float32, np.float32), (np.int64, np.float64)])
def test_dtype_casts_the_input_first_like_torch(name, dtype, cast_to):
    """``dtype=``, as in PyTorch: the input is cast before the operation, the output has
    that dtype, and the gradient comes back in the input's dtype."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 5)) * 3).astype(dtype)
    upstream = rng.standard_normal((3, 5)).astype(cast_to)
    t_cast = {np.float32: torch.float32, np.float64: torch.float64}[cast_to]
    out = getattr(fancydl, name)(x, 1, dtype=cast_to)
    ref = getattr(F, name)(torch.tensor(x), 1, dtype=t_cast).numpy()
    assert out.dtype == cast_to
    _assert_close(out, ref, cast_to)
    if np.issubdtype(dtype, np.floating):
        (grad,) = fancydl.vjp(lambda z: getattr(fancydl, name)(z, 1, dtype=cast_to), x)[1](
            upstream)
        _, (ref_grad,) = _torch_vjp(lambda t: getattr(F, name)(t, 1, dtype=t_cast), [x],
                                    upstream)
        assert grad.dtype == dtype
        _assert_close(grad, ref_grad, np.float32)


@pytest.mark.parametrize("call, error, match", [
    (lambda: fancydl.softmax(np.ones(3), 0, dtype=np.float16), TypeError,
     "softmax: dtype must be float32 or float64, got float16"),
    (lambda: fancydl.log_softmax(np.ones(3), 0, dtype="int"), TypeError,
     "log_softmax: dtype must be float32 or float64"),
    (lambda: fancydl.softmax(np.ones(3, complex), 0, dtype=np.float64), TypeError,
     "softmax: input must have a real dtype to be cast to float64, got complex128"),
    (lambda: fancydl.softmax(np.ones(3, int), 0), TypeError, "float32 or float64"),
])
def test_bad_dtype_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_ignored_rows_change_neither_loss_nor_weight_gradient(rng, reduction, smoothing):
    """PyTorch does not differentiate the class weights; ours must not see ignored
    items either: removing them (with their -inf and NaN scores) changes nothing."""
    logits = rng.standard_normal((5, 4))
    logits[1] = -np.inf
    logits[3, 2] = np.nan
    target = np.array([0, -100, 2, -100, 3])
    weight = rng.uniform(0.5, 2.0, 4)
    kept = target != -100

    def loss_and_weight_gradient(z, t):
        out, pullback = fancydl.vjp(lambda z, w: fancydl.cross_entropy(
            z, t, weight=w, reduction=reduction, label_smoothing=smoothing), z, weight)
        return out, pullback(np.array(0.7))[1]

    out, g_weight = loss_and_weight_gradient(logits, target)
    expected, expected_g = loss_and_weight_gradient(logits[kept], target[kept])
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(g_weight, expected_g, rtol=1e-12, atol=1e-15)
