"""Sliding windows: the one mechanism behind convolution and pooling.

Convolution is "slide a window, multiply by the kernel and reduce"; pooling is "slide
a window and reduce". Both are written here as a loop over the k×k kernel offsets
``(i, j)``: for each offset, the input pixels that offset sees, over all output
positions at once, form one strided view of the padded input
(:func:`offset_view`). The backward pass adds gradients into the same views
(:func:`add_to_offset`). No Python loop runs over batch, channels or pixels.

Also here, shared by every windowed operator (convolution, deformable convolution,
pooling): :class:`WindowGeometry`, the one record of where the windows lie;
:func:`work_chunks`, the one way to cut a batch (and, for a single huge image, its
output rows) so that a temporary buffer stays within :data:`WORKSPACE_BYTES`; and the
two scatter-adds of the backward passes: :func:`fold_offsets` adds gradients back
where the kernel-offset views read (convolution's col2im, pooling), :func:`add_rows`
where a gather of table rows read (deformable convolution, RoI pooling, and a
convolution whose padded input would be mostly padding), from the rows of a
:func:`pixel_table`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .validation import check_int, check_pair

__all__ = ["effective_kernel_size", "check_kernel_fits", "conv_output_size",
           "conv_transpose_output_size",
           "receptive_field", "pool_output_size", "pad2d",
           "unpad2d", "kernel_offsets", "offset_view", "add_to_offset", "stride_phases",
           "phase_view", "phase_zeros", "merge_phases", "uses_phases", "fold_offsets",
           "WindowGeometry", "WORKSPACE_BYTES", "work_chunks", "pixel_table",
           "image_from_pixel_table", "add_rows"]

#: The one memory budget (bytes) of a temporary work buffer (im2col columns, the
#: shifted-GEMM rows and products, deformable convolution's sampled columns): operators
#: cut their batch, and for a single image too large for it its output rows, into
#: pieces whose buffer stays within it (see :func:`work_chunks`). Read at call time,
#: so setting ``fancydl.windows.WORKSPACE_BYTES`` changes every operator's chunking.
WORKSPACE_BYTES = 16 * 2**20


@dataclasses.dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of one convolution or pooling lie (validated arguments).

    Attributes
    ----------
    kernel : (kH, kW)
    stride : (sH, sW)
    pad_widths : ((top, bottom), (left, right))
        The padding actually added ('same' convolution and ceil_mode pooling pad
        asymmetrically).
    dilation : (dH, dW)
    groups : int
        Channel groups (convolutions; 1 for pooling).
    out_size : (H_out, W_out) or None
        Fixed by the caller (pooling, deformable convolution); None: computed from
        the input size by :meth:`output_size`.
    """

    kernel: tuple
    stride: tuple
    pad_widths: tuple
    dilation: tuple
    groups: int = 1
    out_size: tuple | None = None

    @classmethod
    def symmetric(cls, kernel, stride, padding, dilation, groups=1, out_size=None):
        """A geometry with ``padding = (pH, pW)`` on both sides of each axis."""
        (ph, pw) = padding
        return cls(tuple(kernel), tuple(stride), ((ph, ph), (pw, pw)), tuple(dilation),
                   int(groups), None if out_size is None else tuple(out_size))

    @property
    def taps(self):
        """Number of kernel offsets, kH·kW."""
        return self.kernel[0] * self.kernel[1]

    def padded_shape(self, shape):
        """Shape ``(..., H, W)`` after padding."""
        (top, bottom), (left, right) = self.pad_widths
        return tuple(shape[:-2]) + (shape[-2] + top + bottom, shape[-1] + left + right)

    def output_size(self, height, width):
        """Output (H_out, W_out) on an (H, W) input (PyTorch's floor formula)."""
        if self.out_size is not None:
            return self.out_size
        return tuple(_output_length(size, k, s, p, d) for size, k, s, p, d in zip(
            (height, width), self.kernel, self.stride, self.pad_widths, self.dilation))

    def window_origins(self, out_size, dtype):
        """Input row and column that tap ``(i, j)`` of output ``(h, w)`` reads:
        ``h sH - top + i dH`` and ``w sW - left + j dW``.

        Returns
        -------
        rows, cols : ndarrays of shape (H_out·W_out, kH·kW), ``dtype``
        """
        (sh, sw), (dh, dw) = self.stride, self.dilation
        top, left = self.pad_widths[0][0], self.pad_widths[1][0]
        ho, wo = out_size
        taps = np.array(kernel_offsets(self.kernel)).reshape(-1, 2)
        rows = np.repeat(np.arange(ho) * sh - top, wo)[:, None] + taps[:, 0] * dh
        cols = np.tile(np.arange(wo) * sw - left, ho)[:, None] + taps[:, 1] * dw
        return rows.astype(dtype, copy=False), cols.astype(dtype, copy=False)


