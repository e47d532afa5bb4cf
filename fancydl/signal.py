"""Convolution as signal processing: ``convolve2d``, ``correlate2d``, ``fftconvolve``.

These are the *mathematical* convolution and correlation of the book's chapter
"Convolution in CNNs and in mathematics", with ``scipy.signal``'s names, arguments and
semantics (modes ``'full'``, ``'same'``, ``'valid'``; boundaries ``'fill'``, ``'wrap'``,
``'symm'``), on NumPy arrays. ``convolve2d`` and ``correlate2d`` are also
differentiable through :func:`fancydl.vjp` (real inputs, zero padding): their
gradients are two more correlations. The CNN layer is :func:`fancydl.conv2d`.

The direct method is one loop over the offsets of the smaller array: for each offset,
the samples it meets at every output position form one slice of the padded signal,
and the output accumulates ``kernel value * slice`` (no loop over pixels). The FFT
method uses the convolution theorem, ``conv(a, b) = ifft(fft(a) fft(b))``, with both
arrays zero-padded to (a fast length at least) the size of the full output, so that
the circular convolution the FFT computes equals the linear one.

Which part of the full output each mode returns (per axis, ``n1``/``n2`` the lengths
of ``in1``/``in2``; the full output has ``n1 + n2 - 1`` samples):

* ``'full'``: everything, starting at 0;
* ``'valid'``: ``|n1 - n2| + 1`` samples from ``min(n1, n2) - 1``, those that never
  touch the padding (one input must be at least as large as the other on every axis);
* ``'same'``: ``n1`` samples from ``(n2 - 1) // 2``, except ``correlate2d``, which
  starts at ``n2 // 2``: for even ``n2`` scipy's 2-D correlation is centred one sample
  later than its N-d ``correlate`` (a trap this module reproduces on purpose).
"""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from .autodiff import Function, is_traced, value_of

__all__ = ["convolve2d", "correlate2d", "fftconvolve", "convolve", "correlate"]

MODES = ("full", "same", "valid")
#: scipy's boundary names and their aliases.
BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
              "symm": "symm", "symmetric": "symm"}
METHODS = ("auto", "direct", "fft")
#: Beyond this many kernel samples, ``method='auto'`` switches to the FFT.
AUTO_FFT_THRESHOLD = 64


# --- argument checks ------------------------------------------------------------------

