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
Windows of many offsets with little work each (a 1024 × 1024 window on one image would
be a million NumPy calls) are reduced one axis at a time instead: along each window's
columns, then down its rows (:func:`by_axes` decides), with the same results.

Semantics are PyTorch's (``torch.nn.functional``) and torchvision's (``torchvision.ops``
for ``roi_pool`` and ``roi_align``); min pooling and stochastic pooling, which PyTorch
lacks, follow the same conventions.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .autodiff import Function, constant_of, value_of
from .crosscheck import torch_reference, torchvision_ops
from .elementwise import neg
from .parallel import halves, single_blas_thread
from .validation import check_array, check_float_array, check_int, check_pair, check_real
from .windows import (WindowGeometry, add_rows, check_kernel_fits, fold_offsets,
                      kernel_offsets, offset_view, pad2d, phase_view, pool_output_size,
                      stride_phases, unpad2d, uses_phases, work_chunks)

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
    # (2,) means (2, 2), as in PyTorch's 2-d pooling.
    kernel = check_pair(op, "kernel_size", kernel_size, minimum=1, single=True)
    stride = (kernel if stride is None
              else check_pair(op, "stride", stride, minimum=1, single=True))
    padding = check_pair(op, "padding", padding, minimum=0, single=True)
    dilation = check_pair(op, "dilation", dilation, minimum=1, single=True)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding must be at most half of kernel_size "
                         f"({kernel[0] // 2}, {kernel[1] // 2}), got padding={padding} "
                         f"for kernel_size={kernel}")
    size = input.shape[-2:]
    out = tuple(pool_output_size(n, k, s, p, d, bool(ceil_mode))
                for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    if min(out) < 1:
        check_kernel_fits(op, size, kernel, tuple((p, p) for p in padding), dilation)
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


def _tap_dtype(count):
    """Smallest integer type that numbers ``count`` taps, and -1 (small types compare
    fastest)."""
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
    # The one window scatter-add of fancydl (convolution's col2im uses it too); where
    # windows overlap, inf + -inf = NaN and overflow to inf, as PyTorch's sums give.
    with np.errstate(invalid="ignore", over="ignore"):
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


# --- windows of many taps: one axis at a time ------------------------------------------
#
# The loop over the kH·kW kernel offsets makes one NumPy call per offset, however little
# each call has to do: a 1024 x 1024 window on one image is a million calls of one value
# each (seconds, where PyTorch takes milliseconds). A window's maximum or sum is also a
# reduction over each of its rows, then over those row results: kW calls along the
# columns, then kH along the rows. Each pass still reads strided views of the whole
# input (no copy of the windows), and a maximum keeps PyTorch's choice: the first
# maximum in row-major order is the first in the first row that holds the maximum.

#: Cost of one NumPy call over a view, in values processed: measured at 1 to 1.6
#: microseconds for a call, against 0.12 to 0.3 nanoseconds a value (np.greater and
#: np.maximum on float32, 10**5 to 10**6 values).
CALL_COST_VALUES = 4096


def by_axes(kernel, per_tap, first_pass):
    """Whether a window reduction should run along each axis instead of over each tap.

    Parameters
    ----------
    kernel : (kH, kW)
        Taps along the rows and along the columns of a window.
    per_tap : int
        Values one tap reads over all windows (the output's size).
    first_pass : int
        Values one column tap reads in the first pass (every row of the input).

    Returns
    -------
    bool
        True when the kW + kH passes cost less than half the kH·kW calls of the tap
        loop, each call counted as :data:`CALL_COST_VALUES` plus the values it reads.
        The margin keeps the tap loop wherever the two are close (the passes along
        the axes do more per value: where a maximum is, a take along the rows): the
        2 x 2 and 3 x 3 windows of ordinary networks never change path. Measured
        with this rule (float32, forward + backward): max_pool2d 5 x 5, stride 1
        on (8, 16, 32, 32) 4.9 ms against 11 ms over the taps, 32 x 32 stride 8 on
        (1, 1, 256, 256) 2.2 against 25 ms, 1024 x 1024 on one image 0.04 against
        12 s.

    Examples
    --------
    >>> by_axes((3, 3), per_tap=32 * 64 * 16 * 16, first_pass=32 * 64 * 33 * 16)
    False
    >>> by_axes((1024, 1024), per_tap=1, first_pass=1024)
    True
    """
    rows, cols = kernel
    taps = rows * cols * (CALL_COST_VALUES + per_tap)
    axes = cols * (CALL_COST_VALUES + first_pass) + rows * (CALL_COST_VALUES + per_tap)
    return 2 * axes < taps


def _fixed_by_axes(geom, input_shape):
    """:func:`by_axes` for a fixed-window pooling of an input of ``input_shape``."""
    planes = math.prod(input_shape[:-2])
    (oh, ow), padded_rows = geom.out_size, geom.padded_shape(input_shape)[-2]
    return by_axes(geom.kernel, planes * oh * ow, planes * padded_rows * ow)


def _axis_views(a, geom, axis):
    """The view of ``a`` (..., rows, cols) that each tap along one axis reads, in tap
    order: along the columns (``axis=-1``) for every row of ``a``, along the rows
    (``axis=-2``) for every column. Output position ``p`` of tap ``t`` reads index
    ``p s + t d`` of that axis (:func:`fancydl.windows.offset_view` with a kernel of one
    tap along the other axis). Writable views: adding to them accumulates into ``a``."""
    stride, dilation, size = [1, 1], [1, 1], list(a.shape[-2:])
    stride[axis], dilation[axis] = geom.stride[axis], geom.dilation[axis]
    size[axis] = geom.out_size[axis]
    for t in range(geom.kernel[axis]):
        yield offset_view(a, (0, t) if axis == -1 else (t, 0), stride, dilation, size)


def _sum_views(views):
    """The sum of an iterable of equally shaped views, a new array."""
    views = iter(views)
    total = next(views).copy()
    for view in views:
        np.add(total, view, out=total)
    return total


def _first_maximum(views, count):
    """Running maximum of ``count`` views, and the index of the first view holding it
    (only a strictly greater value moves it; a NaN is found by :func:`_last_true`)."""
    views = iter(views)
    best = next(views).copy()
    tap = np.zeros(best.shape, _tap_dtype(count))
    better, step = np.empty(best.shape, bool), np.empty(best.shape, tap.dtype)
    for k, view in enumerate(views, start=1):
        np.greater(view, best, out=better)
        np.maximum(best, view, out=best)
        # tap = where(better, k, tap), as integer arithmetic (faster than np.where)
        np.subtract(tap.dtype.type(k), tap, out=step)
        step *= better
        tap += step
    return best, tap


def _last_true(masks, shape, count):
    """Index of the last of ``count`` boolean masks that is True, -1 where none is."""
    last = np.full(shape, -1, _tap_dtype(count))
    for k, mask in enumerate(masks):
        np.copyto(last, k, where=mask)
    return last


def _maximum_by_axes(x, column_views, row_views, counts, row_read):
    """Each window's maximum, and the taps of PyTorch's choice, one axis at a time.

    The first maximum in row-major order; a window with a NaN reports its last NaN
    (PyTorch's CPU kernels take ``val > max || isnan(val)``).

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
    column_views, row_views : callable
        ``column_views(a)`` yields the views of ``a`` read by each column tap (every
        row kept), ``row_views(b)`` those of ``b`` read by each row tap.
    counts : (int, int)
        Row taps and column taps.
    row_read : callable
        ``row_read(row_tap)``: the row of the first pass's result (of ``x``) that
        each output reads with its row tap, shaped as ``row_tap``.

    Returns
    -------
    out : ndarray of shape (..., H_out, W_out)
    row_tap, col_tap : small-integer ndarrays of the same shape
    """
    row_best, col_tap = _first_maximum(column_views(x), counts[1])
    out, row_tap = _first_maximum(row_views(row_best), counts[0])
    has_nan = np.isnan(out)
    if has_nan.any():
        nan_col = _last_true((np.isnan(v) for v in column_views(x)), row_best.shape,
                             counts[1])
        nan_row = _last_true((v >= 0 for v in row_views(nan_col)), out.shape, counts[0])
        row_tap = np.where(has_nan, nan_row, row_tap)
        col_tap = np.where(has_nan, _at_rows(nan_col, row_read(row_tap)),
                           _at_rows(col_tap, row_read(row_tap)))
        return out, row_tap, col_tap
    return out, row_tap, _at_rows(col_tap, row_read(row_tap))


def _at_rows(a, rows):
    """``a[..., rows[..., h, w], w]``: one row of ``a`` per output position."""
    return np.take_along_axis(a, rows.astype(np.intp), axis=-2)


def _first_inside(geom, axis, size):
    """Per output position along one axis: the first tap that reads the input, not its
    padding (-1 for none: a dilated window can miss the input)."""
    read = (np.arange(geom.out_size[axis])[:, None] * geom.stride[axis]
            - geom.pad_widths[axis][0] + np.arange(geom.kernel[axis]) * geom.dilation[axis])
    inside = (read >= 0) & (read < size)
    return np.where(inside.any(axis=1), inside.argmax(axis=1), -1)


def _max_pool_by_axes(x, geom):
    """max_pool2d's output and flat indices (:func:`_flat_indices`) one axis at a time
    (:func:`_maximum_by_axes`); a window whose maximum is -inf points at its first real
    pixel, never at the padding, as :func:`_window_maximum`'s does."""
    oh, (sh, _), (dh, _) = geom.out_size[0], geom.stride, geom.dilation
    out, row_tap, col_tap = _maximum_by_axes(
        pad2d(x, geom.pad_widths, -np.inf), lambda a: _axis_views(a, geom, -1),
        lambda b: _axis_views(b, geom, -2), geom.kernel,
        lambda tap: np.arange(oh)[:, None] * sh + tap.astype(np.intp) * dh)
    stuck = np.isneginf(out)
    if any(p for pair in geom.pad_widths for p in pair) and stuck.any():
        row_tap = np.where(stuck, _first_inside(geom, 0, x.shape[-2])[:, None], row_tap)
        col_tap = np.where(stuck, _first_inside(geom, 1, x.shape[-1]), col_tap)
    return out, _flat_indices(row_tap, col_tap, geom, x.shape[-2:])


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
    out, chosen = _first_maximum(views, geom.taps)
    padded = any(p for pair in geom.pad_widths for p in pair)
    if padded and np.isneginf(out).any():
        # An all -inf window points at its first real pixel, never at the padding (a
        # window that misses the input keeps tap 0: no pixel, index -1).
        first_row = _first_inside(geom, 0, input_size[0])[:, None]
        first_col = _first_inside(geom, 1, input_size[1])
        stuck = np.isneginf(out) & (first_row >= 0) & (first_col >= 0)
        chosen = np.where(stuck, first_row * geom.kernel[1] + first_col,
                          chosen).astype(chosen.dtype)
    if np.isnan(out).any():
        last_nan = _last_true((np.isnan(view) for view in views), out.shape, geom.taps)
        chosen = np.where(last_nan >= 0, last_nan, chosen)
    return out, chosen


def _in_halves(one_half, x):
    """``one_half`` (returning a tuple of arrays) on each half of the batch, one per core
    (:func:`fancydl.parallel.halves`: windows never cross images or channels), joined."""
    parts = halves(one_half, x)
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(pair) for pair in zip(*parts))


