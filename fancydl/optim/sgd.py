"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""

from __future__ import annotations

import numpy as np

from ..validation import check_real
from .optimizer import Optimizer, check_flag, check_nonnegative

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    The update of ``torch.optim.SGD``, for each parameter :math:`\theta` with gradient
    :math:`g` (negated first when ``maximize``):

    .. math::

        g &\leftarrow g + \lambda\theta \quad\text{(weight decay, coupled)}\\
        b &\leftarrow \begin{cases} g & \text{first step}\\
                                    \mu b + (1 - \tau) g & \text{afterwards}\end{cases}\\
        g &\leftarrow \begin{cases} g + \mu b & \text{nesterov}\\
                                    b & \text{otherwise}\end{cases}
        \quad\text{(only if } \mu \neq 0)\\
        \theta &\leftarrow \theta - \gamma g

    with learning rate :math:`\gamma` (``lr``), momentum :math:`\mu`, dampening
    :math:`\tau` and weight decay :math:`\lambda`. The first step stores the gradient
    itself as the buffer: dampening does not apply to it.

    Parameters
    ----------
    params : dict, list or tuple of float ndarrays (nested)
        The parameters, updated in place; float32 or float64, computed in their dtype.
    lr : float, default 1e-3
        Learning rate, >= 0.
    momentum : float, default 0
        Momentum factor, >= 0.
    dampening : float, default 0
        Dampening of the gradient added to the buffer after the first step (any real
        number, unchecked as in PyTorch).
    weight_decay : float, default 0
        L2 penalty coefficient, >= 0, added to the gradient.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    maximize : bool, default False
        Ascend the objective instead of descending it.

    Attributes
    ----------
    state : dict int -> dict
        ``{'momentum_buffer': ndarray}`` per parameter that has been updated, only
        when ``momentum != 0`` (as PyTorch).

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.optim import SGD
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> opt = SGD(params, lr=0.1, momentum=0.9)
    >>> opt.step({"w": np.array([1.0, 1.0])})
    >>> params["w"]
    array([ 0.9, -2.1])
    >>> opt.step({"w": np.array([1.0, 1.0])})  # buffer 0.9 * 1 + 1 = 1.9
    >>> params["w"]
    array([ 0.71, -2.29])
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, maximize=False):
        op = type(self).__name__
        defaults = {
            "lr": check_nonnegative(op, "lr", lr),
            "momentum": check_nonnegative(op, "momentum", momentum),
            "dampening": check_real(op, "dampening", dampening),
            "weight_decay": check_nonnegative(op, "weight_decay", weight_decay),
            "nesterov": check_flag(op, "nesterov", nesterov),
            "maximize": check_flag(op, "maximize", maximize),
        }
        if defaults["nesterov"] and (defaults["momentum"] <= 0
                                     or defaults["dampening"] != 0):
            raise ValueError(f"{op}: nesterov=True requires momentum > 0 and dampening "
                             f"== 0, got momentum={momentum} and dampening={dampening}")
        super().__init__(params, defaults)

    def _update(self, param, grad, state, *, lr, momentum, dampening, weight_decay,
                nesterov, maximize):
        d_p = -grad if maximize else grad
        if weight_decay != 0:
            d_p = d_p + weight_decay * param
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # a copy, and an array even for 0-d parameters (where numpy
                # arithmetic returns scalars), so that later updates are in place
                buf = state["momentum_buffer"] = np.array(d_p, dtype=param.dtype)
            else:
                buf *= momentum
                buf += (1 - dampening) * d_p
            d_p = d_p + momentum * buf if nesterov else buf
        param -= lr * d_p
