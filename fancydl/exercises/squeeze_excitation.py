"""Exercises of the chapter "Squeeze-and-Excitation"."""

import numpy as np

from . import exercise

_RNG = np.random.default_rng(11)


@exercise("squeeze_excitation.se_params",
          cases=[(64, 16), (256, 16), (512, 8), (2048, 16), (32, 4), (16, 16)])
def se_params(channels, reduction):
    """Parameters of an SE block on C channels with reduction r (weights and biases)."""
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels


def _se_cases():
    cases = []
    for n, c, r, h, w in [(1, 4, 2, 3, 3), (2, 8, 4, 2, 5), (3, 6, 3, 1, 1)]:
        cases.append((_RNG.standard_normal((n, c, h, w)),
                      _RNG.standard_normal((c // r, c, 1, 1)), _RNG.standard_normal(c // r),
                      _RNG.standard_normal((c, c // r, 1, 1)), _RNG.standard_normal(c)))
    return cases


@exercise("squeeze_excitation.se_numpy", cases=_se_cases(),
          forbid=("fancydl.squeeze_excitation", "fancydl.conv2d", "fancydl.sigmoid",
                  "fancydl.relu", "fancydl.adaptive_avg_pool2d", "fancydl.avg_pool2d"))
def se_numpy(x, w1, b1, w2, b2):
    """The SE block in plain NumPy: squeeze, excite, scale."""
    z = x.mean(axis=(2, 3))                               # (N, C)
    hidden = np.maximum(z @ w1[:, :, 0, 0].T + b1, 0)     # (N, C/r)
    scale = 1 / (1 + np.exp(-(hidden @ w2[:, :, 0, 0].T + b2)))
    return x * scale[:, :, None, None]


def _scale_grad_cases():
    return [(_RNG.standard_normal((n, c, h, w)), _RNG.standard_normal((n, c, h, w)))
            for n, c, h, w in [(1, 3, 4, 4), (2, 5, 2, 3), (1, 1, 1, 1)]]


@exercise("squeeze_excitation.scale_gradient", cases=_scale_grad_cases())
def scale_gradient(x, grad_out):
    """Gradient with respect to the scale s (N, C, 1, 1) of out = x * s."""
    return (grad_out * x).sum(axis=(2, 3), keepdims=True)


# --- derivations -----------------------------------------------------------------------

def _squeeze_cases():
    shapes = [(1, 3, 2, 4, 4), (2, 5, 7, 3, 6), (3, 1, 4, 1, 1)]
    return [(_RNG.standard_normal((n, c, h, w)), _RNG.standard_normal((o, c, 1, 1)),
             _RNG.standard_normal(o)) for n, c, o, h, w in shapes]


@exercise("squeeze_excitation.squeeze_of_pointwise", cases=_squeeze_cases(), rtol=1e-9,
          atol=1e-12, forbid=("fancydl.conv2d", "torch.nn.functional.conv2d"))
def squeeze_of_pointwise(x, weight, bias):
    """The squeeze (mean over the pixels, (N, C_out)) of conv2d(x, weight, bias) for a
    1x1 weight, without the convolution: W mean(x) + b, by linearity."""
    return x.mean(axis=(2, 3)) @ weight[:, :, 0, 0].T + bias


def _collapse_cases():
    cases = []
    for c, r in [(4, 2), (8, 4), (6, 3), (3, 1)]:
        cases.append((_RNG.standard_normal((c // r, c, 1, 1)), _RNG.standard_normal(c // r),
                      _RNG.standard_normal((c, c // r, 1, 1)), _RNG.standard_normal(c)))
    return cases


@exercise("squeeze_excitation.collapsed_excitation", cases=_collapse_cases(),
          rtol=1e-10, atol=1e-12)
def collapsed_excitation(w1, b1, w2, b2):
    """Without its ReLU the excitation's pre-activation is one affine map of the
    squeezed vector z: W2 (W1 z + b1) + b2 = M z + c. Returns (M (C, C), c (C,))."""
    m1, m2 = w1[:, :, 0, 0], w2[:, :, 0, 0]
    return m2 @ m1, m2 @ b1 + b2
