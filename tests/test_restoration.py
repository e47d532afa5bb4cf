"""Tests of fancydl.restoration: Wiener, Richardson-Lucy, the inverse filter, the blur
and noise models, PSNR, PSFs and 1-D deconvolution, against scikit-image and scipy."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fancydl

TOL = {np.float64: 1e-10, np.float32: 2e-4}


def relative_error(got, expected):
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    return float(np.max(np.abs(np.asarray(got, np.complex128) - expected))) / scale


def skimage_restoration():
    return pytest.importorskip("skimage.restoration",
                               reason="scikit-image is needed for the cross-checks")


@st.composite
def image_and_psf(draw, max_side=20, ndim=2):
    """A random image and a random positive PSF no larger than it (odd or even sizes)."""
    shape = tuple(draw(st.integers(4, max_side)) for _ in range(ndim))
    psf_shape = tuple(draw(st.integers(1, min(7, n))) for n in shape)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return shape, psf_shape, np.random.default_rng(seed), dtype


def blurred_scene(shape, psf, rng, dtype, noise=0.01):
    """A positive scene blurred by ``psf`` (zero boundary) plus a little noise, in
    [0, 1]: the input Richardson-Lucy is meant for."""
    scene = 0.1 + rng.random(shape)
    image = fancydl.blur(scene, psf.astype(np.float64) / psf.sum(), boundary="zero")
    image = np.abs(image + noise * rng.standard_normal(shape))
    return (image / image.max()).astype(dtype)


# --- Wiener -------------------------------------------------------------------------

@given(image_and_psf(), st.sampled_from([0.0, 1e-3, 0.05, 1.0, 10.0]), st.booleans())
def test_wiener_matches_skimage(case, balance, clip):
    restoration = skimage_restoration()
    shape, psf_shape, rng, dtype = case
    # scikit-image takes a *real* PSF of the half-spectrum's shape as a transfer
    # function (undocumented); fancydl always takes a real PSF as an impulse response.
    assume(psf_shape != shape[:-1] + (shape[-1] // 2 + 1,))
    image = (2 * rng.random(shape) - 0.5).astype(dtype)
    psf = rng.random(psf_shape).astype(dtype)
    got = fancydl.wiener(image, psf, balance, clip=clip)
    expected = restoration.wiener(image, psf, balance, clip=clip)
    assert got.dtype == expected.dtype == dtype
    assert got.shape == image.shape
    assert relative_error(got, expected) < TOL[dtype]


@given(image_and_psf(max_side=12, ndim=3), st.sampled_from([0.0, 0.1]))
def test_wiener_matches_skimage_in_3d_and_complex_mode(case, balance):
    restoration = skimage_restoration()
    shape, psf_shape, rng, dtype = case
    assume(psf_shape != shape[:-1] + (shape[-1] // 2 + 1,))
    image = rng.random(shape).astype(dtype)
    psf = rng.random(psf_shape).astype(dtype)
    got = fancydl.wiener(image, psf, balance, clip=False)
    assert relative_error(got, restoration.wiener(image, psf, balance, clip=False)) \
        < TOL[dtype]
    assume(psf_shape != shape)  # the same quirk for the full spectrum's shape
    got = fancydl.wiener(image, psf, balance, is_real=False)
    expected = restoration.wiener(image, psf, balance, is_real=False)
    assert np.iscomplexobj(got) and got.dtype == expected.dtype
    assert relative_error(got, expected) < TOL[dtype]


def test_wiener_with_symmetric_reg_and_transfer_function_psf_matches_skimage(rng):
    restoration = skimage_restoration()
    image = rng.random((24, 19))
    psf = fancydl.gaussian_psf(5, 1.2)  # centro-symmetric: its transfer function is real
    reg = np.array([[0.0, 1.0, 0.0], [1.0, -2.0, 1.0], [0.0, 1.0, 0.0]])
    expected = restoration.wiener(image, psf, 0.3, reg=reg, clip=False)
    assert relative_error(fancydl.wiener(image, psf, 0.3, reg=reg, clip=False),
                          expected) < 1e-10
    otf = fancydl.transfer_function(psf, image.shape)
    assert relative_error(fancydl.wiener(image, otf, 0.3, reg=reg, clip=False),
                          expected) < 1e-10
    assert relative_error(restoration.wiener(image, otf, 0.3, reg=reg, clip=False),
                          expected) < 1e-10


@given(image_and_psf(max_side=14), st.sampled_from([0.01, 0.5, 3.0]))
def test_wiener_solves_the_regularized_normal_equations(case, balance):
    """With any (even non-symmetric) reg D, the Wiener result x minimizes
    ||h * x - y||^2 + balance ||d * x||^2 (circular), so its gradient
    H^T (H x - y) + balance D^T D x vanishes. Independent of scikit-image."""
    shape, psf_shape, rng, _ = case
    image = rng.random(shape)
    psf, reg = rng.random(psf_shape), rng.standard_normal(psf_shape)
    x = fancydl.wiener(image, psf, balance, reg=reg, clip=False)

    def circular(v, kernel, adjoint=False):
        spectrum = fancydl.transfer_function(kernel, shape)
        spectrum = np.conj(spectrum) if adjoint else spectrum
        return np.fft.irfftn(spectrum * np.fft.rfftn(v), s=shape, axes=(0, 1))

    gradient = (circular(circular(x, psf) - image, psf, adjoint=True)
                + balance * circular(circular(x, reg), reg, adjoint=True))
    assert np.max(np.abs(gradient)) < 1e-9 * max(1.0, np.max(np.abs(image)))


def test_wiener_with_balance_zero_is_the_inverse_filter(rng):
    image = rng.random((16, 21))
    psf = 0.05 * rng.random((3, 3)) + np.pad([[1.0]], 1)  # |H| >= 0.55: no zero
    np.testing.assert_allclose(fancydl.wiener(image, psf, 0.0, clip=False),
                               fancydl.inverse_filter(image, psf), rtol=1e-9, atol=1e-12)


def test_wiener_gradient_is_the_adjoint_filter(rng):
    image = rng.random((9, 8))
    psf = rng.random((3, 2))
    assert fancydl.gradcheck(lambda x: fancydl.wiener(x, psf, 0.1, clip=False), image)
    # clip=True: the gradient passes only where the output was not clamped.
    scaled = 3 * image
    assert fancydl.gradcheck(lambda x: fancydl.wiener(x, psf, 0.1), scaled)


def test_wiener_gradient_float32_matches_adjoint_identity(rng):
    x = rng.random((10, 7)).astype(np.float32)
    g = rng.standard_normal((10, 7)).astype(np.float32)
    psf = rng.random((4, 3)).astype(np.float32)
    out, pullback = fancydl.vjp(lambda v: fancydl.wiener(v, psf, 0.2, clip=False), x)
    (gx,) = pullback(g)
    assert gx.dtype == np.float32
    # <A x, g> = <x, A^T g> for the linear filter A.
    np.testing.assert_allclose(np.sum(out * g, dtype=np.float64),
                               np.sum(x * gx, dtype=np.float64), rtol=1e-4)


# --- inverse filter -----------------------------------------------------------------

def test_inverse_filter_undoes_a_noiseless_circular_blur(rng):
    scene = rng.random((20, 17))
    psf = 0.4 * rng.random((4, 5)) / 20 + 0.6 * np.pad([[1.0]], ((2, 1), (2, 2)))
    blurred = fancydl.blur(scene, psf, boundary="circular")
    np.testing.assert_allclose(fancydl.inverse_filter(blurred, psf), scene, atol=1e-12)


def test_inverse_filter_threshold_drops_weak_frequencies(rng):
    image = rng.random((16, 16))
    box = np.full((4, 4), 1 / 16)  # its transfer function has exact zeros
    with np.errstate(all="raise"):
        out = fancydl.inverse_filter(image, box)
    assert np.all(np.isfinite(out))
    threshold = 0.3
    otf = fancydl.transfer_function(box, image.shape)
    kept = np.abs(otf) > threshold
    expected = np.fft.irfftn(np.where(kept, np.fft.rfftn(image) / np.where(kept, otf, 1), 0),
                             s=image.shape, axes=(0, 1))
    np.testing.assert_allclose(fancydl.inverse_filter(image, box, threshold), expected,
                               atol=1e-12)


# --- Richardson-Lucy ----------------------------------------------------------------

@given(image_and_psf(max_side=24), st.sampled_from([1, 3, 10, 30, 50]), st.booleans())
def test_richardson_lucy_matches_skimage(case, num_iter, clip):
    """Odd PSFs up to 50 iterations. With an even PSF size, scikit-image's (and so
    fancydl's) back-projection ``convolve(ratio, flip(psf), 'same')`` is shifted one
    pixel from the adjoint of the blur, the iteration is not EM any more and can
    diverge (values ~1e19 after 30 iterations on a benign image), which makes
    rounding differences grow without bound: compare even PSFs over 10 iterations."""
    restoration = skimage_restoration()
    shape, psf_shape, rng, dtype = case
    if any(k % 2 == 0 for k in psf_shape):
        num_iter = min(num_iter, 10)
    psf = (0.5 + rng.random(psf_shape)).astype(dtype)
    psf /= psf.sum()
    image = blurred_scene(shape, psf, rng, dtype)
    got = fancydl.richardson_lucy(image, psf, num_iter, clip=clip)
    expected = restoration.richardson_lucy(image, psf, num_iter, clip=clip)
    assert got.dtype == expected.dtype == dtype
    tolerance = TOL[dtype] if dtype == np.float64 else 5e-3
    assert relative_error(got, expected) < tolerance


def test_richardson_lucy_matches_skimage_where_scipy_uses_fft(rng):
    """scipy.signal.convolve picks the FFT above a size threshold: the large case."""
    restoration = skimage_restoration()
    psf = fancydl.gaussian_psf(9, 2.0)
    image = blurred_scene((160, 150), psf, rng, np.float64)
    got = fancydl.richardson_lucy(image, psf, 20, clip=False)
    expected = restoration.richardson_lucy(image, psf, 20, clip=False)
    assert relative_error(got, expected) < 1e-10


@pytest.mark.parametrize("filter_epsilon", [None, 0, 0.05])
def test_richardson_lucy_filter_epsilon_matches_skimage(rng, filter_epsilon):
    restoration = skimage_restoration()
    psf = np.ones((3, 4)) / 12
    image = blurred_scene((18, 15), psf, rng, np.float64)
    image[:5] = 0.0  # a dark band, where the re-blurred estimate falls below epsilon
    got = fancydl.richardson_lucy(image, psf, 8, clip=False, filter_epsilon=filter_epsilon)
    expected = restoration.richardson_lucy(image, psf, 8, clip=False,
                                           filter_epsilon=filter_epsilon)
    assert relative_error(got, expected) < 1e-10


def test_richardson_lucy_in_3d_matches_skimage(rng):
    restoration = skimage_restoration()
    psf = rng.random((3, 2, 3))
    psf /= psf.sum()
    image = blurred_scene((8, 9, 10), psf, rng, np.float64)
    assert relative_error(fancydl.richardson_lucy(image, psf, 5, clip=False),
                          restoration.richardson_lucy(image, psf, 5, clip=False)) < 1e-10


def test_richardson_lucy_first_step_is_the_formula(rng):
    """One iteration from u = 0.5 by hand with scipy.signal.convolve (an oracle that
    does not share fancydl's FFT code)."""
    scipy_signal = pytest.importorskip("scipy.signal")
    image = rng.random((11, 13))
    psf = rng.random((4, 3))
    u = np.full(image.shape, 0.5)
    ratio = image / (scipy_signal.convolve(u, psf, mode="same") + 1e-12)
    expected = u * scipy_signal.convolve(ratio, psf[::-1, ::-1], mode="same")
    np.testing.assert_allclose(fancydl.richardson_lucy(image, psf, 1, clip=False),
                               expected, rtol=1e-12)


def test_richardson_lucy_conserves_flux_and_fits_a_noiseless_blur(rng):
    psf = fancydl.gaussian_psf(5, 1.0)
    scene = np.pad(rng.random((20, 20)), 6)  # zero border: nothing leaves the frame
    blurred = fancydl.blur(scene, psf, boundary="zero")
    estimate = fancydl.richardson_lucy(blurred, psf, 200, clip=False)
    reblurred = fancydl.blur(estimate, psf, boundary="zero")
    assert np.linalg.norm(reblurred - blurred) < 0.02 * np.linalg.norm(blurred)
    np.testing.assert_allclose(estimate.sum(), blurred.sum(), rtol=1e-3)
    assert np.linalg.norm(estimate - scene) < np.linalg.norm(blurred - scene)


# --- blur, transfer function, noise, PSNR, PSFs -------------------------------------

@given(image_and_psf(max_side=16))
def test_blur_zero_boundary_matches_scipy_and_fftconvolve(case):
    scipy_signal = pytest.importorskip("scipy.signal")
    shape, psf_shape, rng, dtype = case
    image, psf = rng.random(shape).astype(dtype), rng.random(psf_shape).astype(dtype)
    got = fancydl.blur(image, psf, boundary="zero")
    assert got.dtype == dtype
    np.testing.assert_allclose(got, scipy_signal.convolve(image, psf, mode="same"),
                               rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(got, fancydl.fftconvolve(image, psf, mode="same"),
                               rtol=TOL[dtype], atol=TOL[dtype])


@given(image_and_psf(max_side=12))
def test_blur_circular_is_the_sum_of_rolled_copies(case):
    """Oracle: sum over PSF entries of the image rolled by (offset - floor(k/2))."""
    shape, psf_shape, rng, dtype = case
    image, psf = rng.random(shape).astype(dtype), rng.random(psf_shape).astype(dtype)
    expected = np.zeros(shape)
    for (i, j), weight in np.ndenumerate(psf):
        expected += weight * np.roll(image, (i - psf_shape[0] // 2, j - psf_shape[1] // 2),
                                     axis=(0, 1))
    got = fancydl.blur(image, psf, boundary="circular")
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype], atol=TOL[dtype])


def test_blur_circular_gradcheck(rng):
    psf = rng.random((2, 3))
    assert fancydl.gradcheck(lambda x: fancydl.blur(x, psf), rng.random((6, 7)))


@given(image_and_psf(max_side=12), st.booleans())
def test_transfer_function_matches_skimage_ir2tf(case, is_real):
    uft = pytest.importorskip("skimage.restoration.uft")
    shape, psf_shape, rng, dtype = case
    psf = rng.random(psf_shape).astype(dtype)
    got = fancydl.transfer_function(psf, shape, is_real=is_real)
    expected = uft.ir2tf(psf, shape, is_real=is_real)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert relative_error(got, expected) < TOL[dtype]


def test_transfer_function_dc_gain_is_the_psf_sum():
    psf = np.arange(1.0, 10.0).reshape(3, 3)
    for shape in [(3, 3), (4, 5), (8, 3)]:
        assert fancydl.transfer_function(psf, shape)[0, 0] == pytest.approx(psf.sum())


@pytest.mark.parametrize("psf, shape, error, match", [
    (np.ones((3, 3)), (2, 2), ValueError,
     r"transfer_function: psf of shape \(3, 3\) is larger than shape \(2, 2\)"),
    (np.ones((3, 3)), (1, 1), ValueError, r"is larger than shape \(1, 1\)"),
    (np.ones((3, 3)), (3, 3, 3), ValueError,
     r"psf must have as many dimensions as shape \(3\), got shape \(3, 3\)"),
    (np.ones((3, 3)), (3,), ValueError, r"as many dimensions as shape \(1\)"),
    (np.ones((3, 3)), (0, 3), ValueError, r"shape\[0\] must be >= 1, got 0"),
    (np.ones((3, 3)), (4, 4.0), TypeError, r"shape\[1\] must be an int, got float"),
    (np.ones((3, 3)), 4, TypeError, r"shape must be a tuple of positive ints, got int"),
    (np.ones(()), (), ValueError, r"shape must have at least one entry"),
    (np.ones((0, 3)), (4, 4), ValueError, r"psf must not be empty, got shape \(0, 3\)"),
    (np.ones((3, 3), complex), (4, 4), TypeError,
     r"psf must have dtype float32 or float64, got complex128"),
    (np.ones((3, 3), np.int64), (4, 4), TypeError, r"got int64"),
    ([[1.0, 2.0]], (4, 4), TypeError, r"psf must be a numpy.ndarray, got list"),
])
def test_transfer_function_refuses_bad_psf_and_shape(psf, shape, error, match):
    with pytest.raises(error, match=match):
        fancydl.transfer_function(psf, shape)


def test_default_regularizer_is_skimage_laplacian(rng):
    uft = pytest.importorskip("skimage.restoration.uft")
    from fancydl.restoration import _laplacian_transfer_function
    for shape in [(8, 9), (5, 6, 7), (11,)]:
        for is_real in (True, False):
            expected, _ = uft.laplacian(len(shape), shape, is_real=is_real)
            got = _laplacian_transfer_function(shape, is_real, np.float64)
            np.testing.assert_allclose(got, expected.real, atol=1e-12)


@given(st.integers(0, 2 ** 32 - 1), st.sampled_from([None, 1.0, 2.0, 0.5]),
       st.sampled_from([np.float32, np.float64]), st.booleans())
def test_psnr_matches_skimage(seed, data_range, dtype, signed):
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(seed)
    reference = rng.random((9, 11)).astype(dtype)
    if signed:
        reference = (2 * reference - 1).astype(dtype)
    image = (reference + 0.05 * rng.standard_normal(reference.shape)).astype(dtype)
    expected = metrics.peak_signal_noise_ratio(reference, image, data_range=data_range)
    assert fancydl.psnr(reference, image, data_range) == pytest.approx(expected, rel=1e-6)


def test_psnr_of_identical_images_is_infinite():
    x = np.linspace(0, 1, 12).reshape(3, 4)
    assert fancydl.psnr(x, x.copy()) == np.inf


def test_gaussian_noise_is_seeded_and_has_the_right_spread():
    image = np.full((200, 300), 0.5, np.float32)
    a = fancydl.add_gaussian_noise(image, 0.1, np.random.default_rng(3))
    b = fancydl.add_gaussian_noise(image, 0.1, np.random.default_rng(3))
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert abs(float(np.mean(a)) - 0.5) < 3 * 0.1 / np.sqrt(a.size)
    assert abs(float(np.std(a)) - 0.1) < 0.002


def test_poisson_noise_has_mean_image_and_variance_image_over_peak():
    rng = np.random.default_rng(4)
    image = np.full((300, 300), 0.25)
    noisy = fancydl.add_poisson_noise(image, 40.0, rng)
    assert noisy.dtype == np.float64
    assert abs(noisy.mean() - 0.25) < 4 * np.sqrt(0.25 / 40 / noisy.size)
    assert noisy.var() == pytest.approx(0.25 / 40, rel=0.03)
    # the counts are integers: every value is a multiple of 1 / peak
    np.testing.assert_allclose(noisy * 40, np.round(noisy * 40), atol=1e-9)


def test_poisson_noise_refuses_means_numpy_cannot_sample():
    from fancydl.restoration import POISSON_MAX_MEAN
    rng = np.random.default_rng(0)
    ones = np.ones(3)
    largest = fancydl.add_poisson_noise(ones, POISSON_MAX_MEAN, rng)
    np.testing.assert_allclose(largest, 1.0, rtol=1e-6)
    for peak in (np.nextafter(POISSON_MAX_MEAN, np.inf), 1e30):
        with pytest.raises(ValueError, match=r"add_poisson_noise: peak \* image must "
                                             r"be at most 9.223e\+18"):
            fancydl.add_poisson_noise(ones, peak, rng)
    with pytest.raises(ValueError, match=r"largest pixel of inf"):
        fancydl.add_poisson_noise(np.array([0.0, np.inf]), 2.0, rng)
    with pytest.raises(ValueError, match=r"add_poisson_noise: peak must be finite, "
                                         r"got inf"):
        fancydl.add_poisson_noise(ones, np.inf, rng)
    with pytest.raises(ValueError, match=r"peak must be > 0.0, got nan"):
        fancydl.add_poisson_noise(ones, np.nan, rng)


def test_gaussian_psf_is_normalized_symmetric_and_gaussian():
    psf = fancydl.gaussian_psf((5, 7), 1.5)
    assert psf.shape == (5, 7) and psf.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(psf, psf[::-1, ::-1])
    assert psf[2, 3] / psf[2, 4] == pytest.approx(np.exp(1 / (2 * 1.5 ** 2)))
    even = fancydl.gaussian_psf(4, 1.0)
    np.testing.assert_allclose(even, even.T)
    np.testing.assert_allclose(even, even[::-1, ::-1])


def test_motion_psf_is_a_line():
    horizontal = fancydl.motion_psf(5, 0.0)
    assert horizontal.shape == (5, 5) and horizontal.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(horizontal[2], 0.2, atol=1e-12)
    assert np.allclose(np.delete(horizontal, 2, axis=0), 0)
    np.testing.assert_allclose(fancydl.motion_psf(5, 90.0), horizontal.T, atol=1e-12)
    diagonal = fancydl.motion_psf(7, 45.0, size=9)
    np.testing.assert_allclose(diagonal, diagonal.T, atol=1e-12)
    np.testing.assert_allclose(diagonal, diagonal[::-1, ::-1], atol=1e-12)
    assert np.count_nonzero(np.diag(diagonal[:, ::-1])) == 5
    assert diagonal.shape == (9, 9)


def test_motion_psf_of_even_length_has_half_weight_ends():
    """A centred segment of even length L covers L - 1 whole pixels and two halves
    (MATLAB's fspecial('motion', L, 0) gives the same weights)."""
    for length in (2, 4, 6):
        row = fancydl.motion_psf(length)[length // 2]
        expected = np.full(length + 1, 1 / length)
        expected[[0, -1]] = 1 / (2 * length)
        np.testing.assert_allclose(row, expected, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda dtype: fancydl.gaussian_psf(3, 1.0, dtype=dtype),
    lambda dtype: fancydl.motion_psf(3, dtype=dtype),
])
def test_psfs_are_float32_or_float64(make):
    for dtype in (np.float32, np.float64):
        psf = make(dtype)
        assert psf.dtype == dtype and psf.sum() == pytest.approx(1.0, rel=1e-6)
    for dtype in (np.int32, np.int8, bool, np.float16, np.complex128):
        with pytest.raises(TypeError, match=r"dtype must be float32 or float64, got "):
            make(dtype)


@pytest.mark.parametrize("kwargs, match", [
    ({"length": np.inf}, r"motion_psf: length must be finite, got inf"),
    ({"length": np.nan}, r"motion_psf: length must be >= 1.0, got nan"),
    ({"length": 3, "angle": np.nan},
     r"motion_psf: angle must be a number \(not NaN\), got nan"),
    ({"length": 3, "angle": -np.inf}, r"motion_psf: angle must be finite, got -inf"),
])
def test_motion_psf_refuses_non_finite_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fancydl.motion_psf(**kwargs)


# --- 1-D deconvolution --------------------------------------------------------------

polynomials = st.lists(st.integers(-9, 9), min_size=1, max_size=12)


@given(polynomials, polynomials)
def test_deconvolve_matches_scipy(signal, divisor):
    scipy_signal = pytest.importorskip("scipy.signal")
    assume(divisor[0] != 0)
    quotient, remainder = fancydl.deconvolve(signal, divisor)
    expected_q, expected_r = scipy_signal.deconvolve(signal, divisor)
    expected_q = np.asarray(expected_q, dtype=np.float64)
    assert quotient.shape == expected_q.shape and remainder.shape == (len(signal),)
    scale = 1 + np.max(np.abs(expected_q), initial=0)
    np.testing.assert_allclose(quotient, expected_q, atol=1e-9 * scale)
    np.testing.assert_allclose(remainder, expected_r, atol=1e-9 * scale * 10)
    if len(divisor) <= len(signal):
        np.testing.assert_allclose(np.convolve(divisor, quotient) + remainder, signal,
                                   atol=1e-9 * scale * 10)


def test_deconvolve_inverts_a_convolution_exactly():
    x = np.array([1.0, -2.0, 0.5, 3.0])
    h = np.array([2.0, 1.0, -1.0])
    quotient, remainder = fancydl.deconvolve(np.convolve(x, h), h)
    np.testing.assert_allclose(quotient, x, atol=1e-14)
    np.testing.assert_allclose(remainder, 0, atol=1e-14)


def test_deconvolve_scalars_and_long_divisor():
    quotient, remainder = fancydl.deconvolve(5, 2)
    np.testing.assert_array_equal(quotient, [2.5])
    np.testing.assert_array_equal(remainder, [0.0])
    quotient, remainder = fancydl.deconvolve([1, 2], [1, 2, 3])
    assert quotient.shape == (0,)
    np.testing.assert_array_equal(remainder, [1, 2])


# --- bad input ----------------------------------------------------------------------

IMAGE = np.zeros((8, 8))
PSF = np.ones((3, 3)) / 9


@pytest.mark.parametrize("op", [
    lambda image, psf: fancydl.wiener(image, psf, 0.1),
    lambda image, psf: fancydl.richardson_lucy(image, psf, 5),
    lambda image, psf: fancydl.inverse_filter(image, psf),
    lambda image, psf: fancydl.blur(image, psf),
])
def test_bad_image_and_psf(op):
    with pytest.raises(ValueError, match=r"psf of shape \(9, 3\) is larger than the image"):
        op(IMAGE, np.ones((9, 3)))
    with pytest.raises(ValueError, match=r"psf must have as many dimensions as image \(2\)"):
        op(IMAGE, np.ones(3))
    with pytest.raises(ValueError, match="image must have at least 1 dimension"):
        op(np.zeros(()), np.zeros(()))
    with pytest.raises(TypeError, match="image must be a numpy.ndarray, got list"):
        op([[0.0] * 8] * 8, PSF)
    with pytest.raises(TypeError, match="psf must be a numpy.ndarray, got list"):
        op(IMAGE, [[1.0]])
    with pytest.raises(TypeError, match="image must have dtype float32 or float64, got int64"):
        op(np.zeros((8, 8), np.int64), PSF)
    with pytest.raises(ValueError, match=r"psf must not be empty"):
        op(IMAGE, np.ones((0, 3)))


def test_bad_wiener_arguments():
    with pytest.raises(ValueError, match=r"balance must be >= 0.0, got -0.1"):
        fancydl.wiener(IMAGE, PSF, -0.1)
    with pytest.raises(TypeError, match="balance must be a real number, got str"):
        fancydl.wiener(IMAGE, PSF, "0.1")
    with pytest.raises(ValueError, match=r"complex psf is a transfer function and must "
                                         r"have shape \(8, 5\)"):
        fancydl.wiener(IMAGE, np.ones((8, 8), complex), 0.1)
    with pytest.raises(ValueError, match=r"wiener: reg must have as many dimensions as "
                                         r"image \(2\)"):
        fancydl.wiener(IMAGE, PSF, 0.1, reg=np.ones(3))
    with pytest.raises(TypeError, match="reg must be a numpy.ndarray"):
        fancydl.wiener(IMAGE, PSF, 0.1, reg=[1.0])


def test_bad_richardson_lucy_arguments():
    with pytest.raises(ValueError, match="num_iter must be >= 1, got 0"):
        fancydl.richardson_lucy(IMAGE, PSF, 0)
    with pytest.raises(ValueError, match="num_iter must be >= 1, got -3"):
        fancydl.richardson_lucy(IMAGE, PSF, -3)
    with pytest.raises(TypeError, match="num_iter must be an int, got float"):
        fancydl.richardson_lucy(IMAGE, PSF, 2.5)
    with pytest.raises(ValueError, match="filter_epsilon must be >= 0.0, got -1.0"):
        fancydl.richardson_lucy(IMAGE, PSF, 2, filter_epsilon=-1.0)


def test_bad_helper_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="boundary must be 'circular' or 'zero', got 'wrap'"):
        fancydl.blur(IMAGE, PSF, boundary="wrap")
    with pytest.raises(ValueError, match="threshold must be >= 0.0, got -1.0"):
        fancydl.inverse_filter(IMAGE, PSF, threshold=-1.0)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        fancydl.add_gaussian_noise(IMAGE, 0.1, 0)
    with pytest.raises(ValueError, match="sigma must be >= 0.0, got -0.1"):
        fancydl.add_gaussian_noise(IMAGE, -0.1, rng)
    with pytest.raises(ValueError, match=r"peak must be > 0.0, got 0.0"):
        fancydl.add_poisson_noise(IMAGE, 0.0, rng)
    with pytest.raises(ValueError, match="image must be non-negative"):
        fancydl.add_poisson_noise(IMAGE - 1, 10.0, rng)
    with pytest.raises(ValueError, match=r"image must have reference's shape \(8, 8\)"):
        fancydl.psnr(IMAGE, np.zeros((8, 7)))
    with pytest.raises(ValueError, match="outside \\[-1, 1\\]: pass data_range"):
        fancydl.psnr(IMAGE + 3, IMAGE)
    with pytest.raises(ValueError, match="data_range must be > 0.0, got 0.0"):
        fancydl.psnr(IMAGE, IMAGE, data_range=0.0)
    with pytest.raises(ValueError, match="sigma must be > 0.0, got 0.0"):
        fancydl.gaussian_psf(5, 0.0)
    with pytest.raises(ValueError, match="size must be a positive int or a pair"):
        fancydl.gaussian_psf(0, 1.0)
    with pytest.raises(ValueError, match="length must be >= 1.0, got 0.5"):
        fancydl.motion_psf(0.5)


def test_bad_deconvolve_arguments():
    with pytest.raises(ValueError, match=r"divisor\[0\] \(the leading coefficient\) must "
                                         r"be nonzero"):
        fancydl.deconvolve([1.0, 2.0, 3.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"signal must be a non-empty 1-D array, got "
                                         r"shape \(0,\)"):
        fancydl.deconvolve([], [1.0])
    with pytest.raises(ValueError, match=r"divisor must be a non-empty 1-D array, got "
                                         r"shape \(2, 2\)"):
        fancydl.deconvolve([1.0, 2.0], np.ones((2, 2)))
    with pytest.raises(TypeError, match="signal must hold numbers, got dtype <U1"):
        fancydl.deconvolve(["a"], [1.0])
