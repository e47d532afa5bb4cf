"""ROI Pool's quantized bins against ROI Align's exact bins and sample points.

Both operators cut a box on the feature map into ``output_size`` bins. ROI Pool (Fast
R-CNN) first rounds the box to whole feature cells and its bins to whole cells too, so
a bin may be a cell larger or smaller than its neighbour and the box moves by up to
half a cell; ROI Align (Mask R-CNN) keeps the box exactly, cuts it into equal bins and
averages a ``sampling_ratio × sampling_ratio`` grid of bilinear samples in each.

:func:`roi_layout` computes both layouts with the geometry functions that
:func:`fancydl.roi_pool` and :func:`fancydl.roi_align` themselves run
(:mod:`fancydl.pool`), and :func:`roi_bins_figure` draws them side by side.

Coordinates: as in torchvision, feature cell ``(r, c)`` is centred at ``(y, x) = (r, c)``
(drawn as the unit square around it); a box coordinate is multiplied by
``spatial_scale`` (and shifted by -0.5 when ``aligned``) to land in this frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pool import _roi_align_samples, _roi_pool_bins
from .style import COLORS

__all__ = ["RoiLayout", "roi_layout", "roi_bins_figure"]


@dataclass
class RoiLayout:
    """Where ROI Pool and ROI Align read one box, in feature-cell coordinates.

    Attributes
    ----------
    map_size : (H, W)
    box : ndarray of shape (4,)
        ``(x1, y1, x2, y2)`` scaled by ``spatial_scale`` (what ROI Pool rounds).
    align_box : ndarray of shape (4,)
        The box ROI Align cuts: ``box``, shifted by -0.5 when ``aligned``.
    pool_rows, pool_cols : int ndarrays of shape (PH, 2) and (PW, 2)
        ROI Pool's bins: ``[start, end)`` feature rows / columns of each bin (clipped
        to the map; an empty bin has ``end <= start``).
    pool_box : int ndarray of shape (4,)
        ROI Pool's rounded box: first column, first row, last column, last row.
    align_row_edges, align_col_edges : ndarrays of shape (PH + 1,) and (PW + 1,)
        ROI Align's bin edges (equal bins).
    samples : ndarray of shape (S, 2)
        ``(y, x)`` of every bilinear sample that reads the map, bin by bin.
    sample_bins : int ndarray of shape (S, 2)
        The ``(row, column)`` bin of each sample.
    grid : (int, int)
        Samples per bin along y and x (each bin averages ``grid[0] · grid[1]``
        samples, those outside the map counting as 0).
    """

    map_size: tuple
    box: np.ndarray
    align_box: np.ndarray
    pool_rows: np.ndarray
    pool_cols: np.ndarray
    pool_box: np.ndarray
    align_row_edges: np.ndarray
    align_col_edges: np.ndarray
    samples: np.ndarray
    sample_bins: np.ndarray
    grid: tuple


def _align_edges(ends, spatial_scale, output_size, aligned):
    """Bin edges of ROI Align along one axis (the arithmetic of
    :func:`fancydl.pool._roi_align_samples`, in float64)."""
    start, end = np.asarray(ends, np.float64) * spatial_scale - (0.5 if aligned else 0.0)
    length = end - start if aligned else max(end - start, 1.0)
    return start + np.arange(output_size + 1) * (length / output_size)


def roi_layout(box, map_size, output_size=2, spatial_scale=1.0, sampling_ratio=2,
               aligned=False):
    """ROI Pool's and ROI Align's bins (and ROI Align's samples) for one box.

    Parameters
    ----------
    box : sequence of 4 floats
        ``(x1, y1, x2, y2)`` in input coordinates.
    map_size : (int, int)
        Feature map (H, W).
    output_size : int or (int, int)
    spatial_scale : float
    sampling_ratio : int
        As in :func:`fancydl.roi_align` (``<= 0``: ``ceil(bin size)`` per axis).
    aligned : bool

    Returns
    -------
    RoiLayout
    """
    (ph, pw) = (output_size, output_size) if np.isscalar(output_size) else output_size
    height, width = map_size
    corners = np.asarray(box, np.float64)
    dtype = np.dtype(np.float64)
    ys, xs = corners[None, [1, 3]], corners[None, [0, 2]]
    rows = np.stack(_roi_pool_bins(ys, spatial_scale, ph, height, dtype), axis=-1)[0]
    cols = np.stack(_roi_pool_bins(xs, spatial_scale, pw, width, dtype), axis=-1)[0]
    rounded = np.sign(corners * spatial_scale) * np.floor(np.abs(corners * spatial_scale)
                                                          + 0.5)
    axes = []
    for ends, out, size in ((ys, ph, height), (xs, pw, width)):
        grid, cell, coord = _roi_align_samples(ends, spatial_scale, out, sampling_ratio,
                                               aligned, size, dtype)
        axes.append((int(grid[0]), cell, coord))
    (grid_y, bin_y, y), (grid_x, bin_x, x) = axes
    pick_y, pick_x = np.meshgrid(np.arange(len(y)), np.arange(len(x)), indexing="ij")
    order = np.lexsort((pick_x.ravel(), bin_x[pick_x].ravel(), bin_y[pick_y].ravel()))
    pick_y, pick_x = pick_y.ravel()[order], pick_x.ravel()[order]
    shift = 0.5 if aligned else 0.0
    return RoiLayout(
        map_size=(height, width),
        box=corners * spatial_scale, align_box=corners * spatial_scale - shift,
        pool_rows=rows, pool_cols=cols,
        pool_box=rounded.astype(np.int64),
        align_row_edges=_align_edges(ys[0], spatial_scale, ph, aligned),
        align_col_edges=_align_edges(xs[0], spatial_scale, pw, aligned),
        samples=np.column_stack([y[pick_y], x[pick_x]]),
        sample_bins=np.column_stack([bin_y[pick_y], bin_x[pick_x]]),
        grid=(grid_y, grid_x))


def _draw_map(ax, layout, title):
    from matplotlib.patches import Rectangle

    height, width = layout.map_size
    for r in range(height):
        for c in range(width):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=COLORS["input"],
                                   alpha=0.12, edgecolor="#7F8FA8", lw=0.7))
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(height - 0.3, -0.7)
    ax.set_aspect("equal")
    ax.set_xticks(range(width))
    ax.set_yticks(range(height))
    ax.tick_params(labelsize=9, length=0)
    ax.set_xlabel("feature column", fontsize=10)
    ax.set_title(title, fontsize=10)


def _draw_box(ax, x1, y1, x2, y2, **style):
    from matplotlib.patches import Rectangle
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, **style))


def _draw_roi_pool(ax, layout):
    """Each non-empty bin as its own inset outline, labelled with its (row, column)
    index, so that overlapping bins (floor/ceil edges) stay readable."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    for (p, (r0, r1)) in enumerate(layout.pool_rows):
        for (q, (c0, c1)) in enumerate(layout.pool_cols):
            if r1 > r0 and c1 > c0:
                inset = 0.07 * (1 + (p + q) % 2)
                ax.add_patch(Rectangle((c0 - 0.5 + inset, r0 - 0.5 + inset),
                                       c1 - c0 - 2 * inset, r1 - r0 - 2 * inset,
                                       facecolor=to_rgba(COLORS["kernel"], 0.18),
                                       edgecolor=COLORS["kernel"], lw=2.0))
                ax.text(c0 - 0.5 + inset + 0.08, r0 - 0.5 + inset + 0.08, f"{p},{q}",
                        fontsize=9, va="top", ha="left", color="#7A3B12")
    _draw_box(ax, *layout.box, edgecolor="black", lw=1.6, ls="--")


def _draw_roi_align(ax, layout):
    x1, y1, x2, y2 = (layout.align_col_edges[0], layout.align_row_edges[0],
                      layout.align_col_edges[-1], layout.align_row_edges[-1])
    for y in layout.align_row_edges:
        ax.plot([x1, x2], [y, y], color=COLORS["output"], lw=2.2)
    for x in layout.align_col_edges:
        ax.plot([x, x], [y1, y2], color=COLORS["output"], lw=2.2)
    _draw_box(ax, *layout.align_box, edgecolor="black", lw=1.6, ls="--")
    ax.plot(layout.samples[:, 1], layout.samples[:, 0], "o", color=COLORS["highlight"],
            ms=5, label="bilinear samples")


def roi_bins_figure(box=(1.3, 0.8, 6.6, 5.9), map_size=(8, 8), output_size=2,
                    spatial_scale=1.0, sampling_ratio=2, aligned=False):
    """ROI Pool's bins next to ROI Align's bins and sample points, for one box.

    Left: the feature grid (blue cells, each centred on its integer coordinates), the
    box (dashed) and ROI Pool's bins (orange): the box rounded to whole cells and cut
    into bins of whole cells, unequal when the box does not divide evenly. Right: the
    same box cut by ROI Align into equal bins (green lines) with its
    ``sampling_ratio × sampling_ratio`` bilinear sample points (red dots) in each bin;
    each output is the mean of its bin's samples. Arguments are those of
    :func:`roi_layout`.

    Returns
    -------
    matplotlib.figure.Figure
        7 inches wide (fits the book's column at dpi 100), text at 9–10 pt.
    """
    import matplotlib.pyplot as plt

    layout = roi_layout(box, map_size, output_size, spatial_scale, sampling_ratio, aligned)
    fig, (ax_pool, ax_align) = plt.subplots(1, 2, figsize=(7.0, 4.0))
    bins = f"{len(layout.pool_rows)}×{len(layout.pool_cols)}"
    _draw_map(ax_pool, layout, f"ROI Pool: rounded box, {bins} bins of whole cells")
    _draw_map(ax_align, layout, f"ROI Align: exact bins, {layout.grid[0]}×"
                                f"{layout.grid[1]} samples each")
    ax_pool.set_ylabel("feature row", fontsize=10)
    _draw_roi_pool(ax_pool, layout)
    _draw_roi_align(ax_align, layout)
    x1, y1, x2, y2 = np.round(np.asarray(box, float), 2)
    fig.suptitle(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}), spatial_scale "
                 f"{spatial_scale:g}, output {bins}", fontsize=10)
    fig.tight_layout()
    return fig
