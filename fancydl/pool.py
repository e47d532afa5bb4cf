"""Pooling: max, average, min, adaptive, stochastic, and the detectors' ROI pooling and ROI Align.

Max unpooling, the partial inverse of max pooling, puts values back at the positions
(the "switches") that ``max_pool2d(..., return_indices=True)`` reported.

Pooling is "slide a window and reduce". The fixed-window poolings reuse the sliding-window
machinery of convolution (:mod:`fancydl.windows`): a loop over the k×k kernel offsets, each
offset one strided view of the padded input over every output position at once. The
poolings whose windows vary in size (adaptive bins, ROI bins) loop over the offsets inside
the largest window instead and mask the offsets a smaller window does not have; ROI
pooling does so per group of boxes of about the same bin size, and ROI Align, linear in
its input, is two small matrix products per box over the crop of the map it reads.

Semantics are PyTorch's (``torch.nn.functional``) and torchvision's (``torchvision.ops``
for ``roi_pool`` and ``roi_align``); min pooling and stochastic pooling, which PyTorch
lacks, follow the same conventions.
"""

from __future__ import annotations

import numbers

import numpy as np

from .autodiff import Function, constant_of, value_of
from .crosscheck import torch_reference
from .elementwise import neg
from .parallel import halves, single_blas_thread
from .validation import check_array, check_float_array, check_int, check_pair, check_real
from .windows import (WindowGeometry, add_rows, fold_offsets, kernel_offsets, offset_view,
                      pad2d, phase_view, pool_output_size, stride_phases, uses_phases,
                      work_chunks)

__all__ = ["max_pool2d", "max_unpool2d", "avg_pool2d", "min_pool2d",
           "adaptive_max_pool2d", "adaptive_avg_pool2d", "stochastic_pool2d", "roi_pool",
           "roi_align"]

#: Where every window of a fixed-window pooling lies: the one window-geometry type of
#: fancydl (:class:`fancydl.windows.WindowGeometry`). ``kernel``, ``stride``,
#: ``dilation`` and ``out_size`` are (rows, cols) pairs; ``pad_widths`` is
#: ((top, bottom), (left, right)), the bottom/right counts grown to fit ceil_mode windows.
Geometry = WindowGeometry


# --- arguments -----------------------------------------------------------------------

def _check_pool_input(op, input):
    check_float_array(op, "input", input, ndim=(3, 4))
    if 0 in input.shape[-3:]:
        raise ValueError(f"{op}: input must have non-empty channels, height and width "
                         f"(only the batch may be empty), got shape {input.shape}")


def pool_geometry(op, input, kernel_size, stride=None, padding=0, dilation=1,
                  ceil_mode=False):
    """Validate a fixed-window pooling's arguments and place its windows.

    Parameters
    ----------
    op : str
        Operator name, for error messages.
    input : ndarray of shape (N, C, H, W) or (C, H, W)
    kernel_size, stride, padding, dilation : int or pair of int
        PyTorch's meaning; ``stride=None`` means ``kernel_size``.
    ceil_mode : bool

    Returns
    -------
    Geometry
    """
    _check_pool_input(op, input)
    kernel = check_pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else check_pair(op, "stride", stride, minimum=1)
    padding = check_pair(op, "padding", padding, minimum=0)
    dilation = check_pair(op, "dilation", dilation, minimum=1)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding must be at most half of kernel_size "
                         f"({kernel[0] // 2}, {kernel[1] // 2}), got padding={padding} "
                         f"for kernel_size={kernel}")
    size = input.shape[-2:]
    out = tuple(pool_output_size(n, k, s, p, d, bool(ceil_mode))
                for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    if min(out) < 1:
        padded = tuple(n + 2 * p for n, p in zip(size, padding))
        raise ValueError(f"{op}: kernel_size={kernel} with dilation={dilation} is larger "
                         f"than the padded input {padded} (input {tuple(size)}, "
                         f"padding={padding}): the output would be {out}")
    # ceil_mode windows may hang over the bottom/right padding: pad far enough for them.
    after = tuple(max(p, (o - 1) * s + d * (k - 1) + 1 - n - p)
                  for n, k, s, p, d, o in zip(size, kernel, stride, padding, dilation, out))
    pad_widths = ((padding[0], after[0]), (padding[1], after[1]))
    return Geometry(kernel, stride, pad_widths, dilation, out_size=out)


def _uses_phases(geom):
    """Whether to read the windows from stride phases (:func:`fancydl.windows.uses_phases`,
    the rule :func:`fancydl.windows.fold_offsets` applies to the backward too)."""
    return uses_phases(geom)


def _views(x_padded, geom):
    """The view of each kernel offset, in row-major offset order.

    They are read from the stride phases of the input (unit-stride blocks, several times
    faster to read than strided views when the stride is above 1) when
    :func:`_uses_phases`, else straight from the padded input (strided views).
    """
    if not _uses_phases(geom):
        return [offset_view(x_padded, offset, geom.stride, geom.dilation, geom.out_size)
                for offset in kernel_offsets(geom.kernel)]
    phases = stride_phases(x_padded, geom.stride)
    return [phase_view(phases, offset, geom.stride, geom.dilation, geom.out_size)
            for offset in kernel_offsets(geom.kernel)]


def _offset_dtype(geom):
    """Smallest integer type that numbers the kernel offsets (small types compare fastest)."""
    count = geom.kernel[0] * geom.kernel[1]
    return np.int8 if count < 2 ** 7 else np.int16 if count < 2 ** 15 else np.int32


def _scatter_to_input(pieces, geom, input_shape, dtype, out=None):
    """Adjoint of :func:`_views`: add each offset's piece where that offset read.

    Parameters
    ----------
    pieces : iterable of ndarray of shape (..., H_out, W_out), or None to skip
        One per kernel offset, in row-major offset order.
    input_shape : tuple
        Shape of the unpadded input.
    out : ndarray of ``input_shape``, optional
        Where to write the result.

    Returns
    -------
    ndarray of ``input_shape``
    """
    (top, bottom), (left, right) = geom.pad_widths
    padded = input_shape[:-2] + (input_shape[-2] + top + bottom,
                                 input_shape[-1] + left + right)
    # The one window scatter-add of fancydl (convolution's col2im uses it too).
    return fold_offsets(pieces, padded, geom, dtype, crop=geom.pad_widths, out=out)


def _route_to_offsets(grad, chosen, geom, input_shape):
    """Backward of "output = the input at offset ``chosen``": add ``grad`` at each choice.

    Parameters
    ----------
    grad : ndarray of shape (..., H_out, W_out)
    chosen : int ndarray of the same shape
        Index into ``kernel_offsets(kernel)`` per output; -1 routes nowhere.
    input_shape : tuple
        Shape of the unpadded input.

    Returns
    -------
    ndarray of ``input_shape``, computed one half of the batch per core
    """
    # Multiplying by the 0/1 mask is faster than np.where but turns inf * 0 into NaN.
    finite = bool(np.isfinite(grad).all())
    zero = np.zeros((), grad.dtype)
    grad_input = np.empty(input_shape, grad.dtype)

    def one_half(grad, chosen, out):
        mask, piece = np.empty(grad.shape, bool), np.empty_like(grad)

        def routed(k):
            np.equal(chosen, k, out=mask)
            if finite:
                return np.multiply(grad, mask, out=piece)
            return np.where(mask, grad, zero)

        pieces = (routed(k) for k in range(len(kernel_offsets(geom.kernel))))
        _scatter_to_input(pieces, geom, out.shape, grad.dtype, out=out)

    halves(one_half, grad, chosen, grad_input, size=grad_input.size)  # input-sized work
    return grad_input


# --- max pooling -------------------------------------------------------------------

def _window_maximum(views, geom, input_size):
    """Each window's maximum and which kernel offset holds it, PyTorch's way.

    Ties go to the first maximum in row-major window order (only a strictly greater
    value moves the choice); a window with a NaN outputs NaN and reports its last NaN
    (PyTorch's CPU kernel takes ``val > max || isnan(val)``); padding is never chosen,
    even when every real entry is -inf.

    Parameters
    ----------
    views : list of ndarray
        The offset views of the -inf padded input (:func:`_views`).
    input_size : (H, W)

    Returns
    -------
    out : ndarray of shape (..., H_out, W_out)
    chosen : small-integer ndarray of the same shape
        Index into ``kernel_offsets(kernel)``.
    """
    out = views[0].copy()
    chosen = np.zeros(out.shape, _offset_dtype(geom))
    better = np.empty(out.shape, bool)
    step = np.empty(out.shape, chosen.dtype)
    for k, view in enumerate(views[1:], start=1):
        np.greater(view, out, out=better)
        np.maximum(out, view, out=out)
        # chosen = where(better, k, chosen), as integer arithmetic (faster than np.where)
        np.subtract(chosen.dtype.type(k), chosen, out=step)
        step *= better
        chosen += step
    padded = any(p for pair in geom.pad_widths for p in pair)
    if padded and np.isneginf(out).any():
        # An all -inf window points at its first real pixel, never at the padding.
        inside = _views(pad2d(np.ones(input_size, bool), geom.pad_widths, False), geom)
        stuck = np.isneginf(out)
        for k in range(len(views) - 1, -1, -1):
            np.copyto(chosen, k, where=stuck & inside[k])
    if np.isnan(out).any():
        for k, view in enumerate(views):
            np.copyto(chosen, k, where=np.isnan(view))
    return out, chosen


def _max_pool_forward(x, geom):
    """:func:`_window_maximum` of the -inf padded input, one half of the batch per core
    (:func:`fancydl.parallel.halves`: windows never cross images or channels)."""
    def one_half(half):
        views = _views(pad2d(half, geom.pad_widths, -np.inf), geom)
        return _window_maximum(views, geom, half.shape[-2:])

    parts = halves(one_half, x)
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(pair) for pair in zip(*parts))


