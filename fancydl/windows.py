"""Sliding windows: the one mechanism behind convolution and pooling.

Convolution is "slide a window, multiply by the kernel and reduce"; pooling is "slide
a window and reduce". Both are written here as a loop over the k×k kernel offsets
``(i, j)``: for each offset, the input pixels that offset sees, over all output
positions at once, form one strided view of the padded input
(:func:`offset_view`). The backward pass adds gradients into the same views
(:func:`add_to_offset`). No Python loop runs over batch, channels or pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["effective_kernel_size", "conv_output_size", "conv_transpose_output_size",
           "receptive_field", "pool_output_size", "pad2d",
           "unpad2d", "kernel_offsets", "offset_view", "add_to_offset", "stride_phases",
           "phase_view", "phase_zeros", "merge_phases"]


def effective_kernel_size(kernel_size, dilation=1):
    """Extent of a dilated kernel: ``k + (k - 1)(d - 1) = d(k - 1) + 1``.

    Examples
    --------
    >>> effective_kernel_size(3, dilation=2)
    5
    """
    return dilation * (kernel_size - 1) + 1


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output length of a convolution along one axis (PyTorch's formula).

    ``floor((size + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1``; the
    ``padding`` may also be a pair ``(before, after)``.

    Examples
    --------
    >>> conv_output_size(32, 3, stride=2, padding=1)
    16
    """
    before, after = (padding, padding) if np.isscalar(padding) else padding
    span = size + before + after - effective_kernel_size(kernel_size, dilation)
    return span // stride + 1


def conv_transpose_output_size(size, kernel_size, stride=1, padding=0, output_padding=0,
                               dilation=1):
    """Output length of a transposed convolution along one axis (PyTorch's formula).

    ``(size - 1) stride - 2 padding + dilation (kernel_size - 1) + output_padding + 1``:
    the largest input length that the matching convolution maps to ``size`` is this
    with ``output_padding = stride - 1``.

    Examples
    --------
    >>> conv_transpose_output_size(16, 4, stride=2, padding=1)
    32
    """
    return ((size - 1) * stride - 2 * padding + effective_kernel_size(kernel_size, dilation)
            + output_padding)


def receptive_field(layers):
    """Receptive field (in input pixels, along one axis) of a stack of window layers.

    Each layer widens the field by ``(effective kernel - 1)`` times the product of the
    strides of the layers before it (the distance, in input pixels, between its
    neighbouring inputs).

    Parameters
    ----------
    layers : iterable of (kernel_size, stride, dilation)
        From the input up; stride and dilation may be omitted (default 1).

    Returns
    -------
    int

    Examples
    --------
    >>> receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)])
    15
    """
    field, jump = 1, 1
    for layer in layers:
        kernel_size, stride, dilation = (tuple(layer) + (1, 1))[:3]
        field += (effective_kernel_size(kernel_size, dilation) - 1) * jump
        jump *= stride
    return field


