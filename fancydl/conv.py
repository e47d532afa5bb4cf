"""Convolution: ``conv2d``, ``conv_transpose2d``, ``im2col``/``col2im`` and a loop reference.

Everything here is built on the sliding-window mechanism of :mod:`fancydl.windows`:
for each kernel offset ``(i, j)``, :func:`~fancydl.windows.offset_view` is the strided
view of the padded input that this offset sees at every output position, and
:func:`~fancydl.windows.add_to_offset` is its adjoint (scatter-add). From these two:

* :func:`im2col` copies the k×k views into one matrix (PyTorch's ``unfold``) and
  :func:`col2im` adds them back (``fold``);
* :func:`conv2d` is ``weight matrix @ im2col(input)``, one (grouped) GEMM, computed a
  batch chunk at a time so that the im2col buffer never exceeds
  :data:`IM2COL_BUDGET_BYTES`;
* the input-gradient of ``conv2d`` is ``col2im(weight matrixᵀ @ grad)``, and
  :func:`conv_transpose2d` *is* that function (same code), which is the point of the
  transposed-convolution chapter;
* the weight-gradient is ``grad @ im2col(input)ᵀ`` summed over the batch.

Two faster strategies compute the same thing where im2col does not pay: depthwise
convolution (one input channel per group) multiply-accumulates the k×k views without
any GEMM, and a dense stride-1 convolution with enough channels copies only the kH
kernel *rows* of the padded input and gets the kW kernel columns by *shifting*
products: one GEMM of all the taps per batch chunk, then kW shifted slices of the
product added up. Its weight-gradient runs one GEMM per kernel offset over shifted rows
of the flattened padded input (the view of an offset is then a contiguous block).

Memory: the im2col buffer of a chunk of ``n`` images holds ``n · C_in · kH · kW · H_out
· W_out`` values, about ``k² / stride²`` times the input; the batch is cut into chunks
whose buffer stays within :data:`IM2COL_BUDGET_BYTES` (16 MiB; at least one image per
chunk: a single huge image may exceed it). Smaller chunks cost no speed here, since the
GEMMs are per image anyway. The stride-1 forward chunks the batch the same way, its
buffers (about kH copies of the input and kW of the output) within the same budget; its
weight-gradient and the depthwise strategy need no such buffer: a few copies of the
input and output.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from .autodiff import Function
from .crosscheck import torch_reference
from .validation import (check_array, check_choice, check_float_array, check_int,
                         check_pair, check_same_dtype)
from .windows import (conv_output_size, conv_transpose_output_size,
                      effective_kernel_size, kernel_offsets, offset_view, add_to_offset,
                      pad2d, receptive_field, unpad2d)

__all__ = ["conv2d", "conv_transpose2d", "im2col", "col2im", "conv2d_loops",
           "conv_transpose2d_zero_insertion", "insert_zeros", "conv_output_size",
           "conv_transpose_output_size", "effective_kernel_size", "receptive_field",
           "IM2COL_BUDGET_BYTES"]

#: Largest im2col buffer (bytes) built at once; the batch is chunked to stay within it.
IM2COL_BUDGET_BYTES = 16 * 2**20

#: Depthwise passes walk the image planes in blocks of about this many output bytes, so
#: that a block stays in the (L2) cache across its k×k passes.
CACHE_BLOCK_BYTES = 256 * 2**10


# --- geometry -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Geometry:
    """Validated window arguments of one convolution.

    ``padding`` is ``((top, bottom), (left, right))``: 'same' may pad asymmetrically.
    """

    kernel_size: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int = 1

    def padded_shape(self, shape):
        """Shape ``(..., H, W)`` after padding."""
        (top, bottom), (left, right) = self.padding
        return shape[:-2] + (shape[-2] + top + bottom, shape[-1] + left + right)

    def output_size(self, height, width):
        """Output (H_out, W_out) of the convolution on an (H, W) input."""
        return tuple(conv_output_size(size, k, s, p, d) for size, k, s, p, d in zip(
            (height, width), self.kernel_size, self.stride, self.padding, self.dilation))


def _batch_chunks(batch, bytes_per_image, budget=None):
    """Slices of the batch whose im2col buffers fit in ``budget`` bytes (>= 1 image).

    As few chunks as the budget allows, all of the same size but the last.
    """
    budget = IM2COL_BUDGET_BYTES if budget is None else budget
    most = max(1, int(budget // max(bytes_per_image, 1)))
    count = -(-batch // most)
    step = -(-batch // count) if count else 1
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


def _is_depthwise(weight_shape, groups):
    """One input channel per group (and more than one group): no GEMM is needed."""
    return groups > 1 and weight_shape[1] == 1


# --- im2col / col2im on padded arrays: the shared core -----------------------------------

def _unfold_padded(x_padded, geom, out_size):
    """The k×k offset views of a padded input, copied side by side.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C, Hp, Wp)
    out_size : (H_out, W_out)

    Returns
    -------
    ndarray of shape (N, C, kH, kW, H_out, W_out)
    """
    n, c = x_padded.shape[:2]
    cols = np.empty((n, c) + tuple(geom.kernel_size) + tuple(out_size), x_padded.dtype)
    for i, j in kernel_offsets(geom.kernel_size):
        cols[:, :, i, j] = offset_view(x_padded, (i, j), geom.stride, geom.dilation,
                                       out_size)
    return cols


def _fold_padded(cols, padded_shape, geom):
    """Adjoint of :func:`_unfold_padded`: add every column back where it was read.

    Parameters
    ----------
    cols : ndarray of shape (N, C, kH, kW, H_out, W_out)
    padded_shape : (N, C, Hp, Wp)

    Returns
    -------
    ndarray of shape ``padded_shape``
    """
    out = np.zeros(padded_shape, cols.dtype)
    for i, j in kernel_offsets(geom.kernel_size):
        add_to_offset(out, (i, j), geom.stride, geom.dilation, cols[:, :, i, j])
    return out


# --- the three kernels of convolution: forward, input-gradient, weight-gradient -----------
#
# Each picks one of three strategies, all exact:
#   shifted GEMM  stride 1, groups 1, >= SHIFTED_GEMM_MIN_CHANNELS input channels:
#                 forward (and input-gradient): one GEMM per batch chunk over kH copied
#                 kernel rows, the kW kernel columns by shifting its products;
#                 weight-gradient: k×k GEMMs over shifted rows of the flattened image;
#   depthwise     one input channel per group: k×k elementwise multiply-accumulates;
#   im2col        everything else: one grouped GEMM per batch chunk of im2col columns.

def _conv_forward(x, weight, geom, out_size=None):
    """Cross-correlate ``x`` with ``weight`` (no bias).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in / groups, kH, kW)
    out_size : (H_out, W_out), optional
        Defaults to the full output; a smaller one computes only its top-left part.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out)
    """
    out_size = geom.output_size(*x.shape[2:]) if out_size is None else tuple(out_size)
    if _use_shifted_gemm(weight.shape, geom):
        return _shifted_forward(x, weight, geom, out_size)
    if _is_depthwise(weight.shape, geom.groups):
        return _depthwise_forward(x, weight, geom, out_size)
    return _im2col_forward(x, weight, geom, out_size)


def _conv_input_grad(grad, weight, input_shape, geom):
    """Gradient of :func:`_conv_forward` with respect to its input.

    This is also the forward pass of the transposed convolution.

    Parameters
    ----------
    grad : ndarray of shape (N, C_out, H_out, W_out)
    weight : ndarray of shape (C_out, C_in / groups, kH, kW)
    input_shape : (N, C_in, H, W)

    Returns
    -------
    ndarray of shape ``input_shape``
    """
    if _use_shifted_gemm(weight.shape, geom) and _is_full_correlation(grad.shape,
                                                                     input_shape, geom):
        return _shifted_input_grad(grad, weight, geom)
    padded_shape = geom.padded_shape(tuple(input_shape))
    if _is_depthwise(weight.shape, geom.groups):
        grad_padded = _depthwise_input_grad(grad, weight, padded_shape, geom)
    else:
        grad_padded = _col2im_input_grad(grad, weight, padded_shape, geom)
    return unpad2d(grad_padded, geom.padding)


def _conv_weight_grad(grad, x, weight_shape, geom):
    """Gradient of :func:`_conv_forward` with respect to the weight.

    Parameters
    ----------
    grad : ndarray of shape (N, C_out, H_out, W_out)
    x : ndarray of shape (N, C_in, H, W)
    weight_shape : (C_out, C_in / groups, kH, kW)

    Returns
    -------
    ndarray of shape ``weight_shape``
    """
    # The shifted rows also read wrap-around pixels (times a zero gradient): harmless
    # only when they are finite, since 0 * nan = nan.
    if _use_shifted_gemm(weight_shape, geom) and np.isfinite(x).all():
        return _shifted_weight_grad(grad, x, weight_shape, geom)
    if _is_depthwise(weight_shape, geom.groups):
        return _depthwise_weight_grad(grad, pad2d(x, geom.padding), weight_shape, geom)
    return _im2col_weight_grad(grad, x, weight_shape, geom)


# --- the im2col strategy ------------------------------------------------------------------

def _im2col_forward(x, weight, geom, out_size):
    """``out = W_matrix @ im2col(x)``, one grouped GEMM per batch chunk.

    ``W_matrix`` is (groups, C_out/groups, K) with ``K = C_in/groups · kH · kW``; the
    columns of a chunk are (n, groups, K, L), ``L = H_out · W_out``.
    """
    n, c_in = x.shape[:2]
    c_out, groups = weight.shape[0], geom.groups
    x_padded = pad2d(x, geom.padding)
    k = c_in // groups * weight.shape[2] * weight.shape[3]
    w_matrix = weight.reshape(groups, c_out // groups, k)
    out = np.empty((n, groups, c_out // groups, out_size[0] * out_size[1]), x.dtype)
    for chunk in _batch_chunks(n, groups * k * out_size[0] * out_size[1] * x.itemsize):
        cols = _unfold_padded(x_padded[chunk], geom, out_size)
        cols = cols.reshape(cols.shape[0], groups, k, -1)
        out[chunk] = np.matmul(w_matrix, cols)  # (matmul's out= is much slower here)
    return out.reshape(n, c_out, *out_size)


def _col2im_input_grad(grad, weight, padded_shape, geom):
    """``col2im(W_matrixᵀ @ grad)``, per batch chunk; returns the padded gradient."""
    n, c_out, oh, ow = grad.shape
    c_in, groups = padded_shape[1], geom.groups
    k = c_in // groups * weight.shape[2] * weight.shape[3]
    w_matrix_t = weight.reshape(groups, c_out // groups, k).transpose(0, 2, 1)
    grad_groups = grad.reshape(n, groups, c_out // groups, oh * ow)
    grad_padded = np.empty(padded_shape, grad.dtype)
    for chunk in _batch_chunks(n, groups * k * oh * ow * grad.itemsize):
        cols = np.matmul(w_matrix_t, grad_groups[chunk])
        cols = cols.reshape(cols.shape[0], c_in, *weight.shape[2:], oh, ow)
        grad_padded[chunk] = _fold_padded(cols, (cols.shape[0],) + padded_shape[1:], geom)
    return grad_padded


def _im2col_weight_grad(grad, x, weight_shape, geom):
    """``sum over the batch of grad @ im2col(x)ᵀ``, per batch chunk."""
    n, c_out, oh, ow = grad.shape
    c_in, groups = x.shape[1], geom.groups
    x_padded = pad2d(x, geom.padding)
    k = c_in // groups * weight_shape[2] * weight_shape[3]
    grad_groups = grad.reshape(n, groups, c_out // groups, oh * ow)
    total = np.zeros((groups, c_out // groups, k), grad.dtype)
    for chunk in _batch_chunks(n, groups * k * oh * ow * grad.itemsize):
        cols = _unfold_padded(x_padded[chunk], geom, (oh, ow))
        cols = cols.reshape(cols.shape[0], groups, k, oh * ow)
        # Per image and group (C_out/g, L) @ (L, K); BLAS reads the transpose in place.
        total += np.matmul(grad_groups[chunk], cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return total.reshape(weight_shape)


# --- stride 1, dense: kernel rows copied, kernel columns shifted, no k×k im2col ----------

#: The shifted-GEMM path needs this many input channels to keep its GEMMs efficient.
SHIFTED_GEMM_MIN_CHANNELS = 16


def _use_shifted_gemm(weight_shape, geom):
    """Stride 1, one group and enough channels: use :func:`_shifted_forward`."""
    return (geom.stride == (1, 1) and geom.groups == 1
            and weight_shape[1] >= SHIFTED_GEMM_MIN_CHANNELS)


def _shifted_forward(x, weight, geom, out_size):
    """Stride-1 convolution as one GEMM per batch chunk: kernel rows copied, kernel
    columns shifted.

    Lay each padded image out as ``H_out`` rows of ``Wp`` pixels (the padded width), one
    image after another, so that output position ``(n, t, v)`` is column ``q = (n·H_out
    + t)·Wp + v``. Kernel row ``i`` reads padded row ``t + i·dH``: :func:`_copy_kernel_rows`
    copies it into row ``(c, i)`` of a ``(C_in·kH, n·H_out·Wp)`` matrix (kH copies of the
    input, not k²). Kernel column ``j`` then reads column ``q + j·dW`` of that matrix,
    and a shift commutes with a matrix product, so the kW column offsets need no copy:
    one GEMM of all the taps, rows ``(j, o)`` and columns ``(c, i)``, with the matrix
    gives kW products, and :func:`_add_column_shifts` adds product ``j`` shifted by
    ``j·dW``. The positions ``v >= W_out`` of each row are computed and discarded (a
    waste of ``(kW - 1) dW / Wp``). One GEMM with ``K = C_in·kH`` and ``kW·C_out`` rows
    keeps BLAS near its peak: the k×k thinner GEMMs (``K = C_in``) that it replaces,
    accumulated, were measured 1.7 times slower on a 64-channel 3×3 layer.

    Memory: the copied rows and the products take ``(C_in·kH + C_out·kW) · H_out · Wp``
    values per image, so the batch is cut into chunks within
    :data:`IM2COL_BUDGET_BYTES`, with both buffers reused from chunk to chunk.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out)
    """
    n, c_in, _, width = x.shape
    c_out, _, kh, kw = weight.shape
    left, right = geom.padding[1]
    wp = left + width + right
    grid = (out_size[0], wp)                   # one image's rows of columns
    tail = geom.dilation[1] * (kw - 1)         # read past the last image by the last shifts
    taps = weight.transpose(3, 0, 1, 2).reshape(kw * c_out, c_in * kh)  # (j, o) x (c, i)
    chunks = _batch_chunks(n, (c_in * kh + kw * c_out) * grid[0] * wp * x.itemsize)
    span = (chunks[0].stop if chunks else 0) * grid[0] * wp + tail
    rows = np.zeros((c_in * kh, span), x.dtype)   # padding is never written: stays zero
    products = np.empty((kw * c_out, span), x.dtype)
    out = np.empty((n, c_out) + tuple(out_size), x.dtype)
    for chunk in chunks:
        length = (chunk.stop - chunk.start) * grid[0] * wp + tail
        _copy_kernel_rows(x[chunk], rows, geom, grid)
        np.matmul(taps, rows[:, :length], out=products[:, :length])
        _add_column_shifts(products, out[chunk], geom.dilation[1], grid)
    return out


def _copy_kernel_rows(x, rows, geom, grid):
    """Row ``(c, i)`` of ``rows`` gets, image after image, the padded rows ``t + i·dH``
    (``t < H_out``) of channel ``c``: ``rows[(c, i), (n, t, left + u)] = x[n, c, t + i·dH
    - top, u]``. Only the image pixels are written; the padding keeps its zeros.

    Parameters
    ----------
    x : ndarray of shape (n, C_in, H, W)
    rows : ndarray of shape (C_in·kH, >= n·H_out·Wp)
    grid : (H_out, Wp)
    """
    n, c_in, height, width = x.shape
    kh, dh = geom.kernel_size[0], geom.dilation[0]
    (top, _), (left, _) = geom.padding
    rows_out, wp = grid
    target = rows[:, :n * rows_out * wp].reshape(c_in, kh, n, rows_out, wp)
    images = x.transpose(1, 0, 2, 3)  # (C_in, n, H, W), like target[:, i]
    for i in range(kh):
        first = max(0, top - i * dh)                   # first output row on the image
        stop = min(rows_out, top + height - i * dh)
        if first < stop:
            source = images[:, :, first + i * dh - top:stop + i * dh - top]
            target[:, i, :, first:stop, left:left + width] = source


def _add_column_shifts(products, out, dw, grid):
    """``out[n, o, t, v] = sum over j of products[(j, o), (n, t, v) + j·dW]``, ``v < W_out``.

    Parameters
    ----------
    products : ndarray of shape (kW·C_out, >= n·H_out·Wp + (kW - 1)·dW)
    out : ndarray of shape (n, C_out, H_out, W_out), written in place
    dw : int
        Horizontal dilation: the shift between neighbouring kernel columns.
    grid : (H_out, Wp)
    """
    n, c_out, rows_out, w_out = out.shape
    kw = products.shape[0] // c_out
    length = n * rows_out * grid[1]

    def shifted(j):
        return products[j * c_out:(j + 1) * c_out, j * dw:j * dw + length]

    def cropped(block):
        return block.reshape(c_out, n, rows_out, grid[1])[..., :w_out]

    total = shifted(0)
    for j in range(1, kw - 1):
        np.add(total, shifted(j), out=total)  # in place, over product 0
    target = out.transpose(1, 0, 2, 3)        # (C_out, n, H_out, W_out), like the products
    if kw == 1:
        target[...] = cropped(total)
    else:
        np.add(cropped(total), cropped(shifted(kw - 1)), out=target)


def _shifted_rows(x, geom):
    """The padded input with each channel flattened to one row: ``(N, C, Hp·Wp + tail)``.

    Returns
    -------
    flat : ndarray
    wp : int
        Padded width (the length of one image row within a row of ``flat``).
    rows_out : int
        Output rows of the stride-1 convolution.
    shifts : list of int
        Shift of each kernel offset, in :func:`kernel_offsets` order.
    """
    n, c_in, height, width = x.shape
    (top, bottom), (left, right) = geom.padding
    hp, wp = height + top + bottom, width + left + right
    (kh, kw), (dh, dw) = geom.kernel_size, geom.dilation
    tail = -(-dw * (kw - 1) // wp) * wp  # whole extra rows, read by the last shifts only
    flat = np.zeros((n, c_in, hp * wp + tail), x.dtype)
    image = flat[:, :, :hp * wp].reshape(n, c_in, hp, wp)
    image[:, :, top:top + height, left:left + width] = x
    shifts = [i * dh * wp + j * dw for i, j in kernel_offsets(geom.kernel_size)]
    return flat, wp, hp - dh * (kh - 1), shifts


def _shifted_weight_grad(grad, x, weight_shape, geom):
    """Stride-1 weight-gradient: per offset, ``sum_n grad rows @ shifted rowsᵀ``.

    ``grad`` is laid out on the same (rows_out, Wp) grid as :func:`_shifted_forward`'s
    output, with zeros in the discarded columns so that they contribute nothing.
    """
    n, c_out, oh, ow = grad.shape
    flat, wp, rows_out, shifts = _shifted_rows(x, geom)
    grad_rows = np.zeros((n, c_out, rows_out, wp), grad.dtype)
    grad_rows[:, :, :oh, :ow] = grad
    grad_rows = grad_rows.reshape(n, c_out, rows_out * wp)
    out = np.empty(weight_shape, grad.dtype)
    for (i, j), shift in zip(kernel_offsets(geom.kernel_size), shifts):
        rows = flat[:, :, shift:shift + rows_out * wp]  # (N, C_in, L)
        out[:, :, i, j] = np.matmul(grad_rows, rows.transpose(0, 2, 1)).sum(axis=0)
    return out


def _is_full_correlation(grad_shape, input_shape, geom):
    """Can the stride-1 input-gradient be computed as a convolution of ``grad`` padded
    by ``d(k-1) - p``? Yes when that padding is >= 0 and ``grad`` is the whole output
    (a transposed convolution's ``output_padding`` can make the input larger)."""
    return (tuple(grad_shape[2:]) == geom.output_size(*input_shape[2:])
            and all(max(p) <= d * (k - 1) for p, d, k in zip(geom.padding, geom.dilation,
                                                            geom.kernel_size)))


def _shifted_input_grad(grad, weight, geom):
    """Stride-1 input-gradient = a stride-1 convolution of ``grad`` with the kernel
    rotated by 180° and its channels swapped, padded by ``d(k-1) - p`` (the "full"
    correlation), computed by :func:`_shifted_forward`."""
    flipped = weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    padding = tuple((d * (k - 1) - before, d * (k - 1) - after) for (before, after), d, k
                    in zip(geom.padding, geom.dilation, geom.kernel_size))
    full = _Geometry(geom.kernel_size, (1, 1), padding, geom.dilation)
    return _shifted_forward(grad, flipped, full, full.output_size(*grad.shape[2:]))


# --- depthwise: multiply-accumulate over the k×k offsets, no GEMM --------------------------

def _depthwise_split(weight, n_channels):
    """Weight (C·m, 1, kH, kW) as (C, m, kH, kW): channel c feeds outputs c·m ... c·m+m-1."""
    return weight.reshape(n_channels, weight.shape[0] // n_channels, *weight.shape[2:])


def _depthwise_forward(x, weight, geom, out_size):
    """Depthwise forward: ``out[n, c, q] = sum_ij w[c, q, i, j] view_ij[n, c]``.

    Each (image, channel) plane is independent, so the work is organized over the
    N·C planes ("rows"). With stride 1 the views are contiguous shifted rows of the
    flattened padded planes (:func:`_shifted_rows`: long inner loops, a few
    discarded columns); otherwise they are the strided :func:`offset_view` windows.

    Returns
    -------
    ndarray of shape (N, C·m, H_out, W_out)
    """
    n, c = x.shape[:2]
    taps = np.tile(_depthwise_split(weight, c), (n, 1, 1, 1))  # (N·C, m, kH, kW)
    if geom.stride == (1, 1):
        flat, wp, rows_out, shifts = _shifted_rows(x, geom)
        planes = flat.reshape(n * c, -1)
        length = rows_out * wp

        def view(block, number, offset):
            return planes[block, None, shifts[number]:shifts[number] + length]

        out = _depthwise_accumulate(view, taps, geom, (length,), x.dtype)
        out = out.reshape(n, -1, rows_out, wp)[:, :, :out_size[0], :out_size[1]]
        return np.ascontiguousarray(out)
    planes = pad2d(x, geom.padding).reshape(n * c, *geom.padded_shape(x.shape)[2:])

    def view(block, number, offset):
        return offset_view(planes[block], offset, geom.stride, geom.dilation,
                           out_size)[:, None]

    out = _depthwise_accumulate(view, taps, geom, tuple(out_size), x.dtype)
    return out.reshape(n, -1, *out_size)


def _depthwise_accumulate(view, taps, geom, spatial, dtype):
    """``out[r, q] = sum over offsets (i, j) of taps[r, q, i, j] * view(i, j)[r]``.

    The N·C planes are walked in blocks of about :data:`CACHE_BLOCK_BYTES` of output,
    so that the k×k multiply and add passes over a block stay in the cache.

    Parameters
    ----------
    view : callable (plane slice, offset number, offset) -> array (b, 1, *spatial)
    taps : ndarray of shape (N·C, m, kH, kW)

    Returns
    -------
    ndarray of shape (N·C, m, *spatial)
    """
    rows, m = taps.shape[:2]
    out = np.empty((rows, m) + spatial, dtype)
    blocks = _batch_chunks(rows, out[0].nbytes, CACHE_BLOCK_BYTES)
    scratch = np.empty_like(out[blocks[0]] if blocks else out)
    broadcast = (slice(None), slice(None)) + (None,) * len(spatial)
    for block in blocks:
        out_block = out[block]
        product = scratch[:out_block.shape[0]]
        for number, (i, j) in enumerate(kernel_offsets(geom.kernel_size)):
            tap = taps[block, :, i, j][broadcast]
            if number == 0:
                np.multiply(view(block, number, (i, j)), tap, out=out_block)
            else:
                np.multiply(view(block, number, (i, j)), tap, out=product)
                out_block += product
    return out


def _depthwise_input_grad(grad, weight, padded_shape, geom):
    """Depthwise input-gradient, on the padded input: scatter ``sum_q w[c,q,i,j] grad``."""
    n, c = padded_shape[:2]
    w = _depthwise_split(weight, c)[None, :, :, :, :, None, None]
    grad5 = grad.reshape(n, c, w.shape[2], *grad.shape[2:])
    grad_padded = np.zeros(padded_shape, grad.dtype)
    for block in _batch_chunks(n, grad5[0].nbytes, CACHE_BLOCK_BYTES):
        for i, j in kernel_offsets(geom.kernel_size):
            contribution = (grad5[block] * w[..., i, j, :, :]).sum(axis=2)
            add_to_offset(grad_padded[block], (i, j), geom.stride, geom.dilation,
                          contribution)
    return grad_padded


def _depthwise_weight_grad(grad, x_padded, weight_shape, geom):
    """Depthwise weight-gradient: ``dw[c, q, i, j] = sum_{n,h,w} grad[n,c,q] view_ij[n,c]``."""
    n, c = x_padded.shape[:2]
    m = weight_shape[0] // c
    grad5 = grad.reshape(n, c, m, *grad.shape[2:])
    out = np.empty((c, m) + tuple(weight_shape[2:]), grad.dtype)
    for i, j in kernel_offsets(geom.kernel_size):
        view = offset_view(x_padded, (i, j), geom.stride, geom.dilation, grad.shape[2:])
        out[:, :, i, j] = np.einsum("ncqhw,nchw->cq", grad5, view, optimize=True)
    return out.reshape(weight_shape)


# --- conv2d ---------------------------------------------------------------------------

class _Conv2d(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, geom):
        out = _conv_forward(input, weight, geom)
        if bias is not None:
            out += bias[:, None, None]
        ctx.save_for_backward(input, weight)
        ctx.geom = geom
        return out

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved
        needs = ctx.needs_input_grad
        grad_input = (_conv_input_grad(grad, weight, input.shape, ctx.geom)
                      if needs[0] else None)
        grad_weight = (_conv_weight_grad(grad, input, weight.shape, ctx.geom)
                       if needs[1] else None)
        grad_bias = grad.sum(axis=(0, 2, 3)) if needs[2] else None
        return grad_input, grad_weight, grad_bias, None


def _check_conv_arrays(op, input, weight, bias):
    """Types, ranks and dtypes of input (N, C, H, W) or (C, H, W), weight and bias."""
    check_float_array(op, "input", input, ndim=(3, 4))
    check_float_array(op, "weight", weight, ndim=4)
    if bias is not None:
        check_float_array(op, "bias", bias, ndim=1)
    check_same_dtype(op, input=input, weight=weight, bias=bias)


def _check_groups(op, input_channels, weight, groups, transposed):
    """Channel/group consistency; returns the number of output channels."""
    groups = check_int(op, "groups", groups, minimum=1)
    if transposed:
        if weight.shape[0] != input_channels:
            raise ValueError(f"{op}: weight of shape {weight.shape} expects "
                             f"{weight.shape[0]} input channels (its dimension 0), but "
                             f"input has {input_channels} channels")
        if input_channels % groups:
            raise ValueError(f"{op}: groups={groups} must divide the {input_channels} "
                             f"input channels")
        return weight.shape[1] * groups
    if weight.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the weight's {weight.shape[0]} "
                         f"output channels (its dimension 0)")
    if weight.shape[1] * groups != input_channels:
        raise ValueError(f"{op}: weight of shape {weight.shape} has {weight.shape[1]} "
                         f"input channels per group, so with groups={groups} the input "
                         f"must have {weight.shape[1] * groups} channels, but it has "
                         f"{input_channels}")
    return weight.shape[0]


def _check_bias(op, bias, out_channels):
    if bias is not None and bias.shape[0] != out_channels:
        raise ValueError(f"{op}: bias must have one entry per output channel "
                         f"({out_channels}), got shape {bias.shape}")


def _same_padding(kernel_size, dilation):
    """'same' padding: total d(k-1) per axis, the odd extra pixel at the bottom/right."""
    pads = []
    for k, d in zip(kernel_size, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _conv_padding(op, padding, stride, kernel_size, dilation):
    """Normalize conv2d's padding (int, pair, 'same' or 'valid') to ((t, b), (l, r))."""
    if isinstance(padding, str):
        check_choice(op, "padding", padding, ("same", "valid"))
        if padding == "valid":
            return ((0, 0), (0, 0))
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided "
                             f"convolutions: stride must be 1, got stride={stride}")
        return _same_padding(kernel_size, dilation)
    ph, pw = check_pair(op, "padding", padding, minimum=0)
    return ((ph, ph), (pw, pw))


def _check_output_size(op, spatial, geom, out_size):
    if min(out_size) <= 0:
        padded = geom.padded_shape(tuple(spatial))
        effective = tuple(effective_kernel_size(k, d)
                          for k, d in zip(geom.kernel_size, geom.dilation))
        raise ValueError(f"{op}: the (dilated) kernel of size {effective} (kernel_size "
                         f"{geom.kernel_size}, dilation {geom.dilation}) is larger than "
                         f"the padded input of size {padded} (input {tuple(spatial)}, "
                         f"padding {geom.padding}); the output would be {out_size}")


def _conv2d_geometry(op, input, weight, bias, stride, padding, dilation, groups):
    """Validate conv2d's arguments; returns the geometry."""
    _check_conv_arrays(op, input, weight, bias)
    out_channels = _check_groups(op, input.shape[-3], weight, groups, transposed=False)
    _check_bias(op, bias, out_channels)
    stride = check_pair(op, "stride", stride, minimum=1)
    dilation = check_pair(op, "dilation", dilation, minimum=1)
    kernel_size = tuple(weight.shape[2:])
    pads = _conv_padding(op, padding, stride, kernel_size, dilation)
    geom = _Geometry(kernel_size, stride, pads, dilation, int(groups))
    _check_output_size(op, input.shape[-2:], geom, geom.output_size(*input.shape[-2:]))
    return geom


def _batched(input, unbatched_ndim=3):
    """View an unbatched (C, H, W) input as a batch of one (differentiably)."""
    from .elementwise import reshape
    if input.ndim == unbatched_ndim:
        return reshape(input, (1,) + tuple(input.shape)), True
    return input, False


def _unbatched(out, was_unbatched):
    from .elementwise import reshape
    return reshape(out, tuple(out.shape[1:])) if was_unbatched else out


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), like ``torch.nn.functional.conv2d``.

    ``out[n, o, h, w] = bias[o] + sum_{c, i, j} weight[o, c, i, j]
    · x_pad[n, g·C_in/groups + c, h·sH + i·dH, w·sW + j·dW]`` where ``g`` is output
    channel ``o``'s group.

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W) or (C_in, H, W), float32 or float64
    weight : ndarray of shape (C_out, C_in / groups, kH, kW), input's dtype
    bias : ndarray of shape (C_out,), optional
    stride : int or (int, int)
    padding : int, (int, int), 'valid' or 'same'
        'same' keeps H and W (only with stride 1); when the dilated kernel
        ``d(k - 1) + 1`` is even the extra zero goes at the bottom/right.
    dilation : int or (int, int)
    groups : int
        Split input and output channels into ``groups`` independent convolutions.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out) (or without N),
        ``H_out = floor((H + pad_top + pad_bottom - dH (kH - 1) - 1) / sH) + 1``.

    Notes
    -----
    Computed as one grouped GEMM per batch chunk of im2col columns (the buffer stays
    within :data:`IM2COL_BUDGET_BYTES`); for depthwise weights (one input channel per
    group) as a multiply-accumulate over the kH·kW offsets; for stride 1, one group and
    at least :data:`SHIFTED_GEMM_MIN_CHANNELS` input channels, as one GEMM per batch
    chunk over kH copies of the image rows, adding up kW column-shifted slices of its
    product (no k×k im2col buffer).

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> fancydl.conv2d(x, np.ones((1, 1, 2, 2)), stride=2)[0, 0]
    array([[10., 18.],
           [42., 50.]])
    """
    geom = _conv2d_geometry("conv2d", input, weight, bias, stride, padding, dilation,
                            groups)
    input, was_unbatched = _batched(input)
    return _unbatched(_Conv2d.apply(input, weight, bias, geom), was_unbatched)


# --- conv_transpose2d -------------------------------------------------------------------

class _ConvTranspose2d(Function):
    """Forward = conv2d's input-gradient; backward = conv2d forward and weight-gradient."""

    @staticmethod
    def forward(ctx, input, weight, bias, geom, output_size):
        n = input.shape[0]
        out_channels = weight.shape[1] * geom.groups
        out = _conv_input_grad(input, weight, (n, out_channels) + tuple(output_size), geom)
        if bias is not None:
            out += bias[:, None, None]
        ctx.save_for_backward(input, weight)
        ctx.geom = geom
        return out

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved
        needs = ctx.needs_input_grad
        grad_input = (_conv_forward(grad, weight, ctx.geom, out_size=input.shape[2:])
                      if needs[0] else None)
        grad_weight = (_conv_weight_grad(input, grad, weight.shape, ctx.geom)
                       if needs[1] else None)
        grad_bias = grad.sum(axis=(0, 2, 3)) if needs[2] else None
        return grad_input, grad_weight, grad_bias, None, None


