"""Mathematical deconvolution: undoing a known blur (claim C3 of the book's source).

A blurred image is ``y = h * x + n``: the sharp image ``x`` convolved with a point
spread function (PSF) ``h``, plus noise ``n``. This module recovers ``x`` three ways:

- :func:`inverse_filter`: divide by the transfer function ``H``. Exact without noise,
  useless with it: where ``|H|`` is tiny, the noise is multiplied by ``1/|H|``.
- :func:`wiener`: the minimum-mean-square-error linear filter
  ``conj(H) / (|H|^2 + balance |D|^2)`` (Wiener 1949), with scikit-image's semantics.
- :func:`richardson_lucy`: the multiplicative maximum-likelihood iteration for Poisson
  noise (Richardson 1972, Lucy 1974), with scikit-image's semantics.

and provides what a demonstration needs: :func:`blur`, :func:`add_gaussian_noise`,
:func:`add_poisson_noise` (explicit ``numpy.random.Generator``), :func:`psnr`,
:func:`gaussian_psf`, :func:`motion_psf`, the transfer function of a PSF
(:func:`transfer_function`), and :func:`deconvolve`, 1-D deconvolution as polynomial
division with ``scipy.signal.deconvolve``'s semantics.

Two boundary models, as in scikit-image. Wiener and the inverse filter work in the
Fourier domain and so assume the blur is *circular*: the PSF is zero-padded to the
image's shape and rolled so that its centre pixel ``floor(k/2)`` (per axis) sits at
index 0. Richardson-Lucy convolves with zero boundaries, ``scipy.signal.convolve(...,
mode='same')``, whose window starts at ``(k - 1) // 2``: for even PSF sizes the two
centres differ by one pixel. :func:`blur` offers both (``boundary='circular'`` or
``'zero'``).

Differences from scikit-image 0.26, all in corners its documentation does not cover:
a real ``psf`` (or ``reg``) is always an impulse response and a complex one always a
transfer function (scikit-image also takes a *real* array of the transfer function's
shape as a transfer function, and keeps only the real part of complex ones and of
``reg``'s transfer function); inputs must be float32/float64 arrays; ``num_iter`` must
be positive.
"""

from __future__ import annotations

import numbers

import numpy as np

from .autodiff import Function, Traced, constant_of
from .signal import apply_spectrum, next_fast_length, unnormalized_fft
from .validation import (check_array, check_float_array, check_float_dtype, check_int,
                         check_pair, check_real)

__all__ = ["wiener", "richardson_lucy", "inverse_filter", "transfer_function", "blur",
           "add_gaussian_noise", "add_poisson_noise", "psnr", "gaussian_psf",
           "motion_psf", "deconvolve"]

#: Added to the re-blurred estimate before dividing, as scikit-image does.
RL_GUARD = 1e-12

#: The largest mean NumPy's Poisson sampler accepts, ``2**63 - 1 - 10 sqrt(2**63 - 1)``
#: (about 9.22e18); beyond it ``Generator.poisson`` raises "lam value too large".
POISSON_MAX_MEAN = float(np.iinfo(np.int64).max - 10 * np.sqrt(np.iinfo(np.int64).max))


# --- transfer functions ---------------------------------------------------------------

