"""The softmax chapter's explorer drawing: the gradient bars are the true gradient
and the shared axis never clips them (issue 14: the old single panel clipped at ±1.05
for T <= 0.5 and labelled (y - t) / T as y - t)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fancydl  # noqa: E402
from fancydl.viz.softmax import (draw_softmax_figure, gradient_limit,  # noqa: E402
                                 softmax_summary)

Z = np.array([2.0, 1.0, 0.2, -1.0])
TEMPERATURES = [0.25, 0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_summary_gradient_is_tempered_y_minus_t_over_t(temperature):
    for target in range(4):
        y, loss, gradient = softmax_summary(Z, temperature, target)
        expected_y = fancydl.softmax(Z / temperature, 0)
        np.testing.assert_allclose(y, expected_y, rtol=1e-12)
        np.testing.assert_allclose(gradient, (expected_y - np.eye(4)[target]) / temperature,
                                   rtol=1e-10, atol=1e-12)
        assert loss == pytest.approx(-np.log(expected_y[target]), rel=1e-10)


def test_shared_limit_holds_every_bar_and_exceeds_one_at_low_temperature():
    limit = gradient_limit(Z, TEMPERATURES)
    largest = max(np.abs(softmax_summary(Z, t, k)[2]).max()
                  for t in TEMPERATURES for k in range(4))
    assert largest > 1.05  # the old fixed axis clipped this state
    assert limit >= largest
    for temperature in (0.25, 4.0):
        fig = draw_softmax_figure(Z, temperature, 3, limit)
        ax_prob, ax_grad = fig.axes
        assert ax_grad.get_ylim() == pytest.approx((-limit, limit))
        heights = [patch.get_height() for patch in ax_grad.patches]
        np.testing.assert_allclose(heights, softmax_summary(Z, temperature, 3)[2])
        assert ax_prob.get_ylim() == pytest.approx((0, 1.05))
        plt.close(fig)


def test_default_limit_fits_the_state():
    fig = draw_softmax_figure(Z, 0.25, 3)
    bottom, top = fig.axes[1].get_ylim()
    assert top >= np.abs(softmax_summary(Z, 0.25, 3)[2]).max()
    assert bottom == -top
    plt.close(fig)
