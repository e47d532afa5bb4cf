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
and updates ``running_mean``/``running_var`` *in place* with the unbiased one (all
arguments are checked first, read-only buffers included, so a call that raises changes
nothing). Empty inputs give PyTorch's results: an empty output, zero weight and bias
gradients, untouched running statistics. Deliberate differences: a negative ``eps`` is
refused everywhere (PyTorch checks it only in batch_norm); in evaluation mode the
running statistics are differentiable (PyTorch refuses to differentiate them);
``layer_norm`` also takes an int ``normalized_shape``, as ``torch.nn.LayerNorm`` does,
or a 1-D integer array (the NumPy spelling of a shape; PyTorch takes its torch.Size);
``BatchNorm2d`` counts a batch in ``num_batches_tracked`` only when the call succeeds
(PyTorch counts it before checking); group norm with empty groups gives a zero weight
gradient (PyTorch: NaN), and instance norm of an empty batch with a weight gives the
empty result (PyTorch raises an IndexError).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from functools import partial
from typing import NamedTuple

import numpy as np

from .autodiff import Function, Traced, value_of
from .parallel import halves
from .rows import sample_rows
from .validation import check_float_array, check_int, check_real, check_same_dtype

__all__ = ["batch_norm", "instance_norm", "group_norm", "layer_norm", "BatchNorm2d",
           "fold_batch_norm"]


# --- the shared core ----------------------------------------------------------------

#: NumPy's ufunc buffer size (in elements) while a normalization runs. Its elementwise
#: passes broadcast one statistic along rows of H·W values, and NumPy's default buffer
#: (8192) made such passes over rows shorter than the buffer about 2 times slower:
#: ``x - mean`` on (1024, 2048) float32 took 0.41 ms, against 0.21 ms with 1024.
ROW_BUFFER = 1024


@contextlib.contextmanager
def _numerics():
    """NaN and inf propagate as in PyTorch (no warning), with the ufunc buffer at
    :data:`ROW_BUFFER`; both are restored on exit. (With NumPy 2 both are context
    variables, and :func:`fancydl.parallel.halves` runs its worker in the caller's
    context, so they reach the worker thread too.)"""
    with np.errstate(divide="ignore", invalid="ignore"):
        previous = np.setbufsize(ROW_BUFFER)
        try:
            yield
        finally:
            np.setbufsize(previous)


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
    def inner_axes(self):
        """Axes of a group along which the weight is constant: all of them for batch
        and instance norm, the spatial ones for group norm, none for layer norm."""
        return tuple(a for a in self.axes if a in self.param_free_axes)


def _sum_of_products(axes, *arrays):
    """``sum(prod(arrays))`` over ``axes``, keeping them as size 1, without temporaries:
    one ``einsum``, or a matrix product for a dot product over trailing axes."""
    first = arrays[0]
    kept_shape = first.shape[:first.ndim - len(axes)]
    if (len(arrays) == 2 and sorted(axes) == list(range(len(kept_shape), first.ndim))
            and all(a.shape == first.shape and a.flags.c_contiguous for a in arrays)):
        # One dot product per group, over trailing axes: as a matrix product (1, M) @
        # (M, 1) it ran 2.3 times faster than einsum's sum of products.
        length = math.prod(first.shape[len(kept_shape):])
        rows, columns = (a.reshape(kept_shape + (1, length)) for a in arrays)
        dots = np.matmul(rows, columns.swapaxes(-1, -2))
        return dots.reshape(kept_shape + (1,) * len(axes))
    letters = "abcdefgh"[:first.ndim]
    kept = "".join(c for i, c in enumerate(letters) if i not in axes)
    total = np.einsum(",".join([letters] * len(arrays)) + "->" + kept, *arrays)
    keepdims = tuple(1 if i in axes else n for i, n in enumerate(arrays[0].shape))
    return total.reshape(keepdims)


def _sum(axes, *arrays):
    """:func:`_sum_of_products`, computed on the two halves and combined."""
    parts = halves(lambda *half: _sum_of_products(axes, *half), *arrays)
    if len(parts) == 1:
        return parts[0]
    return parts[0] + parts[1] if 0 in axes else np.concatenate(parts)


