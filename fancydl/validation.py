"""Argument checks shared by every operator.

Every message names the operator, the argument, what was expected and what came, e.g.
``conv2d: stride must be a positive int or a pair of positive ints, got 0``. Checks
accept traced values (see :mod:`fancydl.autodiff`) as well as plain arrays. This module
imports only the leaf module :mod:`fancydl._traced`, so any module can import it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._traced import Traced

__all__ = ["check_array", "check_float_array", "check_int", "check_pair", "check_choice",
           "check_same_dtype", "check_dim", "check_real"]


def _describe(x):
    if isinstance(x, (np.ndarray, Traced)):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def check_array(op, name, x, ndim=None, dtype_kind=None):
    """Check that ``x`` is an array (plain or traced) and return its shape.

    Parameters
    ----------
    op, name : str
        Operator and argument names, for the message.
    x : object
        The value to check.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    dtype_kind : str, optional
        ``"float"`` (float32/float64), ``"int"`` (any integer) or None for any.

    Raises
    ------
    TypeError
        When ``x`` is not an array or has the wrong kind of dtype.
    ValueError
        When ``x`` has the wrong number of dimensions.
    """
    if not isinstance(x, (np.ndarray, Traced)):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {_describe(x)}")
    if dtype_kind == "float" and x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must have dtype float32 or float64, got {x.dtype}")
    if dtype_kind == "int" and not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{op}: {name} must have an integer dtype, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            expected = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{op}: {name} must have {expected} dimensions, got shape "
                             f"{x.shape} ({x.ndim} dimensions)")
    return x.shape


def check_float_array(op, name, x, ndim=None):
    """:func:`check_array` for a float32/float64 array."""
    return check_array(op, name, x, ndim=ndim, dtype_kind="float")


def check_float_dtype(op, dtype, name="dtype"):
    """``dtype`` as a NumPy dtype, refusing anything but float32 and float64."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got {dtype}")
    return dtype


def check_same_dtype(op, **arrays):
    """Check that the given (non-None) arrays share one dtype, as PyTorch requires."""
    present = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {k: v.dtype for k, v in present.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{k} is {d}" for k, d in dtypes.items())
        raise TypeError(f"{op}: arrays must share one dtype, but {listed}")


def check_int(op, name, value, minimum=None):
    """Check that ``value`` is an int (not a bool) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(op, name, value, minimum=None, maximum=None, inclusive=True,
               finite=False):
    """Check that ``value`` is a real number (never NaN) within the given bounds, and
    with ``finite`` not ±inf; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {_describe(value)}")
    value = float(value)
    if finite and math.isinf(value):
        raise ValueError(f"{op}: {name} must be finite, got {value}")
    low_bad = minimum is not None and (value < minimum if inclusive else value <= minimum)
    high_bad = maximum is not None and (value > maximum if inclusive else value >= maximum)
    if low_bad or high_bad or np.isnan(value):
        raise ValueError(f"{op}: {name} must be {_bounds(minimum, maximum, inclusive)}, "
                         f"got {value}")
    return value


def _bounds(minimum, maximum, inclusive):
    """How :func:`check_real` states its bounds: "in [0, 1]", ">= 0", "<= 1", or "a
    number (not NaN)" when there are none."""
    lo, hi = ("[", "]") if inclusive else ("(", ")")
    if minimum is not None and maximum is not None:
        return f"in {lo}{minimum}, {maximum}{hi}"
    if minimum is not None:
        return f"{'>=' if inclusive else '>'} {minimum}"
    if maximum is not None:
        return f"{'<=' if inclusive else '<'} {maximum}"
    return "a number (not NaN)"


def check_pair(op, name, value, minimum=None, single=False):
    """Normalize an int or a pair of ints to a pair, as PyTorch's ``_pair`` does.

    Parameters
    ----------
    op, name : str
        Operator and argument names, for the message.
    value : int or sequence of two ints
    minimum : int, optional
        Smallest allowed value of each entry.
    single : bool
        Also accept a sequence of one int, for both axes, as PyTorch's conv2d,
        conv_transpose2d and 2-d pooling do (its ``unfold``/``fold`` and torchvision's
        operators refuse it).

    Returns
    -------
    tuple of (int, int)
    """
    lengths = (1, 2) if single else (2,)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) in lengths
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                  for v in value)):
        pair = (int(value[0]), int(value[-1]))
    else:
        raise TypeError(f"{op}: {name} must be {_pair_kind(minimum, single)}, got "
                        f"{_describe(value)}")
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be {_pair_kind(minimum, single)}, got {value}")
    return pair


def _pair_kind(minimum, single):
    """What :func:`check_pair` accepts, in words."""
    kind = "an int" if minimum is None else ("a positive int" if minimum == 1 else
                                              f"an int >= {minimum}")
    return f"{kind} or a {'sequence of one or two' if single else 'pair'} of them"


def check_choice(op, name, value, choices):
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{op}: {name} must be one of {listed}, got {value!r}")
    return value


def check_dim(op, name, dim, ndim):
    """Normalize a possibly negative dimension index, as PyTorch does.

    Returns
    -------
    int
        ``dim`` in ``range(ndim)``.
    """
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {_describe(dim)}")
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not low <= dim <= high:
        raise ValueError(f"{op}: {name} out of range: expected a value in [{low}, {high}] "
                         f"for an input with {ndim} dimensions, got {dim}")
    return int(dim) % max(ndim, 1)
