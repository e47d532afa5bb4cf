"""Exercises of the chapter "ROI pooling and ROI Align"."""

import math

import numpy as np

from . import exercise


@exercise("roi_pooling.c_round", cases=[
    (np.array([2.5, -2.5, 0.5, 1.49, -0.5, 3.0, -7.5, 0.0]),), (np.arange(-4, 5) / 2,)])
def c_round(v):
    """Round half away from zero, elementwise (C's round; NumPy's np.round goes to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


@exercise("roi_pooling.roi_pool_bins", cases=[
    (1.0, 5.0, 2, 8), (2.5, 4.0, 3, 8), (0.0, 6.0, 7, 8), (-3.0, 2.0, 2, 8),
    (5.0, 3.0, 2, 8), (3.0, 20.0, 4, 10)])
def roi_pool_bins(x1, x2, output_size, size):
    """ROI pooling's bins along one axis (spatial_scale 1): lists of bin starts and ends
    (end exclusive), clipped to [0, size]."""
    begin = int(np.sign(x1) * math.floor(abs(x1) + 0.5))
    end = int(np.sign(x2) * math.floor(abs(x2) + 0.5))
    bin_size = max(end - begin + 1, 1) / output_size
    starts = [min(max(math.floor(p * bin_size) + begin, 0), size) for p in range(output_size)]
    ends = [min(max(math.ceil((p + 1) * bin_size) + begin, 0), size)
            for p in range(output_size)]
    return starts, ends


def _ramp():
    return 10.0 * np.arange(5)[:, None] + np.arange(6)


@exercise("roi_pooling.bilinear", cases=[
    (_ramp(), 1.5, 2.25), (_ramp(), 0.0, 0.0), (_ramp(), -0.7, 2.0), (_ramp(), 4.6, 5.9),
    (_ramp(), 5.0, 1.0), (_ramp(), -1.2, 3.0), (_ramp(), 2.0, 6.5), (_ramp(), 3.99, 4.01)])
def bilinear(image, y, x):
    """torchvision's ROI Align sample of ``image`` (H, W) at (y, x): 0 beyond -1 or
    H (W); otherwise clamp into the image and interpolate its four neighbours."""
    h, w = image.shape
    if y < -1 or y > h or x < -1 or x > w:
        return 0.0
    y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
    y0, x0 = int(y), int(x)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return float((1 - ly) * (1 - lx) * image[y0, x0] + (1 - ly) * lx * image[y0, x1]
                 + ly * (1 - lx) * image[y1, x0] + ly * lx * image[y1, x1])


# --- derivations -----------------------------------------------------------------------

@exercise("roi_pooling.align_weights", cases=[
    (1.25, 2.6, 5, 6), (0.0, 0.0, 5, 6), (3.5, 5.4, 5, 6), (-0.6, 1.5, 5, 6),
    (4.3, -0.2, 5, 6), (-1.3, 2.0, 5, 6), (2.0, 3.0, 4, 4), (0.5, 0.5, 1, 3)],
    rtol=1e-9, atol=1e-12)
def align_weights(y, x, height, width):
    """The (H, W) weights w with ROI Align's sample at (y, x) equal to
    (w * image).sum() for every image: torchvision's clamping rule, 0 beyond -1."""
    weights = np.zeros((height, width))
    for flat in range(height * width):
        unit = np.zeros(height * width)
        unit[flat] = 1.0
        weights.flat[flat] = bilinear(unit.reshape(height, width), y, x)
    return weights


@exercise("roi_pooling.quantization_shift", cases=[
    (100.0, 1 / 16), (40.0, 1 / 16), (56.0, 1 / 16), (24.0, 1 / 16), (-8.0, 1 / 16),
    (37.5, 1 / 8), (130.0, 1 / 32), (3.0, 1.0), (12.0, 0.25)], rtol=1e-12, atol=1e-12)
def quantization_shift(x1, spatial_scale):
    """Where ROI pooling's first bin starts minus where the box starts, in input
    pixels: round(x1 * scale) / scale - x1, with C's rounding (halves away from 0)."""
    scaled = x1 * spatial_scale
    rounded = np.sign(scaled) * np.floor(abs(scaled) + 0.5)
    return float(rounded / spatial_scale - x1)