def work_chunks(batch, bytes_per_image, rows=1, budget=None):
    """Pieces of the work whose buffers fit in ``budget`` bytes.

    The batch is cut into chunks of equal size (but the last), as few as the budget
    allows. When even one image exceeds it and its work can be split by output row
    (``rows`` > 1 output rows, each costing ``bytes_per_image / rows``), each image is
    cut into blocks of output rows instead.

    Parameters
    ----------
    batch : int
        Number of images (may be 0: no pieces).
    bytes_per_image : int
        Buffer bytes one image needs.
    rows : int
        Output rows of one image that can be computed separately (1: not splittable).
    budget : int, optional
        Defaults to :data:`WORKSPACE_BYTES`, read at call time.

    Returns
    -------
    list of (batch slice, row slice)
        The row slice is ``slice(0, rows)`` unless the images are cut by rows.

    Examples
    --------
    >>> work_chunks(5, 40, budget=100)
    [(slice(0, 2, None), slice(0, 1, None)), (slice(2, 4, None), slice(0, 1, None)), \
(slice(4, 5, None), slice(0, 1, None))]
    >>> [r for _, r in work_chunks(1, 1000, rows=10, budget=300)]
    [slice(0, 3, None), slice(3, 6, None), slice(6, 9, None), slice(9, 10, None)]
    """
    budget = WORKSPACE_BYTES if budget is None else budget
    bytes_per_image = max(int(bytes_per_image), 1)
    if bytes_per_image > budget and rows > 1:
        per_block = max(1, int(budget // -(-bytes_per_image // rows)))
        return [(slice(n, n + 1), slice(r, min(r + per_block, rows)))
                for n in range(batch) for r in range(0, rows, per_block)]
    most = max(1, int(budget // bytes_per_image))
    count = -(-batch // most)
    step = -(-batch // count) if count else 1
    return [(slice(start, min(start + step, batch)), slice(0, rows))
            for start in range(0, batch, step)]


def pixel_table(x, groups=1):
    """Channels-last lookup table of an image batch, with a zero pixel after each plane.

    The table of a gather (:func:`add_rows` is its backward): row ``(n·groups + g)·(H·W
    + 1) + p`` holds pixel ``p = h·W + w`` of every channel of channel group ``g`` of
    image ``n``, and row ``... + H·W`` is zero: an index that points there reads the
    zero padding (or a missing bilinear corner) without a mask, so a NaN or inf pixel
    never leaks into what reads outside the image.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    groups : int
        Channel groups (deformable convolution's offset groups); divides C.

    Returns
    -------
    ndarray of shape (N·groups·(H·W + 1), C / groups)
    """
    n, c, h, w = x.shape
    table = np.zeros((n, groups, h * w + 1, c // groups), x.dtype)
    table[:, :, :-1] = x.reshape(n, groups, c // groups, h * w).transpose(0, 1, 3, 2)
    return table.reshape(-1, c // groups)


def image_from_pixel_table(table, shape, groups=1):
    """Inverse of :func:`pixel_table` (the zero pixels dropped): the (N, C, H, W) view."""
    n, c, h, w = shape
    planes = table.reshape(n, groups, h * w + 1, c // groups)[:, :, :-1]
    return planes.transpose(0, 1, 3, 2).reshape(shape)


def add_rows(table, rows, values):
    """Backward of a gather of table rows: ``table[rows[k]] += values[k]``, repeats summed.

    Parameters
    ----------
    table : ndarray of shape (R, C), C-contiguous, updated in place
    rows : int ndarray of any shape (...)
        Rows of ``table`` that were gathered.
    values : ndarray of shape (..., C)
        Gradient of each gathered row.

    Notes
    -----
    ``np.add.at`` on flat element indices ``row·C + channel`` (NumPy's fast path for a
    1-D target) is several times faster than ``np.add.at`` on (rows, C) blocks or a
    sort and ``np.add.reduceat``.
    """
    channels, rows = table.shape[-1], np.asarray(rows)
    flat = (rows[..., None] * channels + np.arange(channels)).reshape(-1)
    np.add.at(table.reshape(-1), flat, np.broadcast_to(values, rows.shape + (channels,))
              .reshape(-1))


#: Smallest valid value of each argument of the size helpers below.
_MINIMUM = dict(size=1, kernel_size=1, stride=1, padding=0, output_padding=0, dilation=1)


def _check_sizes(op, **values):
    """Each keyword an int no smaller than its :data:`_MINIMUM`; returns them in order."""
    return [check_int(op, name, value, minimum=_MINIMUM[name])
            for name, value in values.items()]


def effective_kernel_size(kernel_size, dilation=1):
    """Extent of a dilated kernel: ``k + (k - 1)(d - 1) = d(k - 1) + 1``.

    Examples
    --------
    >>> effective_kernel_size(3, dilation=2)
    5
    """
    _check_sizes("effective_kernel_size", kernel_size=kernel_size, dilation=dilation)
    return dilation * (kernel_size - 1) + 1


def _output_length(size, kernel_size, stride, padding, dilation):
    """:func:`conv_output_size` of validated arguments, ``padding`` a pair
    ``(before, after)``; may be < 1 (the operators say why in their own words)."""
    return (size + padding[0] + padding[1] - dilation * (kernel_size - 1) - 1) // stride + 1


def check_kernel_fits(op, size, kernel_size, pad_widths, dilation):
    """Refuse a (dilated) kernel larger than the padded input along some axis: such a
    convolution or pooling has no output, and PyTorch refuses it too.

    Parameters
    ----------
    op : str
        Operator name, for the message.
    size, kernel_size, dilation : tuple of int
        One entry per axis (validated).
    pad_widths : tuple of (int, int)
        Padding before and after, per axis.

    Raises
    ------
    ValueError
        Naming the dilated kernel ``dilation·(kernel_size - 1) + 1`` and the padded
        input, per axis.
    """
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation))
    padded = tuple(n + before + after for n, (before, after) in zip(size, pad_widths))
    if any(e > n for e, n in zip(extent, padded)):
        raise ValueError(f"{op}: the dilated kernel {extent} (kernel_size "
                         f"{tuple(kernel_size)}, dilation {tuple(dilation)}) is larger "
                         f"than the padded input "
                         f"{padded} (input {tuple(size)}, padding {tuple(pad_widths)}): "
                         f"there is no output")


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output length of a convolution along one axis (PyTorch's formula).

    ``floor((size + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1``; the
    ``padding`` may also be a pair ``(before, after)``.

    Raises
    ------
    ValueError
        When an argument is out of range, or the dilated kernel is larger than the
        padded input (no output).

    Examples
    --------
    >>> conv_output_size(32, 3, stride=2, padding=1)
    16
    """
    op = "conv_output_size"
    _check_sizes(op, size=size, kernel_size=kernel_size, stride=stride, dilation=dilation)
    pads = check_pair(op, "padding", padding, minimum=0)
    check_kernel_fits(op, (size,), (kernel_size,), (pads,), (dilation,))
    return _output_length(size, kernel_size, stride, pads, dilation)


def _transposed_length(size, kernel_size, stride, padding, output_padding, dilation):
    """:func:`conv_transpose_output_size` of validated arguments; may be < 1."""
    return ((size - 1) * stride - 2 * padding + dilation * (kernel_size - 1)
            + output_padding + 1)


def conv_transpose_output_size(size, kernel_size, stride=1, padding=0, output_padding=0,
                               dilation=1):
    """Output length of a transposed convolution along one axis (PyTorch's formula).

    ``(size - 1) stride - 2 padding + dilation (kernel_size - 1) + output_padding + 1``:
    the largest input length that the matching convolution maps to ``size`` is this
    with ``output_padding = stride - 1``.

    Raises
    ------
    ValueError
        When an argument is out of range (``output_padding`` must be smaller than
        ``max(stride, dilation)``, as in PyTorch), or the padding leaves no output.

    Examples
    --------
    >>> conv_transpose_output_size(16, 4, stride=2, padding=1)
    32
    """
    op = "conv_transpose_output_size"
    _check_sizes(op, size=size, kernel_size=kernel_size, stride=stride, padding=padding,
                 output_padding=output_padding, dilation=dilation)
    if output_padding >= max(stride, dilation):
        raise ValueError(f"{op}: output_padding must be smaller than max(stride, "
                         f"dilation) = {max(stride, dilation)}, got {output_padding}")
    out = _transposed_length(size, kernel_size, stride, padding, output_padding, dilation)
    if out < 1:
        raise ValueError(f"{op}: (size - 1)·stride - 2·padding + dilation·(kernel_size - "
                         f"1) + output_padding + 1 = {out} for size={size}, kernel_size="
                         f"{kernel_size}, stride={stride}, padding={padding}, "
                         f"output_padding={output_padding}, dilation={dilation}: too "
                         f"much padding, there is no output")
    return out


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
    for index, layer in enumerate(layers):
        kernel_size, stride, dilation = _check_layer(index, layer)
        field += (effective_kernel_size(kernel_size, dilation) - 1) * jump
        jump *= stride
    return field


def _check_layer(index, layer):
    """Layer ``index`` of :func:`receptive_field` as (kernel_size, stride, dilation)."""
    where = f"receptive_field: layers[{index}]"
    if not isinstance(layer, (tuple, list)) or not 1 <= len(layer) <= 3:
        raise TypeError(f"{where} must be a tuple (kernel_size, stride, dilation), "
                        f"stride and dilation optional, got {type(layer).__name__} "
                        f"{layer!r}")
    kernel_size, stride, dilation = tuple(layer) + (1, 1)[len(layer) - 1:]  # default 1
    return _check_sizes(where, kernel_size=kernel_size, stride=stride, dilation=dilation)


def pool_output_size(size, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """Output length of a pooling window along one axis, with ``ceil_mode``.

    With ``ceil_mode`` the division rounds up, but a last window is kept only if it
    starts inside the input or the left padding (PyTorch's rule).

    Examples
    --------
    >>> pool_output_size(5, 2, 2, ceil_mode=True)
    3
    """
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1  # padded - dilated kernel
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
    height, width = x.shape[-2:]
    shape = x.shape[:-2] + (height + top + bottom, width + left + right)
    # A filled array with the input copied in: 1.4 to 2 times faster than np.pad
    # (measured on (16, 32, 32, 32) and (16, 64, 16, 16) float32).
    padded = np.zeros(shape, x.dtype) if value == 0 else np.full(shape, value, x.dtype)
    padded[..., top:top + height, left:left + width] = x
    return padded


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


def uses_phases(geom):
    """Whether to read and write the offset views through stride phases: only while
    there are no more phases (sH sW) than kernel offsets, so that splitting costs
    O(input), never O(stride²) (a stride larger than the kernel leaves most phases
    unread)."""
    return geom.stride[0] * geom.stride[1] <= geom.kernel[0] * geom.kernel[1]


def fold_offsets(pieces, padded_shape, geom, dtype, crop=((0, 0), (0, 0)), out=None):
    """Adjoint of reading the kernel-offset views: add each offset's piece where that
    offset read, then crop.

    Through the stride phases (unit-stride additions) when :func:`uses_phases`, else
    with :func:`add_to_offset` on the strided views.

    Parameters
    ----------
    pieces : iterable of ndarray of shape (..., H_out, W_out), or None to skip
        One per kernel offset, in :func:`kernel_offsets` order.
    padded_shape : tuple
        Shape (..., Hp, Wp) of the padded array the views were read from.
    geom : WindowGeometry
    dtype : dtype of the result
    crop : ((top, bottom), (left, right))
        Padding to drop from the result (as :func:`unpad2d`).
    out : ndarray, optional
        Where to write the (cropped) result.

    Returns
    -------
    ndarray of ``padded_shape`` less the crop
    """
    offsets = kernel_offsets(geom.kernel)
    no_crop = crop == ((0, 0), (0, 0))
    if not uses_phases(geom):
        padded = np.zeros(padded_shape, dtype)
        for offset, piece in zip(offsets, pieces):
            if piece is not None:
                add_to_offset(padded, offset, geom.stride, geom.dilation, piece)
        if out is None:
            return padded if no_crop else np.ascontiguousarray(unpad2d(padded, crop))
        out[...] = unpad2d(padded, crop)
        return out
    phases = phase_zeros(padded_shape, geom.stride, dtype)
    for offset, piece in zip(offsets, pieces):
        if piece is not None:
            view = phase_view(phases, offset, geom.stride, geom.dilation, piece.shape[-2:])
            view += piece
    if tuple(geom.stride) == (1, 1) and no_crop and out is None:
        return phases[(0, 0)]
    return merge_phases(phases, padded_shape, geom.stride, crop=crop, out=out)
