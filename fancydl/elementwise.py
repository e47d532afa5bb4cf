"""The few elementwise and shape operators that composition needs.

They make ``fancydl.vjp`` work on whole small networks, e.g.
``lambda x, w: fancydl.relu(fancydl.conv2d(x, w)).mean()``. Binary operators broadcast
like NumPy; their backward sums the gradient back to each input's shape.

They validate like every other operator (PyTorch's rules): array operands must be
float32 or float64 (an integer or bool array raises ``TypeError`` rather than being
truncated); a Python number takes the array's dtype, as in PyTorch, and so does a 0-d
array beside an array with dimensions (``float32 (N,) + float64 ()`` is float32); any
other float32 with float64 promotes to float64; shapes that do not broadcast raise
``ValueError`` naming both; ``dim`` must be in ``[-ndim, ndim)``. inf and NaN
propagate as in PyTorch (``1 / 0 = inf``, ``log(0) = -inf``), without NumPy's
warnings.

Importing this module also gives :class:`~fancydl.autodiff.Traced` values their
arithmetic (``t + 1``, ``t @ w``, ``t ** 2``, ``t.sum(axis=0)``, ``t.T``, ``np.exp(t)``):
see :func:`fancydl._traced.install_operators`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._traced import Traced, constant_of, install_operators
from .autodiff import Function, quiet
from .validation import check_dim, check_float_array, check_same_dtype

__all__ = ["add", "sub", "mul", "div", "pow", "neg", "exp", "log", "relu", "sigmoid",
           "tanh", "sum", "mean", "amax", "amin", "reshape", "flatten", "permute",
           "transpose", "matmul", "linear", "getitem"]

_FLOATS = (np.float32, np.float64)


def unbroadcast(grad, shape, dtype=None):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach it.

    Parameters
    ----------
    grad : ndarray
        Gradient of a broadcast result.
    shape : tuple of int
        Shape of the input that was broadcast.
    dtype : numpy.dtype, optional
        The input's dtype, when a promotion (float32 with float64) widened ``grad``.

    Returns
    -------
    ndarray of shape ``shape`` (and ``dtype``)
    """
    if grad.shape != tuple(shape):
        extra = grad.ndim - len(shape)
        grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad
        stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        grad = grad.sum(axis=stretched, keepdims=True) if stretched else grad
    return grad if dtype is None else grad.astype(dtype, copy=False)


def _describe(x):
    if isinstance(x, (np.ndarray, Traced)):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def _is_array(x):
    return isinstance(x, (np.ndarray, Traced))


def _check_operand(op, name, x):
    """A float array (plain or traced) or a real number; anything else is refused."""
    if _is_array(x):
        if x.dtype not in _FLOATS:
            raise TypeError(f"{op}: {name} must have dtype float32 or float64, got "
                            f"{x.dtype} (integer and bool arrays are not differentiable; "
                            f"convert with .astype(np.float64) first)")
    elif not isinstance(x, numbers.Real):
        raise TypeError(f"{op}: {name} must be a float array or a real number, got "
                        f"{_describe(x)}")


def _operands(op, input, other):
    """Validate a binary operator's operands and give them PyTorch's dtypes.

    A number becomes a 0-d array of the array operand's dtype (PyTorch: ``float32 +
    0.1`` stays float32); two arrays must broadcast, see :func:`_zero_dim_follows`.
    """
    _check_operand(op, "input", input)
    _check_operand(op, "other", other)
    if not (_is_array(input) or _is_array(other)):
        raise TypeError(f"{op}: input or other must be an array, got two numbers "
                        f"{input!r} and {other!r}")
    if _is_array(input) and _is_array(other):
        if input.shape != other.shape:
            try:
                np.broadcast_shapes(input.shape, other.shape)
            except ValueError:
                raise ValueError(f"{op}: input of shape {input.shape} and other of "
                                 f"shape {other.shape} cannot be broadcast "
                                 f"together") from None
        return _zero_dim_follows(input, other)
    dtype = (input if _is_array(input) else other).dtype
    as_array = (lambda x: x if _is_array(x) else _number_array(x, dtype))
    return as_array(input), as_array(other)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number_array(x, dtype):
    """The number ``x`` as a 0-d array of ``dtype``."""
    if abs(x) <= _FLOAT32_MAX:  # the usual case: no overflow possible
        return np.asarray(x, dtype=dtype)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, as in PyTorch
        return np.asarray(x, dtype=dtype)


