"""Exercises of the chapter "Dilated (atrous) convolution"."""

import numpy as np

from . import exercise

_RNG = np.random.default_rng(31)


@exercise("dilated_conv.effective_kernel_size",
          cases=[(3, 1), (3, 2), (3, 4), (5, 3), (1, 7), (2, 5), (7, 2)])
def effective_kernel_size(kernel_size, dilation):
    """Extent of a kernel of ``kernel_size`` taps spread ``dilation`` apart."""
    return dilation * (kernel_size - 1) + 1


@exercise("dilated_conv.stack_receptive_field",
          cases=[([1, 1, 1], 3), ([1, 2, 4, 8], 3), ([2, 2, 2], 3), ([1, 2, 3], 3),
                 ([1, 2, 5, 1, 2, 5], 3), ([4], 5), ([1, 2, 4], 2)])
def stack_receptive_field(dilations, kernel_size):
    """Receptive field of stride-1 convolutions with these dilations, stacked."""
    return 1 + sum(d * (kernel_size - 1) for d in dilations)


def _kernels():
    return [(_RNG.standard_normal((3, 3)), 2), (_RNG.standard_normal((2, 3)), 3),
            (_RNG.standard_normal((3, 1)), 4), (_RNG.standard_normal((1, 1)), 5),
            (_RNG.standard_normal((3, 3)), 1)]


@exercise("dilated_conv.dilate_kernel", cases=_kernels())
def dilate_kernel(kernel, dilation):
    """Holes in the kernel: put ``dilation - 1`` zeros between neighbouring taps."""
    kh, kw = kernel.shape
    out = np.zeros((dilation * (kh - 1) + 1, dilation * (kw - 1) + 1), kernel.dtype)
    out[::dilation, ::dilation] = kernel
    return out


@exercise("dilated_conv.same_padding", cases=[(3, 1), (3, 2), (3, 4), (5, 3), (7, 1)])
def same_padding(kernel_size, dilation):
    """Padding per side that keeps the size at stride 1 (odd kernel)."""
    return dilation * (kernel_size - 1) // 2
