"""A small convolutional network, written only with fancydl's operators.

The network is LeNet-shaped (LeCun et al., 1998) with Batch Normalization (Ioffe &
Szegedy, 2015), sized for scikit-learn's 8x8 digits::

    x (N, 1, 8, 8)
    -> conv 3x3, padding 1 -> batch_norm -> relu -> pool 2x2   (N, C1, 4, 4)
    -> conv 3x3, padding 1 -> batch_norm -> relu -> pool 2x2   (N, C2, 2, 2)
    -> flatten -> linear                                        (N, num_classes)

It is *functional*: the learnable arrays live in a nested dict ``params`` (what
:func:`fancydl.value_and_grad` differentiates and what an optimizer of
:mod:`fancydl.optim` updates in place), the Batch Normalization running statistics
in a separate dict ``buffers`` (updated in place by :func:`fancydl.batch_norm` in
training mode, never differentiated). :func:`lenet_torch` builds the same network
with ``torch.nn`` from the same arrays, for step-for-step comparisons.

Examples
--------
>>> import numpy as np, fancydl
>>> params, buffers = fancydl.models.init_lenet(np.random.default_rng(0))
>>> x = np.zeros((5, 1, 8, 8))
>>> fancydl.models.lenet(params, x, buffers=buffers).shape
(5, 10)
"""

from __future__ import annotations

import numpy as np

from . import init
from .autodiff import value_and_grad
from .conv import conv2d
from .elementwise import flatten, linear, relu
from .norm import batch_norm
from .parallel import single_blas_thread
from .pool import avg_pool2d, max_pool2d, stochastic_pool2d
from .softmax import cross_entropy
from .tree import tree_leaves

__all__ = ["POOLINGS", "init_lenet", "lenet", "lenet_loss", "train_step", "evaluate",
           "count_parameters", "lenet_torch"]

#: The pooling kinds :func:`lenet` accepts.
POOLINGS = ("max", "avg", "stochastic")

_BLOCKS = ("block1", "block2")


