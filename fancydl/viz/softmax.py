"""Figures and the live control of the softmax chapter.

One drawing function, :func:`draw_softmax_figure`, serves both the live widget (for
Colab and Binder) and the precomputed explorer of the book, so the two always show the
same thing.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import vjp
from ..softmax import cross_entropy, softmax
from .style import COLORS


def softmax_summary(logits, temperature, target):
    """Probabilities, loss and logit gradient of one example at a temperature.

    Parameters
    ----------
    logits : ndarray of shape (C,)
    temperature : float > 0
        The logits are divided by it before the softmax.
    target : int
        The correct class.

    Returns
    -------
    probabilities : ndarray of shape (C,)
    loss : float
        ``cross_entropy(logits / temperature, target)``.
    gradient : ndarray of shape (C,)
        d loss / d logits (the chain rule brings a factor 1 / temperature).
    """
    logits = np.asarray(logits, dtype=np.float64)
    loss, pullback = vjp(lambda z: cross_entropy(z / temperature, np.array(target)), logits)
    (gradient, ) = pullback(np.array(1.0))
    return softmax(logits / temperature, 0), float(loss), gradient


def draw_softmax_panel(ax, logits, temperature, target, ylim=None):
    """Bars of softmax probabilities and of the loss gradient for one example.

    Parameters
    ----------
    ax : matplotlib Axes
    logits : ndarray of shape (C,)
    temperature : float
    target : int
    ylim : pair of float, optional
        Default: symmetric, wide enough for every bar (the gradient grows as 1/T).
    """
    probabilities, loss, gradient = softmax_summary(logits, temperature, target)
    classes = np.arange(len(logits))
    ax.bar(classes - 0.2, probabilities, width=0.4, color=COLORS["output"],
           label="softmax $y$")
    ax.bar(classes + 0.2, gradient, width=0.4, color=COLORS["gradient"],
           label=r"$\partial\xi/\partial z = y - t$")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(classes)
    ax.set_xticklabels([f"{c}{'*' if c == target else ''}" for c in classes])
    if ylim is None:
        top = 1.05 * max(1.0, float(np.abs(gradient).max()))
        ylim = (-top, top)
    ax.set_ylim(*ylim)
    ax.set_xlabel("class (* = target)")
    ax.set_title(f"T = {temperature:g}: loss = {loss:.3f}")
    return ax


def draw_softmax_figure(logits, temperature, target):
    """One example at one temperature, as a figure (a state of the chapter's explorer).

    Parameters
    ----------
    logits : ndarray of shape (C,)
    temperature : float > 0
    target : int

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    draw_softmax_panel(ax, logits, temperature, target)
    ax.set_ylabel("value")
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


def softmax_widget(n_classes=4):
    """Live control: logits, temperature and target -> probabilities, loss, gradient.

    Returns
    -------
    ipywidgets.Widget
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    sliders = {f"z{c}": widgets.FloatSlider(value=float(n_classes - 2 * c) / 2, min=-10,
                                            max=10, step=0.1, description=f"z{c}")
               for c in range(n_classes)}
    temperature = widgets.FloatLogSlider(value=1.0, base=10, min=-1.5, max=1.5, step=0.05,
                                         description="T")
    target = widgets.Dropdown(options=list(range(n_classes)), value=0, description="target")

    def show(T, target, **z):
        draw_softmax_figure(np.array([z[f"z{c}"] for c in range(n_classes)]), T, target)
        plt.show()

    return widgets.interactive(show, T=temperature, target=target, **sliders)
