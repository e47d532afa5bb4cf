"""Figures and widgets of the batch-normalization chapter.

* :func:`batch_statistics` / :func:`draw_batch_statistics` / :func:`batch_size_widget`:
  how far the mean and variance of one batch fall from the population's, per batch size.
* :func:`draw_computation_graph`: batch normalization's computation graph, the map of
  its backward derivation.
* :func:`statistics_group` / :func:`plot_normalization_family`: which values share one
  mean and variance, found by perturbing one input value and watching which outputs move.
"""

from __future__ import annotations

import numpy as np

from .style import COLORS

__all__ = ["batch_statistics", "draw_batch_statistics", "batch_size_widget",
           "draw_computation_graph", "statistics_group", "plot_normalization_family"]


def batch_statistics(population, batch_size, n_batches, rng):
    """Means and biased variances of ``n_batches`` random batches of a population.

    Parameters
    ----------
    population : ndarray of shape (P,)
        The values of one channel over the whole data set.
    batch_size : int
    n_batches : int
    rng : numpy.random.Generator

    Returns
    -------
    means, variances : ndarray of shape (n_batches,)
        What batch normalization would use in training, one entry per batch.
    """
    picks = rng.integers(0, population.size, size=(n_batches, batch_size))
    batches = population[picks]
    return batches.mean(axis=1), batches.var(axis=1)


def _histograms(axes_pair, population, batch_size, n_batches, rng, ranges):
    means, variances = batch_statistics(population, batch_size, n_batches, rng)
    for ax, values, truth, value_range, label in zip(
            axes_pair, (means, variances), (population.mean(), population.var()), ranges,
            ("batch mean", "batch variance")):
        ax.hist(values, bins=40, range=value_range, color=COLORS["input"], alpha=0.8)
        ax.axvline(truth, color=COLORS["highlight"], lw=2)
        ax.set_xlim(value_range)
        ax.set_yticks([])
        ax.set_xlabel(f"{label}\n(spread {values.std():.3f})")
    axes_pair[0].set_title(f"batch size {batch_size}")


def _ranges(population):
    mean, var, std = population.mean(), population.var(), population.std()
    return (mean - 2.5 * std, mean + 2.5 * std), (0.0, 3.0 * var)


