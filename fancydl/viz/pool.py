"""Figures and live controls of the three pooling chapters.

Each drawing function serves both a live widget (for Colab and Binder) and the
precomputed explorer of the book (:func:`fancydl.viz.explore`), so the two always show
the same thing. Colours: input blue, output green, gradient
purple (see :mod:`fancydl.viz.style`).
"""

from __future__ import annotations

import numpy as np

from ..autodiff import vjp
from ..conv import conv_transpose2d
from ..pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d,
                    max_unpool2d, min_pool2d, roi_align, roi_pool, stochastic_pool2d)
from .style import CMAPS, COLORS

POOLINGS = {"max": max_pool2d, "avg": avg_pool2d, "min": min_pool2d}


# --- fixed-window pooling: values and gradient routing ----------------------------------

def draw_grid(ax, values, cmap, title, fmt="{:g}", vmin=None, vmax=None, outline=None):
    """A small matrix as coloured cells with its numbers written in.

    Parameters
    ----------
    ax : matplotlib Axes
    values : ndarray of shape (H, W)
    cmap : str
    title : str
    fmt : str
        Format of each number.
    outline : bool ndarray of shape (H, W), optional
        Cells to frame in the highlight colour.
    """
    ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    lo = np.nanmin(values) if vmin is None else vmin
    hi = np.nanmax(values) if vmax is None else vmax
    for (r, c), v in np.ndenumerate(values):
        dark = hi > lo and (v - lo) / (hi - lo) > 0.6
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=9,
                color="white" if dark else "black")
    if outline is not None:
        for r, c in zip(*np.nonzero(outline)):
            ax.add_patch(_rectangle((c - 0.5, r - 0.5), 1, 1, COLORS["highlight"]))
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def _rectangle(corner, width, height, color, linewidth=2.0):
    from matplotlib.patches import Rectangle
    return Rectangle(corner, width, height, fill=False, edgecolor=color, linewidth=linewidth)


def pooling_routing(x, mode="max", kernel_size=2, stride=None, padding=0):
    """Output of a pooling on one plane and the gradient map of an all-ones upstream.

    Parameters
    ----------
    x : ndarray of shape (H, W), float64
    mode : {'max', 'avg', 'min'}

    Returns
    -------
    out : ndarray of shape (H_out, W_out)
    grad : ndarray of shape (H, W)
        How much of the output gradient each input receives.
    """
    op = POOLINGS[mode]
    out, pullback = vjp(lambda t: op(t, kernel_size, stride, padding), x[None, None])
    (grad,) = pullback(np.ones(out.shape))
    # min pooling is -max(-x): "+ 0.0" turns its negative zeros into zeros, so
    # that no panel prints "-0".
    return out[0, 0] + 0.0, grad[0, 0] + 0.0


def draw_pooling_routing(axes, x, mode="max", kernel_size=2, stride=None, padding=0):
    """Three panels: the input, the pooled output, and the gradient routed back.

    Parameters
    ----------
    axes : three matplotlib Axes
    x : ndarray of shape (H, W)
    """
    out, grad = pooling_routing(x, mode, kernel_size, stride, padding)
    stride_text = kernel_size if stride is None else stride
    draw_grid(axes[0], x, CMAPS["input"], "input", outline=grad > 0 if mode != "avg" else None)
    draw_grid(axes[1], out, CMAPS["output"], f"{mode} pool: k={kernel_size}, "
              f"s={stride_text}, p={padding}", fmt="{:.3g}")
    limit = max(np.abs(grad).max(), 1e-12)
    draw_grid(axes[2], grad, CMAPS["gradient"], "gradient (upstream = 1)", fmt="{:.2g}",
              vmin=-limit, vmax=limit)


