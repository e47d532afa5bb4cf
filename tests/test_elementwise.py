"""Elementwise and shape operators: PyTorch's values, gradients and argument rules."""

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
    with np.errstate(all="raise"):
        assert np.isnan(fancydl.mean(np.ones((0, 3))))


def test_getitem_refuses_a_traced_index(rng):
    x = rng.standard_normal(4)
    with pytest.raises(TypeError, match="getitem: cannot differentiate with respect to "
                                        "index"):
        fancydl.vjp(lambda x, i: x[i], x, np.array([0.0]))
