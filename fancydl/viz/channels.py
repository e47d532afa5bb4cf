"""Figures and widgets of the channel chapters (grouped convolution and shuffle,
squeeze-and-excitation, 1×1 and depthwise-separable convolution).

Every live widget has a static twin built by the same drawing function, so the
rendered book shows what the widget shows.
"""

from __future__ import annotations

import numpy as np

from ..channels import grouped_connectivity  # noqa: F401  (re-exported for the chapter)
from .style import CMAPS, COLORS

__all__ = ["grouped_connectivity", "plot_connectivity", "connectivity_grid",
           "connectivity_figure", "connectivity_widget", "EDGE_FILTERS",
           "edge_feature_maps", "plot_gated_maps", "se_figure", "se_widget",
           "mix_channels", "plot_channel_mix", "channel_mix_grid", "channel_mix_figure",
           "channel_mix_widget", "markdown_table"]


# --- who sees whom through a stack of grouped layers ---------------------------------

def plot_connectivity(ax, reach, groups, title):
    """Draw a connectivity matrix with the group boundaries of the input channels."""
    channels = reach.shape[0]
    ax.imshow(reach, cmap=CMAPS["output"], vmin=0, vmax=1.6, interpolation="nearest")
    for edge in np.arange(1, groups) * (channels // groups) - 0.5:
        ax.axvline(edge, color=COLORS["input"], lw=1)
        ax.axhline(edge, color=COLORS["input"], lw=1, ls=":")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("input channel")
    ax.set_ylabel("output channel")
    ax.set_xticks([])
    ax.set_yticks([])


def connectivity_grid(channels=12, groups=3, depths=(1, 2, 3)):
    """Small multiples: rows without / with shuffle, one column per depth."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(depths), figsize=(2.4 * len(depths), 5.4),
                             squeeze=False)
    for row, shuffle in enumerate((False, True)):
        for col, depth in enumerate(depths):
            reach = grouped_connectivity(channels, groups, depth, shuffle)
            label = "with shuffle" if shuffle else "no shuffle"
            plot_connectivity(axes[row, col], reach, groups,
                              f"{depth} layer(s), {label}\n{reach.mean():.0%} connected")
    fig.tight_layout()
    return fig


def connectivity_figure(channels=12, groups=3, depth=2, shuffle=True):
    """A new figure with one connectivity matrix (for :func:`fancydl.viz.explore`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    reach = grouped_connectivity(channels, groups, depth, shuffle)
    label = "with shuffle" if shuffle else "no shuffle"
    plot_connectivity(ax, reach, groups, f"{channels} channels, {groups} groups, "
                      f"depth {depth},\n{label}: {reach.mean():.0%} connected")
    fig.tight_layout()
    return fig


def connectivity_widget():
    """Live control: channels per group, groups, depth and shuffle on/off."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def draw(per_group=4, groups=3, depth=2, shuffle=True):
        connectivity_figure(per_group * groups, groups, depth, shuffle)
        plt.show()

    return widgets.interactive(
        draw,
        per_group=widgets.IntSlider(value=4, min=1, max=8, description="ch/group"),
        groups=widgets.IntSlider(value=3, min=1, max=6, description="groups"),
        depth=widgets.IntSlider(value=2, min=1, max=4, description="depth"),
        shuffle=widgets.Checkbox(value=True, description="shuffle"))


# --- squeeze-and-excitation on a real image ---------------------------------------------

#: Four fixed 3×3 filters (not learned): a blur and three edge detectors.
EDGE_FILTERS = {
    "blur": np.full((3, 3), 1 / 9),
    "vertical edges": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 4,
    "horizontal edges": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 4,
    "spots (Laplacian)": np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]]) / 2,
}


def edge_feature_maps(image):
    """ReLU feature maps of a grayscale image under :data:`EDGE_FILTERS`.

    Parameters
    ----------
    image : ndarray of shape (H, W), values in [0, 1]

    Returns
    -------
    ndarray of shape (1, 4, H - 2, W - 2), float64
    """
    import fancydl

    weight = np.stack(list(EDGE_FILTERS.values()))[:, None]
    return fancydl.relu(fancydl.conv2d(image[None, None].astype(np.float64), weight))


def plot_gated_maps(maps, scale, title, axes=None):
    """A row of feature maps, each multiplied by its SE weight (shown in the title).

    Each channel is drawn on its own scale, 0 to its largest value before the weight,
    so that the brightness of a panel shows the weight.
    """
    import matplotlib.pyplot as plt

    names = list(EDGE_FILTERS)
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(1.8 * len(names), 2.4))
    for c, ax in enumerate(axes):
        vmax = float(maps[0, c].max()) or 1.0
        ax.imshow(maps[0, c] * scale[0, c, 0, 0], cmap=CMAPS["output"], vmin=0, vmax=vmax)
        ax.set_title(f"{names[c]}\nweight {scale[0, c, 0, 0]:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel(title)
    return axes


def se_figure(maps, weights, name, temperature=1.0):
    """A new figure: one image's gated feature maps, SE weights times ``temperature``.

    Parameters
    ----------
    maps : ndarray of shape (1, 4, H, W)
        From :func:`edge_feature_maps`.
    weights : tuple (w1, b1, w2, b2) for 4 channels
    name : str
        Row label.
    temperature : float
        Multiplies ``w2`` and ``b2``: 0 gives every channel the weight 0.5.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    import fancydl

    w1, b1, w2, b2 = weights
    scale = fancydl.squeeze_excitation_scale(maps, w1, b1, w2 * temperature,
                                             b2 * temperature)
    fig, axes = plt.subplots(2, 2, figsize=(4.0, 4.3))
    plot_gated_maps(maps, scale, name, axes=axes.ravel())
    for ax in axes[:, 0]:
        ax.set_ylabel(name)
    fig.tight_layout()
    return fig


def se_widget(images, weights):
    """Live control: pick an image and a temperature multiplying the SE weights.

    Parameters
    ----------
    images : dict of name -> (H, W) ndarray in [0, 1]
    weights : tuple (w1, b1, w2, b2) for 4 channels
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    maps = {name: edge_feature_maps(img) for name, img in images.items()}

    def draw(image=next(iter(images)), temperature=1.0):
        se_figure(maps[image], weights, image, temperature)
        plt.show()

    return widgets.interactive(
        draw, image=widgets.Dropdown(options=list(images), description="image"),
        temperature=widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.25,
                                        description="w2, b2 ×"))


# --- 1×1 convolution as channel mixing --------------------------------------------------

def mix_channels(image, weights, bias=0.0, relu=False):
    """A 1×1 convolution of an RGB image to one channel (and an optional ReLU).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), values in [0, 1]
    weights : sequence of 3 floats (red, green, blue)

    Returns
    -------
    ndarray of shape (H, W)
    """
    import fancydl

    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(1, 3, 1, 1)
    out = fancydl.conv2d(x, w, np.array([bias], dtype=np.float64))
    return (fancydl.relu(out) if relu else out)[0, 0]


def plot_channel_mix(ax, image, weights, bias=0.0, relu=False):
    """Draw :func:`mix_channels` on ``ax`` with a symmetric diverging colour scale."""
    mixed = mix_channels(image, weights, bias, relu)
    limit = max(float(np.abs(mixed).max()), 1e-12)
    ax.imshow(mixed, cmap="RdBu_r", vmin=-limit, vmax=limit)
    r, g, b = weights
    ax.set_title(f"{r:+.2f}R {g:+.2f}G {b:+.2f}B {bias:+.2f}" + ("\nthen ReLU" if relu else
                                                                  "\n(linear)"), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def channel_mix_grid(image, presets):
    """Small multiples of :func:`mix_channels` for a list of (weights, bias, relu),
    two per row."""
    import matplotlib.pyplot as plt

    rows = -(-len(presets) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(6.0, 3.3 * rows), squeeze=False)
    for ax, (weights, bias, relu) in zip(axes.ravel(), presets):
        plot_channel_mix(ax, image, weights, bias, relu)
    for ax in axes.ravel()[len(presets):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def channel_mix_figure(image, weights, bias=0.0, relu=False):
    """A new figure with one :func:`plot_channel_mix` (for :func:`fancydl.viz.explore`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4.2))
    plot_channel_mix(ax, image, weights, bias, relu)
    fig.tight_layout()
    return fig


def channel_mix_widget(image):
    """Live control: the three weights and the bias of a 1×1 conv, ReLU on/off."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def draw(red=1.0, green=-1.0, blue=0.0, bias=0.0, relu=False):
        channel_mix_figure(image, (red, green, blue), bias, relu)
        plt.show()

    sliders = {name: widgets.FloatSlider(value=value, min=-2, max=2, step=0.1,
                                         description=name)
               for name, value in (("red", 1.0), ("green", -1.0), ("blue", 0.0),
                                   ("bias", 0.0))}
    return widgets.interactive(draw, relu=widgets.Checkbox(value=False, description="ReLU"),
                               **sliders)


# --- tables -----------------------------------------------------------------------------

def markdown_table(headers, rows):
    """A Markdown table for a notebook (no pandas needed).

    Parameters
    ----------
    headers : sequence of str
    rows : sequence of sequences, already formatted or plain values
    """
    from IPython.display import Markdown

    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))
