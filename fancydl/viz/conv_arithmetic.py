"""Convolution arithmetic, drawn: the kernel footprint sliding over the input.

In the spirit of Dumoulin and Visin's figures ("A guide to convolution arithmetic for
deep learning", 2016), for any input size, kernel size, stride, padding and dilation,
transposed or not. The drawing is derived from the same window arithmetic that
:func:`fancydl.conv2d` runs (:mod:`fancydl.windows`): the footprint of every output
cell is read off :func:`fancydl.windows.offset_view` applied to a grid of cell
numbers, so the picture cannot drift from the computation.

A transposed convolution is drawn as Dumoulin and Visin draw it: as the direct
convolution it equals, with ``stride - 1`` zeros inserted between the input pixels
("holes in the image"), ``dilation (k - 1) - padding`` cells of padding around them
(plus ``output_padding`` at the bottom and right), stride 1, and the kernel rotated by
180°.

Colours come from :data:`fancydl.viz.style.COLORS`: input blue, kernel orange,
output green; padding is white and inserted zeros are grey and hatched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import check_int, check_pair
from ..windows import (check_kernel_fits, conv_output_size, conv_transpose_output_size,
                       kernel_offsets, offset_view)
from .style import COLORS

__all__ = ["ConvGeometry", "conv_geometry", "draw_conv_step", "conv_arithmetic_animation",
           "conv_arithmetic_widget", "draw_sliding_product", "sliding_product_animation",
           "sliding_product_widget", "animation_html", "conv_arithmetic_figure",
           "sliding_product_figure", "PADDING", "INPUT", "INSERTED_ZERO"]

#: Kinds of cells in the drawn input grid.
PADDING, INPUT, INSERTED_ZERO = 0, 1, 2


@dataclass
class ConvGeometry:
    """Everything the drawing needs, for one set of parameters.

    Attributes
    ----------
    input_size, kernel_size, stride, padding, dilation, output_padding : (int, int)
    transposed : bool
    grid_kinds : int ndarray of shape (Hg, Wg)
        ``PADDING``, ``INPUT`` or ``INSERTED_ZERO`` for every cell of the drawn grid.
    grid_to_input : int ndarray of shape (Hg, Wg, 2)
        The input pixel ``(row, column)`` a grid cell shows, ``(-1, -1)`` elsewhere.
    output_size : (int, int)
    footprints : int ndarray of shape (H_out, W_out, kH * kW, 2)
        Grid cell ``(row, column)`` under each kernel tap, taps in row-major order,
        for every output cell.
    """

    input_size: tuple
    kernel_size: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    output_padding: tuple
    transposed: bool
    grid_kinds: np.ndarray
    grid_to_input: np.ndarray
    output_size: tuple
    footprints: np.ndarray

    @property
    def drawn_stride(self):
        """The stride the drawn window moves by (1 for a transposed convolution)."""
        return (1, 1) if self.transposed else self.stride

    def caption(self):
        """One line with the numbers, as in Dumoulin and Visin's captions."""
        kind = "transposed convolution" if self.transposed else "convolution"
        parts = [f"input {_fmt(self.input_size)}", f"kernel {_fmt(self.kernel_size)}",
                 f"stride {_fmt(self.stride)}", f"padding {_fmt(self.padding)}",
                 f"dilation {_fmt(self.dilation)}"]
        if self.transposed and any(self.output_padding):
            parts.append(f"output_padding {_fmt(self.output_padding)}")
        return (f"{kind}, " + ", ".join(parts[:3]) + "\n" + ", ".join(parts[3:])
                + f" → output {_fmt(self.output_size)}")


def _fmt(pair):
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}×{pair[1]}"


def _direct_grid(input_size, padding):
    """Kinds and input coordinates of the padded input of a direct convolution."""
    (h, w), (ph, pw) = input_size, padding
    kinds = np.full((h + 2 * ph, w + 2 * pw), PADDING)
    kinds[ph:ph + h, pw:pw + w] = INPUT
    coords = np.full(kinds.shape + (2,), -1)
    coords[ph:ph + h, pw:pw + w] = np.stack(np.mgrid[0:h, 0:w], axis=-1)
    return kinds, coords