def _zero_dim_follows(input, other):
    """PyTorch's promotion of two float arrays: a 0-d array beside one with dimensions
    takes that one's dtype, like a number (float32 (N,) with float64 () is float32);
    otherwise float32 with float64 is float64. A differentiable cast keeps the 0-d
    array's gradient in its own dtype."""
    if input.dtype != other.dtype and (input.ndim == 0) != (other.ndim == 0):
        if input.ndim == 0:
            return _Cast.apply(input, other.dtype), other
        return input, _Cast.apply(other, input.dtype)
    return input, other


# --- binary arithmetic ------------------------------------------------------------------

@quiet("forward", "backward")
class _Add(Function):
    operator_name = "add"

    @staticmethod
    def forward(ctx, a, b):
        ctx.meta = (a.shape, a.dtype), (b.shape, b.dtype)
        return a + b

    @staticmethod
    def backward(ctx, grad):
        ma, mb = ctx.meta
        return unbroadcast(grad, *ma), unbroadcast(grad, *mb)


@quiet("forward", "backward")
class _Sub(Function):
    operator_name = "sub"

    @staticmethod
    def forward(ctx, a, b):
        ctx.meta = (a.shape, a.dtype), (b.shape, b.dtype)
        return a - b

    @staticmethod
    def backward(ctx, grad):
        ma, mb = ctx.meta
        return unbroadcast(grad, *ma), unbroadcast(-grad, *mb)


@quiet("forward", "backward")
class _Mul(Function):
    operator_name = "mul"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        ga = unbroadcast(grad * b, a.shape, a.dtype) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(grad * a, b.shape, b.dtype) if ctx.needs_input_grad[1] else None
        return ga, gb


@quiet("forward", "backward")
class _Div(Function):
    operator_name = "div"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        ga = unbroadcast(grad / b, a.shape, a.dtype) if ctx.needs_input_grad[0] else None
        # PyTorch's order: a / b / b, since b * b over- or underflows long before
        gb = (unbroadcast(-grad * (a / b / b), b.shape, b.dtype)
              if ctx.needs_input_grad[1] else None)
        return ga, gb


@quiet("forward", "backward")
class _Pow(Function):
    operator_name = "pow"

    @staticmethod
    def forward(ctx, a, b):
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        a, b, y = ctx.saved
        ga = gb = None
        if ctx.needs_input_grad[0]:
            # b * a**(b - 1), with PyTorch's 0 where b == 0 (even at a == 0).
            local = np.where(b == 0, 0, b * a ** np.where(b == 0, 1, b - 1))
            ga = unbroadcast(grad * local, a.shape, a.dtype)
        if ctx.needs_input_grad[1]:
            # y * log(a), with PyTorch's 0 where a == 0 and b >= 0.
            local = np.where((a == 0) & (b >= 0), 0, y * np.log(a))
            gb = unbroadcast(grad * local, b.shape, b.dtype)
        return ga, gb


def add(input, other):
    """``input + other`` with broadcasting (float arrays or a float array and a number)."""
    return _Add.apply(*_operands("add", input, other))


def sub(input, other):
    """``input - other`` with broadcasting."""
    return _Sub.apply(*_operands("sub", input, other))


def mul(input, other):
    """``input * other`` with broadcasting."""
    return _Mul.apply(*_operands("mul", input, other))


def div(input, other):
    """``input / other`` with broadcasting (true division)."""
    return _Div.apply(*_operands("div", input, other))


def pow(input, exponent):
    """``input ** exponent`` with broadcasting, like ``torch.pow``.

    The gradients follow PyTorch at the edges: 0 with respect to ``input`` where
    ``exponent == 0``, and 0 with respect to ``exponent`` where ``input == 0`` and
    ``exponent >= 0``.
    """
    return _Pow.apply(*_operands("pow", input, exponent))


# --- unary elementwise --------------------------------------------------------------------

class _Neg(Function):
    operator_name = "neg"

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return (-grad,)


@quiet("forward", "backward")
class _Exp(Function):
    operator_name = "exp"

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return (grad * y,)


