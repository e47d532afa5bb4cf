"""Batch normalization and its family: layer, group and instance normalization.

All four operators are one computation on a reshaped view of the input::

    x_hat = (x - mean) / sqrt(var + eps),    y = weight * x_hat + bias

with the mean and the (biased) variance taken over some axes of the view. They differ
only in the view and the axes (a :class:`_Layout`):

==============  =================  ===============  =====================
operator        view of the input  averaged over    weight / bias shape
==============  =================  ===============  =====================
batch_norm      (N, C, S)          N and S          (C,)
instance_norm   (N, C, S)          S                (C,)
group_norm      (N, G, C/G, S)     C/G and S        (C,)
layer_norm      (B, D)             D                normalized_shape
==============  =================  ===============  =====================

(S is the product of the spatial sizes, D of ``normalized_shape``, B of the rest.)
One :class:`Function`, :class:`_Normalize`, computes every forward pass and every
backward pass in the compact closed form derived in the book's batch-normalization
chapter (M values per statistic, g the upstream gradient, g_hat = weight * g)::

    dx = (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) / sqrt(var + eps)
    dweight = sum(g * x_hat),   dbias = sum(g)

Semantics, argument order and defaults are those of ``torch.nn.functional``; in
particular batch normalization in training normalizes with the biased batch variance
and updates ``running_mean``/``running_var`` *in place* with the unbiased one. Three
deliberate differences: a negative ``eps`` is refused everywhere (PyTorch checks it
only in batch_norm); in evaluation mode the running statistics are differentiable
(PyTorch refuses to differentiate them); and ``layer_norm`` also takes an int
``normalized_shape``, as ``torch.nn.LayerNorm`` does.
"""

from __future__ import annotations

import math
import numbers
from functools import partial
from typing import NamedTuple

import numpy as np

from .autodiff import Function, Traced
from .parallel import halves
from .validation import check_float_array, check_int, check_real, check_same_dtype

__all__ = ["batch_norm", "instance_norm", "group_norm", "layer_norm", "BatchNorm2d",
           "fold_batch_norm"]


# --- the shared core ----------------------------------------------------------------

class _Layout(NamedTuple):
    """How one normalization sees its input.

    Attributes
    ----------
    view : tuple of int
        The shape the input is reshaped to.
    axes : tuple of int
        The axes of ``view`` that one mean and one variance are taken over.
    param_view : tuple of int
        The shape weight, bias and running statistics take to broadcast against
        ``view`` (size 1 on every axis they do not vary along).
    """

    view: tuple
    axes: tuple
    param_view: tuple

    @property
    def count(self):
        """Number of values behind each mean and variance."""
        return math.prod(self.view[a] for a in self.axes)

    @property
    def param_free_axes(self):
        """Axes along which weight and bias are constant (their gradients sum there)."""
        return tuple(a for a, n in enumerate(self.param_view) if n == 1)

    @property
    def weight_constant_per_group(self):
        """True when one group of normalized values shares one weight (batch and
        instance norm): then the weight factors out of the input gradient."""
        return set(self.axes) <= set(self.param_free_axes)


def _einsum_sum(axes, *arrays):
    """``sum(prod(arrays))`` over ``axes``, keeping them as size 1, without temporaries."""
    letters = "abcdefgh"[:arrays[0].ndim]
    kept = "".join(c for i, c in enumerate(letters) if i not in axes)
    total = np.einsum(",".join([letters] * len(arrays)) + "->" + kept, *arrays)
    keepdims = tuple(1 if i in axes else n for i, n in enumerate(arrays[0].shape))
    return total.reshape(keepdims)


def _sum(axes, *arrays):
    """:func:`_einsum_sum`, computed on the two halves and combined."""
    parts = halves(lambda *half: _einsum_sum(axes, *half), *arrays)
    if len(parts) == 1:
        return parts[0]
    return parts[0] + parts[1] if 0 in axes else np.concatenate(parts)