def _transposed_grid(input_size, kernel_size, stride, padding, dilation, output_padding):
    """Kinds and input coordinates of the zero-inserted, padded input of a transposed
    convolution (a negative padding crops, as in conv_transpose2d's zero-insertion)."""
    sizes = [(n - 1) * s + 1 for n, s in zip(input_size, stride)]
    kinds = np.full(sizes, INSERTED_ZERO)
    kinds[::stride[0], ::stride[1]] = INPUT
    coords = np.full(sizes + [2], -1)
    coords[::stride[0], ::stride[1]] = np.stack(np.mgrid[0:input_size[0], 0:input_size[1]],
                                                axis=-1)
    for axis in range(2):
        before = dilation[axis] * (kernel_size[axis] - 1) - padding[axis]
        after = before + output_padding[axis]
        kinds = _pad_or_crop(kinds, axis, before, after, PADDING)
        coords = _pad_or_crop(coords, axis, before, after, -1)
    return kinds, coords


def _pad_or_crop(a, axis, before, after, value):
    widths = [(0, 0)] * a.ndim
    widths[axis] = (max(before, 0), max(after, 0))
    a = np.pad(a, widths, constant_values=value)
    index = [slice(None)] * a.ndim
    index[axis] = slice(max(-before, 0), a.shape[axis] - max(-after, 0))
    return a[tuple(index)]


def conv_geometry(input_size, kernel_size, stride=1, padding=0, dilation=1, transposed=False,
                  output_padding=0):
    """Compute what a convolution (or transposed convolution) reads for every output.

    Parameters
    ----------
    input_size, kernel_size : int or (int, int)
    stride, padding, dilation : int or (int, int)
        As in :func:`fancydl.conv2d` / :func:`fancydl.conv_transpose2d`.
    transposed : bool
    output_padding : int or (int, int)
        Only for ``transposed``; must be smaller than ``max(stride, dilation)``.

    Returns
    -------
    ConvGeometry

    Raises
    ------
    ValueError
        When the kernel does not fit (no output), as the convolution itself would.
    """
    op = "conv_geometry"
    input_size = check_pair(op, "input_size", input_size, minimum=1)
    kernel_size = check_pair(op, "kernel_size", kernel_size, minimum=1)
    stride = check_pair(op, "stride", stride, minimum=1)
    padding = check_pair(op, "padding", padding, minimum=0)
    dilation = check_pair(op, "dilation", dilation, minimum=1)
    output_padding = check_pair(op, "output_padding", output_padding, minimum=0)
    if not transposed and any(output_padding):
        raise ValueError(f"{op}: output_padding is only for transposed convolutions, "
                         f"got {output_padding}")
    if transposed:
        for a, s, d in zip(output_padding, stride, dilation):
            if a >= max(s, d):
                raise ValueError(f"{op}: output_padding must be smaller than "
                                 f"max(stride, dilation) = {max(s, d)}, got {a}")
        kinds, coords = _transposed_grid(input_size, kernel_size, stride, padding,
                                         dilation, output_padding)
        output_size = tuple(conv_transpose_output_size(*args) for args in zip(
            input_size, kernel_size, stride, padding, output_padding, dilation))
        drawn_stride = (1, 1)
    else:
        kinds, coords = _direct_grid(input_size, padding)
        check_kernel_fits(op, input_size, kernel_size, tuple((p, p) for p in padding),
                          dilation)
        output_size = tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in zip(
            input_size, kernel_size, stride, padding, dilation))
        drawn_stride = stride
    cell_numbers = np.arange(kinds.size).reshape(kinds.shape)
    taps = [offset_view(cell_numbers, offset, drawn_stride, dilation, output_size)
            for offset in kernel_offsets(kernel_size)]
    flat = np.stack(taps, axis=-1)  # (H_out, W_out, kH * kW)
    footprints = np.stack(np.unravel_index(flat, kinds.shape), axis=-1)
    return ConvGeometry(input_size, kernel_size, stride, padding, dilation, output_padding,
                        bool(transposed), kinds, coords, output_size, footprints)