def _max_pool_forward(x, geom):
    """:func:`_window_maximum` of the -inf padded input, by halves of the batch."""
    def one_half(half):
        views = _views(pad2d(half, geom.pad_widths, -np.inf), geom)
        return _window_maximum(views, geom, half.shape[-2:])

    return _in_halves(one_half, x)


def _flat_indices(row_tap, col_tap, geom, input_size):
    """PyTorch's pooling indices: ``h * W + w`` in the unpadded input plane, of the
    pixel that row tap ``row_tap`` and column tap ``col_tap`` read (-1: none)."""
    (sh, sw), (dh, dw), (oh, ow) = geom.stride, geom.dilation, geom.out_size
    row_tap, col_tap = row_tap.astype(np.int64), col_tap.astype(np.int64)
    rows = np.arange(oh)[:, None] * sh - geom.pad_widths[0][0] + row_tap * dh
    cols = np.arange(ow)[None, :] * sw - geom.pad_widths[1][0] + col_tap * dw
    inside = ((row_tap >= 0) & (col_tap >= 0) & (rows >= 0) & (rows < input_size[0])
              & (cols >= 0) & (cols < input_size[1]))
    # Only a window that misses the input entirely (possible with dilation) has no
    # real pixel to point at: -1.
    return np.where(inside, rows * input_size[1] + cols, -1)


