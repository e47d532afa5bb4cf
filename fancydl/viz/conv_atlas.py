"""A convolution-arithmetic atlas after Dumoulin and Visin (2016).

Dumoulin and Visin's "A guide to convolution arithmetic for deep learning" walks
through every regime of a convolution's geometry, one small picture each, with the
relationship between input size ``i``, kernel ``k``, stride ``s``, padding ``p``,
dilation ``d`` and output size ``o`` that it illustrates, then the same regimes
transposed. :func:`atlas_regimes` lists those regimes with their numbers (the output
size computed by :func:`fancydl.conv_output_size` /
:func:`fancydl.conv_transpose_output_size`, the formulas fancydl's operators run) and
:func:`regime_figure` draws one of them with the primitives of
:mod:`fancydl.viz.conv_arithmetic` (input grid with its padding, the kernel footprint of
one output cell, the output grid). :func:`regime_animation` slides the kernel over
every output cell.

A transposed regime is drawn, as in the paper, as the direct convolution it equals:
``s - 1`` zeros (hatched) inserted between the input pixels, ``d(k - 1) - p`` cells of
padding around them, stride 1. Its input is the output of the direct regime it
transposes, and its output has that regime's input size (with ``output_padding`` =
Dumoulin and Visin's ``a`` in the odd case).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..windows import conv_output_size, conv_transpose_output_size
from .conv_arithmetic import (conv_arithmetic_animation, conv_geometry, draw_conv_step)

__all__ = ["Regime", "atlas_regimes", "regime_figure", "regime_animation", "atlas_explorer",
           "output_cells"]

#: Width of an atlas figure (inches at dpi 100: fits a ~750 px column).
FIGURE_WIDTH = 7.0
#: Smallest font of an atlas figure, in points.
FONT_SIZE = 10


@dataclass(frozen=True)
class Regime:
    """One regime of the atlas: a square convolution (or transposed one).

    Attributes
    ----------
    name : str
        Short name ("half padding, unit stride", ...).
    transposed : bool
    i, k, s, p, d : int
        Input size, kernel size, stride, padding, dilation (square).
    a : int
        ``output_padding`` of a transposed regime (Dumoulin and Visin's ``a``).
    relationship : int or None
        The number of the paper's relationship it illustrates (None: the paper gives
        no numbered relationship, e.g. a transposed dilated convolution).
    formula : str
        That relationship, in the paper's symbols.
    o : int
        Output size, from fancydl's output-size functions.
    """

    name: str
    transposed: bool
    i: int
    k: int
    s: int
    p: int
    d: int
    a: int
    relationship: int | None
    formula: str
    o: int

    def caption(self):
        """One line with the numbers, as in the paper's captions."""
        numbers = f"i={self.i}, k={self.k}, s={self.s}, p={self.p}"
        if self.d != 1:
            numbers += f", d={self.d}"
        if self.transposed and self.a:
            numbers += f", a={self.a}"
        rel = ("" if self.relationship is None else f"Relationship {self.relationship}: ")
        return f"{rel}{self.formula}\n{numbers} → o={self.o}"

    @property
    def parameters(self):
        """Keyword arguments of :func:`fancydl.viz.conv_arithmetic.conv_geometry`."""
        return dict(input_size=self.i, kernel_size=self.k, stride=self.s, padding=self.p,
                    dilation=self.d, transposed=self.transposed, output_padding=self.a)


def _direct(name, relationship, formula, i, k, s=1, p=0, d=1):
    return Regime(name, False, i, k, s, p, d, 0, relationship, formula,
                  conv_output_size(i, k, s, p, d))


def _transposed(direct, relationship, formula):
    """The transposed counterpart of a direct regime: its input is the direct output,
    and ``a = (i + 2p - d(k - 1) - 1) mod s`` recovers the direct input size."""
    a = (direct.i + 2 * direct.p - direct.d * (direct.k - 1) - 1) % direct.s
    o = conv_transpose_output_size(direct.o, direct.k, direct.s, direct.p, a, direct.d)
    return Regime(direct.name + " (transposed)", True, direct.o, direct.k, direct.s,
                  direct.p, direct.d, a, relationship, formula, o)


