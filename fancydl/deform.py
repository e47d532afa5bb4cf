"""Deformable convolution (v1 and v2), with torchvision.ops.deform_conv2d's semantics.

A regular convolution reads its input on a fixed grid: kernel tap ``(i, j)`` of output
``(h, w)`` reads the pixel at ``(h s - p + i d, w s - p + j d)``. A deformable one adds a
learned, real-valued displacement ``(dy, dx)`` per tap and per output position, reads the
input there by bilinear interpolation, optionally multiplies the sample by a learned
modulation ``mask`` (v2), and then reduces with the kernel exactly as a convolution does.

The implementation gathers the four neighbouring pixels of every sampling point in one
vectorized indexing operation (channels last, so each index copies a contiguous row of
channels), blends them with the bilinear weights, and contracts with the weight in one
grouped matrix product. The backward pass recomputes the samples, so nothing of the
size of the column buffer is kept between forward and backward, and the batch is
processed in chunks whose column buffer stays within
:data:`fancydl.windows.WORKSPACE_BYTES` (a single image too large for it in blocks of
output rows). NumPy's overflow and invalid-value warnings are off in both passes: a
NaN or inf propagates as in torchvision, silently.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .autodiff import Function
from .rows import add_channel_bias, channel_sums
from .validation import check_float_array, check_pair, check_same_dtype
from .windows import (WindowGeometry, add_rows, image_from_pixel_table, pixel_table,
                      work_chunks)

__all__ = ["deform_conv2d", "deform_sampling_points", "bilinear_sample"]

# --- geometry: where every kernel tap samples ------------------------------------------

class _Deformation:
    """Shapes of one call and its window geometry, shared by forward and backward.

    ``window`` is the :class:`~fancydl.windows.WindowGeometry` of the undeformed
    convolution (its ``out_size`` fixed); the rest are the array sizes.
    """

    def __init__(self, input_shape, weight_shape, offset_groups, window):
        self.batch, self.channels, self.height, self.width = input_shape
        self.out_channels, self.group_channels = weight_shape[:2]
        self.groups = self.channels // self.group_channels
        self.offset_groups = offset_groups
        self.window = window
        self.kernel, self.taps, self.out_size = window.kernel, window.taps, window.out_size

    def regular_grid(self, dtype):
        """Undeformed sampling positions ``h s - p + i d`` (rows) and ``w s - p + j d``
        (columns), each of shape (H_out W_out, kH kW)."""
        return self.window.window_origins(self.out_size, dtype)

    def output_rows(self, rows):
        """The same call restricted to the output rows ``rows`` (a slice): its windows
        start ``rows.start`` strides lower (as if the top padding were that smaller)."""
        if rows == slice(0, self.out_size[0]):
            return self
        (top, bottom), columns = self.window.pad_widths
        shifted = ((top - rows.start * self.window.stride[0], bottom), columns)
        window = dataclasses.replace(self.window, pad_widths=shifted,
                                     out_size=(rows.stop - rows.start, self.out_size[1]))
        return _Deformation((self.batch, self.channels, self.height, self.width),
                            (self.out_channels, self.group_channels) + tuple(self.kernel),
                            self.offset_groups, window)


def _window(kernel, stride, padding, dilation, spatial=None, out_size=None):
    """The undeformed window geometry, its output size computed from ``spatial``
    (H, W) unless given."""
    window = WindowGeometry.symmetric(kernel, stride, padding, dilation)
    out_size = window.output_size(*spatial) if out_size is None else out_size
    return dataclasses.replace(window, out_size=tuple(out_size))


def _points_layout(per_tap, geometry, components):
    """(B, G_off * kH kW * components, H_out, W_out) -> (B, H_out W_out, kH kW, G_off,
    components): the layout in which the samples are gathered."""
    b = per_tap.shape[0]
    g, k = geometry.offset_groups, geometry.taps
    split = per_tap.reshape(b, g, k, components, -1)
    return split.transpose(0, 4, 2, 1, 3)


def _channels_layout(points, geometry):
    """Inverse of :func:`_points_layout`: (B, L, K, G_off, c) -> (B, G_off K c, Ho, Wo)."""
    b = points.shape[0]
    return points.transpose(0, 3, 2, 4, 1).reshape(b, -1, *geometry.out_size)


def _sampling_points(offset, geometry):
    """Rows ``y`` and columns ``x`` of every sampling point, each (B, L, K, G_off)."""
    base_y, base_x = geometry.regular_grid(offset.dtype)
    d = _points_layout(offset, geometry, 2)
    # C order matters: every array derived from these inherits their memory layout,
    # and gathers with a transposed index array run an order of magnitude slower.
    y = np.add(base_y[None, :, :, None], d[..., 0], order="C")
    x = np.add(base_x[None, :, :, None], d[..., 1], order="C")
    return y, x


# --- bilinear interpolation with zeros outside ------------------------------------------

class _Corners:
    """The four pixels around each sampling point, their weights and weight derivatives.

    torchvision's rule: a point with ``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W``
    samples 0; otherwise corner ``(floor(y) + a, floor(x) + b)``, ``a, b`` in {0, 1},
    counts with weight ``(a ? ly : 1 - ly) (b ? lx : 1 - lx)`` (``ly, lx`` the fractional
    parts) if it lies inside the image. An outside corner points at an extra zero pixel
    (index ``H W``) appended to every plane, so the gather needs no mask and a NaN or
    inf pixel never leaks through the weight 0 of a corner that does not exist. The last
    axis of every attribute lists the corners (0, 0), (0, 1), (1, 0), (1, 1).

    Attributes
    ----------
    pixels : int array (..., 4)
        Flat pixel index ``row W + col`` of each corner, or ``H W`` when outside.
    weights : float array (..., 4)
        Bilinear weights; all 0 at a point outside the sampling domain.
    d_dy, d_dx : float arrays (..., 4)
        Derivatives of the weights with respect to ``y`` and ``x``: at an integer
        coordinate the right-hand one, since floor() picks the cell to the right
        (torchvision's convention). Like torchvision, they are not zeroed outside.
    """

    def __init__(self, y, x, height, width):
        with np.errstate(invalid="ignore"):  # inf - inf for infinite offsets
            y0, x0 = np.floor(y), np.floor(x)
            ly, lx = y - y0, x - x0
        # Per axis, a (low, high) pair of neighbours; each corner is a row and a column.
        rows_in = ((y0 >= 0) & (y0 < height), (y0 >= -1) & (y0 < height - 1))
        cols_in = ((x0 >= 0) & (x0 < width), (x0 >= -1) & (x0 < width - 1))
        first = y0 * width + x0
        valid = _corner_table(rows_in, cols_in, np.logical_and)
        pixels = _corner_table((first, first + width), (0, 1), np.add)
        self.pixels = np.where(valid, pixels, height * width).astype(np.intp)
        self._wy, self._wx = (1 - ly, ly), (1 - lx, lx)
        inside = ~((y <= -1) | (y >= height) | (x <= -1) | (x >= width))
        zero = np.zeros((), y.dtype)  # np.where, not a product: 0 * inf would be NaN
        self.weights = _corner_table([np.where(inside, w, zero) for w in self._wy],
                                     [np.where(inside, w, zero) for w in self._wx],
                                     np.multiply)

    @property
    def d_dy(self):
        return _corner_table((-1, 1), self._wx, np.multiply)

    @property
    def d_dx(self):
        return _corner_table(self._wy, (-1, 1), np.multiply)


def _corner_table(row_factors, col_factors, op):
    """``op(row, col)`` for each corner, stacked on a last axis of 4 in the corner order
    (0, 0), (0, 1), (1, 0), (1, 1); the factors are (low, high) pairs of arrays or
    numbers. (Stacking whole arrays is far faster than broadcasting over an axis of 2.)"""
    return np.stack([op(r, c) for r in row_factors for c in col_factors], -1)


def _table_rows(pixels, geometry):
    """Table rows of the corner pixels ``pixels`` (B, L, K, G_off, 4) of a chunk."""
    b, g = pixels.shape[0], geometry.offset_groups
    plane = geometry.height * geometry.width + 1
    first = (np.arange(b)[:, None] * g + np.arange(g)) * plane
    return pixels + first[:, None, None, :, None]


# --- the grouped matrix product ------------------------------------------------------

def _weight_matrix(weight, groups):
    """(C_out, C_in/G, kH, kW) -> (G, kH kW C_in/G, C_out/G), matching the columns."""
    c_out, cg, kh, kw = weight.shape
    return weight.reshape(groups, c_out // groups, cg, kh * kw).transpose(0, 3, 2, 1).reshape(
        groups, kh * kw * cg, c_out // groups)


def _grouped_columns(columns, groups):
    """(B, L, K, G_off, C_in/G_off) columns -> (G, B L, K C_in/G) for the grouped product."""
    b, l, k = columns.shape[:3]
    c = columns.shape[3] * columns.shape[4]
    split = columns.reshape(b * l, k, groups, c // groups).transpose(2, 0, 1, 3)
    return split.reshape(groups, b * l, k * (c // groups))


def _grouped_output(grad_out, groups):
    """(B, C_out, Ho, Wo) -> (G, B L, C_out/G), the output as the product yields it."""
    b, c_out = grad_out.shape[:2]
    split = grad_out.reshape(b, groups, c_out // groups, -1).transpose(1, 0, 3, 2)
    return split.reshape(groups, -1, c_out // groups)


# --- the operator ---------------------------------------------------------------------

def _chunks(geometry, itemsize):
    """Pieces of the work (batch slice, output-row slice) whose column buffer (chunk,
    H_out W_out, kH kW, C_in) stays within :data:`fancydl.windows.WORKSPACE_BYTES`: a
    chunk of images, or a block of output rows of a single image too large for it
    (:func:`fancydl.windows.work_chunks`). The peak working memory is about 6 such
    buffers in the forward pass and 8 in the forward+backward pass (the four-corner
    gather alone holds 4)."""
    per_image = geometry.out_size[0] * geometry.out_size[1] * geometry.taps * \
        geometry.channels * itemsize
    return work_chunks(geometry.batch, per_image, rows=geometry.out_size[0])


def _sample(x, y, xs, geometry):
    """Bilinear samples of a chunk.

    Returns
    -------
    sampled : (B, L, K, G_off, C/G_off)
    corners : _Corners of the sampling points
    values : (B, L, K, G_off, 4, C/G_off), the four corner pixels of every point
    """
    corners = _Corners(y, xs, geometry.height, geometry.width)
    table = pixel_table(x, geometry.offset_groups)
    values = np.take(table, _table_rows(corners.pixels, geometry), axis=0)
    sampled = np.einsum("...c,...cd->...d", corners.weights, values)
    return sampled, corners, values


class _DeformConv2d(Function):
    @staticmethod
    def forward(ctx, input, offset, weight, bias, mask, geometry):
        ctx.save_for_backward(input, offset, weight, bias, mask)
        ctx.geometry = geometry
        out = np.empty((geometry.batch, geometry.out_channels, *geometry.out_size),
                       input.dtype)
        w = _weight_matrix(weight, geometry.groups)
        with np.errstate(over="ignore", invalid="ignore"):  # NaN, inf: as torchvision
            for chunk, rows in _chunks(geometry, input.itemsize):
                part = geometry.output_rows(rows)
                y, x = _sampling_points(offset[chunk, :, rows], part)
                columns = _sample(input[chunk], y, x, part)[0]  # frees the corners
                if mask is not None:
                    columns *= _points_layout(mask[chunk, :, rows], part, 1)
                product = _grouped_columns(columns, part.groups) @ w  # (G, B L, C_out/G)
                b = columns.shape[0]
                by_group = product.reshape(part.groups, b, -1, product.shape[-1])
                out[chunk, :, rows] = by_group.transpose(1, 0, 3, 2).reshape(
                    b, part.out_channels, *part.out_size)
            if bias is not None:
                add_channel_bias(out, bias)
        return out

    @staticmethod
    def backward(ctx, grad):
        input, offset, weight, bias, mask = ctx.saved
        g = ctx.geometry
        need_x, need_offset, need_w, need_b, need_mask = ctx.needs_input_grad[:5]
        with np.errstate(over="ignore", invalid="ignore"):  # NaN, inf: as torchvision
            grads = _deform_backward_chunks(grad, input, offset, weight, mask, g,
                                            need_x, need_offset, need_w, need_mask)
            grad_bias = channel_sums(grad) if need_b and bias is not None else None
        grad_x, grad_offset, grad_w, grad_mask = grads
        return grad_x, grad_offset, grad_w, grad_bias, grad_mask, None


def _deform_backward_chunks(grad, input, offset, weight, mask, geometry, need_x,
                            need_offset, need_w, need_mask):
    """Gradients of input, offset, weight and mask, one piece of the work (a batch
    chunk or a block of output rows, :func:`_chunks`) at a time."""
    dtype = input.dtype
    grad_x = np.zeros_like(input) if need_x else None
    grad_offset = np.zeros_like(offset) if need_offset else None
    grad_mask = np.zeros_like(mask) if need_mask and mask is not None else None
    w = _weight_matrix(weight, geometry.groups)
    grad_w = np.zeros_like(w) if need_w else None
    for chunk, rows in _chunks(geometry, input.itemsize):
        g = geometry.output_rows(rows)
        y, x = _sampling_points(offset[chunk, :, rows], g)
        sampled, corners, values = _sample(input[chunk], y, x, g)
        b = sampled.shape[0]
        m = None if mask is None else _points_layout(mask[chunk, :, rows], g, 1)
        grad_product = _grouped_output(grad[chunk, :, rows], g.groups)  # (G, B L, C_out/G)
        # Gradient of the (masked) columns, back in the (B, L, K, G_off, C/G_off) layout.
        grad_columns = (grad_product @ w.transpose(0, 2, 1)).reshape(
            g.groups, b, -1, g.taps, g.group_channels).transpose(1, 2, 3, 0, 4).reshape(
            sampled.shape)
        if grad_mask is not None:
            grad_mask[chunk, :, rows] = _channels_layout(
                np.einsum("...d,...d->...", grad_columns, sampled)[..., None], g)
        if m is not None:  # from here on only the masked columns matter: in place
            sampled *= m
            grad_columns *= m
        if need_w:
            grad_w += _grouped_columns(sampled, g.groups).transpose(0, 2, 1) @ grad_product
        grad_sampled = grad_columns  # masked in place: now the gradient of the samples
        if need_offset:
            # d sample / d y = sum over corners of (d weight / d y) * corner value.
            per_corner = np.einsum("...d,...cd->...c", grad_sampled, values)
            grad_y = (corners.d_dy * per_corner).sum(-1)
            grad_xs = (corners.d_dx * per_corner).sum(-1)
            grad_offset[chunk, :, rows] = _channels_layout(np.stack([grad_y, grad_xs], -1),
                                                           g)
        del values  # four column buffers: free them before the scatter
        if need_x:
            grad_x[chunk] += _scatter_to_pixels(grad_sampled, corners, g, dtype)
    if need_w:
        kh, kw = geometry.kernel
        grad_w = grad_w.reshape(geometry.groups, kh * kw, geometry.group_channels,
                                -1).transpose(
            0, 3, 2, 1).reshape(weight.shape)
    return grad_x, grad_offset, grad_w, grad_mask


def _scatter_to_pixels(grad_sampled, corners, g, dtype):
    """Backward of the gather: add ``weight * grad`` of every corner into its pixel.

    :func:`fancydl.windows.add_rows` accumulates where several points share a pixel;
    one corner at a time keeps the index array at one column buffer's worth of integers.

    Returns the input gradient of the chunk, (B, C, H, W).
    """
    b, cg = grad_sampled.shape[0], grad_sampled.shape[-1]
    plane = g.height * g.width + 1
    table = np.zeros((b * g.offset_groups * plane, cg), dtype)
    rows = _table_rows(corners.pixels, g)
    contributions = np.empty_like(grad_sampled)
    for corner in range(4):
        np.multiply(corners.weights[..., corner, None], grad_sampled, out=contributions)
        add_rows(table, rows[..., corner], contributions)
    return image_from_pixel_table(table, (b, g.channels, g.height, g.width),
                                  g.offset_groups)


def _check_arguments(input, offset, weight, bias, mask, stride, padding, dilation):
    """Validate like torchvision (with messages naming the argument); return the geometry."""
    op = "deform_conv2d"
    check_float_array(op, "input", input, ndim=4)
    check_float_array(op, "offset", offset, ndim=4)
    check_float_array(op, "weight", weight, ndim=4)
    if bias is not None:
        check_float_array(op, "bias", bias, ndim=1)
    if mask is not None:
        check_float_array(op, "mask", mask, ndim=4)
    check_same_dtype(op, input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    stride = check_pair(op, "stride", stride, minimum=1)
    padding = check_pair(op, "padding", padding, minimum=0)
    dilation = check_pair(op, "dilation", dilation, minimum=1)
    n, c, h, w = input.shape
    c_out, cg, kh, kw = weight.shape
    if kh == 0 or kw == 0:
        raise ValueError(f"{op}: weight must have kernel sizes >= 1, got shape {weight.shape}")
    if c_out == 0:
        raise ValueError(f"{op}: weight must have at least one output channel (dimension 0), "
                         f"got shape {weight.shape}")
    if c == 0 or h == 0 or w == 0:
        raise ValueError(f"{op}: input must have non-empty channels, height and width "
                         f"(only the batch may be empty), got shape {input.shape}")
    if cg == 0 or c % cg != 0:
        raise ValueError(f"{op}: weight.shape[1] (C_in / groups) must divide the {c} input "
                         f"channels, got {cg}")
    groups = c // cg
    if c_out % groups != 0:
        raise ValueError(f"{op}: weight.shape[0] (out channels, {c_out}) must be divisible "
                         f"by groups = C_in / weight.shape[1] = {c} / {cg} = {groups}")
    taps = kh * kw
    if offset.shape[1] == 0 or offset.shape[1] % (2 * taps) != 0:
        raise ValueError(f"{op}: offset.shape[1] must be a positive multiple of "
                         f"2 * kH * kW = {2 * taps} (a (dy, dx) pair per kernel tap and "
                         f"offset group), got {offset.shape[1]}")
    offset_groups = offset.shape[1] // (2 * taps)
    if c % offset_groups != 0:
        raise ValueError(f"{op}: the {c} input channels must be divisible by the "
                         f"{offset_groups} offset groups (offset.shape[1] / (2 kH kW))")
    window = _window((kh, kw), stride, padding, dilation, spatial=(h, w))
    geometry = _Deformation(input.shape, weight.shape, offset_groups, window)
    if min(geometry.out_size) <= 0:
        raise ValueError(f"{op}: output size {geometry.out_size} is too small: input "
                         f"{(h, w)} with kernel {(kh, kw)}, padding {padding} and dilation "
                         f"{dilation}")
    expected = (n, offset.shape[1], *geometry.out_size)
    if offset.shape != expected:
        raise ValueError(f"{op}: offset must have shape (N, 2 G_off kH kW, H_out, W_out) = "
                         f"{expected}, got {offset.shape}")
    if mask is not None and mask.shape != (n, offset_groups * taps, *geometry.out_size):
        raise ValueError(f"{op}: mask must have shape (N, G_off kH kW, H_out, W_out) = "
                         f"{(n, offset_groups * taps, *geometry.out_size)}, got {mask.shape}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"{op}: bias must have shape ({c_out},), got {bias.shape}")
    return geometry


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1,
                  mask=None):
    """Deformable convolution v1 (and v2 with ``mask``), like torchvision.ops.deform_conv2d.

    Output ``(n, o, h, w)`` is ``bias[o] + sum_{c, i, j} weight[o, c, i, j] m v`` where
    ``v`` is input channel ``c`` (of o's group) sampled bilinearly at
    ``(h sH - pH + i dH + dy, w sW - pW + j dW + dx)``, ``(dy, dx)`` is the offset of tap
    ``k = i kW + j`` of c's offset group at ``(h, w)``, and ``m`` the mask (1 without).

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W), float32 or float64
    offset : ndarray of shape (N, 2 G_off kH kW, H_out, W_out)
        Channel ``g 2 kH kW + 2 k`` is ``dy`` (rows) and ``+ 1`` is ``dx`` (columns) of
        tap ``k`` of offset group ``g``; the number of offset groups ``G_off`` is
        inferred from the channels, and input channel ``c`` uses group
        ``c // (C_in / G_off)``.
    weight : ndarray of shape (C_out, C_in / groups, kH, kW)
        ``groups`` is inferred as ``C_in / weight.shape[1]``.
    bias : ndarray of shape (C_out,), optional
    stride, padding, dilation : int or pair of int
    mask : ndarray of shape (N, G_off kH kW, H_out, W_out), optional
        Modulation (Deformable ConvNets v2) multiplying each sample; no sigmoid is
        applied. Differentiate it by passing it positionally (it is the 8th argument) or
        through a wrapper: ``vjp(lambda x, o, w, m: deform_conv2d(x, o, w, mask=m), ...)``.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out)
        ``H_out = floor((H + 2 pH - dH (kH - 1) - 1) / sH) + 1``, likewise ``W_out``.

    Notes
    -----
    A sample at ``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W`` is 0; otherwise each
    of the four neighbouring pixels counts only if it lies inside the image. With zero
    offsets (and mask 1) this is exactly ``conv2d``.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 1, 1))
    >>> half_right = np.array([0.0, 0.5]).reshape(1, 2, 1, 1) * np.ones((1, 2, 4, 4))
    >>> fancydl.deform_conv2d(x, half_right, w)[0, 0, 0]
    array([0.5, 1.5, 2.5, 1.5])
    """
    geometry = _check_arguments(input, offset, weight, bias, mask, stride, padding, dilation)
    return _DeformConv2d.apply(input, offset, weight, bias, mask, geometry)


def deform_sampling_points(offset, kernel_size, stride=1, padding=0, dilation=1):
    """Where every kernel tap of a deformable convolution samples the input.

    Parameters
    ----------
    offset : ndarray of shape (N, 2 G_off kH kW, H_out, W_out)
    kernel_size, stride, padding, dilation : int or pair of int

    Returns
    -------
    y, x : ndarrays of shape (N, G_off, kH, kW, H_out, W_out)
        Row and column of each sampling point, in input pixel coordinates.
    """
    op = "deform_sampling_points"
    check_float_array(op, "offset", offset, ndim=4)
    kh, kw = check_pair(op, "kernel_size", kernel_size, minimum=1)
    n, channels, ho, wo = offset.shape
    if channels == 0 or channels % (2 * kh * kw):
        raise ValueError(f"{op}: offset.shape[1] must be a positive multiple of 2 kH kW = "
                         f"{2 * kh * kw}, got {channels}")
    # Only the kernel, the hyper-parameters and the output size matter here.
    window = _window((kh, kw), check_pair(op, "stride", stride, minimum=1),
                     check_pair(op, "padding", padding, minimum=0),
                     check_pair(op, "dilation", dilation, minimum=1), out_size=(ho, wo))
    geometry = _Deformation((n, 1, 0, 0), (1, 1, kh, kw), channels // (2 * kh * kw), window)
    y, x = _sampling_points(offset, geometry)            # (N, L, K, G_off)
    shape = (n, ho, wo, kh, kw, geometry.offset_groups)
    order = (0, 5, 3, 4, 1, 2)
    return y.reshape(shape).transpose(order), x.reshape(shape).transpose(order)


def bilinear_sample(image, y, x):
    """Sample a 2-D ``image`` at real positions with deform_conv2d's bilinear rule.

    Parameters
    ----------
    image : ndarray of shape (H, W), float
    y, x : ndarrays of one shape (any), rows and columns

    Returns
    -------
    ndarray of ``y``'s shape: 0 where ``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W``,
    otherwise the weighted sum of the four neighbouring pixels that lie inside.

    Examples
    --------
    >>> import numpy as np
    >>> bilinear_sample(np.array([[0.0, 10.0], [20.0, 30.0]]), np.array([0.5]), np.array([0.25]))
    array([12.5])
    """
    check_float_array("bilinear_sample", "image", image, ndim=2)
    y, x = np.asarray(y, image.dtype), np.asarray(x, image.dtype)
    corners = _Corners(y, x, *image.shape)
    flat = np.append(image.reshape(-1), np.zeros(1, image.dtype))
    return (corners.weights * flat[corners.pixels]).sum(-1)