# --- drawing ----------------------------------------------------------------------------

def _cell(ax, row, col, **style):
    from matplotlib.patches import Rectangle
    ax.add_patch(Rectangle((col, row), 1, 1, **style))


def _draw_input_grid(ax, geometry):
    for (row, col), kind in np.ndenumerate(geometry.grid_kinds):
        if kind == INPUT:
            _cell(ax, row, col, facecolor=COLORS["input"], alpha=0.35,
                  edgecolor="black", lw=0.8)
        elif kind == INSERTED_ZERO:
            _cell(ax, row, col, facecolor="#DDDDDD", hatch="//", edgecolor="#777777",
                  lw=0.6)
        else:
            _cell(ax, row, col, facecolor="white", edgecolor="#999999", lw=0.6, ls="--")


def _draw_footprint(ax, geometry, out_row, out_col):
    for row, col in geometry.footprints[out_row, out_col]:
        _cell(ax, row, col, facecolor=COLORS["kernel"], alpha=0.75, edgecolor="black",
              lw=1.2)


def _draw_output_grid(ax, geometry, step):
    out_w = geometry.output_size[1]
    for (row, col) in np.ndindex(*geometry.output_size):
        index = row * out_w + col
        if index < step:
            _cell(ax, row, col, facecolor=COLORS["output"], alpha=0.35, edgecolor="black",
                  lw=0.8)
        elif index == step:
            _cell(ax, row, col, facecolor=COLORS["output"], edgecolor="black", lw=1.6)
        else:
            _cell(ax, row, col, facecolor="white", edgecolor="black", lw=0.8)


def _frame_axes(ax, shape, title):
    ax.set_xlim(-0.2, shape[1] + 0.2)
    ax.set_ylim(shape[0] + 0.2, -0.2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=9)


def draw_conv_step(axes, geometry, step):
    """Draw output cell number ``step`` (row-major) being computed.

    Parameters
    ----------
    axes : pair of matplotlib Axes
        Left: the input grid and the kernel footprint; right: the output grid.
    geometry : ConvGeometry
    step : int
        Row-major index of the output cell, taken modulo the number of outputs.
    """
    ax_in, ax_out = axes
    ax_in.clear()
    ax_out.clear()
    step = step % int(np.prod(geometry.output_size))
    out_row, out_col = divmod(step, geometry.output_size[1])
    _draw_input_grid(ax_in, geometry)
    _draw_footprint(ax_in, geometry, out_row, out_col)
    _draw_output_grid(ax_out, geometry, step)
    kernel = "kernel (rotated 180°)" if geometry.transposed else "kernel"
    _frame_axes(ax_in, geometry.grid_kinds.shape, f"input + {kernel} footprint")
    _frame_axes(ax_out, geometry.output_size, f"output, cell ({out_row}, {out_col})")


def _figure(geometry, scale=0.3):
    import matplotlib.pyplot as plt
    in_shape, out_shape = geometry.grid_kinds.shape, geometry.output_size
    height = max(in_shape[0], out_shape[0]) * scale + 1.1
    width = min(max((in_shape[1] + out_shape[1]) * scale + 1.2, 4.6), 7.2)
    fig, axes = plt.subplots(1, 2, figsize=(width, height),
                             gridspec_kw={"width_ratios": [in_shape[1], out_shape[1]]})
    fig.suptitle(geometry.caption(), fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.75 / height,
                        wspace=0.1)
    return fig, axes


