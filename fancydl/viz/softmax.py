"""Figures and the live control of the softmax chapter.

One drawing function, :func:`draw_softmax_panel`, serves both the live widget and its
static twin, so the two always show the same thing.
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


def draw_softmax_panel(ax, logits, temperature, target, ylim=(-1.05, 1.05)):
    """Bars of softmax probabilities and of the loss gradient for one example.

    Parameters
    ----------
    ax : matplotlib Axes
    logits : ndarray of shape (C,)
    temperature : float
    target : int
    ylim : pair of float
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
    ax.set_ylim(*ylim)
    ax.set_xlabel("class (* = target)")
    ax.set_title(f"T = {temperature:g}: loss = {loss:.3f}")
    return ax


def softmax_small_multiples(logits, temperatures, target):
    """Static twin of the widget: one panel per temperature.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(temperatures), figsize=(3.2 * len(temperatures), 3.2),
                             sharey=True)
    for ax, temperature in zip(np.atleast_1d(axes), temperatures):
        draw_softmax_panel(ax, logits, temperature, target)
    np.atleast_1d(axes)[0].set_ylabel("value")
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"logits z = {np.round(logits, 2).tolist()}: temperature sharpens or "
                 "flattens y, and the gradient is y - t")
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
        fig, ax = plt.subplots(figsize=(5, 3.4))
        draw_softmax_panel(ax, np.array([z[f"z{c}"] for c in range(n_classes)]), T, target)
        ax.legend(loc="lower left", fontsize=8)
        plt.show()

    return widgets.interactive(show, T=temperature, target=target, **sliders)
