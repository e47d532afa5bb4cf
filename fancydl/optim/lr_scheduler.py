"""Learning-rate schedules with ``torch.optim.lr_scheduler`` semantics.

A scheduler rewrites ``optimizer.param_groups[0]['lr']``. The rules are PyTorch's:

- Constructing it records ``initial_lr`` in the group (``base_lrs``), sets
  ``last_epoch = 0`` and leaves the learning rate as it is: that is the first
  ``step()``, done for you.
- Each later :meth:`LRScheduler.step` adds one to ``last_epoch`` and computes the next
  rate, usually from the *current* one (a recursive form), so a rate changed by hand
  between steps carries on, as in PyTorch.
- Call ``scheduler.step()`` after ``optimizer.step(grads)``, once per epoch (or per
  iteration, if ``T_max``/``step_size`` count iterations).

The deprecated ``step(epoch)`` form and PyTorch's call-order warnings are left out.
"""

from __future__ import annotations

import math

from ..validation import check_int, check_real
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: the step counting shared by every schedule.

    Subclasses define :meth:`_next_lr`, the rate for the new ``last_epoch`` given the
    current one. The constructor's step calls it too, flagged ``initial``: a schedule
    may then keep the rate (CosineAnnealingLR does) or apply its rule at
    ``last_epoch`` (StepLR does, which matters only when resuming), as in PyTorch.

    Parameters
    ----------
    optimizer : fancydl.optim.Optimizer
    last_epoch : int, default -1
        -1 starts afresh. A value >= 0 resumes a schedule, and then the optimizer's
        group must already hold ``'initial_lr'`` (as in PyTorch).

    Attributes
    ----------
    base_lrs : list of float
        The groups' ``initial_lr``.
    last_epoch : int
        Number of :meth:`step` calls since construction (0 right after it).
    """

    def __init__(self, optimizer, last_epoch=-1):
        op = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{op}: optimizer must be a fancydl.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        last_epoch = check_int(op, "last_epoch", last_epoch, minimum=-1)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{op}: resuming with last_epoch={last_epoch} needs "
                               f"'initial_lr' in the optimizer's param_groups; load the "
                               f"optimizer's state_dict first or use last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._advance(initial=True)

    def step(self):
        """Advance the schedule by one epoch and set the optimizer's learning rate."""
        self._advance(initial=False)

    def _advance(self, initial):
        self._step_count += 1
        self.last_epoch += 1
        groups = self.optimizer.param_groups
        new = [self._next_lr(group["lr"], base_lr, initial)
               for group, base_lr in zip(groups, self.base_lrs)]
        for group, lr in zip(groups, new):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in groups]

    def _next_lr(self, lr, base_lr, initial):
        """The rate at the new ``last_epoch``; ``initial`` in the constructor's step."""
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rates set by the last step (one per parameter group).

        Returns
        -------
        list of float
        """
        return list(self._last_lr)

    def state_dict(self):
        """Every attribute but the optimizer, as ``torch``'s schedulers return.

        Returns
        -------
        dict
        """
        return {k: (list(v) if isinstance(v, list) else v)
                for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore the attributes saved by :meth:`state_dict`.

        Raises
        ------
        ValueError
            ``state_dict`` does not hold this scheduler's attributes.
        """
        op = f"{type(self).__name__}.load_state_dict"
        expected = set(self.state_dict())
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else state_dict
            raise ValueError(f"{op}: state_dict must have the keys {sorted(expected)}, "
                             f"got {got}")
        self.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                              for k, v in state_dict.items()})


class StepLR(LRScheduler):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    .. math::

        \eta_t = \eta_0\,\gamma^{\lfloor t / \text{step\_size} \rfloor}

    computed recursively (the current rate times ``gamma`` when ``last_epoch`` is a
    positive multiple of ``step_size``), as ``torch.optim.lr_scheduler.StepLR``.

    Parameters
    ----------
    optimizer : fancydl.optim.Optimizer
    step_size : int
        Period of the decay, >= 1.
    gamma : float, default 0.1
        Multiplicative factor.
    last_epoch : int, default -1

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.optim import SGD
    >>> from fancydl.optim.lr_scheduler import StepLR
    >>> opt = SGD([np.zeros(3)], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> rates = []
    >>> for epoch in range(5):
    ...     rates.append(sched.get_last_lr()[0])  # train one epoch with this rate
    ...     sched.step()
    >>> rates
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        op = type(self).__name__
        self.step_size = check_int(op, "step_size", step_size, minimum=1)
        self.gamma = check_real(op, "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _next_lr(self, lr, base_lr, initial):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the initial rate to ``eta_min`` over ``T_max`` epochs.

    The closed form (SGDR without restarts, Loshchilov & Hutter, 2017) is

    .. math::

        \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})
                 \left(1 + \cos\frac{\pi t}{T_{\max}}\right),

    but, as ``torch.optim.lr_scheduler.CosineAnnealingLR``, the rate is computed
    recursively from the current one,

    .. math::

        \eta_{t} = \eta_{\min} + (\eta_{t-1} - \eta_{\min})
                   \frac{1 + \cos(\pi t / T_{\max})}{1 + \cos(\pi (t-1) / T_{\max})},

    except at :math:`t = T_{\max} + 1 \pmod{2T_{\max}}`, where the ratio would be 0/0
    and the rate climbs back by :math:`(\eta_0 - \eta_{\min})(1 - \cos(\pi/T_{\max}))/2`.
    Past ``T_max`` the rate therefore rises again: a cosine of period ``2 * T_max``.
    Both forms agree to rounding; the recursive one follows a rate changed by hand.

    Parameters
    ----------
    optimizer : fancydl.optim.Optimizer
    T_max : int
        Half period, in epochs, >= 1.
    eta_min : float, default 0.0
        The lowest rate.
    last_epoch : int, default -1

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.optim import SGD
    >>> from fancydl.optim.lr_scheduler import CosineAnnealingLR
    >>> opt = SGD([np.zeros(3)], lr=1.0)
    >>> sched = CosineAnnealingLR(opt, T_max=4)
    >>> rates = []
    >>> for epoch in range(6):
    ...     rates.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> rates
    [1.0, 0.8536, 0.5, 0.1464, 0.0, 0.1464]
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803
        op = type(self).__name__
        self.T_max = check_int(op, "T_max", T_max, minimum=1)
        self.eta_min = check_real(op, "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def _next_lr(self, lr, base_lr, initial):
        if initial:
            return lr
        t, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if (t - 1 - period) % (2 * period) == 0:
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / period)) / 2
        return ((1 + math.cos(math.pi * t / period))
                / (1 + math.cos(math.pi * (t - 1) / period))
                * (lr - eta_min) + eta_min)