def draw_batch_statistics(population, batch_size, n_batches=2000, seed=0):
    """Histograms of the means (left) and variances (right) of random batches.

    The red line is the population's value; the spread of each histogram shrinks like
    ``1 / sqrt(batch_size)``, and small batches underestimate the variance (the biased
    estimator's mean is ``(m - 1) / m`` times the population variance). The axes are
    the same for every batch size, so states of an explorer compare directly.

    Parameters
    ----------
    population : ndarray of shape (P,)
    batch_size : int
    n_batches : int
    seed : int
        Seed of the batches drawn (the same for every batch size).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), constrained_layout=True)
    _histograms(axes, population, batch_size, n_batches, rng, _ranges(population))
    axes[1].set_title("population value in red")
    return fig


def batch_size_widget(population, n_batches=2000, seed=0):
    """A live control: choose the batch size, see the batch statistics' histograms.

    Returns
    -------
    ipywidgets.interactive
    """
    import ipywidgets
    import matplotlib.pyplot as plt

    def show(batch_size):
        draw_batch_statistics(population, batch_size, n_batches, seed)
        plt.show()

    slider = ipywidgets.SelectionSlider(options=[2, 4, 8, 16, 32, 64, 128, 256], value=8,
                                        description="batch size")
    return ipywidgets.interactive(show, batch_size=slider)


_GRAPH_NODES = {  # name: (x, y, role)
    "x": (0.0, 1.0, "input"), "μ": (1.4, 1.9, "neutral"), "σ²": (2.8, 1.9, "neutral"),
    "x̂": (4.2, 1.0, "neutral"), "γ": (4.2, 2.1, "kernel"), "β": (5.3, 2.1, "kernel"),
    "y": (5.6, 1.0, "output"), "L": (7.0, 1.0, "gradient"),
}
_GRAPH_EDGES = [  # (start, end, local derivative, where its label goes)
    ("x", "μ", "1/m", (0.55, 1.55)), ("x", "σ²", "2(xᵢ-μ)/m", (2.2, 1.22)),
    ("μ", "σ²", "-2Σ(xᵢ-μ)/m = 0", (2.1, 2.3)), ("x", "x̂", "s", (2.1, 0.88)),
    ("μ", "x̂", "-s", (2.6, 1.62)), ("σ²", "x̂", "-s³(xᵢ-μ)/2", (3.85, 1.5)),
    ("x̂", "y", "γ", (4.9, 0.88)), ("γ", "y", "x̂", (4.75, 1.65)),
    ("β", "y", "1", (5.55, 1.6)), ("y", "L", "g", (6.3, 0.88)),
]


def draw_computation_graph(ax=None):
    """Draw batch normalization's computation graph, one node per intermediate value.

    Each edge carries the local derivative the backward pass multiplies by (s is
    1/√(σ²+ε)); x reaches x̂ along three paths (directly, through μ and through σ²),
    the reason the input gradient has three terms.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 2.9))
    for start, end, label, (label_x, label_y) in _GRAPH_EDGES:
        (x0, y0, _), (x1, y1, _) = _GRAPH_NODES[start], _GRAPH_NODES[end]
        bend = 0.25 if (start, end) == ("x", "σ²") else 0.0
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color=COLORS["neutral"], lw=1.4,
                                    shrinkA=16, shrinkB=16,
                                    connectionstyle=f"arc3,rad={bend}"))
        ax.text(label_x, label_y, label, ha="center", va="center", fontsize=9,
                color=COLORS["gradient"], backgroundcolor="white")
    for name, (x, y, role) in _GRAPH_NODES.items():
        ax.scatter([x], [y], s=900, color=COLORS[role], zorder=3)
        ax.text(x, y, name, ha="center", va="center", color="white", fontsize=13, zorder=4)
    ax.set_xlim(-0.5, 7.5)
    ax.set_ylim(0.4, 2.8)
    ax.axis("off")
    ax.set_title("Batch normalization's computation graph (edges: local derivatives)")
    return ax


def statistics_group(normalize, x, index, delta=1.0):
    """Which outputs move when one input value moves: the values sharing its statistics.

    Parameters
    ----------
    normalize : callable
        ``normalize(x) -> y`` of x's shape (a normalization without weights).
    x : ndarray
    index : tuple of int
        The input value to perturb.
    delta : float

    Returns
    -------
    ndarray of bool, x's shape
        True where the output changed.
    """
    bumped = x.copy()
    bumped[index] += delta
    return np.abs(normalize(bumped) - normalize(x)) > 1e-9


def plot_normalization_family(groups, index):
    """One panel per normalization: the (N, C, H*W) input as a grid, the values that
    share the probed value's mean and variance coloured.

    Parameters
    ----------
    groups : dict of str -> bool ndarray of shape (N, C, S)
        From :func:`statistics_group`, per operator name.
    index : tuple (n, c, s)
        The probed value (drawn in red).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#E8E8E8", COLORS["input"], COLORS["highlight"]])
    columns = min(2, len(groups))  # two panels a row: legible in the book's column
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7.5, 2.8 * rows),
                             constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, (name, mask) in zip(axes.flat, groups.items()):
        n, c, s = mask.shape
        codes = mask.astype(int)
        codes[index] = 2
        ax.imshow(codes.reshape(n, c * s), cmap=cmap, vmin=0, vmax=2, aspect="auto")
        for boundary in range(1, c):
            ax.axvline(boundary * s - 0.5, color="white", lw=3)
        for boundary in range(1, n):
            ax.axhline(boundary - 0.5, color="white", lw=1)
        ax.set_xticks([k * s + (s - 1) / 2 for k in range(c)], [f"c{k}" for k in range(c)])
        ax.set_yticks(range(n), [f"n{k}" for k in range(n)])
        ax.set_title(f"{name}\n{int(mask.sum())} values share the statistics", fontsize=10)
        ax.set_xlabel("channels (each: its H·W positions)")
    return fig
