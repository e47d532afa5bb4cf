"""Exercises of the chapter "Grouped convolution and channel shuffle"."""

import numpy as np

from . import exercise

_RNG = np.random.default_rng(7)


@exercise("grouped_conv_shuffle.shuffle_order",
          cases=[(6, 3), (6, 2), (12, 4), (8, 1), (8, 8), (1, 1)],
          forbid=("fancydl.channel_shuffle", "fancydl.channels.channel_shuffle",
                  "torch.nn.functional.channel_shuffle", "torch.channel_shuffle"))
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


def _one_ungrouped_conv_per_group(recorded, args):
    """The exercise's rule: ``groups`` calls of conv2d, each with groups=1."""
    calls, groups = recorded["fancydl.conv2d"], args[2]
    if any(kwargs.get("groups", call[6] if len(call) > 6 else 1) != 1
           for call, kwargs in calls):
        return "call fancydl.conv2d with the default groups=1"
    if len(calls) != groups:
        return f"expected {groups} calls of fancydl.conv2d, one per group, got {len(calls)}"
    return None


@exercise("grouped_conv_shuffle.grouped_as_separate_convs", cases=_grouped_cases(),
          require=["fancydl.conv2d"], calls=_one_ungrouped_conv_per_group)
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
    depends on every input channel (ValueError when none does: one channel per group)."""
    from fancydl.channels import mixing_depth

    return mixing_depth(channels, groups)


# --- derivations -----------------------------------------------------------------------

@exercise("grouped_conv_shuffle.unshuffle_order",
          cases=[(6, 3), (6, 2), (12, 4), (12, 3), (8, 1), (8, 8), (10, 5)])
def unshuffle_order(channels, groups):
    """Indices ``order`` with ``channel_shuffle(x, groups)[:, order] == x``: the
    inverse permutation, itself a shuffle with ``channels // groups`` groups."""
    return np.argsort(shuffle_order(channels, groups))


@exercise("grouped_conv_shuffle.shuffle_period",
          cases=[(6, 2), (6, 3), (12, 3), (12, 4), (8, 2), (16, 4), (10, 5), (8, 1),
                 (12, 2), (32, 4)])
def shuffle_period(channels, groups):
    """Fewest applications of channel_shuffle(., groups) that give back the input: the
    multiplicative order of ``groups`` modulo ``channels - 1`` (computed here from the
    permutation's cycles)."""
    order = shuffle_order(channels, groups)
    composed, period = order, 1
    while not np.array_equal(composed, np.arange(channels)):
        composed, period = composed[order], period + 1
    return period