class _MaxPool2d(Function):
    """The loop over the kernel taps, or for windows of many taps and little work
    (:func:`_fixed_by_axes`) one axis at a time, whose backward scatters by index."""

    @staticmethod
    def forward(ctx, x, geom, return_indices):
        ctx.geom, ctx.input_shape = geom, x.shape
        ctx.along_axes = _fixed_by_axes(geom, x.shape)
        if ctx.along_axes:
            out, indices = _in_halves(lambda half: _max_pool_by_axes(half, geom), x)
            ctx.save_for_backward(indices)  # the caller gets a copy: changing it is safe
            return (out, indices.copy()) if return_indices else out
        out, chosen = _max_pool_forward(x, geom)
        ctx.save_for_backward(chosen)
        if return_indices:
            return out, _flat_indices(*np.divmod(chosen, geom.kernel[1]), geom,
                                      x.shape[-2:])
        return out

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        (saved,) = ctx.saved
        if ctx.along_axes:
            return _scatter_to_planes(grad, saved, ctx.input_shape), None, None
        return _route_to_offsets(grad, saved, ctx.geom, ctx.input_shape), None, None


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
    PyTorch reports an index outside its window. Windows of many taps and little work
    (:func:`by_axes`) are reduced along their columns, then their rows.

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
    if isinstance(output_size, np.ndarray) and output_size.ndim == 1 \
            and np.issubdtype(output_size.dtype, np.integer):
        output_size = tuple(output_size.tolist())  # a shape, as NumPy takes it
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
    output_size : 2 (H_out, W_out) or 4 (N, C, H_out, W_out) ints, optional
        The pooled input's size, when the default is not it (max pooling rounds its
        output size down): each entry within ``stride - 1`` of the default. A tuple,
        a list or a 1-D integer array (NumPy's spelling of a shape; PyTorch takes a
        torch.Size).

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
    """Window sums over the divisor; both passes one half of the batch per core. The
    sums loop over the kernel taps, or for windows of many taps and little work
    (:func:`_fixed_by_axes`) run along the columns, then the rows. inf + -inf in a
    window is NaN and a float32 sum beyond its range inf, as in PyTorch, without a
    warning; along the axes, though, a window whose row sums overflow with opposite
    signs (3e38 + 3e38 in one row, -3e38 - 3e38 in the next) gives NaN where
    PyTorch's row-major sum gives inf."""

    @staticmethod
    def forward(ctx, x, geom, divisor):
        along_axes = _fixed_by_axes(geom, x.shape)

        def one_half(half, out):
            padded = pad2d(half, geom.pad_widths, 0.0)
            if along_axes:
                row_sums = _sum_views(_axis_views(padded, geom, -1))
                np.copyto(out, _sum_views(_axis_views(row_sums, geom, -2)))
            else:
                views = _views(padded, geom)
                np.copyto(out, views[0])
                for view in views[1:]:
                    np.add(out, view, out=out)
            out /= divisor

        out = np.empty(x.shape[:-2] + tuple(geom.out_size), x.dtype)
        with np.errstate(invalid="ignore", over="ignore"):  # reaches the worker too
            halves(one_half, x, out)
        ctx.geom, ctx.divisor, ctx.input_shape = geom, divisor, x.shape
        ctx.along_axes = along_axes
        return out

    @staticmethod
    def backward(ctx, grad):
        geom = ctx.geom

        def one_half(grad, out):
            share = grad / ctx.divisor
            if ctx.along_axes:
                _spread_by_axes(share, geom, out)
            else:
                _scatter_to_input([share] * geom.taps, geom, out.shape, grad.dtype, out=out)

        grad_input = np.empty(ctx.input_shape, grad.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            halves(one_half, grad, grad_input, size=grad_input.size)  # input-sized work
        return grad_input, None, None


def _spread_by_axes(share, geom, out):
    """Adjoint of the window sums along the columns, then the rows: each output's
    ``share`` (..., H_out, W_out) added to every pixel of its window, rows first, then
    columns, cropped into ``out`` (..., H, W)."""
    padded_shape = geom.padded_shape(out.shape)
    row_grad = np.zeros(padded_shape[:-1] + (geom.out_size[1],), share.dtype)
    for view in _axis_views(row_grad, geom, -2):
        view += share
    padded = np.zeros(padded_shape, share.dtype)
    for view in _axis_views(padded, geom, -1):
        view += row_grad
    out[...] = unpad2d(padded, geom.pad_widths)


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

    Notes
    -----
    Windows of many taps and little work (:func:`by_axes`) are summed along their
    columns, then their rows: the same sums, added in another order (in float32, a
    window whose partial sums overflow can then give NaN where PyTorch gives ±inf).

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
    """``output_size`` as a pair of ints >= 0 (0: an empty output, as in PyTorch); a
    None entry keeps the input's size."""
    if output_size is None or isinstance(output_size, numbers.Integral):
        pair = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        pair = tuple(output_size)
    else:
        raise TypeError(f"{op}: output_size must be an int or a pair of ints (None "
                        f"keeps the input's size), got {output_size!r}")
    pair = tuple(n if s is None else s for s, n in zip(pair, input_size))
    return check_pair(op, "output_size", pair, minimum=0)


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
    """The loop over every offset inside the largest bin, or for bins of many offsets
    and little work (:func:`by_axes`) one axis at a time; the backward scatters by index."""

    @staticmethod
    def forward(ctx, x, output_size, return_indices):
        (h, w), (oh, ow) = x.shape[-2:], output_size
        ctx.input_shape = x.shape
        if oh == 0 or ow == 0:
            out, indices = np.empty(x.shape[:-2] + output_size, x.dtype), \
                np.empty(x.shape[:-2] + output_size, np.int64)
        else:
            rows = [index for index, _ in _bin_offsets(*adaptive_bins(h, oh))]
            cols = [index for index, _ in _bin_offsets(*adaptive_bins(w, ow))]
            planes = math.prod(x.shape[:-2])
            if by_axes((len(rows), len(cols)), planes * oh * ow, planes * h * ow):
                out, indices = _adaptive_max_by_axes(x, rows, cols)
            else:
                out, indices = _adaptive_max_by_offsets(x, rows, cols)
        ctx.save_for_backward(indices)  # the caller gets a copy: changing it is safe
        return (out, indices.copy()) if return_indices else out

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        (indices,) = ctx.saved
        return _scatter_to_planes(grad, indices, ctx.input_shape), None, None


def _adaptive_max_by_offsets(x, rows, cols):
    """Adaptive max pooling as a loop over every (row, column) offset inside the largest
    bin; ``rows`` and ``cols`` hold the index each bin reads at each offset (offsets
    past a bin's end re-read its last element: harmless for a maximum).

    Returns the output and the flat index ``h W + w`` of each maximum (the first one;
    a window with a NaN: its last NaN).
    """
    width = x.shape[-1]
    reads = [(r[:, None], c[None, :]) for r in rows for c in cols]
    views = [x[..., r, c] for r, c in reads]
    out, tap = _first_maximum(views, len(views))
    if np.isnan(out).any():
        last_nan = _last_true((np.isnan(view) for view in views), out.shape, len(views))
        tap = np.where(last_nan >= 0, last_nan, tap)
    # The pixel each (offset, bin) reads, then the one of each bin's chosen offset.
    pixels = np.stack([np.broadcast_to(r * width + c, out.shape[-2:]) for r, c in reads])
    return out, pixels[tap, np.arange(out.shape[-2])[:, None], np.arange(out.shape[-1])]


def _adaptive_max_by_axes(x, rows, cols):
    """:func:`_adaptive_max_by_offsets` one axis at a time (:func:`_maximum_by_axes`)."""
    row_index, col_index = np.array(rows), np.array(cols)  # (offsets, bins) each
    down, across = np.arange(len(rows[0]))[:, None], np.arange(len(cols[0]))
    out, row_tap, col_tap = _maximum_by_axes(
        x, lambda a: (a[..., c] for c in cols), lambda b: (b[..., r, :] for r in rows),
        (len(rows), len(cols)), lambda tap: row_index[tap, down])
    return out, row_index[row_tap, down] * x.shape[-1] + col_index[col_tap, across]


def _scatter_to_planes(grad, indices, input_shape):
    """Add ``grad[..., i, j]`` to the input at flat plane index ``indices[..., i, j]``
    (-1: nowhere)."""
    plane = input_shape[-2] * input_shape[-1]
    planes = int(np.prod(input_shape[:-2], dtype=np.int64))
    base = (np.arange(planes) * plane).reshape(input_shape[:-2] + (1, 1))
    flat, weights = (indices + base).ravel(), grad.ravel()
    if indices.size and indices.min() < 0:
        kept = indices.ravel() >= 0
        flat, weights = flat[kept], weights[kept]
    total = np.bincount(flat, weights=weights, minlength=planes * plane)
    with np.errstate(over="ignore"):  # a float32 sum beyond its range is inf, as in torch
        return total.astype(grad.dtype).reshape(input_shape)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive max pooling, like ``torch.nn.functional.adaptive_max_pool2d``.

    Output cell ``i`` of an axis of length ``n`` covers the bin
    ``[floor(i n / out), ceil((i + 1) n / out))`` (:func:`adaptive_bins`).

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W) or (C, H, W)
    output_size : int or (int or None, int or None)
        None keeps that axis' input size; 0 gives an empty output, as in PyTorch
        (whose backward then raises; here the gradient is zero).
    return_indices : bool

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out) (or (C, H_out, W_out))
    indices : int64 ndarray, only if ``return_indices``
        Flat ``h * W + w`` of each maximum (first maximum; a NaN's position if any).

    Notes
    -----
    Bins of many pixels and little work (:func:`by_axes`; e.g. global max pooling of
    one large image) are reduced along their columns, then their rows, with the same
    result.
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
        if oh == 0 or ow == 0:
            return np.empty(x.shape[:-2] + output_size, x.dtype)
        # inf + -inf in a bin is NaN, a float32 sum beyond its range inf, as in PyTorch
        with np.errstate(invalid="ignore", over="ignore"):
            return _bin_means(_bin_means(x, h, oh, -2), w, ow, -1)

    @staticmethod
    def backward(ctx, grad):
        (h, w), (oh, ow) = ctx.input_shape[-2:], ctx.output_size
        if oh == 0 or ow == 0:  # an empty output reads nothing
            return np.zeros(ctx.input_shape, grad.dtype), None
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
        None keeps that axis' input size; 0 gives an empty output (and a zero
        gradient). Bins as in :func:`adaptive_max_pool2d`.

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

