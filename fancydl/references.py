"""Reference implementations that fancydl's operators are checked against.

Two kinds, kept out of the operator modules so that those read as the book shows them:

* plain-loop and textbook constructions, slow and obviously right, that the chapters
  and the tests compare the fast operators with: :func:`conv2d_loops` (one Python
  iteration per output value), :func:`conv_transpose2d_zero_insertion` (the
  "deconvolution" recipe) and its :func:`insert_zeros`, and torchvision's ROI
  operators written as its C++ kernels read, :func:`roi_pool_loops` and
  :func:`roi_align_loops` (with their gradients);
* PyTorch counterparts for :func:`fancydl.crosscheck` of the operators PyTorch has
  under another name or not at all (registered with
  :func:`~fancydl.crosscheck.torch_reference`; PyTorch is imported only when a
  cross-check runs).

Every public name here is also reachable as ``fancydl.<name>``.
"""

from __future__ import annotations

import itertools

import numpy as np

from .autodiff import is_traced
from .conv import _conv2d_geometry, _conv_transpose2d_geometry, conv2d
from .crosscheck import torch_reference
from .validation import check_array, check_pair
from .windows import pad2d, unpad2d

__all__ = ["conv2d_loops", "insert_zeros", "conv_transpose2d_zero_insertion",
           "c_round", "roi_pool_loops", "roi_pool_loops_grad", "bilinear_taps",
           "roi_align_loops", "roi_align_loops_grad"]


# --- convolution as the textbook writes it ----------------------------------------------

