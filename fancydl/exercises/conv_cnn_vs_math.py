"""Exercises of the chapter "Convolution in CNNs and in mathematics"."""

import numpy as np

from . import exercise
from ..signal import correlate2d

_RNG = np.random.default_rng(21)


def _pairs_2d():
    shapes = [((5, 6), (3, 3)), ((4, 4), (2, 3)), ((6, 3), (1, 4)), ((3, 3), (3, 3))]
    return [(_RNG.standard_normal(s1), _RNG.standard_normal(s2)) for s1, s2 in shapes]


@exercise("conv_cnn_vs_math.convolve_with_correlate", cases=_pairs_2d())
def convolve_with_correlate(image, kernel):
    """Full 2-D convolution using only correlate2d: rotate the kernel by 180°."""
    return correlate2d(image, kernel[::-1, ::-1], mode="full")


def _pairs_1d():
    return [(_RNG.standard_normal(n1), _RNG.standard_normal(n2))
            for n1, n2 in [(8, 3), (5, 5), (1, 4), (13, 6), (2, 1)]]


@exercise("conv_cnn_vs_math.fft_convolve_1d", cases=_pairs_1d())
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