def _window_peaks(views):
    """Each region's maximum (1 for an all-zero region): dividing a region by it keeps
    the sums below in [1, number of offsets], so that neither they nor the squares
    overflow or underflow where the result itself is finite (float32 sums of 2e19
    squared, or 1e-25 squared, would)."""
    peak = views[0].copy()
    for view in views[1:]:
        np.maximum(peak, view, out=peak)
    return np.where(peak > 0, peak, np.ones((), peak.dtype))


def _sample_offsets(views, peak, rng):
    """Draw one offset per region with probability ``value / total`` (-1: all-zero region).

    Inverse-CDF sampling: the first offset whose running sum exceeds ``u * total``, with
    ``u`` uniform in [0, 1); the values are divided by the region's ``peak`` first
    (:func:`_window_peaks`), which leaves the probabilities as they are. A zero entry
    never increases the running sum, so it is never drawn.
    """
    total = np.zeros_like(peak)
    for view in views:
        total += view / peak
    threshold = rng.random(total.shape, dtype=total.dtype) * total
    chosen = np.full(total.shape, -1, np.int32)
    last_positive = np.full(total.shape, -1, np.int32)
    running = np.zeros_like(total)
    for k, view in enumerate(views):
        running += view / peak
        np.copyto(chosen, k, where=(chosen < 0) & (running > threshold))
        np.copyto(last_positive, k, where=view > 0)
    # Rounding can leave u * total at or above the final running sum: take the last
    # positive entry then, which is where exact arithmetic would have landed.
    return np.where(chosen < 0, last_positive, chosen)


