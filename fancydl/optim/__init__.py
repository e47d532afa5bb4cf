"""Optimizers and learning-rate schedules with ``torch.optim``'s equations and defaults.

They update a tree of NumPy arrays (a dict name -> array, a list of arrays, or a
nesting of dicts, lists and tuples) in place, from gradients of the same structure,
for example the gradients :func:`fancydl.value_and_grad` returns::

    opt = fancydl.optim.SGD(params, lr=0.1, momentum=0.9)
    sched = fancydl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for epoch in range(10):
        for x, y in fancydl.data.batches(x_train, y_train, batch_size=64,
                                         shuffle=True, rng=rng):
            loss, grads = fancydl.value_and_grad(loss_fn)(params, x, y)
            opt.step(grads)
        sched.step()

A ``None`` gradient leaves that parameter and its state untouched, like a PyTorch
parameter whose ``.grad`` is None. ``state_dict()`` / ``load_state_dict()`` save and
restore the state (a loaded optimizer continues identically). One parameter group.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
