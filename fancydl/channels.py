"""Operators that work across channels: shuffle, squeeze-and-excitation, separable blocks.

* :func:`channel_shuffle` (ShuffleNet, Zhang et al. 2018) permutes the channels so that
  the next grouped convolution sees every previous group. It is the one operator here
  with a hand-written backward (the inverse permutation).
* :func:`squeeze_excitation` (Hu et al. 2018), :func:`depthwise_separable_conv`
  (MobileNet, Xception) and :func:`shufflenet_unit` are composed from fancydl operators
  (``conv2d``, ``mean``, ``relu``, ``sigmoid``, ``mul``, ``add``), so ``fancydl.vjp``
  differentiates them through their parts' backward passes: they have none of their own.
* :func:`conv2d_param_count` and :func:`conv2d_macs` count the weights and the
  multiply-accumulates of a convolution configuration, for the chapters' tables;
  :func:`grouped_connectivity` and :func:`mixing_depth` say which inputs a stack of
  grouped layers (with or without shuffles) connects to each output.

PyTorch has ``channel_shuffle`` but none of the composed blocks; their PyTorch
references for :func:`fancydl.crosscheck` are in :mod:`fancydl.references`.
"""

from __future__ import annotations

import numpy as np

from .autodiff import Function
from .conv import conv2d
from .elementwise import add, mean, mul, relu, sigmoid
from .validation import check_array, check_float_array, check_int, check_pair, \
    check_same_dtype
from .windows import check_kernel_fits, conv_output_size

__all__ = ["channel_shuffle", "squeeze_excitation", "squeeze_excitation_scale",
           "depthwise_separable_conv", "shufflenet_unit", "conv2d_param_count",
           "conv2d_macs", "grouped_connectivity", "mixing_depth"]


# --- channel shuffle ------------------------------------------------------------------

