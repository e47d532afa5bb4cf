"""fancydl.signal against scipy.signal (reported only; the issue sets no target).

The direct method loops over the kernel's offsets (one vectorized pass per kernel
sample), scipy's is a compiled loop; the FFT method is numpy.fft against scipy.fft.
"""

from harness import Case

_DATA = """
import numpy as np
rng = np.random.default_rng(0)
image = rng.standard_normal((256, 256)).astype(np.float32)
kernel5 = rng.standard_normal((5, 5)).astype(np.float32)
big = rng.standard_normal((512, 512)).astype(np.float32)
kernel31 = rng.standard_normal((31, 31)).astype(np.float32)
"""


def _pair(name, ours, theirs):
    return Case(name=name, target=None,
                fancydl_setup=_DATA + "import fancydl", fancydl_stmt=ours,
                torch_setup=_DATA + "import scipy.signal", torch_stmt=theirs,
                baseline="scipy")


CASES = [
    _pair("convolve2d (256, 256) * (5, 5) 'same' float32",
          "fancydl.convolve2d(image, kernel5, 'same')",
          "scipy.signal.convolve2d(image, kernel5, 'same')"),
    _pair("correlate2d (256, 256) * (5, 5) 'same' symm float32",
          "fancydl.correlate2d(image, kernel5, 'same', 'symm')",
          "scipy.signal.correlate2d(image, kernel5, 'same', 'symm')"),
    _pair("fftconvolve (512, 512) * (31, 31) 'same' float32",
          "fancydl.fftconvolve(big, kernel31, 'same')",
          "scipy.signal.fftconvolve(big, kernel31, 'same')"),
]