@quiet("forward", "backward")
class _Log(Function):
    operator_name = "log"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return (grad / x,)


class _Relu(Function):
    operator_name = "relu"

    @staticmethod
    def forward(ctx, x):
        positive = ~(x <= 0)  # NaN counts as positive: it propagates, as in PyTorch
        ctx.save_for_backward(positive)
        # np.maximum propagates NaN and keeps -0.0 as PyTorch does; it is about 7x
        # faster than np.where here.
        return np.maximum(np.zeros((), x.dtype), x)  # x wins ties: relu(-0.0) = -0.0

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved
        # grad * mask is the fast way, but inf or NaN times a False would give NaN
        # where PyTorch gives 0: fall back to a select only when that happened.
        with np.errstate(invalid="ignore"):
            masked = grad * positive
        if np.isnan(masked).any():
            masked = np.where(positive, grad, np.zeros((), grad.dtype))
        return (masked,)


@quiet("backward")
class _Sigmoid(Function):
    operator_name = "sigmoid"

    @staticmethod
    def forward(ctx, x):
        # exp of a non-positive number only: no overflow for large |x|.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return (grad * y * (1 - y),)


@quiet("backward")
class _Tanh(Function):
    operator_name = "tanh"

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return (grad * (1 - y * y),)


def neg(input):
    """``-input``."""
    check_float_array("neg", "input", input)
    return _Neg.apply(input)


def exp(input):
    """Elementwise ``e**input``."""
    check_float_array("exp", "input", input)
    return _Exp.apply(input)


def log(input):
    """Elementwise natural logarithm."""
    check_float_array("log", "input", input)
    return _Log.apply(input)


def relu(input):
    """``max(input, 0)``; its gradient at exactly 0 is 0, as in PyTorch."""
    check_float_array("relu", "input", input)
    return _Relu.apply(input)


def sigmoid(input):
    """``1 / (1 + exp(-input))``, computed without overflow."""
    check_float_array("sigmoid", "input", input)
    return _Sigmoid.apply(input)


def tanh(input):
    """Elementwise hyperbolic tangent."""
    check_float_array("tanh", "input", input)
    return _Tanh.apply(input)


# --- reductions ---------------------------------------------------------------------------

