"""Exercises of the chapter "Convolution as matrix multiplication (im2col)"."""

import numpy as np

from . import exercise
from ..conv import conv2d

__all__ = []


@exercise("im2col.output_size", cases=[
    (32, 3, 1, 1, 1), (32, 3, 2, 1, 1), (224, 7, 2, 3, 1), (7, 3, 2, 0, 1), (10, 3, 1, 0, 2),
    (5, 2, 3, 1, 1), (1, 1, 1, 0, 1), (6, 4, 2, 2, 2)],
    forbid=("fancydl.conv_output_size", "fancydl.windows.conv_output_size",
            "fancydl.windows.pool_output_size", "fancydl.windows.effective_kernel_size"))
def output_size(size, kernel_size, stride, padding, dilation):
    """Output length of a convolution along one axis."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


@exercise("im2col.buffer_bytes", cases=[
    ((32, 64, 32, 32), 3, 1, 1, 4), ((8, 3, 224, 224), 7, 2, 3, 4), ((1, 1, 5, 5), 3, 1, 0, 8),
    ((2, 16, 9, 9), 3, 2, 1, 4), ((4, 8, 10, 12), 1, 1, 0, 8)])
def buffer_bytes(input_shape, kernel_size, stride, padding, itemsize):
    """Bytes of the im2col matrix of a square kernel on an (N, C, H, W) input."""
    n, c, height, width = input_shape
    oh = output_size(height, kernel_size, stride, padding, 1)
    ow = output_size(width, kernel_size, stride, padding, 1)
    return n * c * kernel_size * kernel_size * oh * ow * itemsize


def _conv_cases():
    rng = np.random.default_rng(7)
    cases = []
    for n, c, h, w, co, k, s, p in [(1, 1, 5, 5, 1, 3, 1, 0), (2, 3, 6, 7, 4, 3, 2, 1),
                                    (1, 2, 8, 5, 3, 2, 1, 1), (3, 4, 7, 7, 2, 1, 2, 0)]:
        cases.append((rng.standard_normal((n, c, h, w)), rng.standard_normal((co, c, k, k)),
                      s, p))
    return cases


_CONV = ("fancydl.conv2d", "fancydl.correlate2d", "fancydl.correlate",
         "torch.nn.functional.conv2d", "scipy.signal.correlate2d",
         "scipy.signal.correlate")


@exercise("im2col.conv_via_im2col", cases=_conv_cases(), rtol=1e-9, atol=1e-10,
          forbid=_CONV, require=["fancydl.im2col"])
def conv_via_im2col(x, weight, stride, padding):
    """conv2d (groups=1, no bias) as im2col followed by one matrix product."""
    return conv2d(x, weight, stride=stride, padding=padding)


def _pointwise_cases():
    rng = np.random.default_rng(8)
    return [(rng.standard_normal((n, c, h, w)), rng.standard_normal((co, c, 1, 1)))
            for n, c, h, w, co in [(1, 3, 4, 4, 2), (2, 5, 3, 6, 7), (4, 1, 2, 2, 3)]]


@exercise("im2col.pointwise", cases=_pointwise_cases(), rtol=1e-9, atol=1e-10,
          forbid=_CONV + ("fancydl.im2col",))
def pointwise(x, weight):
    """A 1×1 convolution needs no im2col at all: a matrix product over channels."""
    return conv2d(x, weight)


# --- derivations -----------------------------------------------------------------------

@exercise("im2col.copies_1d", cases=[
    (7, 3, 1, 0), (7, 3, 2, 0), (8, 3, 2, 1), (5, 3, 1, 1), (9, 2, 3, 0), (6, 5, 1, 2),
    (10, 4, 2, 1)])
def copies_1d(size, kernel_size, stride, padding):
    """How many windows (im2col columns) of one axis contain each input position."""
    out = output_size(size, kernel_size, stride, padding, 1)
    counts = np.zeros(size + 2 * padding, dtype=np.int64)
    starts = np.arange(out) * stride
    np.add.at(counts, (starts[:, None] + np.arange(kernel_size)).ravel(), 1)
    return counts[padding:padding + size]


@exercise("im2col.gemm_dims", cases=[
    ((32, 64, 32, 32), 128, 3, 1, 1), ((8, 3, 224, 224), 64, 7, 2, 3),
    ((1, 1, 5, 5), 1, 3, 1, 0), ((2, 16, 9, 9), 32, 3, 2, 1), ((4, 8, 10, 12), 4, 1, 1, 0)])
def gemm_dims(input_shape, out_channels, kernel_size, stride, padding):
    """(M, K, N) of the one matrix product per image, (M, K) @ (K, N): M = C_out,
    K = C k^2 (the length of a column), N = H_out W_out (the number of columns)."""
    _, channels, height, width = input_shape
    positions = (output_size(height, kernel_size, stride, padding, 1)
                 * output_size(width, kernel_size, stride, padding, 1))
    return out_channels, channels * kernel_size ** 2, positions