def draw_pooling_figure(x, mode="max", kernel_size=2, stride=2, padding=0):
    """The three panels of :func:`draw_pooling_routing` as one figure, one row.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
    draw_pooling_routing(axes, x, mode, kernel_size, stride, padding)
    fig.tight_layout()
    return fig


def draw_switches_figure(x, kernel_size=2):
    """Max pooling's switches and the unpooling that uses them, on one plane.

    Parameters
    ----------
    x : ndarray of shape (H, W)
        H and W divisible by ``kernel_size`` (non-overlapping windows).
    kernel_size : int

    Returns
    -------
    matplotlib Figure
        Three panels: the input with each window outlined and an arrow from the
        window's centre to its maximum (the switch); the pooled maxima; and
        ``max_unpool2d`` of them, each maximum back at its switch, zeros elsewhere.
    """
    import matplotlib.pyplot as plt

    k = kernel_size
    out, idx = max_pool2d(x[None, None], k, return_indices=True)
    unpooled = max_unpool2d(out, idx, k, output_size=x.shape)[0, 0]
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
    draw_grid(axes[0], x, CMAPS["input"], "input and switches")
    for (r, c), flat in np.ndenumerate(idx[0, 0]):
        centre = (c * k + (k - 1) / 2, r * k + (k - 1) / 2)
        axes[0].add_patch(_rectangle((c * k - 0.5, r * k - 0.5), k, k, COLORS["neutral"],
                                     linewidth=1.0))
        target = divmod(int(flat), x.shape[1])
        axes[0].annotate("", xy=(target[1], target[0]), xytext=centre,
                         arrowprops=dict(arrowstyle="->", color=COLORS["highlight"],
                                         lw=1.5))
    draw_grid(axes[1], out[0, 0], CMAPS["output"], f"max_pool2d(k={k})")
    draw_grid(axes[2], unpooled + 0.0, CMAPS["output"], "max_unpool2d", vmin=out.min())
    fig.tight_layout()
    return fig


def upsampling_by_transposed_kernels(values, switches):
    """Three 2x upsamplings of a plane as stride-2 transposed convolutions.

    Parameters
    ----------
    values : ndarray of shape (h, w)
    switches : int ndarray of shape (h, w)
        Flat indices into the (2h, 2w) output, one inside each 2x2 block.

    Returns
    -------
    dict name -> ndarray of shape (2h, 2w)
        "zero insertion" (kernel one-hot at the top-left: the same for every
        position), "unpooling with switches" (a one-hot kernel chosen per position
        by the data: ``max_unpool2d``), "nearest" (kernel of ones).
    """
    x = values[None, None].astype(np.float64)
    corner = np.zeros((1, 1, 2, 2))
    corner[..., 0, 0] = 1.0
    return {"zero insertion": conv_transpose2d(x, corner, stride=2)[0, 0],
            "unpooling with switches": max_unpool2d(x, switches[None, None], 2)[0, 0],
            "nearest": conv_transpose2d(x, np.ones((1, 1, 2, 2)), stride=2)[0, 0]}


def draw_upsampling_figure(values, switches):
    """:func:`upsampling_by_transposed_kernels` as three panels.

    Returns
    -------
    matplotlib Figure
        The three 2x upsamplings of the same small plane: zeros inserted at fixed
        places, values placed at their switches, values copied into whole blocks.
    """
    import matplotlib.pyplot as plt

    maps = upsampling_by_transposed_kernels(values, switches)
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
    for ax, (name, up) in zip(axes, maps.items()):
        draw_grid(ax, up, CMAPS["output"], name, vmin=0.0, vmax=float(values.max()))
    fig.tight_layout()
    return fig


def global_pooling_gradients(x):
    """Input gradients of global average and global max pooling of one plane.

    Parameters
    ----------
    x : ndarray of shape (H, W)

    Returns
    -------
    dict name -> ndarray of shape (H, W)
        For an upstream gradient of 1: ``1 / (H W)`` everywhere for the average, one
        1 at the (first) maximum for the max.
    """
    grads = {}
    for name, op in (("global average", adaptive_avg_pool2d),
                     ("global max", adaptive_max_pool2d)):
        out, pullback = vjp(lambda t: op(t, 1), x[None, None])
        grads[name] = pullback(np.ones(out.shape))[0][0, 0]
    return grads


def draw_global_pooling_figure(x):
    """The input and :func:`global_pooling_gradients` as three panels.

    Returns
    -------
    matplotlib Figure
        The plane, then the gradient each pixel receives from global average pooling
        (uniform 1/(HW)) and from global max pooling (all to the maximum).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
    draw_grid(axes[0], x, CMAPS["input"], f"input {x.shape[0]}×{x.shape[1]}",
              fmt="{:.1f}")
    for ax, (name, grad) in zip(axes[1:], global_pooling_gradients(x).items()):
        draw_grid(ax, grad, CMAPS["gradient"], f"gradient of {name}", fmt="{:.2g}",
                  vmin=-1.0, vmax=1.0)
    fig.tight_layout()
    return fig


