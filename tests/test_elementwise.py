"""Elementwise and shape operators: PyTorch's values, gradients and argument rules."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fancydl

try:
    import torch
except ImportError:  # the torch-free tests (gradchecks, argument rules) still run
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch")

dtypes = st.sampled_from([np.float32, np.float64])
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _torch_vjp(fn, arrays, upstream):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(torch.tensor(upstream))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def _compare(ours_fn, torch_fn, arrays, rng, dtype):
    arrays = [np.asarray(a, dtype) for a in arrays]  # NumPy makes 0-d results scalars
    out, pullback = fancydl.vjp(ours_fn, *arrays)
    upstream = rng.standard_normal(np.shape(out)).astype(out.dtype)
    grads = pullback(upstream)
    expected, expected_grads = _torch_vjp(torch_fn, arrays, upstream)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    for g, e, a in zip(grads, expected_grads, arrays):
        assert g.shape == a.shape and g.dtype == a.dtype
        np.testing.assert_allclose(g, e, **TOL[dtype])


@st.composite
def broadcastable_pair(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    return shapes.input_shapes


BINARY = ["add", "sub", "mul", "div", "pow"]


@needs_torch
@pytest.mark.parametrize("name", BINARY)
@given(shapes=broadcastable_pair(), dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_binary_operators_match_torch_with_broadcasting(name, shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes[0]).astype(dtype)
    b = rng.standard_normal(shapes[1]).astype(dtype)
    if name == "div":
        b = np.where(np.abs(b) < 0.2, 0.2, b).astype(dtype)
    if name == "pow":  # a positive base keeps the exponent's gradient (log a) finite
        a = (np.abs(a) + 0.5).astype(dtype)
    _compare(getattr(fancydl, name), getattr(torch, name), [a, b], rng, dtype)


UNARY = ["exp", "tanh", "sigmoid", "relu", "neg", "log"]


@needs_torch
@pytest.mark.parametrize("name", UNARY)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
       dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_unary_operators_match_torch(name, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    if name == "log":  # a positive argument
        _compare(lambda x: fancydl.log(x * x + 0.5), lambda x: torch.log(x * x + 0.5),
                 [x], rng, dtype)
    else:
        _compare(getattr(fancydl, name), getattr(torch, name), [x], rng, dtype)


@st.composite
def reduction_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    ndim = len(shape)
    if ndim == 0:
        dim = draw(st.sampled_from([None, (), 0, -1]))
    else:
        dims = draw(st.lists(st.integers(-ndim, ndim - 1), max_size=ndim,
                             unique_by=lambda d: d % ndim))
        dim = draw(st.sampled_from([None, tuple(dims), dims[0] if dims else None]))
    return shape, dim, draw(st.booleans())


@needs_torch
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
@given(case=reduction_case(), dtype=dtypes, seed=st.integers(0, 2**32 - 1),
       ties=st.booleans())
def test_reductions_match_torch(name, case, dtype, seed, ties):
    shape, dim, keepdim = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    x = (np.round(x) if ties else x).astype(dtype)  # ties: amax shares the gradient
    ours = getattr(fancydl, name)
    theirs = getattr(torch, name)
    torch_dim = () if dim is None and name in ("amax", "amin") else dim
    if dim is None and name in ("sum", "mean"):
        theirs_fn = (lambda t: theirs(t, dim=None, keepdim=keepdim)) if keepdim else theirs
    else:
        theirs_fn = lambda t: theirs(t, torch_dim, keepdim=keepdim)  # noqa: E731
    _compare(lambda t: ours(t, dim, keepdim), theirs_fn, [x], rng, dtype)


@needs_torch
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3),
       data=st.data(), dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_flatten_matches_torch(shape, data, dtype, seed):
    ndim = max(len(shape), 1)
    start = data.draw(st.integers(-ndim, ndim - 1))
    end = data.draw(st.integers(-ndim, ndim - 1))
    assume(start % ndim <= end % ndim)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    _compare(lambda t: fancydl.flatten(t, start, end),
             lambda t: torch.flatten(t, start, end), [x], rng, dtype)


@needs_torch
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data(),
       dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_permute_and_transpose_match_torch(shape, data, dtype, seed):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    d0, d1 = data.draw(st.tuples(*[st.integers(-len(shape), len(shape) - 1)] * 2))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    _compare(lambda t: fancydl.permute(t, perm), lambda t: t.permute(perm), [x], rng, dtype)
    _compare(lambda t: fancydl.transpose(t, d0, d1), lambda t: t.transpose(d0, d1), [x],
             rng, dtype)


@needs_torch
@given(n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4), dtype=dtypes,
       seed=st.integers(0, 2**32 - 1))
def test_matmul_and_linear_match_torch(n, k, m, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, k)).astype(dtype), rng.standard_normal((k, m)).astype(dtype)
    _compare(fancydl.matmul, torch.matmul, [a, b], rng, dtype)
    w, bias = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal(m).astype(dtype)
    _compare(fancydl.linear, torch.nn.functional.linear, [a, w, bias], rng, dtype)


def test_float64_gradchecks(rng):
    x, y = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 1))
    positive = np.abs(rng.standard_normal((3, 4))) + 0.5
    assert fancydl.gradcheck(lambda x, y: fancydl.pow(positive, x[0] * y), x, y)
    assert fancydl.gradcheck(lambda x: x ** 3.0 - 2.0 ** x, x)
    assert fancydl.gradcheck(lambda x: fancydl.amax(x, (0, 2), keepdim=True), x)
    assert fancydl.gradcheck(lambda x: fancydl.amin(x, -1), x)
    assert fancydl.gradcheck(lambda x: fancydl.permute(x, (2, 0, 1)).T, x)
    assert fancydl.gradcheck(lambda x: fancydl.flatten(x, 1, 2) @ np.ones((12, 2)), x)


def test_python_numbers_take_the_array_dtype_as_in_torch():
    x = np.ones(3, np.float32)
    assert fancydl.add(x, 0.1).dtype == np.float32
    assert fancydl.mul(2, x).dtype == np.float32
    assert fancydl.add(x, np.ones(3)).dtype == np.float64  # float32 + float64 promotes


def test_mixed_float32_float64_gradients_keep_each_dtype(rng):
    a, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal((2, 3))
    for op in (fancydl.add, fancydl.sub, fancydl.mul, fancydl.div, fancydl.pow):
        _, pullback = fancydl.vjp(lambda a, b: op(a * a + 1, b), a, b)
        ga, gb = pullback(np.ones((2, 3)))
        assert ga.dtype == np.float32 and gb.dtype == np.float64


@pytest.mark.parametrize("bad", [np.arange(3), np.array([True, False, True])])
def test_integer_and_bool_arrays_raise_instead_of_truncating(bad):
    with pytest.raises(TypeError, match="add: input must have dtype float32 or float64, "
                                        "got (int64|bool)"):
        fancydl.add(bad, 0.5)
    with pytest.raises(TypeError, match="mul: other must have dtype float32 or float64"):
        fancydl.mul(np.ones(3), bad)


@pytest.mark.parametrize("bad", [None, [1.0, 2.0], "2", {"a": 1}])
def test_non_arrays_raise_type_errors_naming_the_argument(bad):
    with pytest.raises(TypeError, match="sub: other must be a float array or a real "
                                        "number, got"):
        fancydl.sub(np.ones(2), bad)
    with pytest.raises(TypeError, match="exp: input must be a numpy.ndarray"):
        fancydl.exp(bad)
    with pytest.raises(TypeError, match="sum: input must be a numpy.ndarray"):
        fancydl.sum(bad)


def test_two_numbers_are_refused():
    with pytest.raises(TypeError, match="add: input or other must be an array"):
        fancydl.add(1.0, 2.0)


def test_mismatched_shapes_name_both_shapes():
    with pytest.raises(ValueError, match=r"add: input of shape \(2, 3\) and other of "
                                         r"shape \(4,\) cannot be broadcast together"):
        fancydl.add(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match=r"matmul: input of shape \(2, 3\) and other of "
                                         r"shape \(4, 2\) cannot be multiplied"):
        fancydl.matmul(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"cannot reshape an array of shape \(2, 3\) "
                                         r"\(6 elements\) into shape \(4,\)"):
        fancydl.reshape(np.ones((2, 3)), 4)


@pytest.mark.parametrize("op", [fancydl.sum, fancydl.mean, fancydl.amax])
def test_out_of_range_dims_raise_instead_of_wrapping(op):
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="dim out of range: expected a value in "
                                         r"\[-2, 1\] .* got 2"):
        op(x, 2)
    with pytest.raises(ValueError, match="got -3"):
        op(x, (0, -3))
    with pytest.raises(ValueError, match="dim 1 appears more than once"):
        op(x, (1, -1))
    with pytest.raises(TypeError, match="dim must be an int"):
        op(x, 1.0)


def test_numpy_integer_dims_are_accepted():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(fancydl.sum(x, np.int64(1)), [3.0, 12.0])
    np.testing.assert_array_equal(fancydl.flatten(x, np.int32(0), np.int64(-1)),
                                  x.reshape(-1))
    assert fancydl.reshape(x, (np.int64(3), np.int8(2))).shape == (3, 2)


@needs_torch
def test_sum_over_an_empty_tuple_of_dims_follows_torch():
    x = np.arange(6.0).reshape(2, 3)
    for op in ("sum", "mean"):
        expected = getattr(torch, op)(torch.tensor(x), ()).numpy()
        np.testing.assert_array_equal(getattr(fancydl, op)(x, ()), expected)
        kept = getattr(torch, op)(torch.tensor(x), (), keepdim=True).numpy()
        np.testing.assert_array_equal(getattr(fancydl, op)(x, (), keepdim=True), kept)


def test_flatten_defaults_match_torch():
    x = np.ones((2, 3, 4))
    assert fancydl.flatten(x).shape == (24,)  # torch.flatten(x).shape
    assert fancydl.flatten(x, 1).shape == (2, 12)
    assert fancydl.flatten(np.array(2.0)).shape == (1,)
    with pytest.raises(ValueError, match="start_dim 2 comes after end_dim 1"):
        fancydl.flatten(x, 2, 1)
    with pytest.raises(ValueError, match="start_dim out of range"):
        fancydl.flatten(x, 3)


def test_mean_of_nothing_is_nan_as_in_torch():
    """0 / 0, without a RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(fancydl.mean(np.ones((0, 3))))