def _flat_indices(chosen, geom, input_size):
    """PyTorch's pooling indices: ``h * W + w`` in the unpadded input plane."""
    offsets = np.array(kernel_offsets(geom.kernel))
    (sh, sw), (dh, dw), (oh, ow) = geom.stride, geom.dilation, geom.out_size
    rows = np.arange(oh)[:, None] * sh - geom.pad_widths[0][0] + offsets[chosen, 0] * dh
    cols = np.arange(ow)[None, :] * sw - geom.pad_widths[1][0] + offsets[chosen, 1] * dw
    inside = (rows >= 0) & (rows < input_size[0]) & (cols >= 0) & (cols < input_size[1])
    # Only a window that misses the input entirely (possible with dilation) has no
    # real pixel to point at: -1.
    return np.where(inside, rows * input_size[1] + cols, -1).astype(np.int64)


class _MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, geom, return_indices):
        out, chosen = _max_pool_forward(x, geom)
        ctx.save_for_backward(chosen)
        ctx.geom, ctx.input_shape = geom, x.shape
        if return_indices:
            return out, _flat_indices(chosen, geom, x.shape[-2:])
        return out

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        (chosen,) = ctx.saved
        return _route_to_offsets(grad, chosen, ctx.geom, ctx.input_shape), None, None


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling, like ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W) or (C, H, W), float32 or float64
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default: ``kernel_size``.
    padding : int or (int, int)
        Implicit -inf border, at most half the kernel size.
    dilation : int or (int, int)
        Spacing between the pixels of a window.
    ceil_mode : bool
        Round the output size up; a last window is kept only if it starts inside the
        input or the left padding.
    return_indices : bool
        Also return where each maximum came from.

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out))
        ``H_out = floor((H + 2 padding - dilation (k - 1) - 1) / stride) + 1``
        (``ceil`` with ``ceil_mode``).
    indices : int64 ndarray of ``out``'s shape, only if ``return_indices``
        Flat index ``h * W + w`` of each maximum in its (H, W) plane.

    Notes
    -----
    The backward pass sends each output's gradient to one input: the first maximum of
    its window in row-major order (a window with a NaN outputs NaN and routes to its
    last NaN, as PyTorch does). With dilation a window can miss the input entirely
    (e.g. W = 1, padding 1, dilation 2); it outputs -inf and passes no gradient, where
    PyTorch reports an index outside its window.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    >>> out, idx = fancydl.max_pool2d(x, 2, return_indices=True)
    >>> out.ravel(), idx.ravel()
    (array([3.]), array([1]))
    """
    geom = pool_geometry("max_pool2d", input, kernel_size, stride, padding, dilation,
                         ceil_mode)
    return _MaxPool2d.apply(input, geom, bool(return_indices))


def min_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D min pooling: ``-max_pool2d(-input)``, arguments as :func:`max_pool2d`.

    PyTorch has no min pooling; this is how one writes it there, so the padding is
    +inf, and ties and the gradient go to the FIRST minimum of each window.

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out))
    indices : int64 ndarray, only if ``return_indices``
        Flat index ``h * W + w`` of each minimum.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> fancydl.min_pool2d(np.array([[[[4.0, 1.0], [1.0, 2.0]]]]), 2).ravel()
    array([1.])
    """
    geom = pool_geometry("min_pool2d", input, kernel_size, stride, padding, dilation,
                         ceil_mode)
    pooled = _MaxPool2d.apply(neg(input), geom, bool(return_indices))
    if return_indices:
        return neg(pooled[0]), pooled[1]
    return neg(pooled)


@torch_reference("min_pool2d")
def _torch_min_pool2d(torch, input, *args, **kwargs):
    """-torch.nn.functional.max_pool2d(-input)"""
    result = torch.nn.functional.max_pool2d(-input, *args, **kwargs)
    if isinstance(result, tuple):
        return -result[0], result[1]
    return -result


# --- max unpooling: the switches put back ------------------------------------------------

def _unpool_output_size(op, input_size, kernel, stride, padding, output_size):
    """PyTorch's output size of max unpooling, and its check of ``output_size``.

    The default ``(H_in - 1) stride + kernel - 2 padding`` inverts max pooling's size
    rule; since that rule rounds down, any size within ``stride - 1`` of it is accepted
    (open interval ``(default - stride, default + stride)``), as ``(N, C, H, W)`` or
    ``(H, W)``.
    """
    default = tuple((n - 1) * s + k - 2 * p
                    for n, k, s, p in zip(input_size, kernel, stride, padding))
    if output_size is None:
        size = default
    else:
        if not isinstance(output_size, (tuple, list)) or len(output_size) not in (2, 4):
            raise TypeError(f"{op}: output_size must be a sequence of 2 ints (H, W) or 4 "
                            f"(N, C, H, W), got {output_size!r}")
        size = tuple(output_size[-2:])
        if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool)
                   for n in size):
            raise TypeError(f"{op}: output_size must hold ints, got {output_size!r}")
        for axis, (n, d, s) in enumerate(zip(size, default, stride)):
            if not d - s < n < d + s:
                raise ValueError(f"{op}: output_size[{axis - 2}] must be between "
                                 f"{d - s} and {d + s} (exclusive) for an input of "
                                 f"{tuple(input_size)} with kernel_size={kernel}, "
                                 f"stride={stride}, padding={padding}, got {n}")
    if min(size) < 0:
        raise ValueError(f"{op}: the output size {size} is negative (input "
                         f"{tuple(input_size)}, kernel_size={kernel}, stride={stride}, "
                         f"padding={padding})")
    return tuple(int(n) for n in size)


