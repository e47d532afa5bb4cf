"""Two lessons of the softmax chapter: why cross-entropy, and why it is convex.

* :func:`saturation_curves` / :func:`saturation_figure`: cross-entropy and squared
  error of the softmax output as functions of the true class's logit. When the
  softmax is confidently wrong (the true logit far below another), squared error's
  gradient vanishes (it carries a factor ``y_k`` that tends to 0) while
  cross-entropy's tends to -1: cross-entropy keeps learning from its worst mistakes.
* :func:`softmax_hessian`: ``diag(y) - y yᵀ``, the Jacobian of softmax, which is also
  the Hessian of ``logsumexp`` and therefore of the cross-entropy
  ``ξ = logsumexp(z) - z_k`` in the logits: positive semi-definite (``vᵀHv`` is the
  variance of ``v`` under the distribution ``y``), so the loss is convex in the logits.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import vjp
from .. import elementwise
from ..softmax import cross_entropy, softmax
from ..validation import check_float_array, check_int
from .style import COLORS

__all__ = ["softmax_hessian", "saturation_curves", "saturation_figure"]


def softmax_hessian(logits):
    """``diag(y) - y yᵀ`` with ``y = softmax(logits)``: the softmax Jacobian
    ``∂y_i/∂z_j``, equal to the Hessian of ``logsumexp(z)`` (and of cross-entropy).

    Parameters
    ----------
    logits : ndarray of shape (..., C), float
        Softmax over the last axis.

    Returns
    -------
    ndarray of shape (..., C, C)
        Symmetric, positive semi-definite, with the all-ones vector in its null space
        (adding a constant to every logit changes nothing).
    """
    check_float_array("softmax_hessian", "logits", logits)
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"softmax_hessian: logits must have a non-empty last axis "
                         f"(the classes), got shape {logits.shape}")
    y = softmax(logits, -1)
    column, row = y[..., :, None], y[..., None, :]
    return column * np.eye(y.shape[-1], dtype=y.dtype) - column * row


def saturation_curves(true_logit, other_logits=(4.0, 0.0), target=0):
    """Loss and gradient of cross-entropy and squared error along the true logit.

    Row ``m`` of the logits holds ``true_logit[m]`` at class ``target`` and
    ``other_logits`` elsewhere; both losses and their gradients come from fancydl
    (``cross_entropy`` and ``sum((softmax(z) - t)²)``, differentiated by
    :func:`fancydl.vjp`).

    Parameters
    ----------
    true_logit : ndarray of shape (M,), float64
    other_logits : sequence of C - 1 floats
    target : int
        The true class, in ``[0, C)``.

    Returns
    -------
    dict of str -> ndarray of shape (M,)
        ``"probability"``: softmax of the true class; ``"cross_entropy"``,
        ``"squared_error"``: the losses; ``"grad_cross_entropy"``,
        ``"grad_squared_error"``: their derivatives with respect to the true logit.
    """
    true_logit = np.asarray(true_logit, np.float64)
    check_float_array("saturation_curves", "true_logit", true_logit, ndim=1)
    others = np.asarray(other_logits, np.float64)
    classes = others.size + 1
    target = check_int("saturation_curves", "target", target, minimum=0)
    if target >= classes:
        raise ValueError(f"saturation_curves: target must be < {classes} (the number of "
                         f"classes), got {target}")
    z = np.insert(np.broadcast_to(others, (true_logit.size, others.size)), target,
                  true_logit, axis=1)
    labels = np.full(true_logit.size, target)
    one_hot = np.eye(classes)[labels]
    ce, ce_pullback = vjp(lambda z: cross_entropy(z, labels, reduction="none"), z)
    def squared_error(z):
        error = elementwise.sub(softmax(z, 1), one_hot)
        return elementwise.sum(elementwise.pow(error, 2), dim=1)

    se, se_pullback = vjp(squared_error, z)
    upstream = np.ones(true_logit.size)
    return {"probability": softmax(z, 1)[:, target], "cross_entropy": ce,
            "squared_error": se, "grad_cross_entropy": ce_pullback(upstream)[0][:, target],
            "grad_squared_error": se_pullback(upstream)[0][:, target]}


def saturation_figure(other_logits=(4.0, 0.0), target=0, span=(-8.0, 8.0)):
    """Cross-entropy against squared error as the true class's logit varies.

    Left: both losses against the true logit ``z_k`` (other logits fixed; the
    softmax probability of the true class on a second axis). Right: the magnitude of
    each loss's derivative with respect to ``z_k``, on a log scale: on the left of the
    plot the softmax is saturated on a wrong class, squared error's gradient vanishes
    (like ``y_k``) while cross-entropy's tends to 1, so only cross-entropy corrects
    a confident mistake quickly.

    Returns
    -------
    matplotlib.figure.Figure
        7 × 3.2 inches (fits the book's column at dpi 100), text at 9–10 pt.
    """
    import matplotlib.pyplot as plt

    z = np.linspace(*span, 321)
    curves = saturation_curves(z, other_logits, target)
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(7.0, 3.2))
    styles = {"cross_entropy": ("cross-entropy", COLORS["output"], "-"),
              "squared_error": ("squared error", COLORS["kernel"], "--")}
    for key, (label, color, ls) in styles.items():
        ax_loss.plot(z, curves[key], color=color, ls=ls, lw=2, label=label)
        ax_grad.semilogy(z, np.abs(curves["grad_" + key]), color=color, ls=ls, lw=2,
                         label=label)
    ax_prob = ax_loss.twinx()
    ax_prob.plot(z, curves["probability"], color=COLORS["neutral"], lw=1, ls=":")
    ax_prob.set_ylabel("softmax $y_k$ (dotted)", fontsize=9)
    ax_prob.set_ylim(0, 1.05)
    for ax in (ax_loss, ax_grad, ax_prob):
        ax.tick_params(labelsize=9)
    ax_loss.set_xlabel("true-class logit $z_k$", fontsize=10)
    ax_grad.set_xlabel("true-class logit $z_k$", fontsize=10)
    ax_loss.set_ylabel("loss", fontsize=10)
    ax_grad.set_ylabel(r"$|\partial\,\mathrm{loss}/\partial z_k|$", fontsize=10)
    ax_loss.set_title("loss", fontsize=10)
    ax_grad.set_title("gradient: squared error's vanishes", fontsize=10)
    ax_loss.legend(fontsize=9, loc="upper center")
    others = ", ".join(f"{v:g}" for v in other_logits)
    fig.suptitle(f"true class {target}, other logits ({others})", fontsize=10)
    fig.tight_layout()
    return fig
