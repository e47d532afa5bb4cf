"""Exercises of the chapter "Transposed convolution"."""

import numpy as np

from . import AUTODIFF, exercise
from ..conv import conv2d, conv_transpose2d

__all__ = []


@exercise("transposed_conv.output_size", cases=[
    (16, 4, 2, 1, 0, 1), (16, 3, 2, 1, 1, 1), (5, 3, 1, 0, 0, 1), (7, 3, 3, 0, 2, 1),
    (4, 3, 1, 1, 0, 2), (1, 1, 1, 0, 0, 1), (10, 5, 2, 2, 1, 3)])
def output_size(size, kernel_size, stride, padding, output_padding, dilation):
    """Output length of a transposed convolution along one axis."""
    return ((size - 1) * stride - 2 * padding + dilation * (kernel_size - 1)
            + output_padding + 1)


@exercise("transposed_conv.output_padding", cases=[
    (32, 3, 2, 1), (31, 3, 2, 1), (7, 3, 3, 0), (8, 3, 3, 0), (9, 3, 3, 0), (224, 7, 2, 3),
    (10, 1, 4, 0), (5, 5, 1, 2)])
def output_padding(size, kernel_size, stride, padding):
    """The output_padding with which conv_transpose2d gives back ``size`` after conv2d."""
    return (size + 2 * padding - kernel_size) % stride


def _overlap_cases():
    return [(4, 3, 2), (4, 4, 2), (5, 3, 1), (3, 5, 3), (6, 2, 2), (4, 3, 3), (3, 1, 2)]


_TRANSPOSED = ("fancydl.conv_transpose2d", "fancydl.conv_transpose2d_zero_insertion",
               "torch.nn.functional.conv_transpose2d",
               "torch.nn.functional.conv_transpose1d")


@exercise("transposed_conv.overlap_counts", cases=_overlap_cases(),
          forbid=_TRANSPOSED + ("fancydl.conv2d", "fancydl.convolve",
                                "fancydl.insert_zeros"))
def overlap_counts(length, kernel_size, stride):
    """How many input pixels' kernels cover each output pixel of a 1-D transposed conv
    (no padding): a constant count means no checkerboard."""
    ones = np.ones((1, 1, 1, length))
    return conv_transpose2d(ones, np.ones((1, 1, 1, kernel_size)),
                            stride=(1, stride))[0, 0, 0]


def _zero_insertion_cases():
    rng = np.random.default_rng(11)
    return [(rng.standard_normal((h, w)), rng.standard_normal((kh, kw)), s)
            for h, w, kh, kw, s in [(2, 2, 2, 2, 2), (3, 4, 3, 3, 2), (2, 3, 2, 3, 3),
                                    (4, 4, 3, 3, 1), (1, 1, 2, 2, 2)]]


@exercise("transposed_conv.zero_insertion", cases=_zero_insertion_cases(), rtol=1e-9,
          atol=1e-10, forbid=_TRANSPOSED)
def zero_insertion(image, kernel, stride):
    """Single-channel transposed convolution (padding 0) of an (H, W) image."""
    return conv_transpose2d(image[None, None], kernel[None, None], stride=stride)[0, 0]


# --- derivations -----------------------------------------------------------------------

@exercise("transposed_conv.transpose_matrix")
def transpose_matrix():
    """The 5 x 2 matrix of the 1-D transposed convolution of a length-2 input with the
    kernel (1, 2, 3), stride 2, no padding: column h holds the kernel at rows 2h..2h+2
    (the transpose of the 2 x 5 matrix of the strided convolution)."""
    matrix = np.zeros((5, 2))
    for h in range(2):
        matrix[2 * h:2 * h + 3, h] = [1.0, 2.0, 3.0]
    return matrix


def _transpose_gradient_cases():
    rng = np.random.default_rng(17)
    cases = []
    shapes = [(1, 1, 1, 3, 3, 3, 2, 0), (2, 3, 2, 4, 3, 3, 2, 1), (1, 2, 4, 2, 5, 4, 3, 1),
              (2, 2, 2, 3, 3, 2, 1, 0)]
    for n, c_in, c_out, h, w, k, s, p in shapes:
        out = ((h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k)
        cases.append((rng.standard_normal((n, c_out) + out),
                       rng.standard_normal((c_in, c_out, k, k)), s, p))
    return cases


@exercise("transposed_conv.input_gradient", cases=_transpose_gradient_cases(), rtol=1e-9,
          atol=1e-10, forbid=_TRANSPOSED + AUTODIFF, require=["fancydl.conv2d"])
def input_gradient(grad_out, weight, stride, padding):
    """Gradient with respect to x of conv_transpose2d(x, weight, stride=stride,
    padding=padding) for the upstream gradient ``grad_out``: conv2d(grad_out, weight,
    stride, padding), the weight used as it is (C_in plays the output channels)."""
    return conv2d(grad_out, weight, stride=stride, padding=padding)