def conv_arithmetic_figure(input_size=5, kernel_size=3, stride=1, padding=0, dilation=1,
                           transposed=False, output_padding=0, step=None, figsize=None):
    """A new figure with output cell number ``step`` (row-major) being computed.

    Parameters are those of :func:`conv_geometry`; this is one frame of
    :func:`conv_arithmetic_animation`, for :func:`fancydl.viz.explore`. ``step=None``
    picks the centre output cell; ``figsize`` (inches) fixes the figure's size, so
    that all the images of an explorer have the same.

    Returns
    -------
    matplotlib.figure.Figure
    """
    geometry = conv_geometry(input_size, kernel_size, stride, padding, dilation, transposed,
                             output_padding)
    fig, axes = _figure(geometry)
    if figsize is not None:
        fig.set_size_inches(*figsize)
        fig.subplots_adjust(top=1 - 0.75 / figsize[1])
    if step is None:
        rows, cols = geometry.output_size
        step = (rows // 2) * cols + cols // 2
    draw_conv_step(axes, geometry, step)
    return fig


def _frame_steps(n_outputs, max_frames):
    """Which output cells to show: all of them, or ``max_frames`` evenly spread."""
    if n_outputs <= max_frames:
        return list(range(n_outputs))
    return sorted(set(np.linspace(0, n_outputs - 1, max_frames).round().astype(int)))


def conv_arithmetic_animation(input_size=5, kernel_size=3, stride=1, padding=0, dilation=1,
                              transposed=False, output_padding=0, max_frames=30, dpi=80,
                              interval=400):
    """A matplotlib animation of the kernel sliding over the input, one output per frame.

    Parameters are those of :func:`conv_geometry`; ``max_frames`` caps the frames
    (evenly spread output cells) so that the HTML stays small, ``dpi`` the resolution.

    Returns
    -------
    matplotlib.animation.FuncAnimation
        Display it with :func:`animation_html` (it fits a phone-width column); its
        figure is closed, so it is not drawn a second time.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    check_int("conv_arithmetic_animation", "max_frames", max_frames, minimum=1)
    geometry = conv_geometry(input_size, kernel_size, stride, padding, dilation, transposed,
                             output_padding)
    fig, axes = _figure(geometry)
    fig.set_dpi(dpi)
    steps = _frame_steps(int(np.prod(geometry.output_size)), max_frames)
    animation = FuncAnimation(fig, lambda step: draw_conv_step(axes, geometry, step),
                              frames=steps, interval=interval)
    plt.close(fig)
    return animation


def conv_arithmetic_widget():
    """A live control: sliders for every parameter and for the output cell.

    Returns
    -------
    ipywidgets.VBox
        The sliders and the drawing (works with ipywidgets 7 and 8).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    def slider(description, value, low, high):
        return widgets.IntSlider(value=value, min=low, max=high, description=description,
                                 continuous_update=False)

    controls = {"input_size": slider("input", 5, 2, 9), "kernel_size": slider("kernel", 3, 1, 5),
                "stride": slider("stride", 1, 1, 3), "padding": slider("padding", 0, 0, 3),
                "dilation": slider("dilation", 1, 1, 3),
                "output_padding": slider("out pad", 0, 0, 2),
                "transposed": widgets.Checkbox(value=False, description="transposed"),
                "step": widgets.IntSlider(value=0, min=0, max=8, description="output cell")}
    output = widgets.Output()

    def redraw(_change=None):
        params = {k: c.value for k, c in controls.items() if k != "step"}
        if not params["transposed"]:
            params["output_padding"] = 0
        output.clear_output(wait=True)
        with output:
            try:
                geometry = conv_geometry(**params)
            except ValueError as error:
                print(error)
                return
            controls["step"].max = int(np.prod(geometry.output_size)) - 1
            fig, axes = _figure(geometry)
            draw_conv_step(axes, geometry, controls["step"].value)
            display(fig)
            plt.close(fig)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    rows = [widgets.HBox([controls["input_size"], controls["kernel_size"], controls["stride"]]),
            widgets.HBox([controls["padding"], controls["dilation"], controls["output_padding"]]),
            widgets.HBox([controls["transposed"], controls["step"]])]
    return widgets.VBox(rows + [output])


# --- 1-D: the sliding product of convolution and correlation ------------------------------

def draw_sliding_product(ax_signal, ax_output, signal, kernel, position, flip=True):
    """One step of a 1-D 'full' convolution (``flip=True``) or correlation.

    Output sample ``n`` of both reads the signal window ``[n - K + 1, n]``; convolution
    lays the kernel over it reversed, ``x[n - m] k[m]``, correlation as it is,
    ``x[n - K + 1 + j] k[j]``.

    Parameters
    ----------
    ax_signal, ax_output : matplotlib Axes
        Top: the signal, the kernel over its window; bottom: the output so far.
    signal : ndarray of shape (N,)
    kernel : ndarray of shape (K,)
    position : int
        Output index ``n`` in ``[0, N + K - 1)`` (taken modulo that length).
    flip : bool
        Convolution (kernel reversed) or cross-correlation.
    """
    from ..signal import convolve, correlate

    n_signal, n_kernel = len(signal), len(kernel)
    full = (convolve if flip else correlate)(signal, kernel, mode="full", method="direct")
    position = position % len(full)
    window = np.arange(position - n_kernel + 1, position + 1)
    laid = kernel[::-1] if flip else kernel
    inside = (window >= 0) & (window < n_signal)
    products = np.zeros(n_kernel)
    products[inside] = signal[window[inside]] * laid[inside]

    ax_signal.clear()
    ax_output.clear()
    span = (-n_kernel + 0.5, n_signal + n_kernel - 1.5)
    ax_signal.axvspan(window[0] - 0.5, window[-1] + 0.5, color=COLORS["kernel"], alpha=0.15)
    ax_signal.vlines(np.arange(n_signal), 0, signal, color=COLORS["input"], lw=2)
    ax_signal.plot(np.arange(n_signal), signal, "o", color=COLORS["input"], ms=4,
                   label="x")
    ax_signal.plot(window, laid, "s", color=COLORS["kernel"], ms=6,
                   label="kernel, flipped" if flip else "kernel")
    ax_signal.set_xlim(*span)
    low = min(signal.min(), laid.min(), 0.0)
    high = max(signal.max(), laid.max(), 0.0)
    ax_signal.set_ylim(low - 0.15 * (high - low), high + 0.8 * (high - low))
    ax_signal.axhline(0, color="black", lw=0.5)
    ax_signal.legend(fontsize=9, loc="upper right", ncol=2, handletextpad=0.2,
                     columnspacing=0.8)
    name = "convolution" if flip else "correlation"
    ax_signal.set_title(f"{name}: y[{position}] = Σ products = {products.sum():.2f}",
                        fontsize=9)
    done = np.arange(position + 1)
    ax_output.vlines(done, 0, full[:position + 1], color=COLORS["output"], lw=2)
    ax_output.plot(done[-1], full[position], "o", color=COLORS["output"], ms=7)
    ax_output.set_xlim(*span)
    limit = 1.1 * max(np.abs(full).max(), 1e-12)
    ax_output.set_ylim(-limit, limit)
    ax_output.axhline(0, color="black", lw=0.5)
    ax_output.set_xlabel("index n (under its window's last sample)")
    ax_output.set_ylabel("output")


def _sliding_figure(columns):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, columns, figsize=(3.6 * columns, 3.8), sharex=True,
                             squeeze=False)
    fig.subplots_adjust(hspace=0.35, wspace=0.3, left=0.1, right=0.98, top=0.91,
                        bottom=0.13)
    return fig, axes


