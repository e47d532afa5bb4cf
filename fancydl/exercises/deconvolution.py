"""Exercises of the deconvolution chapter."""

import numpy as np

from . import exercise
from ..restoration import blur, gaussian_psf, transfer_function


def _division_cases():
    return [
        (np.array([1.0, 5.0, 6.0]), np.array([1.0, 2.0])),
        (np.array([2.0, 0.0, -1.0, 4.0, 3.0]), np.array([2.0, 1.0, -1.0])),
        (np.array([1.0, 2.0, 3.0]), np.array([4.0])),
        (np.array([3.0, 1.0]), np.array([1.0, 1.0])),
        (np.convolve([1.0, -2.0, 0.5, 3.0], [0.5, 1.0, -1.0]), np.array([0.5, 1.0, -1.0])),
    ]


@exercise("deconvolution.polynomial_division", cases=_division_cases(), rtol=1e-9,
          atol=1e-12)
def polynomial_division(signal, divisor):
    """Quotient and remainder of ``signal / divisor`` (coefficients, highest power
    first), with ``len(divisor) <= len(signal)`` and ``divisor[0] != 0``."""
    remainder = np.array(signal, dtype=np.float64)
    quotient = np.zeros(len(signal) - len(divisor) + 1)
    for k in range(len(quotient)):
        quotient[k] = remainder[k] / divisor[0]
        remainder[k:k + len(divisor)] -= quotient[k] * divisor
    return quotient, np.asarray(signal) - np.convolve(divisor, quotient)


def _oracle_cases():
    rng = np.random.default_rng(11)
    cases = []
    for shape, size, sigma in [((16, 16), 5, 0.01), ((20, 24), 7, 0.05), ((12, 9), 3, 0.1)]:
        clean = rng.random(shape)
        psf = gaussian_psf(size, size / 4)
        noisy = blur(clean, psf) + sigma * rng.standard_normal(shape)
        cases.append((noisy, clean, psf, sigma))
    return cases


@exercise("deconvolution.oracle_wiener", cases=_oracle_cases(), rtol=1e-8, atol=1e-10)
def oracle_wiener(noisy, clean, psf, sigma):
    """Wiener filter with the true spectra: G = conj(H) |X|^2 / (|H|^2 |X|^2 + n sigma^2),
    where n is the number of pixels (the expected |N_k|^2 of white noise under the
    unnormalized DFT), applied circularly to ``noisy``. No clipping."""
    otf = transfer_function(psf, noisy.shape)
    scene_power = np.abs(np.fft.rfft2(clean)) ** 2
    gain = np.conj(otf) * scene_power / (np.abs(otf) ** 2 * scene_power
                                         + noisy.size * sigma ** 2)
    return np.fft.irfft2(gain * np.fft.rfft2(noisy), s=noisy.shape)


def _adjoint_cases():
    rng = np.random.default_rng(5)
    cases = []
    for shape, psf_shape, num_iter in [((20, 22), (3, 3), 10), ((24, 20), (4, 4), 30),
                                       ((18, 18), (2, 6), 25)]:
        psf = 0.5 + rng.random(psf_shape)
        psf /= psf.sum()
        scene = 0.1 + rng.random(shape)
        image = np.abs(blur(scene, psf, boundary="zero")
                       + 0.01 * rng.standard_normal(shape))
        cases.append((image, psf, num_iter))
    return cases


@exercise("deconvolution.richardson_lucy_adjoint", cases=_adjoint_cases(), rtol=1e-8,
          atol=1e-10)
def richardson_lucy_adjoint(image, psf, num_iter):
    """Richardson-Lucy from 0.5 whose back-projection is the exact adjoint of
    ``blur(., psf, boundary='zero')`` for any PSF size (the window of the full
    correlation starts at ``k // 2`` instead of ``(k - 1) // 2``). No clipping."""
    from ..signal import fftconvolve

    starts = [k // 2 for k in psf.shape]
    window = tuple(slice(s, s + n) for s, n in zip(starts, image.shape))
    estimate = np.full(image.shape, 0.5)
    for _ in range(num_iter):
        ratio = image / (blur(estimate, psf, boundary="zero") + 1e-12)
        estimate = estimate * fftconvolve(ratio, psf[::-1, ::-1], mode="full")[window]
    return estimate


# --- derivations -----------------------------------------------------------------------

def _em_cases():
    rng = np.random.default_rng(29)
    cases = []
    for m, n in [(4, 3), (6, 6), (8, 5), (3, 3)]:
        blur_matrix = rng.uniform(0.0, 1.0, (m, n))
        cases.append((blur_matrix, rng.uniform(0.5, 3.0, m), rng.uniform(0.5, 2.0, n)))
    return cases


@exercise("deconvolution.richardson_lucy_step", cases=_em_cases(), rtol=1e-10,
          atol=1e-12, forbid=("fancydl.richardson_lucy",))
def richardson_lucy_step(blur_matrix, observed, estimate):
    """One EM step for the Poisson model y ~ Poisson(H x): x * H^T(y / (H x)) / H^T 1
    (the column sums of H normalize; they are 1 for a normalized PSF away from the
    border)."""
    ratio = observed / (blur_matrix @ estimate)
    return estimate * (blur_matrix.T @ ratio) / blur_matrix.sum(axis=0)


def _tikhonov_cases():
    rng = np.random.default_rng(31)
    return [(rng.standard_normal((m, n)), rng.standard_normal(m), lam)
            for m, n, lam in [(5, 3, 0.1), (4, 4, 1.0), (3, 5, 0.01), (6, 6, 10.0)]]


@exercise("deconvolution.tikhonov", cases=_tikhonov_cases(), rtol=1e-8, atol=1e-10)
def tikhonov(blur_matrix, observed, lam):
    """The minimizer of |H x - y|^2 + lam |x|^2: the solution of the normal equations
    (H^T H + lam I) x = H^T y."""
    n = blur_matrix.shape[1]
    return np.linalg.solve(blur_matrix.T @ blur_matrix + lam * np.eye(n),
                           blur_matrix.T @ observed)
