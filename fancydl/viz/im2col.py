"""Pictures of im2col: which input window becomes which column of the matrix.

Every input pixel is labelled with a number (channel 0: 1, 2, ...; channel 1 continues
the count), padding is 0 (shown as a dot), and :func:`fancydl.im2col` of that labelled
image *is* the matrix drawn on the right: the picture is computed, not drawn by hand.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from .. import im2col
from ..windows import conv_output_size
from .style import COLORS

__all__ = ["labelled_image", "draw_im2col", "im2col_widget"]


def labelled_image(channels, height, width):
    """An image whose pixels are numbered 1, 2, ... (channel-major), as float64.

    Returns
    -------
    ndarray of shape (1, channels, height, width)
    """
    return np.arange(1, channels * height * width + 1, dtype=np.float64).reshape(
        1, channels, height, width)


def _cell_text(value):
    return "·" if value == 0 else f"{int(value)}"


def _draw_grid(ax, labels, fill, title, fontsize=9):
    """Draw a grid of labelled cells; ``fill`` gives each cell's face colour."""
    rows, cols = labels.shape
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=fill[r][c], edgecolor="white",
                                   linewidth=1))
            ax.text(c + 0.5, r + 0.5, _cell_text(labels[r, c]), ha="center", va="center",
                    fontsize=fontsize)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)


def _stacked_axes(channels, padded_shape, matrix_shape, width=7.2, height=5.4):
    """Axes in inches: the input channels side by side on top, the matrix below.

    Cells have one size everywhere (at most 0.36 in), chosen so that everything fits
    a ``width`` × ``height`` figure: the book's column, a phone's screen.
    """
    (hp, wp), (rows, cols) = padded_shape, matrix_shape
    margin, gap, title, top = 0.15, 0.4, 0.4, 0.55
    cell = min(0.36, (width - 2 * margin) / cols,
               (width - 2 * margin - gap * (channels - 1)) / (channels * wp),
               (height - top - 2 * title - margin) / (hp + rows))
    fig = plt.figure(figsize=(width, height))
    row_width = channels * wp * cell + gap * (channels - 1)
    left = (width - row_width) / 2
    bottom = height - top - title - hp * cell
    axes = []
    for c in range(channels):
        x0 = left + c * (wp * cell + gap)
        axes.append(fig.add_axes([x0 / width, bottom / height, wp * cell / width,
                                  hp * cell / height]))
    matrix_bottom = bottom - title - rows * cell
    axes.append(fig.add_axes([(width - cols * cell) / 2 / width, matrix_bottom / height,
                              cols * cell / width, rows * cell / height]))
    return fig, axes


def draw_im2col(column, channels=2, input_size=(4, 4), kernel_size=(2, 2), stride=1,
                padding=0, dilation=1, axes=None):
    """Draw the padded input (one panel per channel) and its im2col matrix below, with
    the window of output position ``column`` and the matrix column it becomes
    highlighted.

    Parameters
    ----------
    column : int
        Output position, row-major (taken modulo the number of positions).
    channels : int
    input_size, kernel_size : (int, int)
    stride, padding, dilation : int
    axes : sequence of ``channels + 1`` matplotlib Axes, optional
        By default a new 7.2 × 5.4 in figure (the book's column width).

    Returns
    -------
    matplotlib.figure.Figure
    """
    height, width = input_size
    kh, kw = kernel_size
    oh = conv_output_size(height, kh, stride, padding, dilation)
    ow = conv_output_size(width, kw, stride, padding, dilation)
    column = column % (oh * ow)
    h_out, w_out = divmod(column, ow)
    image = labelled_image(channels, height, width)
    padded = np.pad(image[0], ((0, 0), (padding, padding), (padding, padding)))
    cols = im2col(image, kernel_size, dilation=dilation, padding=padding, stride=stride)[0]
    if axes is None:
        _, axes = _stacked_axes(channels, padded.shape[1:], cols.shape)
    fig = axes[0].figure
    window_rows = {h_out * stride + i * dilation for i in range(kh)}
    window_cols = {w_out * stride + j * dilation for j in range(kw)}
    for c in range(channels):
        fill = [[COLORS["kernel"] if (r in window_rows and q in window_cols) else
                 ("#EEEEEE" if padded[c, r, q] == 0 else "#C6D4EA")
                 for q in range(padded.shape[2])] for r in range(padded.shape[1])]
        _draw_grid(axes[c], padded[c], fill, f"input channel {c}")
    fill = [[COLORS["kernel"] if q == column else "#C6D4EA" for q in range(cols.shape[1])]
            for _ in range(cols.shape[0])]
    _draw_grid(axes[-1], cols, fill,
               f"im2col matrix ({cols.shape[0]} × {cols.shape[1]}): column {column}")
    fig.suptitle(f"output position ({h_out}, {w_out}) = column {column}\n"
                 f"kernel {kh}×{kw}, stride {stride}, padding {padding}, "
                 f"dilation {dilation}", fontsize=10, y=0.99)
    return fig


def im2col_widget():
    """Live control: pick the output position, stride, padding and dilation.

    Returns
    -------
    ipywidgets.interactive
        The live version kept for Colab and Binder; the book shows
        :func:`fancydl.viz.explore` over :func:`draw_im2col` instead.
    """
    import ipywidgets as widgets

    def show(column, stride, padding, dilation):
        draw_im2col(column, stride=stride, padding=padding, dilation=dilation)
        plt.show()

    return widgets.interactive(
        show,
        column=widgets.IntSlider(value=0, min=0, max=24, description="position"),
        stride=widgets.IntSlider(value=1, min=1, max=2, description="stride"),
        padding=widgets.IntSlider(value=0, min=0, max=1, description="padding"),
        dilation=widgets.IntSlider(value=1, min=1, max=2, description="dilation"))