class _StochasticPool2dTrain(Function):
    @staticmethod
    def forward(ctx, x, geom, rng):
        views = _views(x, geom)
        chosen = _sample_offsets(views, _window_peaks(views), rng)
        out = np.zeros(chosen.shape, x.dtype)
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
    ``ds/da_i = (2 a_i S - sum a^2) / S^2``; an all-zero region gives 0 and no gradient.

    Computed on the region divided by its maximum ``m`` (:func:`_window_peaks`): with
    ``T = sum a / m`` and ``R = sum (a / m)^2 / T`` (at most 1), ``s = m R`` and
    ``ds/da_i = (2 a_i / m - R) / T``.
    """

    @staticmethod
    def forward(ctx, x, geom):
        views = _views(x, geom)
        peak = _window_peaks(views)
        total, squares = np.zeros_like(peak), np.zeros_like(peak)
        for view in views:
            scaled = view / peak
            total += scaled
            squares += scaled * scaled
        positive = total > 0
        safe_total = np.where(positive, total, np.ones((), x.dtype))
        ratio = squares / safe_total
        out = np.where(positive, peak * ratio, np.zeros((), x.dtype))
        ctx.save_for_backward(x, peak, safe_total, ratio, positive)
        ctx.geom = geom
        return out

    @staticmethod
    def backward(ctx, grad):
        x, peak, safe_total, ratio, positive = ctx.saved
        geom = ctx.geom
        # An infinite upstream gradient gives inf and NaN (inf * 0), without a warning.
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.where(positive, grad / safe_total, np.zeros((), grad.dtype))
            pieces = (scaled * (2 * (view / peak) - ratio) for view in _views(x, geom))
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
    """C's ``round``: halves go away from zero (2.5 -> 3, -2.5 -> -3); NumPy's go to even.

    The rule of :func:`fancydl.references.c_round` (the loop reference's, written per
    value), elementwise and exact for every float: ``floor(|x| + 0.5)`` would round
    0.49999999999999994 up (the sum rounds to 1), and in float32 the odd integers
    between 2**23 and 2**24 too (their sum with 0.5 rounds to the even neighbour above).
    """
    whole = np.trunc(x)
    return np.where(np.abs(x - whole) == 0.5, whole + np.sign(x), np.round(x))


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
    """First maximum of every bin of some boxes, and where it is, as torchvision finds
    it: the first value in row-major order above all before it, starting from
    -FLT_MAX (so NaN and -inf are never picked).

    Parameters
    ----------
    table : ndarray of shape (N*H*W, C)
        The input, one row per pixel (:func:`_nhwc_rows`).
    plane : int ndarray of shape (K,)
        First table row of each box's image.
    h0, h1, w0, w1 : int ndarrays of shape (K, PH) and (K, PW)
        Bin bounds (:func:`_roi_pool_bins`).
    width : int
        W.
    tall, wide : int
        At least the largest bin's height and width.

    Returns
    -------
    best : ndarray of shape (K, PH, PW, C)
        0 for an empty bin.
    where : int64 ndarray of the same shape
        ``h * W + w`` of the maximum in its plane, -1 for none.
    """
    dtype, c = table.dtype, table.shape[1]
    empty = (h1 <= h0)[:, :, None] | (w1 <= w0)[:, None, :]  # (K, PH, PW)
    lowest = np.asarray(-np.finfo(np.float32).max, dtype)
    best = np.where(empty, np.zeros((), dtype), lowest)[..., None].repeat(c, axis=-1)
    span = int(np.max(h1[:, -1] - h0[:, 0], initial=1))  # rows from a box's first bin
    if by_axes((tall, wide), best.size, len(plane) * span * w0.shape[1] * c):
        return _bin_maxima_by_axes(table, plane, h0, h1, w0, w1, width, tall, wide,
                                   best, span)
    return _bin_maxima_by_offsets(table, plane, h0, h1, w0, w1, width, tall, wide, best)


def _bin_maxima_by_offsets(table, plane, h0, h1, w0, w1, width, tall, wide, best):
    """:func:`_bin_maxima` as a loop over the offsets ``(dy, dx)`` inside a ``tall`` ×
    ``wide`` bin, gathering that offset of every bin of every box (all channels in one
    gather) and masking the bins that are smaller. ``best`` holds the starting values."""
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


def _bin_maxima_by_axes(table, plane, h0, h1, w0, w1, width, tall, wide, best, span):
    """:func:`_bin_maxima` one axis at a time, for bins of many pixels: the first
    maximum in each column bin of every row a box spans (``span`` rows from its first
    bin's top: ``wide`` gathers), then the first of those down each row bin (``tall``
    gathers). Boxes are taken in chunks whose row maxima fit in the work buffer
    (:func:`fancydl.windows.work_chunks`)."""
    where = np.full(best.shape, -1, np.int64)
    per_box = span * w0.shape[1] * table.shape[1] * (3 * table.dtype.itemsize + 4)
    for part, _ in work_chunks(len(plane), per_box):
        best[part], where[part] = _first_maxima_down_rows(
            *_first_maxima_across_columns(table, plane[part], h0[part], h1[part],
                                          w0[part], w1[part], width, wide, span),
            h0[part], h1[part], w0[part], width, tall, best[part])
    return best, where


def _first_maxima_across_columns(table, plane, h0, h1, w0, w1, width, wide, span):
    """For each of the ``span`` rows from each box's top and each column bin: the
    first maximum above -FLT_MAX, and its column offset (-1: none).

    Returns ndarrays of shape (K, span, PW, C): the maxima, and the offsets as small
    integers.
    """
    top = h0[:, 0]
    # Rows past a box's last bin are read clamped into the image, never used.
    rows = np.minimum(top[:, None] + np.arange(span), np.maximum(h1[:, -1:] - 1, 0))
    lowest = np.asarray(-np.finfo(np.float32).max, table.dtype)
    row_best = np.full(rows.shape + (w0.shape[1], table.shape[1]), lowest, table.dtype)
    offset = np.full(row_best.shape, -1, _tap_dtype(wide))
    for dx in range(wide):
        cols = w0 + dx
        inside = cols < w1
        pixel = rows[:, :, None] * width + np.where(inside, cols, 0)[:, None, :]
        values = table[plane[:, None, None] + pixel]
        better = inside[:, None, :, None] & (values > row_best)
        row_best = np.where(better, values, row_best)
        offset[better] = dx
    return row_best, offset


def _first_maxima_down_rows(row_best, offset, h0, h1, w0, width, tall, best):
    """The first of the row maxima (:func:`_first_maxima_across_columns`) above
    ``best`` down each row bin, and where it is (``h * W + w``, -1: none)."""
    row = np.full(best.shape, -1, np.int64)
    column = np.zeros(best.shape, offset.dtype)
    for dy in range(tall):
        rows = h0 + dy
        inside = rows < h1
        local = np.where(inside, rows - h0[:, :1], 0)[:, :, None, None]
        values = np.take_along_axis(row_best, local, axis=1)
        better = inside[:, :, None, None] & (values > best)
        best = np.where(better, values, best)
        row = np.where(better, rows[:, :, None, None], row)
        column = np.where(better, np.take_along_axis(offset, local, axis=1), column)
    return best, np.where(row >= 0, row * width + w0[:, None, :, None] + column, -1)


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
        with np.errstate(over="ignore"):  # a float32 sum beyond its range is inf
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
    torchvision's integer casts overflow): ValueError otherwise. An empty map (H or W
    = 0) has only empty bins: zeros, as in torchvision. Bins of many pixels and little
    work (:func:`by_axes`) are reduced along their columns, then down their rows, with
    the same result.
    """
    batch, corners = _check_rois("roi_pool", input, boxes)
    size = check_pair("roi_pool", "output_size", output_size, minimum=1)
    scale = check_real("roi_pool", "spatial_scale", spatial_scale, 0, inclusive=False)
    _check_box_coordinates("roi_pool", corners, scale)
    return _RoIPool.apply(input, batch, corners, size, scale)