def _reduced_axes(op, dim, ndim):
    """``dim`` (None, an int or a sequence of ints) as sorted axes, PyTorch's rules:
    None or ``()`` reduce every dimension; out of range or repeated raise."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (tuple, list)):
        axes = [check_dim(op, "dim", d, ndim) for d in dim]
        if not axes:
            return tuple(range(ndim))
    else:
        axes = [check_dim(op, "dim", dim, ndim)]
    repeated = {a for a in axes if axes.count(a) > 1}
    if repeated:
        raise ValueError(f"{op}: dim {min(repeated)} appears more than once in {dim!r}")
    return tuple(sorted(axes)) if ndim else ()


@quiet("forward")
class _Sum(Function):
    operator_name = "sum"

    @staticmethod
    def forward(ctx, x, axes=(), keepdim=False):
        ctx.shape, ctx.axes = x.shape, axes
        return np.asarray(x.sum(axis=axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, grad):
        grad = np.expand_dims(grad, ctx.axes) if grad.ndim < len(ctx.shape) else grad
        return (np.broadcast_to(grad, ctx.shape).copy(),)


@quiet("backward")
class _Extreme(Function):
    """``amax``/``amin``: the gradient is shared equally by tied extremes (PyTorch)."""

    @staticmethod
    def forward(ctx, x, axes=(), keepdim=False, largest=True):
        reduce = np.max if largest else np.min
        y = reduce(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x, y)
        ctx.axes = axes
        return np.asarray(y if keepdim else np.squeeze(y, axis=axes))

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved
        grad = np.expand_dims(grad, ctx.axes) if grad.ndim < x.ndim else grad
        hit = x == y
        count = hit.sum(axis=ctx.axes, keepdims=True).astype(x.dtype)
        # PyTorch's formula: a NaN extreme hits nothing, so its whole slice gets
        # grad / 0 * 0 = NaN; an inf upstream gives NaN off the extreme, too.
        return (grad / count * hit,)


class _Amax(_Extreme):
    operator_name = "amax"


class _Amin(_Extreme):
    operator_name = "amin"


def sum(input, dim=None, keepdim=False):
    """Sum over ``dim``, like ``torch.sum``.

    Parameters
    ----------
    input : ndarray, float32 or float64
    dim : int, tuple of int or None
        Dimensions to reduce, each in ``[-ndim, ndim)`` and not repeated; None or
        ``()`` reduce them all (as ``torch.sum(x, ())`` does).
    keepdim : bool
        Keep the reduced dimensions with size 1.

    Returns
    -------
    ndarray of input's dtype
    """
    check_float_array("sum", "input", input)
    return _Sum.apply(input, axes=_reduced_axes("sum", dim, input.ndim),
                      keepdim=bool(keepdim))


def mean(input, dim=None, keepdim=False):
    """Mean over ``dim`` (as in :func:`sum`), like ``torch.mean``; NaN over no elements."""
    check_float_array("mean", "input", input)
    axes = _reduced_axes("mean", dim, input.ndim)
    count = math.prod(input.shape[a] for a in axes)
    total = _Sum.apply(input, axes=axes, keepdim=bool(keepdim))
    return div(total, float(count)) if count else mul(total, float("nan"))


def amax(input, dim=None, keepdim=False):
    """Largest entry over ``dim`` (as in :func:`sum`), like ``torch.amax``.

    The gradient is split equally among the entries that tie for the maximum; a
    slice whose maximum is NaN gets a NaN gradient everywhere, as in PyTorch.
    """
    check_float_array("amax", "input", input)
    axes = _reduced_axes("amax", dim, input.ndim)
    _check_nonempty("amax", input, axes)
    return _Amax.apply(input, axes=axes, keepdim=bool(keepdim), largest=True)


def amin(input, dim=None, keepdim=False):
    """Smallest entry over ``dim``, like ``torch.amin`` (ties share the gradient)."""
    check_float_array("amin", "input", input)
    axes = _reduced_axes("amin", dim, input.ndim)
    _check_nonempty("amin", input, axes)
    return _Amin.apply(input, axes=axes, keepdim=bool(keepdim), largest=False)


def _check_nonempty(op, input, axes):
    if any(input.shape[a] == 0 for a in axes):
        raise ValueError(f"{op}: cannot reduce over a dimension of size 0 (input of shape "
                         f"{input.shape}, dim {axes})")


# --- shapes -------------------------------------------------------------------------------

class _Reshape(Function):
    operator_name = "reshape"

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape), None


def _check_shape(op, input, shape):
    """``shape`` (an int or a sequence of ints, at most one -1) for ``input``'s size."""
    entries = (shape,) if isinstance(shape, numbers.Integral) else shape
    if (not isinstance(entries, (tuple, list))
            or any(isinstance(s, bool) or not isinstance(s, numbers.Integral)
                   for s in entries)):
        raise TypeError(f"{op}: shape must be an int or a tuple of ints, got "
                        f"{_describe(shape)}")
    entries = tuple(int(s) for s in entries)
    known = math.prod(s for s in entries if s != -1)
    unknown = entries.count(-1)
    fits = (unknown == 0 and known == input.size) or (
        unknown == 1 and known > 0 and input.size % known == 0)
    if unknown > 1 or any(s < -1 for s in entries) or not fits:
        raise ValueError(f"{op}: cannot reshape an array of shape {input.shape} "
                         f"({input.size} elements) into shape {entries}")
    return entries