def pooling_widget(x):
    """Live control: pooling mode, kernel, stride and padding on the plane ``x``."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(mode="max", kernel_size=2, stride=2, padding=0):
        if padding > kernel_size // 2:
            print(f"padding {padding} > kernel_size // 2 = {kernel_size // 2}: "
                  "PyTorch refuses this (so does fancydl)")
            return
        draw_pooling_figure(x, mode, kernel_size, stride, padding)
        plt.show()

    return widgets.interactive(
        show, mode=widgets.Dropdown(options=list(POOLINGS), value="max"),
        kernel_size=widgets.IntSlider(value=2, min=1, max=4),
        stride=widgets.IntSlider(value=2, min=1, max=4),
        padding=widgets.IntSlider(value=0, min=0, max=2))


# --- Go boards ------------------------------------------------------------------------

def draw_board(ax, black, white, title, marks=None):
    """A Go board with its stones.

    Parameters
    ----------
    ax : matplotlib Axes
    black, white : bool ndarrays of shape (19, 19)
    title : str
    marks : list of (row, col), optional
        Intersections to ring in the highlight colour.
    """
    n = black.shape[0]
    ax.set_facecolor("#DCB35C")
    for i in range(n):
        ax.plot([0, n - 1], [i, i], color="black", linewidth=0.5)
        ax.plot([i, i], [0, n - 1], color="black", linewidth=0.5)
    for stones, color in ((black, "black"), (white, "white")):
        rows, cols = np.nonzero(stones)
        ax.scatter(cols, rows, s=90, c=color, edgecolors="black", linewidths=0.6, zorder=3)
    for r, c in marks or []:
        ax.scatter([c], [r], s=260, facecolors="none", edgecolors=COLORS["highlight"],
                   linewidths=2, zorder=4)
    ax.set_xlim(-1, n)
    ax.set_ylim(n, -1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)


# --- stochastic pooling -----------------------------------------------------------------

def sample_region(values, n_samples, rng):
    """Draw ``n_samples`` stochastic-pooling outputs of one region.

    Parameters
    ----------
    values : ndarray of shape (kH, kW), non-negative
    n_samples : int
    rng : numpy.random.Generator

    Returns
    -------
    counts : ndarray of shape (kH * kW,)
        How often each element (row-major) was drawn.
    """
    values = np.asarray(values, dtype=np.float64)
    kh, kw = values.shape
    batch = np.broadcast_to(values, (1, n_samples, kh, kw)).copy()
    # The training gradient goes to the sampled element only, so pulling back ones
    # marks, in each copy of the region, which element was drawn.
    out, pullback = vjp(lambda t: stochastic_pool2d(t, (kh, kw), rng=rng), batch)
    (marks,) = pullback(np.ones(out.shape))
    return marks.sum(axis=(0, 1)).ravel().astype(np.int64)


def draw_stochastic_region(axes, values, n_samples, rng):
    """Two panels: the region with its probabilities, and sampled frequencies vs p.

    Parameters
    ----------
    axes : two matplotlib Axes
    values : ndarray of shape (kH, kW), non-negative
    n_samples : int
    rng : numpy.random.Generator
    """
    values = np.asarray(values, dtype=np.float64)
    total = values.sum()
    p = values.ravel() / total if total > 0 else np.zeros(values.size)
    draw_grid(axes[0], values, CMAPS["input"], "region $a$ (row-major order)", fmt="{:.2g}")
    counts = sample_region(values, n_samples, rng)
    index = np.arange(values.size)
    axes[1].bar(index - 0.2, p, width=0.4, color=COLORS["input"], label="$p_i = a_i / \\sum a$")
    axes[1].bar(index + 0.2, counts / max(n_samples, 1), width=0.4, color=COLORS["output"],
                label=f"frequency in {n_samples} samples")
    test = (values ** 2).sum() / total if total > 0 else 0.0
    axes[1].set_xticks(index)
    axes[1].set_xlabel("element $i$")
    axes[1].set_ylim(0, 1)
    axes[1].set_title(f"test output $\\sum a^2/\\sum a$ = {test:.3f}", fontsize=10)
    axes[1].legend(fontsize=9, loc="upper left")


def draw_stochastic_figure(values, n_samples, seed=0):
    """The two panels of :func:`draw_stochastic_region` as one figure.

    Parameters
    ----------
    values : ndarray of shape (kH, kW), non-negative
    n_samples : int
    seed : int
        Seed of the draws.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2),
                             gridspec_kw={"width_ratios": [1, 2]})
    draw_stochastic_region(axes, values, n_samples, np.random.default_rng(seed))
    fig.tight_layout()
    return fig


