"""Exercises of the chapter "Grouped convolution and channel shuffle"."""

import numpy as np

from . import exercise

_RNG = np.random.default_rng(7)


@exercise("grouped_conv_shuffle.shuffle_order",
          cases=[(6, 3), (6, 2), (12, 4), (8, 1), (8, 8), (1, 1)])
def shuffle_order(channels, groups):
    """Indices ``order`` with ``channel_shuffle(x, groups)[:, j] == x[:, order[j]]``."""
    return np.arange(channels).reshape(groups, channels // groups).T.ravel()


def _grouped_cases():
    cases = []
    for n, c_in, c_out, groups, k in [(1, 4, 6, 2, 3), (2, 6, 6, 3, 1), (1, 4, 8, 4, 3),
                                      (2, 3, 3, 1, 2)]:
        x = _RNG.standard_normal((n, c_in, 5, 5))
        w = _RNG.standard_normal((c_out, c_in // groups, k, k))
        cases.append((x, w, groups))
    return cases


@exercise("grouped_conv_shuffle.grouped_as_separate_convs", cases=_grouped_cases())
def grouped_as_separate_convs(x, weight, groups):
    """A grouped convolution as ``groups`` ordinary convolutions, concatenated."""
    import fancydl

    xs = np.split(x, groups, axis=1)
    ws = np.split(weight, groups, axis=0)
    return np.concatenate([fancydl.conv2d(xi, wi) for xi, wi in zip(xs, ws)], axis=1)


@exercise("grouped_conv_shuffle.depth_to_mix",
          cases=[(12, 3), (8, 4), (8, 2), (16, 4), (6, 1), (27, 3), (32, 8)])
def depth_to_mix(channels, groups):
    """Fewest grouped layers (shuffle between them) after which every output channel
    depends on every input channel."""
    size = channels // groups
    group_of = np.arange(channels) // size
    same_group = (group_of[:, None] == group_of[None, :]).astype(np.int64)
    order = np.arange(channels).reshape(groups, size).T.ravel()
    reach, depth = np.minimum(same_group, 1), 1
    while not reach.all():
        reach, depth = np.minimum(same_group @ reach[order], 1), depth + 1
    return depth
