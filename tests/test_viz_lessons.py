"""The lesson figures compute what the operators compute.

* the conv-arithmetic atlas: every regime's output size is PyTorch's, its drawing has
  one output cell per output, and each transposed regime undoes its direct one;
* the ROI figure: the drawn ROI Align sample points, bilinearly sampled and averaged
  per bin, give roi_align's output; the drawn ROI Pool bins' maxima give roi_pool's;
* the softmax lessons: the Hessian diag(y) - yyᵀ is softmax's Jacobian (finite
  differences) and logsumexp's Hessian, positive semi-definite; squared error's
  gradient vanishes where cross-entropy's does not.
"""

import matplotlib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fancydl
from fancydl.viz import conv_atlas, roi, softmax_lessons

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REGIMES = conv_atlas.atlas_regimes()


def _ids(regimes):
    return [r.name for r in regimes]


def test_atlas_covers_every_relationship():
    numbers = {r.relationship for r in REGIMES}
    assert set(range(1, 16)) - numbers == {7}  # 7 is the general transposed recipe
    assert sum(r.transposed for r in REGIMES) == len(REGIMES) // 2
    odd = [r for r in REGIMES if not r.transposed and r.s > 1
           and (r.i + 2 * r.p - r.k) % r.s]
    assert odd, "the odd case (i + 2p - k not a multiple of s) is missing"


@pytest.mark.parametrize("regime", REGIMES, ids=_ids(REGIMES))
def test_atlas_output_sizes_are_torchs(regime):
    torch = pytest.importorskip("torch")
    if regime.transposed:
        x = torch.zeros(1, 1, regime.i, regime.i)
        out = torch.nn.functional.conv_transpose2d(
            x, torch.zeros(1, 1, regime.k, regime.k), stride=regime.s, padding=regime.p,
            output_padding=regime.a, dilation=regime.d)
    else:
        out = torch.nn.functional.conv2d(torch.zeros(1, 1, regime.i, regime.i),
                                         torch.zeros(1, 1, regime.k, regime.k),
                                         stride=regime.s, padding=regime.p,
                                         dilation=regime.d)
    assert tuple(out.shape[2:]) == (regime.o, regime.o)


def test_transposed_regimes_undo_their_direct_ones():
    half = len(REGIMES) // 2
    for direct, transposed in zip(REGIMES[:half], REGIMES[half:]):
        assert transposed.transposed and not direct.transposed
        assert (transposed.i, transposed.o) == (direct.o, direct.i)
        assert (transposed.k, transposed.s, transposed.p, transposed.d) == \
            (direct.k, direct.s, direct.p, direct.d)


@pytest.mark.parametrize("regime", REGIMES, ids=_ids(REGIMES))
def test_atlas_drawing(regime):
    fig = conv_atlas.regime_figure(regime)
    try:
        assert conv_atlas.output_cells(fig) == regime.o ** 2
        width, _ = fig.get_size_inches()
        assert width <= 7.5
        texts = [t for ax in fig.axes for t in ax.texts + [ax.title]] + fig.texts
        assert all(t.get_fontsize() >= 9 for t in texts if t.get_text())
        assert f"o={regime.o}" in fig.texts[0].get_text()
    finally:
        plt.close(fig)


def test_regime_caption_numbers():
    odd_transposed = next(r for r in REGIMES if r.transposed and r.a)
    assert odd_transposed.relationship == 14
    assert "a=1" in odd_transposed.caption()


# --- ROI ------------------------------------------------------------------------------

def _bilinear(fmap, y, x):
    """torchvision's bilinear read of a (H, W) map at (y, x): 0 beyond one pixel
    outside, clamped to the border in between."""
    h, w = fmap.shape
    if y < -1 or y > h or x < -1 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = min(int(np.floor(y)), h - 1), min(int(np.floor(x)), w - 1)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly = 0.0 if y0 >= h - 1 else y - y0
    lx = 0.0 if x0 >= w - 1 else x - x0
    return ((1 - ly) * (1 - lx) * fmap[y0, x0] + (1 - ly) * lx * fmap[y0, x1]
            + ly * (1 - lx) * fmap[y1, x0] + ly * lx * fmap[y1, x1])


boxes = st.tuples(st.floats(-1.5, 9.0), st.floats(-1.5, 9.0), st.floats(0.2, 6.0),
                  st.floats(0.2, 6.0)).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@given(box=boxes, out=st.integers(1, 3), ratio=st.integers(1, 3),
       aligned=st.booleans(), scale=st.sampled_from([1.0, 0.5]))
def test_roi_align_samples_are_the_drawn_points(box, out, ratio, aligned, scale):
    rng = np.random.default_rng(0)
    fmap = rng.standard_normal((1, 1, 7, 8))
    layout = roi.roi_layout(box, (7, 8), out, scale, ratio, aligned)
    sums = np.zeros((out, out))
    for (y, x), (p, q) in zip(layout.samples, layout.sample_bins):
        sums[p, q] += _bilinear(fmap[0, 0], y, x)
    expected = fancydl.roi_align(fmap, np.array([[0.0, *box]]), out, spatial_scale=scale,
                                 sampling_ratio=ratio, aligned=aligned)[0, 0]
    np.testing.assert_allclose(sums / (ratio * ratio), expected, atol=1e-12)