def _as_signal(op, name, x, ndims):
    """``x`` as an array of a supported dtype and one of the ranks ``ndims``."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{op}: {name} must be an array, got {type(x).__name__} {x!r}")
    try:
        x = np.asarray(x)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{op}: {name} must be an array, got {type(x).__name__}") from error
    supported = (np.issubdtype(x.dtype, np.integer) or
                 x.dtype in (np.float32, np.float64, np.complex64, np.complex128))
    if not supported:
        raise TypeError(f"{op}: {name} must have an integer, float32, float64, complex64 "
                        f"or complex128 dtype, got {x.dtype}")
    if x.ndim not in ndims:
        expected = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{op}: {name} must have {expected} dimensions, got shape "
                         f"{x.shape} ({x.ndim} dimensions)")
    return x


def _check_pair(op, in1, in2, ndims):
    in1 = _as_signal(op, "in1", in1, ndims)
    in2 = _as_signal(op, "in2", in2, ndims)
    if in1.ndim != in2.ndim:
        raise ValueError(f"{op}: in1 and in2 must have the same number of dimensions, "
                         f"got shapes {in1.shape} and {in2.shape}")
    return in1, in2


def _check_mode(op, mode, shape1, shape2, skip_unit_axes=False):
    """Check ``mode``; in 'valid' mode one shape must dominate the other.

    ``skip_unit_axes``: like scipy's ``fftconvolve``, ignore axes where either input has
    length 1 (convolving with one sample is a multiplication, valid in any order).
    """
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of 'full', 'same', 'valid', got {mode!r}")
    if mode == "valid":
        pairs = [(a, b) for a, b in zip(shape1, shape2)
                 if not (skip_unit_axes and 1 in (a, b))]
        in1_larger = all(a >= b for a, b in pairs)
        in2_larger = all(b >= a for a, b in pairs)
        if not (in1_larger or in2_larger):
            raise ValueError(f"{op}: in 'valid' mode one input must be at least as large as "
                             f"the other in every dimension, got shapes {shape1} and "
                             f"{shape2}")
    return mode


def _check_boundary(op, boundary, fillvalue, dtype, empty):
    if boundary not in BOUNDARIES:
        listed = ", ".join(repr(b) for b in BOUNDARIES)
        raise ValueError(f"{op}: boundary must be one of {listed}, got {boundary!r}")
    boundary = BOUNDARIES[boundary]
    if isinstance(fillvalue, bool) or not isinstance(fillvalue, numbers.Number):
        raise TypeError(f"{op}: fillvalue must be a number, got "
                        f"{type(fillvalue).__name__} {fillvalue!r}")
    if not np.issubdtype(dtype, np.complexfloating) and complex(fillvalue).imag != 0:
        raise ValueError(f"{op}: fillvalue must be real for {dtype} inputs, got "
                         f"{fillvalue!r}")
    if empty and boundary != "fill":
        raise ValueError(f"{op}: boundary={boundary!r} needs non-empty inputs (there is "
                         f"nothing to wrap or mirror)")
    if np.issubdtype(dtype, np.complexfloating):
        return boundary, complex(fillvalue)
    return boundary, complex(fillvalue).real if isinstance(fillvalue, complex) else fillvalue


# --- which part of the full output a mode returns -------------------------------------

def _region(mode, n1, n2, same_start):
    """(start, length) of the returned samples within the full output, on one axis."""
    if mode == "full":
        return 0, n1 + n2 - 1
    if mode == "valid":
        return min(n1, n2) - 1, abs(n1 - n2) + 1
    return same_start(n2), n1


def _centred_before_even(n2):
    return (n2 - 1) // 2


def _centred_after_even(n2):
    return n2 // 2


# --- the direct method ----------------------------------------------------------------

def _pad(a, pads, boundary, fillvalue):
    """Pad ``a`` on every axis by ``pads[k] = (before, after)`` with scipy's boundary."""
    if not any(before or after for before, after in pads):
        return a
    if boundary == "fill":
        return np.pad(a, pads, mode="constant", constant_values=fillvalue)
    return np.pad(a, pads, mode="wrap" if boundary == "wrap" else "symmetric")


