"""Exercises of the deformable-convolution chapter."""

import numpy as np

from . import exercise
from ..deform import _Corners, bilinear_sample
from ..viz.deform import transform_offsets, transformation_matrix


def _image():
    return np.arange(12.0).reshape(3, 4) ** 1.5


def _point_cases():
    rng = np.random.default_rng(5)
    inside = (rng.uniform(-0.9, 2.9, 6), rng.uniform(-0.9, 3.9, 6))
    edges = (np.array([-1.0, -0.5, 3.0, 2.5, 0.0, 1.5]),
             np.array([0.5, 4.0, 1.0, 3.5, -1.0, -0.25]))
    return [(_image(), np.array([1.0]), np.array([2.0])),
            (_image(), np.array([0.5]), np.array([0.5])),
            (_image(), *inside),
            (_image(), *edges),
            (rng.standard_normal((5, 2)), rng.uniform(-2, 6, 8), rng.uniform(-2, 3, 8))]


@exercise("deformable_conv.bilinear", cases=_point_cases(), rtol=1e-10, atol=1e-12)
def bilinear(image, y, x):
    """Bilinear samples of a 2-D image at points (y, x), zero outside the image."""
    return bilinear_sample(image, y, x)


def _gradient_cases():
    rng = np.random.default_rng(6)
    fractional = lambda low, high, n: np.floor(rng.uniform(low, high, n)) + \
        rng.uniform(0.1, 0.9, n)  # noqa: E731 - never an integer coordinate
    return [(_image(), np.array([0.25]), np.array([1.5])),
            (_image(), fractional(-1, 3, 6), fractional(-1, 4, 6)),
            (rng.standard_normal((4, 4)), fractional(-2, 5, 8), fractional(-2, 5, 8))]


@exercise("deformable_conv.sample_gradient_y", cases=_gradient_cases(), rtol=1e-10,
          atol=1e-12)
def sample_gradient_y(image, y, x):
    """d(bilinear sample)/dy at points with non-integer coordinates."""
    corners = _Corners(y, x, *image.shape)
    flat = np.append(image.reshape(-1), 0.0)
    return (corners.d_dy * flat[corners.pixels]).sum(-1)


@exercise("deformable_conv.rotation_offsets",
          cases=[(3, 1, 90.0), (3, 2, 30.0), (5, 1, -45.0), (1, 1, 10.0)], rtol=1e-9,
          atol=1e-12)
def rotation_offsets(kernel_size, dilation, degrees):
    """Per-tap offsets (2 k k,) that rotate a k x k grid counter-clockwise on screen."""
    return transform_offsets(kernel_size, transformation_matrix("rotation", degrees),
                             dilation)


def _mask_cases():
    rng = np.random.default_rng(8)
    return [(rng.standard_normal((2, 3, 3, 3)), rng.uniform(0, 1, 9)),
            (rng.standard_normal((4, 1, 2, 3)), rng.uniform(-1, 1, 6))]


@exercise("deformable_conv.mask_as_weight", cases=_mask_cases(), rtol=1e-12, atol=1e-14)
def mask_as_weight(weight, tap_mask):
    """The conv2d weight equal to deform_conv2d with zero offsets and a mask that is the
    same at every position: ``tap_mask[k]`` for tap ``k = i kW + j``."""
    return weight * tap_mask.reshape(weight.shape[2:])


# --- derivations -----------------------------------------------------------------------

@exercise("deformable_conv.sample_image_gradient", cases=[
    ((3, 4), 1.25, 2.5), ((3, 4), 0.0, 0.0), ((3, 4), -0.5, 1.75), ((3, 4), 2.4, 3.5),
    ((3, 4), -1.0, 2.0), ((3, 4), 1.0, 4.2), ((2, 2), 0.5, -0.25), ((4, 3), 3.0, 2.0)],
    rtol=1e-10, atol=1e-12)
def sample_image_gradient(shape, y, x):
    """Gradient of one bilinear sample (deform_conv2d's rule: a corner outside the
    image counts as 0, no clamping) with respect to the (H, W) image: the four
    corner weights (1 - |y - r|)(1 - |x - c|) at the corners inside the image."""
    height, width = shape
    grad = np.zeros(shape)
    for flat in range(height * width):
        unit = np.zeros(height * width)
        unit[flat] = 1.0
        grad.flat[flat] = bilinear_sample(unit.reshape(shape), np.array([y]),
                                          np.array([x]))[0]
    return grad


def _shift_cases():
    rng = np.random.default_rng(9)
    return [(np.arange(12.0).reshape(3, 4), 1, 0), (np.arange(12.0).reshape(3, 4), 0, -1),
            (rng.standard_normal((5, 6)), -2, 3), (rng.standard_normal((4, 4)), 1, 1),
            (rng.standard_normal((3, 5)), 0, 0), (rng.standard_normal((2, 3)), 3, -1)]


@exercise("deformable_conv.integer_shift", cases=_shift_cases(), rtol=1e-12, atol=1e-14)
def integer_shift(image, dy, dx):
    """The plane s with conv2d(s, w) == deform_conv2d(image, offsets all (dy, dx), w)
    (no padding): s[i, j] = image[i + dy, j + dx], 0 where that is outside."""
    height, width = image.shape
    padded = np.zeros((height + 2 * abs(dy), width + 2 * abs(dx)))
    padded[abs(dy):abs(dy) + height, abs(dx):abs(dx) + width] = image
    return padded[abs(dy) + dy:abs(dy) + dy + height, abs(dx) + dx:abs(dx) + dx + width]