def _new(fill, like, *arrays):
    """A new array like ``like``, ``fill(out_half, *halves_of_arrays)`` on each half."""
    out = np.empty_like(like)
    halves(fill, *sample_rows(out, *arrays))
    return out


def _running_average(buffer, statistic, momentum, correction=1.0):
    """``(1 - momentum) * buffer + momentum * correction * statistic``, a new array.

    ``statistic`` holds one value per normalized group; groups of the same channel
    (instance norm: one per sample) are averaged first.
    """
    groups_per_channel = statistic.size // buffer.size
    channel_value = statistic.reshape(-1, buffer.size).sum(axis=0) / groups_per_channel
    channel_value *= correction
    return (buffer * (1 - momentum) + momentum * channel_value).astype(buffer.dtype,
                                                                      copy=False)


def _subtract(out, x, mean):
    """``out = x - mean`` (one half)."""
    np.subtract(x, mean, out=out)


def _multiply(out, x, factor):
    """``out = x * factor`` (one half)."""
    np.multiply(x, factor, out=out)


def _affine(out, x, scale, shift):
    """``out = x * scale + shift`` (one half), in place."""
    np.multiply(x, scale, out=out)
    out += shift


def _input_gradient(out, g, centered, g_factor, slope, offset, factored):
    """The input gradient ``g_factor * g - slope * centered - offset`` (one half),
    written into ``out`` in place.

    ``factored``: ``slope`` and ``offset`` are given in the factored form, the result
    being ``g_factor * (g - slope * centered - offset)``: four in-place passes and no
    temporary (otherwise one temporary for ``g * g_factor``). It is the hot spot of
    training, where memory traffic is the cost.
    """
    np.multiply(centered, -slope, out=out)
    if factored:
        out += g
        out -= offset
        out *= g_factor
    else:
        out -= offset
        out += g * g_factor


