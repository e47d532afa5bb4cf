"""The convolution-arithmetic drawing shows what a real convolution computes.

One-hot probes: the response of output cell (h, w) to input pixel (r, c) through a
kernel with distinct weights says exactly which kernel taps read that pixel; the
footprints of the drawing must predict every such response.
"""

import matplotlib
import numpy as np
import pytest

from fancydl.viz.conv_arithmetic import INPUT, INSERTED_ZERO, PADDING, conv_geometry

matplotlib.use("Agg")


def _direct_conv_loops(x, weight, stride, padding, dilation):
    """out[h, w] = sum_ij x[h s - p + i d, w s - p + j d] weight[i, j] (zero outside)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    kh, kw = weight.shape
    out_h = (x.shape[0] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((out_h, out_w))
    for h in range(out_h):
        for w in range(out_w):
            for i in range(kh):
                for j in range(kw):
                    r, c = h * sh - ph + i * dh, w * sw - pw + j * dw
                    if 0 <= r < x.shape[0] and 0 <= c < x.shape[1]:
                        out[h, w] += x[r, c] * weight[i, j]
    return out


def _transposed_conv_loops(x, weight, stride, padding, dilation, output_padding):
    """Scatter form: input pixel (r, c) adds x[r, c] weight[i, j] to output
    (r s - p + i d, c s - p + j d)."""
    (sh, sw), (ph, pw), (dh, dw), (ah, aw) = stride, padding, dilation, output_padding
    kh, kw = weight.shape
    out_h = (x.shape[0] - 1) * sh - 2 * ph + dh * (kh - 1) + ah + 1
    out_w = (x.shape[1] - 1) * sw - 2 * pw + dw * (kw - 1) + aw + 1
    out = np.zeros((out_h, out_w))
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(kh):
                for j in range(kw):
                    h, w = r * sh - ph + i * dh, c * sw - pw + j * dw
                    if 0 <= h < out_h and 0 <= w < out_w:
                        out[h, w] += x[r, c] * weight[i, j]
    return out


def _predicted_response(geometry, drawn_kernel, pixel):
    """Output map predicted by the drawing for a one-hot input at ``pixel``."""
    out = np.zeros(geometry.output_size)
    taps = drawn_kernel.ravel()
    for (h, w) in np.ndindex(*geometry.output_size):
        for tap, (row, col) in enumerate(geometry.footprints[h, w]):
            if tuple(geometry.grid_to_input[row, col]) == pixel:
                out[h, w] += taps[tap]
    return out


CASES = [
    dict(input_size=5, kernel_size=3),
    dict(input_size=(5, 6), kernel_size=(3, 2), stride=2, padding=1),
    dict(input_size=7, kernel_size=3, dilation=2),
    dict(input_size=(6, 5), kernel_size=3, stride=(2, 1), padding=(2, 0), dilation=(1, 2)),
    dict(input_size=3, kernel_size=3, transposed=True),
    dict(input_size=3, kernel_size=3, stride=2, padding=1, transposed=True, output_padding=1),
    dict(input_size=(3, 4), kernel_size=(2, 3), stride=(2, 3), padding=(0, 2), dilation=2,
         transposed=True, output_padding=(1, 0)),
    dict(input_size=4, kernel_size=4, stride=2, padding=1, transposed=True),
]


@pytest.mark.parametrize("case", CASES)
def test_footprints_predict_a_real_convolution(case):
    geometry = conv_geometry(**case)
    rng = np.random.default_rng(0)
    weight = rng.permutation(np.arange(1, np.prod(geometry.kernel_size) + 1)).reshape(
        geometry.kernel_size).astype(float)
    args = dict(stride=geometry.stride, padding=geometry.padding,
                dilation=geometry.dilation)
    for pixel in np.ndindex(*geometry.input_size):
        probe = np.zeros(geometry.input_size)
        probe[pixel] = 1.0
        if geometry.transposed:
            real = _transposed_conv_loops(probe, weight, output_padding=geometry.output_padding,
                                          **args)
            drawn_kernel = weight[::-1, ::-1]  # the drawing slides the rotated kernel
        else:
            real = _direct_conv_loops(probe, weight, **args)
            drawn_kernel = weight
        np.testing.assert_array_equal(_predicted_response(geometry, drawn_kernel, pixel), real)


@pytest.mark.parametrize("case", CASES[:2] + CASES[5:6])
def test_footprints_agree_with_fancydl_convolutions(case):
    import fancydl
    geometry = conv_geometry(**case)
    weight = np.arange(1.0, np.prod(geometry.kernel_size) + 1).reshape(geometry.kernel_size)
    probe = np.zeros(geometry.input_size)
    probe[1, 1] = 1.0
    kw = dict(stride=geometry.stride, padding=geometry.padding, dilation=geometry.dilation)
    if geometry.transposed:
        real = fancydl.conv_transpose2d(probe[None, None], weight[None, None],
                                        output_padding=geometry.output_padding, **kw)
        drawn_kernel = weight[::-1, ::-1]
    else:
        real = fancydl.conv2d(probe[None, None], weight[None, None], **kw)
        drawn_kernel = weight
    np.testing.assert_allclose(_predicted_response(geometry, drawn_kernel, (1, 1)),
                               real[0, 0])


def test_grid_kinds_of_a_transposed_convolution():
    geometry = conv_geometry(3, 3, stride=2, padding=0, transposed=True)
    # 3 pixels with one zero between each -> 5 cells, padded by d(k-1) - p = 2 per side.
    assert geometry.grid_kinds.shape == (9, 9)
    row = geometry.grid_kinds[4]
    assert list(row) == [PADDING] * 2 + [INPUT, INSERTED_ZERO] * 2 + [INPUT] + [PADDING] * 2
    assert geometry.output_size == (7, 7)


def test_output_size_and_refusals():
    assert conv_geometry(7, 3, dilation=2).output_size == (3, 3)
    with pytest.raises(ValueError, match=r"conv_geometry: the dilated kernel \(5, 5\) .*is "
                                         r"larger than the padded input \(4, 4\)"):
        conv_geometry(4, 3, dilation=2)
    with pytest.raises(ValueError, match=r"output_padding must be smaller than"):
        conv_geometry(3, 3, stride=2, transposed=True, output_padding=2)
    with pytest.raises(ValueError, match=r"output_padding is only for transposed"):
        conv_geometry(3, 3, output_padding=1)
    with pytest.raises(ValueError, match=r"stride must be a positive int"):
        conv_geometry(3, 3, stride=0)


def test_animation_is_small_and_renders():
    from fancydl.viz.conv_arithmetic import conv_arithmetic_animation
    animation = conv_arithmetic_animation(7, 3, stride=2, padding=1, dilation=2, max_frames=6)
    html = animation.to_jshtml()
    assert html.count("data:image/png;base64") == 6  # max_frames of the 4 x 4 outputs
    assert len(html) < 1_500_000


def test_widget_builds():
    pytest.importorskip("ipywidgets")
    from fancydl.viz.conv_arithmetic import conv_arithmetic_widget
    box = conv_arithmetic_widget()
    sliders = [w for row in box.children[:-1] for w in row.children]
    assert {s.description for s in sliders} >= {"input", "kernel", "stride", "padding",
                                                "dilation", "output cell"}


@pytest.mark.parametrize("flip", [True, False])
def test_sliding_product_sums_to_the_output(flip):
    import matplotlib.pyplot as plt
    from fancydl.viz.conv_arithmetic import draw_sliding_product
    signal, kernel = np.array([0.0, 1.0, 0.0, 2.0, -1.0]), np.array([1.0, 0.5, 0.25])
    expected = np.convolve(signal, kernel if flip else kernel[::-1])  # numpy's own
    fig, (top, bottom) = plt.subplots(2)
    for position, value in enumerate(expected):
        draw_sliding_product(top, bottom, signal, kernel, position, flip)
        assert top.get_title().endswith(f"= {value:.2f}")
    plt.close(fig)


def test_animation_html_fits_a_phone_and_needs_no_icon_font():
    from fancydl.viz.conv_arithmetic import animation_html, conv_arithmetic_animation
    animation = conv_arithmetic_animation(5, 3, max_frames=3)
    with pytest.raises(ValueError, match="default_mode"):
        animation_html(animation, default_mode="x")
    html = animation_html(animation, alt='A "kernel" sliding').data
    assert html.count("data:image/png;base64") == 3
    assert '<img alt="A &quot;kernel&quot; sliding" id="_anim_img' in html
    assert "font-awesome" not in html and '<i class="fa' not in html
    assert "max-width: 100%" in html and "flex-wrap: wrap" in html
    assert 'value="loop"' in html and "checked" in html.split('value="loop"')[1][:80]


def test_conv_arithmetic_figure_shows_the_centre_cell_by_default():
    import matplotlib.pyplot as plt
    from fancydl.viz.conv_arithmetic import conv_arithmetic_figure
    fig = conv_arithmetic_figure(7, 3, stride=2, padding=1, figsize=(6.4, 4.2))
    assert tuple(fig.get_size_inches()) == (6.4, 4.2)
    assert fig.axes[1].get_title() == "output, cell (2, 2)"  # of the 4 × 4 output
    plt.close(fig)
    fig = conv_arithmetic_figure(5, 3, step=4)
    assert fig.axes[1].get_title() == "output, cell (1, 1)"  # of the 3 × 3 output
    plt.close(fig)


def test_sliding_product_figure_is_one_step_of_the_drawing():
    import matplotlib.pyplot as plt
    from fancydl.viz.conv_arithmetic import sliding_product_figure
    signal, kernel = np.array([0.0, 1.0, 0.0, 2.0]), np.array([1.0, 0.5])
    fig = sliding_product_figure(signal, kernel, 3, flip=False)
    top = fig.axes[0]
    expected = np.convolve(signal, kernel[::-1])[3]
    assert top.get_title() == f"correlation: y[3] = Σ products = {expected:.2f}"
    plt.close(fig)
