"""Every exercise checker: the reference passes, the untouched stub is "not attempted
yet", and a plausible wrong answer (the typical mistake) is refused with a message
that helps; the checker enforces the functions an exercise forbids or requires."""

import importlib
import math
import pkgutil
import sys

import numpy as np
import pytest

import fancydl
import fancydl.exercises as exercises
from fancydl.exercises import NOT_ATTEMPTED, check, verdict

for _module in pkgutil.iter_modules(exercises.__path__):
    importlib.import_module(f"fancydl.exercises.{_module.name}")

NAMES = sorted(name for name in exercises._REGISTRY if not name.startswith("testing."))


def _registered(name):
    return exercises._REGISTRY[name]


# --- reference solutions that obey the exercise's rules ---------------------------------
# (the registered references may use what the reader may not, e.g. fancydl.vjp)

def _bn_input_gradient(x, gamma, grad, eps):
    m = x.shape[0]
    s = 1 / np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) * s
    g_hat = gamma * grad
    return s / m * (m * g_hat - g_hat.sum(0) - x_hat * (g_hat * x_hat).sum(0))


def _group_norm(x, num_groups, eps):
    grouped = x.reshape(x.shape[0], num_groups, -1)
    normalized = (grouped - grouped.mean(2, keepdims=True)) / np.sqrt(
        grouped.var(2, keepdims=True) + eps)
    return normalized.reshape(x.shape)


def _conv_via_im2col(x, weight, stride, padding):
    n, _, h, w = x.shape
    c_out, _, k, _ = weight.shape
    cols = fancydl.im2col(x, k, padding=padding, stride=stride)
    h_out, w_out = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    return (weight.reshape(c_out, -1) @ cols).reshape(n, c_out, h_out, w_out)


def _pointwise(x, weight):
    return np.einsum("oc,nchw->nohw", weight[:, :, 0, 0], x)


