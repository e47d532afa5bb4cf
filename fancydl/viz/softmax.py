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


def gradient_limit(logits, temperatures, targets=None):
    """A symmetric y-limit that fits the logit gradient at every given state.

    Sharing it between the states of an explorer keeps the bars comparable when the
    temperature changes (the gradient ``(softmax(z / T) - t) / T`` can exceed 1).

    Parameters
    ----------
    logits : ndarray of shape (C,)
    temperatures : sequence of float > 0
    targets : sequence of int, optional
        Default: every class.

    Returns
    -------
    float
        ``1.1 * max |gradient|`` over the states, at least 1.1.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = range(len(logits)) if targets is None else targets
    largest = max(float(np.abs(softmax_summary(logits, t, k)[2]).max())
                  for t in temperatures for k in targets)
    return 1.1 * max(1.0, largest)


def draw_softmax_panels(ax_prob, ax_grad, logits, temperature, target, limit=None):
    """Softmax probabilities (left axes) and the logit gradient (right axes).

    Parameters
    ----------
    ax_prob, ax_grad : matplotlib Axes
    logits : ndarray of shape (C,)
    temperature : float > 0
    target : int
    limit : float, optional
        The gradient axis spans ``[-limit, limit]``. Default: fitted to this state's
        bars; pass :func:`gradient_limit` to share one scale between states.
    """
    probabilities, loss, gradient = softmax_summary(logits, temperature, target)
    classes = np.arange(len(logits))
    names = [f"{c}{'*' if c == target else ''}" for c in classes]
    ax_prob.bar(classes, probabilities, width=0.6, color=COLORS["output"])
    ax_prob.set_ylim(0, 1.05)
    ax_prob.set_title(f"$y = $softmax$(z/T)$, T = {temperature:g}", fontsize=10)
    ax_grad.bar(classes, gradient, width=0.6, color=COLORS["gradient"])
    ax_grad.axhline(0, color="black", linewidth=0.6)
    if limit is None:
        limit = 1.1 * max(1.0, float(np.abs(gradient).max()))
    ax_grad.set_ylim(-limit, limit)
    ax_grad.set_title(rf"gradient $\partial\xi/\partial z$ (loss $\xi$ = {loss:.3f})",
                      fontsize=10)
    for ax in (ax_prob, ax_grad):
        ax.set_xticks(classes)
        ax.set_xticklabels(names)
        ax.set_xlabel("class (* = target)", fontsize=10)
        ax.tick_params(labelsize=9)
    return ax_prob, ax_grad


def draw_softmax_figure(logits, temperature, target, limit=None):
    """One example at one temperature, as a figure (a state of the chapter's explorer).

    Parameters
    ----------
    logits : ndarray of shape (C,)
    temperature : float > 0
    target : int
    limit : float, optional
        Half-range of the gradient axis (see :func:`draw_softmax_panels`).

    Returns
    -------
    matplotlib Figure
        7 x 3 inches: the probabilities on the left, on [0, 1.05]; the gradient of
        the cross-entropy with respect to the logits on the right, computed by
        :func:`fancydl.vjp`, on a symmetric axis that no bar exceeds.
    """
    import matplotlib.pyplot as plt

    fig, (ax_prob, ax_grad) = plt.subplots(1, 2, figsize=(7.0, 3.0))
    draw_softmax_panels(ax_prob, ax_grad, logits, temperature, target, limit)
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
        logits = np.array([z[f"z{c}"] for c in range(n_classes)])
        draw_softmax_figure(logits, T, target)
        plt.show()

    return widgets.interactive(show, T=temperature, target=target, **sliders)