def atlas_regimes():
    """Every regime of Dumoulin and Visin's guide, direct then transposed.

    The examples are the paper's (figures 2.1 to 2.7, 4.1 to 4.7, 5.1) where they fit a
    small drawing; the transposed regimes transpose the direct ones, so their output
    sizes come back to the direct inputs.

    Returns
    -------
    list of Regime
        16 regimes: 8 direct (no padding, arbitrary, half and full padding with unit
        strides; non-unit strides without and with padding; the odd case where
        ``i + 2p - k`` is not a multiple of ``s``; dilation) and their 8 transposes.
    """
    direct = [
        _direct("no padding, unit strides", 1, "o = (i − k) + 1", 4, 3),
        _direct("arbitrary padding, unit strides", 2, "o = (i − k) + 2p + 1", 5, 4, p=2),
        _direct("half (same) padding, unit strides", 3, "o = i  (k = 2n + 1, p = n)", 5, 3,
                p=1),
        _direct("full padding, unit strides", 4, "o = i + (k − 1)  (p = k − 1)", 5, 3,
                p=2),
        _direct("no padding, non-unit strides", 5, "o = ⌊(i − k)/s⌋ + 1", 5, 3, s=2),
        _direct("padding, non-unit strides", 6, "o = ⌊(i + 2p − k)/s⌋ + 1", 5, 3, s=2,
                p=1),
        _direct("padding, non-unit strides, odd case", 6,
                "o = ⌊(i + 2p − k)/s⌋ + 1, (i + 2p − k) mod s ≠ 0", 6, 3, s=2, p=1),
        _direct("dilation", 15, "o = ⌊(i + 2p − k − (k − 1)(d − 1))/s⌋ + 1", 7, 3, d=2),
    ]
    transposed_formulas = [
        (8, "o′ = i′ + (k − 1)  (p′ = k − 1)"),
        (9, "o′ = i′ + (k − 1) − 2p  (p′ = k − p − 1)"),
        (10, "o′ = i′  (p′ = p)"),
        (11, "o′ = i′ − (k − 1)  (p′ = 0)"),
        (12, "o′ = s(i′ − 1) + k  (s − 1 zeros inserted)"),
        (13, "o′ = s(i′ − 1) + k − 2p"),
        (14, "o′ = s(i′ − 1) + a + k − 2p,  a = (i + 2p − k) mod s"),
        (None, "o′ = s(i′ − 1) + d(k − 1) + 1 − 2p  (transpose of Rel. 15)"),
    ]
    return direct + [_transposed(r, n, f) for r, (n, f) in zip(direct, transposed_formulas)]


def _layout(geometry, width):
    """Cell size (inches) and natural figure height for a drawing ``width`` wide."""
    in_shape, out_shape = geometry.grid_kinds.shape, geometry.output_size
    cell = min(0.34, (width - 1.0) / (in_shape[1] + out_shape[1]))
    return max(in_shape[0], out_shape[0]) * cell + 1.5


def regime_figure(regime, step=None, width=FIGURE_WIDTH, height=None):
    """Draw one regime: the (padded, zero-inserted) input with the kernel footprint of
    one output cell, and the output grid, the numbers in the title.

    Parameters
    ----------
    regime : Regime
        One of :func:`atlas_regimes`.
    step : int, optional
        Row-major index of the output cell shown; default: the centre cell.
    width : float
        Figure width in inches (at most 7.5 for the book's column at dpi 100).
    height : float, optional
        Figure height in inches; default: what the grids need (an explorer gives all
        its drawings one height).

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: left the input grid (blue: input; white dashed: padding; grey
        hatched: inserted zeros; orange: the kernel footprint of the highlighted
        output), right the output grid (one square patch per output cell; green: the
        highlighted cell and those computed before it). The title gives the regime,
        the relationship and the numbers ``i, k, s, p, d, (a) → o``.
    """
    import matplotlib.pyplot as plt

    geometry = conv_geometry(**regime.parameters)
    in_shape, out_shape = geometry.grid_kinds.shape, geometry.output_size
    height = _layout(geometry, width) if height is None else height
    fig, axes = plt.subplots(1, 2, figsize=(width, height),
                             gridspec_kw={"width_ratios": [in_shape[1], out_shape[1]]})
    fig.suptitle(f"{regime.name}\n{regime.caption()}", fontsize=FONT_SIZE)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 1.15 / height,
                        wspace=0.15)
    if step is None:
        rows, cols = out_shape
        step = (rows // 2) * cols + cols // 2
    draw_conv_step(axes, geometry, step)
    for ax in axes:
        ax.title.set_fontsize(FONT_SIZE)
    return fig


def atlas_explorer(dpi=80):
    """Every regime of the atlas in one precomputed explorer (a menu of the 16
    drawings, all of one size), for a chapter's static page.

    Returns
    -------
    fancydl.viz.explorer.Explorer
    """
    from .explorer import explore

    regimes = {r.name: r for r in atlas_regimes()}
    height = max(_layout(conv_geometry(**r.parameters), FIGURE_WIDTH)
                 for r in regimes.values())
    return explore(lambda regime: regime_figure(regimes[regime], height=height),
                   {"regime": list(regimes)},
                   caption="Convolution arithmetic after Dumoulin and Visin: the padded "
                           "input (blue; padding white, inserted zeros hatched), the "
                           "kernel footprint of one output (orange) and the output grid "
                           "(green), with i, k, s, p, d and o in the title.",
                   alt="Two grids: the input with padding and the kernel's footprint, "
                       "and the output grid with the current cell highlighted.",
                   dpi=dpi)


def regime_animation(regime, max_frames=30, dpi=80, interval=400):
    """The kernel sliding over every output cell of one regime (display it with
    :func:`fancydl.viz.conv_arithmetic.animation_html`, in a cell tagged
    ``nbval-ignore-output``).

    Returns
    -------
    matplotlib.animation.FuncAnimation
    """
    return conv_arithmetic_animation(**regime.parameters, max_frames=max_frames, dpi=dpi,
                                      interval=interval)


def output_cells(fig):
    """Number of output cells drawn in a :func:`regime_figure` (the output axes' square
    patches), for tests and for a chapter's check."""
    return len(fig.axes[1].patches)