def init_lenet(rng, in_channels=1, channels=(16, 32), num_classes=10, image_size=8,
               batch_norm=True, dtype=np.float64):
    """Parameters and buffers of :func:`lenet`, initialised as ``torch.nn`` does.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the initial weights (convolutions and the linear layer draw from
        PyTorch's default distributions, :func:`fancydl.init.conv2d_params` and
        :func:`fancydl.init.linear_params`).
    in_channels : int
        Channels of the input images.
    channels : (int, int)
        Output channels of the two convolutions.
    num_classes : int
    image_size : int
        Height and width of the (square) input; divisible by 4 (two 2x2 poolings).
    batch_norm : bool
        With Batch Normalization after each convolution (the convolutions then have
        no bias: the normalization would subtract it again).
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    params : dict
        ``{"block1": {"conv": {"weight": (C1, in, 3, 3)[, "bias": (C1,)]}[, "bn":
        {"weight": (C1,), "bias": (C1,)}]}, "block2": {...}, "fc": {"weight":
        (num_classes, C2 * (image_size // 4) ** 2), "bias": (num_classes,)}}``.
    buffers : dict
        ``{"block1": {"running_mean": (C1,), "running_var": (C1,)}, "block2": ...}``
        with Batch Normalization, else ``{}``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"init_lenet: rng must be a numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    if image_size % 4 or image_size <= 0:
        raise ValueError(f"init_lenet: image_size must be a positive multiple of 4 "
                         f"(two 2x2 poolings), got {image_size}")
    params, buffers = {}, {}
    widths = (in_channels,) + tuple(channels)
    for name, c_in, c_out in zip(_BLOCKS, widths[:-1], widths[1:]):
        block = {"conv": init.conv2d_params(rng, c_in, c_out, 3, bias=not batch_norm,
                                            dtype=dtype)}
        if batch_norm:
            block["bn"] = init.batch_norm_params(c_out, dtype=dtype)
            buffers[name] = init.batch_norm_buffers(c_out, dtype=dtype)
        params[name] = block
    features = widths[-1] * (image_size // 4) ** 2
    params["fc"] = init.linear_params(rng, features, num_classes, dtype=dtype)
    return params, buffers


def _pool(h, pooling, training, rng):
    """2x2 pooling of kind ``pooling`` (stochastic pooling samples only in training)."""
    if pooling == "max":
        return max_pool2d(h, 2)
    if pooling == "avg":
        return avg_pool2d(h, 2)
    return stochastic_pool2d(h, 2, training=training, rng=rng)


def _check_options(op, params, buffers, training, pooling, rng):
    if pooling not in POOLINGS:
        raise ValueError(f"{op}: pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "stochastic" and training and not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: stochastic pooling in training needs rng, a "
                        f"numpy.random.Generator, got {type(rng).__name__}")
    uses_bn = [name for name in _BLOCKS if "bn" in params.get(name, {})]
    if uses_bn and not training:
        missing = [name for name in uses_bn if name not in (buffers or {})]
        if missing:
            raise ValueError(f"{op}: evaluation mode normalizes with the running "
                             f"statistics: buffers must hold {missing}, got "
                             f"{sorted(buffers or {})}")


def _block(h, block, stats, training, pooling, rng, momentum):
    """conv 3x3 (padding 1) -> [batch_norm] -> relu -> 2x2 pooling."""
    h = conv2d(h, block["conv"]["weight"], block["conv"].get("bias"), padding=1)
    if "bn" in block:
        stats = stats or {}
        h = batch_norm(h, stats.get("running_mean"), stats.get("running_var"),
                       block["bn"]["weight"], block["bn"]["bias"], training=training,
                       momentum=momentum)
    return _pool(relu(h), pooling, training, rng)


def lenet(params, x, buffers=None, *, training=True, pooling="max", rng=None,
          momentum=0.1):
    """Logits of the LeNet-style network.

    Parameters
    ----------
    params : dict
        From :func:`init_lenet` (or a tree of traced values inside ``vjp``).
    x : ndarray of shape (N, in_channels, H, W)
        H = W = the ``image_size`` of :func:`init_lenet`.
    buffers : dict, optional
        Running statistics of the Batch Normalization layers. In training mode they
        are updated in place when given (None: batch statistics only); in evaluation
        mode they normalize and are required.
    training : bool
        Batch statistics (True) or running statistics (False) in Batch
        Normalization; sampling (True) or probabilistic weighting (False) in
        stochastic pooling.
    pooling : {"max", "avg", "stochastic"}
    rng : numpy.random.Generator, optional
        Required for stochastic pooling in training.
    momentum : float
        Batch Normalization's running-average momentum (PyTorch's convention).

    Returns
    -------
    ndarray of shape (N, num_classes)
    """
    _check_options("lenet", params, buffers, training, pooling, rng)
    h = x
    for name in _BLOCKS:
        h = _block(h, params[name], (buffers or {}).get(name), training, pooling, rng,
                   momentum)
    return linear(flatten(h, 1), params["fc"]["weight"], params["fc"]["bias"])


def lenet_loss(params, x, target, buffers=None, **options):
    """Mean cross-entropy of :func:`lenet`'s logits; ``options`` go to :func:`lenet`.

    Parameters
    ----------
    params : dict
    x : ndarray of shape (N, in_channels, H, W)
    target : int ndarray of shape (N,)
        Class indices.
    buffers : dict, optional

    Returns
    -------
    ndarray of shape ()
    """
    return cross_entropy(lenet(params, x, buffers, **options), target)


def train_step(params, buffers, optimizer, x, target, **options):
    """One training step: forward, backward, and the optimizer's in-place update.

    Parameters
    ----------
    params : dict
        Updated in place by ``optimizer``, which must have been built on it.
    buffers : dict
        Running statistics, updated in place by Batch Normalization.
    optimizer : fancydl.optim optimizer
        Anything with ``step(grads)`` for grads shaped like ``params``.
    x : ndarray of shape (N, in_channels, H, W)
    target : int ndarray of shape (N,)
    **options
        ``pooling``, ``rng``, ``momentum`` of :func:`lenet` (always in training mode).

    Returns
    -------
    float
        The loss on this batch, before the update.

    Notes
    -----
    BLAS runs on one thread during the step (:func:`fancydl.parallel.single_blas_thread`):
    the matrix products of this small network are too small to gain from BLAS's
    threads, which cost several times the step on a busy machine.
    """
    with single_blas_thread():
        loss, grads = value_and_grad(lenet_loss)(params, x, target, buffers=buffers,
                                                 training=True, **options)
        optimizer.step(grads)
    return float(loss)


def evaluate(params, buffers, x, target, *, training=False, batch_size=512, **options):
    """Mean loss and accuracy of :func:`lenet` on a dataset, without any update.

    Parameters
    ----------
    params, buffers : dict
        ``buffers`` is never modified, even with ``training=True``.
    x : ndarray of shape (N, in_channels, H, W)
    target : int ndarray of shape (N,)
    training : bool
        Evaluate in training mode (Batch Normalization with the statistics of each
        evaluation batch) instead of evaluation mode (running statistics).
    batch_size : int
        Evaluation batch size (it matters only with ``training=True``).
    **options
        ``pooling``, ``rng`` of :func:`lenet`.

    Returns
    -------
    loss : float
    accuracy : float
        Fraction of the examples whose largest logit is the target class.
    """
    if len(x) != len(target):
        raise ValueError(f"evaluate: x and target must have the same length, got "
                         f"{len(x)} and {len(target)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be a positive int, got {batch_size!r}")
    total_loss, correct = 0.0, 0
    with single_blas_thread():  # small products, as in train_step
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], target[start:start + batch_size]
            logits = lenet(params, xb, None if training else buffers,
                           training=training, **options)
            total_loss += float(cross_entropy(logits, yb, reduction="sum"))
            correct += int(np.sum(logits.argmax(axis=1) == yb))
    return total_loss / len(x), correct / len(x)


def count_parameters(params):
    """Number of learnable scalars in a tree (nested dicts, lists) of arrays."""
    return sum(int(np.size(leaf)) for leaf in tree_leaves(params))


def lenet_torch(params, buffers=None, pooling="max"):
    """The same network as a ``torch.nn.Sequential``, holding copies of ``params``.

    Parameters
    ----------
    params, buffers : dict
        From :func:`init_lenet`; copied into the PyTorch modules (same dtype).
    pooling : {"max", "avg"}
        PyTorch has no stochastic pooling.

    Returns
    -------
    torch.nn.Sequential
        Its ``parameters()`` come in the order of ``params``' leaves (conv weight,
        [conv bias], [bn weight, bn bias], per block; then linear weight and bias).
    """
    import torch
    from torch import nn

    if pooling not in ("max", "avg"):
        raise ValueError(f"lenet_torch: pooling must be 'max' or 'avg', got {pooling!r}")
    pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
    layers = []
    for name in _BLOCKS:
        block = params[name]
        weight = torch.from_numpy(block["conv"]["weight"].copy())
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1,
                         bias="bias" in block["conv"], dtype=weight.dtype)
        layers.append(conv)
        if "bn" in block:
            layers.append(nn.BatchNorm2d(weight.shape[0], dtype=weight.dtype))
        layers += [nn.ReLU(), pool(2)]
    weight = torch.from_numpy(params["fc"]["weight"].copy())
    layers += [nn.Flatten(), nn.Linear(weight.shape[1], weight.shape[0],
                                       dtype=weight.dtype)]
    model = nn.Sequential(*layers)
    _copy_into_torch(model, params, buffers or {})
    return model


def _copy_into_torch(model, params, buffers):
    import torch

    with torch.no_grad():
        for target, value in zip(model.parameters(), tree_leaves(params), strict=True):
            target.copy_(torch.from_numpy(value))
        norms = [m for m in model if isinstance(m, torch.nn.BatchNorm2d)]
        for module, name in zip(norms, [n for n in _BLOCKS if n in buffers]):
            module.running_mean.copy_(torch.from_numpy(buffers[name]["running_mean"]))
            module.running_var.copy_(torch.from_numpy(buffers[name]["running_var"]))
