"""The few elementwise and shape operators that composition needs.

They make ``fancydl.vjp`` work on whole small networks, e.g.
``lambda x, w: fancydl.relu(fancydl.conv2d(x, w)).mean()``. Binary operators broadcast
like NumPy; their backward sums the gradient back to each input's shape.
"""

from __future__ import annotations

import numpy as np

from .autodiff import Function, Traced, value_of
from .validation import check_float_array

__all__ = ["add", "sub", "mul", "div", "neg", "exp", "log", "relu", "sigmoid", "tanh",
           "sum", "mean", "reshape", "flatten", "matmul", "linear", "getitem"]


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach it.

    Parameters
    ----------
    grad : ndarray
        Gradient of a broadcast result.
    shape : tuple of int
        Shape of the input that was broadcast.

    Returns
    -------
    ndarray of shape ``shape``
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def _as_operand(x, other):
    """Turn a Python number into an array of the other operand's dtype."""
    if isinstance(x, (np.ndarray, Traced)):
        return x
    dtype = value_of(other).dtype if isinstance(other, (np.ndarray, Traced)) else None
    return np.asarray(x, dtype=dtype)


class _Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(grad, sb)


class _Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(-grad, sb)


class _Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        ga = unbroadcast(grad * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(grad * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class _Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        ga = unbroadcast(grad / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


def add(input, other):
    """``input + other`` with broadcasting."""
    return _Add.apply(_as_operand(input, other), _as_operand(other, input))


def sub(input, other):
    """``input - other`` with broadcasting."""
    return _Sub.apply(_as_operand(input, other), _as_operand(other, input))


def mul(input, other):
    """``input * other`` with broadcasting."""
    return _Mul.apply(_as_operand(input, other), _as_operand(other, input))


def div(input, other):
    """``input / other`` with broadcasting."""
    return _Div.apply(_as_operand(input, other), _as_operand(other, input))


class _Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return (-grad,)


class _Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return (grad * y,)


class _Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return (grad / x,)


class _Relu(Function):
    @staticmethod
    def forward(ctx, x):
        positive = ~(x <= 0)  # NaN counts as positive: it propagates, as in PyTorch
        ctx.save_for_backward(positive)
        return np.where(positive, x, np.zeros((), x.dtype))

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved
        return (np.where(positive, grad, np.zeros((), grad.dtype)),)


class _Sigmoid(Function):
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


class _Tanh(Function):
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


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(d % ndim for d in dims)


class _Sum(Function):
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        ctx.shape, ctx.axes = x.shape, _axes(dim, x.ndim)
        return np.asarray(x.sum(axis=ctx.axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, grad):
        grad = np.expand_dims(grad, ctx.axes) if grad.ndim < len(ctx.shape) else grad
        return (np.broadcast_to(grad, ctx.shape).copy(),)


def sum(input, dim=None, keepdim=False):
    """Sum over ``dim`` (an int, a tuple, or None for all), like ``torch.sum``."""
    return _Sum.apply(input, dim=dim, keepdim=keepdim)


def mean(input, dim=None, keepdim=False):
    """Mean over ``dim`` (an int, a tuple, or None for all), like ``torch.mean``."""
    count = int(np.prod([input.shape[a] for a in _axes(dim, input.ndim)]))
    return div(sum(input, dim, keepdim), float(count))


class _Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape), None


def reshape(input, shape):
    """``input.reshape(shape)``."""
    return _Reshape.apply(input, tuple(shape) if not isinstance(shape, int) else shape)


def flatten(input, start_dim=1):
    """Merge the dimensions from ``start_dim`` on, like ``torch.flatten(x, start_dim)``."""
    return reshape(input, tuple(input.shape[:start_dim]) + (-1,))


class _Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul: expects two 2-D arrays, got shapes {a.shape} "
                             f"and {b.shape}")
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        ga = grad @ b.T if ctx.needs_input_grad[0] else None
        gb = a.T @ grad if ctx.needs_input_grad[1] else None
        return ga, gb


def matmul(input, other):
    """Matrix product of two 2-D arrays."""
    return _Matmul.apply(input, other)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` like ``torch.nn.functional.linear``.

    Parameters
    ----------
    input : ndarray of shape (N, in_features)
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,), optional

    Returns
    -------
    ndarray of shape (N, out_features)
    """
    check_float_array("linear", "input", input, ndim=2)
    check_float_array("linear", "weight", weight, ndim=2)
    if weight.shape[1] != input.shape[1]:
        raise ValueError(f"linear: weight has {weight.shape[1]} input features but input "
                         f"has {input.shape[1]}")
    out = matmul(input, _Transpose.apply(weight))
    return out if bias is None else add(out, bias)


class _Transpose(Function):
    @staticmethod
    def forward(ctx, x):
        return x.T

    @staticmethod
    def backward(ctx, grad):
        return (grad.T,)


class _GetItem(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return np.asarray(x[index])

    @staticmethod
    def backward(ctx, grad):
        full = np.zeros(ctx.shape, ctx.dtype)
        np.add.at(full, ctx.index, grad)
        return full, None


def getitem(input, index):
    """``input[index]`` (basic or advanced indexing); repeated indices add up."""
    return _GetItem.apply(input, index)