def stochastic_widget(seed=0):
    """Live control: four values of a 2×2 region and the number of samples."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(a00=1.0, a01=2.0, a10=0.0, a11=4.0, n_samples=200):
        draw_stochastic_figure(np.array([[a00, a01], [a10, a11]]), n_samples, seed)
        plt.show()

    value = dict(min=0.0, max=5.0, step=0.25)
    return widgets.interactive(
        show, a00=widgets.FloatSlider(value=1.0, **value),
        a01=widgets.FloatSlider(value=2.0, **value),
        a10=widgets.FloatSlider(value=0.0, **value),
        a11=widgets.FloatSlider(value=4.0, **value),
        n_samples=widgets.IntSlider(value=200, min=10, max=5000, step=10))


# --- ROI pooling and ROI Align ----------------------------------------------------------

def draw_box(ax, box, color, label=None, linestyle="-"):
    """Draw ``(x1, y1, x2, y2)`` in pixel coordinates (pixel i spans [i - 0.5, i + 0.5]
    in imshow's axes, so a box coordinate c is drawn at c - 0.5)."""
    from matplotlib.patches import Rectangle
    x1, y1, x2, y2 = box
    ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                           edgecolor=color, linewidth=2, linestyle=linestyle, label=label))


def draw_roi_outputs(axes, image, box, output_size=7):
    """Three panels: the box on the image, its ROI pooling and its ROI Align output.

    Parameters
    ----------
    axes : three matplotlib Axes
    image : ndarray of shape (H, W), float64
    box : (x1, y1, x2, y2)
    output_size : int
    """
    x = image[None, None]
    pooled = _roi_output(x, box, "roi_pool", output_size)
    aligned = _roi_output(x, box, "roi_align", output_size)
    axes[0].imshow(image, cmap=CMAPS["image"])
    draw_box(axes[0], box, COLORS["highlight"])
    axes[0].set_title("box (x1, y1, x2, y2) =\n(" + ", ".join(f"{v:.1f}" for v in box)
                      + ")", fontsize=9)
    for ax, values, title in ((axes[1], pooled, "roi_pool"),
                              (axes[2], aligned, "roi_align (aligned, ratio 2)")):
        ax.imshow(values, cmap=CMAPS["output"], vmin=image.min(), vmax=image.max())
        ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


def draw_roi_figure(image, box, reference_box=None, output_size=7):
    """The panels of :func:`draw_roi_outputs` as one figure, with their changes.

    Parameters
    ----------
    image : ndarray of shape (H, W), float64
    box : (x1, y1, x2, y2)
    reference_box : (x1, y1, x2, y2), optional
        When given, a second row shows how much each output differs from the output
        for this box (diverging colours, the largest change in the title).
    output_size : int

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    rows = 1 if reference_box is None else 2
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.9 * rows), squeeze=False)
    draw_roi_outputs(axes[0], image, box, output_size)
    if reference_box is not None:
        x = image[None, None]
        axes[1, 0].axis("off")
        for ax, name in zip(axes[1, 1:], ("roi_pool", "roi_align")):
            change = _roi_output(x, box, name, output_size) - _roi_output(
                x, reference_box, name, output_size)
            ax.imshow(change, cmap=CMAPS["gradient"], vmin=-0.2, vmax=0.2)
            ax.set_title(f"change from the first box:\nmax |Δ| = {np.abs(change).max():.3f}",
                         fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def _roi_output(x, box, name, output_size):
    rois = np.array([[0.0, *box]])
    if name == "roi_pool":
        return roi_pool(x, rois, output_size)[0, 0]
    return roi_align(x, rois, output_size, sampling_ratio=2, aligned=True)[0, 0]


def roi_widget(image, output_size=7):
    """Live control: move and resize a box on ``image`` by sub-pixel steps."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    h, w = image.shape

    def show(x1=10.0, y1=10.0, width=20.0, height=20.0):
        draw_roi_figure(image, (x1, y1, x1 + width, y1 + height), None, output_size)
        plt.show()

    step = dict(step=0.1, readout_format=".1f")
    return widgets.interactive(
        show, x1=widgets.FloatSlider(value=10.0, min=0.0, max=w - 2.0, **step),
        y1=widgets.FloatSlider(value=10.0, min=0.0, max=h - 2.0, **step),
        width=widgets.FloatSlider(value=20.0, min=1.0, max=float(w), **step),
        height=widgets.FloatSlider(value=20.0, min=1.0, max=float(h), **step))