def pool_output_size(size, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """Output length of a pooling window along one axis, with ``ceil_mode``.

    With ``ceil_mode`` the division rounds up, but a last window is kept only if it
    starts inside the input or the left padding (PyTorch's rule).

    Examples
    --------
    >>> pool_output_size(5, 2, 2, ceil_mode=True)
    3
    """
    span = size + 2 * padding - effective_kernel_size(kernel_size, dilation)
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pad2d(x, padding, value=0.0):
    """Pad the last two axes of ``x``.

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
    padding : ((top, bottom), (left, right))
        Counts may exceed what the output needs (ceil_mode windows).
    value : float
        Fill value (0 for convolution, -inf for max pooling).

    Returns
    -------
    ndarray of shape (..., H + top + bottom, W + left + right), a copy only if padded
    """
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def unpad2d(x, padding):
    """Inverse of :func:`pad2d` for gradients: crop the padding off the last two axes."""
    (top, bottom), (left, right) = padding
    height, width = x.shape[-2:]
    return x[..., top:height - bottom, left:width - right]


def kernel_offsets(kernel_size):
    """All offsets ``(i, j)`` of a ``(kH, kW)`` kernel, in row-major order."""
    kh, kw = kernel_size
    return [(i, j) for i in range(kh) for j in range(kw)]


def _offset_slices(offset, stride, dilation, out_size):
    (i, j), (sh, sw), (dh, dw), (oh, ow) = offset, stride, dilation, out_size
    rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
    cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
    return rows, cols


def offset_view(x_padded, offset, stride, dilation, out_size):
    """The pixels kernel offset ``(i, j)`` sees at every output position.

    Output position ``(h, w)`` reads ``x_padded[..., h*sH + i*dH, w*sW + j*dW]``.

    Parameters
    ----------
    x_padded : ndarray of shape (..., Hp, Wp)
    offset, stride, dilation, out_size : pairs of int

    Returns
    -------
    ndarray of shape (..., H_out, W_out), a strided view (no copy)
    """
    rows, cols = _offset_slices(offset, stride, dilation, out_size)
    return x_padded[..., rows, cols]


def add_to_offset(grad_padded, offset, stride, dilation, values):
    """Backward of :func:`offset_view`: ``grad_padded[view of offset] += values`` in place.

    Parameters
    ----------
    grad_padded : ndarray of shape (..., Hp, Wp)
    values : ndarray of shape (..., H_out, W_out)
    """
    rows, cols = _offset_slices(offset, stride, dilation, values.shape[-2:])
    grad_padded[..., rows, cols] += values


# --- stride phases: the same views, read with unit stride ---------------------------------
#
# With stride s, offset_view reads every s-th pixel of a row, a strided access that NumPy
# runs several times slower than a contiguous one. Splitting the padded input once into
# its s_H x s_W *phases* (phase (a, b) holds the pixels at rows a, a + s_H, ... and columns
# b, b + s_W, ...) turns every offset view into a unit-stride block of one phase.

def stride_phases(x_padded, stride):
    """Split the last two axes into their stride phases, each a contiguous array.

    Parameters
    ----------
    x_padded : ndarray of shape (..., Hp, Wp)
    stride : (int, int)

    Returns
    -------
    dict mapping (a, b) to ndarray of shape (..., ceil((Hp - a) / sH), ceil((Wp - b) / sW))
        Phase (a, b) is ``x_padded[..., a::sH, b::sW]``. With stride 1 the single phase
        is ``x_padded`` itself (no copy).
    """
    sh, sw = stride
    if sh == sw == 1:
        return {(0, 0): x_padded}
    return {(a, b): np.ascontiguousarray(x_padded[..., a::sh, b::sw])
            for a in range(sh) for b in range(sw)}


def phase_view(phases, offset, stride, dilation, out_size):
    """:func:`offset_view` read from :func:`stride_phases`: same values, unit stride.

    Output position ``(h, w)`` reads padded row ``h*sH + i*dH``, which is row
    ``h + (i*dH) // sH`` of phase ``(i*dH) % sH`` (the same for columns).

    Returns
    -------
    ndarray of shape (..., H_out, W_out), a view of one phase (writable: adding to it
    accumulates into that phase)
    """
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_size
    row, col = offset[0] * dh, offset[1] * dw
    plane = phases[(row % sh, col % sw)]
    return plane[..., row // sh:row // sh + oh, col // sw:col // sw + ow]


def phase_zeros(padded_shape, stride, dtype):
    """Zero stride phases of an array of ``padded_shape``, to accumulate a gradient in."""
    (sh, sw), (height, width) = stride, padded_shape[-2:]
    return {(a, b): np.zeros(tuple(padded_shape[:-2]) + (len(range(a, height, sh)),
                                                         len(range(b, width, sw))), dtype)
            for a in range(sh) for b in range(sw)}


def merge_phases(phases, padded_shape, stride, crop=((0, 0), (0, 0)), out=None):
    """Inverse of :func:`stride_phases`, optionally cropping padding off as it goes.

    Parameters
    ----------
    phases : dict from :func:`stride_phases` or :func:`phase_zeros`
    padded_shape : tuple
        Shape of the array the phases came from.
    stride : (int, int)
    crop : ((top, bottom), (left, right))
        Padding to drop, as :func:`unpad2d` would (one copy instead of two).
    out : ndarray, optional
        Where to write the result (of ``padded_shape`` less the crop).

    Returns
    -------
    ndarray of ``padded_shape`` less the crop
    """
    (sh, sw), ((top, bottom), (left, right)) = stride, crop
    height, width = padded_shape[-2] - top - bottom, padded_shape[-1] - left - right
    shape = tuple(padded_shape[:-2]) + (height, width)
    merged = np.empty(shape, phases[(0, 0)].dtype) if out is None else out
    for (a, b), plane in phases.items():
        first_row, first_col = -(-(top - a) // sh), -(-(left - b) // sw)  # ceil division
        first_row, first_col = max(first_row, 0), max(first_col, 0)
        row0, col0 = a + sh * first_row - top, b + sw * first_col - left
        rows, cols = len(range(row0, height, sh)), len(range(col0, width, sw))
        merged[..., row0::sh, col0::sw] = plane[..., first_row:first_row + rows,
                                                first_col:first_col + cols]
    return merged