class _Normalize(Function):
    """``y = weight * (x - mean) / sqrt(var + eps) + bias`` on ``layout.view``.

    With ``use_input_stats`` the mean and biased variance are the input's own (and the
    running buffers, when given, are updated in place); otherwise the running buffers
    are the statistics, and they are differentiable. Every pass over the data goes
    through :func:`_sum` (sums) or :func:`_new` (elementwise), which work on two halves
    at once; when each sample has its own statistics (:func:`_per_sample`), each half
    runs the whole forward or backward pass instead.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, layout, use_input_stats,
                momentum, eps):
        xv = x.reshape(layout.view)
        gamma = None if weight is None else weight.reshape(layout.param_view)
        beta = None if bias is None else bias.reshape(layout.param_view)
        ctx.layout, ctx.use_input_stats, ctx.shape = layout, use_input_stats, x.shape
        ctx.param_shape = next((p.shape for p in (weight, bias) if p is not None), None)
        with _numerics():
            if use_input_stats and _per_sample(layout):
                ctx.mark_zero_gradient(3, 4)  # the output does not read running stats
                centered, mean, var, inv_std, y = _normalize_per_sample(
                    layout, xv, gamma, beta, eps, any(ctx.needs_input_grad))
                if running_mean is not None and running_mean.size > 0:
                    _update_running(layout, running_mean, running_var, mean, var, momentum)
            elif use_input_stats:
                ctx.mark_zero_gradient(3, 4)  # the output does not read running stats
                centered, mean, var = _batch_statistics(layout, xv)
                if running_mean is not None and running_mean.size > 0 and layout.count:
                    _update_running(layout, running_mean, running_var, mean, var, momentum)
                inv_std = 1 / np.sqrt(var + eps)
                scale = inv_std if gamma is None else inv_std * gamma
                fill, factors = (_multiply, (scale,)) if beta is None else \
                    (_affine, (scale, beta))
                if any(ctx.needs_input_grad):
                    y = _new(fill, xv, centered, *factors)
                else:  # no pullback needs ``centered``: the output overwrites it
                    halves(fill, *sample_rows(centered, centered, *factors))
                    y = centered
            else:  # fixed statistics: y = x * scale + shift, affine in x (PyTorch's form)
                mean = running_mean.reshape(layout.param_view)
                inv_std = 1 / np.sqrt(running_var.reshape(layout.param_view) + eps)
                scale = inv_std if gamma is None else inv_std * gamma
                shift = -mean * scale if beta is None else beta - mean * scale
                y = _new(_affine, xv, xv, scale, shift)
                needs = ctx.needs_input_grad
                # Only the gradients of weight and running_var read x - mean.
                centered = _new(_subtract, xv, xv, mean) if needs[1] or needs[4] else None
        ctx.save_for_backward(centered, inv_std, gamma)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        g = grad.reshape(ctx.layout.view)
        with _numerics():
            if ctx.use_input_stats and _per_sample(ctx.layout):
                grad_x, grad_weight, grad_bias = _per_sample_backward(ctx, g)
                grad_mean = grad_var = None
            elif ctx.use_input_stats:
                grad_x, grad_weight, grad_bias = _batch_statistics_backward(ctx, g)
                grad_mean = grad_var = None
            else:
                grad_x, grad_weight, grad_bias, grad_mean, grad_var = \
                    _fixed_statistics_backward(ctx, g)
        return (None if grad_x is None else grad_x.reshape(ctx.shape),
                None if grad_weight is None else grad_weight.reshape(ctx.param_shape),
                None if grad_bias is None else grad_bias.reshape(ctx.param_shape),
                None if grad_mean is None else grad_mean.reshape(-1),
                None if grad_var is None else grad_var.reshape(-1),
                None, None, None, None)


def _batch_statistics(layout, xv):
    """Mean and biased variance of every group, in two passes (the second over the
    centered values, which the backward pass keeps: no cancellation, and no user array
    to guard).

    Returns ``(centered, mean, var)``. An empty group gets mean 0 and variance 1: the
    output is empty anyway and every gradient sum over it is 0, as in PyTorch's
    batch_norm.
    """
    count = layout.count
    if count == 0:
        stat_shape = tuple(1 if a in layout.axes else n for a, n in enumerate(layout.view))
        return xv.copy(), np.zeros(stat_shape, xv.dtype), np.ones(stat_shape, xv.dtype)
    mean = _sum(layout.axes, xv) / count
    centered = _new(_subtract, xv, xv, mean)
    return centered, mean, _sum(layout.axes, centered, centered) / count


def _update_running(layout, running_mean, running_var, mean, var, momentum):
    """Move the running statistics towards this batch's, in place (unbiased variance).

    Both new values are computed before either buffer is written: an error can never
    leave one updated and not the other. An empty batch of instance norm gives NaN,
    as in PyTorch.
    """
    count = layout.count
    new_mean = _running_average(running_mean, mean, momentum)
    new_var = _running_average(running_var, var, momentum, count / (count - 1))
    running_mean[...] = new_mean
    running_var[...] = new_var


def _batch_statistics_backward(ctx, g):
    """Gradients of (x, weight, bias) when the batch's statistics normalize x.

    With ``g_hat = weight * g``, ``x_hat = centered * inv_std`` and means over each
    group of ``count`` values::

        dx = inv_std * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat))
           = g_factor * g - slope * centered - offset

    The data-sized work is two sums (of ``g`` and ``g * centered``) over the axes of a
    group along which the weight is constant (:attr:`_Layout.inner_axes`), then one
    elementwise pass for ``dx``; the weight enters afterwards, on the small partial
    sums. Layer norm, whose weight varies along every normalized axis, sums with the
    weight directly.
    """
    centered, inv_std, gamma = ctx.saved
    layout, needs, count = ctx.layout, ctx.needs_input_grad, ctx.layout.count
    inner = layout.inner_axes
    outer = tuple(a for a in layout.axes if a not in inner)
    rest = tuple(a for a in layout.param_free_axes if a not in inner)
    natural = gamma is None or not outer  # the weight is constant over a group
    if inner:
        sum_g, sum_gc = _sum(inner, g), _sum(inner, g, centered)
        grad_weight = (sum_gc * inv_std).sum(axis=rest) if needs[1] else None
        grad_bias = sum_g.sum(axis=rest) if needs[2] else None
        hat_g, hat_gc = _group_sums(sum_g, sum_gc, gamma, outer, natural)
    else:  # layer norm
        weighted = () if natural else (gamma,)
        hat_g, hat_gc = _sum(outer, g, *weighted), _sum(outer, g, centered, *weighted)
        grad_weight = _sum(layout.param_free_axes, g, centered, inv_std) if needs[1] \
            else None
        grad_bias = _sum(layout.param_free_axes, g) if needs[2] else None
    if not needs[0]:
        return None, grad_weight, grad_bias
    g_factor, slope, offset, factored = _input_gradient_factors(
        hat_g, hat_gc, inv_std, gamma, count, natural, bool(inner))
    grad_x = _new(partial(_input_gradient, factored=factored), g, g, centered, g_factor,
                  slope, offset)
    return grad_x, grad_weight, grad_bias


def _group_sums(sum_g, sum_gc, gamma, outer, natural):
    """Sums of ``g_hat`` and ``g_hat * centered`` over each group, from the sums of
    ``g`` and ``g * centered`` over its inner axes (where the weight is constant)."""
    if not natural:
        sum_g, sum_gc = gamma * sum_g, gamma * sum_gc
    return sum_g.sum(axis=outer, keepdims=True), sum_gc.sum(axis=outer, keepdims=True)


def _input_gradient_factors(hat_g, hat_gc, inv_std, gamma, count, natural, has_inner):
    """``(g_factor, slope, offset, factored)`` for :func:`_input_gradient`, from the
    group sums of ``g_hat`` and ``g_hat * centered``."""
    g_factor = inv_std if gamma is None else gamma * inv_std
    if natural:  # dx = g_factor * (g - mean(g) - x_hat * mean(g * x_hat))
        return g_factor, inv_std * inv_std * hat_gc / count, hat_g / count, True
    slope, offset = inv_std ** 3 * hat_gc / count, inv_std * hat_g / count
    # Group norm: divide the small factors by the weight, unless it has a zero.
    factored = has_inner and bool(np.all(np.isfinite(g_factor) & (g_factor != 0)))
    if factored:
        slope, offset = slope / g_factor, offset / g_factor
    return g_factor, slope, offset, factored


# --- statistics of one sample (group and instance norm): whole passes per half --------

def _per_sample(layout):
    """Whether each sample has its own statistics and the weight is constant along
    some axis of a group (group and instance norm, not empty). Then each half of the
    batch runs a whole forward or backward pass on one thread
    (:func:`fancydl.parallel.halves`): two hand-offs per training step instead of
    one per pass over the data (eight)."""
    return 0 not in layout.axes and bool(layout.inner_axes) and layout.count > 0


def _normalize_per_sample(layout, xv, gamma, beta, eps, keep_centered):
    """Statistics (two passes: mean, then the variance of the centered values) and
    output of every group, one half of the batch per thread.

    Returns ``(centered, mean, var, inv_std, y)``; ``centered`` is None unless
    ``keep_centered`` (the output then overwrites it).
    """
    count = layout.count
    centered = np.empty_like(xv)
    y = np.empty_like(xv) if keep_centered else centered

    def one_half(x, centered, y):
        mean = _sum_of_products(layout.axes, x) / count
        np.subtract(x, mean, out=centered)
        var = _sum_of_products(layout.axes, centered, centered) / count
        inv_std = 1 / np.sqrt(var + eps)
        _multiply(y, centered, inv_std if gamma is None else inv_std * gamma)
        if beta is not None:  # the same for every sample: one long row (sample_rows)
            rows, shift = sample_rows(y, beta)
            rows += shift
        return mean, var, inv_std

    parts = halves(one_half, xv, centered, y)
    mean, var, inv_std = (np.concatenate(part) for part in zip(*parts))
    return (centered if keep_centered else None), mean, var, inv_std, y


def _per_sample_backward(ctx, g):
    """:func:`_batch_statistics_backward` for :func:`_per_sample` layouts: each half
    of the batch computes its sums and its input gradient on one thread; the weight
    and bias gradients add the halves' sums."""
    centered, inv_std, gamma = ctx.saved
    layout, needs = ctx.layout, ctx.needs_input_grad
    inner = layout.inner_axes
    outer = tuple(a for a in layout.axes if a not in inner)
    natural = gamma is None or not outer
    grad_x = np.empty_like(g) if needs[0] else None

    def one_half(g, centered, inv_std, *out):
        sum_g, sum_gc = _sum_of_products(inner, g), _sum_of_products(inner, g, centered)
        if out:
            hat_g, hat_gc = _group_sums(sum_g, sum_gc, gamma, outer, natural)
            g_factor, slope, offset, factored = _input_gradient_factors(
                hat_g, hat_gc, inv_std, gamma, layout.count, natural, True)
            _input_gradient(out[0], g, centered, g_factor, slope, offset, factored)
        return sum_g, sum_gc

    parts = halves(one_half, g, centered, inv_std, *([grad_x] if needs[0] else []))
    sum_g, sum_gc = (np.concatenate(part) for part in zip(*parts))
    rest = tuple(a for a in layout.param_free_axes if a not in inner)
    grad_weight = (sum_gc * inv_std).sum(axis=rest) if needs[1] else None
    grad_bias = sum_g.sum(axis=rest) if needs[2] else None
    return grad_x, grad_weight, grad_bias