def _direct_convolution(a, b, mode, same_start, boundary="fill", fillvalue=0):
    """The ``mode`` part of the full linear convolution of ``a`` with ``b`` (same rank).

    Output sample ``m`` of the full convolution is ``sum_t a[m - t] b[t]``; with ``a``
    padded by ``n2 - 1`` samples it is ``sum_t a_pad[m + t] b_flipped[t]``: a loop over
    the offsets ``t`` of ``b``, each adding one slice of ``a_pad``.
    """
    dtype = np.result_type(a.dtype, b.dtype)
    regions = [_region(mode, n1, n2, same_start) for n1, n2 in zip(a.shape, b.shape)]
    out_shape = tuple(max(length, 0) for _, length in regions)
    if a.size == 0 or b.size == 0 or 0 in out_shape:
        return np.zeros(out_shape, dtype)
    padding_nan = None
    if mode == "valid" and any(n2 > n1 for n1, n2 in zip(a.shape, b.shape)):
        a, b = b, a  # as scipy does: 'valid' never reads the padding
    elif boundary == "fill" and fillvalue == 0 and b.size > a.size and np.isfinite(a).all():
        # Loop over the smaller array's offsets instead: convolution commutes, and zero
        # padding is symmetric in a and b, except for scipy's 0 * inf = nan where a
        # non-finite sample of b meets a's padding (a is finite: nothing else differs).
        padding_nan = _padding_meets_nonfinite(b, a.shape, regions)
        a, b = b, a
    pads = [(max(0, n2 - 1 - start), max(0, start + length - n1))
            for (start, length), n1, n2 in zip(regions, a.shape, b.shape)]
    a_pad = _pad(a.astype(dtype, copy=False), pads, boundary, fillvalue)
    bases = [start - (n2 - 1) + before
             for (start, _), n2, (before, _) in zip(regions, b.shape, pads)]
    b_flipped = b[(slice(None, None, -1),) * b.ndim].astype(dtype, copy=False)
    out = np.zeros(out_shape, dtype)
    term = np.empty(out_shape, dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf and NaN propagate silently
        for offset in np.ndindex(*b.shape):
            window = tuple(slice(base + t, base + t + n) for base, t, n in
                           zip(bases, offset, out_shape))
            np.multiply(a_pad[window], b_flipped[offset], out=term)
            out += term
    if padding_nan is not None:
        out[padding_nan] = np.nan
    return out


def _padding_meets_nonfinite(kernel, signal_shape, regions):
    """Where the direct sum multiplies the signal's zero padding by a non-finite sample
    of ``kernel`` (``0 * inf = nan``): a boolean mask of the output, or None.

    Output sample ``m`` (full-output coordinates) meets kernel sample ``t`` inside the
    signal when ``0 <= m - t < n`` on every axis. Counting the non-finite ``t`` inside
    that box with a summed-area table, ``m`` meets one in the padding exactly when the
    count falls short of the total.
    """
    bad = ~np.isfinite(kernel)
    total = np.count_nonzero(bad)
    if total == 0:
        return None
    table = np.zeros([n + 1 for n in bad.shape], np.int64)
    table[(slice(1, None),) * bad.ndim] = bad
    for axis in range(bad.ndim):
        table = table.cumsum(axis=axis)
    bounds = [(np.clip(m - n + 1, 0, k), np.clip(m + 1, 0, k))
              for m, n, k in ((np.arange(start, start + length), n, k)
                              for (start, length), n, k in zip(regions, signal_shape,
                                                                kernel.shape))]
    inside = np.zeros([len(low) for low, _ in bounds], np.int64)
    for corner in itertools.product((0, 1), repeat=bad.ndim):
        index = np.ix_(*[bound[c] for bound, c in zip(bounds, corner)])
        inside += (-1) ** (bad.ndim - sum(corner)) * table[index]
    return inside < total


class _Convolve2d(Function):
    """``convolve2d`` (or, with ``correlate``, ``correlate2d``) of real arrays with zero
    padding, differentiable in both inputs.

    With ``F`` the full convolution, ``F[m] = sum_t in1[m - t] k[t]``, and ``G`` the
    upstream gradient put back in its place within the full output (zeros elsewhere):
    ``d/d in1[p] = sum_t G[p + t] k[t]`` and ``d/d k[t] = sum_p G[p + t] in1[p]``,
    two 'valid' correlations with ``G``.
    """

    @staticmethod
    def forward(ctx, in1, in2, mode, same_start, correlate):
        kernel = in2[::-1, ::-1] if correlate else in2
        ctx.save_for_backward(in1, kernel)
        ctx.mode, ctx.same_start, ctx.correlate = mode, same_start, correlate
        return _direct_convolution(in1, kernel, mode, same_start)

    @staticmethod
    def backward(ctx, grad):
        in1, kernel = ctx.saved
        full = np.zeros([n1 + n2 - 1 for n1, n2 in zip(in1.shape, kernel.shape)], grad.dtype)
        regions = [_region(ctx.mode, n1, n2, ctx.same_start)
                   for n1, n2 in zip(in1.shape, kernel.shape)]
        full[tuple(slice(start, start + length) for start, length in regions)] = grad
        g_in1 = g_in2 = None
        if ctx.needs_input_grad[0]:
            g_in1 = _direct_convolution(full, kernel[::-1, ::-1], "valid",
                                        _centred_before_even).astype(in1.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            g_kernel = _direct_convolution(full, in1[::-1, ::-1], "valid",
                                           _centred_before_even)
            g_kernel = g_kernel.astype(kernel.dtype, copy=False)
            g_in2 = g_kernel[::-1, ::-1] if ctx.correlate else g_kernel
        return g_in1, g_in2, None, None, None


def _differentiable(op, in1, in2, boundary, fillvalue):
    """True when an input is traced by :func:`fancydl.vjp` (checking what that needs)."""
    if not (is_traced(in1) or is_traced(in2)):
        return False
    if boundary != "fill" or fillvalue != 0:
        raise ValueError(f"{op}: gradients are implemented for boundary='fill' with "
                         f"fillvalue=0 only, got boundary={boundary!r}, "
                         f"fillvalue={fillvalue!r}")
    return True


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """2-D convolution of ``in1`` with ``in2`` (the kernel is flipped), like scipy's.

    ``out[m, n] = sum_{i, j} in1[m - i, n - j] in2[i, j]`` for the part of the full
    output that ``mode`` selects; ``in1`` is extended beyond its border as ``boundary``
    says.

    Parameters
    ----------
    in1 : array_like of shape (H1, W1)
        Integer, float32/64 or complex64/128.
    in2 : array_like of shape (H2, W2)
    mode : {'full', 'same', 'valid'}
        'full': shape (H1 + H2 - 1, W1 + W2 - 1); 'same': shape of ``in1``, centred on
        the full output (for an even kernel the extra sample is taken from the end);
        'valid': shape (|H1 - H2| + 1, |W1 - W2| + 1), only the samples that need no
        padding (one input must be at least as large as the other on both axes).
    boundary : {'fill', 'wrap', 'symm'}
        Pad ``in1`` with ``fillvalue``, periodically, or by mirroring (the edge sample
        repeated). 'pad', 'circular' and 'symmetric' are accepted aliases.
    fillvalue : number
        The padding value for ``boundary='fill'``.

    Returns
    -------
    ndarray
        Of dtype ``numpy.result_type(in1, in2)``. Differentiable in both inputs with
        :func:`fancydl.vjp` when ``boundary='fill'`` and ``fillvalue=0``.

    Examples
    --------
    >>> import numpy as np
    >>> convolve2d(np.array([[1, 2, 3]]), np.array([[1, 10]]))
    array([[ 1, 12, 23, 30]])
    """
    a, b = _check_pair("convolve2d", value_of(in1), value_of(in2), (2,))
    mode = _check_mode("convolve2d", mode, a.shape, b.shape)
    boundary, fillvalue = _check_boundary("convolve2d", boundary, fillvalue,
                                          np.result_type(a, b), a.size == 0 or b.size == 0)
    if _differentiable("convolve2d", in1, in2, boundary, fillvalue):
        return _Convolve2d.apply(in1 if is_traced(in1) else a, in2 if is_traced(in2) else b,
                                 mode, _centred_before_even, False)
    return _direct_convolution(a, b, mode, _centred_before_even, boundary, fillvalue)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """2-D cross-correlation of ``in1`` with ``in2`` (no flip), like scipy's.

    ``out[m, n] = sum_{i, j} in1[m + i, n + j] conj(in2[i, j])`` (indices shifted so
    that the full output starts where the two arrays first overlap). It is
    ``convolve2d(in1, conj(in2[::-1, ::-1]))``, except that 'same' mode with an even
    kernel is centred one sample later; this is what a CNN layer computes
    (:func:`fancydl.conv2d`, up to that centring). In 'valid' mode with complex
    inputs and ``in2`` the larger one, scipy's ``correlate2d`` returns the complex
    conjugate of this (it swaps the inputs); this function agrees with
    ``scipy.signal.correlate`` and with its own 'full' output instead.

    Parameters
    ----------
    in1 : array_like of shape (H1, W1)
    in2 : array_like of shape (H2, W2)
    mode : {'full', 'same', 'valid'}
        Output shapes as in :func:`convolve2d`.
    boundary : {'fill', 'wrap', 'symm'}
    fillvalue : number

    Returns
    -------
    ndarray
        Of dtype ``numpy.result_type(in1, in2)``. Differentiable in both inputs with
        :func:`fancydl.vjp` when ``boundary='fill'`` and ``fillvalue=0``.

    Examples
    --------
    >>> import numpy as np
    >>> correlate2d(np.array([[1, 2, 3]]), np.array([[1, 10]]), mode="valid")
    array([[21, 32]])
    """
    a, b = _check_pair("correlate2d", value_of(in1), value_of(in2), (2,))
    mode = _check_mode("correlate2d", mode, a.shape, b.shape)
    boundary, fillvalue = _check_boundary("correlate2d", boundary, fillvalue,
                                          np.result_type(a, b), a.size == 0 or b.size == 0)
    if _differentiable("correlate2d", in1, in2, boundary, fillvalue):
        return _Convolve2d.apply(in1 if is_traced(in1) else a, in2 if is_traced(in2) else b,
                                 mode, _centred_after_even, True)
    kernel = np.conj(b[::-1, ::-1]) if np.iscomplexobj(b) else b[::-1, ::-1]
    return _direct_convolution(a, kernel, mode, _centred_after_even, boundary,
                               fillvalue)


# --- the FFT method -------------------------------------------------------------------

def next_fast_length(n):
    """Smallest ``2^a 3^b 5^c >= n``: lengths the FFT handles fastest."""
    if n <= 6:
        return max(n, 1)
    best = 2 ** int(np.ceil(np.log2(n)))
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


# NumPy 2.4's float32 transforms ran about 25x slower when their scale factor is exactly
# 1 (the default forward transform, or the inverse with norm="forward") than with any
# other factor: 11.5 ms against 0.5 ms for rfftn of a 512x512 image. Every Fourier
# transform of fancydl (here and in fancydl.restoration) goes through these two
# functions, which never ask NumPy for a factor of 1.

def unnormalized_fft(x, shape, real=True):
    """``rfftn`` (``fftn`` unless ``real``) of ``x`` over all its axes, zero-padded to
    ``shape``, unnormalized (a kernel's transfer function), computed as ``sqrt(n)``
    times the ``norm='ortho'`` transform (``n`` the number of samples of ``shape``)."""
    transform = np.fft.rfftn if real else np.fft.fftn
    spectrum = transform(x, s=tuple(shape), axes=tuple(range(x.ndim)), norm="ortho")
    spectrum *= math.sqrt(math.prod(shape))  # a Python float keeps the dtype
    return spectrum


def apply_spectrum(spectrum, x, shape=None, real=True):
    """``ifftn(spectrum * fftn(x))`` over all axes, ``x`` zero-padded to ``shape``
    (default: its own): the circular convolution of ``x`` with the kernel whose
    :func:`unnormalized_fft` is ``spectrum`` (a half spectrum when ``real``). The
    forward transform is 'ortho', rescaled by ``sqrt(n)`` on the product; the inverse
    is the default one (``1 / n``), the fastest of the three.
    """
    shape = x.shape if shape is None else tuple(shape)
    axes = tuple(range(x.ndim))
    forward, inverse = (np.fft.rfftn, np.fft.irfftn) if real else (np.fft.fftn,
                                                                   np.fft.ifftn)
    # (spectrum * sqrt(n)) * ortho transform = spectrum * fftn(x); measured faster than
    # scaling the product in place.
    product = (spectrum * math.sqrt(math.prod(shape))) * forward(x, s=shape, axes=axes,
                                                                 norm="ortho")
    return inverse(product, s=shape, axes=axes)


def _fft_dtype(in1, in2):
    dtype = np.result_type(in1.dtype, in2.dtype)
    return np.dtype(np.float64) if np.issubdtype(dtype, np.integer) else dtype


def fftconvolve(in1, in2, mode="full"):
    """N-D convolution through the FFT (the convolution theorem), like scipy's.

    Both arrays are zero-padded to a fast length at least ``n1 + n2 - 1`` on every
    axis, so the circular convolution ``ifft(fft(in1) fft(in2))`` equals the linear
    one; real inputs use the real FFT (``rfftn``). The result matches
    :func:`convolve2d` / :func:`convolve` up to rounding (about ``1e-15`` relative to
    the largest value in float64, ``1e-6`` in float32).

    Parameters
    ----------
    in1 : array_like of any shape (1-D and 2-D are the cases the book uses)
    in2 : array_like with ``in1``'s number of dimensions
    mode : {'full', 'same', 'valid'}
        As in :func:`convolve2d`; 'same' is centred with the extra sample at the end.

    Returns
    -------
    ndarray
        Float (float64 for integer inputs) or complex; float32 stays float32. Like
        scipy, an empty input gives an empty 1-D float64 array, and when every axis
        has a length-1 input (0-d inputs included) the result is the exact broadcast
        product in the inputs' dtype.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(fftconvolve(np.array([1.0, 2.0, 3.0]), np.array([1.0, 10.0])), 10)
    array([ 1., 12., 23., 30.])
    """
    in1 = _as_signal("fftconvolve", "in1", in1, range(0, 33))
    in2 = _as_signal("fftconvolve", "in2", in2, range(0, 33))
    if in1.ndim != in2.ndim:
        raise ValueError(f"fftconvolve: in1 and in2 must have the same number of "
                         f"dimensions, got shapes {in1.shape} and {in2.shape}")
    mode = _check_mode("fftconvolve", mode, in1.shape, in2.shape, skip_unit_axes=True)
    if in1.size == 0 or in2.size == 0:
        return np.array([], np.float64)
    regions = [_region(mode, n1, n2, _centred_before_even)
               for n1, n2 in zip(in1.shape, in2.shape)]
    window = tuple(slice(start, start + length) for start, length in regions)
    if all(1 in pair for pair in zip(in1.shape, in2.shape)):
        # One sample per axis on one side: the convolution is a broadcast product
        # (exact, and in the inputs' own dtype, as in scipy).
        return (in1 * in2)[window]
    dtype = _fft_dtype(in1, in2)
    full_shape = [n1 + n2 - 1 for n1, n2 in zip(in1.shape, in2.shape)]
    fast_shape = [next_fast_length(n) for n in full_shape]
    real = not np.issubdtype(dtype, np.complexfloating)
    kernel_spectrum = unnormalized_fft(in2.astype(dtype), fast_shape, real)
    full = apply_spectrum(kernel_spectrum, in1.astype(dtype), fast_shape, real)
    return np.ascontiguousarray(full[window]).astype(dtype, copy=False)


# --- scipy.signal.convolve / correlate for 1-D and 2-D ---------------------------------

def _choose_method(op, method, in1, in2):
    if method not in METHODS:
        raise ValueError(f"{op}: method must be one of 'auto', 'direct', 'fft', "
                         f"got {method!r}")
    if method != "auto":
        return method
    exact = np.issubdtype(np.result_type(in1, in2), np.integer)
    return "fft" if not exact and min(in1.size, in2.size) > AUTO_FFT_THRESHOLD else "direct"


def convolve(in1, in2, mode="full", method="auto"):
    """Convolution of two 1-D or two 2-D arrays, like ``scipy.signal.convolve``.

    Parameters
    ----------
    in1 : array_like of shape (N1,) or (H1, W1)
    in2 : array_like with ``in1``'s number of dimensions
    mode : {'full', 'same', 'valid'}
        As in :func:`convolve2d`.
    method : {'auto', 'direct', 'fft'}
        'direct' loops over the offsets of the smaller array; 'fft' calls
        :func:`fftconvolve`; 'auto' uses the FFT for float inputs whose smaller array
        has more than ``AUTO_FFT_THRESHOLD`` samples, and always 'direct' for
        integers (exact), a simpler rule than scipy's timing model.

    Returns
    -------
    ndarray
        'direct': dtype ``result_type(in1, in2)``; 'fft': as :func:`fftconvolve`.

    Examples
    --------
    >>> import numpy as np
    >>> convolve(np.array([1, 2, 3]), np.array([0, 1, 0.5]))
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    in1, in2 = _check_pair("convolve", in1, in2, (1, 2))
    mode = _check_mode("convolve", mode, in1.shape, in2.shape)
    if _choose_method("convolve", method, in1, in2) == "fft":
        return fftconvolve(in1, in2, mode)
    return _direct_convolution(in1, in2, mode, _centred_before_even)


def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlation of two 1-D or two 2-D arrays, like ``scipy.signal.correlate``.

    ``convolve(in1, conj(flip(in2)), mode)``: unlike :func:`correlate2d`, 'same' with
    an even kernel keeps scipy's N-d centring (extra sample at the end of the full
    correlation's centre).

    Parameters
    ----------
    in1 : array_like of shape (N1,) or (H1, W1)
    in2 : array_like with ``in1``'s number of dimensions
    mode : {'full', 'same', 'valid'}
    method : {'auto', 'direct', 'fft'}

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> correlate(np.array([1, 2, 3]), np.array([1, 10]))
    array([10, 21, 32,  3])
    """
    in1, in2 = _check_pair("correlate", in1, in2, (1, 2))
    mode = _check_mode("correlate", mode, in1.shape, in2.shape)
    flipped = in2[(slice(None, None, -1),) * in2.ndim]
    kernel = np.conj(flipped) if np.iscomplexobj(in2) else flipped
    if _choose_method("correlate", method, in1, kernel) == "fft":
        return fftconvolve(in1, kernel, mode)
    return _direct_convolution(in1, kernel, mode, _centred_before_even)
