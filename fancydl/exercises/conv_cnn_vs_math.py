"""Exercises of the chapter "Convolution in CNNs and in mathematics"."""

import numpy as np

from . import exercise
from ..signal import correlate2d

_RNG = np.random.default_rng(21)


def _pairs_2d():
    shapes = [((5, 6), (3, 3)), ((4, 4), (2, 3)), ((6, 3), (1, 4)), ((3, 3), (3, 3))]
    return [(_RNG.standard_normal(s1), _RNG.standard_normal(s2)) for s1, s2 in shapes]


_CONVOLUTIONS = ("fancydl.convolve2d", "fancydl.convolve", "fancydl.fftconvolve",
                 "numpy.convolve", "scipy.signal.convolve2d", "scipy.signal.convolve",
                 "scipy.signal.fftconvolve", "scipy.signal.oaconvolve")


@exercise("conv_cnn_vs_math.convolve_with_correlate", cases=_pairs_2d(),
          forbid=_CONVOLUTIONS, require=["fancydl.correlate2d"])
def convolve_with_correlate(image, kernel):
    """Full 2-D convolution using only correlate2d: rotate the kernel by 180°."""
    return correlate2d(image, kernel[::-1, ::-1], mode="full")


def _pairs_1d():
    return [(_RNG.standard_normal(n1), _RNG.standard_normal(n2))
            for n1, n2 in [(8, 3), (5, 5), (1, 4), (13, 6), (2, 1)]]


@exercise("conv_cnn_vs_math.fft_convolve_1d", cases=_pairs_1d(),
          forbid=_CONVOLUTIONS + ("numpy.correlate", "fancydl.correlate",
                                  "fancydl.correlate2d", "scipy.signal.correlate"),
          require=[("numpy.fft.rfft", "numpy.fft.fft")])
def fft_convolve_1d(a, b):
    """Linear ('full') convolution through the FFT: zero-pad both to n1 + n2 - 1."""
    n = len(a) + len(b) - 1
    return np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n)


@exercise("conv_cnn_vs_math.apparent_frequency",
          cases=[(7.0, 10.0), (3.0, 10.0), (12.0, 10.0), (5.0, 10.0), (9.5, 4.0),
                 (0.0, 8.0), (19.0, 20.0)])
def apparent_frequency(frequency, sampling_rate):
    """Frequency in [0, fs/2] at which a sinusoid of ``frequency`` Hz appears after
    sampling at ``sampling_rate`` Hz: fold it onto the nearest multiple of fs."""
    return abs(frequency - sampling_rate * np.round(frequency / sampling_rate))


@exercise("conv_cnn_vs_math.moving_average_impulse_response")
def moving_average_impulse_response():
    """Impulse response h[0..4] of y[n] = (x[n] + x[n-1] + x[n-2]) / 3."""
    return np.array([1 / 3, 1 / 3, 1 / 3, 0.0, 0.0])


# --- derivations -----------------------------------------------------------------------

@exercise("conv_cnn_vs_math.winograd_output_transform")
def winograd_output_transform():
    """A^T of Winograd's F(2, 3): with m1 = (d0 - d2) g0, m2 = (d1 + d2)(g0 + g1 + g2)/2,
    m3 = (d2 - d1)(g0 - g1 + g2)/2, m4 = (d1 - d3) g2, the two correlation outputs are
    y0 = m1 + m2 + m3 and y1 = m2 - m3 - m4."""
    return np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


@exercise("conv_cnn_vs_math.stacked_params",
          cases=[(64, 3, 3), (64, 2, 3), (256, 3, 3), (16, 2, 5), (3, 1, 3), (8, 4, 2)])
def stacked_params(channels, num_layers, kernel_size):
    """Weights (no bias) of ``num_layers`` stacked k x k convolutions C -> C, and of the
    single convolution C -> C with the same receptive field L (k - 1) + 1."""
    field = num_layers * (kernel_size - 1) + 1
    return (num_layers * kernel_size ** 2 * channels ** 2, field ** 2 * channels ** 2)


@exercise("conv_cnn_vs_math.strided_receptive_field", cases=[
    ([(3, 1, 1), (3, 1, 1)],), ([(3, 2, 1), (3, 2, 1), (3, 1, 1)],),
    ([(7, 2, 1), (3, 2, 1), (3, 1, 2)],), ([(2, 2, 1), (2, 2, 1), (2, 2, 1)],),
    ([(3, 1, 2), (3, 2, 1), (5, 3, 1), (3, 1, 4)],), ([(1, 4, 1), (3, 1, 1)],),
    ([(5, 1, 1)],)],
    forbid=("fancydl.windows.receptive_field", "fancydl.receptive_field"))
def strided_receptive_field(layers):
    """Receptive field of a stack of (kernel_size, stride, dilation) layers: each
    adds d (k - 1) times the product of the strides below it."""
    field, jump = 1, 1
    for kernel_size, stride, dilation in layers:
        field += dilation * (kernel_size - 1) * jump
        jump *= stride
    return field
