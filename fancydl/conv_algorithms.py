"""Four algorithms for one convolution: direct, im2col + GEMM, FFT and Winograd.

Every function here computes the same thing as ``fancydl.conv2d(input, weight,
padding=padding)`` (stride 1, no dilation, one channel group, PyTorch's
cross-correlation) on finite values, up to round-off, by a different route:

* :func:`conv2d_direct` loops over the k×k kernel offsets; each offset is one
  (C_out, C_in) matrix times the input view that offset sees (:mod:`fancydl.windows`).
* :func:`conv2d_im2col` copies every window into a column (:func:`fancydl.im2col`)
  and multiplies the kernel matrix by the columns: one large GEMM.
* :func:`conv2d_fft` transforms the padded planes and the kernels with the FFT, where
  correlation becomes a product, and sums over input channels in the frequency domain.
* :func:`conv2d_winograd_f23` runs Winograd's minimal filtering F(2×2, 3×3) (Lavin &
  Gray, 2016): 16 multiplications per 2×2 output tile and channel pair instead of 36.

:func:`multiplications` counts the products of each method's multiply stage, and
:func:`time_algorithms` times all of them on one input, for the book's comparison. These
are teaching implementations (forward only, no gradient); ``fancydl.conv2d`` is the
operator to use.

Non-finite values: the direct and im2col routes form exactly conv2d's products, so a
NaN or ±inf input pixel reaches exactly the outputs whose windows hold it, as in
PyTorch. The two fast algorithms mix values before multiplying, and spread it further:
the FFT mixes every pixel of a plane into every frequency, so one NaN or inf pixel
makes every output of every output plane of its image NaN; Winograd's tile
transforms mix the 4×4 input tile, so it makes the whole 2×2 output tiles of every
tile that holds it NaN (16 outputs around it instead of 9 for a 3×3 window), an inf
included (``inf - inf``). A NaN or inf weight reaches every output of its output
channel in all four (the zero padding times it is NaN too).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .conv import conv2d, im2col
from .signal import next_fast_length
from .validation import check_float_array, check_int, check_pair, check_same_dtype
from .windows import conv_output_size, kernel_offsets, offset_view, pad2d

__all__ = ["conv2d_direct", "conv2d_im2col", "conv2d_fft", "conv2d_winograd_f23",
           "winograd_f23_matrices", "derive_winograd_matrices", "multiplications",
           "time_algorithms", "ALGORITHMS"]


def _check(op, input, weight, padding):
    """Validate the arguments; return ``(padding pair, output size pair)``."""
    check_float_array(op, "input", input, ndim=4)
    check_float_array(op, "weight", weight, ndim=4)
    check_same_dtype(op, input=input, weight=weight)
    if input.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: weight has {weight.shape[1]} input channels but input "
                         f"has {input.shape[1]} channels (shape {input.shape})")
    if min(weight.shape) == 0 or min(input.shape[1:]) == 0:
        raise ValueError(f"{op}: input and weight must be non-empty (only the batch may "
                         f"be empty), got shapes {input.shape} and {weight.shape}")
    padding = check_pair(op, "padding", padding, minimum=0)
    out_size = tuple(conv_output_size(n, k, 1, p) for n, k, p in
                     zip(input.shape[2:], weight.shape[2:], padding))
    if min(out_size) < 1:
        raise ValueError(f"{op}: the kernel {weight.shape[2:]} is larger than the padded "
                         f"input (input {input.shape[2:]}, padding {padding})")
    return padding, out_size


def _symmetric(padding):
    return ((padding[0], padding[0]), (padding[1], padding[1]))


# --- direct: a loop over the kernel offsets ---------------------------------------------

def conv2d_direct(input, weight, padding=0):
    """Direct convolution: one small GEMM per kernel offset, accumulated.

    ``out[n, o, h, w] = Σ_{c,i,j} x_p[n, c, h + i, w + j] weight[o, c, i, j]``, with the
    sum over ``(i, j)`` a Python loop of kH·kW steps and everything else vectorized:
    offset ``(i, j)`` contributes ``weight[:, :, i, j] @`` (the input view it sees).

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W), float32 or float64
    weight : ndarray of shape (C_out, C_in, kH, kW), same dtype
    padding : int or (int, int)
        Zeros added on both sides of each axis.

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out), ``H_out = H + 2 pH - kH + 1``
    """
    padding, out_size = _check("conv2d_direct", input, weight, padding)
    x_padded = pad2d(input, _symmetric(padding))
    (n, c), length = input.shape[:2], out_size[0] * out_size[1]
    out = np.zeros((n, weight.shape[0], length), input.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # NaN and inf propagate silently
        for i, j in kernel_offsets(weight.shape[2:]):
            view = offset_view(x_padded, (i, j), (1, 1), (1, 1), out_size)  # (N, C, Ho, Wo)
            out += weight[:, :, i, j] @ view.reshape(n, c, length)  # (C_out, C) @ (N, C, L)
    return out.reshape((n, weight.shape[0]) + out_size)


# --- im2col: one big GEMM ---------------------------------------------------------------

def conv2d_im2col(input, weight, padding=0):
    """Convolution as one GEMM: ``weight matrix @ im2col(input)``.

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W), float32 or float64
    weight : ndarray of shape (C_out, C_in, kH, kW), same dtype
    padding : int or (int, int)

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out)

    Notes
    -----
    The column matrix holds ``C_in·kH·kW × H_out·W_out`` values per image, about k²
    times the input: this version builds it for the whole batch at once (the
    operator :func:`fancydl.conv2d` cuts the batch into chunks to bound it).
    """
    padding, out_size = _check("conv2d_im2col", input, weight, padding)
    cols = im2col(input, weight.shape[2:], padding=padding)  # (N, C·kH·kW, L)
    with np.errstate(over="ignore", invalid="ignore"):  # NaN and inf propagate silently
        out = weight.reshape(weight.shape[0], -1) @ cols  # (N, C_out, L)
    return out.reshape(out.shape[:2] + out_size)


# --- FFT: products in the frequency domain ----------------------------------------------

def conv2d_fft(input, weight, padding=0):
    """Convolution through the FFT, summing over input channels in the frequency domain.

    Cross-correlation is a product of spectra: with ``X = rfft2(x_p)`` and
    ``K = rfft2(weight)`` zero-padded to the same size ``L ≥`` the padded input,
    ``irfft2(X · conj(K))`` is the circular correlation, equal to the linear one at
    the ``H_out × W_out`` positions where no window wraps around. Summing over input
    channels is linear, so it happens on the spectra:
    ``Y[n, o] = Σ_c X[n, c] · conj(K[o, c])``, one (N, C_in) @ (C_in, C_out) complex
    product per frequency, and one inverse transform per output plane.

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W), float32 or float64
    weight : ndarray of shape (C_out, C_in, kH, kW), same dtype
    padding : int or (int, int)

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out)

    Notes
    -----
    Each axis is transformed at the next length of the form 2^a 3^b 5^c. The three
    transforms use ``norm="ortho"`` and one real factor restores the default scaling
    (NumPy's float32 transforms are much slower with a scale factor of exactly 1,
    see :mod:`fancydl.signal`). Round-off grows like ``log L``, not with the kernel
    size, but every output carries an error relative to the *largest* values of the
    plane: FFT convolution is accurate in norm, not entry by entry. For the same
    reason one NaN or inf input pixel makes every output of its image NaN, where
    conv2d's are NaN or ±inf only in the windows that hold it.
    """
    padding, out_size = _check("conv2d_fft", input, weight, padding)
    x_padded = pad2d(input, _symmetric(padding))
    shape = tuple(next_fast_length(n) for n in x_padded.shape[2:])
    with np.errstate(over="ignore", invalid="ignore"):  # NaN and inf: see the module
        spectrum_x = np.fft.rfft2(x_padded, s=shape, norm="ortho")  # (N, C, Lh, Lw/2+1)
        spectrum_w = np.fft.rfft2(weight, s=shape, norm="ortho")  # (O, C, Lh, Lw/2+1)
        # one complex GEMM per frequency: (F, N, C) @ (F, C, O) -> (F, N, O)
        products = np.matmul(spectrum_x.transpose(2, 3, 0, 1),
                             spectrum_w.conj().transpose(2, 3, 1, 0))
        planes = np.fft.irfft2(products.transpose(2, 3, 0, 1), s=shape, norm="ortho")
        planes *= math.sqrt(shape[0] * shape[1])  # ortho·ortho·ortho = (1/√L)·default
    return np.ascontiguousarray(planes[:, :, :out_size[0], :out_size[1]],
                                dtype=input.dtype)


# --- Winograd F(2×2, 3×3) ---------------------------------------------------------------

def derive_winograd_matrices(points=(0, 1, -1), m=2, r=3, infinity_sign=-1):
    """Derive Winograd's minimal-filtering transforms F(m, r) from interpolation points.

    F(m, r) computes ``m`` outputs of an ``r``-tap correlation,
    ``y_i = Σ_k d_{i+k} g_k``, from a tile of ``n = m + r - 1`` inputs with ``n``
    multiplications, as ``y = Aᵀ[(G g) ⊙ (Bᵀ d)]``. It evaluates the polynomials of
    the kernel and of the output at ``n - 1`` finite points and at infinity (their
    leading coefficients), multiplies the values, and interpolates back:

    * ``Aᵀ`` (m × n) evaluates: ``Aᵀ[i, j] = a_j^i`` at the finite points ``a_j``,
      and its last column picks the leading coefficient (``±1`` in the last row);
    * ``G`` (n × r) evaluates the kernel: row ``j`` is ``a_j^k / |f_j|`` with
      ``f_j = Π_{l≠j} (a_j - a_l)``, the Lagrange denominator (its sign goes to
      ``B``), and the last row ``(0, …, 0, 1)``;
    * ``Bᵀ`` (n × n) is then fixed by exactness: the identity must hold for every
      tile ``d`` and kernel ``g``, which is ``m·r·n`` linear equations in the ``n²``
      entries of ``Bᵀ``. They are solved here and checked to hold exactly.

    Parameters
    ----------
    points : sequence of n - 1 distinct numbers
        The finite interpolation points (Lavin & Gray take 0, 1, -1 for F(2, 3)).
    m, r : int
        Outputs per tile and kernel taps.
    infinity_sign : {1, -1}
        Sign of the point at infinity's entry of ``Aᵀ`` (free; Lavin & Gray take -1).

    Returns
    -------
    B : ndarray of shape (n, n)
    G : ndarray of shape (n, r)
    A : ndarray of shape (n, m)
        In Lavin & Gray's notation, ``Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`` for a 2-D tile.

    Raises
    ------
    ValueError
        When the points do not give an exact algorithm (wrong count, repeated points).
    """
    op = "derive_winograd_matrices"
    m, r = check_int(op, "m", m, minimum=1), check_int(op, "r", r, minimum=1)
    points = np.asarray(points, dtype=np.float64)
    n = m + r - 1
    if points.shape != (n - 1,) or len(set(points.tolist())) != n - 1:
        raise ValueError(f"{op}: points must be {n - 1} distinct numbers for F({m}, {r}), "
                         f"got {points.tolist()}")
    a_t = np.zeros((m, n))
    a_t[:, :-1] = points[None, :] ** np.arange(m)[:, None]
    a_t[-1, -1] = infinity_sign
    lagrange = np.array([np.prod([a - b for b in points if b != a]) for a in points])
    g = np.zeros((n, r))
    g[:-1] = points[:, None] ** np.arange(r)[None, :] / np.abs(lagrange)[:, None]
    g[-1, -1] = 1.0
    # Exactness: Σ_j Aᵀ[i, j] G[j, k] Bᵀ[j, t] = [t = i + k] for all i, k, t.
    coefficients = np.einsum("ij,jk,jJ,tT->iktJT", a_t, g, np.eye(n), np.eye(n))
    target = (np.arange(n)[None, None, :] ==
              np.arange(m)[:, None, None] + np.arange(r)[None, :, None]).astype(float)
    b_t = np.linalg.lstsq(coefficients.reshape(m * r * n, n * n), target.ravel(),
                          rcond=None)[0].reshape(n, n)
    residual = np.einsum("ij,jk,jt->ikt", a_t, g, b_t) - target
    if np.abs(residual).max() > 1e-9:
        raise ValueError(f"{op}: no exact F({m}, {r}) algorithm on points "
                         f"{points.tolist()} (residual {np.abs(residual).max():.2g})")
    # the exact entries are small rationals: drop lstsq's round-off (and any -0)
    b_t = np.round(b_t, 12) + 0.0
    return b_t.T, g, a_t.T


_B, _G, _A = derive_winograd_matrices()


def winograd_f23_matrices():
    """Lavin & Gray's F(2×2, 3×3) transforms, as :func:`derive_winograd_matrices`
    derives them from the points 0, 1, -1 and infinity.

    Returns
    -------
    B : ndarray of shape (4, 4)
    G : ndarray of shape (4, 3)
    A : ndarray of shape (4, 2)
        ``Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A``: a 2×2 output tile ``Y`` from a 4×4 input
        tile ``d`` and a 3×3 kernel ``g``.
    """
    return _B.copy(), _G.copy(), _A.copy()


def _sandwich(left, x, right):
    """``left @ x @ right`` over the first two axes of ``x`` (shape (a, b, ...)), for
    all the trailing positions at once; returns shape (left rows, right columns, ...).

    Both products are GEMMs with the small matrix on the left and all the trailing
    positions as columns (a small matrix on the right of a long one is slow in BLAS).
    """
    (a, b), rest = x.shape[:2], x.shape[2:]
    size = math.prod(rest)
    rows = (left @ x.reshape(a, b * size)).reshape(left.shape[0], b, size)  # (l, b, ...)
    both = right.T @ rows  # one (r, b) @ (b, ...) per row: (l, r, ...)
    return both.reshape((left.shape[0], right.shape[1]) + rest)


def conv2d_winograd_f23(input, weight, padding=0):
    """Winograd's minimal filtering F(2×2, 3×3) for 3×3 kernels (Lavin & Gray, 2016).

    The padded input is cut into overlapping 4×4 tiles with stride 2 (each gives a
    2×2 output tile; the bottom and right are zero-padded to whole tiles when the
    output size is odd, and the extra outputs cropped). Then:

    1. kernels, once: ``U = G g Gᵀ`` (4×4 per (C_out, C_in) pair);
    2. tiles: ``V = Bᵀ d B`` (4×4 per (N, C_in, tile));
    3. for each of the 16 positions ``(ξ, ν)`` of the 4×4 transform, one GEMM sums
       over input channels: ``M[ξ, ν] = U[ξ, ν] (C_out × C_in) @ V[ξ, ν] (C_in × tiles)``;
    4. ``Y = Aᵀ M A`` gives each 2×2 output tile.

    Step 3 holds all the multiplications that depend on both the data and the
    kernel: 16 per output tile and channel pair, against 4 · 9 = 36 for direct
    convolution (``B`` and ``A`` hold only 0 and ±1, ``G`` halves).

    Parameters
    ----------
    input : ndarray of shape (N, C_in, H, W), float32 or float64
    weight : ndarray of shape (C_out, C_in, 3, 3), same dtype
    padding : int or (int, int)

    Returns
    -------
    ndarray of shape (N, C_out, H_out, W_out), ``H_out = H + 2 pH - 2``

    Notes
    -----
    F(2×2, 3×3) is as accurate as direct convolution (its transforms hold only 0,
    ±1 and 1/2); larger tiles such as F(4×4, 3×3) save more multiplications but
    their points (±2, ±1/2) amplify round-off, which matters in float16/float32.
    The tile transforms mix 16 input pixels: one NaN or inf pixel makes the 2×2
    output tiles of every 4×4 tile that holds it NaN (up to 4×4 outputs, where
    conv2d has a NaN or ±inf in the 3×3 windows that hold it).

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 3, 3))
    >>> conv2d_winograd_f23(x, w)[0, 0]
    array([[45., 54.],
           [81., 90.]])
    """
    op = "conv2d_winograd_f23"
    padding, out_size = _check(op, input, weight, padding)
    if weight.shape[2:] != (3, 3):
        raise ValueError(f"{op}: weight must have a 3×3 kernel, got shape {weight.shape}")
    dtype, (n, c), c_out = input.dtype, input.shape[:2], weight.shape[0]
    b, g, a = (m.astype(dtype) for m in (_B, _G, _A))
    tiles = tuple(-(-size // 2) for size in out_size)  # ceil: odd sizes padded
    extra = [2 * t + 2 - (size + 2 * p) for t, size, p in
             zip(tiles, input.shape[2:], padding)]
    x_padded = pad2d(input, ((padding[0], padding[0] + extra[0]),
                             (padding[1], padding[1] + extra[1])))
    windows = np.lib.stride_tricks.sliding_window_view(x_padded, (4, 4), axis=(2, 3))
    d = windows[:, :, ::2, ::2].transpose(4, 5, 1, 0, 2, 3)  # (4, 4, C, N, tH, tW)
    with np.errstate(over="ignore", invalid="ignore"):  # NaN and inf: see the module
        u = _sandwich(g, weight.transpose(2, 3, 0, 1), g.T)  # (4, 4, C_out, C)
        v = _sandwich(b.T, d, b)  # (4, 4, C, N, tH, tW)
        m = u.reshape(16, c_out, c) @ v.reshape(16, c, n * tiles[0] * tiles[1])  # 16 GEMMs
        y = _sandwich(a.T, m.reshape((4, 4, c_out, n) + tiles), a)  # (2, 2, C_out, N, ...)
    out = y.transpose(3, 2, 4, 0, 5, 1).reshape(n, c_out, 2 * tiles[0], 2 * tiles[1])
    return np.ascontiguousarray(out[:, :, :out_size[0], :out_size[1]])


# --- counting and timing ----------------------------------------------------------------

#: The four algorithms, by name.
ALGORITHMS = {"direct": conv2d_direct, "im2col": conv2d_im2col, "fft": conv2d_fft,
              "winograd_f23": conv2d_winograd_f23}


def multiplications(algorithm, input_shape, weight_shape, padding=0):
    """Real multiplications of an algorithm's multiply stage (the part that depends on
    both the data and the kernel).

    * ``"direct"`` and ``"im2col"``: ``N · C_out · H_out · W_out · C_in · kH · kW``
      (the same products, in a different order);
    * ``"winograd_f23"``: ``16`` per 2×2 output tile and (C_in, C_out) pair,
      ``N · C_out · C_in · 16 · ⌈H_out/2⌉ · ⌈W_out/2⌉``;
    * ``"fft"``: ``4`` real multiplications per complex product,
      ``N · C_out · C_in · L_h · (L_w/2 + 1)`` products on the half spectrum; it
      does not depend on the kernel size.

    Not counted: the transforms (Winograd's ``B``, ``A`` need only additions and its
    kernel transform runs once per kernel; an FFT of ``L`` points costs about
    ``L log₂ L`` operations per plane, for ``N·C_in + C_in·C_out + N·C_out`` planes).

    Parameters
    ----------
    algorithm : {"direct", "im2col", "fft", "winograd_f23"}
    input_shape : (N, C_in, H, W)
    weight_shape : (C_out, C_in, kH, kW)
    padding : int or (int, int)

    Returns
    -------
    int

    Examples
    --------
    >>> multiplications("direct", (1, 1, 4, 4), (1, 1, 3, 3))
    36
    >>> multiplications("winograd_f23", (1, 1, 4, 4), (1, 1, 3, 3))
    16
    """
    op = "multiplications"
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{op}: algorithm must be one of {', '.join(ALGORITHMS)}, got "
                         f"{algorithm!r}")
    n, c, h, w = (check_int(op, "input_shape", v, minimum=0) for v in input_shape)
    c_out, _, kh, kw = (check_int(op, "weight_shape", v, minimum=1) for v in weight_shape)
    ph, pw = check_pair(op, "padding", padding, minimum=0)
    ho, wo = conv_output_size(h, kh, 1, ph), conv_output_size(w, kw, 1, pw)
    if algorithm in ("direct", "im2col"):
        return n * c_out * ho * wo * c * kh * kw
    if algorithm == "winograd_f23":
        if (kh, kw) != (3, 3):
            raise ValueError(f"{op}: winograd_f23 needs a 3×3 kernel, got {(kh, kw)}")
        return n * c_out * c * 16 * (-(-ho // 2)) * (-(-wo // 2))
    lh, lw = next_fast_length(h + 2 * ph), next_fast_length(w + 2 * pw)
    return 4 * n * c_out * c * lh * (lw // 2 + 1)


def time_algorithms(x, w, padding=0, repeats=5):
    """Best wall-clock time of each algorithm (and of ``fancydl.conv2d``) on one input.

    Each function runs once to warm up, then ``repeats`` times; the best time is kept
    (the least disturbed by other work on the machine). Timings vary from run to run:
    a chapter cell that prints them is tagged ``nbval-ignore-output``.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    w : ndarray of shape (C_out, C_in, kH, kW)
    padding : int or (int, int)
    repeats : int

    Returns
    -------
    dict of str -> float
        Seconds per call for ``"conv2d"`` (the operator) and each algorithm of
        :data:`ALGORITHMS` (Winograd only for a 3×3 kernel).
    """
    repeats = check_int("time_algorithms", "repeats", repeats, minimum=1)
    functions = {"conv2d": lambda x, w, padding: conv2d(x, w, padding=padding)}
    functions.update((name, f) for name, f in ALGORITHMS.items()
                     if name != "winograd_f23" or w.shape[2:] == (3, 3))
    best = {}
    for name, function in functions.items():
        function(x, w, padding)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(x, w, padding)
            times.append(time.perf_counter() - start)
        best[name] = min(times)
    return best
