"""Exercises of the chapter "Pooling: max, mean and min"."""

import numpy as np

from . import AUTODIFF, exercise
from ..autodiff import vjp
from ..pool import max_pool2d
from ..windows import pool_output_size


@exercise("pooling.output_size", cases=[
    (32, 3, 2, 1, 1, False), (32, 3, 2, 1, 1, True), (5, 2, 2, 0, 1, True),
    (7, 3, 3, 1, 1, True), (10, 4, 3, 2, 2, False),
    # the last-window rule drops the window that rounding up created
    (5, 2, 2, 1, 1, True), (8, 3, 3, 1, 1, True), (11, 2, 3, 1, 2, True)])
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


@exercise("pooling.max_pool_backward", cases=_routing_cases(), forbid=AUTODIFF)
def max_pool_backward(x, k, grad_out):
    """Gradient of k×k max pooling (stride k) of the plane x for upstream grad_out."""
    _, pullback = vjp(lambda t: max_pool2d(t, k), x[None, None])
    return pullback(grad_out[None, None])[0][0, 0]


@exercise("pooling.avg_pool_as_conv_weight", cases=[(1, 2), (3, 2), (2, 3), (4, 1)])
def avg_pool_as_conv_weight(channels, k):
    """The depthwise conv2d weight (groups=channels) that computes avg_pool2d(x, k)."""
    return np.full((channels, 1, k, k), 1.0 / k ** 2)


# --- derivations -----------------------------------------------------------------------

@exercise("pooling.overlap_avg_gradient", rtol=1e-9, atol=1e-12)
def overlap_avg_gradient():
    """Input gradient of avg_pool2d with kernel (1, 3), stride (1, 2) on a 1 x 7 plane,
    for the upstream gradient (1, 2, 3): each window hands 1/3 of its gradient to each
    of its pixels, and pixels 2 and 4 lie in two windows."""
    from ..pool import avg_pool2d

    _, pullback = vjp(lambda t: avg_pool2d(t, (1, 3), (1, 2)), np.zeros((1, 1, 1, 7)))
    return pullback(np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3))[0][0, 0, 0]


def _unpool_cases():
    rng = np.random.default_rng(19)
    cases = []
    for h, w, k in [(4, 4, 2), (6, 4, 2), (6, 6, 3), (2, 2, 2)]:
        x = rng.standard_normal((1, 1, h, w))
        values, indices = max_pool2d(x, k, return_indices=True)
        cases.append((values[0, 0], indices[0, 0], (h, w)))
    return cases


@exercise("pooling.max_unpool", cases=_unpool_cases(), rtol=1e-12, atol=1e-14,
          forbid=AUTODIFF + ("torch.nn.functional.max_unpool2d",
                             "fancydl.max_unpool2d", "fancydl.pool.max_unpool2d"))
def max_unpool(values, indices, shape):
    """Max unpooling with switches: an (H, W) plane of zeros with each pooled value put
    back at its flat index (row-major in the plane), as max_pool2d's backward does."""
    plane = np.zeros(shape)
    plane.flat[indices.ravel()] = values.ravel()
    return plane
