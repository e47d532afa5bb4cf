"""Pictures of transposed convolution: holes in the image, output size, checkerboards.

The zero-insertion grid is computed with :func:`fancydl.insert_zeros` and the overlap
counts with :func:`fancydl.conv_transpose2d` itself.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from .. import conv_transpose2d, insert_zeros
from ..windows import conv_transpose_output_size, effective_kernel_size
from .style import COLORS

__all__ = ["draw_zero_insertion", "zero_insertion_figure", "zero_insertion_small_multiples",
           "transposed_conv_widget", "overlap_counts", "draw_overlap_counts"]


def draw_zero_insertion(input_size=3, kernel_size=3, stride=2, padding=0,
                        output_padding=0, dilation=1, position=(0, 0), ax=None):
    """Draw conv_transpose2d as a stride-1 convolution over a zero-inserted input.

    Input pixels (blue) are spread ``stride`` apart with zeros (white) between them, the
    grid is padded by ``d(k-1) - p`` (grey; ``output_padding`` more at the bottom/right),
    and the orange square is the kernel footprint that produces output pixel
    ``position``. Square input and kernel, for clarity.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    fig = ax.figure
    spread = insert_zeros(np.ones((input_size, input_size)), stride)
    border = dilation * (kernel_size - 1) - padding
    before, after = border, border + output_padding
    grid = np.pad(spread, ((max(before, 0), max(after, 0)),) * 2, constant_values=-1)
    crop_before, crop_after = max(-before, 0), max(-after, 0)
    grid = grid[crop_before:grid.shape[0] - crop_after, crop_before:grid.shape[1] - crop_after]
    colours = {1: "#C6D4EA", 0: "white", -1: "#E4E4E4"}
    size = grid.shape[0]
    for r in range(size):
        for c in range(size):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=colours[int(grid[r, c])],
                                   edgecolor="#9A9A9A", linewidth=0.6))
            if grid[r, c] == 1:
                ax.plot(c + 0.5, r + 0.5, "o", color=COLORS["input"], markersize=5)
    out = conv_transpose_output_size(input_size, kernel_size, stride, padding,
                                     output_padding, dilation)
    pr, pc = position[0] % max(out, 1), position[1] % max(out, 1)
    for i in range(kernel_size):
        for j in range(kernel_size):
            ax.add_patch(Rectangle((pc + j * dilation, pr + i * dilation), 1, 1,
                                   facecolor=COLORS["kernel"], alpha=0.45,
                                   edgecolor=COLORS["kernel"], linewidth=1.2))
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"in {input_size}, k {kernel_size}, s {stride}, p {padding}, "
                 f"op {output_padding}, d {dilation}\n→ out {out}×{out}", fontsize=9)
    return fig


def zero_insertion_figure(input_size=3, kernel_size=3, stride=2, padding=0,
                          output_padding=0, dilation=1, position=(0, 0)):
    """A new 4 × 4 in figure of :func:`draw_zero_insertion`, for an explorer.

    Arguments that ``conv_transpose2d`` refuses (``output_padding`` not smaller than
    ``max(stride, dilation)``) or that crop more than the kernel reaches
    (``padding > dilation (kernel_size - 1)``) give a figure that says why instead.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(4, 4))
    limit = max(stride, dilation)
    if output_padding >= limit:
        reason = (f"output_padding = {output_padding} is refused:\n"
                  f"it must be smaller than\nmax(stride, dilation) = {limit}")
    elif padding > dilation * (kernel_size - 1):
        reason = (f"padding = {padding} crops more than\nthe kernel reaches "
                  f"(d(k - 1) = {dilation * (kernel_size - 1)})")
    else:
        return draw_zero_insertion(input_size, kernel_size, stride, padding,
                                   output_padding, dilation, position, ax=ax)
    ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=11,
            transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title(f"in {input_size}, k {kernel_size}, s {stride}, p {padding}, "
                 f"op {output_padding}, d {dilation}", fontsize=9)
    return fig


def zero_insertion_small_multiples(configs=None):
    """Several configurations of :func:`draw_zero_insertion`, two per row.

    Parameters
    ----------
    configs : list of dict, optional
        Keyword arguments of :func:`draw_zero_insertion`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if configs is None:
        configs = [dict(stride=1, padding=0), dict(stride=2, padding=0),
                   dict(stride=2, padding=1), dict(stride=2, padding=1, output_padding=1)]
    rows = -(-len(configs) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(6.4, 3.4 * rows), squeeze=False)
    for ax, config in zip(axes.ravel(), configs):
        draw_zero_insertion(ax=ax, **config)
    for ax in axes.ravel()[len(configs):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def transposed_conv_widget():
    """Live control over input size, kernel, stride, padding, output_padding, position.

    Returns
    -------
    ipywidgets.interactive
    """
    import ipywidgets as widgets

    def show(input_size, kernel_size, stride, padding, output_padding, row, col):
        if output_padding >= stride:
            print(f"output_padding={output_padding} must be smaller than stride={stride}: "
                  "conv_transpose2d refuses it")
            return
        if padding > kernel_size - 1:
            print(f"padding={padding} > kernel_size - 1 crops more than the kernel reach; "
                  "pick a smaller padding for this picture")
            return
        draw_zero_insertion(input_size, kernel_size, stride, padding, output_padding,
                            position=(row, col))
        plt.show()

    slider = widgets.IntSlider
    return widgets.interactive(
        show, input_size=slider(value=3, min=1, max=5, description="input"),
        kernel_size=slider(value=3, min=1, max=4, description="kernel"),
        stride=slider(value=2, min=1, max=3, description="stride"),
        padding=slider(value=0, min=0, max=2, description="padding"),
        output_padding=slider(value=0, min=0, max=2, description="output_padding"),
        row=slider(value=0, min=0, max=10, description="out row"),
        col=slider(value=0, min=0, max=10, description="out col"))


def overlap_counts(size, kernel_size, stride, layers=1):
    """How many kernel placements cover each output pixel of a stack of transposed convs
    with all-ones kernels (no padding): the checkerboard pattern of Odena et al.

    Returns
    -------
    ndarray of shape (H_out, W_out)
    """
    x = np.ones((1, 1, size, size))
    w = np.ones((1, 1, kernel_size, kernel_size))
    for _ in range(layers):
        x = conv_transpose2d(x, w, stride=stride)
    return x[0, 0]


def draw_overlap_counts(configs=((3, 2, 1), (4, 2, 1), (3, 2, 2), (4, 2, 2)), size=5):
    """Small multiples of :func:`overlap_counts` for (kernel, stride, layers) triples,
    two per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = -(-len(configs) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(5.6, 3.0 * rows), squeeze=False)
    for ax in axes.ravel()[len(configs):]:
        ax.set_axis_off()
    for ax, (k, s, layers) in zip(axes.ravel(), configs):
        counts = overlap_counts(size, k, s, layers)
        # Look at the interior, away from the border where fewer windows reach.
        margin = effective_kernel_size(k) * layers
        inner = counts[margin:-margin, margin:-margin]
        ax.imshow(inner, cmap="Greens", vmin=0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"k={k}, s={s}, {layers} layer{'s' if layers > 1 else ''}\n"
                     f"counts {int(inner.min())}…{int(inner.max())}", fontsize=9)
    fig.tight_layout()
    return fig