def _shuffle(x, groups):
    """Input channel ``a·(C/g) + b`` (group ``a``, place ``b``) goes to ``b·g + a``."""
    n, channels = x.shape[:2]
    if channels == 0:
        return x.copy()
    grouped = x.reshape((n, groups, channels // groups) + x.shape[2:])
    out = grouped.swapaxes(1, 2).reshape(x.shape)
    return out.copy() if np.may_share_memory(out, x) else out


class _ChannelShuffle(Function):
    @staticmethod
    def forward(ctx, x, groups):
        ctx.groups = groups
        return _shuffle(x, groups)

    @staticmethod
    def backward(ctx, grad):
        # Shuffling with g groups transposes a (g, C/g) grid of channels; transposing
        # it back is a shuffle with C/g groups.
        channels = grad.shape[1]
        inverse_groups = channels // ctx.groups if channels else 1
        return _shuffle(grad, inverse_groups), None


def channel_shuffle(input, groups):
    """Shuffle channels across groups, like ``torch.nn.functional.channel_shuffle``.

    The channels are split into ``groups`` consecutive groups of ``C/groups``; the
    output takes the first channel of every group, then the second of every group,
    and so on. Equivalently: reshape to (N, groups, C/groups, ...), swap those two
    axes, and reshape back. With C = 6 and 3 groups the order is [0, 2, 4, 1, 3, 5].

    Parameters
    ----------
    input : ndarray of shape (N, C, *) with at least 3 dimensions, any dtype
    groups : int >= 1
        Must divide C.

    Returns
    -------
    ndarray of ``input``'s shape and dtype (a new array)

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.arange(6.0).reshape(1, 6, 1, 1)
    >>> fancydl.channel_shuffle(x, 3).ravel()
    array([0., 2., 4., 1., 3., 5.])
    """
    shape = check_array("channel_shuffle", "input", input)
    if len(shape) < 3:
        raise ValueError(f"channel_shuffle: input must have at least 3 dimensions "
                         f"(N, C, *), got shape {shape}")
    groups = check_int("channel_shuffle", "groups", groups, minimum=1)
    if shape[1] % groups:
        raise ValueError(f"channel_shuffle: the number of channels must be divisible by "
                         f"groups, got {shape[1]} channels and groups={groups}")
    return _ChannelShuffle.apply(input, groups)


def _check_grouping(op, channels, groups):
    channels = check_int(op, "channels", channels, minimum=1)
    groups = check_int(op, "groups", groups, minimum=1)
    if channels % groups:
        raise ValueError(f"{op}: groups must divide channels, got channels={channels} and "
                         f"groups={groups}")
    return channels, groups


def _grouped_layer(channels, groups):
    """(same-group matrix, shuffle order) of one grouped C -> C layer."""
    size = channels // groups
    group_of = np.arange(channels) // size
    same_group = (group_of[:, None] == group_of[None, :]).astype(np.int64)
    order = np.arange(channels).reshape(groups, size).T.ravel()  # shuffled[j] = x[order[j]]
    return same_group, order


def grouped_connectivity(channels, groups, depth, shuffle):
    """Which input channels each output channel of a stack of grouped layers depends on.

    The stack has ``depth`` grouped layers of C -> C channels with ``groups`` groups
    (output channel ``o`` reads the inputs of its own group); with ``shuffle``, a
    :func:`channel_shuffle` with ``groups`` sits between consecutive layers, as in
    ShuffleNet.

    Parameters
    ----------
    channels, groups, depth : int
        ``groups`` divides ``channels``; ``depth >= 1``.
    shuffle : bool

    Returns
    -------
    ndarray of bool, shape (channels, channels)
        ``[o, i]`` is True when output channel ``o`` depends on input channel ``i``.

    Examples
    --------
    >>> bool(grouped_connectivity(4, 2, 2, shuffle=True).all())
    True
    """
    channels, groups = _check_grouping("grouped_connectivity", channels, groups)
    depth = check_int("grouped_connectivity", "depth", depth, minimum=1)
    same_group, order = _grouped_layer(channels, groups)
    reach = np.eye(channels, dtype=np.int64)
    for layer in range(depth):
        if shuffle and layer > 0:
            reach = reach[order]
        reach = np.minimum(same_group @ reach, 1)
    return reach.astype(bool)


def mixing_depth(channels, groups):
    """Fewest grouped layers, with a channel shuffle between consecutive layers, after
    which every output channel depends on every input channel.

    Parameters
    ----------
    channels, groups : int
        ``groups`` divides ``channels``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        When no depth mixes all channels: with one channel per group (``groups ==
        channels > 1``) the shuffle is the identity and each output only ever sees its
        own input. (The connectivity pattern is then periodic in the depth: the search
        stops at the first pattern seen before.)

    Examples
    --------
    >>> mixing_depth(12, 3), mixing_depth(32, 8), mixing_depth(6, 1)
    (2, 3, 1)
    """
    channels, groups = _check_grouping("mixing_depth", channels, groups)
    same_group, order = _grouped_layer(channels, groups)
    reach, depth, seen = same_group, 1, set()
    while not reach.all():
        key = reach.astype(bool).tobytes()
        if key in seen:
            raise ValueError(f"mixing_depth: {channels} channels in {groups} groups never "
                             f"mix, however deep the stack (one channel per group: the "
                             f"shuffle leaves every channel in place)")
        seen.add(key)
        reach, depth = np.minimum(same_group @ reach[order], 1), depth + 1
    return depth


# --- squeeze-and-excitation -----------------------------------------------------------

def _check_se(input, w1, b1, w2, b2):
    op = "squeeze_excitation"
    n, channels, height, width = check_float_array(op, "input", input, ndim=4)
    if height * width == 0:
        raise ValueError(f"{op}: input must have at least one pixel to average, got "
                         f"shape {input.shape}")
    reduced = check_float_array(op, "w1", w1, ndim=4)[0]
    if channels == 0 or reduced == 0:
        raise ValueError(f"{op}: input and w1 must have at least one channel (PyTorch's "
                         f"convolutions refuse empty ones), got input {input.shape} and w1 "
                         f"{w1.shape}")
    expected = {"w1": (reduced, channels, 1, 1), "b1": (reduced,),
                "w2": (channels, reduced, 1, 1), "b2": (channels,)}
    for name, value in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
        if value is None:
            continue
        check_float_array(op, name, value)
        if value.shape != expected[name]:
            raise ValueError(f"{op}: {name} must have shape {expected[name]} for input "
                             f"with {channels} channels and w1 with {reduced} outputs, "
                             f"got {value.shape}")
    if w2 is None:
        raise TypeError(f"{op}: w2 must be a numpy.ndarray, got None")
    check_same_dtype(op, input=input, w1=w1, b1=b1, w2=w2, b2=b2)


def squeeze_excitation_scale(input, w1, b1, w2, b2):
    """The per-channel weights of a squeeze-and-excitation block, in (0, 1).

    ``sigmoid(conv2d(relu(conv2d(mean(input over H, W), w1, b1)), w2, b2))``: the
    squeeze (global average pooling) and the excitation (two 1×1 convolutions, i.e.
    fully connected layers on the pooled vector) of :func:`squeeze_excitation`.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W), float32 or float64, H·W > 0
    w1 : ndarray of shape (C/r, C, 1, 1)
    b1 : ndarray of shape (C/r,) or None
    w2 : ndarray of shape (C, C/r, 1, 1)
    b2 : ndarray of shape (C,) or None

    Returns
    -------
    ndarray of shape (N, C, 1, 1)
    """
    _check_se(input, w1, b1, w2, b2)
    squeezed = mean(input, dim=(2, 3), keepdim=True)   # (N, C, 1, 1)
    hidden = relu(conv2d(squeezed, w1, b1))            # (N, C/r, 1, 1)
    return sigmoid(conv2d(hidden, w2, b2))             # (N, C, 1, 1)


def squeeze_excitation(input, w1, b1, w2, b2):
    """Squeeze-and-excitation block (Hu et al. 2018), as torchvision's SqueezeExcitation.

    Global average pooling, then a 1×1 convolution from C to C/r channels, ReLU, a 1×1
    convolution back to C channels and a sigmoid give one weight in (0, 1) per channel
    and image (:func:`squeeze_excitation_scale`); the output is the input with each
    channel multiplied by its weight. It is composed from fancydl operators, so
    ``fancydl.vjp`` differentiates all five arrays with no backward of its own.

    PyTorch returns NaN for an input with no pixels; fancydl refuses it.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W), float32 or float64, H·W > 0
    w1 : ndarray of shape (C/r, C, 1, 1)
        First 1×1 convolution (the "reduction"; r = 16 in the paper).
    b1 : ndarray of shape (C/r,) or None
    w2 : ndarray of shape (C, C/r, 1, 1)
        Second 1×1 convolution (the "expansion").
    b2 : ndarray of shape (C,) or None

    Returns
    -------
    ndarray of shape (N, C, H, W)

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.ones((1, 4, 2, 2))
    >>> w1, w2 = np.zeros((2, 4, 1, 1)), np.zeros((4, 2, 1, 1))
    >>> fancydl.squeeze_excitation(x, w1, None, w2, None)[0, :, 0, 0]  # sigmoid(0) = 0.5
    array([0.5, 0.5, 0.5, 0.5])
    """
    return mul(input, squeeze_excitation_scale(input, w1, b1, w2, b2))


# --- depthwise-separable convolution and the ShuffleNet unit ----------------------------

def _check_image(op, input):
    """``input`` a float (N, C, H, W) array with a non-empty height and width (PyTorch
    refuses an empty one); returns C."""
    channels, height, width = check_float_array(op, "input", input, ndim=4)[1:]
    if height == 0 or width == 0:
        raise ValueError(f"{op}: input must have a non-empty height and width (only the "
                         f"batch may be empty, as in PyTorch), got shape {input.shape}")
    return channels


def _check_pointwise(op, name, weight, in_channels, groups):
    out_channels, per_group, kh, kw = check_float_array(op, name, weight, ndim=4)
    if (kh, kw) != (1, 1) or per_group * groups != in_channels:
        raise ValueError(f"{op}: {name} must have shape (C_out, {in_channels // groups}, "
                         f"1, 1) (a 1×1 convolution of {in_channels} channels in "
                         f"{groups} group(s)), got {weight.shape}")
    return out_channels


def _check_depthwise(op, name, weight, channels):
    out_channels, per_group, _, _ = check_float_array(op, name, weight, ndim=4)
    if per_group != 1 or channels == 0 or out_channels % channels:
        raise ValueError(f"{op}: {name} must have shape ({channels}·m, 1, kH, kW) (one "
                         f"filter per input channel, m >= 1), got {weight.shape}")


def depthwise_separable_conv(input, depthwise_weight, pointwise_weight, depthwise_bias=None,
                             pointwise_bias=None, stride=1, padding=0, dilation=1):
    """Depthwise-separable convolution: a depthwise then a pointwise (1×1) convolution.

    ``conv2d(conv2d(input, depthwise_weight, depthwise_bias, stride, padding, dilation,
    groups=C_in), pointwise_weight, pointwise_bias)``: the spatial filtering is done
    per channel, the channel mixing by the 1×1 convolution. This is the factorization
    of Xception and MobileNet without what those networks put around it (MobileNet
    adds batch normalization and ReLU after each of the two convolutions; Xception
    found it better to have no nonlinearity between them).

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W)
    depthwise_weight : ndarray of shape (C_in·m, 1, kH, kW)
        ``m`` filters per input channel (the depth multiplier; usually 1).
    pointwise_weight : ndarray of shape (C_out, C_in·m, 1, 1)
    depthwise_bias : ndarray of shape (C_in·m,), optional
    pointwise_bias : ndarray of shape (C_out,), optional
    stride, padding, dilation
        Of the depthwise convolution, as in :func:`fancydl.conv2d`.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out)
    """
    op = "depthwise_separable_conv"
    channels = _check_image(op, input)
    _check_depthwise(op, "depthwise_weight", depthwise_weight, channels)
    _check_pointwise(op, "pointwise_weight", pointwise_weight, depthwise_weight.shape[0], 1)
    spatial = conv2d(input, depthwise_weight, depthwise_bias, stride=stride,
                     padding=padding, dilation=dilation, groups=channels)
    return conv2d(spatial, pointwise_weight, pointwise_bias)


def shufflenet_unit(input, pointwise1_weight, depthwise_weight, pointwise2_weight, groups,
                    pointwise1_bias=None, depthwise_bias=None, pointwise2_bias=None):
    """The stride-1 unit of ShuffleNet v1 (Zhang et al. 2018, Fig. 2b), without BN.

    ``relu(input + gconv2(dwconv(channel_shuffle(relu(gconv1(input)), groups))))``:

    1. 1×1 grouped convolution C -> C_mid (``groups`` groups), then ReLU;
    2. :func:`channel_shuffle` with ``groups``;
    3. k×k depthwise convolution (stride 1, "same" padding), no ReLU after it;
    4. 1×1 grouped convolution C_mid -> C (``groups`` groups);
    5. add the input (the identity shortcut), then ReLU.

    The paper puts batch normalization after each convolution. At inference a batch
    norm is a per-channel affine map, which folds into the convolution's weight and
    bias; the optional biases stand for it here.

    Parameters
    ----------
    input : ndarray of shape (N, C, H, W)
    pointwise1_weight : ndarray of shape (C_mid, C/groups, 1, 1)
    depthwise_weight : ndarray of shape (C_mid, 1, k, k), k odd
    pointwise2_weight : ndarray of shape (C, C_mid/groups, 1, 1)
    groups : int >= 1
        Groups of both 1×1 convolutions and of the shuffle; divides C and C_mid.
    pointwise1_bias, depthwise_bias : ndarray of shape (C_mid,), optional
    pointwise2_bias : ndarray of shape (C,), optional

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    op = "shufflenet_unit"
    channels = _check_image(op, input)
    groups = check_int(op, "groups", groups, minimum=1)
    if channels % groups:
        raise ValueError(f"{op}: the number of channels must be divisible by groups, got "
                         f"{channels} channels and groups={groups}")
    mid = _check_pointwise(op, "pointwise1_weight", pointwise1_weight, channels, groups)
    if mid % groups:
        raise ValueError(f"{op}: pointwise1_weight's {mid} output channels must be "
                         f"divisible by groups={groups}")
    _check_depthwise(op, "depthwise_weight", depthwise_weight, mid)
    kh, kw = depthwise_weight.shape[2:]
    if depthwise_weight.shape[0] != mid or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"{op}: depthwise_weight must have shape ({mid}, 1, k, k) with k "
                         f"odd (the spatial size is kept), got {depthwise_weight.shape}")
    if _check_pointwise(op, "pointwise2_weight", pointwise2_weight, mid, groups) != channels:
        raise ValueError(f"{op}: pointwise2_weight must map back to the input's {channels} "
                         f"channels for the shortcut, got {pointwise2_weight.shape}")
    h = relu(conv2d(input, pointwise1_weight, pointwise1_bias, groups=groups))
    h = channel_shuffle(h, groups)
    h = conv2d(h, depthwise_weight, depthwise_bias, padding=(kh // 2, kw // 2), groups=mid)
    h = conv2d(h, pointwise2_weight, pointwise2_bias, groups=groups)
    return relu(add(input, h))


# --- counting -------------------------------------------------------------------------

def _check_channels(op, in_channels, out_channels, groups):
    in_channels = check_int(op, "in_channels", in_channels, minimum=1)
    out_channels = check_int(op, "out_channels", out_channels, minimum=1)
    groups = check_int(op, "groups", groups, minimum=1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{op}: groups must divide in_channels and out_channels, got "
                         f"in_channels={in_channels}, out_channels={out_channels}, "
                         f"groups={groups}")
    return in_channels, out_channels, groups


def conv2d_param_count(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """Number of learnable parameters of ``torch.nn.Conv2d`` with these arguments.

    ``out_channels · (in_channels / groups) · kH · kW`` weights, plus ``out_channels``
    biases when ``bias``: ``groups`` divides the weight count.

    Examples
    --------
    >>> dense = conv2d_param_count(256, 256, 3)
    >>> dense, conv2d_param_count(256, 256, 3, groups=256, bias=False)
    (590080, 2304)
    """
    in_channels, out_channels, groups = _check_channels("conv2d_param_count", in_channels,
                                                        out_channels, groups)
    kh, kw = check_pair("conv2d_param_count", "kernel_size", kernel_size, minimum=1)
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def conv2d_macs(in_channels, out_channels, kernel_size, input_size, stride=1, padding=0,
                dilation=1, groups=1):
    """Multiply-accumulates of one image through a 2-D convolution.

    Each of the ``out_channels · H_out · W_out`` outputs is a dot product of length
    ``(in_channels / groups) · kH · kW``; additions of the bias are not counted.
    (Papers often say "FLOPs" for this number; a multiply-accumulate is two
    floating-point operations.)

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, input_size, stride, padding, dilation : int or pair of int
        ``input_size`` is (H, W).
    groups : int

    Returns
    -------
    int

    Examples
    --------
    >>> conv2d_macs(3, 64, 7, 224, stride=2, padding=3)  # ResNet's stem
    118013952
    """
    op = "conv2d_macs"
    in_channels, out_channels, groups = _check_channels(op, in_channels, out_channels,
                                                        groups)
    kernel = check_pair(op, "kernel_size", kernel_size, minimum=1)
    size = check_pair(op, "input_size", input_size, minimum=1)
    strides = check_pair(op, "stride", stride, minimum=1)
    pads = check_pair(op, "padding", padding, minimum=0)
    dilations = check_pair(op, "dilation", dilation, minimum=1)
    check_kernel_fits(op, size, kernel, tuple((p, p) for p in pads), dilations)
    out = [conv_output_size(*args) for args in zip(size, kernel, strides, pads, dilations)]
    return out_channels * out[0] * out[1] * (in_channels // groups) * kernel[0] * kernel[1]
