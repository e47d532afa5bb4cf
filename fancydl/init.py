"""Parameter initialisation with ``torch.nn.init``'s formulas, from an explicit Generator.

Each function *returns* a new array drawn from a ``numpy.random.Generator`` (PyTorch's
``nn.init`` functions fill a tensor in place). The distributions are PyTorch's; the
numbers are NumPy's, so the same seed gives different values than ``torch.manual_seed``
but the same law. :func:`conv2d_params` and :func:`linear_params` build the parameters
of ``nn.Conv2d`` and ``nn.Linear`` as those modules initialise them by default.

A shape with a zero-length dimension gives an empty array and draws nothing (PyTorch's
initialisers are no-ops on empty tensors).

Fans (:func:`fan_in_and_fan_out`) follow PyTorch: for a weight of shape
``(out, in, *kernel)`` the fan-in is ``in * prod(kernel)`` and the fan-out
``out * prod(kernel)``; for a grouped convolution ``in`` is ``C_in / groups``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .validation import check_choice, check_float_dtype, check_int, check_pair, check_real

__all__ = ["calculate_gain", "fan_in_and_fan_out", "kaiming_uniform", "kaiming_normal",
           "xavier_uniform", "xavier_normal", "conv2d_params", "linear_params",
           "batch_norm_params", "batch_norm_buffers"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
           "conv_transpose2d", "conv_transpose3d", "sigmoid")
_NONLINEARITIES = _LINEAR + ("tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity, param=None):
    r"""The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    ============================ ==========================================
    nonlinearity                 gain
    ============================ ==========================================
    linear, conv*, sigmoid       1
    tanh                         5/3
    relu                         :math:`\sqrt 2`
    leaky_relu                   :math:`\sqrt{2 / (1 + \text{slope}^2)}`
    selu                         3/4
    ============================ ==========================================

    Parameters
    ----------
    nonlinearity : str
        One of the names above (``torch.nn.functional``'s names).
    param : float, optional
        The negative slope of leaky_relu (default 0.01); ignored otherwise.

    Returns
    -------
    float

    Examples
    --------
    >>> from fancydl.init import calculate_gain
    >>> calculate_gain("relu")
    1.4142135623730951
    >>> round(calculate_gain("leaky_relu", 0.2), 6)
    1.38675
    """
    check_choice("calculate_gain", "nonlinearity", nonlinearity, _NONLINEARITIES)
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4
    # Any slope but NaN (an infinite one gives gain 0, as in PyTorch).
    slope = 0.01 if param is None else check_real("calculate_gain", "param", param)
    return math.sqrt(2.0 / (1 + slope ** 2))


def _check_shape(op, shape):
    if isinstance(shape, numbers.Integral) or not isinstance(shape, (tuple, list)):
        raise TypeError(f"{op}: shape must be a tuple of ints, got {shape!r}")
    shape = tuple(check_int(op, "shape", s, minimum=0) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"{op}: fan-in and fan-out need a shape with at least 2 "
                         f"dimensions (out, in, *kernel), got {shape}")
    return shape


def fan_in_and_fan_out(shape):
    """Fan-in and fan-out of a weight of this shape, as PyTorch computes them.

    Parameters
    ----------
    shape : tuple of int
        ``(out, in)`` for a linear weight, ``(C_out, C_in / groups, kH, kW)`` for a
        convolution; at least two dimensions.

    Returns
    -------
    fan_in, fan_out : int
        ``in * prod(shape[2:])`` and ``out * prod(shape[2:])``.

    Examples
    --------
    >>> from fancydl.init import fan_in_and_fan_out
    >>> fan_in_and_fan_out((16, 3, 5, 5))
    (75, 400)
    """
    shape = _check_shape("fan_in_and_fan_out", shape)
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _check_rng(op, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: rng must be a numpy.random.Generator (e.g. "
                        f"numpy.random.default_rng(0)), got {type(rng).__name__}")


def _uniform(op, rng, shape, bound, dtype):
    """U(-bound, bound) of ``shape`` in ``dtype`` (drawn in float64, then cast)."""
    _check_rng(op, rng)
    dtype = check_float_dtype(op, dtype)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _normal(op, rng, shape, std, dtype):
    """N(0, std^2) of ``shape`` in ``dtype`` (drawn in float64, then cast)."""
    _check_rng(op, rng)
    dtype = check_float_dtype(op, dtype)
    return rng.normal(0.0, std, size=shape).astype(dtype)


def _kaiming_std(op, shape, a, mode, nonlinearity):
    check_choice(op, "mode", mode, ("fan_in", "fan_out"))
    if a is not None:  # None: calculate_gain's default slope, as in PyTorch
        a = check_real(op, "a", a)  # any slope but NaN
    fan_in, fan_out = fan_in_and_fan_out(_check_shape(op, shape))
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def kaiming_uniform(rng, shape, a=0, mode="fan_in", nonlinearity="leaky_relu",
                    dtype=np.float64):
    r"""He (Kaiming) uniform initialisation, as ``torch.nn.init.kaiming_uniform_``.

    Draws from :math:`U(-b, b)` with :math:`b = \text{gain}\sqrt{3/\text{fan}}`, so that
    the standard deviation is :math:`\text{gain}/\sqrt{\text{fan}}` (He et al., 2015).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int
        ``(out, in, *kernel)``, at least two dimensions.
    a : float, default 0
        Negative slope of the leaky ReLU that follows (the gain's ``param``).
    mode : {'fan_in', 'fan_out'}
        Preserve the variance of the forward ('fan_in') or backward pass.
    nonlinearity : str, default 'leaky_relu'
        See :func:`calculate_gain`.
    dtype : float32 or float64

    Returns
    -------
    ndarray of ``shape``

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.init import kaiming_uniform
    >>> w = kaiming_uniform(np.random.default_rng(0), (64, 32, 3, 3),
    ...                     nonlinearity="relu")
    >>> bool(np.abs(w).max() <= np.sqrt(6 / (32 * 9)))
    True
    """
    std = _kaiming_std("kaiming_uniform", shape, a, mode, nonlinearity)
    return _uniform("kaiming_uniform", rng, shape, math.sqrt(3.0) * std, dtype)


def kaiming_normal(rng, shape, a=0, mode="fan_in", nonlinearity="leaky_relu",
                   dtype=np.float64):
    r"""He (Kaiming) normal initialisation, as ``torch.nn.init.kaiming_normal_``.

    Draws from :math:`N(0, \sigma^2)` with :math:`\sigma = \text{gain}/\sqrt{\text{fan}}`.
    Parameters and returns as :func:`kaiming_uniform`.

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.init import kaiming_normal
    >>> w = kaiming_normal(np.random.default_rng(0), (256, 128), nonlinearity="relu")
    >>> round(float(w.std() * np.sqrt(128 / 2)), 1)  # std = sqrt(2 / fan_in)
    1.0
    """
    std = _kaiming_std("kaiming_normal", shape, a, mode, nonlinearity)
    return _normal("kaiming_normal", rng, shape, std, dtype)


def _xavier_std(op, shape, gain):
    # PyTorch's uniform_ and normal_ refuse a negative range or std.
    gain = check_real(op, "gain", gain, minimum=0.0, finite=True)
    fan_in, fan_out = fan_in_and_fan_out(_check_shape(op, shape))
    return gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0


def xavier_uniform(rng, shape, gain=1.0, dtype=np.float64):
    r"""Glorot (Xavier) uniform initialisation, as ``torch.nn.init.xavier_uniform_``.

    Draws from :math:`U(-b, b)` with
    :math:`b = \text{gain}\sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`
    (Glorot & Bengio, 2010).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int
        At least two dimensions.
    gain : float >= 0, finite, default 1.0
    dtype : float32 or float64

    Returns
    -------
    ndarray of ``shape``

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.init import xavier_uniform
    >>> w = xavier_uniform(np.random.default_rng(0), (30, 20))
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 50))
    True
    """
    std = _xavier_std("xavier_uniform", shape, gain)
    return _uniform("xavier_uniform", rng, shape, math.sqrt(3.0) * std, dtype)


def xavier_normal(rng, shape, gain=1.0, dtype=np.float64):
    r"""Glorot (Xavier) normal initialisation, as ``torch.nn.init.xavier_normal_``.

    Draws from :math:`N(0, \sigma^2)` with
    :math:`\sigma = \text{gain}\sqrt{2 / (\text{fan\_in} + \text{fan\_out})}`.
    Parameters and returns as :func:`xavier_uniform`.

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.init import xavier_normal
    >>> w = xavier_normal(np.random.default_rng(0), (300, 200))
    >>> round(float(w.std() * np.sqrt(500 / 2)), 1)
    1.0
    """
    std = _xavier_std("xavier_normal", shape, gain)
    return _normal("xavier_normal", rng, shape, std, dtype)


def _default_layer_params(op, rng, weight_shape, bias, dtype):
    """PyTorch's default for Linear and Conv: weight ~ kaiming_uniform(a=sqrt(5)),
    i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias ~ U(-1/sqrt(fan_in), same)."""
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"{op}: bias must be a bool, got {type(bias).__name__}")
    fan_in, _ = fan_in_and_fan_out(weight_shape)
    # kaiming_uniform's bound sqrt(3) * gain / sqrt(fan_in), with
    # gain(leaky_relu, sqrt 5) = sqrt(2 / 6): 1 / sqrt(fan_in) up to rounding.
    std = _kaiming_std(op, weight_shape, math.sqrt(5), "fan_in", "leaky_relu")
    params = {"weight": _uniform(op, rng, weight_shape, math.sqrt(3.0) * std, dtype)}
    if bias:
        bias_bound = 1 / math.sqrt(fan_in)
        params["bias"] = _uniform(op, rng, (weight_shape[0],), bias_bound, dtype)
    return params


def conv2d_params(rng, in_channels, out_channels, kernel_size, groups=1, bias=True,
                  dtype=np.float64):
    """Parameters of a 2-D convolution initialised as ``torch.nn.Conv2d``'s default.

    With ``fan_in = in_channels / groups * kH * kW``, both the weight and the bias are
    uniform on :math:`[-1/\\sqrt{\\text{fan\\_in}}, 1/\\sqrt{\\text{fan\\_in}}]`
    (PyTorch's ``kaiming_uniform_(a=sqrt(5))`` gives exactly that bound). The weight is
    drawn first, then the bias.

    Parameters
    ----------
    rng : numpy.random.Generator
    in_channels, out_channels : int
        Both divisible by ``groups``.
    kernel_size : int or (int, int)
    groups : int, default 1
    bias : bool, default True
    dtype : float32 or float64

    Returns
    -------
    dict
        ``{'weight': (out_channels, in_channels // groups, kH, kW),
        'bias': (out_channels,)}`` (no ``'bias'`` when ``bias=False``), ready for
        ``fancydl.conv2d(x, p['weight'], p['bias'], groups=groups)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.init import conv2d_params
    >>> p = conv2d_params(np.random.default_rng(0), 3, 8, 5)
    >>> p["weight"].shape, p["bias"].shape
    ((8, 3, 5, 5), (8,))
    >>> bool(np.abs(p["weight"]).max() <= 1 / np.sqrt(3 * 5 * 5))
    True
    """
    op = "conv2d_params"
    in_channels = check_int(op, "in_channels", in_channels, minimum=1)
    out_channels = check_int(op, "out_channels", out_channels, minimum=1)
    groups = check_int(op, "groups", groups, minimum=1)
    kh, kw = check_pair(op, "kernel_size", kernel_size, minimum=1)
    for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise ValueError(f"{op}: {name} must be divisible by groups={groups}, "
                             f"got {channels}")
    shape = (out_channels, in_channels // groups, kh, kw)
    return _default_layer_params(op, rng, shape, bias, dtype)


def linear_params(rng, in_features, out_features, bias=True, dtype=np.float64):
    """Parameters of a linear layer initialised as ``torch.nn.Linear``'s default.

    Weight and bias uniform on :math:`[-1/\\sqrt{\\text{in}}, 1/\\sqrt{\\text{in}}]`;
    the weight is drawn first.

    Parameters
    ----------
    rng : numpy.random.Generator
    in_features, out_features : int
    bias : bool, default True
    dtype : float32 or float64

    Returns
    -------
    dict
        ``{'weight': (out_features, in_features), 'bias': (out_features,)}``
        (no ``'bias'`` when ``bias=False``), for ``fancydl.linear(x, p['weight'],
        p['bias'])`` = ``x @ weight.T + bias``.

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.init import linear_params
    >>> p = linear_params(np.random.default_rng(0), 64, 10)
    >>> p["weight"].shape, p["bias"].shape
    ((10, 64), (10,))
    """
    op = "linear_params"
    in_features = check_int(op, "in_features", in_features, minimum=1)
    out_features = check_int(op, "out_features", out_features, minimum=1)
    return _default_layer_params(op, rng, (out_features, in_features), bias, dtype)


def batch_norm_params(num_features, dtype=np.float64):
    """The affine parameters of ``torch.nn.BatchNorm2d`` at initialisation.

    Parameters
    ----------
    num_features : int
        Number of channels C.
    dtype : float32 or float64

    Returns
    -------
    dict
        ``{'weight': ones (C,), 'bias': zeros (C,)}``.

    Examples
    --------
    >>> from fancydl.init import batch_norm_params
    >>> batch_norm_params(2)
    {'weight': array([1., 1.]), 'bias': array([0., 0.])}
    """
    op = "batch_norm_params"
    num_features = check_int(op, "num_features", num_features, minimum=1)
    dtype = check_float_dtype(op, dtype)
    return {"weight": np.ones(num_features, dtype), "bias": np.zeros(num_features, dtype)}


def batch_norm_buffers(num_features, dtype=np.float64):
    """The running statistics of ``torch.nn.BatchNorm2d`` at initialisation.

    They are buffers, not parameters: ``fancydl.batch_norm(..., training=True)``
    updates them in place; no optimizer touches them.

    Parameters
    ----------
    num_features : int
        Number of channels C.
    dtype : float32 or float64

    Returns
    -------
    dict
        ``{'running_mean': zeros (C,), 'running_var': ones (C,)}``.

    Examples
    --------
    >>> from fancydl.init import batch_norm_buffers
    >>> batch_norm_buffers(2)
    {'running_mean': array([0., 0.]), 'running_var': array([1., 1.])}
    """
    op = "batch_norm_buffers"
    num_features = check_int(op, "num_features", num_features, minimum=1)
    dtype = check_float_dtype(op, dtype)
    return {"running_mean": np.zeros(num_features, dtype),
            "running_var": np.ones(num_features, dtype)}