def _new(fill, like, *arrays):
    """A new array like ``like``, ``fill(out_half, *halves_of_arrays)`` on each half."""
    out = np.empty_like(like)
    halves(fill, out, *arrays)
    return out


def _update_running(buffer, statistic, momentum, correction=1.0):
    """``buffer <- (1 - momentum) * buffer + momentum * correction * statistic``, in place.

    ``statistic`` holds one value per normalized group; groups of the same channel
    (instance norm: one per sample) are averaged first (an empty batch gives NaN, as in
    PyTorch).
    """
    groups_per_channel = statistic.size // buffer.size
    channel_value = statistic.reshape(-1, buffer.size).sum(axis=0) / groups_per_channel
    channel_value *= correction
    buffer *= 1 - momentum
    buffer += (momentum * channel_value).astype(buffer.dtype, copy=False)


def _subtract(out, x, mean):
    """``out = x - mean`` (one half)."""
    np.subtract(x, mean, out=out)


def _multiply(out, x, factor):
    """``out = x * factor`` (one half)."""
    np.multiply(x, factor, out=out)


def _affine(out, centered, scale, bias=None):
    """``out = centered * scale + bias`` (one half), in place."""
    np.multiply(centered, scale, out=out)
    if bias is not None:
        out += bias


def _input_gradient(out, g, centered, slope, mean_g, scale):
    """``out = scale * (g - mean_g - centered * slope)`` (one half), in place.

    The bracket of the input gradient with ``x_hat * mean(g * x_hat)`` written as
    ``centered * slope``, updated in place instead of building five temporaries: it
    is the hot spot of training, where memory traffic is the cost.
    """
    np.multiply(centered, -slope, out=out)
    out += g
    out -= mean_g
    out *= scale


