"""The pooling chapter's figure helpers compute what their captions say."""

import matplotlib
import numpy as np

import fancydl
from fancydl.viz import pool as vp

matplotlib.use("Agg")


def test_min_pool_panels_print_no_negative_zero():
    out, grad = vp.pooling_routing(np.array([[0.0, 1.0], [2.0, 3.0]]), "min", 2)
    assert not np.signbit(out).any() and not np.signbit(grad).any()


def test_the_three_upsamplings_are_zero_insertion_switches_and_nearest():
    x = np.array([[1.0, 3.0, 0.0, 2.0], [4.0, 2.0, 5.0, 1.0],
                  [0.0, 1.0, 2.0, 0.0], [2.0, 0.0, 1.0, 3.0]])
    out, idx = fancydl.max_pool2d(x[None, None], 2, return_indices=True)
    maps = vp.upsampling_by_transposed_kernels(out[0, 0], idx[0, 0])
    zeros = np.zeros((4, 4))
    zeros[::2, ::2] = out[0, 0]
    np.testing.assert_array_equal(maps["zero insertion"], zeros)
    np.testing.assert_array_equal(maps["nearest"], np.kron(out[0, 0], np.ones((2, 2))))
    switches = np.zeros((4, 4))
    switches.flat[idx.ravel()] = out.ravel()
    np.testing.assert_array_equal(maps["unpooling with switches"], switches)


def test_global_pooling_gradients_are_uniform_and_one_hot():
    x = np.random.default_rng(0).standard_normal((4, 5))
    grads = vp.global_pooling_gradients(x)
    np.testing.assert_allclose(grads["global average"], np.full((4, 5), 1 / 20))
    expected = np.zeros((4, 5))
    expected.flat[x.argmax()] = 1.0
    np.testing.assert_array_equal(grads["global max"], expected)


def test_figures_have_three_panels():
    x = np.arange(16.0).reshape(4, 4)
    for fig in (vp.draw_switches_figure(x), vp.draw_global_pooling_figure(x)):
        assert len(fig.axes) == 3
        matplotlib.pyplot.close(fig)