@given(box=boxes, out=st.integers(1, 3), scale=st.sampled_from([1.0, 0.5]))
def test_roi_pool_bins_are_the_drawn_bins(box, out, scale):
    rng = np.random.default_rng(1)
    fmap = rng.standard_normal((1, 1, 7, 8))
    layout = roi.roi_layout(box, (7, 8), out, scale)
    expected = fancydl.roi_pool(fmap, np.array([[0.0, *box]]), out, scale)[0, 0]
    for p, (r0, r1) in enumerate(layout.pool_rows):
        for q, (c0, c1) in enumerate(layout.pool_cols):
            block = fmap[0, 0, r0:r1, c0:c1]
            assert expected[p, q] == (block.max() if block.size else 0.0)


def test_roi_layout_example():
    layout = roi.roi_layout((1.3, 0.8, 6.6, 5.9), (8, 8), 2, sampling_ratio=2)
    np.testing.assert_array_equal(layout.pool_box, [1, 1, 7, 6])
    np.testing.assert_allclose(layout.align_col_edges, [1.3, 3.95, 6.6])
    assert layout.samples.shape == (16, 2)
    assert layout.grid == (2, 2)


def test_roi_figure():
    fig = roi.roi_bins_figure()
    try:
        assert fig.get_size_inches()[0] <= 7.5
        (points,) = fig.axes[1].lines[-1:]
        assert len(points.get_xdata()) == 16
        texts = [t for ax in fig.axes for t in ax.texts + [ax.title, ax.xaxis.label]]
        assert all(t.get_fontsize() >= 9 for t in texts if t.get_text())
    finally:
        plt.close(fig)


# --- softmax ----------------------------------------------------------------------------

@given(z=st.lists(st.floats(-6, 6), min_size=2, max_size=6))
def test_softmax_hessian_is_softmax_jacobian(z):
    z = np.array(z)
    step, eye = 1e-6, np.eye(len(z))
    jacobian = np.stack([(fancydl.softmax(z + step * e, 0) - fancydl.softmax(z - step * e, 0))
                         / (2 * step) for e in eye], axis=1)  # column j: d y / d z_j
    np.testing.assert_allclose(softmax_lessons.softmax_hessian(z), jacobian, atol=1e-8)


@given(z=st.lists(st.floats(-6, 6), min_size=2, max_size=6))
def test_logsumexp_hessian_is_psd(z):
    z = np.array(z)
    hessian = softmax_lessons.softmax_hessian(z)
    step, eye = 1e-4, np.eye(len(z))
    lse = lambda v: float(fancydl.logsumexp(v, 0))  # noqa: E731
    numeric = np.array([[(lse(z + step * (a + b)) - lse(z + step * (a - b))
                          - lse(z - step * (a - b)) + lse(z - step * (a + b)))
                         / (4 * step**2) for b in eye] for a in eye])
    np.testing.assert_allclose(hessian, numeric, atol=1e-6)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-15)
    assert np.linalg.eigvalsh(hessian).min() >= -1e-12
    np.testing.assert_allclose(hessian @ np.ones(len(z)), 0, atol=1e-12)


def test_softmax_hessian_batched_and_errors(rng):
    z = rng.standard_normal((3, 4, 5))
    h = softmax_lessons.softmax_hessian(z)
    assert h.shape == (3, 4, 5, 5)
    np.testing.assert_allclose(h[1, 2], softmax_lessons.softmax_hessian(z[1, 2]))
    with pytest.raises(TypeError, match="logits"):
        softmax_lessons.softmax_hessian([1.0, 2.0])
    with pytest.raises(ValueError, match="logits"):
        softmax_lessons.softmax_hessian(np.zeros((2, 0)))


def test_saturation_curves():
    z = np.array([-10.0, 0.0, 10.0])
    curves = softmax_lessons.saturation_curves(z, (4.0, 0.0))
    y = curves["probability"]
    np.testing.assert_allclose(curves["grad_cross_entropy"], y - 1, atol=1e-12)
    # squared error: d/dz_k sum_j (y_j - t_j)^2 = 2 sum_j (y_j - t_j) y_j (δ_jk - y_k)
    full = np.column_stack([z, np.full(3, 4.0), np.zeros(3)])
    probs = fancydl.softmax(full, 1)
    t = np.eye(3)[0]
    grad = [2 * ((p - t) @ softmax_lessons.softmax_hessian(row)[:, 0])
            for p, row in zip(probs, full)]
    np.testing.assert_allclose(curves["grad_squared_error"], grad, atol=1e-12)
    # saturated on a wrong class: squared error's gradient vanishes, cross-entropy's not
    assert abs(curves["grad_squared_error"][0]) < 1e-5
    assert abs(curves["grad_cross_entropy"][0]) > 0.99
    with pytest.raises(ValueError, match="target"):
        softmax_lessons.saturation_curves(z, (1.0,), target=2)


def test_saturation_figure():
    fig = softmax_lessons.saturation_figure()
    try:
        assert fig.get_size_inches()[0] <= 7.5
        texts = [t for ax in fig.axes for t in [ax.title, ax.xaxis.label, ax.yaxis.label]]
        assert all(t.get_fontsize() >= 9 for t in texts if t.get_text())
    finally:
        plt.close(fig)


def test_atlas_explorer_has_every_regime():
    explorer = conv_atlas.atlas_explorer(dpi=40)
    assert repr(explorer).startswith(f"Explorer: {len(REGIMES)} precomputed images")
    html = explorer._repr_html_()
    assert all(regime.name in html for regime in REGIMES)
