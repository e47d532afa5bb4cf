"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, check_betas, check_flag, check_nonnegative

__all__ = ["Adam", "AdamW"]


def _lerp_(start, end, weight):
    """``start += weight * (end - start)`` in place, in the two forms ``torch.lerp``
    uses (the second keeps the result exact at weight 1)."""
    weight = start.dtype.type(weight)
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        np.subtract(end, (end - start) * (1 - weight), out=start)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), optionally AMSGrad, with PyTorch's equations.

    For each parameter :math:`\theta` with gradient :math:`g` (negated first when
    ``maximize``), at step :math:`t = 1, 2, \ldots`:

    .. math::

        g &\leftarrow g + \lambda\theta \quad\text{(Adam: coupled weight decay)}\\
        \theta &\leftarrow \theta(1 - \gamma\lambda)
            \quad\text{(AdamW: decoupled weight decay)}\\
        m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2\\
        \hat v &\leftarrow \max(\hat v, v) \text{ if amsgrad, else } v\\
        \theta &\leftarrow \theta - \frac{\gamma}{1 - \beta_1^t}\,
            \frac{m}{\sqrt{\hat v}/\sqrt{1 - \beta_2^t} + \epsilon}

    ``eps`` is added after the bias correction of :math:`\sqrt{\hat v}`, as in PyTorch
    (not inside the square root, not before the correction); AMSGrad keeps the running
    maximum of the *uncorrected* :math:`v`.

    Parameters
    ----------
    params : dict, list or tuple of float ndarrays (nested)
        The parameters, updated in place; float32 or float64, computed in their dtype.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0 (Adam) or 1e-2 (AdamW)
        :math:`\lambda`, >= 0.
    amsgrad : bool, default False
        Divide by the running maximum of :math:`v` (Reddi et al., 2018).
    maximize : bool, default False
        Ascend the objective instead of descending it.

    Attributes
    ----------
    state : dict int -> dict
        Per updated parameter: ``'step'`` (int, its number of updates), ``'exp_avg'``
        (:math:`m`), ``'exp_avg_sq'`` (:math:`v`) and, with amsgrad,
        ``'max_exp_avg_sq'``; arrays of the parameter's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.optim import Adam
    >>> params = [np.array([1.0, 2.0])]
    >>> opt = Adam(params, lr=0.1)
    >>> opt.step([np.array([3.0, -0.5])])  # the first step moves each entry by ~lr
    >>> np.round(params[0], 6)
    array([0.9, 2.1])
    >>> opt.state[0]["step"]
    1
    """

    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, maximize=False):
        op = type(self).__name__
        defaults = {
            "lr": check_nonnegative(op, "lr", lr),
            "betas": check_betas(op, betas),
            "eps": check_nonnegative(op, "eps", eps),
            "weight_decay": check_nonnegative(op, "weight_decay", weight_decay),
            "amsgrad": check_flag(op, "amsgrad", amsgrad),
            "maximize": check_flag(op, "maximize", maximize),
        }
        super().__init__(params, defaults)

    def _update(self, param, grad, state, *, lr, betas, eps, weight_decay, amsgrad,
                maximize):
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(param),
                         exp_avg_sq=np.zeros_like(param))
            if amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        beta1, beta2 = betas
        state["step"] += 1
        step = state["step"]
        if maximize:
            grad = -grad
        if weight_decay != 0:
            if self._decoupled_weight_decay:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad

        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        if amsgrad:
            second = np.maximum(state["max_exp_avg_sq"], exp_avg_sq,
                                out=state["max_exp_avg_sq"])
        else:
            second = exp_avg_sq
        denom = np.sqrt(second) / bias_correction2_sqrt + eps
        param += -step_size * exp_avg / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as
    ``torch.optim.AdamW``.

    The same update as :class:`Adam`, except that the weight decay shrinks the
    parameter directly, :math:`\theta \leftarrow \theta(1 - \gamma\lambda)`, before the
    step, instead of entering the gradient and hence the moment estimates. The default
    ``weight_decay`` is 1e-2. Parameters as :class:`Adam`.

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.optim import AdamW
    >>> params = {"w": np.array([1.0])}
    >>> opt = AdamW(params, lr=0.1, weight_decay=0.5)
    >>> opt.step({"w": np.array([0.0])})  # no gradient signal: only the decay acts
    >>> params["w"]
    array([0.95])
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
