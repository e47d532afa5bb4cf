"""Tests of fancydl.signal against scipy.signal (the reference semantics)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fancydl
from fancydl.signal import next_fast_length

signal = pytest.importorskip("scipy.signal")

DTYPES = (np.float32, np.float64, np.complex128, np.int64)
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.complex64): 1e-4}


def _random(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-5, 6, size=shape).astype(dtype)
    x = rng.standard_normal(shape)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _assert_same(ours, theirs):
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    if np.issubdtype(theirs.dtype, np.integer):
        np.testing.assert_array_equal(ours, theirs)
    else:
        rtol = TOLERANCE.get(theirs.dtype, 1e-10)
        scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)


def _outcome(fn, *args, **kwargs):
    """The result, or the exception type when the call is refused."""
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return ValueError


shape_2d = st.tuples(st.integers(1, 6), st.integers(1, 6))
modes = st.sampled_from(["full", "same", "valid"])


@given(shape1=shape_2d, shape2=shape_2d, mode=modes,
       boundary=st.sampled_from(["fill", "wrap", "symm"]),
       fillvalue=st.sampled_from([0, 2]), dtype=st.sampled_from(DTYPES),
       correlate=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_convolve2d_and_correlate2d_match_scipy(shape1, shape2, mode, boundary, fillvalue,
                                                dtype, correlate, seed):
    rng = np.random.default_rng(seed)
    in1, in2 = _random(rng, shape1, dtype), _random(rng, shape2, dtype)
    name = "correlate2d" if correlate else "convolve2d"
    ours = _outcome(getattr(fancydl, name), in1, in2, mode, boundary, fillvalue)
    theirs = _outcome(getattr(signal, name), in1, in2, mode, boundary, fillvalue)
    if theirs is ValueError:  # 'valid' with neither input larger
        assert ours is ValueError
    else:
        swapped = mode == "valid" and shape1 != shape2 and all(
            b >= a for a, b in zip(shape1, shape2))
        if correlate and swapped and np.iscomplexobj(in1):
            # scipy's correlate2d conjugates its result when it swaps complex inputs in
            # 'valid' mode; its N-d correlate does not, and neither do we.
            theirs = signal.correlate(in1, in2, mode, method="direct")
        _assert_same(ours, theirs)


def test_complex_valid_correlation_with_swapped_inputs_is_not_conjugated():
    in1, in2 = np.array([[1 + 1j]]), np.array([[1 + 2j, 3 - 1j]])
    expected = np.conj(in2) * in1  # sum_j in1[m + j] conj(in2[j]) with in1 of length 1
    np.testing.assert_allclose(fancydl.correlate2d(in1, in2, "valid"), expected[:, ::-1])
    np.testing.assert_allclose(fancydl.correlate2d(in1, in2, "valid"),
                               signal.correlate(in1, in2, "valid"))


@given(n1=st.integers(1, 7), n2=st.integers(1, 7), mode=modes,
       method=st.sampled_from(["direct", "fft"]), correlate=st.booleans(),
       two_d=st.booleans(),
       dtype=st.sampled_from((np.float32, np.float64, np.complex128, np.int64, np.int32)),
       seed=st.integers(0, 2**32 - 1))
def test_convolve_and_correlate_match_scipy(n1, n2, mode, method, correlate, two_d, dtype,
                                            seed):
    rng = np.random.default_rng(seed)
    shape1, shape2 = ((n1, n2), (n2, n1)) if two_d else ((n1,), (n2,))
    if two_d and mode == "valid":
        shape2 = (min(n1, n2), min(n1, n2))
    in1, in2 = _random(rng, shape1, dtype), _random(rng, shape2, dtype)
    name = "correlate" if correlate else "convolve"
    ours = getattr(fancydl, name)(in1, in2, mode, method=method)
    theirs = getattr(signal, name)(in1, in2, mode, method=method)
    _assert_same(ours, theirs)


@given(ndim=st.integers(1, 3), data=st.data(), mode=modes,
       dtype=st.sampled_from((np.float32, np.float64, np.complex64, np.complex128,
                              np.int32)),
       seed=st.integers(0, 2**32 - 1))
def test_fftconvolve_matches_scipy(ndim, data, mode, dtype, seed):
    rng = np.random.default_rng(seed)
    shape1 = data.draw(st.tuples(*[st.integers(1, 6)] * ndim))
    shape2 = data.draw(st.tuples(*[st.integers(1, 6)] * ndim))
    in1, in2 = _random(rng, shape1, dtype), _random(rng, shape2, dtype)
    ours = _outcome(fancydl.fftconvolve, in1, in2, mode)
    theirs = _outcome(signal.fftconvolve, in1, in2, mode)
    if theirs is ValueError:
        assert ours is ValueError
    else:
        _assert_same(ours, theirs)


@given(shape1=shape_2d, shape2=shape_2d, seed=st.integers(0, 2**32 - 1))
def test_convolution_theorem_fft_equals_direct(shape1, shape2, seed):
    rng = np.random.default_rng(seed)
    in1, in2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
    np.testing.assert_allclose(fancydl.fftconvolve(in1, in2),
                               fancydl.convolve2d(in1, in2), atol=1e-12)


def test_correlate2d_is_convolve2d_with_flipped_conjugated_kernel(rng):
    in1 = rng.standard_normal((7, 6)) + 1j * rng.standard_normal((7, 6))
    in2 = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    flipped = np.conj(in2[::-1, ::-1])
    for mode in ("full", "same", "valid"):  # odd kernel: same centring in both
        np.testing.assert_allclose(fancydl.correlate2d(in1, in2, mode),
                                   fancydl.convolve2d(in1, flipped, mode), atol=1e-12)


def test_same_mode_centring_trap_for_even_kernels():
    """scipy centres correlate2d's 'same' one sample later than correlate's."""
    in1, in2 = np.arange(1.0, 8.0), np.array([1.0, 2.0, 3.0, 4.0])
    full = np.correlate(in1, in2, "full")  # numpy's own, as an independent reference
    np.testing.assert_allclose(fancydl.correlate(in1, in2, "same"), full[1:8])
    np.testing.assert_allclose(fancydl.correlate2d(in1[None], in2[None], "same")[0],
                               full[2:9])


def test_large_kernel_uses_the_smaller_array_as_kernel(rng):
    small, large = rng.standard_normal((3, 2)), rng.standard_normal((9, 11))
    for mode in ("full", "same"):
        _assert_same(fancydl.convolve2d(small, large, mode),
                     signal.convolve2d(small, large, mode))


@pytest.mark.parametrize("shape1, shape2, mode", [
    ((0, 3), (2, 2), "full"), ((2, 3), (0, 2), "full"), ((0, 3), (2, 2), "same"),
    ((3, 0), (2, 2), "same")])
def test_empty_inputs_like_scipy(shape1, shape2, mode):
    ours = fancydl.convolve2d(np.ones(shape1), np.ones(shape2), mode)
    _assert_same(ours, signal.convolve2d(np.ones(shape1), np.ones(shape2), mode))


def test_fftconvolve_empty_and_zero_dimensional_like_scipy():
    _assert_same(fancydl.fftconvolve(np.ones((0, 3)), np.ones((2, 2))),
                 signal.fftconvolve(np.ones((0, 3)), np.ones((2, 2))))
    for axes in (None, 0, [-1]):
        _assert_same(fancydl.fftconvolve(np.array(3.0), np.array(2.0), axes=axes),
                     signal.fftconvolve(np.array(3.0), np.array(2.0), axes=axes))


def test_nan_and_inf_propagate_like_scipy():
    in1 = np.arange(20.0).reshape(4, 5)
    in1[1, 2], in1[3, 0] = np.nan, np.inf
    kernel = np.array([[1.0, -1.0], [0.5, 2.0]])
    for mode in ("full", "same", "valid"):
        ours, theirs = fancydl.convolve2d(in1, kernel, mode), signal.convolve2d(
            in1, kernel, mode)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(ours[np.isfinite(theirs)], theirs[np.isfinite(theirs)])


@pytest.mark.parametrize("dtype1, dtype2", [(np.float32, np.float32),
                                            (np.float32, np.float64),
                                            (np.int32, np.int32), (np.uint8, np.uint8),
                                            (np.complex64, np.float32)])
def test_result_dtype_like_scipy(dtype1, dtype2):
    in1, in2 = np.ones((4, 4), dtype1), np.ones((2, 3), dtype2)
    assert fancydl.convolve2d(in1, in2).dtype == signal.convolve2d(in1, in2).dtype
    assert fancydl.fftconvolve(in1, in2).dtype == signal.fftconvolve(in1, in2).dtype


def test_accepts_lists_like_scipy():
    np.testing.assert_array_equal(fancydl.convolve2d([[1, 2, 3]], [[1, 10]]),
                                  [[1, 12, 23, 30]])


def test_next_fast_length_is_five_smooth_and_minimal():
    def smooth(n):
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1
    for n in range(1, 400):
        fast = next_fast_length(n)
        assert fast >= n and smooth(fast)
        assert not any(smooth(m) for m in range(n, fast))


# --- gradients (convolve2d / correlate2d with zero padding) ---------------------------

def _valid_pair(shape1, shape2, mode):
    return mode != "valid" or all(a >= b for a, b in zip(shape1, shape2)) or all(
        a <= b for a, b in zip(shape1, shape2))


GRADCHECK_CASES = [(shape1, shape2, mode)
                   for shape1, shape2 in [((5, 6), (3, 2)), ((3, 2), (5, 6)),
                                          ((4, 4), (4, 4)), ((2, 7), (3, 2))]
                   for mode in ("full", "same", "valid") if _valid_pair(shape1, shape2, mode)]


@pytest.mark.parametrize("op", [fancydl.convolve2d, fancydl.correlate2d])
@pytest.mark.parametrize("shape1, shape2, mode", GRADCHECK_CASES)
def test_gradcheck(op, shape1, shape2, mode, rng):
    in1, in2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
    assert fancydl.gradcheck(op, in1, in2, mode)


def _torch_reference(torch, in1, in2, mode, correlate):
    """The same call in PyTorch: a zero-padded conv2d gives the full output, then crop."""
    (n1h, n1w), (n2h, n2w) = in1.shape, in2.shape
    padded = torch.nn.functional.pad(in1[None, None], (n2w - 1, n2w - 1, n2h - 1, n2h - 1))
    kernel = in2 if correlate else torch.flip(in2, (0, 1))
    full = torch.nn.functional.conv2d(padded, kernel[None, None])[0, 0]
    window = []
    for n1, n2 in ((n1h, n2h), (n1w, n2w)):
        if mode == "full":
            start, length = 0, n1 + n2 - 1
        elif mode == "valid":
            start, length = min(n1, n2) - 1, abs(n1 - n2) + 1
        else:
            start, length = (n2 // 2 if correlate else (n2 - 1) // 2), n1
        window.append(slice(start, start + length))
    return full[tuple(window)]


@given(shape1=shape_2d, shape2=shape_2d, mode=modes, correlate=st.booleans(),
       dtype=st.sampled_from((np.float32, np.float64)), seed=st.integers(0, 2**32 - 1))
def test_gradients_match_torch(shape1, shape2, mode, correlate, dtype, seed):
    torch = pytest.importorskip("torch")
    assume(_valid_pair(shape1, shape2, mode))
    rng = np.random.default_rng(seed)
    in1, in2 = _random(rng, shape1, dtype), _random(rng, shape2, dtype)
    op = fancydl.correlate2d if correlate else fancydl.convolve2d
    out, pullback = fancydl.vjp(op, in1, in2, mode)
    upstream = rng.standard_normal(out.shape).astype(dtype)
    g1, g2, _ = pullback(upstream)
    t1, t2 = (torch.tensor(a, requires_grad=True) for a in (in1, in2))
    t_out = _torch_reference(torch, t1, t2, mode, correlate)
    t_out.backward(torch.tensor(upstream))
    for ours, theirs in ((out, t_out), (g1, t1.grad), (g2, t2.grad)):
        assert ours.dtype == dtype
        _assert_same(ours, theirs.detach().numpy())


def test_gradients_need_zero_fill():
    x, k = np.ones((4, 4)), np.ones((2, 2))
    with pytest.raises(ValueError, match=r"gradients are implemented for boundary='fill' "
                                         r"with fillvalue=0 only, got boundary='wrap'"):
        fancydl.vjp(lambda a, b: fancydl.convolve2d(a, b, boundary="wrap"), x, k)
    with pytest.raises(ValueError, match=r"got boundary='fill', fillvalue=1"):
        fancydl.vjp(lambda a, b: fancydl.correlate2d(a, b, fillvalue=1), x, k)


@pytest.mark.parametrize("op", [fancydl.convolve2d, fancydl.correlate2d])
def test_gradients_of_a_complex_convolution_are_refused(op):
    """A traced real image with a complex kernel used to get a zero gradient: the
    complex output silently dropped the trace."""
    x, k = np.arange(16.0).reshape(4, 4), np.array([[1 + 1j, 2], [0, 1j]])
    with pytest.raises(TypeError, match=r"gradients are implemented for real inputs "
                                        r"only, got in2 of dtype complex128"):
        fancydl.vjp(lambda a: op(a, k), x)
    with pytest.raises(TypeError, match=r"got in1 of dtype complex128"):
        fancydl.vjp(lambda b: op(k, b, mode="same"), x)


# --- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("op", [fancydl.convolve2d, fancydl.correlate2d])
def test_bad_arguments_of_2d_functions(op):
    x, k = np.ones((4, 4)), np.ones((2, 2))
    with pytest.raises(ValueError, match=r"mode must be one of .*got 'circular'"):
        op(x, k, mode="circular")
    with pytest.raises(ValueError, match=r"boundary must be one of .*got 'reflect'"):
        op(x, k, boundary="reflect")
    with pytest.raises(TypeError, match=r"fillvalue must be a number, got str"):
        op(x, k, fillvalue="0")
    with pytest.raises(ValueError, match=r"fillvalue must be real for float64"):
        op(x, k, fillvalue=1 + 2j)
    with pytest.raises(ValueError, match=r"in1 must have 2 dimensions, got shape \(4,\)"):
        op(np.ones(4), k)
    with pytest.raises(ValueError, match=r"in2 must have 2 dimensions, got shape \(1, 2, 2\)"):
        op(x, np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match=r"'valid' mode .* got shapes \(4, 2\) and \(2, 4\)"):
        op(np.ones((4, 2)), np.ones((2, 4)), mode="valid")
    with pytest.raises(TypeError, match=r"in1 must have an integer, float32.*got bool"):
        op(x > 0, k)
    with pytest.raises(TypeError, match=r"in2 must have .* got float16"):
        op(x, k.astype(np.float16))
    with pytest.raises(TypeError, match=r"in1 must be an array, got str"):
        op("abc", k)
    with pytest.raises(ValueError, match=r"boundary='wrap' cannot extend in1 of shape "
                                         r"\(0, 3\): it is empty"):
        op(np.ones((0, 3)), k, boundary="wrap")


def test_bad_arguments_of_nd_functions():
    with pytest.raises(ValueError, match=r"same number of dimensions, got shapes \(3,\) "
                                         r"and \(1, 2\)"):
        fancydl.fftconvolve(np.ones(3), np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"mode must be one of .*got 'fill'"):
        fancydl.fftconvolve(np.ones(3), np.ones(2), mode="fill")
    with pytest.raises(ValueError, match=r"'valid' mode"):
        fancydl.fftconvolve(np.ones((4, 2)), np.ones((2, 4)), mode="valid")
    with pytest.raises(ValueError, match=r"method must be one of .*got 'overlap-add'"):
        fancydl.convolve(np.ones(3), np.ones(2), method="overlap-add")
    with pytest.raises(ValueError, match=r"in1 must have 1 or 2 dimensions, got shape "
                                         r"\(1, 1, 3\)"):
        fancydl.correlate(np.ones((1, 1, 3)), np.ones((1, 1, 2)))


# --- non-finite values: scipy's products with the padding -------------------------------

@given(shape1=shape_2d, shape2=shape_2d, mode=modes,
       boundary=st.sampled_from(["fill", "wrap", "symm"]),
       fillvalue=st.sampled_from([0, 2]), correlate=st.booleans(), where=st.sampled_from(["in1", "in2", "both"]),
       values=st.lists(st.sampled_from([np.inf, -np.inf, np.nan]), min_size=1, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_non_finite_values_propagate_like_scipy(shape1, shape2, mode, boundary, fillvalue,
                                                correlate, where, values, seed):
    """inf and NaN in either input, every mode and boundary: the same NaN, inf and
    finite entries as scipy, whose direct sum multiplies the zero padding of in1 by
    every sample of in2 (0 * inf = nan), whichever input is smaller."""
    assume(_valid_pair(shape1, shape2, mode))
    rng = np.random.default_rng(seed)
    in1, in2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
    for name, array in (("in1", in1), ("in2", in2)):
        if where in (name, "both"):
            for value in values:
                array[tuple(rng.integers(0, n) for n in array.shape)] = value
    name = "correlate2d" if correlate else "convolve2d"
    with np.errstate(invalid="ignore", over="ignore"):
        theirs = getattr(signal, name)(in1, in2, mode, boundary, fillvalue)
    ours = getattr(fancydl, name)(in1, in2, mode, boundary, fillvalue)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_padding_nan_only_where_scipy_puts_it():
    """A small in1 against a larger in2 with one inf: the NaN frame of the padding."""
    in1, in2 = np.ones((2, 2)), np.ones((3, 3))
    in2[0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        expected = signal.convolve2d(in1, in2)
    np.testing.assert_array_equal(fancydl.convolve2d(in1, in2), expected)
    assert np.isnan(expected).sum() == 12 and np.isinf(expected).sum() == 4


@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fft_helpers_give_the_circular_convolution(real, dtype):
    """unnormalized_fft and apply_spectrum, the one FFT mechanism of signal and
    restoration: a circular convolution, computed here by its definition."""
    from fancydl.signal import apply_spectrum, unnormalized_fft
    rng = np.random.default_rng(5)
    shape = (6, 5)
    x = rng.standard_normal(shape).astype(dtype)
    k = rng.standard_normal((3, 2)).astype(dtype)
    if not real:
        x = x + 1j * rng.standard_normal(shape).astype(dtype)
    spectrum = unnormalized_fft(k, shape, real=real)
    transform = np.fft.rfftn if real else np.fft.fftn
    reference = transform(k.astype(np.float64), s=shape, axes=(0, 1))
    np.testing.assert_allclose(spectrum, reference, rtol=1e-5, atol=1e-5)
    expected = np.zeros(shape, np.complex128)
    for (i, j), value in np.ndenumerate(k):
        expected += value * np.roll(x.astype(np.complex128), (i, j), axis=(0, 1))
    out = apply_spectrum(spectrum, x, real=real)
    assert out.shape == shape
    np.testing.assert_allclose(out, expected if not real else expected.real, rtol=1e-4,
                               atol=1e-4)


def _assert_same_non_finite(ours, theirs):
    """Equal shapes and dtypes, the same non-finite entries (real: the same NaN, +inf
    and -inf), finite values close. Complex infinities are not compared part by part:
    which part of ``inf * z`` is NaN depends on how the product is computed (numpy's
    complex dot differs from an elementwise product), even within scipy."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    finite = np.isfinite(theirs)
    np.testing.assert_array_equal(np.isfinite(ours), finite)
    if not np.iscomplexobj(theirs):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-9, atol=1e-9)