def conv2d_loops(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """:func:`conv2d` as the textbook loops: slow, plain, and the tests' oracle.

    One Python iteration per (image, output channel, output row, output column); each
    computes the sum of ``weight[o] * window`` over the window's channels and pixels.
    Forward only (no gradient). Same arguments, checks and result as :func:`conv2d`.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out) (or without N)
    """
    if any(is_traced(a) for a in (input, weight, bias)):
        raise TypeError("conv2d_loops: a plain NumPy reference has no backward; call it "
                        "outside vjp (conv2d is the differentiable operator)")
    geom = _conv2d_geometry("conv2d_loops", input, weight, bias, stride, padding,
                            dilation, groups)
    unbatched = input.ndim == 3
    x = pad2d(input[None] if unbatched else input, geom.pad_widths)
    (sh, sw), (dh, dw), (kh, kw) = geom.stride, geom.dilation, geom.kernel
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
    ndarray of shape (..., (H - 1)·sH + 1, (W - 1)·sW + 1) (an empty axis stays empty)
    """
    check_array("insert_zeros", "input", input)
    if input.ndim < 2:
        raise ValueError(f"insert_zeros: input must have at least 2 dimensions, got "
                         f"shape {input.shape}")
    sh, sw = check_pair("insert_zeros", "stride", stride, minimum=1)
    # An empty axis stays empty (there is no pixel to put zeros between).
    height, width = ((n - 1) * s + 1 if n else 0 for n, s in zip(input.shape[-2:],
                                                                 (sh, sw)))
    out = np.zeros(input.shape[:-2] + (height, width), input.dtype)
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
            zip(geom.kernel, geom.dilation, geom.pad_widths, extra)]
    # Negative "padding" crops: pad by the positive part, then crop the rest.
    x = pad2d(x, tuple((max(b, 0), max(a, 0)) for b, a in pads))
    crop = tuple((max(-b, 0), max(-a, 0)) for b, a in pads)
    x = unpad2d(x, crop)
    w = _flipped_group_transposed(weight, geom.groups)
    out = conv2d(x, w, bias, stride=1, padding=0, dilation=geom.dilation,
                 groups=geom.groups)
    return out[0] if unbatched else out


# --- ROI pooling and ROI Align as torchvision's C++ kernels read ---------------------
#
# Written from torchvision's roi_pool_kernel.cpp and roi_align_kernel.cpp, one box, bin,
# channel and sample at a time, sharing no code with fancydl.pool. Boxes are a (K, 5)
# array of (batch index, x1, y1, x2, y2) in input coordinates.

def _pair(size):
    return (size, size) if isinstance(size, (int, np.integer)) else tuple(size)


def c_round(value):
    """Round half away from zero, as C's ``round`` (``np.round`` rounds half to even).

    Exact for every float: ``floor(|v| + 0.5)`` would round 0.49999999999999994 up.
    """
    rounded = float(np.round(value))
    if abs(value - np.trunc(value)) == 0.5:        # a tie: away from zero
        rounded = float(np.trunc(value) + np.sign(value))
    return int(rounded)


def roi_pool_loops(input, boxes, output_size, spatial_scale=1.0):
    """torchvision's ``roi_pool``, one box, bin and channel at a time (forward).

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W)
    boxes : ndarray of shape (K, 5)
    output_size : int or (int, int)
    spatial_scale : float

    Returns
    -------
    out : ndarray of shape (K, C, PH, PW), float64
        The maximum of each bin; 0 for an empty bin.
    argmax : int ndarray of shape (K, C, PH, PW)
        Flat index ``y * W + x`` of the first maximum of each bin, -1 if empty.
    """
    _, c, h, w = input.shape
    ph_n, pw_n = _pair(output_size)
    out = np.zeros((len(boxes), c, ph_n, pw_n))
    argmax = np.full(out.shape, -1)
    for k, (b, x1, y1, x2, y2) in enumerate(boxes):
        start_w, start_h = c_round(x1 * spatial_scale), c_round(y1 * spatial_scale)
        end_w, end_h = c_round(x2 * spatial_scale), c_round(y2 * spatial_scale)
        bin_h = max(end_h - start_h + 1, 1) / ph_n     # the end cell is included
        bin_w = max(end_w - start_w + 1, 1) / pw_n
        for ph in range(ph_n):
            top = min(max(int(np.floor(ph * bin_h)) + start_h, 0), h)
            bottom = min(max(int(np.ceil((ph + 1) * bin_h)) + start_h, 0), h)
            for pw in range(pw_n):
                left = min(max(int(np.floor(pw * bin_w)) + start_w, 0), w)
                right = min(max(int(np.ceil((pw + 1) * bin_w)) + start_w, 0), w)
                for ch in range(c):
                    empty = bottom <= top or right <= left
                    best, where = (0.0 if empty else -np.finfo(np.float32).max), -1
                    for yy in range(top, bottom):
                        for xx in range(left, right):
                            if input[int(b), ch, yy, xx] > best:
                                best, where = input[int(b), ch, yy, xx], yy * w + xx
                    out[k, ch, ph, pw], argmax[k, ch, ph, pw] = best, where
    return out, argmax


def roi_pool_loops_grad(input_shape, boxes, argmax, grad):
    """Gradient of :func:`roi_pool_loops` with respect to its input.

    Each bin's upstream gradient goes to its first maximum (``argmax``), summed over
    bins and boxes.

    Returns
    -------
    ndarray of shape ``input_shape``
    """
    grad_input = np.zeros(input_shape)
    for k, ch, ph, pw in np.ndindex(*argmax.shape):
        if argmax[k, ch, ph, pw] >= 0:
            plane = grad_input[int(boxes[k][0]), ch]
            plane.flat[argmax[k, ch, ph, pw]] += grad[k, ch, ph, pw]
    return grad_input


def bilinear_taps(y, x, height, width):
    """ROI Align's bilinear read at the real point (y, x): its corners and weights.

    A point beyond one pixel outside the map reads nothing; a point within one pixel
    outside is clamped onto the border first (unlike deformable convolution, which
    reads every outside corner as 0).

    Returns
    -------
    list of (row, column, weight)
        Four taps (corners may repeat at the last row or column), or none.
    """
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return [(y_low, x_low, hy * hx), (y_low, x_high, hy * lx),
            (y_high, x_low, ly * hx), (y_high, x_high, ly * lx)]


def roi_align_loops(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
                    aligned=False):
    """torchvision's ``roi_align``, one box, bin and sample at a time (forward).

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W)
    boxes : ndarray of shape (K, 5)
    output_size : int or (int, int)
    spatial_scale : float
    sampling_ratio : int
        Samples per bin and axis; ``<= 0``: ``ceil(box size / output size)`` per box.
    aligned : bool
        Shift the box by half a cell (pixel centres at half-integers).

    Returns
    -------
    out : ndarray of shape (K, C, PH, PW), float64
    taps : list of (k, ph, pw, batch, row, column, weight)
        Every read of the input with its weight (1/count included): the gradient
        :func:`roi_align_loops_grad` scatters along them.
    """
    _, c, h, w = input.shape
    ph_n, pw_n = _pair(output_size)
    out = np.zeros((len(boxes), c, ph_n, pw_n))
    taps = []
    shift = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(boxes):
        start_w, start_h = x1 * spatial_scale - shift, y1 * spatial_scale - shift
        roi_w = x2 * spatial_scale - shift - start_w
        roi_h = y2 * spatial_scale - shift - start_h
        if not aligned:                        # the legacy rule: at least one cell
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / ph_n, roi_w / pw_n
        grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil(roi_h / ph_n))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil(roi_w / pw_n))
        count = max(grid_h * grid_w, 1)
        for ph in range(ph_n):
            for pw in range(pw_n):
                for iy in range(grid_h):
                    yy = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        xx = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        for row, col, weight in bilinear_taps(yy, xx, h, w):
                            out[k, :, ph, pw] += weight / count * input[int(b), :, row, col]
                            taps.append((k, ph, pw, int(b), row, col, weight / count))
    return out, taps


def roi_align_loops_grad(input_shape, taps, grad):
    """Gradient of :func:`roi_align_loops` with respect to its input: each tap adds
    its weight times the upstream gradient of its bin.

    Returns
    -------
    ndarray of shape ``input_shape``
    """
    grad_input = np.zeros(input_shape)
    for k, ph, pw, b, row, col, weight in taps:
        grad_input[b, :, row, col] += weight * grad[k, :, ph, pw]
    return grad_input


# --- PyTorch counterparts for fancydl.crosscheck ----------------------------------------

@torch_reference("im2col")
def _torch_im2col(torch, input, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.unfold"""
    return torch.nn.functional.unfold(input, kernel_size, dilation, padding, stride)