def _max_pool_backward(x, k, grad_out):
    h, w = x.shape
    windows = x.reshape(h // k, k, w // k, k).transpose(0, 2, 1, 3).reshape(
        h // k, w // k, k * k)
    grad = np.zeros((h // k, w // k, k * k))
    np.put_along_axis(grad, windows.argmax(-1)[..., None], grad_out[..., None], -1)
    return grad.reshape(h // k, w // k, k, k).transpose(0, 2, 1, 3).reshape(h, w)


def _overlap_counts(length, kernel_size, stride):
    counts = np.zeros((length - 1) * stride + kernel_size)
    starts = np.arange(length) * stride
    np.add.at(counts, (starts[:, None] + np.arange(kernel_size)).ravel(), 1.0)
    return counts


def _zero_insertion(image, kernel, stride):
    h, w = image.shape
    kh, kw = kernel.shape
    holes = np.zeros(((h - 1) * stride + 1, (w - 1) * stride + 1))
    holes[::stride, ::stride] = image
    padded = np.pad(holes, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    return fancydl.conv2d(padded[None, None], kernel[::-1, ::-1][None, None])[0, 0]


SOLUTIONS = {
    "batch_norm.input_gradient": _bn_input_gradient,
    "batch_norm.group_norm": _group_norm,
    "im2col.conv_via_im2col": _conv_via_im2col,
    "im2col.pointwise": _pointwise,
    "pooling.max_pool_backward": _max_pool_backward,
    "transposed_conv.overlap_counts": _overlap_counts,
    "transposed_conv.zero_insertion": _zero_insertion,
}


def _solution(name):
    ex = _registered(name)
    if name in SOLUTIONS:
        return SOLUTIONS[name]
    return ex.reference() if ex.cases is None else ex.reference


# --- the typical mistakes: (exercise, wrong answer, words the message must contain) -----

def _softmax_global_max(z):
    e = np.exp(z - z.max())
    return e / e.sum(axis=-1, keepdims=True)


def _naive_ceil(size, kernel_size, stride, padding, dilation, ceil_mode):
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    return (-(-span // stride) if ceil_mode else span // stride) + 1


def _roi_bins_bankers(x1, x2, output_size, size):
    begin, end = int(np.round(x1)), int(np.round(x2))
    bin_size = max(end - begin + 1, 1) / output_size
    starts = [min(max(math.floor(p * bin_size) + begin, 0), size)
              for p in range(output_size)]
    ends = [min(max(math.ceil((p + 1) * bin_size) + begin, 0), size)
            for p in range(output_size)]
    return starts, ends


def _deform_bilinear_clamped(image, y, x):
    from fancydl.exercises.roi_pooling import bilinear
    return np.array([bilinear(image, a, b) if (-1 < a < image.shape[0]
                                               and -1 < b < image.shape[1]) else 0.0
                     for a, b in zip(y, x)])


def _rotation_offsets_clockwise(kernel_size, dilation, degrees):
    from fancydl.exercises.deformable_conv import rotation_offsets
    return rotation_offsets(kernel_size, dilation, -degrees)


WRONG = [
    # softmax
    ("softmax.stable_softmax", _softmax_global_max, "invalid value"),
    ("softmax.stable_softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True),
     "overflow encountered in exp"),
    ("softmax.logsumexp", lambda z: np.log(np.exp(z).sum(-1)), "overflow"),
    ("softmax.cross_entropy_gradient",
     lambda z, t: _solution("softmax.stable_softmax")(z) - np.eye(z.shape[1])[t],
     "differs"),  # forgotten 1 / N
    ("softmax.cross_entropy_gradient",
     lambda z, t: fancydl.vjp(lambda v: fancydl.cross_entropy(v, t), z)[1](1.0)[0],
     "not to use `fancydl.vjp`"),
    ("softmax.smoothing_floor", 0.0, "expected"),
    ("softmax.smoothing_floor", "0.5", "string"),
    ("softmax.kl_divergence",
     lambda t, z: float(-(t * (z - np.log(np.exp(z).sum()))).sum()),
     "differs"),  # the cross-entropy, without subtracting the entropy of t
    ("softmax.kl_divergence", lambda t, z: np.array([0.0]), "single number"),
    ("softmax.tempered_gradient",
     lambda z, k, t: _solution("softmax.stable_softmax")(z / t) - np.eye(len(z))[k],
     "differs"),  # forgotten chain-rule factor 1 / T
    # batch_norm
    ("batch_norm.input_gradient", lambda x, g, d, e: g * d / np.sqrt(x.var(0) + e),
     "differs"),  # forgotten mean and variance paths
    ("batch_norm.input_gradient", lambda x, g, d, e: _bn_input_gradient(x, g, d, 0.0),
     "differs"),  # forgotten eps
    ("batch_norm.running_update",
     lambda m, v, x, mom: ((1 - mom) * m + mom * x.mean(0),
                           (1 - mom) * v + mom * x.var(0)), "differs"),  # biased var
    ("batch_norm.fold_linear",
     lambda w, b, m, v, g, be, e: (w * (g / np.sqrt(v + e))[:, None], b + be),
     "differs"),
    ("batch_norm.group_norm",
     lambda x, g, e: fancydl.group_norm(x, g, eps=e), "not to use `fancydl.group_norm`"),
    ("batch_norm.group_norm",
     lambda x, g, e: _group_norm(x, x.shape[1], e), "differs"),  # instance norm
    ("batch_norm.jacobian_m3", np.eye(3), "expected"),
    ("batch_norm.two_examples", lambda a, b, e: np.array([1.0, -1.0]),
     "differs"),  # forgets eps and the order of a and b
    ("batch_norm.two_examples",
     lambda a, b, e: np.array([a - b, b - a]) / np.sqrt((a - b) ** 2 + e),
     "differs"),  # the deviation from the mean is (a - b) / 2
    # conv_cnn_vs_math
    ("conv_cnn_vs_math.convolve_with_correlate",
     lambda a, k: fancydl.correlate2d(a, k, mode="full"), "differs"),  # no flip
    ("conv_cnn_vs_math.convolve_with_correlate",
     lambda a, k: fancydl.convolve2d(a, k, mode="full"), "not to use"),
    ("conv_cnn_vs_math.convolve_with_correlate",
     lambda a, k: np.real(np.fft.ifft2(
         np.fft.fft2(a, (a.shape[0] + k.shape[0] - 1, a.shape[1] + k.shape[1] - 1))
         * np.fft.fft2(k, (a.shape[0] + k.shape[0] - 1, a.shape[1] + k.shape[1] - 1)))),
     "`fancydl.correlate2d`"),  # right numbers, not the required function
    ("conv_cnn_vs_math.fft_convolve_1d", lambda a, b: np.convolve(a, b),
     "not to use `np.convolve`"),
    ("conv_cnn_vs_math.fft_convolve_1d",
     lambda a, b: np.fft.irfft(np.fft.rfft(a, max(len(a), len(b)))
                               * np.fft.rfft(b, max(len(a), len(b))),
                               max(len(a), len(b))), "differs"),  # circular
    ("conv_cnn_vs_math.fft_convolve_1d",
     lambda a, b: np.fft.ifft(np.fft.fft(a, len(a) + len(b) - 1)
                              * np.fft.fft(b, len(a) + len(b) - 1)), "complex"),
    ("conv_cnn_vs_math.apparent_frequency", lambda f, fs: f % fs, "differs"),
    ("conv_cnn_vs_math.moving_average_impulse_response", np.full(3, 1 / 3), "shape"),
    ("conv_cnn_vs_math.winograd_output_transform",
     np.array([[1, 1, 1, 0], [0, 1, 1, 1]]), "expected"),
    ("conv_cnn_vs_math.stacked_params",
     lambda c, n, k: (n * k * k * c * c, (n * k) ** 2 * c * c), "differs"),
    # deconvolution
    ("deconvolution.polynomial_division",
     lambda s, d: (np.zeros(len(s) - len(d) + 1), s), "differs"),
    ("deconvolution.oracle_wiener",
     lambda y, x, psf, sigma: np.fft.irfft2(
         np.fft.rfft2(y) / fancydl.transfer_function(psf, y.shape), s=y.shape),
     "differs"),  # the naive inverse
    ("deconvolution.richardson_lucy_adjoint",
     lambda image, psf, n: fancydl.richardson_lucy(image, psf, n, clip=False),
     "differs"),  # the even-PSF trap
    ("deconvolution.richardson_lucy_step",
     lambda h, y, x: x * (h.T @ (y / (h @ x))), "differs"),  # forgotten H^T 1
    ("deconvolution.tikhonov",
     lambda h, y, lam: np.linalg.lstsq(h, y, rcond=None)[0], "differs"),
    # deformable_conv
    ("deformable_conv.bilinear", _deform_bilinear_clamped, "differs"),
    ("deformable_conv.sample_gradient_y",
     lambda image, y, x: (fancydl.bilinear_sample(image, y + 1e-6, x)
                          - fancydl.bilinear_sample(image, y - 1e-6, x)) / 2e-6,
     "differs"),  # finite differences are not exact
    ("deformable_conv.rotation_offsets", _rotation_offsets_clockwise, "differs"),
    ("deformable_conv.mask_as_weight", lambda w, m: w * m.reshape(w.shape[2:]).T,
     "differs"),
    ("deformable_conv.sample_image_gradient",
     lambda shape, y, x: _solution("roi_pooling.align_weights")(y, x, *shape),
     "differs"),  # ROI Align's clamping is not deform_conv2d's rule
    ("deformable_conv.integer_shift",
     lambda image, dy, dx: _solution("deformable_conv.integer_shift")(image, -dy, -dx),
     "differs"),  # shifted the wrong way
    # dilated_conv
    ("dilated_conv.effective_kernel_size", lambda k, d: str(d * (k - 1) + 1), "string"),
    ("dilated_conv.effective_kernel_size", lambda k, d: d * k, "differs"),
    ("dilated_conv.stack_receptive_field", lambda ds, k: 1 + sum(d * k for d in ds),
     "differs"),
    ("dilated_conv.dilate_kernel",
     lambda w, d: np.kron(w, np.eye(1, d))[:, :d * (w.shape[1] - 1) + 1], "shape"),
    ("dilated_conv.same_padding", lambda k, d: d * (k - 1) / 2, "integer"),
    ("dilated_conv.same_padding", lambda k, d: (k - 1) // 2, "differs"),
    ("conv_cnn_vs_math.strided_receptive_field",
     lambda layers: 1 + sum(d * (k - 1) for k, s, d in layers), "differs"),
    ("conv_cnn_vs_math.strided_receptive_field",
     lambda layers: fancydl.windows.receptive_field(layers), "not to use"),
    ("dilated_conv.layers_needed",
     lambda field, k: math.ceil((field - 1) / (k - 1)), "differs"),  # linear growth
    ("dilated_conv.layers_needed",
     lambda field, k: math.log2((field - 1) / (k - 1) + 1), "integer"),  # no ceil
    ("dilated_conv.gridding_fraction", 1.0, "expected"),
    # grouped_conv_shuffle
    ("grouped_conv_shuffle.shuffle_order",
     lambda c, g: np.arange(c).reshape(c // g, g).T.ravel(), "differs"),
    ("grouped_conv_shuffle.shuffle_order",
     lambda c, g: fancydl.channel_shuffle(np.arange(float(c))[None, :, None, None],
                                          g)[0, :, 0, 0].astype(int),
     "not to use `fancydl.channel_shuffle`"),
    ("grouped_conv_shuffle.grouped_as_separate_convs",
     lambda x, w, g: fancydl.conv2d(x, w, groups=g), "groups=1"),
    ("grouped_conv_shuffle.grouped_as_separate_convs",
     lambda x, w, g: np.concatenate([fancydl.conv2d(xi, np.split(w, g)[0])
                                     for xi in np.split(x, g, axis=1)], axis=1),
     "differs"),  # the first group's weight for every group
    ("grouped_conv_shuffle.depth_to_mix", lambda c, g: 2, "differs"),
    ("grouped_conv_shuffle.unshuffle_order",
     lambda c, g: _solution("grouped_conv_shuffle.shuffle_order")(c, g), "differs"),
    ("grouped_conv_shuffle.shuffle_period", lambda c, g: 2, "differs"),  # involution?
    # im2col
    ("im2col.output_size",
     lambda n, k, s, p, d: (n + 2 * p - k) // s + 1, "differs"),  # forgotten dilation
    ("im2col.output_size",
     lambda n, k, s, p, d: (n + 2 * p - d * (k - 1) - 1) / s + 1, "integer"),
    ("im2col.output_size",
     lambda n, k, s, p, d: fancydl.conv_output_size(n, k, s, p, d), "not to use"),
    ("im2col.buffer_bytes",
     lambda shape, k, s, p, b: _solution("im2col.buffer_bytes")(shape, k, s, p, b) + 59,
     "differs"),  # off by 59 bytes on 59 MB
    ("im2col.buffer_bytes",
     lambda shape, k, s, p, b: _solution("im2col.buffer_bytes")(shape, k, s, p, b)
     // shape[0], "differs"),  # one image only
    ("im2col.conv_via_im2col",
     lambda x, w, s, p: fancydl.conv2d(x, w, stride=s, padding=p), "not to use"),
    ("im2col.conv_via_im2col",
     lambda x, w, s, p: np.einsum("ockl,nchw->nohw", w, x[:, :, :1, :1]),
     "`fancydl.im2col`"),
    ("im2col.pointwise", lambda x, w: np.einsum("oc,nchw->nohw", w[:, :, 0, 0].T, x)
     if w.shape[0] == w.shape[1] else x[:, :1] * 0, "differs"),
    ("im2col.pointwise", lambda x, w: fancydl.conv2d(x, w), "not to use"),
    ("im2col.copies_1d", lambda n, k, s, p: np.full(n, k), "differs"),
    ("im2col.gemm_dims", lambda shape, o, k, s, p: (o, shape[1] * k * k,
                                                    shape[2] * shape[3]), "differs"),
    # pointwise_depthwise
    ("pointwise_depthwise.pointwise_einsum", lambda x, w: fancydl.conv2d(x, w),
     "not to use"),
    ("pointwise_depthwise.pointwise_einsum", lambda x, w: np.tensordot(
        w[:, :, 0, 0], x, axes=([1], [1])).transpose(1, 0, 2, 3), "`np.einsum`"),
    ("pointwise_depthwise.separable_mac_ratio", lambda i, o, k: 1 / k ** 2, "differs"),
    ("pointwise_depthwise.bottleneck_params",
     lambda c, r, k: 2 * c * r + r * k * k, "differs"),
    ("pointwise_depthwise.separable_as_dense",
     lambda d, p: p[:, :, 0, 0][:, :, None, None] * d[:, 0].sum(0),
     "differs"),
    ("pointwise_depthwise.max_rank", lambda i, o, k: (min(o, i * k * k),) * 2,
     "differs"),
    # pooling
    ("pooling.output_size", _naive_ceil, "differs"),
    ("pooling.output_size",
     lambda n, k, s, p, d, c: _naive_ceil(n, k, s, p, d, c) - (
         c and (_naive_ceil(n, k, s, p, d, c) - 1) * s >= n), "differs"),
    ("pooling.max_pool_backward",
     lambda x, k, g: np.kron(g, np.ones((k, k))) * (x == np.kron(
         x.reshape(x.shape[0] // k, k, -1, k).max((1, 3)), np.ones((k, k)))),
     "differs"),  # every tied maximum gets the gradient
    ("pooling.max_pool_backward",
     lambda x, k, g: fancydl.vjp(lambda t: fancydl.max_pool2d(t, k), x[None, None])[1](
         g[None, None])[0][0, 0], "not to use"),
    ("pooling.avg_pool_as_conv_weight", lambda c, k: np.full((c, c, k, k), 1 / k ** 2),
     "shape"),
    ("pooling.overlap_avg_gradient", np.repeat([1.0, 2.0, 3.0], [3, 2, 2]) / 3,
     "expected"),
    ("pooling.max_unpool",  # every pixel of the window gets the value
     lambda v, i, shape: np.kron(v, np.ones((shape[0] // v.shape[0],
                                             shape[1] // v.shape[1]))), "differs"),
    ("pooling.max_unpool",  # fancydl's own operator, which the exercise rules out
     lambda v, i, shape: fancydl.max_unpool2d(v[None, None], i[None, None], 2,
                                              output_size=shape)[0, 0], "not to use"),
    # roi_pooling
    ("roi_pooling.c_round", lambda v: np.round(v), "differs"),
    ("roi_pooling.roi_pool_bins", _roi_bins_bankers, "differs"),
    ("roi_pooling.roi_pool_bins",
     lambda x1, x2, n, size: [s + 1 for s in _solution("roi_pooling.roi_pool_bins")(
         x1, x2, n, size)[0]], "expected a tuple"),
    ("roi_pooling.bilinear",
     lambda image, y, x: float(fancydl.bilinear_sample(image, np.array([y]),
                                                       np.array([x]))[0]),
     "differs"),  # zero corners instead of ROI Align's clamping
    ("roi_pooling.align_weights",
     lambda y, x, h, w: _solution("deformable_conv.sample_image_gradient")((h, w), y, x),
     "differs"),
    ("roi_pooling.quantization_shift",
     lambda x1, s: float(np.round(x1 * s) / s - x1), "differs"),  # banker's rounding
    ("roi_pooling.quantization_shift",
     lambda x1, s: float(np.sign(x1 * s) * np.floor(abs(x1 * s) + 0.5) - x1 * s),
     "differs"),  # in feature cells, not input pixels
    # squeeze_excitation
    ("squeeze_excitation.se_params", lambda c, r: 2 * c * (c // r), "differs"),
    ("squeeze_excitation.se_numpy",
     lambda x, w1, b1, w2, b2: fancydl.squeeze_excitation(x, w1, b1, w2, b2),
     "not to use"),
    ("squeeze_excitation.se_numpy",
     lambda x, w1, b1, w2, b2: x * (1 / (1 + np.exp(-(np.maximum(
         x.mean((2, 3)) @ w1[:, :, 0, 0].T, 0) @ w2[:, :, 0, 0].T))))[:, :, None, None],
     "differs"),  # forgotten biases
    ("squeeze_excitation.scale_gradient", lambda x, g: (g * x).sum(axis=(2, 3)),
     "shape"),
    ("squeeze_excitation.squeeze_of_pointwise",
     lambda x, w, b: fancydl.conv2d(x, w, b).mean(axis=(2, 3)), "not to use"),
    ("squeeze_excitation.squeeze_of_pointwise",
     lambda x, w, b: x.mean(axis=(2, 3)) @ w[:, :, 0, 0].T, "differs"),  # no bias
    ("squeeze_excitation.collapsed_excitation",
     lambda w1, b1, w2, b2: (w2[:, :, 0, 0] @ w1[:, :, 0, 0], b2), "differs"),
    ("squeeze_excitation.collapsed_excitation",
     lambda w1, b1, w2, b2: w2[:, :, 0, 0] @ w1[:, :, 0, 0], "expected a tuple"),
    # stochastic_pooling
    ("stochastic_pooling.probabilities", lambda a: a / a.sum(), "differs"),
    ("stochastic_pooling.test_gradient",
     lambda a: 2 * a / a.sum() if a.sum() > 0 else np.zeros_like(a), "differs"),
    ("stochastic_pooling.inverse_cdf_sample",
     lambda a, u: int(np.argmax(np.cumsum(a) >= u * a.sum())), "differs"),
    ("stochastic_pooling.score_function", lambda a, i: np.eye(len(a))[i] / a[i],
     "differs"),  # forgotten -1/S
    ("stochastic_pooling.output_variance", 0.0, "expected"),
    # transposed_conv
    ("transposed_conv.output_size",
     lambda n, k, s, p, a, d: (n - 1) * s - 2 * p + k + a, "differs"),
    ("transposed_conv.output_padding",
     lambda n, k, s, p: (n + 2 * p - k) // s, "differs"),
    ("transposed_conv.overlap_counts",
     lambda n, k, s: fancydl.conv_transpose2d(np.ones((1, 1, 1, n)),
                                              np.ones((1, 1, 1, k)),
                                              stride=(1, s))[0, 0, 0], "not to use"),
    ("transposed_conv.overlap_counts",
     lambda n, k, s: np.full((n - 1) * s + k, -(-k // s)), "differs"),
    ("transposed_conv.zero_insertion",
     lambda x, w, s: fancydl.conv_transpose2d(x[None, None], w[None, None],
                                              stride=s)[0, 0], "not to use"),
    ("transposed_conv.zero_insertion",
     lambda x, w, s: _zero_insertion(x, w[::-1, ::-1], s), "differs"),  # no rotation
    ("transposed_conv.transpose_matrix",
     np.array([[1.0, 2.0, 3.0, 0, 0], [0, 0, 1.0, 2.0, 3.0]]), "shape"),
    ("transposed_conv.input_gradient",
     lambda g, w, s, p: fancydl.conv2d(g, w[:, :, ::-1, ::-1], stride=s, padding=p),
     "differs"),  # a flipped kernel: that was the other direction
    ("transposed_conv.input_gradient",
     lambda g, w, s, p: fancydl.vjp(lambda x: fancydl.conv_transpose2d(
         x, w, stride=s, padding=p), np.zeros((1,)))[0], "not to use"),
    # training_cnn (checkers written with the capstone chapter)
    ("training_cnn.parameter_count", 9 * 16 + 9 * 16 * 32 + 128 * 10 + 10, "expected"),
    ("training_cnn.momentum_limit", lambda lr, mu, g: -lr * g, "differs"),
    ("training_cnn.momentum_limit",
     lambda lr, mu, g: -lr * g * mu / (1 - mu), "differs"),
    ("training_cnn.adam_first_step",  # without the bias corrections
     lambda g, lr, eps: -lr * 0.1 * g / (np.sqrt(0.001) * np.abs(g) + eps),
     "differs"),
    ("training_cnn.adam_first_step", lambda g, lr, eps: -lr * np.sign(g), "differs"),
    ("training_cnn.batch_norm_eval",
     lambda x, m, v, w, b: (x - m) / np.sqrt(v + 1e-5) * w + b if x.ndim == 2 else x,
     "differs"),
]


def _stub(*args):
    raise NotImplementedError


def test_every_exercise_has_a_wrong_answer_test():
    tested = {name for name, _, _ in WRONG}
    missing = sorted(set(NAMES) - tested - {"training_cnn.train_step"})
    assert not missing, f"no wrong-answer test for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_solution_passes(name):
    status, message = verdict(name, _solution(name))
    assert status == "pass", message


@pytest.mark.parametrize("name", NAMES)
def test_the_untouched_stub_is_not_attempted(name):
    assert verdict(name, ...) == (NOT_ATTEMPTED, "replace the `...` with your answer")
    if _registered(name).cases is not None:
        assert verdict(name, _stub)[0] == NOT_ATTEMPTED
        assert verdict(name, lambda *args: ...)[0] == NOT_ATTEMPTED


@pytest.mark.parametrize("name, answer, words", WRONG,
                         ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(WRONG)])
def test_a_typical_wrong_answer_is_refused_with_a_helpful_message(name, answer, words):
    status, message = verdict(name, answer)
    assert status == "fail"
    assert words in message, message


# --- the holes of issue 14 --------------------------------------------------------------

def test_the_naive_ceil_formula_fails_pooling_output_size():
    status, message = verdict("pooling.output_size", _naive_ceil)
    assert status == "fail" and "expected: 3" in message and "got:      4" in message


def test_a_string_is_refused_where_a_number_is_expected():
    status, message = verdict("dilated_conv.effective_kernel_size",
                              lambda k, d: str(d * (k - 1) + 1))
    assert status == "fail" and "string '3'" in message and "not its text" in message


def test_a_numpy_array_of_the_right_bins_is_accepted():
    reference = _solution("roi_pooling.roi_pool_bins")
    as_array = lambda *args: np.array(reference(*args))  # noqa: E731
    as_arrays = lambda *args: tuple(np.array(v) for v in reference(*args))  # noqa: E731
    assert verdict("roi_pooling.roi_pool_bins", as_array)[0] == "pass"
    assert verdict("roi_pooling.roi_pool_bins", as_arrays)[0] == "pass"
    assert verdict("roi_pooling.roi_pool_bins",
                   lambda *args: np.array(reference(*args)) + 1)[0] == "fail"


def test_integers_are_compared_exactly():
    reference = _solution("im2col.buffer_bytes")
    args = ((8, 3, 224, 224), 7, 2, 3, 4)
    assert reference(*args) > 59e6 / 2  # the "59 MB" scale
    for wrong in (1, -1, 59):
        status, _ = verdict("im2col.buffer_bytes", lambda *a: reference(*a) + wrong)
        assert status == "fail"
    assert verdict("im2col.buffer_bytes", lambda *a: np.int64(reference(*a)))[0] == "pass"
    status, message = verdict("im2col.buffer_bytes", lambda *a: float(reference(*a)))
    assert status == "fail" and "integer" in message


def test_none_and_bool_and_complex_answers_are_named():
    assert "forget to `return`" in verdict("softmax.stable_softmax", lambda z: None)[1]
    assert "bool" in verdict("dilated_conv.same_padding", lambda k, d: True)[1]
    assert "complex" in verdict("softmax.smoothing_floor", 0.5 + 0j)[1]


def test_a_value_answer_with_the_wrong_type_says_why():
    status, message = verdict("batch_norm.jacobian_m3", [[1, 2], [3, 4]])
    assert status == "fail" and "shape" in message


# --- forbidden and required functions --------------------------------------------------

def test_a_forbidden_function_is_restored_after_the_check_even_on_error():
    original = fancydl.conv_transpose2d

    def answer(image, kernel, stride):
        raise RuntimeError("boom")

    status, message = verdict("transposed_conv.zero_insertion", answer)
    assert status == "fail" and "RuntimeError" in message
    assert fancydl.conv_transpose2d is original
    verdict("transposed_conv.zero_insertion",
            lambda x, w, s: fancydl.conv_transpose2d(x, w, stride=s))
    assert fancydl.conv_transpose2d is original


def test_a_forbidden_function_imported_by_name_is_caught_and_restored():
    namespace = {"np": np}
    exec("from fancydl import vjp, max_pool2d\n"
         "def answer(x, k, g):\n"
         "    return vjp(lambda t: max_pool2d(t, k), x[None, None])[1](\n"
         "        g[None, None])[0][0, 0]\n", namespace)
    status, message = verdict("pooling.max_pool_backward", namespace["answer"])
    assert status == "fail" and "not to use `fancydl.vjp`" in message
    assert namespace["vjp"] is fancydl.vjp


def test_torch_functions_are_forbidden_once_torch_is_imported():
    torch = pytest.importorskip("torch")
    backward = torch.Tensor.backward

    def answer(z, target):
        t = torch.tensor(z, requires_grad=True)
        torch.nn.functional.cross_entropy(t, torch.tensor(target)).backward()
        return t.grad.numpy()

    status, message = verdict("softmax.cross_entropy_gradient", answer)
    assert status == "fail" and "torch.Tensor.backward" in message
    assert torch.Tensor.backward is backward and "backward" in vars(torch.Tensor)


def test_a_required_function_is_counted_per_case():
    calls = []

    def answer(image, kernel):
        calls.append(1)
        return fancydl.correlate2d(image, kernel[::-1, ::-1], mode="full")

    check("conv_cnn_vs_math.convolve_with_correlate", answer, must_pass=True)
    assert fancydl.correlate2d.__module__ == "fancydl.signal"
    assert len(calls) == len(_registered("conv_cnn_vs_math.convolve_with_correlate").cases)


def test_the_checker_leaves_no_stub_behind():
    modules = {name: dict(vars(module)) for name, module in sys.modules.items()
               if name.split(".")[0] in ("fancydl", "numpy", "scipy")}
    for name, answer, _ in WRONG:
        verdict(name, answer)
    for name, before in modules.items():
        after = vars(sys.modules[name])
        changed = [key for key, value in before.items() if after.get(key) is not value]
        assert not changed, f"{name}: {changed}"