class _Normalize(Function):
    """``y = weight * (x - mean) / sqrt(var + eps) + bias`` on ``layout.view``.

    With ``use_input_stats`` the mean and biased variance are the input's own (and the
    running buffers, when given, are updated in place); otherwise the running buffers
    are the statistics, and they are differentiable. The backward pass needs
    ``x_hat = (x - mean) * inv_std``; it is saved as its two factors, which saves one
    pass over the data in each direction. Every pass over the data goes through
    :func:`_sum` (sums) or :func:`_new` (elementwise), which work on two halves at once.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, layout, use_input_stats,
                momentum, eps):
        xv = x.reshape(layout.view)
        with np.errstate(divide="ignore", invalid="ignore"):  # empty or NaN: like torch
            if use_input_stats:
                count = layout.count
                mean = _sum(layout.axes, xv) / count
                centered = _new(_subtract, xv, xv, mean)
                var = _sum(layout.axes, centered, centered) / count
                if running_mean is not None and count > 0 and running_mean.size > 0:
                    _update_running(running_mean, mean, momentum)
                    _update_running(running_var, var, momentum, count / (count - 1))
            else:
                centered = _new(_subtract, xv, xv, running_mean.reshape(layout.param_view))
                var = running_var.reshape(layout.param_view)
            inv_std = 1 / np.sqrt(var + eps)
            scale = inv_std if weight is None else inv_std * weight.reshape(layout.param_view)
            shift = None if bias is None else bias.reshape(layout.param_view)
            y = _new(partial(_affine, bias=shift), centered, centered, scale)
        ctx.save_for_backward(centered, inv_std, weight)
        ctx.layout, ctx.use_input_stats, ctx.shape = layout, use_input_stats, x.shape
        ctx.param_shape = next((p.shape for p in (weight, bias) if p is not None), None)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        centered, inv_std, weight = ctx.saved
        layout, needs = ctx.layout, ctx.needs_input_grad
        g = grad.reshape(layout.view)
        gamma = 1 if weight is None else weight.reshape(layout.param_view)
        free, axes, count = layout.param_free_axes, layout.axes, layout.count
        grad_mean = grad_var = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if not ctx.use_input_stats:  # fixed statistics: an affine map of x
                grad_x = _new(_multiply, g, g, gamma * inv_std)
                grad_mean = -_sum(free, grad_x) if needs[3] else None
                if needs[4]:
                    grad_var = _sum(free, grad_x, centered) * (-0.5 * inv_std ** 2)
                sum_g, sum_gx = _sum(free, g), _sum(free, g, centered) * inv_std
            elif layout.weight_constant_per_group:  # batch/instance norm: gamma factors out
                sum_g, sum_gx = _sum(axes, g), _sum(axes, g, centered) * inv_std
                grad_x = _new(_input_gradient, g, g, centered, sum_gx / count * inv_std,
                              sum_g / count, gamma * inv_std)
                sum_g = sum_g.sum(axis=free, keepdims=True)
                sum_gx = sum_gx.sum(axis=free, keepdims=True)
            else:  # layer/group norm: gamma varies inside a group
                g_hat = g if weight is None else _new(_multiply, g, g, gamma)
                mean_g_hat = _sum(axes, g_hat) / count
                mean_g_hat_x = _sum(axes, g_hat, centered) * inv_std / count
                grad_x = _new(_input_gradient, g_hat, g_hat, centered, mean_g_hat_x * inv_std,
                              mean_g_hat, inv_std)
                sum_g, sum_gx = _sum(free, g), _sum(free, g, centered, inv_std)
        grad_weight = sum_gx.reshape(ctx.param_shape) if needs[1] else None
        grad_bias = sum_g.reshape(ctx.param_shape) if needs[2] else None
        return (grad_x.reshape(ctx.shape), grad_weight, grad_bias,
                None if grad_mean is None else grad_mean.reshape(-1),
                None if grad_var is None else grad_var.reshape(-1),
                None, None, None, None)


# --- argument checks ----------------------------------------------------------------

def _check_input(op, input):
    check_float_array(op, "input", input)
    if input.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dimensions (N, C, ...), got "
                         f"shape {input.shape} ({input.ndim} dimensions)")


def _check_vector(op, name, value, length, input):
    """A per-channel array (weight, bias, running statistic): None or shape (length,)."""
    if value is None:
        return
    check_float_array(op, name, value)
    if value.shape != (length,):
        raise ValueError(f"{op}: {name} must have one entry per channel, shape "
                         f"({length},), got shape {value.shape}")
    check_same_dtype(op, input=input, **{name: value})


def _check_running(op, running_mean, running_var, channels, input, required):
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be arrays or both "
                         f"be None, got running_mean "
                         f"{'None' if running_mean is None else 'an array'} and running_var "
                         f"{'None' if running_var is None else 'an array'}")
    if required and running_mean is None:
        raise ValueError(f"{op}: running_mean and running_var are required when the "
                         f"running statistics normalize the input, got None")
    _check_vector(op, "running_mean", running_mean, channels, input)
    _check_vector(op, "running_var", running_var, channels, input)


def _check_eps(op, eps, strictly_positive=False):
    if strictly_positive:
        return check_real(op, "eps", eps, 0.0, inclusive=False)
    return check_real(op, "eps", eps, 0.0)


def _check_more_than_one(op, input, count, what):
    if count == 1:
        raise ValueError(f"{op}: expected more than 1 value per {what} when using the "
                         f"input's statistics (training), got input of shape {input.shape}")


def _channel_layout(input, per_sample):
    """(N, C, S) view: statistics over N and S (batch norm) or S only (instance norm)."""
    n, c = input.shape[:2]
    view = (n, c, math.prod(input.shape[2:]))
    return _Layout(view, (2,) if per_sample else (0, 2), (1, c, 1))


# --- the operators ------------------------------------------------------------------

def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization, like ``torch.nn.functional.batch_norm``.

    Each channel is normalized with one mean and one variance over the batch and the
    spatial positions, then scaled by ``weight`` and shifted by ``bias``.

    Parameters
    ----------
    input : ndarray of shape (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W)
        float32 or float64.
    running_mean, running_var : ndarray of shape (C,) or None
        Running estimates of the population statistics. In training they are updated
        in place (when given): ``running = (1 - momentum) * running + momentum *
        batch``, with the *unbiased* batch variance for ``running_var``. In evaluation
        they normalize the input and are required.
    weight, bias : ndarray of shape (C,), optional
        The learnable scale gamma and shift beta (default 1 and 0).
    training : bool
        True: normalize with the batch statistics (biased variance). False: with the
        running statistics.
    momentum : float
        Weight of the new batch statistic in the running average (PyTorch's convention;
        Keras and CS231n call ``1 - momentum`` the momentum).
    eps : float
        Added to the variance: > 0 in training, >= 0 in evaluation (as in PyTorch).

    Returns
    -------
    ndarray of ``input``'s shape and dtype

    Notes
    -----
    Inside :func:`fancydl.vjp` every positional float array is differentiated. In
    training the output does not depend on the running buffers: their gradient is
    zero (the backward returns None). In evaluation it does, and their gradient is
    returned (PyTorch refuses to differentiate them). Inside ``vjp`` the training-mode
    update still reaches the caller's arrays: ``vjp`` wraps them without copying.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> mean, var = np.zeros(2), np.ones(2)
    >>> fancydl.batch_norm(x, mean, var, training=True).round(3)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> mean, var
    (array([0.2, 2. ]), array([ 1.1, 20.9]))
    """
    op = "batch_norm"
    _check_input(op, input)
    channels = input.shape[1]
    training = bool(training)
    _check_running(op, running_mean, running_var, channels, input, required=not training)
    _check_vector(op, "weight", weight, channels, input)
    _check_vector(op, "bias", bias, channels, input)
    momentum = check_real(op, "momentum", momentum)
    eps = _check_eps(op, eps, strictly_positive=training)
    layout = _channel_layout(input, per_sample=False)
    if training:
        _check_more_than_one(op, input, layout.count, "channel")
    return _Normalize.apply(input, weight, bias, running_mean, running_var, layout,
                            training, momentum, eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Instance normalization, like ``torch.nn.functional.instance_norm``.

    Each channel of each sample is normalized on its own, over the spatial positions
    only (Ulyanov et al.): batch normalization with a batch of one, per sample.

    Parameters
    ----------
    input : ndarray of shape (N, C, L), (N, C, H, W) or (N, C, D, H, W)
    running_mean, running_var : ndarray of shape (C,) or None
        Updated in place when ``use_input_stats`` (with the per-sample statistics
        averaged over the batch, unbiased variance); the statistics used otherwise.
    weight, bias : ndarray of shape (C,), optional
    use_input_stats : bool
        True: each instance's own statistics. False: the running ones (required).
    momentum : float
    eps : float, >= 0

    Returns
    -------
    ndarray of ``input``'s shape and dtype
    """
    op = "instance_norm"
    _check_input(op, input)
    channels = input.shape[1]
    use_input_stats = bool(use_input_stats)
    _check_running(op, running_mean, running_var, channels, input,
                   required=not use_input_stats)
    _check_vector(op, "weight", weight, channels, input)
    _check_vector(op, "bias", bias, channels, input)
    momentum = check_real(op, "momentum", momentum)
    eps = _check_eps(op, eps)
    layout = _channel_layout(input, per_sample=True)
    if use_input_stats:
        _check_more_than_one(op, input, layout.count, "instance (spatial position)")
    return _Normalize.apply(input, weight, bias, running_mean, running_var, layout,
                            use_input_stats, momentum, eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalization, like ``torch.nn.functional.group_norm``.

    The channels are split into ``num_groups`` consecutive groups; each group of each
    sample is normalized over its channels and spatial positions (Wu & He).
    ``num_groups=1`` is layer normalization over (C, ...) with per-channel weights;
    ``num_groups=C`` is instance normalization.

    Parameters
    ----------
    input : ndarray of shape (N, C, ...)
    num_groups : int
        Must divide C.
    weight, bias : ndarray of shape (C,), optional
    eps : float, >= 0

    Returns
    -------
    ndarray of ``input``'s shape and dtype
    """
    op = "group_norm"
    _check_input(op, input)
    n, channels = input.shape[:2]
    num_groups = check_int(op, "num_groups", num_groups, minimum=1)
    if channels % num_groups:
        raise ValueError(f"{op}: num_groups must divide the number of channels "
                         f"{channels}, got num_groups={num_groups}")
    _check_vector(op, "weight", weight, channels, input)
    _check_vector(op, "bias", bias, channels, input)
    eps = _check_eps(op, eps)
    per_group = channels // num_groups
    # PyTorch's check (on N * C/G * S, so a batch of several single values passes).
    _check_more_than_one(op, input, input.size // num_groups, "channel")
    layout = _Layout((n, num_groups, per_group, math.prod(input.shape[2:])), (2, 3),
                     (1, num_groups, per_group, 1))
    return _Normalize.apply(input, weight, bias, None, None, layout, True, 0.0, eps)


def _check_normalized_shape(op, normalized_shape, input):
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(
            normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if (not isinstance(normalized_shape, (tuple, list)) or not normalized_shape
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool)
                       for n in normalized_shape)):
        raise TypeError(f"{op}: normalized_shape must be an int or a non-empty tuple of "
                        f"ints, got {normalized_shape!r}")
    normalized_shape = tuple(int(n) for n in normalized_shape)
    k = len(normalized_shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise ValueError(f"{op}: input's last dimensions must equal normalized_shape "
                         f"{normalized_shape}, got input of shape {input.shape}")
    return normalized_shape


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization, like ``torch.nn.functional.layer_norm``.

    Every sample is normalized over its last ``len(normalized_shape)`` dimensions
    (Ba et al.); weight and bias are elementwise over those dimensions.

    Parameters
    ----------
    input : ndarray of shape (*, *normalized_shape)
    normalized_shape : int or tuple of int
    weight, bias : ndarray of shape ``normalized_shape``, optional
    eps : float, >= 0

    Returns
    -------
    ndarray of ``input``'s shape and dtype
    """
    op = "layer_norm"
    check_float_array(op, "input", input)
    normalized_shape = _check_normalized_shape(op, normalized_shape, input)
    for name, value in (("weight", weight), ("bias", bias)):
        if value is None:
            continue
        check_float_array(op, name, value)
        if value.shape != normalized_shape:
            raise ValueError(f"{op}: {name} must have shape normalized_shape "
                             f"{normalized_shape}, got shape {value.shape}")
        check_same_dtype(op, input=input, **{name: value})
    eps = _check_eps(op, eps)
    size = math.prod(normalized_shape)
    leading = math.prod(input.shape[:input.ndim - len(normalized_shape)])
    layout = _Layout((leading, size), (1,), (1, size))
    return _Normalize.apply(input, weight, bias, None, None, layout, True, 0.0, eps)


# --- the layer and inference-time folding --------------------------------------------

class BatchNorm2d:
    """A stateful batch-normalization layer, like ``torch.nn.BatchNorm2d``.

    Parameters
    ----------
    num_features : int
        C, the number of channels of the (N, C, H, W) input.
    eps : float
    momentum : float or None
        Weight of each new batch in the running statistics; None makes them the
        cumulative average of all batches seen (weight ``1 / num_batches_tracked``).
    affine : bool
        Learn ``weight`` (ones) and ``bias`` (zeros) of shape (C,).
    track_running_stats : bool
        Keep ``running_mean`` (zeros), ``running_var`` (ones) and
        ``num_batches_tracked``. Without them the batch statistics are used in
        evaluation too.
    dtype : numpy dtype
        Of the parameters and buffers (float32, as PyTorch's default).

    Attributes
    ----------
    training : bool
        Switched by :meth:`train` and :meth:`eval`.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> bn = fancydl.BatchNorm2d(3)
    >>> x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    >>> y = bn(x)                      # training: batch statistics, buffers updated
    >>> int(bn.num_batches_tracked)
    1
    >>> y_eval = bn.eval()(x)          # evaluation: running statistics
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        op = "BatchNorm2d"
        self.num_features = check_int(op, "num_features", num_features, minimum=1)
        self.eps = _check_eps(op, eps)
        self.momentum = None if momentum is None else check_real(op, "momentum", momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
        shape = (self.num_features,)
        self.weight = np.ones(shape, dtype) if self.affine else None
        self.bias = np.zeros(shape, dtype) if self.affine else None
        if self.track_running_stats:
            self.running_mean, self.running_var = np.zeros(shape, dtype), np.ones(shape, dtype)
            self.num_batches_tracked = 0
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self.training = True

    def train(self, mode=True):
        """Switch to training (``mode=True``) or evaluation mode; returns the layer."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Switch to evaluation mode; returns the layer."""
        return self.train(False)

    def __call__(self, input, weight=None, bias=None):
        """Normalize ``input`` (N, C, H, W).

        Parameters
        ----------
        input : ndarray or traced value of shape (N, C, H, W)
        weight, bias : optional
            Use these instead of the layer's own parameters, e.g. traced ones inside
            ``fancydl.vjp(lambda x, w, b: bn(x, w, b), x, bn.weight, bn.bias)``.

        Returns
        -------
        ndarray of ``input``'s shape
        """
        if isinstance(input, (np.ndarray, Traced)) and input.ndim != 4:
            raise ValueError(f"BatchNorm2d: input must have 4 dimensions (N, C, H, W), "
                             f"got shape {input.shape} ({input.ndim} dimensions)")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / self.num_batches_tracked
        use_batch_stats = self.training or self.running_mean is None
        tracked = not self.training or self.track_running_stats
        return batch_norm(input, self.running_mean if tracked else None,
                          self.running_var if tracked else None,
                          self.weight if weight is None else weight,
                          self.bias if bias is None else bias,
                          use_batch_stats, factor, self.eps)

    def __repr__(self):
        return (f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats})")


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, weight=None,
                    bias=None, eps=1e-5):
    """Fold an inference-mode batch normalization into the convolution before it.

    ``batch_norm(conv(x, W, b), mean, var, gamma, beta)`` equals ``conv(x, W', b')``
    with ``s = gamma / sqrt(var + eps)``, ``W' = s * W`` (per output channel) and
    ``b' = s * (b - mean) + beta``: inference then costs one convolution.

    Parameters
    ----------
    conv_weight : ndarray of shape (C_out, ...)
        A convolution's (C_out, C_in/groups, kH, kW) or a linear layer's (C_out, C_in)
        weight.
    conv_bias : ndarray of shape (C_out,) or None
    running_mean, running_var : ndarray of shape (C_out,)
    weight, bias : ndarray of shape (C_out,) or None
        The batch normalization's gamma and beta.
    eps : float, >= 0

    Returns
    -------
    folded_weight : ndarray of ``conv_weight``'s shape
    folded_bias : ndarray of shape (C_out,)
    """
    op = "fold_batch_norm"
    check_float_array(op, "conv_weight", conv_weight)
    if conv_weight.ndim < 2:
        raise ValueError(f"{op}: conv_weight must have at least 2 dimensions (C_out, "
                         f"C_in, ...), got shape {conv_weight.shape}")
    channels = conv_weight.shape[0]
    for name, value in (("conv_bias", conv_bias), ("weight", weight), ("bias", bias)):
        _check_vector(op, name, value, channels, conv_weight)
    _check_running(op, running_mean, running_var, channels, conv_weight, required=True)
    eps = _check_eps(op, eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 1 / np.sqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    folded_weight = conv_weight * scale.reshape((-1,) + (1,) * (conv_weight.ndim - 1))
    shifted = -running_mean if conv_bias is None else conv_bias - running_mean
    folded_bias = shifted * scale + (0 if bias is None else bias)
    return folded_weight, folded_bias.astype(conv_weight.dtype, copy=False)