def test_getitem_refuses_a_traced_index(rng):
    x = rng.standard_normal(4)
    with pytest.raises(TypeError, match="getitem: cannot differentiate with respect to "
                                        "index"):
        fancydl.vjp(lambda x, i: x[i], x, np.array([0.0]))


# --- regressions of the adversarial review ------------------------------------------------

def _torch_vjp_any(fn, arrays, upstream):
    """``_torch_vjp`` for arguments of different dtypes and 0-d results."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    grads = torch.autograd.grad(out, tensors, torch.tensor(upstream))
    return out.detach().numpy(), [g.numpy() for g in grads]


def _assert_matches_torch(ours_fn, torch_fn, arrays, upstream, rtol=1e-12):
    out, pullback = fancydl.vjp(ours_fn, *arrays)
    grads = pullback(upstream)
    expected, expected_grads = _torch_vjp_any(torch_fn, arrays, upstream)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=0)
    for g, e in zip(grads, expected_grads):
        assert type(g) is np.ndarray and g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=rtol, atol=0)


@needs_torch
@pytest.mark.parametrize("value, dtype", [(1e-170, np.float64), (1e200, np.float64),
                                          (1e20, np.float32), (3e-22, np.float32),
                                          (1e-21, np.float32)])
def test_div_gradient_of_the_divisor_does_not_overflow_early(value, dtype, rng):
    """-grad * a / (b * b) over- or underflowed where torch's -grad * (a / b / b) does
    not: a = b = 1e-170 gave -inf instead of -1e170."""
    a = np.array([value, 2.0 * value, 1.5], dtype)
    b = np.array([value, value, 0.75], dtype)
    upstream = rng.standard_normal(3).astype(dtype)
    _assert_matches_torch(fancydl.div, torch.div, [a, b], upstream, rtol=1e-6)


@needs_torch
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_extreme_gradient_over_a_nan_slice_is_torchs(name, rng):
    """A NaN slice got a zero gradient (and divide-by-zero warnings); torch gives NaN,
    and NaN off the extreme for an infinite upstream gradient."""
    x = np.array([[np.nan, 1.0, 5.0], [1.0, 5.0, 5.0], [np.inf, 1.0, -np.inf],
                  [2.0, np.nan, np.nan]])
    upstream = np.array([2.0, 3.0, np.inf, -1.0])
    ours, theirs = getattr(fancydl, name), getattr(torch, name)
    _, pullback = fancydl.vjp(lambda a: ours(a, 1), x)
    expected = _torch_vjp_any(lambda t: theirs(t, 1), [x], upstream)[1][0]
    np.testing.assert_array_equal(pullback(upstream)[0], expected)
    _, pullback = fancydl.vjp(ours, x)
    expected = _torch_vjp_any(theirs, [x], np.array(1.0))[1][0]
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], expected)


@needs_torch
@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", [((3,), ()), ((), (3,)), ((), ()), ((2, 3), (1,))])
@pytest.mark.parametrize("dtypes", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_dtypes_promote_as_in_torch(name, shapes, dtypes, rng):
    """A 0-d float64 array beside a float32 one with dimensions gave float64; in torch
    it takes part like a number and the result stays float32."""
    a = np.asarray(np.abs(rng.standard_normal(shapes[0])) + 0.5, dtypes[0])
    b = np.asarray(np.abs(rng.standard_normal(shapes[1])) + 0.5, dtypes[1])
    expected_dtype = torch.result_type(torch.tensor(a), torch.tensor(b))
    upstream = rng.standard_normal(np.broadcast_shapes(a.shape, b.shape))
    upstream = np.asarray(upstream, torch.empty(0, dtype=expected_dtype).numpy().dtype)
    _assert_matches_torch(getattr(fancydl, name), getattr(torch, name), [a, b], upstream,
                          rtol=2e-6)
    traced = fancydl.vjp(lambda a, b: OPERATORS[name](a, b), a, b)[0]
    assert traced.dtype == upstream.dtype


OPERATORS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
             "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
             "pow": lambda a, b: a ** b}


# Edges where NumPy warns (divide by zero, overflow, invalid value) but PyTorch
# silently gives inf or NaN; pytest turns any warning into an error.
EDGES = {
    "log at 0 and below": (fancydl.log, torch.log, [[0.0, -1.0, 2.0, np.inf]]),
    "div by zero": (fancydl.div, torch.div, [[0.0, 1.0, -1.0], [0.0, 0.0, 0.0]]),
    "exp overflow": (fancydl.exp, torch.exp, [[1000.0, -1000.0, 0.5]]),
    "pow at the edges": (fancydl.pow, torch.pow,
                         [[0.0, 0.0, -2.0, -2.0, 2.0], [-1.0, 0.5, 0.5, 2.0, -1.0]]),
    "inf times zero": (fancydl.mul, torch.mul, [[np.inf, 1.0], [0.0, np.inf]]),
    "inf minus inf": (fancydl.sub, torch.sub, [[np.inf, 1e308], [np.inf, -1e308]]),
    "matmul of inf": (fancydl.matmul, torch.matmul, [[[np.inf, 1.0]], [[0.0], [1.0]]]),
    "tanh with inf upstream": (fancydl.tanh, torch.tanh, [[50.0, 0.5]]),
}


@needs_torch
@pytest.mark.parametrize("case", sorted(EDGES))
def test_inf_and_nan_edges_match_torch_without_warnings(case):
    ours, theirs, arrays = EDGES[case]
    arrays = [np.array(a) for a in arrays]
    out = ours(*arrays)
    upstream = np.where(np.arange(out.size).reshape(out.shape) % 2 == 0, np.inf, 1.0)
    out, pullback = fancydl.vjp(ours, *arrays)
    expected, expected_grads = _torch_vjp_any(theirs, arrays, upstream)
    np.testing.assert_array_equal(out, expected)
    for g, e in zip(pullback(upstream), expected_grads):
        np.testing.assert_array_equal(g, e)


def test_a_number_beyond_float32_becomes_inf_without_warning():
    x = np.ones(2, np.float32)
    for result in (fancydl.mul(x, 1e300), fancydl.add(x, -1e40)):
        assert result.dtype == np.float32 and np.all(np.isinf(result))


def test_transpose_of_a_zero_dimensional_array_returns_it():
    for dims in ((0, -1), (0, 0), (-1, -1)):
        out, pullback = fancydl.vjp(lambda a: fancydl.transpose(a, *dims), np.array(2.0))
        assert out.shape == () and out == 2.0
        assert pullback(np.array(3.0))[0] == 3.0


def test_sum_of_a_zero_dimensional_array_refuses_a_repeated_dim():
    with pytest.raises(ValueError, match=r"sum: dim 0 appears more than once in \(0, 0\)"):
        fancydl.sum(np.array(1.0), (0, 0))
    with pytest.raises(ValueError, match=r"amax: dim 0 appears more than once"):
        fancydl.amax(np.array(1.0), (0, -1))


@pytest.mark.parametrize("dtypes, message", [
    ((np.float32, np.float64, None), "input is float32, weight is float64"),
    ((np.float64, np.float64, np.float32), "weight is float64, bias is float32"),
])
def test_linear_names_its_own_arguments_of_mismatched_dtypes(dtypes, message):
    x, w = np.ones((2, 3), dtypes[0]), np.ones((4, 3), dtypes[1])
    bias = None if dtypes[2] is None else np.ones(4, dtypes[2])
    with pytest.raises(TypeError, match=f"linear: arrays must share one dtype, .*{message}"):
        fancydl.linear(x, w, bias)


@pytest.mark.parametrize("index", [
    lambda i, m, lst: (i, slice(None)),
    lambda i, m, lst: (m, slice(None)),
    lambda i, m, lst: lst,
    lambda i, m, lst: i,
])
def test_getitem_gradient_goes_to_the_forward_time_positions(index, rng):
    """An index array inside a tuple, or a list, changed in place between the forward
    pass and the pullback moved the gradient to the new positions."""
    x = rng.standard_normal((4, 3))
    rows, mask, rows_list = np.array([0, 1, 2]), np.array([True, True, True, False]), [0, 1, 2]
    chosen = index(rows, mask, rows_list)
    out, pullback = fancydl.vjp(lambda a: a[chosen], x)
    upstream = rng.standard_normal(out.shape)
    expected = np.zeros_like(x)
    expected[:3] = upstream
    rows[:] = 3
    mask[:] = [False, False, False, True]
    rows_list[0] = 3
    np.testing.assert_array_equal(pullback(upstream)[0], expected)


def test_getitem_with_an_empty_list_index_follows_numpy(rng):
    x = rng.standard_normal((4, 3))
    out, pullback = fancydl.vjp(lambda a: a[[]], x)
    assert out.shape == x[[]].shape
    np.testing.assert_array_equal(pullback(np.ones(out.shape))[0], np.zeros_like(x))