def reshape(input, shape):
    """``input.reshape(shape)``, like ``torch.reshape`` (one entry may be -1)."""
    check_float_array("reshape", "input", input)
    return _Reshape.apply(input, _check_shape("reshape", input, shape))


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim`` to ``end_dim`` into one, like ``torch.flatten``.

    Parameters
    ----------
    input : ndarray
    start_dim, end_dim : int
        First and last dimension to merge (default: all, giving a 1-D array; use
        ``start_dim=1`` to keep the batch dimension).

    Returns
    -------
    ndarray
        A 0-d input gives shape (1,), as in PyTorch.
    """
    check_float_array("flatten", "input", input)
    start = check_dim("flatten", "start_dim", start_dim, input.ndim)
    end = check_dim("flatten", "end_dim", end_dim, input.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"for an input with {input.ndim} dimensions")
    shape = input.shape
    merged = math.prod(shape[start:end + 1])
    return _Reshape.apply(input, shape[:start] + (merged,) + shape[end + 1:])


class _Permute(Function):
    operator_name = "permute"

    @staticmethod
    def forward(ctx, x, dims):
        ctx.inverse = tuple(np.argsort(dims))
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(ctx.inverse), None


def permute(input, dims):
    """Reorder the dimensions, like ``torch.permute`` (``dims`` lists every one once)."""
    check_float_array("permute", "input", input)
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"permute: dims must be a tuple of ints, got {_describe(dims)}")
    axes = tuple(check_dim("permute", "dims", d, input.ndim) for d in dims)
    if sorted(axes) != list(range(input.ndim)):
        raise ValueError(f"permute: dims must list each of the {input.ndim} dimensions "
                         f"once, got {tuple(dims)}")
    return _Permute.apply(input, axes)


def transpose(input, dim0, dim1):
    """Swap two dimensions, like ``torch.transpose``."""
    check_float_array("transpose", "input", input)
    a = check_dim("transpose", "dim0", dim0, input.ndim)
    b = check_dim("transpose", "dim1", dim1, input.ndim)
    axes = list(range(input.ndim))
    if axes:  # a 0-d input has none to swap: PyTorch returns it as it is
        axes[a], axes[b] = axes[b], axes[a]
    return _Permute.apply(input, tuple(axes))


@quiet("forward")
class _Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype), None


# --- products and indexing ----------------------------------------------------------------

@quiet("forward", "backward")
class _Matmul(Function):
    operator_name = "matmul"

    @staticmethod
    def forward(ctx, input, other):
        ctx.save_for_backward(input, other)
        return input @ other

    @staticmethod
    def backward(ctx, grad):
        input, other = ctx.saved
        grad_input = grad @ other.T if ctx.needs_input_grad[0] else None
        grad_other = input.T @ grad if ctx.needs_input_grad[1] else None
        return grad_input, grad_other


def matmul(input, other):
    """Matrix product of two 2-D float arrays of one dtype."""
    check_float_array("matmul", "input", input, ndim=2)
    check_float_array("matmul", "other", other, ndim=2)
    if input.shape[1] != other.shape[0]:
        raise ValueError(f"matmul: input of shape {input.shape} and other of shape "
                         f"{other.shape} cannot be multiplied ({input.shape[1]} != "
                         f"{other.shape[0]})")
    if input.dtype != other.dtype:
        raise TypeError(f"matmul: input and other must share one dtype, got "
                        f"{input.dtype} and {other.dtype}")
    return _Matmul.apply(input, other)


@quiet("forward", "backward")
class _Linear(Function):
    operator_name = "linear"

    @staticmethod
    def forward(ctx, input, weight, bias):
        ctx.save_for_backward(input, weight)
        out = input @ weight.T
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved
        needs = ctx.needs_input_grad
        grad_input = grad @ weight if needs[0] else None
        grad_weight = grad.T @ input if needs[1] else None
        grad_bias = grad.sum(axis=0) if needs[2] else None
        return grad_input, grad_weight, grad_bias


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` like ``torch.nn.functional.linear``.

    Parameters
    ----------
    input : ndarray of shape (N, in_features)
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,), optional
        All three of one dtype, float32 or float64 (PyTorch refuses a mix).

    Returns
    -------
    ndarray of shape (N, out_features)
    """
    check_float_array("linear", "input", input, ndim=2)
    check_float_array("linear", "weight", weight, ndim=2)
    if weight.shape[1] != input.shape[1]:
        raise ValueError(f"linear: weight has {weight.shape[1]} input features but input "
                         f"has {input.shape[1]}")
    if bias is not None:
        check_float_array("linear", "bias", bias, ndim=1)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"linear: bias has {bias.shape[0]} entries but weight has "
                             f"{weight.shape[0]} output features")
    check_same_dtype("linear", input=input, weight=weight, bias=bias)
    return _Linear.apply(input, weight, bias)


@quiet("backward")
class _GetItem(Function):
    operator_name = "getitem"

    @staticmethod
    def forward(ctx, x, index):
        index = _frozen_index(index)
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return np.asarray(x[index])

    @staticmethod
    def backward(ctx, grad):
        full = np.zeros(ctx.shape, ctx.dtype)
        np.add.at(full, ctx.index, grad)
        return full, None