def _check_unpool_indices(op, input, indices, output_size):
    """``indices``, read as a constant, once checked against ``input`` and the plane."""
    indices = constant_of(indices, op, "indices")
    check_array(op, "indices", indices, dtype_kind="int")
    if indices.shape != input.shape:
        raise ValueError(f"{op}: indices must have the shape of input {input.shape}, got "
                         f"shape {indices.shape}")
    plane = output_size[0] * output_size[1]
    bad = (indices < 0) | (indices >= plane)
    if bad.any():
        raise ValueError(f"{op}: indices must lie in [0, {plane}) for an output plane of "
                         f"{output_size}, got {indices[bad].flat[0]}")
    return indices


def _output_positions(indices, output_size):
    """Flat positions in the whole output: ``plane * H_out * W_out + index``."""
    plane = output_size[0] * output_size[1]
    planes = np.arange(int(np.prod(indices.shape[:-2], dtype=np.int64)), dtype=np.int64)
    return indices + (planes * plane).reshape(indices.shape[:-2] + (1, 1))


class _MaxUnpool2d(Function):
    """Forward: put each value at its switch; backward: read the gradient there."""

    @staticmethod
    def forward(ctx, x, indices, output_size):
        positions = _output_positions(indices, output_size)
        out = np.zeros(x.shape[:-2] + output_size, x.dtype)
        out.reshape(-1)[positions] = x  # in order: of repeated positions, the last stays
        ctx.save_for_backward(positions)
        return out

    @staticmethod
    def backward(ctx, grad):
        (positions,) = ctx.saved
        return np.take(grad, positions), None, None


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of max pooling, like ``torch.nn.functional.max_unpool2d``.

    Each value is put back where :func:`max_pool2d` found it (its "switch", Zeiler &
    Fergus's deconvnet); every other output pixel is zero.

    Parameters
    ----------
    input : ndarray of shape (N, C, H_in, W_in) or (C, H_in, W_in), float32 or float64
        Typically the pooled maxima (or a gradient of their shape).
    indices : integer ndarray of ``input``'s shape
        Flat index ``h * W_out + w`` of each value in its output plane, as
        ``max_pool2d(..., return_indices=True)`` returns them. Not differentiated.
    kernel_size, stride, padding : int or (int, int)
        Those of the pooling to invert; ``stride=None`` means ``kernel_size``.
    output_size : sequence of 2 (H_out, W_out) or 4 (N, C, H_out, W_out) ints, optional
        The pooled input's size, when the default is not it (max pooling rounds its
        output size down): each entry within ``stride - 1`` of the default.

    Returns
    -------
    ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out)), ``input``'s dtype
        ``H_out = (H_in - 1) stride - 2 padding + kernel_size`` by default.

    Notes
    -----
    Backward: ``grad_input = grad_out`` read at ``indices``, a gather. When an index
    repeats within a plane (overlapping pooling windows that share a maximum), the
    value written last in row-major order stays, as PyTorch's CPU kernel on one
    thread does (with several threads its choice varies); the gradient still goes to
    every repeat, as in PyTorch. Deliberate differences: a bad index raises a
    ValueError (PyTorch: RuntimeError), also when the output plane is empty (PyTorch
    then returns the empty output); ``indices`` may have any integer dtype (PyTorch:
    int64 only); a zero kernel_size or stride and a negative padding are refused
    (PyTorch computes a size from them).

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.array([[[[1.0, 3.0], [4.0, 2.0]]]])
    >>> out, idx = fancydl.max_pool2d(x, 2, return_indices=True)
    >>> fancydl.max_unpool2d(out, idx, 2)[0, 0]
    array([[0., 0.],
           [4., 0.]])
    """
    op = "max_unpool2d"
    _check_pool_input(op, input)
    kernel = check_pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else check_pair(op, "stride", stride, minimum=1)
    padding = check_pair(op, "padding", padding, minimum=0)
    size = _unpool_output_size(op, input.shape[-2:], kernel, stride, padding, output_size)
    indices = _check_unpool_indices(op, input, indices, size)
    return _MaxUnpool2d.apply(input, indices, size)


# --- average pooling ---------------------------------------------------------------

def _window_sizes(size, kernel, stride, padding, out, count_include_pad):
    """Divisor of each window along one axis, PyTorch's rule.

    A window counts the padding it covers (``count_include_pad``) but never the part of
    a ceil_mode window that hangs beyond the padding.
    """
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


class _AvgPool2d(Function):
    """Window sums over the divisor; both passes one half of the batch per core."""

    @staticmethod
    def forward(ctx, x, geom, divisor):
        def one_half(half, out):
            views = _views(pad2d(half, geom.pad_widths, 0.0), geom)
            np.copyto(out, views[0])
            for view in views[1:]:
                np.add(out, view, out=out)
            out /= divisor

        out = np.empty(x.shape[:-2] + tuple(geom.out_size), x.dtype)
        halves(one_half, x, out)
        ctx.geom, ctx.divisor, ctx.input_shape = geom, divisor, x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        def one_half(grad, out):
            share = grad / ctx.divisor
            pieces = [share] * len(kernel_offsets(ctx.geom.kernel))
            _scatter_to_input(pieces, ctx.geom, out.shape, grad.dtype, out=out)

        grad_input = np.empty(ctx.input_shape, grad.dtype)
        halves(one_half, grad, grad_input, size=grad_input.size)  # input-sized work
        return grad_input, None, None


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling, like ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W) or (C, H, W), float32 or float64
    kernel_size, stride, padding : int or (int, int)
        As in :func:`max_pool2d` (zero padding, at most half the kernel).
    ceil_mode : bool
    count_include_pad : bool
        Divide by the window size including the zero padding it covers (PyTorch's
        default), or only by the number of real pixels.
    divisor_override : int, optional
        Divide every window's sum by this instead.

    Returns
    -------
    ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out))

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.ones((1, 1, 2, 2))
    >>> fancydl.avg_pool2d(x, 3, stride=1, padding=1)[0, 0]
    array([[0.44444444, 0.44444444],
           [0.44444444, 0.44444444]])
    """
    geom = pool_geometry("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        divisor_override = check_int("avg_pool2d", "divisor_override", divisor_override)
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must be non-zero, got 0")
        divisor = np.asarray(divisor_override, input.dtype)
    else:
        rows, cols = (_window_sizes(n, k, s, p, o, bool(count_include_pad))
                      for n, k, s, (p, _), o in zip(input.shape[-2:], geom.kernel,
                                                    geom.stride, geom.pad_widths,
                                                    geom.out_size))
        divisor = np.outer(rows, cols).astype(input.dtype)
    return _AvgPool2d.apply(input, geom, divisor)


# --- adaptive pooling: bins of varying size ------------------------------------------

def _check_output_size(op, output_size, input_size):
    """``output_size`` as a pair of positive ints; a None entry keeps the input's size."""
    if output_size is None or isinstance(output_size, numbers.Integral):
        pair = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        pair = tuple(output_size)
    else:
        raise TypeError(f"{op}: output_size must be an int or a pair of ints (None "
                        f"keeps the input's size), got {output_size!r}")
    pair = tuple(n if s is None else s for s, n in zip(pair, input_size))
    return check_pair(op, "output_size", pair, minimum=1)


def adaptive_bins(size, out):
    """PyTorch's adaptive bins along one axis: ``[floor(i size / out), ceil((i+1) size / out))``.

    Returns
    -------
    start, end : int ndarrays of shape (out,)

    Examples
    --------
    >>> adaptive_bins(5, 3)
    (array([0, 1, 3]), array([2, 4, 5]))
    """
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _bin_offsets(start, end):
    """For each offset ``t`` inside the longest bin: the index each bin reads (clamped to
    its last element) and whether the bin really has an element there."""
    for t in range(int((end - start).max())):
        yield np.minimum(start + t, end - 1), start + t < end


class _AdaptiveMaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, output_size, return_indices):
        (h, w), (oh, ow) = x.shape[-2:], output_size
        row_offsets = list(_bin_offsets(*adaptive_bins(h, oh)))
        col_offsets = list(_bin_offsets(*adaptive_bins(w, ow)))
        # Offsets past a bin's end re-read its last element: harmless for a maximum.
        reads = [(rows[:, None], cols[None, :]) for rows, _ in row_offsets
                 for cols, _ in col_offsets]
        views = [x[..., r, c] for r, c in reads]
        out = views[0].copy()
        for view in views[1:]:
            np.maximum(out, view, out=out)
        indices = np.zeros(out.shape, np.int64)
        for (r, c), view in zip(reads[::-1], views[::-1]):
            np.copyto(indices, r * w + c, where=view == out)
        if np.isnan(out).any():
            for (r, c), view in zip(reads, views):
                np.copyto(indices, r * w + c, where=np.isnan(view))
        ctx.save_for_backward(indices)
        ctx.input_shape = x.shape
        return (out, indices) if return_indices else out

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        (indices,) = ctx.saved
        return _scatter_to_planes(grad, indices, ctx.input_shape), None, None


