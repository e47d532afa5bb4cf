"""Convolution: ``conv2d``, ``conv_transpose2d`` and ``im2col``/``col2im``.

Everything here is built on the sliding-window mechanism of :mod:`fancydl.windows`:
for each kernel offset ``(i, j)``, :func:`~fancydl.windows.offset_view` is the strided
view of the padded input that this offset sees at every output position, and
:func:`~fancydl.windows.fold_offsets` is its adjoint (the scatter-add of the backward
passes, shared with pooling). From these two:

* :func:`im2col` copies the k×k views into one matrix (PyTorch's ``unfold``) and
  :func:`col2im` adds them back (``fold``);
* :func:`conv2d` is ``weight matrix @ im2col(input)``, one (grouped) GEMM, computed a
  piece of the batch at a time so that the im2col buffer stays within
  :data:`fancydl.windows.WORKSPACE_BYTES`;
* the input-gradient of ``conv2d`` is ``col2im(weight matrixᵀ @ grad)``, and
  :func:`conv_transpose2d` is computed by that function (the same code; with stride
  phases, the same GEMM one level down), which is the point of the
  transposed-convolution chapter;
* the weight-gradient is ``grad @ im2col(input)ᵀ`` summed over the batch.

Faster strategies compute the same thing where im2col does not pay: depthwise
convolution (one input channel per group) is an im2col GEMM *per channel*, with
``K = kH·kW``, its columns copied a cache-sized block at a time; with stride 1 and one
filter per channel its two gradients read the same columns (those of the padded
upstream gradient). A dense stride-1 convolution with enough channels copies only the kH
kernel *rows* of the padded input and gets the kW kernel columns by *shifting*
products: one GEMM of all the taps per batch chunk, then kW shifted slices of the
product added up. Its weight-gradient runs one GEMM per kernel offset over shifted rows
of the flattened padded input (the view of an offset is then a contiguous block). A
strided dense convolution whose kernel is a multiple of the stride is first turned into
a stride-1 one on the *stride phases* of its input (space-to-depth), so it too runs as
shifted GEMMs; its input-gradient (``conv_transpose2d``'s forward) is a stride-1 "full"
correlation with the small phase kernel, one GEMM over the columns of the flat padded
planes of all the images, whose output is scattered back phase by phase.

Sharing between the passes: ``conv_transpose2d``'s backward needs conv2d's forward and
weight-gradient of the same upstream gradient. With stride phases it keeps its
forward's columns and gets the weight-gradient from one GEMM with them, the
input-gradient from the transpose of its forward GEMM
(:func:`_transposed_phase_backward`); otherwise it computes both from one im2col of
the upstream gradient (:func:`_im2col_forward_and_weight_grad`). A backward that reads
the input only in a form the forward pass can make (the padded planes of a depthwise
convolution, the phase columns or the channel-first matrix of a transposed one) keeps
that form instead of the input: it needs no checksum guard against in-place changes of
the caller's array (:mod:`fancydl.autodiff`; 1.2 ms per 8 MB, twice per step).

Memory: the im2col buffer of ``n`` images holds ``n · C_in · kH · kW · H_out · W_out``
values, about ``k² / stride²`` times the input; the work is cut by
:func:`fancydl.windows.work_chunks` into batch chunks whose buffer stays within
:data:`fancydl.windows.WORKSPACE_BYTES` (16 MiB) and, for a single image too large
for it, into blocks of output rows. Smaller chunks cost no speed here, since the GEMMs
are per image anyway. The stride-1 forward chunks the batch the same way, its buffers
(about kH copies of the input and kW of the output) within the same budget; its
weight-gradient needs no such buffer, and the depthwise strategy's columns stay
within :data:`COLUMN_BLOCK_BYTES` per core (one channel's columns are cut by images,
and one image's by rows, when they alone exceed it), beside a padded copy of the
input. Every strategy pads the input, except one: a padding, stride or dilation so
much larger than the kernel that the padded input would be mostly padding no window
reads (padding=p with stride=p, 'same' with a huge dilation, :func:`_mostly_padding`)
gathers the im2col columns from the unpadded input instead, and scatters the
input-gradient back into it: O(input + output·kernel), where padding p = 10⁶ would
otherwise take terabytes.

NumPy's overflow and invalid-value warnings are off in every forward and backward
pass (:func:`fancydl.autodiff.quiet`): a NaN or inf propagates as in PyTorch, silently.

The loop and "zero insertion" references that the chapters compare with
(``conv2d_loops``, ``conv_transpose2d_zero_insertion``, ``insert_zeros``) live in
:mod:`fancydl.references`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import windows
from .autodiff import Function, quiet
from .rows import add_channel_bias, channel_sums
from .parallel import halves
from .validation import (check_choice, check_float_array, check_int, check_pair,
                         check_same_dtype)
from .windows import (WindowGeometry, _transposed_length, add_rows, check_kernel_fits,
                      conv_output_size, conv_transpose_output_size, effective_kernel_size,
                      fold_offsets, image_from_pixel_table, kernel_offsets, offset_view,
                      pad2d, pixel_table, receptive_field, unpad2d, work_chunks)

__all__ = ["conv2d", "conv_transpose2d", "im2col", "col2im", "conv_output_size",
           "conv_transpose_output_size", "effective_kernel_size", "receptive_field"]

#: The depthwise columns are copied at most this many bytes at a time on each core
#: (:func:`_column_blocks`), so that a block's copy and the products that read it stay
#: in the (L3) cache and the buffer stays bounded. Measured on (16, 128, 32, 32)
#: float32, forward and backward: 8.2 ms with 4 MiB blocks, 9.5 with 2 MiB, 13.6 with
#: 1 MiB (more, smaller calls), 12.6 with 8 MiB. (Cache-blocking sizes, not memory budgets: the one memory budget is
#: :data:`fancydl.windows.WORKSPACE_BYTES`.)
COLUMN_BLOCK_BYTES = 4 * 2**20

#: The depthwise input-gradient that is not a "full" correlation (stride > 1, several
#: filters per channel, or padding > d(k-1)) scatters a batch block of about this many
#: bytes at a time, so that its k×k passes over a block stay in the cache.
CACHE_BLOCK_BYTES = 512 * 2**10


# --- geometry -------------------------------------------------------------------------

def _batch_chunks(batch, bytes_per_image, budget=None):
    """Batch slices whose buffers fit in ``budget`` bytes (default: the workspace)."""
    return [chunk for chunk, _ in work_chunks(batch, bytes_per_image, budget=budget)]


def _is_depthwise(weight_shape, groups):
    """One input channel per group (and more than one group): a thin GEMM per channel."""
    return groups > 1 and weight_shape[1] == 1


# --- im2col / col2im on padded arrays: the shared core -----------------------------------

def _unfold_padded(x_padded, geom, out_size, out=None):
    """The k×k offset views of a padded input, copied side by side.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C, Hp, Wp)
    out_size : (H_out, W_out)
    out : ndarray of shape (N, C, kH, kW, H_out, W_out), optional
        Where to write them (any strides); a new array by default.

    Returns
    -------
    ndarray of shape (N, C, kH, kW, H_out, W_out)
    """
    n, c = x_padded.shape[:2]
    cols = np.empty((n, c) + tuple(geom.kernel) + tuple(out_size), x_padded.dtype) \
        if out is None else out
    for i, j in kernel_offsets(geom.kernel):
        cols[:, :, i, j] = offset_view(x_padded, (i, j), geom.stride, geom.dilation,
                                       out_size)
    return cols


def _unfold_side_by_side(x_padded, geom, out_size):
    """:func:`_unfold_padded` with the images side by side: one matrix for the batch.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C, Hp, Wp)
    out_size : (H_out, W_out)

    Returns
    -------
    ndarray of shape (C·kH·kW, N·H_out·W_out)
        Row ``(c, i, j)``, column ``(n, h, w)``: one GEMM with it serves every image.
    """
    n, c = x_padded.shape[:2]
    cols = np.empty((c,) + tuple(geom.kernel) + (n,) + tuple(out_size), x_padded.dtype)
    _unfold_padded(x_padded, geom, out_size, out=cols.transpose(3, 0, 1, 2, 4, 5))
    return cols.reshape(c * geom.taps, -1)


def _fold_padded(cols, padded_shape, geom, crop=((0, 0), (0, 0)), out=None):
    """Adjoint of :func:`_unfold_padded`: add every column back where it was read
    (:func:`fancydl.windows.fold_offsets`, pooling's scatter too).

    Parameters
    ----------
    cols : ndarray of shape (N, C, kH, kW, H_out, W_out)
    padded_shape : (N, C, Hp, Wp)
    crop, out
        Padding to drop from the result, and where to write it.

    Returns
    -------
    ndarray of shape ``padded_shape`` less ``crop``
    """
    pieces = (cols[:, :, i, j] for i, j in kernel_offsets(geom.kernel))
    return fold_offsets(pieces, padded_shape, geom, cols.dtype, crop=crop, out=out)


# --- the three kernels of convolution: forward, input-gradient, weight-gradient -----------
#
# Each picks one of five strategies, all exact:
#   shifted GEMM  stride 1, groups 1, >= SHIFTED_GEMM_MIN_CHANNELS input channels:
#                 forward (and input-gradient): one GEMM per batch chunk over kH copied
#                 kernel rows, the kW kernel columns by shifting its products;
#                 weight-gradient: k×k GEMMs over shifted rows of the flattened image;
#   phase GEMM    stride s > 1, groups 1, no dilation, kernel a multiple of s: the
#                 shifted GEMM on the s² stride phases of the input (space-to-depth);
#                 input-gradient: one GEMM over the columns of grad's flat planes;
#   depthwise     one input channel per group: one GEMM per channel over its k×k
#                 columns (K = kH·kW), a cache-sized block at a time; with stride 1
#                 and one filter per channel, both gradients from the columns of the
#                 padded upstream gradient; otherwise weight-gradient from the input's
#                 columns, input-gradient a k×k multiply-and-scatter;
#   gathered      a padded input that would be mostly padding no window reads (huge
#                 padding, stride or dilation): the im2col GEMMs on columns gathered
#                 from the unpadded input, the input-gradient scattered back into it;
#   im2col        everything else: one grouped GEMM per chunk of im2col columns.
# All three run through _overflow_safe (float32 overflow: see there).

def _overflow_safe(kernel):
    """Make a float32 kernel give the ±inf of an exact sum, never a NaN of its own.

    A float32 dot product that overflows depends on the order of its additions: BLAS
    may add two large negative products first (-inf) and then a +inf product, giving
    ``inf - inf = NaN`` where PyTorch's order gives +inf. When a float32 result has a
    NaN, the kernel is run again in float64, where no sum of float32 products can
    overflow, and the NaN entries are replaced by that result rounded to float32 (±inf
    when it exceeds float32's range; NaN only where the inputs hold a NaN or products
    of +inf and -inf). The check costs one maximum of the result (``np.max`` returns
    NaN when any entry is one, and runs about four times faster than ``np.sum``: 0.07
    against 0.29 ms on 8 MB). A kernel may return a tuple of arrays (or None for a
    gradient not asked for): each array is checked and patched.
    """
    def has_nan(out):
        return (out is not None and out.dtype == np.float32 and out.size > 0
                and bool(np.isnan(out.max())))

    def safe(*args, **kwargs):
        out = kernel(*args, **kwargs)
        results = out if isinstance(out, tuple) else (out,)
        with np.errstate(over="ignore", invalid="ignore"):
            nan = [has_nan(r) for r in results]
            if not any(nan):
                return out
            wide = [a.astype(np.float64) if isinstance(a, np.ndarray) and
                    a.dtype == np.float32 else a for a in args]
            exact = kernel(*wide, **kwargs)
            exact = exact if isinstance(exact, tuple) else (exact,)
            patched = tuple(np.where(np.isnan(r), e.astype(np.float32), r) if bad else r
                            for r, e, bad in zip(results, exact, nan))
        return patched if isinstance(out, tuple) else patched[0]

    safe.__name__, safe.__doc__, safe.__wrapped__ = kernel.__name__, kernel.__doc__, kernel
    return safe


@_overflow_safe
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
    if _mostly_padding(geom, x.shape[2:], out_size):
        return _gathered_forward(x, weight, geom, out_size)
    if _use_shifted_gemm(weight.shape, geom):
        return _shifted_forward(x, weight, geom, out_size)
    if _use_phase_gemm(weight.shape, geom):
        return _shifted_forward(_to_phases(x, geom, out_size),
                                _phase_weight(weight, geom.stride), _phase_geometry(geom),
                                out_size)
    if _is_depthwise(weight.shape, geom.groups):
        return _depthwise_forward(x, weight, geom, out_size)
    return _im2col_forward(x, weight, geom, out_size)


@_overflow_safe
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
    if _mostly_padding(geom, input_shape[2:], grad.shape[2:]):
        return _gathered_input_grad(grad, weight, input_shape, geom)
    full = _is_full_correlation(grad.shape, input_shape, geom)
    result = None
    if _use_shifted_gemm(weight.shape, geom) and full:
        result = _shifted_input_grad(grad, weight, geom)
    elif _use_phase_gemm(weight.shape, geom):
        result = _phase_input_grad(grad, weight, input_shape, geom)
    elif _use_depthwise_full(weight.shape, geom) and full:
        result = _depthwise_full_input_grad(grad, weight, geom)
    # A full correlation also multiplies the weight by the zeros around grad: exact
    # unless 0 · inf (a non-finite weight), which the scatter below never forms.
    if result is not None and _finite_or_exact(result, weight):
        return result
    return _scattered_input_grad(grad, weight, input_shape, geom)


def _scattered_input_grad(grad, weight, input_shape, geom):
    """The input-gradient as products of ``grad`` with the taps added where each tap
    read (col2im, or the depthwise scatter): only products PyTorch forms too."""
    if not _is_depthwise(weight.shape, geom.groups):
        return _col2im_input_grad(grad, weight, input_shape, geom)
    padded_shape = geom.padded_shape(tuple(input_shape))
    return unpad2d(_depthwise_input_grad(grad, weight, padded_shape, geom), geom.pad_widths)


@_overflow_safe
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
    if _mostly_padding(geom, x.shape[2:], grad.shape[2:]):
        return _gathered_weight_grad(grad, x, weight_shape, geom)
    shifted = _shifted_weight_grad_kernel(weight_shape, geom)
    if shifted is not None:
        result = shifted(grad, x, weight_shape, geom)
        if _finite_or_exact(result, x):
            return result
    if _is_depthwise(weight_shape, geom.groups):
        return _depthwise_weight_grad(grad, pad2d(x, geom.pad_widths), weight_shape, geom)
    return _im2col_weight_grad(grad, x, weight_shape, geom)


def _shifted_weight_grad_kernel(weight_shape, geom):
    """The weight-gradient that reads shifted rows of the flattened input, if any."""
    if _use_shifted_gemm(weight_shape, geom):
        return _shifted_weight_grad
    if _use_phase_gemm(weight_shape, geom):
        return _phase_weight_grad
    return None


def _finite_or_exact(result, *operands):
    """Whether a result that also multiplied some zeros PyTorch never multiplies is
    exact.

    Shifted rows read wrap-around pixels, a full correlation the padding around its
    input, times a zero: harmless when the other factor is finite, but
    ``0 · inf = nan``. A non-finite operand makes every entry it is multiplied into
    non-finite, so a finite result is exact, and the operands are scanned only when
    the result is not (a NaN or ±inf that may also be PyTorch's).
    """
    return (bool(np.isfinite(result).all())
            or all(bool(np.isfinite(a).all()) for a in operands))


# --- the im2col strategy ------------------------------------------------------------------

def _read_rows(rows, geom):
    """Padded input rows that the output rows ``rows`` (a slice) read."""
    (sh, dh), kh = (geom.stride[0], geom.dilation[0]), geom.kernel[0]
    return slice(rows.start * sh, (rows.stop - 1) * sh + dh * (kh - 1) + 1)


def _im2col_forward(x, weight, geom, out_size):
    """``out = W_matrix @ im2col(x)``, one grouped GEMM per piece of the work.

    ``W_matrix`` is (groups, C_out/groups, K) with ``K = C_in/groups · kH · kW``; the
    columns of a piece are (n, groups, K, L), ``L = H_out · W_out`` (or the part of it
    in the piece's output rows: a single huge image is cut into blocks of rows).
    """
    n, c_in = x.shape[:2]
    c_out, groups = weight.shape[0], geom.groups
    x_padded = pad2d(x, geom.pad_widths)
    k = c_in // groups * weight.shape[2] * weight.shape[3]
    w_matrix = weight.reshape(groups, c_out // groups, k)
    oh, ow = out_size
    out = np.empty((n, groups, c_out // groups, oh, ow), x.dtype)
    for chunk, rows in work_chunks(n, groups * k * oh * ow * x.itemsize, rows=oh):
        block = (rows.stop - rows.start, ow)
        cols = _unfold_padded(x_padded[chunk, :, _read_rows(rows, geom)], geom, block)
        cols = cols.reshape(cols.shape[0], groups, k, -1)
        product = np.matmul(w_matrix, cols)  # (matmul's out= is much slower here)
        out[chunk, :, :, rows] = product.reshape(product.shape[:3] + block)
    return out.reshape(n, c_out, *out_size)


def _col2im_input_grad(grad, weight, input_shape, geom):
    """``col2im(W_matrixᵀ @ grad)``, per piece of the work.

    Whole images are folded straight into the (unpadded) result; blocks of rows of a
    single huge image are folded and added into a padded gradient, then cropped.
    """
    n, c_out, oh, ow = grad.shape
    c_in, groups = input_shape[1], geom.groups
    k = c_in // groups * weight.shape[2] * weight.shape[3]
    w_matrix_t = weight.reshape(groups, c_out // groups, k).transpose(0, 2, 1)
    grad_groups = grad.reshape(n, groups, c_out // groups, oh * ow)
    padded_shape = geom.padded_shape(tuple(input_shape))
    pieces = work_chunks(n, groups * k * oh * ow * grad.itemsize, rows=oh)
    whole = all(rows == slice(0, oh) for _, rows in pieces)
    out = (np.empty if whole else np.zeros)(input_shape if whole else padded_shape,
                                            grad.dtype)
    for chunk, rows in pieces:
        cols = np.matmul(w_matrix_t, grad_groups[chunk, :, :, rows.start * ow:rows.stop * ow])
        cols = cols.reshape(cols.shape[0], c_in, *weight.shape[2:], rows.stop - rows.start,
                            ow)
        if whole:
            _fold_padded(cols, (cols.shape[0],) + padded_shape[1:], geom,
                         crop=geom.pad_widths, out=out[chunk])
            continue
        read = _read_rows(rows, geom)
        block_shape = (cols.shape[0], c_in, read.stop - read.start, padded_shape[3])
        out[chunk, :, read] += _fold_padded(cols, block_shape, geom)
    return out if whole else unpad2d(out, geom.pad_widths)


def _im2col_weight_grad(grad, x, weight_shape, geom):
    """``sum over the batch of grad @ im2col(x)ᵀ``, per piece of the work."""
    n, c_out, oh, ow = grad.shape
    c_in, groups = x.shape[1], geom.groups
    x_padded = pad2d(x, geom.pad_widths)
    k = c_in // groups * weight_shape[2] * weight_shape[3]
    grad_groups = grad.reshape(n, groups, c_out // groups, oh * ow)
    total = np.zeros((groups, c_out // groups, k), grad.dtype)
    for chunk, rows in work_chunks(n, groups * k * oh * ow * grad.itemsize, rows=oh):
        block = (rows.stop - rows.start, ow)
        cols = _unfold_padded(x_padded[chunk, :, _read_rows(rows, geom)], geom, block)
        cols = cols.reshape(cols.shape[0], groups, k, block[0] * ow)
        # Per image and group (C_out/g, L) @ (L, K); BLAS reads the transpose in place.
        grads = grad_groups[chunk, :, :, rows.start * ow:rows.stop * ow]
        total += np.matmul(grads, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return total.reshape(weight_shape)


def _shares_columns(weight_shape, geom, columns_per_image_bytes):
    """Can :func:`_im2col_forward_and_weight_grad` serve both kernels? One group, a
    forward that would not take the (cheaper) stride-1 shifted GEMM, and one image's
    columns within the workspace."""
    return (geom.groups == 1 and not _use_shifted_gemm(weight_shape, geom)
            and columns_per_image_bytes <= windows.WORKSPACE_BYTES)


@_overflow_safe
def _im2col_forward_and_weight_grad(x, weight, out_grad, geom):
    """:func:`_conv_forward` of ``x`` and :func:`_conv_weight_grad` for the output
    gradient ``out_grad``, from one im2col of ``x`` (one group).

    ``conv_transpose2d``'s backward needs both for the same ``x`` (its upstream
    gradient): ``out = W_matrix @ cols`` and ``dW = out_grad_matrix @ colsᵀ`` read
    the same columns, unfolded once per batch chunk with the images side by side
    (:func:`_unfold_side_by_side`), so that each is one GEMM per chunk (the batch is
    cut into chunks whose columns fit in :data:`fancydl.windows.WORKSPACE_BYTES`).

    Not split over the two cores with :func:`fancydl.parallel.halves`: BLAS already
    runs the products on both, and on two loaded cores the split made the step 1.4
    times slower in CPU time (the worker thread's fresh buffers page-fault, about
    2,000 faults a step) and no faster in wall-clock time.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, kH, kW)
    out_grad : ndarray of shape (N, C_out, H_out, W_out)

    Returns
    -------
    out : ndarray of shape (N, C_out, H_out, W_out)
    grad_weight : ndarray of the weight's shape
    """
    c_out, out_size = weight.shape[0], tuple(out_grad.shape[2:])
    w_matrix = weight.reshape(c_out, -1)
    per_image = w_matrix.shape[1] * out_size[0] * out_size[1] * x.itemsize
    out = np.empty(out_grad.shape, x.dtype)
    grad_weight = np.zeros(w_matrix.shape, x.dtype)
    for chunk in _batch_chunks(x.shape[0], per_image):
        cols = _unfold_side_by_side(pad2d(x[chunk], geom.pad_widths), geom, out_size)
        product = (w_matrix @ cols).reshape((c_out, -1) + out_size)
        out[chunk] = product.transpose(1, 0, 2, 3)
        # (o, (n, h, w)): a view when out_grad is a channel-first array seen transposed
        grads = out_grad[chunk].transpose(1, 0, 2, 3).reshape(c_out, -1)
        grad_weight += grads @ cols.T
    return out, grad_weight.reshape(weight.shape)


def _conv_forward_and_weight_grad(x, weight, out_grad, geom, out_size, needs):
    """``(_conv_forward(x, weight), _conv_weight_grad(out_grad, x))``, each only if
    ``needs`` it (None otherwise; ``out_grad`` may be None when only the first is),
    sharing one im2col when both are needed and :func:`_shares_columns`."""
    per_image = weight[0].size * out_size[0] * out_size[1] * x.itemsize
    if (all(needs) and _shares_columns(weight.shape, geom, per_image)
            and not _mostly_padding(geom, x.shape[2:], out_size)):
        return _im2col_forward_and_weight_grad(x, weight, out_grad, geom)
    return (_conv_forward(x, weight, geom, out_size=out_size) if needs[0] else None,
            _conv_weight_grad(out_grad, x, weight.shape, geom) if needs[1] else None)


# --- mostly padding: the columns gathered from the input, never padded ----------------
#
# A padding, stride or dilation much larger than the kernel leaves most of the padded
# input unread: with padding=p and stride=p a 3x3 kernel reads 9 pixels per output of a
# (H + 2p)² array, and p = 10⁶ would take terabytes. There the im2col columns are
# gathered from a pixel table of the input (:func:`fancydl.windows.pixel_table`, whose
# zero pixel stands for the padding) and the input-gradient is added back into it
# (:func:`fancydl.windows.add_rows`): O(input + output·kernel). The products are
# those of im2col, zeros of the padding included (0 · inf = NaN, as in PyTorch).

#: Gather the columns when the padded input holds more than this many times as many
#: pixels as the input and the columns of one channel.
MOSTLY_PADDING_RATIO = 4


def _mostly_padding(geom, input_size, out_size):
    """Would the padded input be mostly padding that no window reads?"""
    padded_height, padded_width = geom.padded_shape(tuple(input_size))
    read = input_size[0] * input_size[1] + geom.taps * out_size[0] * out_size[1]
    return padded_height * padded_width > MOSTLY_PADDING_RATIO * read


def _gathered_pieces(input_shape, geom, out_size, itemsize):
    """Pieces of the work, each a block of output rows of some images whose columns
    fit in the workspace (:func:`work_chunks`; the budget counts the columns, not the
    integer table rows that index them).

    Yields
    ------
    chunk : slice of the batch
    span : slice of the output positions ``L = H_out·W_out`` (a block of output rows)
    rows : int ndarray of shape (n, kH·kW, l)
        The pixel-table row that each kernel offset reads at each position of the
        piece: input pixel ``h·W + w`` of its image, or the image's zero pixel where
        the offset reads the padding. Built per piece from one table per axis, so no
        array of the whole output's size is made.
    """
    n, c, height, width = input_shape
    (oh, ow), (kh, kw) = out_size, geom.kernel
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    # The input row (column) each output row (column) reads with each kernel row (column).
    rows_at = np.arange(oh)[:, None] * sh - geom.pad_widths[0][0] + np.arange(kh) * dh
    cols_at = np.arange(ow)[:, None] * sw - geom.pad_widths[1][0] + np.arange(kw) * dw
    row_inside = (rows_at >= 0) & (rows_at < height)  # (H_out, kH)
    col_inside = (cols_at >= 0) & (cols_at < width)   # (W_out, kW)
    zero_pixel = height * width
    for chunk, out_rows in work_chunks(n, c * geom.taps * oh * ow * itemsize, rows=oh):
        r, r_inside = rows_at[out_rows, None, :, None], row_inside[out_rows, None, :, None]
        pixels = np.where(r_inside & col_inside[:, None, :],
                          r * width + cols_at[:, None, :], zero_pixel)  # (h, W_out, kH, kW)
        first_rows = np.arange(chunk.start, chunk.stop) * (zero_pixel + 1)
        span = slice(out_rows.start * ow, out_rows.stop * ow)
        yield chunk, span, first_rows[:, None, None] + pixels.reshape(-1, geom.taps).T


def _gathered_columns(table, rows, groups):
    """The im2col columns of a piece, (n, groups, C/groups·kH·kW, l), from the table
    rows ``rows`` (n, kH·kW, l) of a pixel table (N·(H·W + 1), C)."""
    n, taps, length = rows.shape
    by_channel = np.take(table, rows, axis=0).transpose(0, 3, 1, 2)  # (n, C, taps, l)
    return by_channel.reshape(n, groups, -1, length)


def _add_columns(table, rows, cols):
    """Adjoint of :func:`_gathered_columns`: add columns (n, C·kH·kW, l) (any grouping
    of the channels) to the pixel-table rows ``rows`` (n, kH·kW, l) they read."""
    n, taps, length = rows.shape
    add_rows(table, rows, cols.reshape(n, -1, taps, length).transpose(0, 2, 3, 1))


def _gathered_forward(x, weight, geom, out_size):
    """:func:`_im2col_forward` on columns gathered from the input: ``out = W_matrix @
    cols`` per piece of the work."""
    n, c_out, groups = x.shape[0], weight.shape[0], geom.groups
    w_matrix = weight.reshape(groups, c_out // groups, -1)
    table = pixel_table(x)
    out = np.empty((n, groups, c_out // groups, out_size[0] * out_size[1]), x.dtype)
    for chunk, span, rows in _gathered_pieces(x.shape, geom, out_size, x.itemsize):
        cols = _gathered_columns(table, rows, groups)            # (n, g, K, l)
        out[chunk, :, :, span] = np.matmul(w_matrix, cols)
    return out.reshape((n, c_out) + tuple(out_size))


def _gathered_input_grad(grad, weight, input_shape, geom):
    """:func:`_col2im_input_grad` into a pixel table: the columns ``W_matrixᵀ @ grad``
    of each piece are added to the pixels they read, those of the padding dropped."""
    n, c_out = grad.shape[:2]
    c_in, groups = input_shape[1], geom.groups
    w_matrix_t = weight.reshape(groups, c_out // groups, -1).transpose(0, 2, 1)
    grad_groups = grad.reshape(n, groups, c_out // groups, math.prod(grad.shape[2:]))
    table = np.zeros((n * (input_shape[2] * input_shape[3] + 1), c_in), grad.dtype)
    pieces = _gathered_pieces(input_shape, geom, grad.shape[2:], grad.itemsize)
    for chunk, span, rows in pieces:
        cols = np.matmul(w_matrix_t, grad_groups[chunk, :, :, span])   # (n, g, K, l)
        _add_columns(table, rows, cols)
    return np.ascontiguousarray(image_from_pixel_table(table, input_shape))


def _gathered_weight_grad(grad, x, weight_shape, geom):
    """:func:`_im2col_weight_grad` on columns gathered from the input."""
    n, c_out, groups = grad.shape[0], grad.shape[1], geom.groups
    grad_groups = grad.reshape(n, groups, c_out // groups, math.prod(grad.shape[2:]))
    table = pixel_table(x)
    total = np.zeros((groups, c_out // groups, math.prod(weight_shape[1:])), grad.dtype)
    pieces = _gathered_pieces(x.shape, geom, grad.shape[2:], grad.itemsize)
    for chunk, span, rows in pieces:
        cols = _gathered_columns(table, rows, groups)            # (n, g, K, l)
        grads = grad_groups[chunk, :, :, span]
        total += np.matmul(grads, cols.transpose(0, 1, 3, 2)).sum(axis=0)
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
    :data:`fancydl.windows.WORKSPACE_BYTES`, with both buffers reused from chunk to
    chunk; a single image too large for it is cut into blocks of output rows
    (:func:`_by_row_blocks`).

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out)
    """
    n, c_in, _, width = x.shape
    c_out, _, kh, kw = weight.shape
    left, right = geom.pad_widths[1]
    wp = left + width + right
    grid = (out_size[0], wp)                   # one image's rows of columns
    tail = geom.dilation[1] * (kw - 1)         # read past the last image by the last shifts
    taps = weight.transpose(3, 0, 1, 2).reshape(kw * c_out, c_in * kh)  # (j, o) x (c, i)
    pieces = work_chunks(n, (c_in * kh + kw * c_out) * grid[0] * wp * x.itemsize,
                         rows=grid[0])
    if any(rows != slice(0, grid[0]) for _, rows in pieces):   # one image too large
        return _by_row_blocks(_shifted_forward, x, weight, geom, out_size, pieces)
    chunks = [chunk for chunk, _ in pieces]
    span = (chunks[0].stop if chunks else 0) * grid[0] * wp + tail
    rows = np.zeros((c_in * kh, span), x.dtype)   # padding is never written: stays zero
    products = np.empty((kw * c_out, span), x.dtype)
    out = np.empty((n, c_out) + tuple(out_size), x.dtype)
    for chunk in chunks:
        length = (chunk.stop - chunk.start) * grid[0] * wp + tail
        _copy_kernel_rows(x[chunk], rows, geom, grid)
        with np.errstate(invalid="ignore"):  # 0 · inf: PyTorch's, or checked by callers
            np.matmul(taps, rows[:, :length], out=products[:, :length])
        _add_column_shifts(products, out[chunk], geom.dilation[1], grid)
    return out


def _by_row_blocks(forward, x, weight, geom, out_size, pieces):
    """Run ``forward`` on each (image, block of output rows) piece of a convolution.

    Output rows ``[r0, r1)`` read padded rows ``[r0 sH, (r1 - 1) sH + dH (kH - 1)]``:
    the input rows among them, with the padding rows among them as the piece's own
    top/bottom padding, make a smaller convolution with exactly those output rows.
    """
    (sh, dh), kh, height = (geom.stride[0], geom.dilation[0]), geom.kernel[0], x.shape[2]
    (top, _), columns = geom.pad_widths
    out = np.empty((x.shape[0], weight.shape[0]) + tuple(out_size), x.dtype)
    for chunk, rows in pieces:
        first, last = rows.start * sh - top, (rows.stop - 1) * sh + dh * (kh - 1) - top
        piece = dataclasses.replace(geom, pad_widths=((max(0, -first),
                                                       max(0, last + 1 - height)), columns))
        block = x[chunk, :, max(0, first):min(height, last + 1)]
        out[chunk, :, rows] = forward(block, weight, piece,
                                      (rows.stop - rows.start, out_size[1]))
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
    kh, dh = geom.kernel[0], geom.dilation[0]
    (top, _), (left, _) = geom.pad_widths
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
    (top, bottom), (left, right) = geom.pad_widths
    hp, wp = height + top + bottom, width + left + right
    (kh, kw), (dh, dw) = geom.kernel, geom.dilation
    tail = -(-dw * (kw - 1) // wp) * wp  # whole extra rows, read by the last shifts only
    flat = np.zeros((n, c_in, hp * wp + tail), x.dtype)
    image = flat[:, :, :hp * wp].reshape(n, c_in, hp, wp)
    image[:, :, top:top + height, left:left + width] = x
    shifts = [i * dh * wp + j * dw for i, j in kernel_offsets(geom.kernel)]
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
    for (i, j), shift in zip(kernel_offsets(geom.kernel), shifts):
        rows = flat[:, :, shift:shift + rows_out * wp]  # (N, C_in, L)
        with np.errstate(invalid="ignore"):  # 0 · inf: see _finite_or_exact
            out[:, :, i, j] = np.matmul(grad_rows, rows.transpose(0, 2, 1)).sum(axis=0)
    return out


def _is_full_correlation(grad_shape, input_shape, geom):
    """Can the stride-1 input-gradient be computed as a convolution of ``grad`` padded
    by ``d(k-1) - p``? Yes when that padding is >= 0 and ``grad`` is the whole output
    (a transposed convolution's ``output_padding`` can make the input larger)."""
    return (tuple(grad_shape[2:]) == geom.output_size(*input_shape[2:])
            and all(max(p) <= d * (k - 1) for p, d, k in zip(geom.pad_widths, geom.dilation,
                                                            geom.kernel)))


def _full_correlation(weight, geom):
    """The stride-1 input-gradient as a convolution: the kernel rotated by 180° with its
    channels swapped, and the geometry padded by ``d(k-1) - p`` (the "full" correlation).

    Returns
    -------
    flipped : ndarray of shape (C_in, C_out, kH, kW), a view
    full : WindowGeometry
    """
    flipped = weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    return flipped, _full_geometry(geom, groups=1)


def _full_geometry(geom, groups=None):
    """The stride-1 geometry padded by ``d(k-1) - p`` on each side (the "full"
    correlation of an input-gradient); ``groups`` defaults to ``geom``'s."""
    padding = tuple((d * (k - 1) - before, d * (k - 1) - after) for (before, after), d, k
                    in zip(geom.pad_widths, geom.dilation, geom.kernel))
    return WindowGeometry(geom.kernel, (1, 1), padding, geom.dilation,
                          geom.groups if groups is None else groups)


def _shifted_input_grad(grad, weight, geom):
    """Stride-1 input-gradient = the full correlation of ``grad``
    (:func:`_full_correlation`), computed by :func:`_shifted_forward`."""
    flipped, full = _full_correlation(weight, geom)
    return _shifted_forward(grad, flipped, full, full.output_size(*grad.shape[2:]))


# --- stride s, dense: the stride-1 strategy on the s² stride phases (space-to-depth) -----
#
# Output (h, w) of a stride-s convolution reads padded pixel (h s + i, w s + j). Write
# the kernel offset as i = p s + a: that pixel is pixel (h + p, w + q) of stride phase
# (a, b) (the padded pixels at rows a, a + s, ... and columns b, b + s, ...). Stacking
# the s_H·s_W phases as channels turns the convolution into a stride-1 one with kernel
# (kH / sH, kW / sW) and C_in·sH·sW channels: forward and weight-gradient are shifted
# GEMMs; the input-gradient, a full correlation of a small kernel over a small image,
# one GEMM over the columns of the flat padded planes (:func:`_phase_products`; the
# shifted GEMM's column shifts and channel-major crop measured 1.1 to 2 times slower).
# (With a kernel that is not a multiple of the stride the stacked kernel would need zero
# taps: im2col is used instead.)

def _use_phase_gemm(weight_shape, geom):
    """Strided, one group, no dilation, kernel a multiple of the stride, enough channels."""
    (sh, sw), (kh, kw) = geom.stride, weight_shape[2:]
    return ((sh, sw) != (1, 1) and geom.groups == 1 and geom.dilation == (1, 1)
            and kh % sh == 0 and kw % sw == 0
            and weight_shape[1] * sh * sw >= SHIFTED_GEMM_MIN_CHANNELS)


def _phase_geometry(geom):
    """The stride-1, unpadded geometry of the stacked phases."""
    (sh, sw), (kh, kw) = geom.stride, geom.kernel
    return WindowGeometry((kh // sh, kw // sw), (1, 1), ((0, 0), (0, 0)), (1, 1))


def _phase_blocks(geom, phase_size, input_size):
    """Where each stride phase meets the unpadded input.

    Row ``u`` of phase ``(a, b)`` is padded row ``u sH + a``, input row ``u sH + a -
    top``. Yields, per phase, the phase's slices (rows, cols) and the input's strided
    slices (rows, cols) that correspond (the padding has no input pixel).
    """
    (sh, sw), (top, left) = geom.stride, (geom.pad_widths[0][0], geom.pad_widths[1][0])

    def span(phase, stride, before, count, size):
        first = max(0, -(-(before - phase) // stride))
        start = first * stride + phase - before
        number = max(0, min(count - first, len(range(start, size, stride))))
        return slice(first, first + number), slice(start, start + stride * number, stride)

    for a in range(sh):
        rows, input_rows = span(a, sh, top, phase_size[0], input_size[0])
        for b in range(sw):
            cols, input_cols = span(b, sw, left, phase_size[1], input_size[1])
            yield (a, b), (rows, cols), (input_rows, input_cols)


def _to_phases(x, geom, out_size):
    """The padded input's stride phases stacked as channels.

    Returns
    -------
    ndarray of shape (N, C·sH·sW, H_out + kH/sH - 1, W_out + kW/sW - 1)
        Channel ``(c, a, b)``, pixel ``(u, v)`` is padded pixel ``(u sH + a, v sW + b)``
        of channel ``c``: exactly the padded rows and columns the windows read. (One
        strided copy per phase, from the unpadded input: the padding stays zero.)
    """
    (sh, sw), (kh, kw) = geom.stride, geom.kernel
    phase_size = (out_size[0] + kh // sh - 1, out_size[1] + kw // sw - 1)
    n, c = x.shape[:2]
    stacked = np.zeros((n, c, sh, sw) + phase_size, x.dtype)
    _put_phases(x, geom, stacked)
    return stacked.reshape((n, c * sh * sw) + phase_size)


def _put_phases(x, geom, phases):
    """Write the stride phases of ``x``'s padded pixels into ``phases``, an array of
    shape (N, C, sH, sW, Hs, Ws) of any strides holding zeros: entry ``[n, c, a, b, u,
    v]`` gets padded pixel ``(u sH + a, v sW + b)`` (the padding stays zero)."""
    for (a, b), (rows, cols), (input_rows, input_cols) in _phase_blocks(
            geom, phases.shape[-2:], x.shape[2:]):
        phases[:, :, a, b, rows, cols] = x[:, :, input_rows, input_cols]


def _from_phases(stacked, geom, out):
    """Adjoint of :func:`_to_phases`: each phase back in place, the padding dropped.

    Parameters
    ----------
    stacked : ndarray of shape (N, C·sH·sW, Hs, Ws) (any strides)
    out : ndarray of shape (N, C, H, W), zeros
        Written in place; input pixels that no window reads (past the last window)
        keep their 0.
    """
    (sh, sw), phase_size = geom.stride, stacked.shape[2:]
    planes = stacked.reshape((stacked.shape[0], out.shape[1], sh, sw) + tuple(phase_size))
    for (a, b), (rows, cols), (input_rows, input_cols) in _phase_blocks(
            geom, phase_size, out.shape[2:]):
        out[:, :, input_rows, input_cols] = planes[:, :, a, b, rows, cols]
    return out


def _phase_weight(weight, stride):
    """(C_out, C_in, kH, kW) -> (C_out, C_in·sH·sW, kH/sH, kW/sW), matching the phases:
    tap ``(p, q)`` of phase channel ``(c, a, b)`` is tap ``(p sH + a, q sW + b)``."""
    (sh, sw), (c_out, c_in, kh, kw) = stride, weight.shape
    split = weight.reshape(c_out, c_in, kh // sh, sh, kw // sw, sw).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(split).reshape(c_out, c_in * sh * sw, kh // sh, kw // sw)


def _unphase_weight(phase_weight, weight_shape, stride):
    """Inverse of :func:`_phase_weight`: (C_out, C_in·sH·sW, kH/sH, kW/sW) -> ``weight_shape``
    (the taps put back in place)."""
    (sh, sw), (c_out, c_in, kh, kw) = stride, weight_shape
    split = phase_weight.reshape(c_out, c_in, sh, sw, kh // sh, kw // sw)
    return np.ascontiguousarray(split.transpose(0, 1, 4, 2, 5, 3)).reshape(weight_shape)


def _full_phase_weight(weight, geom):
    """The strided input-gradient's one GEMM: the stacked phases' full correlation
    (:func:`_full_correlation` of :func:`_phase_weight`).

    Returns
    -------
    w_matrix : ndarray of shape (C_in·sH·sW, C_out·kH/sH·kW/sW)
        Row ``(c, a, b)``: what phase ``(a, b)`` of input channel ``c`` gets; column
        ``(o, p, q)``: from tap ``(p, q)`` of the rotated phase kernel, channel ``o``.
    full : WindowGeometry
        Stride 1, padded by ``kH/sH - 1`` and ``kW/sW - 1``.
    """
    flipped, full = _full_correlation(_phase_weight(weight, geom.stride),
                                      _phase_geometry(geom))
    return flipped.reshape(flipped.shape[0], -1), full   # a copy: flipped is a view


def _phase_columns_bytes(input_shape, weight_shape, geom, itemsize):
    """Bytes of the phase columns (:func:`_plane_columns`) of an input of that shape:
    ``C·kH/sH·kW/sW`` rows, one column per position of the full correlation's output."""
    n, c, height, width = input_shape
    (sh, sw), (kh, kw) = geom.stride, weight_shape[2:]
    rows, cols = kh // sh, kw // sw
    return c * rows * cols * n * (height + rows - 1) * (width + cols - 1) * itemsize


def _phase_input_grad(grad, weight, input_shape, geom):
    """Strided input-gradient: the stride-1 input-gradient of the stacked phases (a
    "full" correlation of ``grad``), put back in place (:func:`_from_phases`).

    The full correlation has a small kernel (kH/sH × kW/sW) and a small image, so it
    is computed as one GEMM per batch chunk over the columns of all the chunk's
    images (:func:`_phase_products`). A single image whose columns exceed the
    workspace goes through :func:`_shifted_input_grad` instead (cut into blocks of
    rows).
    """
    out = np.zeros(input_shape, grad.dtype)
    per_image = _phase_columns_bytes(grad[:1].shape, weight.shape, geom, grad.itemsize)
    if per_image > windows.WORKSPACE_BYTES:
        return _from_phases(_shifted_input_grad(grad, _phase_weight(weight, geom.stride),
                                                _phase_geometry(geom)), geom, out)
    w_matrix, _ = _full_phase_weight(weight, geom)
    for chunk in _batch_chunks(grad.shape[0], per_image):
        cols, plane_size = _phase_columns(grad[chunk], geom)
        _phase_products(w_matrix, cols, plane_size, geom, out[chunk])
    return out


def _phase_weight_grad(grad, x, weight_shape, geom):
    """Strided weight-gradient: that of the stacked phases, taps put back in place."""
    (sh, sw), (c_out, c_in, kh, kw) = geom.stride, weight_shape
    stacked = _to_phases(x, geom, grad.shape[2:])
    phase_shape = (c_out, c_in * sh * sw, kh // sh, kw // sw)
    out = _shifted_weight_grad(grad, stacked, phase_shape, _phase_geometry(geom))
    return _unphase_weight(out, weight_shape, geom.stride)


# --- conv_transpose2d through the stride phases, its columns kept for the backward -------
#
# The strided input-gradient, which is conv_transpose2d's forward, is one GEMM: stacked
# phases = w_matrix @ cols (:func:`_full_phase_weight`). Over the flat padded planes of
# its input (:func:`_flat_planes`, channel first) what one kernel offset reads for all
# the images is one contiguous run, so the columns are a copy of long runs, and they
# are worth keeping: the transposed convolution's weight-gradient is then one GEMM of
# the upstream gradient's stacked phases with them. Its input-gradient is the
# transpose of the forward GEMM, w_matrixᵀ @ (those phases), added back onto the
# planes. The upstream gradient, sH·sW times larger than the input, is never unfolded.
#
# The planes are padded at the top and left only (:func:`_padding_before`): every
# position of the planes' grid is then an output of the full correlation, none wasted.

def _use_transposed_phases(input, weight, geom, output_size):
    """conv_transpose2d's forward takes the phase GEMM (:func:`_use_phase_gemm`: a
    stride that divides the kernel, one group, no dilation, enough channels), the
    columns that it keeps for the backward fit in the workspace, and its output
    (conv2d's input) padded would not be mostly padding."""
    return (_use_phase_gemm(weight.shape, geom) and windows.WORKSPACE_BYTES
            >= _phase_columns_bytes(input.shape, weight.shape, geom, input.itemsize)
            and not _mostly_padding(geom, output_size, input.shape[2:]))


def _padding_before(geom):
    """A full correlation's windows with the padding at the top and left only, for
    flat planes.

    In :func:`_flat_planes` a row's last pixel is followed by the next row's left
    padding, and a plane's last row by the next plane's top padding (the last plane by
    the tail's zeros): when the padding after is no larger than the padding before,
    those zeros serve as it. When it is ``d(k-1)`` as well (a full correlation), the
    planes' grid holds exactly the output positions.
    """
    (top, bottom), (left, right) = geom.pad_widths
    (kh, kw), (dh, dw) = geom.kernel, geom.dilation
    assert bottom == dh * (kh - 1) <= top and right == dw * (kw - 1) <= left, geom
    return WindowGeometry(geom.kernel, geom.stride, ((top, 0), (left, 0)), geom.dilation,
                          geom.groups)


def _plane_columns(x, geom):
    """im2col over the flat padded planes (:func:`_flat_planes`), stride 1.

    Returns
    -------
    cols : ndarray of shape (C·kH·kW, N·Hp·Wp)
        Row ``(c, i, j)``, column ``(n, h, w)``: what kernel offset ``(i, j)`` reads for
        position ``(h, w)`` of image ``n`` (past the plane's edge: the next row's or
        plane's first pixels). Row ``(c, 0, 0)`` is channel ``c``'s padded planes.
    (Hp, Wp) : the padded plane size
    """
    n, c = x.shape[:2]
    flat, plane_size = _flat_planes(x, geom)
    offsets = _plane_windows(flat, plane_size, n, geom)(slice(0, c))
    return offsets.transpose(1, 2, 3, 0, 4, 5).reshape(c * geom.taps, -1), plane_size


def _fold_plane_columns(cols, plane_size, batch, geom):
    """Adjoint of :func:`_plane_columns`: add every column back where it was read.

    Parameters
    ----------
    cols : ndarray of shape (C·kH·kW, N·Hp·Wp)

    Returns
    -------
    ndarray of shape (C, N, Hp, Wp)
        The padded planes, channel first (a view).
    """
    (hp, wp), (kh, kw), (dh, dw) = plane_size, geom.kernel, geom.dilation
    span = batch * hp * wp
    channels = cols.shape[0] // (kh * kw)
    by_offset = cols.reshape(channels, kh, kw, span)
    planes = np.zeros((channels, span + (kh - 1) * dh * wp + (kw - 1) * dw), cols.dtype)
    for i, j in kernel_offsets(geom.kernel):
        start = i * dh * wp + j * dw
        planes[:, start:start + span] += by_offset[:, i, j]
    return planes[:, :span].reshape(channels, batch, hp, wp)


def _unpadded_planes(planes, geom, size):
    """The (N, C, H, W) view of the unpadded pixels of (C, N, Hp, Wp) padded planes."""
    (top, _), (left, _) = geom.pad_widths
    return planes[:, :, top:top + size[0], left:left + size[1]].transpose(1, 0, 2, 3)


def _phase_products(w_matrix, cols, plane_size, geom, out):
    """The strided input-gradient's GEMM: the stacked phases ``w_matrix @ cols``,
    scattered back in place (:func:`_from_phases`).

    Parameters
    ----------
    w_matrix : ndarray of shape (C_in·sH·sW, C_out·kH/sH·kW/sW)
        From :func:`_full_phase_weight`.
    cols : ndarray of shape (C_out·kH/sH·kW/sW, N·Hp·Wp)
        The columns of the upstream gradient (conv_transpose2d's input) over its flat
        planes padded before only (:func:`_plane_columns`, :func:`_padding_before`):
        one per output position of the full correlation.
    plane_size : (Hp, Wp)
    out : ndarray of shape (N, C_in, H_in, W_in), zeros
        Written in place.
    """
    with np.errstate(invalid="ignore"):  # 0 · inf: see _conv_input_grad
        stacked = (w_matrix @ cols).reshape((w_matrix.shape[0], out.shape[0])
                                            + tuple(plane_size))
    _from_phases(stacked.transpose(1, 0, 2, 3), geom, out)


def _phase_columns(x, geom):
    """The columns that :func:`_phase_products` multiplies: those of conv_transpose2d's
    input (conv2d's upstream gradient) over its flat planes padded before only, for
    the full correlation of the phase kernel. :func:`_transposed_phase_backward` reads
    them again.

    Returns
    -------
    cols : ndarray of shape (C_out·kH/sH·kW/sW, N·Hp·Wp)
    (Hp, Wp) : the plane size
    """
    full = _full_geometry(_phase_geometry(geom), groups=1)
    return _plane_columns(x, _padding_before(full))


@_overflow_safe
def _transposed_phase_forward(x, cols, plane_size, weight, out_shape, geom):
    """conv_transpose2d's forward, conv2d's strided input-gradient: the GEMM of
    :func:`_phase_input_grad` over the whole batch (:func:`_phase_products`), from
    columns made by the caller (:func:`_phase_columns`), who keeps them.

    A non-finite weight times the zeros of the padding can make a NaN that PyTorch
    does not: the output is then recomputed by the scatter (:func:`_conv_input_grad`).

    Parameters
    ----------
    x : ndarray of shape (N, C_out, H, W)
        The transposed convolution's input (in conv2d's naming, its output-gradient).
    cols, plane_size
        Its columns.
    weight : ndarray of shape (C_out, C_in, kH, kW)
    out_shape : (N, C_in, H_in, W_in)

    Returns
    -------
    ndarray of shape ``out_shape``
    """
    w_matrix, _ = _full_phase_weight(weight, geom)
    out = np.zeros(out_shape, x.dtype)
    _phase_products(w_matrix, cols, plane_size, geom, out)
    if not _finite_or_exact(out, weight):   # the padding's zeros times the weight
        out = _scattered_input_grad(x, weight, out_shape, geom)
    return out


@_overflow_safe
def _transposed_phase_backward(grad, weight, cols, input_shape, geom, needs):
    """Both gradients of :func:`_transposed_phase_forward`.

    The upstream gradient's stride phases are laid out like the stacked phases of the
    forward: ``G``, (C_in·sH·sW, N·Hp·Wp), zero where a phase position falls in the
    cropped padding. The forward's ``w_matrix @ cols`` then has the gradient
    ``G @ colsᵀ`` for ``w_matrix`` (rotated back and un-phased into the weight's
    layout: the weight-gradient reads the kept columns) and ``w_matrixᵀ @ G`` for the
    columns, added back onto the planes (:func:`_fold_plane_columns`: the
    input-gradient needs only the weight).

    Zeros meet values here that PyTorch never multiplies: the cropped positions' zero
    gradient times the columns, the planes' padding times the upstream gradient, and
    ``G``'s zeros times the weight. Nothing, unless ``0 · inf = nan``: a gradient that
    is not finite is recomputed by the exact route when the weight (input-gradient),
    or the columns or the upstream gradient (weight-gradient), hold a non-finite value
    (:func:`_finite_or_exact`).

    Parameters
    ----------
    grad : ndarray of shape (N, C_in, H_in, W_in)
        Gradient of the transposed convolution's output.
    weight : ndarray of shape (C_out, C_in, kH, kW)
    cols : ndarray, or None when the weight-gradient is not needed
        The forward's columns.
    input_shape : (N, C_out, H, W)
        The transposed convolution's input.
    needs : (bool, bool)
        Whether the input- and the weight-gradient are needed.

    Returns
    -------
    grad_input : ndarray of shape ``input_shape``, or None
    grad_weight : ndarray of the weight's shape, or None
    """
    w_matrix, full = _full_phase_weight(weight, geom)
    planes_geom = _padding_before(full)
    n, size = input_shape[0], tuple(input_shape[2:])
    plane_size = full.output_size(*size)
    grid = np.zeros((grad.shape[1],) + tuple(geom.stride) + (n,) + plane_size, grad.dtype)
    _put_phases(grad, geom, grid.transpose(3, 0, 1, 2, 4, 5))
    stacked = grid.reshape(w_matrix.shape[0], -1)
    grad_input = grad_weight = None
    if needs[0]:
        with np.errstate(invalid="ignore"):  # 0 · inf: checked below
            columns_grad = w_matrix.T @ stacked
        planes = _fold_plane_columns(columns_grad, plane_size, n, planes_geom)
        grad_input = np.ascontiguousarray(_unpadded_planes(planes, planes_geom, size))
        if not _finite_or_exact(grad_input, weight):
            grad_input = _conv_forward(grad, weight, geom, out_size=size)
    if needs[1]:
        with np.errstate(invalid="ignore"):  # 0 · inf: checked below
            rotated = (stacked @ cols.T).reshape((w_matrix.shape[0], -1)
                                                 + tuple(full.kernel))
        phase_grad = rotated[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        grad_weight = _unphase_weight(phase_grad, weight.shape, geom.stride)
        if not _finite_or_exact(grad_weight, cols, grad):
            planes = cols.reshape((input_shape[1], full.taps, n) + plane_size)[:, 0]
            grad_weight = _conv_weight_grad(_unpadded_planes(planes, planes_geom, size),
                                            grad, weight.shape, geom)
    return grad_input, grad_weight


# --- depthwise: per-channel im2col, a cache-sized block at a time ------------------------

def _depthwise_split(weight, n_channels):
    """Weight (C·m, 1, kH, kW) as (C, m, kH, kW): channel c feeds outputs c·m ... c·m+m-1."""
    return weight.reshape(n_channels, weight.shape[0] // n_channels, *weight.shape[2:])


def _depthwise_forward(x, weight, geom, out_size):
    """Depthwise forward: ``out[n, c·m + q] = sum_ij w[c·m + q, 0, i, j] view_ij[n, c]``,
    from the windows of the flat padded planes when the stride is 1
    (:func:`_plane_windows`) and of the padded input otherwise (:func:`_padded_windows`).

    Returns
    -------
    ndarray of shape (N, C·m, H_out, W_out)
    """
    if geom.stride == (1, 1):
        windows = _plane_windows(*_flat_planes(x, geom), x.shape[0], geom)
    else:
        windows = _padded_windows(pad2d(x, geom.pad_widths), geom, out_size)
    return _depthwise_from_windows(windows, weight, x.shape[:2], out_size)


@_overflow_safe
def _depthwise_planes_forward(flat, plane_size, input_shape, weight, geom):
    """Stride-1 depthwise forward from the flat padded planes of the input
    (:func:`_flat_planes`): what :class:`_Conv2d` runs when it keeps those planes for
    the backward pass.

    Returns
    -------
    ndarray of shape (N, C·m, H_out, W_out)
    """
    windows = _plane_windows(flat, plane_size, input_shape[0], geom)
    return _depthwise_from_windows(windows, weight, input_shape[:2],
                                   geom.output_size(*input_shape[2:]))


def _depthwise_from_windows(windows, weight, batch_channels, out_size):
    """:func:`_depthwise_columns` over all the channels, one half of them per core
    (:func:`fancydl.parallel.halves`): each channel's planes are independent."""
    n, c = batch_channels
    out = np.empty((n, weight.shape[0]) + tuple(out_size), weight.dtype)
    taps = _depthwise_split(weight, c)
    if n:
        halves(lambda channels: _depthwise_columns(windows, taps, out, _span(channels)),
               np.arange(c), size=out.size)
    return out


def _span(indices):
    """The slice of consecutive ``indices`` (a half of ``np.arange``)."""
    return slice(int(indices[0]), int(indices[-1]) + 1) if len(indices) else slice(0, 0)


def _depthwise_columns(windows, taps, out, channels):
    """``out[n, c·m + q] = taps[c, q] · cols_c`` restricted to image ``n``'s grid
    positions (cropped to (H_out, W_out)), for the input channels ``channels``: one
    small GEMM per channel.

    A depthwise convolution is an im2col GEMM per channel, with one row of weights per
    output channel and ``K = kH·kW``: thin, but its columns are copied a cache-sized
    block at a time (:func:`_column_blocks`), and each product reads them once where a
    k×k loop of elementwise multiply-adds would make 2·kH·kW passes over the output.

    Parameters
    ----------
    windows : callable (channel slice) -> array (N, b, kH, kW, *grid)
        The grid may extend past the output (the stride-1 padded planes): only its
        top-left (H_out, W_out) corner is kept.
    taps : ndarray of shape (C, m, kH, kW)
    out : ndarray of shape (N, C·m, H_out, W_out), written
    channels : slice
    """
    taps = taps.reshape(taps.shape[:2] + (-1,))
    for block, images, rows, cols, grid in _column_blocks(windows, channels):
        with np.errstate(invalid="ignore"):  # 0 · inf, inf - inf: NaN, as in PyTorch
            products = np.matmul(taps[block], cols)
        _put_products(products, grid, out[images, :, rows], block)


def _put_products(products, grid, out, channels):
    """Write the products of a block of input channels, (b, m, N·grid), to their
    ``out`` channels: the top-left (H_out, W_out) corner of each grid, batch first
    (``out`` holds the block's output rows)."""
    n, (height, width) = out.shape[0], out.shape[2:]
    b, m = products.shape[:2]
    products = products.reshape((b, m, n) + grid)[..., :height, :width]
    by_input_channel = out.reshape((n, out.shape[1] // m, m, height, width))
    by_input_channel[:, channels] = products.transpose(2, 0, 1, 3, 4)


def _column_blocks(windows, channels):
    """Per-channel im2col, a cache-sized block at a time.

    Yields ``(block, images, rows, cols, grid)``: for each channel of ``block`` a
    (kH·kW) × (n·grid) matrix over the ``n`` images of ``images`` and the grid rows
    ``rows``, whose row ``(i, j)`` holds what kernel offset ``(i, j)`` reads at every
    grid position of those images, copied from ``windows(block)`` in one pass. A block
    holds at most :data:`COLUMN_BLOCK_BYTES`: several channels with all the images when
    one channel's columns fit, otherwise one channel and as many images as fit, and
    when one image alone does not, blocks of its grid rows
    (:func:`fancydl.windows.work_chunks`), so that the copy and the products that read
    it stay in the cache and the buffer stays bounded. ``cols`` is one buffer,
    overwritten by the next block.

    Parameters
    ----------
    windows : callable (channel slice) -> array (N, b, kH, kW, *grid)
    channels : slice
        The channels to walk.

    Yields
    ------
    block : slice
        Channels, within ``channels``.
    images : slice
        Images, within ``range(N)``.
    rows : slice
        Rows of the grid (all of them unless one image is cut into blocks of rows).
    cols : ndarray of shape (b, kH·kW, n·grid)
    grid : (rows.stop - rows.start, grid width)
    """
    if channels.stop <= channels.start:
        return
    first = windows(slice(channels.start, channels.start + 1))
    batch, _, kh, kw, height, width = first.shape
    count = channels.stop - channels.start
    if first.nbytes <= COLUMN_BLOCK_BYTES:   # blocks of channels, all the images
        pieces = [(chunk, slice(0, batch), slice(0, height)) for chunk in
                  _batch_chunks(count, first.nbytes, COLUMN_BLOCK_BYTES)]
    else:                                     # one channel, blocks of images or rows
        pieces = [(slice(c, c + 1), images, rows) for c in range(count)
                  for images, rows in work_chunks(batch, first.nbytes // batch,
                                                  rows=height, budget=COLUMN_BLOCK_BYTES)]
    size = max((chunk.stop - chunk.start) * (images.stop - images.start)
               * (rows.stop - rows.start) for chunk, images, rows in pieces)
    buffer = np.empty(size * kh * kw * width, first.dtype)
    for chunk, images, rows in pieces:
        block = slice(channels.start + chunk.start, channels.start + chunk.stop)
        grid = (rows.stop - rows.start, width)
        b, n = chunk.stop - chunk.start, images.stop - images.start
        cols = buffer[:b * kh * kw * n * math.prod(grid)].reshape((b, kh, kw, n) + grid)
        cols[...] = windows(block)[images, :, :, :, rows].transpose(1, 2, 3, 0, 4, 5)
        yield block, images, rows, cols.reshape(b, kh * kw, -1), grid


def _flat_planes(x, geom):
    """Every padded (channel, image) plane, one after the other, in one flat array.

    Channel first: plane ``r = c·N + n``. Output position ``(h, w)`` of plane ``r`` is
    flat position ``q = r·Hp·Wp + h·Wp + w``, and kernel offset ``(i, j)`` reads
    ``flat[q + i·dH·Wp + j·dW]``: what one offset reads over all the planes of a
    channel is one contiguous run (positions with ``h`` or ``w`` past the output read
    the next row or plane, and are discarded), and :func:`_plane_windows` views all
    the offsets at once. The planes of one channel follow each other, so that a block
    of channels is one contiguous piece. Filled one half of the channels per core.

    Returns
    -------
    flat : ndarray of shape (C·N·Hp·Wp + tail,)
        Zero padding around every plane; ``tail`` zeros after the last, read by the
        last offsets only.
    (Hp, Wp) : padded plane size
    """
    n, c, height, width = x.shape
    (top, bottom), (left, right) = geom.pad_widths
    hp, wp = height + top + bottom, width + left + right
    (kh, kw), (dh, dw) = geom.kernel, geom.dilation
    tail = (kh - 1) * dh * wp + (kw - 1) * dw
    flat = np.zeros(c * n * hp * wp + tail, x.dtype)
    planes = flat[:c * n * hp * wp].reshape(c, n, hp, wp)
    halves(np.copyto, planes[:, :, top:top + height, left:left + width],
           x.transpose(1, 0, 2, 3))
    return flat, (hp, wp)


def _padded_planes(flat, plane_size, batch):
    """The padded input that :func:`_flat_planes` laid out, as a (C, N, Hp, Wp) view."""
    plane = plane_size[0] * plane_size[1]
    return flat[:flat.size - flat.size % (batch * plane)].reshape(
        (-1, batch) + tuple(plane_size))


def _plane_windows(flat, plane_size, batch, geom):
    """``windows(channels)``: the (N, b, kH, kW, Hp, Wp) view of the flat padded planes
    (:func:`_flat_planes`) in which entry ``[n, c, i, j, h, w]`` is what kernel offset
    ``(i, j)`` reads for position ``(h, w)`` of image ``n``, channel ``c``: flat
    position ``(c·N + n)·Hp·Wp + (h + i·dH)·Wp + w + j·dW``. Positions past the output
    read the next row or plane; they are computed and discarded."""
    (hp, wp), (dh, dw) = plane_size, geom.dilation
    steps = (hp * wp, batch * hp * wp, dh * wp, dw, wp, 1)  # n, c, i, j, h, w
    strides = tuple(flat.itemsize * step for step in steps)

    def windows(channels):
        shape = (batch, channels.stop - channels.start) + tuple(geom.kernel) + (hp, wp)
        return as_strided(flat[channels.start * batch * hp * wp:], shape, strides,
                          writeable=False)

    return windows


def _padded_windows(x_padded, geom, out_size):
    """``windows(channels)``: the (N, b, kH, kW, H_out, W_out) view of the padded input
    in which entry ``[n, c, i, j, h, w]`` is pixel ``(h·sH + i·dH, w·sW + j·dW)`` of
    plane ``(n, c)`` (:func:`offset_view` for every offset at once)."""
    sn, sc, sh, sw = x_padded.strides
    (dh, dw), (step_h, step_w) = geom.dilation, geom.stride
    strides = (sn, sc, dh * sh, dw * sw, step_h * sh, step_w * sw)

    def windows(channels):
        planes = x_padded[:, channels]
        shape = planes.shape[:2] + tuple(geom.kernel) + tuple(out_size)
        return as_strided(planes, shape, strides, writeable=False)

    return windows


def _use_depthwise_full(weight_shape, geom):
    """Depthwise, stride 1, one filter per channel: the input-gradient is a depthwise
    convolution too, and both gradients read the same columns."""
    return (_is_depthwise(weight_shape, geom.groups) and geom.stride == (1, 1)
            and weight_shape[0] == geom.groups)


def _depthwise_full_input_grad(grad, weight, geom):
    """Stride-1 depthwise input-gradient: a depthwise convolution of ``grad`` with each
    kernel rotated by 180°, padded by ``d(k-1) - p`` (the "full" correlation)."""
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1])
    full = _full_geometry(geom)
    return _depthwise_forward(grad, flipped, full, full.output_size(*grad.shape[2:]))


@_overflow_safe
def _depthwise_planes_backward(grad, flat, plane_size, weight, geom, input_grad=True):
    """The weight-gradient of a stride-1 depthwise convolution with one filter per
    channel and, if ``input_grad``, its input-gradient, from one set of columns: those
    of the upstream gradient padded by ``d(k-1) - p`` (:func:`_full_geometry`).

    The input-gradient is the forward pass of ``grad`` with each kernel rotated by
    180° (:func:`_depthwise_full_input_grad`). The weight-gradient reads the same
    columns: ``dw[i, j] = sum over images n and input positions u of
    x[n, u] · g_pad[n, u + (dH (kH-1-i), dW (kW-1-j))]``, so row ``(kH-1-i, kW-1-j)``
    of the columns times the input laid out on their grid (zeros past it,
    :func:`_inputs_on_grid`) is tap ``(i, j)``. ``flat`` holds the input's
    padded planes (:func:`_flat_planes`), kept by the forward pass. One half of the
    channels per core. Requires :func:`_is_full_correlation`.

    The grid's extra positions multiply zeros by whatever the columns read there, so
    a non-finite upstream value can make a NaN of its own (``0 · inf``). A finite
    weight-gradient had no such product (nor any overflow, which would not be
    finite either); otherwise it is computed again from the exact windows
    (:func:`_depthwise_weight_grad`), which read no position past the input. Likewise
    the input-gradient multiplies the rotated kernels by the zeros around ``grad``: as
    in :func:`_conv_input_grad`, it is computed again by the scatter unless
    :func:`_finite_or_exact`.

    Returns
    -------
    grad_input : ndarray of shape (N, C, H, W), or None
    grad_weight : ndarray of shape (C, 1, kH, kW)
    """
    n, c = grad.shape[:2]
    (hp, wp), ((top, bottom), (left, right)) = plane_size, geom.pad_widths
    grad_input = (np.empty((n, c, hp - top - bottom, wp - left - right), grad.dtype)
                  if input_grad else None)
    if n == 0:
        return grad_input, np.zeros(weight.shape, grad.dtype)
    full = _full_geometry(geom)
    grad_flat, grid = _flat_planes(grad, full)
    windows = _plane_windows(grad_flat, grid, n, full)
    inputs = _inputs_on_grid(flat, plane_size, geom.pad_widths, n, grid)
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1]).reshape(c, 1, -1)
    sums = np.zeros_like(flipped)

    def half(channels):
        for block, images, rows, cols, grid in _column_blocks(windows, _span(channels)):
            with np.errstate(invalid="ignore"):  # 0 · inf, inf - inf: NaN, as in PyTorch
                products = np.matmul(flipped[block], cols) if input_grad else None
            if input_grad:
                _put_products(products, grid, grad_input[images, :, rows], block)
            with np.errstate(over="ignore", invalid="ignore"):  # redone if not finite
                sums[block] += np.matmul(inputs(block, images, rows),
                                         cols.transpose(0, 2, 1))

    halves(half, np.arange(c), size=grad.size * math.prod(geom.kernel))  # columns
    if input_grad and not _finite_or_exact(grad_input, weight):
        grad_input = _scattered_input_grad(grad, weight, grad_input.shape, geom)
    grad_weight = sums[:, :, ::-1].reshape(weight.shape)
    if not np.isfinite(grad_weight).all():
        padded = _padded_planes(flat, plane_size, n).transpose(1, 0, 2, 3)
        grad_weight = _depthwise_weight_grad(grad, padded, weight.shape, geom)
    return grad_input, grad_weight


def _inputs_on_grid(flat, plane_size, pad_widths, batch, grid):
    """``inputs(channels, images, rows)``: the (b, 1, n·r·grid width) input planes of
    those channels and images, each moved to the top-left corner of ``grid`` with zeros
    around, on the grid rows ``rows`` (all of them when there are several images).

    When ``grid`` is the padded plane size (a "same" convolution), that is a view of
    the flat padded planes (:func:`_flat_planes`) shifted by ``top·Wp + left``: every
    position past the input then reads padding (of its row, or of the next row or
    plane), and no copy is made. Otherwise each call copies into new zeros.
    """
    (hp, wp), ((top, bottom), (left, right)) = plane_size, pad_widths
    plane = hp * wp
    if tuple(grid) == (hp, wp):
        shift = top * wp + left

        def inputs(channels, images, rows):
            start = (channels.start * batch + images.start) * plane + shift
            length = ((images.stop - images.start - 1) * plane
                      + (rows.stop - rows.start) * wp)   # rows cut only one image
            shape = (channels.stop - channels.start, 1, length)
            return as_strided(flat[start + rows.start * wp:], shape,
                              (batch * plane * flat.itemsize, 0, flat.itemsize),
                              writeable=False)

        return inputs
    planes = _padded_planes(flat, plane_size, batch)
    height, width = hp - top - bottom, wp - left - right

    def inputs(channels, images, rows):
        on_grid = np.zeros((channels.stop - channels.start, images.stop - images.start,
                            rows.stop - rows.start, grid[1]), flat.dtype)
        count = max(0, min(rows.stop, height) - rows.start)   # input rows among them
        first = top + rows.start
        on_grid[:, :, :count, :width] = planes[channels, images, first:first + count,
                                                left:left + width]
        return on_grid.reshape(len(on_grid), 1, -1)

    return inputs


def _depthwise_weight_grad(grad, x_padded, weight_shape, geom):
    """Depthwise weight-gradient from the windows of the padded input
    (:func:`_padded_windows`): ``dw[c, q, i, j] = sum over images and positions of
    grad[n, c·m + q] · window_ij[n, c]``, one half of the channels per core."""
    n, c = x_padded.shape[:2]
    m = weight_shape[0] // c
    if n == 0:
        return np.zeros(weight_shape, grad.dtype)
    windows = _padded_windows(x_padded, geom, grad.shape[2:])
    grads = grad.reshape((n, c, m) + grad.shape[2:])
    out = np.zeros((c, m, math.prod(geom.kernel)), grad.dtype)

    def half(channels):
        for block, images, rows, cols, _ in _column_blocks(windows, _span(channels)):
            by_channel = grads[images, block, :, rows].transpose(1, 2, 0, 3, 4)
            by_channel = by_channel.reshape(len(cols), m, -1)
            with np.errstate(invalid="ignore"):  # inf · 0 in the padding: NaN, as PyTorch
                out[block] += np.matmul(by_channel, cols.transpose(0, 2, 1))

    halves(half, np.arange(c), size=grad.size * math.prod(geom.kernel))  # columns
    return out.reshape(weight_shape)


def _depthwise_input_grad(grad, weight, padded_shape, geom):
    """Depthwise input-gradient, on the padded input: scatter ``sum_q w[c,q,i,j] grad``."""
    n, c = padded_shape[:2]
    w = _depthwise_split(weight, c)[None, :, :, :, :, None, None]
    grad5 = grad.reshape(n, c, w.shape[2], *grad.shape[2:])
    grad_padded = np.empty(padded_shape, grad.dtype)
    for block in _batch_chunks(n, grad5[:1].nbytes, CACHE_BLOCK_BYTES):
        pieces = ((grad5[block] * w[..., i, j, :, :]).sum(axis=2)
                  for i, j in kernel_offsets(geom.kernel))
        fold_offsets(pieces, grad_padded[block].shape, geom, grad.dtype,
                     out=grad_padded[block])
    return grad_padded


# --- conv2d ---------------------------------------------------------------------------

@quiet("forward", "backward")
class _Conv2d(Function):
    """conv2d; a stride-1 depthwise one with one filter per channel whose weight needs a
    gradient keeps the padded planes of its input, not the input: the forward pass
    reads its columns from them, the backward (both gradients from the columns of the
    upstream gradient, :func:`_depthwise_planes_backward`) reads the input only there,
    and a copy made in the forward pass needs no guard against in-place changes of the
    caller's input (the autodiff's checksum of the input, twice 1.2 ms for 8 MB, is
    the cost of keeping the input). Unless those planes would be mostly padding
    (:func:`_mostly_padding`): then the input is kept.

    Both passes run with NumPy's overflow and invalid-value warnings off
    (:func:`fancydl.autodiff.quiet`): inf and NaN propagate as in PyTorch, silently."""

    @staticmethod
    def forward(ctx, input, weight, bias, geom):
        ctx.geom, ctx.input_shape, ctx.planes = geom, input.shape, None
        out_size = geom.output_size(*input.shape[2:])
        if (_use_depthwise_full(weight.shape, geom) and ctx.needs_input_grad[1]
                and not _mostly_padding(geom, input.shape[2:], out_size)):
            ctx.planes = _flat_planes(input, geom)
            out = _depthwise_planes_forward(*ctx.planes, input.shape, weight, geom)
            ctx.save_for_backward(None, weight)
        else:
            out = _conv_forward(input, weight, geom, out_size)
            ctx.save_for_backward(input if ctx.needs_input_grad[1] else None, weight)
        if bias is not None:
            add_channel_bias(out, bias)
        return out

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved
        needs, geom = ctx.needs_input_grad, ctx.geom
        grad_input = grad_weight = None
        fused = (ctx.planes is not None
                 and _is_full_correlation(grad.shape, ctx.input_shape, geom))
        if fused:
            grad_input, grad_weight = _depthwise_planes_backward(grad, *ctx.planes, weight,
                                                                 geom, needs[0])
        elif needs[1] and ctx.planes is not None:
            padded = _padded_planes(*ctx.planes, grad.shape[0]).transpose(1, 0, 2, 3)
            grad_weight = _depthwise_weight_grad(grad, padded, weight.shape, geom)
        elif needs[1]:
            grad_weight = _conv_weight_grad(grad, input, weight.shape, geom)
        if needs[0] and not fused:
            grad_input = _conv_input_grad(grad, weight, ctx.input_shape, geom)
        grad_bias = channel_sums(grad) if needs[2] else None
        return grad_input, grad_weight, grad_bias, None


def _check_conv_arrays(op, input, weight, bias):
    """Types, ranks and dtypes of input (N, C, H, W) or (C, H, W), weight and bias."""
    check_float_array(op, "input", input, ndim=(3, 4))
    check_float_array(op, "weight", weight, ndim=4)
    if bias is not None:
        check_float_array(op, "bias", bias, ndim=1)
    check_same_dtype(op, input=input, weight=weight, bias=bias)
    if 0 in weight.shape:
        raise ValueError(f"{op}: weight must have no empty dimension (at least one "
                         f"channel on each side and a kernel of at least 1×1, as PyTorch "
                         f"requires), got shape {weight.shape}")
    if input.shape[-3] == 0:
        raise ValueError(f"{op}: input must have at least one channel (dimension "
                         f"{input.ndim - 3}), got shape {input.shape}")
    if 0 in input.shape[-2:]:
        raise ValueError(f"{op}: input must have a non-empty height and width (only the "
                         f"batch may be empty, as in PyTorch), got shape {input.shape}")


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
    ph, pw = check_pair(op, "padding", padding, minimum=0, single=True)
    return ((ph, ph), (pw, pw))


def _check_output_size(op, spatial, geom, out_size):
    if min(out_size) <= 0:
        check_kernel_fits(op, tuple(spatial), geom.kernel, geom.pad_widths, geom.dilation)


def _conv2d_geometry(op, input, weight, bias, stride, padding, dilation, groups):
    """Validate conv2d's arguments; returns the geometry."""
    _check_conv_arrays(op, input, weight, bias)
    out_channels = _check_groups(op, input.shape[-3], weight, groups, transposed=False)
    _check_bias(op, bias, out_channels)
    stride = check_pair(op, "stride", stride, minimum=1, single=True)
    dilation = check_pair(op, "dilation", dilation, minimum=1, single=True)
    kernel_size = tuple(weight.shape[2:])
    pads = _conv_padding(op, padding, stride, kernel_size, dilation)
    geom = WindowGeometry(kernel_size, stride, pads, dilation, int(groups))
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
        (A one-element sequence ``(s,)`` serves both axes, as in PyTorch; the same
        for padding and dilation.)
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
    Computed as one grouped GEMM per piece of im2col columns (the buffer stays within
    :data:`fancydl.windows.WORKSPACE_BYTES`: the batch is cut into chunks and a single
    image too large for it into blocks of output rows); for depthwise weights (one
    input channel per group) as one thin GEMM per channel (``K = kH·kW``) over its
    columns, copied a cache-sized block at a time; for stride 1, one group and at
    least :data:`SHIFTED_GEMM_MIN_CHANNELS` input channels, as one GEMM per piece over
    kH copies of the image rows, adding up kW column-shifted slices of its product (no
    k×k im2col buffer); a strided one whose kernel is a multiple of the stride the
    same way on the stride phases of the input. A padding, stride or dilation that
    would make the padded input mostly padding (padding=p with stride=p, say) costs
    O(input + output·kernel), not the padded size: the im2col columns are then
    gathered from the input.

    In float32, an output that overflows is ±inf as in an exact sum (a NaN that only
    the order of the additions made is recomputed in float64); a NaN or inf in the
    input propagates as in PyTorch.

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

@quiet("forward", "backward")
class _ConvTranspose2d(Function):
    """Forward = conv2d's input-gradient; backward = conv2d forward and weight-gradient.

    With a stride that divides the kernel (:func:`_use_transposed_phases`) the forward
    keeps its stride-phase GEMM's columns; the backward takes the weight-gradient from
    them and the input-gradient from the transposed GEMM
    (:func:`_transposed_phase_backward`). Otherwise the weight-gradient reads the input
    only as a (C_in, N·H·W) matrix: the forward pass keeps that channel-first copy, not
    the input. (Either is a copy: no guard against in-place changes of the caller's
    input is needed.) Warnings off as in :class:`_Conv2d`."""

    @staticmethod
    def forward(ctx, input, weight, bias, geom, output_size):
        out_shape = (input.shape[0], weight.shape[1] * geom.groups) + tuple(output_size)
        keep = ctx.needs_input_grad[1]
        ctx.save_for_backward(weight)
        ctx.geom, ctx.input_shape = geom, tuple(input.shape)
        ctx.by_phases = _use_transposed_phases(input, weight, geom, output_size)
        if ctx.by_phases:
            cols, plane_size = _phase_columns(input, geom)
            out = _transposed_phase_forward(input, cols, plane_size, weight, out_shape, geom)
            ctx.columns = cols if keep else None
        else:
            out = _conv_input_grad(input, weight, out_shape, geom)
            ctx.by_channel = (np.ascontiguousarray(input.transpose(1, 0, 2, 3))
                              if keep else None)
        if bias is not None:
            add_channel_bias(out, bias)
        return out

    @staticmethod
    def backward(ctx, grad):
        weight, = ctx.saved
        needs = ctx.needs_input_grad
        if ctx.by_phases:
            grad_input, grad_weight = _transposed_phase_backward(
                grad, weight, ctx.columns, ctx.input_shape, ctx.geom, needs[:2])
        else:
            input = (None if ctx.by_channel is None
                     else ctx.by_channel.transpose(1, 0, 2, 3))
            grad_input, grad_weight = _conv_forward_and_weight_grad(
                grad, weight, input, ctx.geom, ctx.input_shape[2:], needs[:2])
        grad_bias = channel_sums(grad) if needs[2] else None
        return grad_input, grad_weight, grad_bias, None, None


def _conv_transpose2d_geometry(op, input, weight, bias, stride, padding, output_padding,
                               groups, dilation):
    """Validate conv_transpose2d's arguments; returns (geometry, output (H, W))."""
    _check_conv_arrays(op, input, weight, bias)
    out_channels = _check_groups(op, input.shape[-3], weight, groups, transposed=True)
    _check_bias(op, bias, out_channels)
    stride = check_pair(op, "stride", stride, minimum=1, single=True)
    dilation = check_pair(op, "dilation", dilation, minimum=1, single=True)
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or a pair of ints (PyTorch's "
                        f"conv_transpose2d has no string padding), got {padding!r}")
    ph, pw = check_pair(op, "padding", padding, minimum=0, single=True)
    extra = check_pair(op, "output_padding", output_padding, minimum=0, single=True)
    for axis, (a, s, d) in enumerate(zip(extra, stride, dilation)):
        if a >= max(s, d):
            raise ValueError(f"{op}: output_padding must be smaller than either stride or "
                             f"dilation in each dimension, got output_padding={extra} "
                             f"with stride={stride} and dilation={dilation}")
    kernel_size = tuple(weight.shape[2:])
    geom = WindowGeometry.symmetric(kernel_size, stride, (ph, pw), dilation, groups)
    out_size = tuple(_transposed_length(size, k, s, p, a, d) for size, k, s, p, a, d
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
    conv_transpose2d(y, w)>``. It is computed by the code that computes conv2d's
    input-gradient (with stride phases, its GEMM, whose columns the backward reuses).
    Note the argument order: groups before dilation.

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W) or (C_in, H, W), float32 or float64
    weight : ndarray of shape (C_in, C_out / groups, kH, kW)
        conv2d's layout for the convolution it transposes (C_in is *its* output).
    bias : ndarray of shape (C_out,), optional
    stride, padding, dilation : int or (int, int)
        Those of the convolution being transposed; padding crops the output. (A
        one-element sequence serves both axes, as in PyTorch; output_padding too.)
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

def _unfold(x, geom):
    """im2col of ``x`` (N, C, H, W): (N, C·kH·kW, L), from the padded input, or gathered
    from the input when the padded one would be mostly padding."""
    out_size = geom.output_size(*x.shape[2:])
    n, c = x.shape[:2]
    if not _mostly_padding(geom, x.shape[2:], out_size):
        cols = _unfold_padded(pad2d(x, geom.pad_widths), geom, out_size)
        return cols.reshape(n, c * geom.taps, out_size[0] * out_size[1])
    table = pixel_table(x)
    cols = np.empty((n, c * geom.taps, out_size[0] * out_size[1]), x.dtype)
    for chunk, span, rows in _gathered_pieces(x.shape, geom, out_size, x.itemsize):
        cols[chunk, :, span] = _gathered_columns(table, rows, groups=1)[:, 0]
    return cols


def _fold(cols, shape, geom):
    """col2im, the adjoint of :func:`_unfold`: columns (N, C·kH·kW, L) added back into
    an image of ``shape`` (N, C, H, W)."""
    out_size = geom.output_size(*shape[2:])
    if not _mostly_padding(geom, shape[2:], out_size):
        blocks = cols.reshape(tuple(shape[:2]) + tuple(geom.kernel) + out_size)
        padded = _fold_padded(blocks, geom.padded_shape(tuple(shape)), geom)
        return unpad2d(padded, geom.pad_widths)
    table = np.zeros((shape[0] * (shape[2] * shape[3] + 1), shape[1]), cols.dtype)
    for chunk, span, rows in _gathered_pieces(shape, geom, out_size, cols.itemsize):
        _add_columns(table, rows, cols[chunk, :, span])
    return image_from_pixel_table(table, shape)


@quiet("forward", "backward")
class _Im2col(Function):
    @staticmethod
    def forward(ctx, input, geom):
        ctx.geom, ctx.input_shape = geom, input.shape
        return _unfold(input, geom)

    @staticmethod
    def backward(ctx, grad):
        return _fold(grad, ctx.input_shape, ctx.geom), None


@quiet("forward", "backward")
class _Col2im(Function):
    @staticmethod
    def forward(ctx, cols, geom, output_size, channels):
        ctx.geom = geom
        return _fold(cols, (cols.shape[0], channels) + tuple(output_size), geom)

    @staticmethod
    def backward(ctx, grad):
        return _unfold(grad, ctx.geom), None, None, None


def _window_geometry(op, kernel_size, dilation, padding, stride):
    kernel_size = check_pair(op, "kernel_size", kernel_size, minimum=1)
    dilation = check_pair(op, "dilation", dilation, minimum=1)
    ph, pw = check_pair(op, "padding", padding, minimum=0)
    stride = check_pair(op, "stride", stride, minimum=1)
    return WindowGeometry.symmetric(kernel_size, stride, (ph, pw), dilation)


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
    if 0 in input.shape[-3:]:
        raise ValueError(f"{op}: input must have non-empty channels, height and width "
                         f"(only the batch may be empty, as in PyTorch), got shape "
                         f"{input.shape}")
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
    per_block = geom.kernel[0] * geom.kernel[1]
    rows, length = input.shape[-2:]
    if rows == 0:
        raise ValueError(f"col2im: input's dimension -2 (C·kH·kW) must be non-empty (only "
                         f"the batch may be empty, as in PyTorch), got shape {input.shape}")
    if rows % per_block:
        raise ValueError(f"col2im: input's dimension -2 must be divisible by kH·kW = "
                         f"{per_block} (kernel_size {geom.kernel}), got {rows}")
    if length != out_size[0] * out_size[1]:
        padding = (geom.pad_widths[0][0], geom.pad_widths[1][0])
        raise ValueError(f"col2im: input has {length} columns (dimension -1) but "
                         f"output_size {output_size}, kernel_size {geom.kernel}, "
                         f"dilation {geom.dilation}, padding {padding} and stride "
                         f"{geom.stride} give {out_size[0]}×{out_size[1]} = "
                         f"{out_size[0] * out_size[1]} blocks")
    input, was_unbatched = _batched(input, unbatched_ndim=2)
    out = _Col2im.apply(input, geom, output_size, rows // per_block)
    return _unbatched(out, was_unbatched)