def sliding_product_animation(signal, kernel, max_frames=30, dpi=80, interval=500):
    """Convolution (left) and correlation (right) of a 1-D signal, one output per frame.

    Returns
    -------
    matplotlib.animation.FuncAnimation
        Its figure is closed; show it with :func:`animation_html`.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, axes = _sliding_figure(2)
    fig.set_dpi(dpi)

    def draw(position):
        for column, flip in enumerate((True, False)):
            draw_sliding_product(axes[0, column], axes[1, column], signal, kernel, position,
                                 flip)

    steps = _frame_steps(len(signal) + len(kernel) - 1, max_frames)
    animation = FuncAnimation(fig, draw, frames=steps, interval=interval)
    plt.close(fig)
    return animation


def sliding_product_figure(signal, kernel, position, flip=True):
    """A new figure with one step of :func:`draw_sliding_product` (signal on top).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _sliding_figure(1)
    fig.set_size_inches(5.0, 3.8)
    draw_sliding_product(axes[0, 0], axes[1, 0], signal, kernel, position, flip)
    return fig


def sliding_product_widget(signal, kernel):
    """A live control: slide the kernel (position slider) with the flip on or off."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(position, flip):
        sliding_product_figure(signal, kernel, position, flip)
        plt.show()

    last = len(signal) + len(kernel) - 2
    return widgets.interactive(
        show, position=widgets.IntSlider(value=0, min=0, max=last, description="output n"),
        flip=widgets.Checkbox(value=True, description="flip (convolution)"))


# --- animations that fit the page ---------------------------------------------------------

#: Matplotlib's player icons (Font Awesome classes) as plain characters, so that the
#: buttons need no icon font (``\ufe0e`` asks for the text form, never an emoji).
_BUTTON_TEXT = {"fa-minus": "\u2212", "fa-fast-backward": "\u21e4",
                "fa-step-backward": "\u2039", "fa-play fa-flip-horizontal": "\u25c0\ufe0e",
                "fa-pause": "\u275a\u275a", "fa-play": "\u25b6\ufe0e",
                "fa-step-forward": "\u203a", "fa-fast-forward": "\u21e5", "fa-plus": "+"}

#: Overrides of matplotlib's player style, scoped to our wrapper: the frame and the
#: slider shrink with the column and the buttons wrap, so nothing overflows a phone.
_FIT_STYLE = """<style>
.fancydl-animation {max-width: 100%;}
.fancydl-animation .animation {display: block; max-width: 100%;}
.fancydl-animation .animation img {max-width: 100%; height: auto;}
.fancydl-animation input[type=range].anim-slider {width: 100%; max-width: 374px;
  box-sizing: border-box;}
