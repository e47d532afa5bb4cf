"""fancydl: the "fancy" operators of deep learning from scratch in NumPy.

Every operator takes NumPy arrays in PyTorch's layout (NCHW) with PyTorch's names,
argument order and defaults, and has a hand-written backward pass reached through
:func:`vjp`::

    import fancydl
    out, pullback = fancydl.vjp(fancydl.cross_entropy, logits, target)
    grad_logits, grad_target = pullback(np.ones(()))

Parameters may be nested dicts, lists and tuples of arrays (:mod:`fancydl.tree`);
``fancydl.value_and_grad(loss_fn)(params, x, target)`` returns the loss and the
gradient with ``params``' structure, for a training step.
``fancydl.gradcheck`` compares any such pullback with finite differences, and
``fancydl.crosscheck`` compares an operator with PyTorch when PyTorch is installed.
"""

from .allocator import keep_freed_memory

keep_freed_memory()  # before any kernel runs: freed buffers stay mapped (see allocator)

from .autodiff import Function, Traced, grad, gradcheck, value_and_grad, vjp  # noqa: E402
from . import tree
from .crosscheck import crosscheck
from .elementwise import (add, amax, amin, div, exp, flatten, getitem, linear, log, matmul,
                          mean, mul, neg, permute, pow, relu, reshape, sigmoid, sub, sum,
                          tanh, transpose)
from .softmax import cross_entropy, log_softmax, logsumexp, nll_loss, softmax

# Each topic module lists its public operators in its own __all__.
from .conv import *  # noqa: E402,F401,F403
from .signal import *  # noqa: E402,F401,F403
from .channels import *  # noqa: E402,F401,F403
from .deform import *  # noqa: E402,F401,F403
from .restoration import *  # noqa: E402,F401,F403
from .pool import *  # noqa: E402,F401,F403
from .norm import *  # noqa: E402,F401,F403
from .references import *  # noqa: E402,F401,F403

# Learning: optimizers and schedules, initialisers, datasets and mini-batches.
from . import data, init, optim  # noqa: E402,F401
from . import models  # noqa: E402,F401  (the capstone chapter's network)
from . import conv_algorithms  # noqa: E402,F401  (direct, im2col, FFT, Winograd)

__version__ = "0.1.0"