def _fixed_statistics_backward(ctx, g):
    """Gradients of (x, weight, bias, running_mean, running_var) in evaluation, where
    ``y = weight * (x - mean) * inv_std + bias`` is affine in x."""
    centered, inv_std, gamma = ctx.saved
    needs, free = ctx.needs_input_grad, ctx.layout.param_free_axes
    grad_x = grad_mean = grad_var = grad_weight = grad_bias = None
    if needs[0] or needs[3] or needs[4]:
        grad_x = _new(_multiply, g, g, inv_std if gamma is None else gamma * inv_std)
        if needs[3]:
            grad_mean = -_sum(free, grad_x)
        if needs[4]:
            grad_var = _sum(free, grad_x, centered) * (-0.5 * inv_std * inv_std)
    if needs[1]:
        grad_weight = _sum(free, g, centered) * inv_std
    if needs[2]:
        grad_bias = _sum(free, g)
    return (grad_x if needs[0] else None), grad_weight, grad_bias, grad_mean, grad_var


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


def _check_running(op, running_mean, running_var, channels, input, required,
                   updated=False):
    """Check the running statistics; ``updated``: they will be written in place."""
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
    if updated and running_mean is not None:
        for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
            if not value_of(buffer).flags.writeable:
                raise ValueError(f"{op}: {name} must be writeable (the running statistics "
                                 f"are updated in place), got a read-only array")