def transfer_function(psf, shape, is_real=True):
    """The transfer function (optical transfer function) of a PSF on a grid of ``shape``.

    The PSF is zero-padded to ``shape`` and rolled so that its centre pixel
    ``floor(k / 2)`` along each axis lands on index 0 (no phase ramp for a centred PSF),
    then Fourier transformed (unnormalized). Circular convolution with the PSF is then
    ``irfftn(H * rfftn(x))``.

    Parameters
    ----------
    psf : ndarray of shape (k1, ..., kd), float32 or float64, non-empty
        Impulse response (real: a complex array is already a transfer function).
    shape : tuple of int
        The image's shape (N1, ..., Nd): ``d`` entries with ``ki <= Ni``, so that the
        PSF fits inside the image.
    is_real : bool
        Return the half spectrum of ``rfftn``, shape (N1, ..., Nd // 2 + 1), instead
        of the full ``fftn`` spectrum of shape ``shape``.

    Returns
    -------
    ndarray, complex64 for a float32 PSF, complex128 for float64

    Examples
    --------
    >>> import numpy as np
    >>> H = transfer_function(np.full((3, 3), 1 / 9), (8, 8))
    >>> H.shape, round(float(H[0, 0].real), 12)  # the DC gain is the PSF's sum
    ((8, 5), 1.0)
    """
    psf = constant_of(psf, "transfer_function", "psf")
    shape = _check_shape("transfer_function", shape)
    _check_psf("transfer_function", psf, shape, "shape")
    padded = np.zeros(shape, dtype=psf.dtype)
    wrapped = [(np.arange(k) - k // 2) % n for k, n in zip(psf.shape, shape)]
    padded[np.ix_(*wrapped)] = psf  # entry floor(k/2) of each axis lands on index 0
    return unnormalized_fft(padded, shape, real=is_real)


def _spectrum_shape(shape, is_real):
    return tuple(shape[:-1]) + (shape[-1] // 2 + 1,) if is_real else tuple(shape)


def _laplacian_transfer_function(shape, is_real, dtype):
    """Transfer function of the discrete Laplacian (2d at the centre, -1 at the 2d
    axis neighbours): ``sum_a 4 sin^2(pi k_a / N_a)``, real and non-negative."""
    total = np.zeros(_spectrum_shape(shape, is_real), dtype=np.float64)
    for axis, n in enumerate(shape):
        count = total.shape[axis]
        k = np.arange(count)
        along = 4.0 * np.sin(np.pi * k / n) ** 2
        total += along.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return total.astype(dtype)


# --- the circular (Fourier) filter: the one mechanism of wiener, inverse_filter, blur ---

class _CircularFilter(Function):
    """``x -> irfftn(F * rfftn(x))``: circular convolution with the real kernel whose
    half spectrum is ``F``. Its adjoint is the circular correlation, ``conj(F)``."""

    @staticmethod
    def forward(ctx, image, spectrum):
        ctx.spectrum = spectrum
        return _apply_spectrum(image, spectrum)

    @staticmethod
    def backward(ctx, grad):
        return _apply_spectrum(grad, np.conj(ctx.spectrum)), None


def _apply_spectrum(image, spectrum, is_real=True):
    """``ifft(spectrum * fft(image))``, real (half spectrum, in ``image``'s dtype) or
    complex (in ``spectrum``'s), with :func:`fancydl.signal.apply_spectrum`."""
    out = apply_spectrum(spectrum, image, real=is_real)
    return out.astype(image.dtype if is_real else spectrum.dtype, copy=False)


class _Clip(Function):
    """Clamp to [-1, 1] as scikit-image does; the gradient passes where unclamped."""

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward((x >= -1) & (x <= 1))
        return np.clip(x, -1, 1)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved
        return (np.where(inside, grad, 0).astype(grad.dtype, copy=False),)


def _clip(x):
    """scikit-image's clip to [-1, 1]; for complex output its comparisons are numpy's
    lexicographic ones (real part first), as in scikit-image."""
    if np.iscomplexobj(x):
        return np.where(x > 1, 1, np.where(x < -1, -1, x)).astype(x.dtype, copy=False)
    return _Clip.apply(x)


# --- argument checks ----------------------------------------------------------------

def _check_image_and_psf(op, image, psf, allow_complex_psf=False, name="psf"):
    """Validate ``image`` (float, >= 1 dimension) and a real PSF that fits inside it."""
    check_float_array(op, "image", image)
    if image.ndim == 0:
        raise ValueError(f"{op}: image must have at least 1 dimension, got a 0-d array")
    if allow_complex_psf and isinstance(psf, np.ndarray) and np.iscomplexobj(psf):
        return
    _check_psf(op, psf, image.shape, "image", name)


def _check_psf(op, psf, shape, grid, name="psf"):
    """A non-empty float PSF with one axis per entry of ``shape`` that fits inside it
    (``grid`` names ``shape`` in the messages: 'image' or 'shape')."""
    check_float_array(op, name, psf)
    where = f"the image of shape {shape}" if grid == "image" else f"shape {shape}"
    if psf.ndim != len(shape):
        raise ValueError(f"{op}: {name} must have as many dimensions as {grid} "
                         f"({len(shape)}), got shape {psf.shape} ({psf.ndim} dimensions)")
    if any(k > n for k, n in zip(psf.shape, shape)):
        raise ValueError(f"{op}: {name} of shape {psf.shape} is larger than {where} "
                         f"along some axis; it must fit inside it")
    if psf.size == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {psf.shape}")


def _check_shape(op, shape):
    """``shape`` (a tuple or list of positive ints, at least one) as a tuple."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{op}: shape must be a tuple of positive ints, got "
                        f"{type(shape).__name__} {shape!r}")
    if len(shape) == 0:
        raise ValueError(f"{op}: shape must have at least one entry, got ()")
    return tuple(check_int(op, f"shape[{axis}]", n, minimum=1)
                 for axis, n in enumerate(shape))


def _filter_spectrum(op, name, kernel, image, is_real):
    """A kernel given as an impulse response (real) or transfer function (complex)
    -> its transfer function on the image's grid, in the image's precision."""
    complex_dtype = np.result_type(image.dtype, np.complex64)
    if np.iscomplexobj(kernel):
        expected = _spectrum_shape(image.shape, is_real)
        if kernel.shape != expected:
            raise ValueError(f"{op}: a complex {name} is a transfer function and must have "
                             f"shape {expected} for an image of shape {image.shape} "
                             f"(is_real={is_real}), got {kernel.shape}")
        return kernel.astype(complex_dtype, copy=False)
    return transfer_function(kernel.astype(image.dtype, copy=False), image.shape,
                             is_real).astype(complex_dtype, copy=False)


def _check_generator(op, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: rng must be a numpy.random.Generator (e.g. "
                        f"numpy.random.default_rng(0)), got {type(rng).__name__}")


# --- the three deconvolutions ---------------------------------------------------------

def wiener(image, psf, balance, reg=None, is_real=True, clip=True):
    r"""Wiener-Hunt deconvolution, like ``skimage.restoration.wiener``.

    With the transfer functions ``H`` of the PSF and ``D`` of the regularization
    operator, the restored spectrum is

    .. math:: \hat X = \frac{\overline{H}}{|H|^2 + \lambda |D|^2}\, Y,

    the minimum-mean-square-error linear estimate when the noise-to-signal power ratio
    at each frequency is ``balance * |D|^2``. Boundaries are circular.

    Parameters
    ----------
    image : ndarray of shape (N1, ..., Nd), float32 or float64
        The blurred, noisy image.
    psf : ndarray
        Real: the impulse response, shape (k1, ..., kd) with ``ki <= Ni``, centred at
        ``floor(ki / 2)``. Complex: the transfer function, of shape
        (N1, ..., Nd // 2 + 1) when ``is_real`` else (N1, ..., Nd).
    balance : float >= 0
        ``lambda``: larger trusts the prior (smoother), 0 is the inverse filter.
    reg : ndarray, optional
        Regularization operator ``D``, given like ``psf``; the Laplacian by default
        (penalizes high frequencies).
    is_real : bool
        Use real (half-spectrum) transforms and return a real image. With False the
        full complex transforms are used and the result is complex, as in scikit-image.
    clip : bool
        Clamp the result to [-1, 1] (scikit-image's convention for images in [0, 1]).

    Returns
    -------
    ndarray of ``image``'s shape, ``image``'s dtype (complex when ``is_real`` is False)

    Notes
    -----
    Differentiable with respect to ``image`` (a linear filter: its vector-Jacobian
    product applies ``conj`` of the filter) when ``is_real`` is True.
    """
    _check_image_and_psf("wiener", image, psf, allow_complex_psf=True)
    balance = check_real("wiener", "balance", balance, minimum=0.0)
    if reg is not None:
        check_array("wiener", "reg", reg)
        if not np.iscomplexobj(reg):
            _check_image_and_psf("wiener", image, reg.astype(image.dtype), name="reg")
    psf_spectrum = _filter_spectrum("wiener", "psf", constant_of(psf, "wiener", "psf"),
                                    image, is_real)
    if reg is None:
        reg_power = _laplacian_transfer_function(image.shape, is_real, image.dtype) ** 2
    else:
        reg = constant_of(reg, "wiener", "reg")
        reg_power = np.abs(_filter_spectrum("wiener", "reg", reg, image, is_real)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        wiener_spectrum = np.conj(psf_spectrum) / (np.abs(psf_spectrum) ** 2
                                                   + balance * reg_power)
    return _filter_image("wiener", image, wiener_spectrum, is_real, clip)


def _filter_image(op, image, spectrum, is_real, clip):
    """Apply a filter spectrum to ``image`` (circular), then optionally clip."""
    if is_real:
        out = _CircularFilter.apply(image, spectrum)
    else:
        if isinstance(image, Traced):
            raise TypeError(f"{op}: gradients need is_real=True (the result is complex "
                            f"with is_real=False)")
        out = _apply_spectrum(image, spectrum, is_real=False)
    return _clip(out) if clip else out


def inverse_filter(image, psf, threshold=0.0, clip=False):
    """The naive inverse filter ``X = Y / H`` (circular boundaries), for demonstration.

    Without noise it undoes a circular blur exactly (where ``H != 0``); with noise, the
    noise at frequency ``k`` is multiplied by ``1 / |H(k)|``, which explodes where the
    PSF passes almost nothing. ``threshold`` gives the truncated ("pseudo") inverse.

    Parameters
    ----------
    image : ndarray of shape (N1, ..., Nd), float32 or float64
    psf : ndarray of shape (k1, ..., kd), float, ``ki <= Ni``
        Impulse response centred at ``floor(ki / 2)``, as in :func:`wiener`.
    threshold : float >= 0
        Frequencies where ``|H| <= threshold`` are set to 0 instead of divided
        (with the default 0, only exact zeros of ``H``, where division is undefined).
    clip : bool
        Clamp the result to [-1, 1]. Off by default: the point is to see the explosion.

    Returns
    -------
    ndarray of ``image``'s shape and dtype

    Notes
    -----
    Equals ``wiener(image, psf, balance=0, clip=clip)`` wherever ``H != 0``.
    """
    _check_image_and_psf("inverse_filter", image, psf)
    threshold = check_real("inverse_filter", "threshold", threshold, minimum=0.0)
    psf_spectrum = _filter_spectrum("inverse_filter", "psf",
                                    constant_of(psf, "inverse_filter", "psf"), image, True)
    kept = np.abs(psf_spectrum) > threshold
    safe = np.where(kept, psf_spectrum, 1)
    inverse_spectrum = np.where(kept, 1 / safe, 0).astype(psf_spectrum.dtype, copy=False)
    return _filter_image("inverse_filter", image, inverse_spectrum, True, clip)


class _SameConvolution:
    """Zero-boundary convolution with one fixed kernel, in ``scipy.signal.convolve``'s
    ``mode='same'``: output index ``i`` is the full convolution at ``i + (k - 1) // 2``.

    The kernel's spectrum is computed once, so each call costs one forward and one
    inverse real FFT. The FFT length per axis only needs to avoid wrap-around inside
    the kept window: ``L >= n + k - 1 - (k - 1) // 2``; a 5-smooth length is used.
    """

    def __init__(self, kernel, image_shape):
        self.shape = tuple(image_shape)
        self.offsets = tuple((k - 1) // 2 for k in kernel.shape)
        self.lengths = tuple(next_fast_length(n + k - 1 - (k - 1) // 2)
                             for n, k in zip(self.shape, kernel.shape))
        self.spectrum = unnormalized_fft(kernel, self.lengths)
        self.buffer = np.zeros(self.lengths, dtype=kernel.dtype)  # x, zero-padded
        self.window = tuple(slice(o, o + n) for o, n in zip(self.offsets, self.shape))
        self.inside = tuple(slice(0, n) for n in self.shape)

    def __call__(self, x):
        self.buffer[self.inside] = x
        full = apply_spectrum(self.spectrum, self.buffer)
        return full[self.window].astype(x.dtype, copy=False)


def richardson_lucy(image, psf, num_iter=50, clip=True, filter_epsilon=None):
    r"""Richardson-Lucy deconvolution, like ``skimage.restoration.richardson_lucy``.

    Starting from 0.5 everywhere, each iteration applies the multiplicative update

    .. math:: u \leftarrow u \cdot \left( \frac{y}{u * h + 10^{-12}} \star h \right)

    (``*`` convolution, ``\star`` correlation, i.e. convolution with the flipped PSF),
    both with zero boundaries in ``scipy.signal.convolve``'s ``mode='same'``. It is the
    EM algorithm for the maximum-likelihood image under Poisson noise. The PSF is used
    as given (normalize it to sum 1 to conserve flux).

    Parameters
    ----------
    image : ndarray of shape (N1, ..., Nd), float32 or float64
        The blurred, noisy image (non-negative for the method to make sense).
    psf : ndarray of shape (k1, ..., kd), float, ``ki <= Ni``
    num_iter : int >= 1
        Number of iterations; fewer iterations regularize more.
    clip : bool
        Clamp the result to [-1, 1].
    filter_epsilon : float >= 0, optional
        Where the re-blurred estimate is below it, the ratio is set to 0 instead of
        divided. None or 0: no filtering (scikit-image tests its truthiness).

    Returns
    -------
    ndarray of ``image``'s shape and dtype

    Notes
    -----
    For an even PSF size ``k``, the back-projection ``convolve(ratio, flip(psf),
    'same')`` is shifted by one pixel from the adjoint of ``convolve(., psf, 'same')``
    (whose window would start at ``k // 2``, not ``(k - 1) // 2``). scikit-image does
    this, so this function does too; the iteration is then no longer EM and can
    diverge. Prefer odd PSF sizes.

    The convolutions are FFT-based with the PSF's spectrum computed once (two real
    FFTs per convolution instead of scipy's three); they agree with
    ``scipy.signal.convolve`` to rounding.
    """
    _check_image_and_psf("richardson_lucy", image, psf)
    num_iter = check_int("richardson_lucy", "num_iter", num_iter, minimum=1)
    if filter_epsilon is not None:
        filter_epsilon = check_real("richardson_lucy", "filter_epsilon", filter_epsilon,
                                    minimum=0.0)
    image = constant_of(image, "richardson_lucy", "image")
    psf = constant_of(psf, "richardson_lucy", "psf").astype(image.dtype, copy=False)
    blur_with_psf = _SameConvolution(psf, image.shape)
    correlate_with_psf = _SameConvolution(np.flip(psf), image.shape)
    estimate = np.full(image.shape, 0.5, dtype=image.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(num_iter):
            reblurred = blur_with_psf(estimate) + image.dtype.type(RL_GUARD)
            ratio = image / reblurred
            if filter_epsilon:
                ratio[reblurred < filter_epsilon] = 0
            estimate *= correlate_with_psf(ratio)
    if clip:
        np.clip(estimate, -1, 1, out=estimate)
    return estimate


# --- the forward model: blur and noise ------------------------------------------------

def blur(image, psf, boundary="circular"):
    """Blur ``image`` with ``psf``: the forward model the deconvolutions invert.

    Parameters
    ----------
    image : ndarray of shape (N1, ..., Nd), float32 or float64
    psf : ndarray of shape (k1, ..., kd), float, ``ki <= Ni``
    boundary : {'circular', 'zero'}
        'circular': the image wraps around and the PSF is centred at ``floor(k / 2)``,
        the model :func:`wiener` and :func:`inverse_filter` assume (differentiable).
        'zero': zeros outside the image, ``scipy.signal.convolve(image, psf, 'same')``,
        the model :func:`richardson_lucy` assumes.

    Returns
    -------
    ndarray of ``image``'s shape and dtype
    """
    _check_image_and_psf("blur", image, psf)
    if boundary not in ("circular", "zero"):
        raise ValueError(f"blur: boundary must be 'circular' or 'zero', got {boundary!r}")
    psf = constant_of(psf, "blur", "psf").astype(image.dtype, copy=False)
    if boundary == "circular":
        spectrum = transfer_function(psf, image.shape).astype(
            np.result_type(image.dtype, np.complex64), copy=False)
        return _CircularFilter.apply(image, spectrum)
    if isinstance(image, Traced):
        raise TypeError("blur: gradients are available with boundary='circular' only")
    return _SameConvolution(psf, image.shape)(image)


def add_gaussian_noise(image, sigma, rng):
    """``image + sigma * N(0, 1)`` noise, drawn from ``rng``, in ``image``'s dtype.

    Parameters
    ----------
    image : ndarray, float32 or float64
    sigma : float >= 0
        Standard deviation of the noise.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of ``image``'s shape and dtype
    """
    check_float_array("add_gaussian_noise", "image", image)
    sigma = check_real("add_gaussian_noise", "sigma", sigma, minimum=0.0)
    _check_generator("add_gaussian_noise", rng)
    noise = rng.standard_normal(image.shape) * sigma
    return (image + noise).astype(image.dtype, copy=False)


def add_poisson_noise(image, peak, rng):
    """Photon-counting noise: ``Poisson(peak * image) / peak``, drawn from ``rng``.

    ``image`` holds intensities in [0, 1]; ``peak`` is the expected photon count of a
    pixel of value 1: the larger, the less noise (relative noise ``1 / sqrt(peak x)``).

    Parameters
    ----------
    image : ndarray, float32 or float64, non-negative
    peak : float > 0, finite
        ``peak * image`` must stay at most ``POISSON_MAX_MEAN`` (about 9.22e18), the
        largest mean NumPy's Poisson sampler accepts.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of ``image``'s shape and dtype
    """
    check_float_array("add_poisson_noise", "image", image)
    peak = check_real("add_poisson_noise", "peak", peak, minimum=0.0, inclusive=False,
                      finite=True)
    _check_generator("add_poisson_noise", rng)
    if image.size and not np.min(image) >= 0:
        raise ValueError(f"add_poisson_noise: image must be non-negative (it holds "
                         f"intensities), got a minimum of {np.min(image)}")
    with np.errstate(over="ignore"):  # an overflow to inf is refused just below
        mean = image.astype(np.float64) * peak
    if mean.size and not np.max(mean) <= POISSON_MAX_MEAN:
        raise ValueError(f"add_poisson_noise: peak * image must be at most "
                         f"{POISSON_MAX_MEAN:.4g} (the largest mean NumPy's Poisson "
                         f"sampler accepts), got peak={peak:g} and a largest pixel of "
                         f"{np.max(image):g}")
    return (rng.poisson(mean) / peak).astype(image.dtype)


def psnr(reference, image, data_range=None):
    """Peak signal-to-noise ratio in dB, like ``skimage.metrics.peak_signal_noise_ratio``.

    ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    reference : ndarray, float32 or float64
        The ground truth.
    image : ndarray of ``reference``'s shape, float32 or float64
    data_range : float > 0, optional
        The span of possible values. By default scikit-image's rule for float images:
        1 if ``reference`` lies in [0, 1], 2 if it lies in [-1, 1] with negative values;
        any other ``reference`` needs an explicit ``data_range``.

    Returns
    -------
    float
        ``inf`` when the images are equal.
    """
    check_float_array("psnr", "reference", reference)
    check_float_array("psnr", "image", image)
    if reference.shape != image.shape:
        raise ValueError(f"psnr: image must have reference's shape {reference.shape}, "
                         f"got {image.shape}")
    if data_range is None:
        low, high = float(np.min(reference)), float(np.max(reference))
        if low < -1 or high > 1:
            raise ValueError(f"psnr: reference has values in [{low:g}, {high:g}], outside "
                             f"[-1, 1]: pass data_range explicitly")
        data_range = 1.0 if low >= 0 else 2.0
    data_range = check_real("psnr", "data_range", data_range, minimum=0.0, inclusive=False)
    difference = np.asarray(reference, np.float64) - np.asarray(image, np.float64)
    mse = np.mean(difference ** 2)
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(data_range ** 2 / mse))


# --- point spread functions -----------------------------------------------------------

def gaussian_psf(size, sigma, dtype=np.float64):
    """A Gaussian PSF sampled on a ``size`` grid around its centre, summing to 1.

    Parameters
    ----------
    size : int or (int, int)
        Grid shape (kH, kW); the centre is at ``(k - 1) / 2``.
    sigma : float > 0
        Standard deviation in pixels.
    dtype : float32 or float64

    Returns
    -------
    ndarray of shape (kH, kW)
    """
    height, width = check_pair("gaussian_psf", "size", size, minimum=1)
    sigma = check_real("gaussian_psf", "sigma", sigma, minimum=0.0, inclusive=False)
    dtype = check_float_dtype("gaussian_psf", dtype)
    rows = np.arange(height) - (height - 1) / 2
    cols = np.arange(width) - (width - 1) / 2
    psf = np.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * sigma ** 2))
    return (psf / psf.sum()).astype(dtype)


def motion_psf(length, angle=0.0, size=None, dtype=np.float64):
    """Linear motion blur: a segment of ``length`` pixels through the centre, summing to 1.

    The segment is cut into many equal pieces and each piece's share goes to the pixel
    nearest its midpoint: each pixel gets the length of segment that falls inside it.
    A horizontal segment of odd integer length ``L``, centred on the centre pixel,
    covers ``L`` whole pixels: ``L`` weights ``1 / L``. One of even length ``L`` ends
    in the middle of a pixel: it covers ``L - 1`` whole pixels and half of the two
    pixels at its ends, ``L + 1`` pixels in all, weights ``1 / L`` inside and
    ``1 / (2 L)`` at the ends (a run of ``L`` whole pixels would have no centre
    pixel). These are the weights of MATLAB's ``fspecial('motion', L, 0)``.

    Parameters
    ----------
    length : float >= 1, finite
        Length of the motion in pixels.
    angle : float, finite
        Direction in degrees, counter-clockwise from the +x (column) axis.
    size : int, optional
        Side of the square grid; by default the smallest odd size holding the segment.
    dtype : float32 or float64

    Returns
    -------
    ndarray of shape (size, size)

    Examples
    --------
    >>> motion_psf(3)[1]
    array([0.33333333, 0.33333333, 0.33333333])
    >>> motion_psf(4)[2]
    array([0.125, 0.25 , 0.25 , 0.25 , 0.125])
    """
    length = check_real("motion_psf", "length", length, minimum=1.0, finite=True)
    angle = check_real("motion_psf", "angle", angle, finite=True)
    dtype = check_float_dtype("motion_psf", dtype)
    if size is None:
        size = int(np.ceil(length)) // 2 * 2 + 1
    size = check_int("motion_psf", "size", size, minimum=1)
    pieces = 16 * int(np.ceil(length))
    t = (np.arange(pieces) + 0.5) / pieces * length - length / 2
    theta = np.deg2rad(angle)
    centre = (size - 1) / 2
    rows = np.round(centre - t * np.sin(theta)).astype(int)
    cols = np.round(centre + t * np.cos(theta)).astype(int)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    psf = np.zeros((size, size))
    np.add.at(psf, (rows[inside], cols[inside]), 1.0)
    if psf.sum() == 0:
        raise ValueError(f"motion_psf: size {size} is too small for a motion of length "
                         f"{length}")
    return (psf / psf.sum()).astype(dtype)


# --- 1-D deconvolution ----------------------------------------------------------------

def deconvolve(signal, divisor):
    """Deconvolve ``divisor`` out of ``signal`` by polynomial long division.

    Like ``scipy.signal.deconvolve``: returns ``quotient, remainder`` with
    ``signal = numpy.convolve(divisor, quotient) + remainder``. Read the arrays as
    polynomial coefficients, highest power first: convolving is multiplying polynomials,
    so deconvolving is dividing them.

    Parameters
    ----------
    signal : array_like, 1-D (a scalar counts as length 1), non-empty
    divisor : array_like, 1-D, non-empty, ``divisor[0] != 0``

    Returns
    -------
    quotient : ndarray of shape (len(signal) - len(divisor) + 1,), float64 (complex
        for complex input); empty when the divisor is longer than the signal
    remainder : ndarray of ``signal``'s length
        ``signal - convolve(divisor, quotient)``; ``signal`` itself when the divisor
        is longer.

    Notes
    -----
    scipy returns the list ``[]`` as quotient when the divisor is longer; this returns
    an empty float64 array. scipy also accepts ``divisor[0] == 0`` in that case only;
    this always refuses it.

    Examples
    --------
    >>> import fancydl
    >>> q, r = fancydl.deconvolve([1.0, 5.0, 6.0], [1.0, 2.0])   # (x+2)(x+3) / (x+2)
    >>> q, r
    (array([1., 3.]), array([0., 0., 0.]))
    """
    numerator = _as_polynomial("signal", signal)
    denominator = _as_polynomial("divisor", divisor)
    if denominator[0] == 0:
        raise ValueError("deconvolve: divisor[0] (the leading coefficient) must be nonzero, "
                         f"got divisor = {denominator}")
    n, d = numerator.size, denominator.size
    if d > n:
        return np.zeros(0), numerator
    dtype = np.result_type(numerator, denominator, np.float64)
    working = numerator.astype(dtype)
    quotient = np.zeros(n - d + 1, dtype=dtype)
    for k in range(quotient.size):  # schoolbook division: one quotient term per step
        quotient[k] = working[k] / denominator[0]
        working[k:k + d] -= quotient[k] * denominator
    return quotient, numerator - np.convolve(denominator, quotient)


def _as_polynomial(name, value):
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        value = [value]
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"deconvolve: {name} must be a 1-D array of numbers, got "
                        f"{type(value).__name__}") from error
    if array.dtype.kind not in "iufc":
        raise TypeError(f"deconvolve: {name} must hold numbers, got dtype {array.dtype}")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"deconvolve: {name} must be a non-empty 1-D array, got shape "
                         f"{array.shape}")
    return array