@torch_reference("col2im")
def _torch_col2im(torch, input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold"""
    return torch.nn.functional.fold(input, output_size, kernel_size, dilation, padding, stride)


@torch_reference("squeeze_excitation")
def _torch_squeeze_excitation(torch, input, w1, b1, w2, b2):
    """torchvision's SqueezeExcitation, composed from torch.nn.functional"""
    F = torch.nn.functional
    scale = F.adaptive_avg_pool2d(input, 1)
    scale = torch.sigmoid(F.conv2d(F.relu(F.conv2d(scale, w1, b1)), w2, b2))
    return input * scale


@torch_reference("squeeze_excitation_scale")
def _torch_squeeze_excitation_scale(torch, input, w1, b1, w2, b2):
    """SqueezeExcitation's channel weights, composed from torch.nn.functional"""
    F = torch.nn.functional
    scale = F.adaptive_avg_pool2d(input, 1)
    return torch.sigmoid(F.conv2d(F.relu(F.conv2d(scale, w1, b1)), w2, b2))


@torch_reference("depthwise_separable_conv")
def _torch_depthwise_separable_conv(torch, input, depthwise_weight, pointwise_weight,
                                    depthwise_bias=None, pointwise_bias=None, stride=1,
                                    padding=0, dilation=1):
    """torch.nn.functional.conv2d (groups=C_in) then a 1×1 conv2d"""
    F = torch.nn.functional
    spatial = F.conv2d(input, depthwise_weight, depthwise_bias, stride, padding,
                       dilation, groups=input.shape[1])
    return F.conv2d(spatial, pointwise_weight, pointwise_bias)


@torch_reference("shufflenet_unit")
def _torch_shufflenet_unit(torch, input, pointwise1_weight, depthwise_weight,
                           pointwise2_weight, groups, pointwise1_bias=None,
                           depthwise_bias=None, pointwise2_bias=None):
    """torch.nn.functional conv2d / channel_shuffle / relu, composed"""
    F = torch.nn.functional
    kh, kw = depthwise_weight.shape[2:]
    h = F.relu(F.conv2d(input, pointwise1_weight, pointwise1_bias, groups=groups))
    h = F.channel_shuffle(h, groups)
    h = F.conv2d(h, depthwise_weight, depthwise_bias, padding=(kh // 2, kw // 2),
                 groups=h.shape[1])
    h = F.conv2d(h, pointwise2_weight, pointwise2_bias, groups=groups)
    return F.relu(input + h)


@torch_reference("deform_conv2d")
def _deform_conv2d_torch(torch, input, offset, weight, bias=None, stride=1, padding=0,
                         dilation=1, mask=None):
    """torch.nn.functional.grid_sample at the deformed points + a grouped contraction"""
    functional = torch.nn.functional
    n, c, h, w = input.shape
    c_out, cg, kh, kw = weight.shape
    taps, groups = kh * kw, c // cg
    offset_groups = offset.shape[1] // (2 * taps)
    ho, wo = offset.shape[-2:]
    (sh, sw), (ph, pw), (dh, dw) = (check_pair("reference", "pair", v)
                                    for v in (stride, padding, dilation))
    tap_rows = torch.arange(kh).repeat_interleave(kw)
    tap_cols = torch.arange(kw).repeat(kh)
    base_y = (torch.arange(ho) * sh - ph)[None, :, None] + (tap_rows * dh)[:, None, None]
    base_x = (torch.arange(wo) * sw - pw)[None, None, :] + (tap_cols * dw)[:, None, None]
    d = offset.reshape(n, offset_groups, taps, 2, ho, wo)
    y, x = base_y + d[:, :, :, 0], base_x + d[:, :, :, 1]        # (N, G_off, K, Ho, Wo)
    # One zero row and column at the bottom/right change no sample (a pixel outside the
    # image counts as 0 either way) and keep align_corners' (size - 1) from being 0.
    padded = functional.pad(input, (0, 1, 0, 1))
    grid = torch.stack([2 * x / w - 1, 2 * y / h - 1], dim=-1)
    samples = functional.grid_sample(
        padded.reshape(n * offset_groups, c // offset_groups, h + 1, w + 1),
        grid.reshape(n * offset_groups, taps * ho, wo, 2),
        mode="bilinear", padding_mode="zeros", align_corners=True)
    samples = samples.reshape(n, offset_groups, c // offset_groups, taps, ho, wo)
    if mask is not None:
        samples = samples * mask.reshape(n, offset_groups, 1, taps, ho, wo)
    samples = samples.reshape(n, groups, cg, taps, ho, wo)
    kernel = weight.reshape(groups, c_out // groups, cg, taps)
    out = torch.einsum("ngckhw,gock->ngohw", samples, kernel).reshape(n, c_out, ho, wo)
    return out if bias is None else out + bias[None, :, None, None]