def _scatter_to_planes(grad, indices, input_shape):
    """Add ``grad[..., i, j]`` to the input at flat plane index ``indices[..., i, j]``."""
    plane = input_shape[-2] * input_shape[-1]
    planes = int(np.prod(input_shape[:-2], dtype=np.int64))
    base = (np.arange(planes) * plane).reshape(input_shape[:-2] + (1, 1))
    total = np.bincount((indices + base).ravel(), weights=grad.ravel(),
                        minlength=planes * plane)
    return total.astype(grad.dtype).reshape(input_shape)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive max pooling, like ``torch.nn.functional.adaptive_max_pool2d``.

    Output cell ``i`` of an axis of length ``n`` covers the bin
    ``[floor(i n / out), ceil((i + 1) n / out))`` (:func:`adaptive_bins`).

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W) or (C, H, W)
    output_size : int or (int or None, int or None)
        None keeps that axis' input size.
    return_indices : bool

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out))
    indices : int64 ndarray, only if ``return_indices``
        Flat ``h * W + w`` of each maximum (first maximum; a NaN's position if any).
    """
    _check_pool_input("adaptive_max_pool2d", input)
    size = _check_output_size("adaptive_max_pool2d", output_size, input.shape[-2:])
    return _AdaptiveMaxPool2d.apply(input, size, bool(return_indices))


def _bin_lengths(size, out, dtype):
    """Length of every adaptive bin along an axis of ``size`` (:func:`adaptive_bins`)."""
    start, end = adaptive_bins(size, out)
    return (end - start).astype(dtype)


def _bin_means(x, axis_size, out, axis):
    """Mean of every adaptive bin along ``axis`` (-2 or -1), NaN-safe."""
    start, end = adaptive_bins(axis_size, out)
    total = 0
    for index, inside in _bin_offsets(start, end):
        taken = np.take(x, index, axis=axis)
        mask = inside[:, None] if axis == -2 else inside
        total = total + np.where(mask, taken, np.zeros((), x.dtype))
    lengths = _bin_lengths(axis_size, out, x.dtype)
    return total / (lengths[:, None] if axis == -2 else lengths)


def _bins_covering(size, out):
    """For each pixel of an axis of ``size``: the first adaptive bin that contains it,
    and how many consecutive bins do (at least one; two where neighbouring bins
    overlap; more when there are more bins than pixels).

    Examples
    --------
    >>> _bins_covering(5, 3)  # bins [0, 2), [1, 4), [3, 5)
    (array([0, 0, 1, 1, 2]), array([1, 2, 1, 2, 1]))
    """
    start, end = adaptive_bins(size, out)
    pixels = np.arange(size)
    first = np.searchsorted(end, pixels, side="right")  # the first bin ending after it
    last = np.searchsorted(start, pixels, side="right") - 1  # the last starting at/before
    return first, last - first + 1


def _gather_from_bins(shares, axis_size, out, axis):
    """Adjoint of summing each adaptive bin along ``axis`` (-2 or -1): every pixel adds
    the ``shares`` of the bins that contain it, and nothing from the others, even where
    a share is not finite (no product with zero weights).

    Cost O(input + output): one gather per bin covering a pixel (:func:`_bins_covering`),
    from the shares followed by one zero, which a pixel covered by fewer bins reads.
    """
    pad = [(0, 0)] * shares.ndim
    pad[axis] = (0, 1)
    shares = np.pad(shares, pad)  # index ``out``: a zero
    first, count = _bins_covering(axis_size, out)
    result = np.take(shares, first, axis=axis)
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf = NaN, overflow to
        for k in range(1, int(count.max())):            # inf, as PyTorch's sums give
            result += np.take(shares, np.where(k < count, first + k, out), axis=axis)
    return result


#: Where bins overlap, the backward multiplies by the dense (out, size) averaging
#: matrices of the two axes, ``rows.T @ grad @ cols``, when that costs at most this many
#: multiply-adds per value of the input and the output: three passes of gathers over
#: them cost more than a matrix product that small. Measured on (32, 128) planes,
#: float32: the products were about 3 times faster than the gathers from 32 x 32 to
#: 31 x 31 (31 multiply-adds per value) and to 64 x 64 (38), 2.6 and 3 times slower
#: from 512 x 512 to 127 x 127 (149) and from 256 x 256 to 200 x 200 (221). Beyond,
#: the products grow as size x out (a (1, 1, 1, 2**17) input pooled to 2**16 columns
#: needed a 64 GiB matrix): it gathers. Bins that do not overlap (global average
#: pooling, for one) always gather, one gather per axis: 8 times faster than the
#: products for 32 x 32 to 1.
DENSE_MACS_PER_VALUE = 64


def _bin_averaging_matrix(size, out, dtype):
    """(out, size) matrix whose row i averages bin i: the linear map of adaptive averaging."""
    start, end = adaptive_bins(size, out)
    j = np.arange(size)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


class _AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, output_size):
        (h, w), (oh, ow) = x.shape[-2:], output_size
        ctx.input_shape, ctx.output_size = x.shape, output_size
        return _bin_means(_bin_means(x, h, oh, -2), w, ow, -1)

    @staticmethod
    def backward(ctx, grad):
        (h, w), (oh, ow) = ctx.input_shape[-2:], ctx.output_size
        overlapping = h % oh or w % ow
        dense_cost = h * ow * (oh + w)  # multiply-adds of rows.T @ grad @ cols
        if overlapping and dense_cost <= DENSE_MACS_PER_VALUE * (h * w + oh * ow) \
                and np.isfinite(grad).all():
            rows = _bin_averaging_matrix(h, oh, grad.dtype)
            cols = _bin_averaging_matrix(w, ow, grad.dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                result = rows.T @ grad @ cols
            if np.isfinite(result).all():  # else an overflow met the matrices' zeros
                return result, None
        # Each value of grad shared out over its bin's area, divided as PyTorch does
        # (by the bin's height, then its width) before anything is summed.
        heights, widths = _bin_lengths(h, oh, grad.dtype), _bin_lengths(w, ow, grad.dtype)
        shares = grad / heights[:, None] / widths
        return _gather_from_bins(_gather_from_bins(shares, w, ow, -1), h, oh, -2), None


def adaptive_avg_pool2d(input, output_size):
    """Adaptive average pooling, like ``torch.nn.functional.adaptive_avg_pool2d``.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W) or (C, H, W)
    output_size : int or (int or None, int or None)
        None keeps that axis' input size. Bins as in :func:`adaptive_max_pool2d`.

    Returns
    -------
    ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out))

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> fancydl.adaptive_avg_pool2d(np.arange(5.0).reshape(1, 1, 1, 5), (1, 3)).ravel()
    array([0.5, 2. , 3.5])
    """
    _check_pool_input("adaptive_avg_pool2d", input)
    size = _check_output_size("adaptive_avg_pool2d", output_size, input.shape[-2:])
    return _AdaptiveAvgPool2d.apply(input, size)


# --- stochastic pooling (Zeiler & Fergus) ---------------------------------------------

def _sample_offsets(views, total, rng):
    """Draw one offset per region with probability ``value / total`` (-1: all-zero region).

    Inverse-CDF sampling: the first offset whose running sum exceeds ``u * total``, with
    ``u`` uniform in [0, 1). A zero entry never increases the running sum, so it is never
    drawn.
    """
    threshold = rng.random(total.shape, dtype=total.dtype) * total
    chosen = np.full(total.shape, -1, np.int32)
    last_positive = np.full(total.shape, -1, np.int32)
    running = np.zeros_like(total)
    for k, view in enumerate(views):
        running += view
        np.copyto(chosen, k, where=(chosen < 0) & (running > threshold))
        np.copyto(last_positive, k, where=view > 0)
    # Rounding can leave u * total at or above the final running sum: take the last
    # positive entry then, which is where exact arithmetic would have landed.
    return np.where(chosen < 0, last_positive, chosen)


class _StochasticPool2dTrain(Function):
    @staticmethod
    def forward(ctx, x, geom, rng):
        views = _views(x, geom)
        total = views[0].copy()
        for view in views[1:]:
            total += view
        chosen = _sample_offsets(views, total, rng)
        out = np.zeros_like(total)
        for k, view in enumerate(views):
            np.copyto(out, view, where=chosen == k)
        ctx.save_for_backward(chosen)
        ctx.geom, ctx.input_shape = geom, x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        (chosen,) = ctx.saved
        return _route_to_offsets(grad, chosen, ctx.geom, ctx.input_shape), None, None


class _StochasticPool2dTest(Function):
    """Probabilistic weighting ``s = sum a^2 / S`` with ``S = sum a`` over each region;
    ``ds/da_i = (2 a_i S - sum a^2) / S^2``; an all-zero region gives 0 and no gradient."""

    @staticmethod
    def forward(ctx, x, geom):
        views = _views(x, geom)
        total, squares = np.zeros_like(views[0]), np.zeros_like(views[0])
        for view in views:
            total += view
            squares += view * view
        positive = total > 0
        safe_total = np.where(positive, total, np.ones((), x.dtype))
        out = np.where(positive, squares / safe_total, np.zeros((), x.dtype))
        ctx.save_for_backward(x, safe_total, out, positive)
        ctx.geom = geom
        return out

    @staticmethod
    def backward(ctx, grad):
        x, safe_total, out, positive = ctx.saved
        geom = ctx.geom
        # (2 a_i S - sum a^2) / S^2 = (2 a_i - s) / S
        scaled = np.where(positive, grad / safe_total, np.zeros((), grad.dtype))
        pieces = (scaled * (2 * view - out) for view in _views(x, geom))
        return _scatter_to_input(pieces, geom, x.shape, grad.dtype), None


def stochastic_pool2d(input, kernel_size, stride=None, training=True, rng=None):
    """Stochastic pooling (Zeiler & Fergus, 2013) over non-negative activations.

    In each region ``R`` the probabilities are ``p_i = a_i / sum_R a``. Training
    outputs one element drawn from ``p``; evaluation outputs the probabilistic
    weighting ``sum_i p_i a_i = sum a^2 / sum a``, the expectation of the training
    output. An all-zero region outputs 0 (and passes no gradient) in both modes.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W) or (C, H, W), float32 or float64
        Finite and non-negative (e.g. after a ReLU); anything else is refused.
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default: ``kernel_size``. No padding: the paper pools regions of the input.
    training : bool
        Sample (True) or take the probabilistic weighting (False).
    rng : numpy.random.Generator, optional
        Source of the samples; pass a seeded one for reproducible results (default: a
        fresh unseeded generator). Unused when ``training`` is False.

    Returns
    -------
    ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out))

    Notes
    -----
    Backward: in training, the gradient goes to the sampled element (like max pooling);
    in evaluation, ``d out / d a_i = (2 a_i S - sum a^2) / S^2`` with ``S = sum a``.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.array([[[[1.0, 3.0], [0.0, 0.0]]]])
    >>> float(fancydl.stochastic_pool2d(x, 2, training=False)[0, 0, 0, 0])
    2.5
    """
    geom = pool_geometry("stochastic_pool2d", input, kernel_size, stride)
    values = value_of(input)
    if not np.all(values >= 0) or not np.all(np.isfinite(values)):
        bad = values[~((values >= 0) & np.isfinite(values))].flat[0]
        raise ValueError("stochastic_pool2d: input must be finite and non-negative (e.g. "
                         f"after a ReLU), got a value {bad}")
    if not training:
        return _StochasticPool2dTest.apply(input, geom)
    if rng is None:
        rng = np.random.default_rng()
    elif not isinstance(rng, np.random.Generator):
        raise TypeError("stochastic_pool2d: rng must be a numpy.random.Generator or None, "
                        f"got {type(rng).__name__}")
    return _StochasticPool2dTrain.apply(input, geom, rng)


# --- ROI pooling and ROI Align (torchvision.ops) ----------------------------------------

def _check_rois(op, input, boxes):
    """Validate boxes and return (batch indices (K,) intp, corners (K, 4) in input's dtype).

    ``boxes`` is an array (K, 5) of ``(batch_index, x1, y1, x2, y2)`` or a list with one
    (L, 4) array of ``(x1, y1, x2, y2)`` per image.
    """
    check_float_array(op, "input", input, ndim=4)
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            check_float_array(op, f"boxes[{i}]", b, ndim=2)
            if b.shape[1] != 4:
                raise ValueError(f"{op}: each array of a list of boxes must have shape "
                                 f"(L, 4), got boxes[{i}] of shape {b.shape}")
        parts = [np.column_stack([np.full(len(b), i), constant_of(b, op, f"boxes[{i}]")])
                 for i, b in enumerate(boxes)]
        rois = np.concatenate(parts) if parts else np.zeros((0, 5))
    else:
        check_float_array(op, "boxes", boxes, ndim=2)
        if boxes.shape[1] != 5:
            raise ValueError(f"{op}: boxes must have shape (K, 5) of (batch_index, x1, y1, "
                             f"x2, y2), got shape {boxes.shape}")
        rois = constant_of(boxes, op, "boxes")
    batch = rois[:, 0]
    n = input.shape[0]
    bad = (batch != np.floor(batch)) | (batch < 0) | (batch >= n)
    if bad.any():
        raise ValueError(f"{op}: box batch indices must be integers in [0, {n}) for an "
                         f"input batch of {n}, got {batch[bad][0]}")
    return batch.astype(np.intp), rois[:, 1:].astype(input.dtype)


#: Box coordinates, once scaled by ``spatial_scale``, are refused beyond this many pixels
#: (and when not finite): float32 cannot place a sample between two pixels there, and
#: torchvision's integer casts of such coordinates overflow (undefined behaviour in C++).
MAX_BOX_COORDINATE = 2.0 ** 24


def _check_box_coordinates(op, corners, spatial_scale):
    """Refuse non-finite or huge scaled box coordinates, naming ``boxes``."""
    scaled = np.abs(corners.astype(np.float64)) * spatial_scale
    bad = ~(scaled <= MAX_BOX_COORDINATE)  # NaN compares False
    if bad.any():
        box = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"{op}: boxes must have finite coordinates of at most 2**24 "
                         f"pixels in magnitude once scaled by spatial_scale="
                         f"{spatial_scale}, got box {box} with corners "
                         f"{corners[box].tolist()}")


def _round_half_away(x):
    """C's ``round``: halves go away from zero (2.5 -> 3, -2.5 -> -3); NumPy's go to even."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _nhwc_rows(x):
    """The input as a (N*H*W, C) table, so that one gather fetches every channel."""
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(n * h * w, c)


def _roi_pool_bins(corners, spatial_scale, output_size, size, dtype):
    """torchvision's quantized bins along one axis.

    ``corners`` (K, 2) holds the (start, end) box coordinates of the axis; returns
    ``start, end`` (K, out) int arrays of every bin, clipped to ``[0, size]``.
    """
    scaled = _round_half_away(corners * dtype.type(spatial_scale)).astype(np.int64)
    begin = scaled[:, 0]
    length = np.maximum(scaled[:, 1] - begin + 1, 1)  # malformed boxes become 1 pixel
    bin_size = length.astype(dtype) / dtype.type(output_size)
    p = np.arange(output_size, dtype=dtype)
    lo = np.floor(p * bin_size[:, None]).astype(np.int64) + begin[:, None]
    hi = np.ceil((p + 1) * bin_size[:, None]).astype(np.int64) + begin[:, None]
    return np.clip(lo, 0, size), np.clip(hi, 0, size)


def _bin_maxima(table, plane, h0, h1, w0, w1, width, tall, wide):
    """First maximum of every bin of some boxes, and where it is.

    Loops over the offsets ``(dy, dx)`` inside a ``tall`` × ``wide`` bin, gathering
    that offset of every bin of every box from the (N*H*W, C) ``table`` (all channels
    in one gather) and masking the bins that are smaller.

    Returns
    -------
    best : ndarray of shape (K, PH, PW, C)
    where : int64 ndarray of the same shape
        ``h * W + w`` of the maximum in its plane, -1 for an empty bin.
    """
    dtype, c = table.dtype, table.shape[1]
    empty = (h1 <= h0)[:, :, None] | (w1 <= w0)[:, None, :]  # (K, PH, PW)
    # torchvision starts from -FLT_MAX, so NaN and -inf are never picked.
    lowest = np.asarray(-np.finfo(np.float32).max, dtype)
    best = np.where(empty, np.zeros((), dtype), lowest)[..., None].repeat(c, axis=-1)
    where = np.full(best.shape, -1, np.int64)
    for dy in range(tall):
        rows = h0 + dy
        for dx in range(wide):
            cols = w0 + dx
            inside = (rows < h1)[:, :, None] & (cols < w1)[:, None, :]
            pixel = np.where(inside, rows[:, :, None] * width + cols[:, None, :], 0)
            values = table[plane[:, None, None] + pixel]
            better = inside[..., None] & (values > best)
            best = np.where(better, values, best)
            where = np.where(better, pixel[..., None], where)
    return best, where


class _RoIPool(Function):
    @staticmethod
    def forward(ctx, x, batch, corners, output_size, spatial_scale):
        n, c, h, w = x.shape
        (ph, pw), dtype = output_size, x.dtype
        h0, h1 = _roi_pool_bins(corners[:, [1, 3]], spatial_scale, ph, h, dtype)
        w0, w1 = _roi_pool_bins(corners[:, [0, 2]], spatial_scale, pw, w, dtype)
        table = _nhwc_rows(x)
        best = np.empty((len(batch), ph, pw, c), dtype)
        where = np.empty(best.shape, np.int64)
        # Boxes are grouped by their largest bin (rounded up to a bucket size), so
        # that each box loops over about its own bins' offsets, not the largest box's.
        tall = _bucket(np.maximum(h1 - h0, 0).max(axis=1, initial=0), h)
        wide = _bucket(np.maximum(w1 - w0, 0).max(axis=1, initial=0), w)
        key = tall * (w + 1) + wide
        for value in np.unique(key):
            boxes = np.flatnonzero(key == value)
            best[boxes], where[boxes] = _bin_maxima(
                table, batch[boxes] * (h * w), h0[boxes], h1[boxes], w0[boxes], w1[boxes],
                w, int(tall[boxes[0]]), int(wide[boxes[0]]))
        ctx.save_for_backward(batch, where)
        ctx.input_shape = x.shape
        return np.ascontiguousarray(best.transpose(0, 3, 1, 2))

    @staticmethod
    def backward(ctx, grad):
        batch, where = ctx.saved
        n, c, h, w = ctx.input_shape
        picked = where >= 0  # (K, PH, PW, C); empty bins send nothing
        g = grad.transpose(0, 2, 3, 1)
        flat = ((batch[:, None, None, None] * (h * w) + where) * c + np.arange(c))[picked]
        total = np.bincount(flat, weights=g[picked], minlength=n * h * w * c)
        grad_x = total.astype(grad.dtype).reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(grad_x), None, None, None, None


def roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """ROI max pooling (Fast R-CNN), like ``torchvision.ops.roi_pool``.

    Each box is scaled by ``spatial_scale`` and its corners rounded to whole pixels
    (half away from zero); the box (at least 1×1, ends included) is cut into
    ``output_size`` bins ``[floor(i b), ceil((i + 1) b))`` with ``b`` the box size over
    the bin count, clipped to the input, and each bin outputs its maximum. An empty bin
    outputs 0.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W), float32 or float64
    boxes : ndarray of shape (K, 5) or list of N' ndarrays of shape (L, 4)
        ``(batch_index, x1, y1, x2, y2)`` rows, or per-image ``(x1, y1, x2, y2)``
        rows (the list position is the batch index). Cast to ``input``'s dtype.
    output_size : int or (int, int)
    spatial_scale : float
        Factor from box coordinates to input pixels (e.g. 1/16 for a stride-16 map).

    Returns
    -------
    ndarray of shape (K, C, PH, PW)

    Notes
    -----
    Backward (with respect to ``input``; boxes get none): each output's gradient goes
    to the first maximum of its bin. Like torchvision, a bin whose entries are all
    -inf or NaN outputs ``-3.4028235e38`` and passes no gradient. Boxes must have
    finite coordinates of at most ``2**24`` pixels in magnitude once scaled (beyond,
    torchvision's integer casts overflow): ValueError otherwise.
    """
    batch, corners = _check_rois("roi_pool", input, boxes)
    size = check_pair("roi_pool", "output_size", output_size, minimum=1)
    scale = check_real("roi_pool", "spatial_scale", spatial_scale, 0, inclusive=False)
    _check_box_coordinates("roi_pool", corners, scale)
    return _RoIPool.apply(input, batch, corners, size, scale)


def _bilinear_axis(coord, size):
    """torchvision's bilinear sampling along one axis, clamped to the border.

    Returns ``(low, high, weight_low, weight_high, inside)``: the two neighbouring pixel
    indices and their weights; a coordinate below -1 or above ``size`` is not inside and
    gets zero weights.
    """
    inside = (coord >= -1) & (coord <= size)
    c = np.maximum(coord, 0)
    low = np.floor(np.minimum(c, size)).astype(np.int64)
    at_edge = low >= size - 1
    low = np.where(at_edge, size - 1, low)
    high = np.where(at_edge, size - 1, low + 1)
    frac = np.where(at_edge, 0, c - low).astype(coord.dtype)
    zero = np.zeros((), coord.dtype)
    return (low, high, np.where(inside, 1 - frac, zero), np.where(inside, frac, zero),
            inside)


def _ragged_arange(starts, counts):
    """``concatenate([arange(s, s + n) for s, n in zip(starts, counts)])``, vectorized."""
    total = int(counts.sum())
    ends = np.cumsum(counts)
    return np.arange(total) - np.repeat(ends - counts - starts, counts)


def _roi_align_samples(corners, spatial_scale, output_size, sampling_ratio, aligned,
                       size, dtype):
    """Every sample of every bin along one axis that can read the input.

    Bin ``p`` of a box has ``grid`` samples at ``first_p + (t + 1/2) b / grid``
    (``b`` the bin size; ``grid`` is ``sampling_ratio``, or ``ceil(b)`` chosen per box
    when it is ``<= 0``). Only the samples in ``[-1, size]`` read the input, so only
    those are generated: their spacing is at least half a pixel unless the grid is
    the user's ``sampling_ratio``, so a box costs O(output_size × (size + grid)) here
    whatever its own size.

    Parameters
    ----------
    corners : ndarray of shape (K, 2)
        (start, end) box coordinates along the axis.

    Returns
    -------
    grid : int64 ndarray of shape (K,)
        Samples per bin of each box (0 for a box of negative size).
    cell : intp ndarray of shape (S,)
        ``box * output_size + bin`` of each generated sample.
    coord : ndarray of shape (S,), of ``dtype``
        Its coordinate, computed as torchvision does.
    """
    scaled = corners * dtype.type(spatial_scale) - dtype.type(0.5 if aligned else 0.0)
    start = scaled[:, 0]
    length = scaled[:, 1] - start
    if not aligned:
        length = np.maximum(length, dtype.type(1))
    bin_size = length / dtype.type(output_size)
    if sampling_ratio > 0:
        grid = np.full(len(start), sampling_ratio, np.int64)
    else:
        grid = np.maximum(np.ceil(bin_size), 0).astype(np.int64)
    first = start[:, None] + np.arange(output_size, dtype=dtype) * bin_size[:, None]
    # The range of t inside [-1, size] (one sample of slack each side; the exact test
    # is _bilinear_axis'), solved in float64 for any sign of the spacing.
    spacing = (bin_size.astype(np.float64) / np.maximum(grid, 1))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ends = [(edge - first.astype(np.float64)) / spacing - 0.5 for edge in (-1.0, size)]
    lo, hi = np.minimum(*ends), np.maximum(*ends)
    flat = spacing == 0  # every sample of the bin at one point: all or none
    last = (grid - 1)[:, None].astype(np.float64)
    lo = np.where(flat, 0, np.clip(np.ceil(lo) - 1, 0, last + 1))
    hi = np.where(flat, last, np.clip(np.floor(hi) + 1, -1, last))
    counts = np.maximum(hi - lo + 1, 0).astype(np.int64).ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    t = _ragged_arange(lo.astype(np.int64).ravel(), counts)
    box = cell // output_size
    coord = first.ravel()[cell] + ((t.astype(dtype) + dtype.type(0.5)) * bin_size[box]
                                   / grid[box].astype(dtype))
    return grid, cell, coord


def _roi_align_taps(corners, spatial_scale, output_size, sampling_ratio, aligned, size,
                    dtype):
    """ROI Align along one axis as matrices over the axis' pixels.

    Bin ``p`` of box ``k`` reads pixel ``i`` with total weight ``weights[k, p, i]`` (its
    samples' bilinear weights over the grid size), so that the whole operator is
    ``out[k] = W_y[k] @ input[batch[k]] @ W_x[k]^T`` per channel.

    Returns
    -------
    weights : ndarray of shape (K, output_size, size), of ``dtype``
    taps, positive : ndarrays of the same shape
        How many bilinear taps (of any weight / of positive weight) read each pixel:
        torchvision multiplies every tap, so a zero weight on an infinite pixel gives NaN.
    """
    grid, cell, coord = _roi_align_samples(corners, spatial_scale, output_size,
                                           sampling_ratio, aligned, size, dtype)
    low, high, w_low, w_high, inside = _bilinear_axis(coord, size)
    share = np.maximum(grid, 1).astype(np.float64)[cell // output_size]
    cells = len(corners) * output_size * size

    def total(weights_low, weights_high):
        spots = np.concatenate([cell * size + low, cell * size + high])
        values = np.concatenate([weights_low, weights_high])
        return np.bincount(spots, values, minlength=cells).reshape(-1, output_size, size)

    weights = total(w_low / share, w_high / share).astype(dtype)
    taps = total(inside, inside).astype(dtype)
    positive = total(w_low > 0, w_high > 0).astype(dtype)
    return weights, taps, positive


#: Crop sizes of the ROI Align buckets: 1, 2, 3, 4, 6, 8, 12, 16, ... (powers of two and
#: 1.5 times them), so that a box's crop is at most 4/3 of its reach along each axis.
def _bucket(reach, size):
    """The smallest bucket size at least ``reach`` (int ndarray), capped at ``size``."""
    power = 2 ** np.ceil(np.log2(np.maximum(reach, 1))).astype(np.int64)
    three_quarters = power * 3 // 4
    return np.minimum(np.where(reach <= three_quarters, three_quarters, power), size)


def _reach(taps):
    """First pixel and pixel count each box reads along an axis (0 if none), from
    its (K, P, size) tap counts."""
    read = taps.any(axis=1)
    first = read.argmax(axis=1)
    last = read.shape[1] - 1 - read[:, ::-1].argmax(axis=1)
    return first, np.where(read.any(axis=1), last - first + 1, 0)


def _sandwich(left, x, right):
    """``left @ x @ right^T`` over the middle axes, per box and channel.

    ``left`` (K, A, B), ``x`` (K, B, D, C), ``right`` (K, E, D) -> (K, A, E, C), as two
    batched matrix products.
    """
    k, b, d, c = x.shape
    half = np.matmul(left, x.reshape(k, b, d * c)).reshape(k, -1, d, c)
    return np.matmul(right[:, None], half)


def _sandwich_nonfinite(left, x, right, left_taps, right_taps):
    """:func:`_sandwich` with torchvision's sums of products: an output is NaN if a
    tap reads a NaN, an infinity with weight zero, or infinities of both signs, and
    ±inf if it reads only one sign of infinity; otherwise the finite sum.

    ``left_taps`` and ``right_taps`` are the (all taps, positive taps) count matrices
    shaped as ``left`` and ``right``: a 2-D tap's weight is positive when both of its
    axis weights are.
    """
    finite = np.isfinite(x)
    if finite.all():
        return _sandwich(left, x, right)
    out = _sandwich(left, np.where(finite, x, np.zeros((), x.dtype)), right)
    (left_all, left_pos), (right_all, right_pos) = left_taps, right_taps

    def hits(l, mask, r):
        return _sandwich(l, mask.astype(x.dtype), r)

    plus, minus = hits(left_pos, x == np.inf, right_pos), hits(left_pos, x == -np.inf,
                                                               right_pos)
    zero_weight_inf = hits(left_all, np.isinf(x), right_all) - plus - minus > 0.5
    nan = (hits(left_all, np.isnan(x), right_all) > 0.5) | zero_weight_inf
    out[plus > 0.5] = np.inf
    out[minus > 0.5] = -np.inf
    out[nan | ((plus > 0.5) & (minus > 0.5))] = np.nan
    return out


def _balanced_order(works):
    """Indices of work items ordered so that :func:`fancydl.parallel.halves`, which
    splits at ``n // 2``, gives both halves about the same work: a greedy partition
    (largest item first, to the lighter side), each side padded with -1 (no item)."""
    sides, loads = ([], []), [0, 0]
    for i in np.argsort(works, kind="stable")[::-1]:
        side = int(loads[1] < loads[0])
        sides[side].append(int(i))
        loads[side] += works[i]
    n = max(len(sides[0]), len(sides[1]))
    return np.array([i for side in sides for i in side + [-1] * (n - len(side))], np.intp)


class _RoIAlignPlan:
    """Where each box reads, grouped so that one group is a few batched matrix products.

    Along each axis a box reads a contiguous range of pixels (its reach); it is cut
    out as a crop of a bucket size (:func:`_bucket`). Boxes whose crops have the same
    (rows, cols) size form a group, processed in chunks of :func:`work_chunks` size.
    The cost of a box thus follows its own reach, not the largest box's.
    """

    def __init__(self, x_shape, batch, corners, output_size, spatial_scale,
                 sampling_ratio, aligned, dtype):
        _, self.channels, self.height, self.width = x_shape
        self.batch = batch
        axes = [_roi_align_taps(corners[:, ends], spatial_scale, out, sampling_ratio,
                                aligned, size, dtype)
                for ends, out, size in (([1, 3], output_size[0], self.height),
                                        ([0, 2], output_size[1], self.width))]
        (self.wy, ty, py), (self.wx, tx, px) = axes
        self.taps = {"y": (ty, py), "x": (tx, px)}
        (y0, ny), (x0, nx) = _reach(ty), _reach(tx)
        sy, sx = _bucket(ny, self.height), _bucket(nx, self.width)
        self.y0, self.x0 = np.minimum(y0, self.height - sy), np.minimum(x0, self.width - sx)
        self.groups = []
        reads = (ny > 0) & (nx > 0)  # a box that reads nothing outputs 0
        key = sy * (self.width + 1) + sx
        for value in np.unique(key[reads]):
            boxes = np.flatnonzero(reads & (key == value))
            crop = (int(sy[boxes[0]]), int(sx[boxes[0]]))
            per_box = (crop[0] + output_size[0]) * crop[1] * self.channels * 8
            for part, _ in work_chunks(len(boxes), per_box):
                self.groups.append((boxes[part], crop))
        works = [len(boxes) * per_box for boxes, _ in self.groups]
        self.order, self.work = _balanced_order(works), sum(works) // 8

    def each_half(self, fn):
        """``fn(groups)`` for each of two halves of the groups of about equal work, the
        second on the worker thread (:func:`fancydl.parallel.halves`), BLAS on one
        thread (many small products: two halves beat BLAS's own threads)."""
        def run(order):
            return fn([self.groups[i] for i in order if i >= 0])

        with single_blas_thread():
            return halves(run, self.order, size=self.work)

    def crop_rows(self, boxes, crop):
        """(k, sy, sx) rows of each box's crop in the (N*H*W, C) table."""
        top = self.batch[boxes] * self.height + self.y0[boxes]
        rows = (top[:, None] + np.arange(crop[0]))[:, :, None] * self.width
        return rows + (self.x0[boxes][:, None] + np.arange(crop[1]))[:, None, :]

    def matrices(self, boxes, crop, name):
        """The crop's columns of an axis' (weights, (taps, positive)) matrices."""
        start = self.y0 if name == "y" else self.x0
        columns = (start[boxes][:, None] + np.arange(crop[0 if name == "y" else 1]))[:, None]
        take = lambda m: np.take_along_axis(m[boxes], columns, axis=2)  # noqa: E731
        weights = self.wy if name == "y" else self.wx
        return take(weights), tuple(take(m) for m in self.taps[name])


class _RoIAlign(Function):
    @staticmethod
    def forward(ctx, x, batch, corners, output_size, spatial_scale, sampling_ratio,
                aligned):
        plan = _RoIAlignPlan(x.shape, batch, corners, output_size, spatial_scale,
                             sampling_ratio, aligned, x.dtype)
        table = _nhwc_rows(x)
        out = np.zeros((len(batch),) + tuple(output_size) + (x.shape[1],), x.dtype)

        def fill(groups):  # the halves write disjoint boxes of out
            for boxes, crop in groups:
                (wy, ty), (wx, tx) = (plan.matrices(boxes, crop, axis) for axis in "yx")
                out[boxes] = _sandwich_nonfinite(wy, table[plan.crop_rows(boxes, crop)], wx,
                                                 ty, tx)

        plan.each_half(fill)
        ctx.plan, ctx.input_shape = plan, x.shape
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    @staticmethod
    def backward(ctx, grad):
        plan, (n, c, h, w) = ctx.plan, ctx.input_shape
        g = grad.transpose(0, 2, 3, 1)
        flip = lambda m: m.transpose(0, 2, 1)  # noqa: E731

        def accumulate(groups):  # each half adds into its own table
            table = np.zeros((n * h * w, c), grad.dtype)
            for boxes, crop in groups:
                (wy, ty), (wx, tx) = (plan.matrices(boxes, crop, axis) for axis in "yx")
                crop_grad = _sandwich_nonfinite(flip(wy), np.ascontiguousarray(g[boxes]),
                                                flip(wx), tuple(map(flip, ty)),
                                                tuple(map(flip, tx)))
                add_rows(table, plan.crop_rows(boxes, crop), crop_grad)
            return table

        with np.errstate(invalid="ignore"):  # inf + -inf = NaN, as in torchvision
            tables = plan.each_half(accumulate)
            table = tables[0] if len(tables) == 1 else np.add(*tables, out=tables[0])
        grad_x = table.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return (np.ascontiguousarray(grad_x), None, None, None, None, None, None)


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
              aligned=False):
    """ROI Align (Mask R-CNN), like ``torchvision.ops.roi_align``.

    No rounding: each box (scaled by ``spatial_scale``, shifted by -0.5 pixel when
    ``aligned``) is cut into ``output_size`` equal bins; each bin averages a regular
    grid of bilinear samples.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W), float32 or float64
    boxes : ndarray of shape (K, 5) or list of ndarrays of shape (L, 4)
        As in :func:`roi_pool`.
    output_size : int or (int, int)
    spatial_scale : float
    sampling_ratio : int
        Samples per bin along each axis; ``<= 0`` means ``ceil(box size / output
        size)``, chosen per box.
    aligned : bool
        Shift the box by half a pixel so that pixel centres sit at integer + 0.5
        coordinates; without it, a box is at least 1×1.

    Returns
    -------
    ndarray of shape (K, C, PH, PW)

    Notes
    -----
    A sample at ``y < -1`` or ``y > H`` (likewise x) counts as 0; between, it is
    clamped into the image and bilinearly interpolated from its four neighbours.
    Backward (with respect to ``input``) scatters each sample's gradient to those
    neighbours with the same weights.

    Sampling is separable, so each box is computed as ``W_y @ crop @ W_x^T`` per
    channel, with ``W_y`` (PH, rows) and ``W_x`` (PW, cols) holding the summed sample
    weights over the crop of the map the box reads: the cost of a box follows its own
    size (and only its samples inside ``[-1, H]`` are generated). Non-finite values
    propagate as in torchvision's sums of products (a tap of weight zero on an
    infinite value gives NaN), except that torchvision also multiplies pixel (0, 0)
    by zero for each sample outside the map; here such a sample reads nothing. Boxes
    must have finite coordinates of at most ``2**24`` pixels in magnitude once scaled
    (ValueError otherwise).

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> img = (10 * np.arange(8.0)[:, None] + np.arange(8.0))[None, None]
    >>> fancydl.roi_align(img, np.array([[0.0, 1, 1, 5, 5]]), 2)[0, 0]
    array([[22., 24.],
           [42., 44.]])
    """
    batch, corners = _check_rois("roi_align", input, boxes)
    size = check_pair("roi_align", "output_size", output_size, minimum=1)
    scale = check_real("roi_align", "spatial_scale", spatial_scale, 0, inclusive=False)
    _check_box_coordinates("roi_align", corners, scale)
    sampling_ratio = check_int("roi_align", "sampling_ratio", sampling_ratio)
    return _RoIAlign.apply(input, batch, corners, size, scale, sampling_ratio, bool(aligned))