def _frozen_index(index):
    """``index`` with copies of its arrays and lists, which the caller could change in
    place before the pullback: the backward must scatter to the forward's positions."""
    return (tuple(_frozen_part(p) for p in index) if isinstance(index, tuple)
            else _frozen_part(index))


def _frozen_part(part):
    if isinstance(part, np.ndarray):
        return part.copy()
    if isinstance(part, list):
        # NumPy's own reading of a list index: an array (an empty list gives intp)
        array = np.asarray(part)
        return array if array.size else array.astype(np.intp)
    return part


def getitem(input, index):
    """``input[index]`` (basic or advanced indexing); repeated indices add up."""
    check_float_array("getitem", "input", input)
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        constant_of(part, "getitem", "index")
    return _GetItem.apply(input, index)


# --- the methods of Traced ----------------------------------------------------------------

def _numpy_reduction(name, operator):
    """A method with NumPy's and PyTorch's names: ``t.sum(axis=0)``, ``t.sum(dim=0)``;
    ``np.sum(t)`` calls it with ``dtype`` and ``out``, which must stay None."""

    def method(self, axis=None, dtype=None, out=None, keepdims=False, *, dim=None,
               keepdim=None, **unsupported):
        if dtype is not None or out is not None or unsupported:
            given = [k for k, v in (("dtype", dtype), ("out", out)) if v is not None]
            raise TypeError(f"{name}: a traced value supports only axis/dim and "
                            f"keepdims/keepdim, got {given + sorted(unsupported)}")
        if dim is not None:
            axis = dim
        return operator(self, axis, keepdims if keepdim is None else keepdim)

    method.__name__ = name
    method.__doc__ = f"Differentiable ``{name}``, see :func:`fancydl.{operator.__name__}`."
    return method


def _reshape_method(self, *shape, order="C"):
    if order != "C":
        raise TypeError(f"reshape: a traced value supports order='C' only, got {order!r}")
    return reshape(self, shape[0] if len(shape) == 1 else shape)


def _transpose_method(self, *axes):
    """NumPy's ``transpose``: no axes reverses them, else a permutation."""
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        axes = axes[0]
    return permute(self, tuple(reversed(range(self.ndim))) if not axes else tuple(axes))


def _astype_method(self, dtype, copy=True):
    dtype = np.dtype(dtype)
    if dtype not in _FLOATS:
        raise TypeError(f"astype: a traced value can only be cast to float32 or float64 "
                        f"(a cast to {dtype} would cut its gradient)")
    return _Cast.apply(self, dtype) if dtype != self.dtype else self


install_operators(
    methods={
        "__add__": lambda self, other: add(self, other),
        "__radd__": lambda self, other: add(other, self),
        "__sub__": lambda self, other: sub(self, other),
        "__rsub__": lambda self, other: sub(other, self),
        "__mul__": lambda self, other: mul(self, other),
        "__rmul__": lambda self, other: mul(other, self),
        "__truediv__": lambda self, other: div(self, other),
        "__rtruediv__": lambda self, other: div(other, self),
        "__pow__": lambda self, other: pow(self, other),
        "__rpow__": lambda self, other: pow(other, self),
        "__matmul__": lambda self, other: matmul(self, other),
        "__rmatmul__": lambda self, other: matmul(other, self),
        "__neg__": neg,
        "__pos__": lambda self: self,
        "__getitem__": getitem,
        "sum": _numpy_reduction("sum", sum),
        "mean": _numpy_reduction("mean", mean),
        "max": _numpy_reduction("max", amax),
        "min": _numpy_reduction("min", amin),
        "reshape": _reshape_method,
        "flatten": lambda self: reshape(self, -1),
        "ravel": lambda self: reshape(self, -1),
        "transpose": _transpose_method,
        "permute": lambda self, *dims: permute(
            self, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list))
            else dims),
        "T": property(lambda self: _transpose_method(self)),
        "astype": _astype_method,
    },
    ufuncs={np.add: add, np.subtract: sub, np.multiply: mul, np.true_divide: div,
            np.power: pow, np.matmul: matmul, np.negative: neg, np.positive: lambda x: x,
            np.exp: exp, np.log: log, np.tanh: tanh},
)