def _check_eps(op, eps, strictly_positive=False):
    if strictly_positive:
        return check_real(op, "eps", eps, 0.0, inclusive=False)
    return check_real(op, "eps", eps, 0.0)


def _check_momentum(op, momentum):
    """Any real number, NaN included: PyTorch checks nothing, and a NaN momentum makes
    the running statistics NaN there too."""
    if isinstance(momentum, numbers.Real) and not isinstance(momentum, bool) \
            and math.isnan(momentum):
        return float(momentum)
    return check_real(op, "momentum", momentum)


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
        Keras and CS231n call ``1 - momentum`` the momentum). Any real number is taken,
        as PyTorch does (a NaN makes the running statistics NaN).
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
    _check_running(op, running_mean, running_var, channels, input, required=not training,
                   updated=training)
    _check_vector(op, "weight", weight, channels, input)
    _check_vector(op, "bias", bias, channels, input)
    momentum = _check_momentum(op, momentum)
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
                   required=not use_input_stats, updated=use_input_stats)
    _check_vector(op, "weight", weight, channels, input)
    _check_vector(op, "bias", bias, channels, input)
    momentum = _check_momentum(op, momentum)
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
    elif (isinstance(normalized_shape, np.ndarray) and normalized_shape.ndim == 1
          and np.issubdtype(normalized_shape.dtype, np.integer)):
        normalized_shape = tuple(normalized_shape.tolist())  # a shape, as NumPy takes it
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
    normalized_shape : int, tuple of int or 1-D integer ndarray
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
        self.momentum = None if momentum is None else _check_momentum(op, momentum)
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
        counted = self.training and self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if counted and self.momentum is None:  # cumulative moving average
            factor = 1.0 / (self.num_batches_tracked + 1)
        use_batch_stats = self.training or self.running_mean is None
        tracked = not self.training or self.track_running_stats
        out = batch_norm(input, self.running_mean if tracked else None,
                         self.running_var if tracked else None,
                         self.weight if weight is None else weight,
                         self.bias if bias is None else bias,
                         use_batch_stats, factor, self.eps)
        if counted:  # only a call that did not raise counts (PyTorch counts it first)
            self.num_batches_tracked += 1
        return out

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