@torch_reference("roi_pool")
def _torch_roi_pool(torch, input, boxes, output_size, spatial_scale=1.0):
    """torchvision.ops.roi_pool"""
    return torchvision_ops("roi_pool").roi_pool(input, boxes, output_size, spatial_scale)


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
        ctx.input_shape = x.shape
        if 0 in x.shape[1:]:  # no channel, or an empty map that no sample can read
            ctx.plan = None
            return np.zeros((len(batch), x.shape[1]) + tuple(output_size), x.dtype)
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
        ctx.plan = plan
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    @staticmethod
    def backward(ctx, grad):
        plan, (n, c, h, w) = ctx.plan, ctx.input_shape
        if plan is None:
            return (np.zeros(ctx.input_shape, grad.dtype),) + (None,) * 6
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
    (ValueError otherwise). An input without channels gives the empty (K, 0, PH, PW)
    output, as torchvision does; an empty map (H or W = 0), which no sample can read,
    gives zeros, as :func:`roi_pool` and torchvision's roi_pool do (torchvision's
    roi_align would read outside the map there).

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


@torch_reference("roi_align")
def _torch_roi_align(torch, input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
                     aligned=False):
    """torchvision.ops.roi_align"""
    return torchvision_ops("roi_align").roi_align(input, boxes, output_size, spatial_scale,
                                                  sampling_ratio, aligned)