.fancydl-animation .anim-buttons {display: flex; flex-wrap: wrap;
  justify-content: center; gap: 2px;}
.fancydl-animation .anim-buttons button {width: 32px; height: 28px;
  font-size: 15px; line-height: 1;}
.fancydl-animation .anim-state {display: flex; flex-wrap: wrap;
  justify-content: center; gap: 4px;}
</style>"""


def animation_html(animation, default_mode="loop", alt=None):
    """A matplotlib animation as a self-contained player that fits any column.

    ``animation.to_jshtml()`` with three changes: the frame, the slider and the
    buttons shrink or wrap to the column (a 390 px phone included), the buttons show
    plain characters instead of icons from a web font (no request leaves the page),
    and the player loops by default. ``alt`` becomes the frame's alt text.

    Parameters
    ----------
    animation : matplotlib.animation.Animation
    default_mode : {"loop", "once", "reflect"}
    alt : str, optional
        What the animation shows, for a reader who cannot see it.

    Returns
    -------
    IPython.display.HTML
    """
    import html as html_module
    import re

    from IPython.display import HTML

    if default_mode not in ("loop", "once", "reflect"):
        raise ValueError("animation_html: default_mode must be 'loop', 'once' or "
                         f"'reflect', got {default_mode!r}")
    html = animation.to_jshtml(default_mode=default_mode)
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
    for icon, text in _BUTTON_TEXT.items():
        html = html.replace(f'<i class="fa {icon}"></i>', text)
    if "<i class=\"fa " in html:
        raise RuntimeError("animation_html: matplotlib's player has an icon this "
                           "function does not know")
    if alt is not None:
        escaped = html_module.escape(alt, quote=True)
        html = html.replace('<img id="_anim_img', f'<img alt="{escaped}" id="_anim_img', 1)
    return HTML(f'<div class="fancydl-animation">{_FIT_STYLE}{html}</div>')
