"""Exercises of the capstone chapter, "Training a CNN from scratch"."""

import numpy as np

from .. import models
from ..autodiff import value_and_grad
from ..tree import tree_leaves
from . import exercise


@exercise("training_cnn.parameter_count")
def parameter_count():
    """Learnable numbers of the chapter's network: ``init_lenet`` with its defaults.

    conv1 1 -> 16 (3x3, no bias before BN): 144; bn1: 2 * 16; conv2 16 -> 32: 4608;
    bn2: 2 * 32; linear 32 * 2 * 2 -> 10 with bias: 1290.
    """
    return 16 * 1 * 9 + 2 * 16 + 32 * 16 * 9 + 2 * 32 + (32 * 2 * 2 + 1) * 10


def _step_cases():
    """Small networks (4x4 images, a few channels) so that a failing case reads well."""
    cases = []
    for seed, batch_norm, lr in [(0, True, 0.1), (1, False, 0.5), (2, True, 1.0)]:
        rng = np.random.default_rng(seed)
        params, buffers = models.init_lenet(rng, channels=(2, 3), image_size=4,
                                            num_classes=3, batch_norm=batch_norm)
        x = rng.random((6, 1, 4, 4))
        target = rng.integers(0, 3, 6)
        cases.append((params, buffers, x, target, lr))
    return cases


#: A training step "by hand": no optimizer object, no ready-made step.
_OPTIMIZERS = ("fancydl.optim.SGD", "fancydl.optim.Adam", "fancydl.optim.AdamW",
               "fancydl.models.train_step")


@exercise("training_cnn.train_step", cases=_step_cases(), rtol=1e-9, atol=1e-12,
          forbid=_OPTIMIZERS)
def sgd_train_step(params, buffers, x, target, lr):
    """One step of plain gradient descent on ``models.lenet_loss`` in training mode.

    Returns the loss before the update, and ``params`` and ``buffers`` after it.
    """
    loss, grads = value_and_grad(models.lenet_loss)(params, x, target, buffers=buffers)
    for param, grad in zip(tree_leaves(params), tree_leaves(grads)):
        param -= lr * grad
    return float(loss), params, buffers


def _normalization_cases():
    rng = np.random.default_rng(5)
    cases = []
    for shape in [(4, 3, 5, 5), (1, 2, 3, 3), (8, 6)]:
        channels = shape[1]
        cases.append((rng.standard_normal(shape) * 3 + 1,
                      rng.standard_normal(channels), rng.random(channels) + 0.1,
                      rng.standard_normal(channels), rng.standard_normal(channels)))
    return cases


@exercise("training_cnn.batch_norm_eval", cases=_normalization_cases(), rtol=1e-9,
          atol=1e-12, forbid=("fancydl.batch_norm", "fancydl.norm.batch_norm",
                              "torch.nn.functional.batch_norm"))
def batch_norm_eval(x, running_mean, running_var, weight, bias):
    """Batch Normalization in evaluation mode (eps = 1e-5), channels on axis 1."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = weight / np.sqrt(running_var + 1e-5)
    return (x - running_mean.reshape(shape)) * scale.reshape(shape) + bias.reshape(shape)


@exercise("training_cnn.momentum_limit",
          cases=[(0.05, 0.9, 2.0), (0.1, 0.0, 1.0), (0.01, 0.99, -3.0),
                 (1.0, 0.5, 0.25)], rtol=1e-12, atol=1e-14)
def momentum_limit(lr, momentum, grad):
    """Limit of the step theta_t - theta_{t-1} of SGD with momentum (PyTorch's
    equations) under a constant gradient: b_t -> grad / (1 - momentum)."""
    return -lr * grad / (1 - momentum)


def _adam_cases():
    rng = np.random.default_rng(8)
    return [(rng.standard_normal(5), 0.001, 1e-8),
            (np.array([1e-3, -2.0, 0.0]), 0.1, 1e-8),
            (rng.standard_normal(4) * 1e-6, 0.01, 1e-6)]


@exercise("training_cnn.adam_first_step", cases=_adam_cases(), rtol=1e-10,
          atol=1e-15, forbid=("fancydl.optim.Adam", "fancydl.optim.AdamW",
                              "torch.optim.Adam", "torch.optim.AdamW"))
def adam_first_step(grad, lr, eps):
    """theta_1 - theta_0 of Adam from m_0 = v_0 = 0, for any betas: the bias
    corrections give m_hat = g and v_hat = g**2, so the step is -lr g / (|g| + eps)."""
    return -lr * grad / (np.abs(grad) + eps)
