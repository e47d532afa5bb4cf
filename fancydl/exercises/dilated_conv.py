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


# --- derivations -----------------------------------------------------------------------

@exercise("dilated_conv.layers_needed",
          cases=[(3, 3), (4, 3), (7, 3), (8, 3), (63, 3), (64, 3), (100, 3), (1, 3),
                 (9, 5), (10, 5), (200, 2)])
def layers_needed(field, kernel_size):
    """Fewest layers of a stride-1 stack with dilations 1, 2, 4, ... (kernel k) whose
    receptive field 1 + (k - 1)(2^L - 1) is at least ``field``."""
    layers = 0
    while 1 + (kernel_size - 1) * (2 ** layers - 1) < field:
        layers += 1
    return layers


@exercise("dilated_conv.gridding_fraction", rtol=1e-9)
def gridding_fraction():
    """Fraction of the 13 x 13 span of three 3 x 3 layers with dilation 2 that one
    output depends on: the even offsets -6..6, 7 per axis, so 49 / 169."""
    return 49 / 169