def _spoil(rng, array, values):
    """Put each of ``values`` (inf, -inf, NaN) at a random place of ``array``."""
    for value in values:
        array[tuple(rng.integers(0, n) for n in array.shape)] = value


@given(shape1=st.lists(st.integers(1, 6), min_size=1, max_size=2), data=st.data(),
       mode=modes, correlate=st.booleans(), method=st.sampled_from(["direct", "auto"]),
       dtype=st.sampled_from([np.float64, np.complex128]),
       where=st.sampled_from(["in1", "in2", "both"]),
       values=st.lists(st.sampled_from([np.inf, -np.inf, np.nan]), min_size=1, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_convolve_and_correlate_non_finite_like_scipy_direct(shape1, data, mode, correlate,
                                                             method, dtype, where, values,
                                                             seed):
    """1-D: numpy.convolve's sum over the overlap (no 0 * inf from the padding, except
    in 'same' mode with the shorter in1); 2-D: the padding of in1, or in 'full' mode of
    the larger input, times the other's samples. 'auto' on small inputs is 'direct'."""
    shape2 = data.draw(st.lists(st.integers(1, 6), min_size=len(shape1),
                                max_size=len(shape1)))
    assume(_valid_pair(shape1, shape2, mode))
    rng = np.random.default_rng(seed)
    in1, in2 = _random(rng, shape1, dtype), _random(rng, shape2, dtype)
    for name, array in (("in1", in1), ("in2", in2)):
        if where in (name, "both"):
            _spoil(rng, array, values)
    name = "correlate" if correlate else "convolve"
    with np.errstate(invalid="ignore", over="ignore"):
        theirs = getattr(signal, name)(in1, in2, mode, method="direct")
    _assert_same_non_finite(getattr(fancydl, name)(in1, in2, mode, method=method), theirs)


def test_one_d_infinite_kernel_meets_no_padding():
    """The reviewer's cases: numpy.convolve never multiplies padding."""
    inf_kernel = np.array([1.0, np.inf])
    np.testing.assert_array_equal(fancydl.convolve([1.0, 2, 3], inf_kernel),
                                  [1, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(fancydl.correlate([1.0, 2, 3], inf_kernel),
                                  [np.inf, np.inf, np.inf, 3])
    np.testing.assert_array_equal(fancydl.convolve([1.0, 2], [1.0, np.nan, 3, 4]),
                                  [1, np.nan, np.nan, 10, 8])


def test_auto_method_keeps_nan_where_scipy_direct_puts_it():
    """Inputs large enough for the FFT, with one NaN: 'auto' sums directly (the FFT
    would make all 399 outputs NaN), quietly (warnings are errors here)."""
    rng = np.random.default_rng(0)
    in1, in2 = rng.standard_normal(300), rng.standard_normal(100)
    in1[5] = np.nan
    ours = fancydl.convolve(in1, in2)
    _assert_same_non_finite(ours, signal.convolve(in1, in2, method="direct"))
    assert np.isnan(ours).sum() == 100
    assert np.isnan(fancydl.convolve(in1, in2, method="fft")).all()
    assert np.isnan(fancydl.fftconvolve(in1, in2)).all()


@given(shape1=st.tuples(st.integers(0, 3), st.integers(0, 3)),
       shape2=st.tuples(st.integers(0, 3), st.integers(0, 3)), mode=modes,
       boundary=st.sampled_from(["fill", "wrap", "symm"]),
       fillvalue=st.sampled_from([0, 1.5, -2]), correlate=st.booleans())
def test_empty_inputs_like_scipy_with_every_boundary(shape1, shape2, mode, boundary,
                                                      fillvalue, correlate):
    """With an empty in1 every output sample reads only the padding: fillvalue times
    the kernel's sum; with an empty kernel it is a sum of nothing."""
    assume(0 in shape1 + shape2)
    in1, in2 = np.full(shape1, 2.0), np.arange(1.0, 1 + np.prod(shape2)).reshape(shape2)
    name = "correlate2d" if correlate else "convolve2d"
    ours = _outcome(getattr(fancydl, name), in1, in2, mode, boundary, fillvalue)
    if boundary != "fill" and mode == "full" and in1.size == 0:
        # scipy dies of a floating-point exception here (it wraps modulo 0): refuse
        # when there is something to wrap into, else it is a sum of nothing.
        full = [n1 + n2 - 1 for n1, n2 in zip(shape1, shape2)]
        if in2.size and min(full) > 0:
            assert ours is ValueError
        else:
            assert ours is not ValueError and not ours.any()
        return
    theirs = _outcome(getattr(signal, name), in1, in2, mode, boundary, fillvalue)
    if theirs is ValueError:  # 'valid' without a larger input; 'full' of two empties
        assert ours is ValueError or ours.size == 0
    else:
        _assert_same(ours, theirs)


def test_empty_in1_reads_only_the_fillvalue():
    out = fancydl.convolve2d(np.zeros((0, 3)), np.ones((2, 2)), fillvalue=1.0)
    np.testing.assert_array_equal(out, [[4.0, 4.0, 4.0, 4.0]])


@pytest.mark.parametrize("fillvalue", [np.array(2.0), np.array([2.0]), np.array([[2.0]]),
                                       np.float32(2.0), True, 2, 2 + 0j])
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint8])
def test_fillvalue_as_scipy_accepts_it(fillvalue, dtype):
    in1, in2 = np.arange(6).reshape(2, 3).astype(dtype), np.ones((2, 2), dtype)
    for name in ("convolve2d", "correlate2d"):
        ours = getattr(fancydl, name)(in1, in2, fillvalue=fillvalue)
        reference = 1 if fillvalue is True else 2
        _assert_same(ours, getattr(signal, name)(in1, in2, fillvalue=reference))


@pytest.mark.parametrize("fillvalue, dtype, error, match", [
    (np.array([1.0, 2.0]), np.float64, ValueError,
     r"fillvalue must be a number or an array with one element, got an array of shape "
     r"\(2,\)"),
    ("2", np.float64, TypeError, r"fillvalue must be a number, got str"),
    (None, np.float64, TypeError, r"fillvalue must be a number, got NoneType"),
    (1 + 2j, np.float64, ValueError, r"fillvalue must be real for float64 inputs"),
    (2.7, np.int64, ValueError, r"fillvalue must be an integer that int64 \(the inputs' "
                                r"dtype\) holds, got 2.7"),
    (np.nan, np.int64, ValueError, r"holds, got nan"),
    (300, np.uint8, ValueError, r"integer that uint8 .* got 300"),
    (-1, np.uint8, ValueError, r"got -1"),
])
def test_fillvalue_refused_with_a_clear_message(fillvalue, dtype, error, match):
    in1, in2 = np.ones((3, 3), dtype), np.ones((2, 2), dtype)
    with pytest.raises(error, match=match):
        fancydl.convolve2d(in1, in2, fillvalue=fillvalue)


@given(ndim=st.integers(1, 3), data=st.data(), mode=modes,
       dtype=st.sampled_from((np.float32, np.float64, np.complex128, np.int32)),
       seed=st.integers(0, 2**32 - 1))
def test_fftconvolve_axes_match_scipy(ndim, data, mode, dtype, seed):
    """Convolve along some axes, broadcast along the others (equal lengths or 1)."""
    shape1, shape2 = [], []
    for _ in range(ndim):
        kind = data.draw(st.sampled_from(["free", "equal", "one1", "one2"]))
        n1, n2 = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
        shape1.append(1 if kind == "one1" else n1)
        shape2.append(1 if kind == "one2" else n1 if kind == "equal" else n2)
    axes = data.draw(st.one_of(
        st.none(), st.integers(-ndim, ndim - 1),
        st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                 unique_by=lambda a: a % ndim)))
    rng = np.random.default_rng(seed)
    in1, in2 = _random(rng, shape1, dtype), _random(rng, shape2, dtype)
    ours = _outcome(fancydl.fftconvolve, in1, in2, mode, axes=axes)
    theirs = _outcome(signal.fftconvolve, in1, in2, mode, axes=axes)
    if theirs is ValueError:  # shapes that do not broadcast, or 'valid' without a winner
        assert ours is ValueError
    else:
        _assert_same(ours, theirs)


def test_fftconvolve_along_rows():
    rows = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    kernels = np.array([[1.0, 10.0], [2.0, 0.0]])
    out = fancydl.fftconvolve(rows, kernels, axes=1)
    expected = [np.convolve(row, kernel) for row, kernel in zip(rows, kernels)]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_fftconvolve_bad_axes():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"fftconvolve: axes out of range: expected a "
                                         r"value in \[-2, 1\] for an input with 2 "
                                         r"dimensions, got 2"):
        fancydl.fftconvolve(x, x, axes=2)
    with pytest.raises(ValueError, match=r"axes must be distinct, got \[0, -2\]"):
        fancydl.fftconvolve(x, x, axes=[0, -2])
    with pytest.raises(ValueError, match=r"axes must not be empty"):
        fancydl.fftconvolve(x, x, axes=[])
    with pytest.raises(TypeError, match=r"axes must be None, an int or a sequence of "
                                        r"ints, got float 1.0"):
        fancydl.fftconvolve(x, x, axes=1.0)
    with pytest.raises(ValueError, match=r"equal lengths \(or length 1\) on every axis "
                                         r"not in axes=1, got shapes \(3, 4\) and "
                                         r"\(2, 4\)"):
        fancydl.fftconvolve(x, np.ones((2, 4)), axes=1)