def _conv_transpose2d_geometry(op, input, weight, bias, stride, padding, output_padding,
                               groups, dilation):
    """Validate conv_transpose2d's arguments; returns (geometry, output (H, W))."""
    _check_conv_arrays(op, input, weight, bias)
    out_channels = _check_groups(op, input.shape[-3], weight, groups, transposed=True)
    _check_bias(op, bias, out_channels)
    stride = check_pair(op, "stride", stride, minimum=1)
    dilation = check_pair(op, "dilation", dilation, minimum=1)
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or a pair of ints (PyTorch's "
                        f"conv_transpose2d has no string padding), got {padding!r}")
    ph, pw = check_pair(op, "padding", padding, minimum=0)
    extra = check_pair(op, "output_padding", output_padding, minimum=0)
    for axis, (a, s, d) in enumerate(zip(extra, stride, dilation)):
        if a >= max(s, d):
            raise ValueError(f"{op}: output_padding must be smaller than either stride or "
                             f"dilation in each dimension, got output_padding={extra} "
                             f"with stride={stride} and dilation={dilation}")
    kernel_size = tuple(weight.shape[2:])
    geom = _Geometry(kernel_size, stride, ((ph, ph), (pw, pw)), dilation, int(groups))
    out_size = tuple(conv_transpose_output_size(size, k, s, p, a, d) for size, k, s, p, a, d
                     in zip(input.shape[-2:], kernel_size, stride, (ph, pw), extra,
                            dilation))
    if min(out_size) <= 0:
        raise ValueError(f"{op}: the output size (H_in - 1)·stride - 2·padding + "
                         f"dilation·(kernel_size - 1) + output_padding + 1 would be "
                         f"{out_size} for input {tuple(input.shape[-2:])}, kernel_size "
                         f"{kernel_size}, stride {stride}, padding {(ph, pw)}, "
                         f"output_padding {extra}, dilation {dilation}: too much padding")
    return geom, out_size


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed convolution, like ``torch.nn.functional.conv_transpose2d``.

    It is the adjoint (the input-gradient) of :func:`conv2d` with the same weight,
    stride, padding, dilation and groups: ``<conv2d(x, w), y> = <x,
    conv_transpose2d(y, w)>``. It is computed by the very function that computes
    conv2d's input-gradient. Note the argument order: groups before dilation.

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W) or (C_in, H, W), float32 or float64
    weight : ndarray of shape (C_in, C_out / groups, kH, kW)
        conv2d's layout for the convolution it transposes (C_in is *its* output).
    bias : ndarray of shape (C_out,), optional
    stride, padding, dilation : int or (int, int)
        Those of the convolution being transposed; padding crops the output.
    output_padding : int or (int, int)
        Extra rows/columns at the bottom/right, smaller than max(stride, dilation):
        picks which of the input sizes that conv2d maps to H is meant.
    groups : int

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out) (or without N),
        ``H_out = (H - 1) sH - 2 pH + dH (kH - 1) + output_padding + 1``.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> fancydl.conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2)[0, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    geom, out_size = _conv_transpose2d_geometry("conv_transpose2d", input, weight, bias,
                                                stride, padding, output_padding, groups,
                                                dilation)
    input, was_unbatched = _batched(input)
    out = _ConvTranspose2d.apply(input, weight, bias, geom, out_size)
    return _unbatched(out, was_unbatched)


# --- im2col / col2im (PyTorch's unfold / fold) ----------------------------------------

class _Im2col(Function):
    @staticmethod
    def forward(ctx, input, geom):
        out_size = geom.output_size(*input.shape[2:])
        cols = _unfold_padded(pad2d(input, geom.padding), geom, out_size)
        ctx.geom, ctx.input_shape = geom, input.shape
        return cols.reshape(input.shape[0], -1, out_size[0] * out_size[1])

    @staticmethod
    def backward(ctx, grad):
        geom, shape = ctx.geom, ctx.input_shape
        out_size = geom.output_size(*shape[2:])
        cols = grad.reshape(shape[:2] + tuple(geom.kernel_size) + out_size)
        padded = _fold_padded(cols, geom.padded_shape(tuple(shape)), geom)
        return unpad2d(padded, geom.padding), None


class _Col2im(Function):
    @staticmethod
    def forward(ctx, cols, geom, output_size, channels):
        out_size = geom.output_size(*output_size)
        n = cols.shape[0]
        blocks = cols.reshape((n, channels) + tuple(geom.kernel_size) + out_size)
        padded_shape = geom.padded_shape((n, channels) + tuple(output_size))
        ctx.geom, ctx.output_size = geom, tuple(output_size)
        return unpad2d(_fold_padded(blocks, padded_shape, geom), geom.padding)

    @staticmethod
    def backward(ctx, grad):
        geom = ctx.geom
        out_size = geom.output_size(*ctx.output_size)
        cols = _unfold_padded(pad2d(grad, geom.padding), geom, out_size)
        return cols.reshape(grad.shape[0], -1, out_size[0] * out_size[1]), None, None, None


def _window_geometry(op, kernel_size, dilation, padding, stride):
    kernel_size = check_pair(op, "kernel_size", kernel_size, minimum=1)
    dilation = check_pair(op, "dilation", dilation, minimum=1)
    ph, pw = check_pair(op, "padding", padding, minimum=0)
    stride = check_pair(op, "stride", stride, minimum=1)
    return _Geometry(kernel_size, stride, ((ph, ph), (pw, pw)), dilation)


def im2col(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding blocks as columns, like ``torch.nn.functional.unfold``.

    Column ``l`` (output position ``(h, w)``, row-major) holds the window that
    output position reads, flattened channel-major then kernel row, kernel column.
    (Argument order as PyTorch's ``unfold``: dilation, padding, stride.)

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W) or (C, H, W), float
    kernel_size, dilation, padding, stride : int or (int, int)

    Returns
    -------
    ndarray of shape (N, C·kH·kW, L) (or without N), ``L = H_out · W_out``

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> fancydl.im2col(np.arange(9.0).reshape(1, 1, 3, 3), 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    op = "im2col"
    check_float_array(op, "input", input, ndim=(3, 4))
    geom = _window_geometry(op, kernel_size, dilation, padding, stride)
    _check_output_size(op, input.shape[-2:], geom, geom.output_size(*input.shape[-2:]))
    input, was_unbatched = _batched(input)
    return _unbatched(_Im2col.apply(input, geom), was_unbatched)


def col2im(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum sliding blocks back into an image, like ``torch.nn.functional.fold``.

    The adjoint of :func:`im2col` (not its inverse: overlapping pixels are summed).

    Parameters
    ----------
    input : ndarray of shape (N, C·kH·kW, L) or (C·kH·kW, L), float
    output_size : int or (int, int)
        The image size (H, W); ``L`` must equal the number of windows on it.
    kernel_size, dilation, padding, stride : int or (int, int)

    Returns
    -------
    ndarray of shape (N, C, H, W) (or without N)
    """
    op = "col2im"
    check_float_array(op, "input", input, ndim=(2, 3))
    output_size = check_pair(op, "output_size", output_size, minimum=1)
    geom = _window_geometry(op, kernel_size, dilation, padding, stride)
    out_size = geom.output_size(*output_size)
    _check_output_size(op, output_size, geom, out_size)
    per_block = geom.kernel_size[0] * geom.kernel_size[1]
    rows, length = input.shape[-2:]
    if rows % per_block:
        raise ValueError(f"col2im: input's dimension -2 must be divisible by kH·kW = "
                         f"{per_block} (kernel_size {geom.kernel_size}), got {rows}")
    if length != out_size[0] * out_size[1]:
        padding = (geom.padding[0][0], geom.padding[1][0])
        raise ValueError(f"col2im: input has {length} columns (dimension -1) but "
                         f"output_size {output_size}, kernel_size {geom.kernel_size}, "
                         f"dilation {geom.dilation}, padding {padding} and stride "
                         f"{geom.stride} give {out_size[0]}×{out_size[1]} = "
                         f"{out_size[0] * out_size[1]} blocks")
    input, was_unbatched = _batched(input, unbatched_ndim=2)
    out = _Col2im.apply(input, geom, output_size, rows // per_block)
    return _unbatched(out, was_unbatched)


# --- teaching references ----------------------------------------------------------------

def conv2d_loops(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """:func:`conv2d` as the textbook loops: slow, plain, and the tests' oracle.

    One Python iteration per (image, output channel, output row, output column); each
    computes the sum of ``weight[o] * window`` over the window's channels and pixels.
    Forward only (no gradient). Same arguments, checks and result as :func:`conv2d`.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out) (or without N)
    """
    geom = _conv2d_geometry("conv2d_loops", input, weight, bias, stride, padding,
                            dilation, groups)
    unbatched = input.ndim == 3
    x = pad2d(input[None] if unbatched else input, geom.padding)
    (sh, sw), (dh, dw), (kh, kw) = geom.stride, geom.dilation, geom.kernel_size
    c_out, c_per_group = weight.shape[0], weight.shape[1]
    out_per_group = c_out // groups
    oh, ow = geom.output_size(*input.shape[-2:])
    out = np.zeros((x.shape[0], c_out, oh, ow), x.dtype)
    for n, o, h, w in itertools.product(range(x.shape[0]), range(c_out), range(oh),
                                        range(ow)):
        first = (o // out_per_group) * c_per_group   # first input channel of o's group
        window = x[n, first:first + c_per_group,
                   h * sh:h * sh + dh * (kh - 1) + 1:dh,
                   w * sw:w * sw + dw * (kw - 1) + 1:dw]
        out[n, o, h, w] = np.sum(window * weight[o])
        if bias is not None:
            out[n, o, h, w] += bias[o]
    return out[0] if unbatched else out


def insert_zeros(input, stride):
    """Put ``stride - 1`` zeros between neighbouring pixels (the "holes in the image").

    Parameters
    ----------
    input : ndarray of shape (..., H, W)
    stride : int or (int, int)

    Returns
    -------
    ndarray of shape (..., (H - 1)·sH + 1, (W - 1)·sW + 1)
    """
    check_array("insert_zeros", "input", input)
    if input.ndim < 2:
        raise ValueError(f"insert_zeros: input must have at least 2 dimensions, got "
                         f"shape {input.shape}")
    sh, sw = check_pair("insert_zeros", "stride", stride, minimum=1)
    height, width = input.shape[-2:]
    out = np.zeros(input.shape[:-2] + ((height - 1) * sh + 1, (width - 1) * sw + 1),
                   input.dtype)
    out[..., ::sh, ::sw] = input
    return out


def _flipped_group_transposed(weight, groups):
    """conv_transpose2d weight (C_in, C_out/g, kH, kW) -> conv2d weight (C_out, C_in/g,
    kH, kW) with the kernel rotated by 180°."""
    c_in, c_out_per_group = weight.shape[:2]
    w = weight.reshape(groups, c_in // groups, c_out_per_group, *weight.shape[2:])
    w = w.transpose(0, 2, 1, 3, 4).reshape(groups * c_out_per_group, c_in // groups,
                                           *weight.shape[2:])
    return w[..., ::-1, ::-1].copy()


def conv_transpose2d_zero_insertion(input, weight, bias=None, stride=1, padding=0,
                                    output_padding=0, groups=1, dilation=1):
    """:func:`conv_transpose2d` built the "deconvolution" way, for teaching.

    Insert ``stride - 1`` zeros between the input pixels, pad by ``d(k - 1) - p``
    (plus ``output_padding`` at the bottom/right; a negative pad crops), and run an
    ordinary stride-1 :func:`conv2d` with the kernel rotated by 180° and its in/out
    channels swapped within each group. Same arguments and result as
    :func:`conv_transpose2d`; forward only.
    """
    op = "conv_transpose2d_zero_insertion"
    geom, _ = _conv_transpose2d_geometry(op, input, weight, bias, stride, padding,
                                         output_padding, groups, dilation)
    unbatched = input.ndim == 3
    x = insert_zeros(input[None] if unbatched else input, geom.stride)
    extra = check_pair(op, "output_padding", output_padding, minimum=0)
    pads = [(d * (k - 1) - p[0], d * (k - 1) - p[1] + a) for k, d, p, a in
            zip(geom.kernel_size, geom.dilation, geom.padding, extra)]
    # Negative "padding" crops: pad by the positive part, then crop the rest.
    x = pad2d(x, tuple((max(b, 0), max(a, 0)) for b, a in pads))
    crop = tuple((max(-b, 0), max(-a, 0)) for b, a in pads)
    x = unpad2d(x, crop)
    w = _flipped_group_transposed(weight, geom.groups)
    out = conv2d(x, w, bias, stride=1, padding=0, dilation=geom.dilation,
                 groups=geom.groups)
    return out[0] if unbatched else out


@torch_reference("im2col")
def _torch_im2col(torch, input, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.unfold"""
    return torch.nn.functional.unfold(input, kernel_size, dilation, padding, stride)


@torch_reference("col2im")
def _torch_col2im(torch, input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold"""
    return torch.nn.functional.fold(input, output_size, kernel_size, dilation, padding, stride)

