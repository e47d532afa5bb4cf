"""Exercises of the chapter "Pooling: max, mean and min"."""

import numpy as np

from . import exercise
from ..autodiff import vjp
from ..pool import max_pool2d
from ..windows import pool_output_size


@exercise("pooling.output_size", cases=[
    (32, 3, 2, 1, 1, False), (32, 3, 2, 1, 1, True), (5, 2, 2, 0, 1, True),
    (6, 3, 2, 1, 2, True), (7, 3, 3, 1, 1, True), (10, 4, 3, 2, 2, False),
    (1, 1, 1, 0, 1, False), (9, 2, 4, 1, 3, True)])
def output_size(size, kernel_size, stride, padding, dilation, ceil_mode):
    """PyTorch's pooled length along one axis, ceil_mode's last-window rule included."""
    return pool_output_size(size, kernel_size, stride, padding, dilation, ceil_mode)


def _routing_cases():
    rng = np.random.default_rng(11)
    ties = np.array([[3.0, 3.0, 1.0, 2.0], [3.0, 0.0, 2.0, 2.0],
                     [1.0, 1.0, 5.0, 4.0], [1.0, 1.0, 4.0, 5.0]])
    return [(ties, 2, np.arange(1.0, 5.0).reshape(2, 2)),
            (rng.integers(0, 3, (6, 6)).astype(float), 3, rng.standard_normal((2, 2))),
            (rng.standard_normal((4, 6)), 2, rng.standard_normal((2, 3)))]


@exercise("pooling.max_pool_backward", cases=_routing_cases())
def max_pool_backward(x, k, grad_out):
    """Gradient of k×k max pooling (stride k) of the plane x for upstream grad_out."""
    _, pullback = vjp(lambda t: max_pool2d(t, k), x[None, None])
    return pullback(grad_out[None, None])[0][0, 0]


@exercise("pooling.avg_pool_as_conv_weight", cases=[(1, 2), (3, 2), (2, 3), (4, 1)])
def avg_pool_as_conv_weight(channels, k):
    """The depthwise conv2d weight (groups=channels) that computes avg_pool2d(x, k)."""
    return np.full((channels, 1, k, k), 1.0 / k ** 2)
