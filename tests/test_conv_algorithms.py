"""The four convolution algorithms compute fancydl.conv2d (and PyTorch's conv2d)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fancydl
from fancydl import conv_algorithms as ca


@st.composite
def conv_problems(draw, kernel=None):
    n, c, o = draw(st.integers(0, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = kernel or (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    padding = (ph, pw) if draw(st.booleans()) or ph != pw else ph
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, kh, kw)),
            padding)


def _close(out, ref, rtol):
    assert out.shape == ref.shape and out.dtype == ref.dtype
    scale = max(1.0, float(np.abs(ref).max(initial=0)))
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name", ["direct", "im2col", "fft"])
@given(problem=conv_problems())
def test_matches_conv2d_float64(name, problem):
    x, w, padding = problem
    _close(ca.ALGORITHMS[name](x, w, padding), fancydl.conv2d(x, w, padding=padding),
           1e-12)


@given(problem=conv_problems(kernel=(3, 3)))
def test_winograd_matches_conv2d_float64(problem):
    x, w, padding = problem
    _close(ca.conv2d_winograd_f23(x, w, padding), fancydl.conv2d(x, w, padding=padding),
           1e-12)


@pytest.mark.parametrize("name", list(ca.ALGORITHMS))
@given(problem=conv_problems(kernel=(3, 3)))
def test_float32(name, problem):
    x, w, padding = (a.astype(np.float32) if isinstance(a, np.ndarray) else a
                     for a in problem)
    out = ca.ALGORITHMS[name](x, w, padding)
    assert out.dtype == np.float32
    ref = fancydl.conv2d(x.astype(np.float64), w.astype(np.float64), padding=padding)
    _close(out.astype(np.float64), ref, 1e-4)


@pytest.mark.parametrize("name", list(ca.ALGORITHMS))
def test_against_torch(name, rng):
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal((2, 5, 9, 8)), rng.standard_normal((3, 5, 3, 3))
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    _close(ca.ALGORITHMS[name](x, w, 1), ref, 1e-12)


def test_winograd_matrices_are_lavin_and_grays():
    """The derivation from the points 0, 1, -1, ∞ gives the matrices printed in Lavin &
    Gray (2016), section 4.1."""
    b, g, a = ca.winograd_f23_matrices()
    np.testing.assert_array_equal(b.T, [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0],
                                        [0, 1, 0, -1]])
    np.testing.assert_array_equal(g, [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    np.testing.assert_array_equal(a.T, [[1, 1, 1, 0], [0, 1, -1, -1]])


@pytest.mark.parametrize("points, m, r", [((0, 1, -1), 2, 3), ((0, 1, -1, 2, -2), 4, 3),
                                          ((0, 1, -1), 3, 2), ((0, 1, -1, 0.5), 2, 4)])
def test_derived_winograd_is_exact_in_1d(points, m, r, rng):
    b, g, a = ca.derive_winograd_matrices(points, m, r)
    d, kernel = rng.standard_normal(m + r - 1), rng.standard_normal(r)
    expected = np.correlate(d, kernel, mode="valid")
    np.testing.assert_allclose(a.T @ ((g @ kernel) * (b.T @ d)), expected, atol=1e-12)


def test_derive_refuses_repeated_points():
    with pytest.raises(ValueError, match="points"):
        ca.derive_winograd_matrices((0, 1, 1))
    with pytest.raises(ValueError, match="points"):
        ca.derive_winograd_matrices((0, 1), m=2, r=3)


def test_multiplications():
    x_shape, w_shape = (8, 64, 56, 56), (64, 64, 3, 3)
    direct = ca.multiplications("direct", x_shape, w_shape, padding=1)
    assert direct == 8 * 64 * 56 * 56 * 64 * 9
    assert ca.multiplications("im2col", x_shape, w_shape, padding=1) == direct
    winograd = ca.multiplications("winograd_f23", x_shape, w_shape, padding=1)
    assert winograd * 36 == direct * 16  # 16 per 2x2 tile instead of 4 * 9
    # odd output sizes: whole tiles are computed
    assert ca.multiplications("winograd_f23", (1, 1, 5, 5), (1, 1, 3, 3)) == 4 * 16
    # FFT: 4 real products per complex one on 60 x 31 frequencies (58 -> 60)
    assert ca.multiplications("fft", x_shape, w_shape, 1) == 4 * 8 * 64 * 64 * 60 * 31
    with pytest.raises(ValueError, match="algorithm"):
        ca.multiplications("gemm", x_shape, w_shape)
    with pytest.raises(ValueError, match="3×3"):
        ca.multiplications("winograd_f23", x_shape, (64, 64, 5, 5))


def test_time_algorithms(rng):
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((2, 2, 3, 3))
    times = ca.time_algorithms(x, w, padding=1, repeats=2)
    assert set(times) == {"conv2d", "direct", "im2col", "fft", "winograd_f23"}
    assert all(t > 0 for t in times.values())
    times = ca.time_algorithms(x, rng.standard_normal((2, 2, 5, 5)), padding=2, repeats=1)
    assert "winograd_f23" not in times


@pytest.mark.parametrize("name", list(ca.ALGORITHMS))
def test_bad_input(name, rng):
    f = ca.ALGORITHMS[name]
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((2, 2, 3, 3))
    with pytest.raises(ValueError, match="channels"):
        f(x, rng.standard_normal((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="padding"):
        f(x, w, padding=-1)
    with pytest.raises(TypeError, match="dtype"):
        f(x.astype(np.float32), w)
    with pytest.raises(ValueError, match="input"):
        f(x[..., :2, :2], w)
    with pytest.raises(TypeError, match="input"):
        f(x.tolist(), w)


def test_winograd_needs_3x3(rng):
    with pytest.raises(ValueError, match="3×3"):
        ca.conv2d_winograd_f23(rng.standard_normal((1, 2, 6, 6)),
                               rng.standard_normal((2, 2, 5, 5)))


# --- non-finite values (issue D7 and the module's note) --------------------------------

@pytest.mark.parametrize("name", list(ca.ALGORITHMS))
def test_non_finite_values_raise_no_warning(name, rng):
    """NumPy warned "invalid value encountered in matmul" (and "in fft")."""
    import warnings
    x = rng.standard_normal((2, 3, 8, 7))
    x[0, 0, 3, 3], x[1, 2, 0, 0] = np.nan, np.inf
    w = rng.standard_normal((2, 3, 3, 3))
    w[1, 0, 0, 0] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ca.ALGORITHMS[name](x, w, 1)
        ca.ALGORITHMS[name](x * 1e300, w * 1e300, 1)


def test_non_finite_pixels_spread_as_the_module_says(rng):
    """Direct and im2col: exactly conv2d's NaN and ±inf; FFT: one NaN or inf pixel makes
    its whole image NaN; Winograd: the 2×2 output tiles of the 4×4 tiles holding it."""
    x = rng.standard_normal((2, 2, 8, 8))
    x[0, 1, 3, 4] = np.inf
    w = rng.standard_normal((3, 2, 3, 3))
    expected = fancydl.conv2d(x, w, padding=1)
    for name in ("direct", "im2col"):
        out = ca.ALGORITHMS[name](x, w, 1)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
        np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    assert np.isnan(ca.conv2d_fft(x, w, 1)[0]).all()
    assert np.isfinite(ca.conv2d_fft(x, w, 1)[1]).all()
    winograd = ca.conv2d_winograd_f23(x, w, 1)
    tiles = np.zeros((8, 8), bool)
    tiles[2:6, 2:6] = True   # padded pixel (4, 5): in the tiles at rows 2, 4 and cols 2, 4
    np.testing.assert_array_equal(np.isnan(winograd[0]), np.broadcast_to(tiles, (3, 8, 8)))
    assert np.isfinite(winograd[1]).all() and not np.isinf(winograd).any()
