"""Richardson-Lucy, 50 iterations on a 512x512 image with a 9x9 PSF: target <= 1.5x
scikit-image (which convolves with scipy.signal.convolve, FFT at this size). Wiener is
reported only: it is three FFTs, and scipy.fft (scikit-image's) is faster than
numpy.fft (fancydl's) at this size."""

from harness import Case

_DATA = """
import numpy as np
rng = np.random.default_rng(0)
image = rng.random((512, 512)).astype({dtype})
psf = np.ones((9, 9), {dtype}) / 81
"""

CASES = [
    Case(
        name=f"richardson_lucy 50 it (512, 512) psf 9x9 {dtype}",
        target=1.5,
        fancydl_setup=_DATA.format(dtype=f"np.{dtype}") + "import fancydl\n",
        fancydl_stmt="fancydl.richardson_lucy(image, psf, 50)",
        torch_setup=_DATA.format(dtype=f"np.{dtype}")
        + "from skimage.restoration import richardson_lucy\n",
        torch_stmt="richardson_lucy(image, psf, 50)",
        baseline="scikit-image",
    )
    for dtype in ("float32", "float64")
] + [
    Case(
        name="wiener (512, 512) psf 9x9 float32",
        target=None,
        fancydl_setup=_DATA.format(dtype="np.float32") + "import fancydl\n",
        fancydl_stmt="fancydl.wiener(image, psf, 0.01)",
        torch_setup=_DATA.format(dtype="np.float32")
        + "from skimage.restoration import wiener\n",
        torch_stmt="wiener(image, psf, 0.01)",
        baseline="scikit-image",
    ),
]
