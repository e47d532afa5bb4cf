"""Exercises of the chapter "1×1 and depthwise-separable convolution"."""

import numpy as np

from . import exercise

_RNG = np.random.default_rng(5)


def _pointwise_cases():
    return [(_RNG.standard_normal((n, c_in, h, w)), _RNG.standard_normal((c_out, c_in, 1, 1)))
            for n, c_in, c_out, h, w in [(1, 3, 2, 4, 4), (2, 5, 7, 3, 2), (1, 1, 1, 1, 1)]]


@exercise("pointwise_depthwise.pointwise_einsum", cases=_pointwise_cases(),
          forbid=("fancydl.conv2d", "torch.nn.functional.conv2d"),
          require=["numpy.einsum"])
def pointwise_einsum(x, weight):
    """A 1×1 convolution without bias, as one einsum over the channel axis."""
    return np.einsum("oc,nchw->nohw", weight[:, :, 0, 0], x)


@exercise("pointwise_depthwise.separable_mac_ratio",
          cases=[(32, 64, 3), (128, 128, 3), (512, 512, 3), (16, 32, 5), (3, 8, 7)])
def separable_mac_ratio(in_channels, out_channels, kernel_size):
    """MACs of a depthwise-separable conv over those of a standard one ("same" padding,
    stride 1, depth multiplier 1)."""
    from fancydl import conv2d_macs

    size, pad = 16, kernel_size // 2
    separable = (conv2d_macs(in_channels, in_channels, kernel_size, size, padding=pad,
                             groups=in_channels)
                 + conv2d_macs(in_channels, out_channels, 1, size))
    return separable / conv2d_macs(in_channels, out_channels, kernel_size, size, padding=pad)


@exercise("pointwise_depthwise.bottleneck_params",
          cases=[(256, 64, 3), (512, 128, 3), (64, 16, 5), (1024, 256, 3)])
def bottleneck_params(channels, reduced, kernel_size):
    """Weights (no biases) of 1×1 C->R, k×k R->R, 1×1 R->C."""
    from fancydl import conv2d_param_count

    return (conv2d_param_count(channels, reduced, 1, bias=False)
            + conv2d_param_count(reduced, reduced, kernel_size, bias=False)
            + conv2d_param_count(reduced, channels, 1, bias=False))


# --- derivations -----------------------------------------------------------------------

def _separable_cases():
    return [(_RNG.standard_normal((c, 1, k, k)), _RNG.standard_normal((o, c, 1, 1)))
            for c, o, k in [(3, 2, 3), (1, 4, 3), (4, 4, 1), (2, 5, 5)]]


@exercise("pointwise_depthwise.separable_as_dense", cases=_separable_cases(),
          rtol=1e-12, atol=1e-14)
def separable_as_dense(depthwise, pointwise):
    """The (C_out, C_in, k, k) weight of the one dense convolution equal to a depthwise
    convolution (C_in, 1, k, k) followed by a pointwise one (C_out, C_in, 1, 1):
    W[o, c] = P[o, c] D[c]."""
    return pointwise[:, :, 0, 0][:, :, None, None] * depthwise[None, :, 0]


@exercise("pointwise_depthwise.max_rank",
          cases=[(32, 64, 3), (64, 32, 3), (3, 8, 7), (128, 128, 3), (4, 100, 3),
                 (16, 16, 1)])
def max_rank(in_channels, out_channels, kernel_size):
    """Largest rank of the (C_out, C_in k^2) matrix of a depthwise-separable layer's
    equivalent weight, and of a dense layer's:
    (min(C_out, C_in), min(C_out, C_in k^2))."""
    return (min(out_channels, in_channels),
            min(out_channels, in_channels * kernel_size ** 2))