@pytest.mark.parametrize("op, reference", [(fancydl.convolve2d, "convolve2d"),
                                           (fancydl.correlate2d, "correlate2d")])
@pytest.mark.parametrize("shapes", [((40, 30), (37, 28)), ((9, 7), (3, 5)), ((4, 4), (9, 9)),
                                    ((5, 5), (5, 5))])
def test_valid_outputs_fewer_than_the_kernel_are_dot_products(rng, op, reference, shapes):
    """With fewer output samples than kernel offsets, each output is one dot product
    (a kernel gradient: the pullback of a 256 x 256 convolution took 136 ms); the
    same values and NaN/inf as SciPy."""
    signal = pytest.importorskip("scipy.signal")
    a, b = (rng.standard_normal(shape) for shape in shapes)
    scipy_op = getattr(signal, reference)
    np.testing.assert_allclose(op(a, b, mode="valid"), scipy_op(a, b, mode="valid"),
                               rtol=1e-12, atol=1e-12)
    larger = a if a.size >= b.size else b
    larger[-1, -1], larger[-1, 0] = np.inf, np.nan  # reached by the last outputs only
    ours, theirs = op(a, b, mode="valid"), scipy_op(a, b, mode="valid")
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[~np.isnan(theirs)], theirs[~np.isnan(theirs)],
                               rtol=1e-12, atol=1e-12)
