"""The traced value of :func:`fancydl.vjp`, in a leaf module importing no other of fancydl.

:mod:`fancydl.autodiff` records operations on :class:`Traced` values,
:mod:`fancydl.validation` recognizes them, and :mod:`fancydl.elementwise` installs their
arithmetic (``t + 1``, ``t.sum(axis=0)``, ``t.T``, ...) with :func:`install_operators`.
Keeping the class here, with no import of any other fancydl module, is what keeps those
three modules free of an import circle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Traced", "is_traced", "value_of", "constant_of", "install_operators"]


def _refuse(what, hint="use the fancydl operator instead (fancydl.exp, fancydl.sum, ...) "
                       "so that its gradient is recorded"):
    return TypeError(f"{what} got a traced fancydl value inside fancydl.vjp; {hint}")


class Traced:
    """A NumPy array whose operations are being recorded by :func:`fancydl.vjp`.

    It behaves like the array for the operations fancydl can differentiate
    (arithmetic, ``@``, indexing, ``.sum``, ``.mean``, ``.max``, ``.reshape``, ``.T``,
    ``.astype`` to a float dtype, and the NumPy functions and ufuncs that map to them);
    comparisons and ``bool`` give NumPy's (untraced, boolean) results. Anything else
    raises a ``TypeError`` rather than silently dropping the gradient.

    Attributes
    ----------
    value : numpy.ndarray
        The array itself.
    node : object or None
        The recorded operation that produced it (None for an argument of ``vjp``).
    tape : object or None
        The tape of the :func:`fancydl.vjp` call that traces it: an operator refuses
        values of two different calls (a ``vjp`` nested in another one) rather than
        cutting the outer call's gradient.
    """

    # NumPy ufunc (``np.add``, ``np.exp``, ...) -> fancydl operator, filled in by
    # ``install_operators``. NumPy functions that reduce or reshape (``np.sum(t)``,
    # ``np.reshape``, ``np.transpose``, ``np.max``) call the methods of the same name;
    # any other NumPy function converts with ``__array__``, which refuses.
    _ufuncs: dict = {}

    def __init__(self, value, node=None, tape=None):
        self.value = value
        self.node = node
        self.tape = tape

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    size = property(lambda self: self.value.size)

    __hash__ = object.__hash__  # by identity, like a torch.Tensor

    def __len__(self):
        return len(self.value)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"Traced({self.value!r})"

    # --- NumPy interoperability: differentiable where fancydl has the operator --------
    def __array__(self, dtype=None, copy=None):
        raise _refuse("a NumPy function")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        operator = self._ufuncs.get(ufunc)
        if method == "__call__" and operator is not None and not kwargs:
            return operator(*inputs)
        raise _refuse(f"numpy.{ufunc.__name__}" + ("" if method == "__call__"
                                                    else f".{method}"))

    # --- comparisons and truth: NumPy's results, which carry no gradient --------------
    def __eq__(self, other):
        return self.value == value_of(other)

    def __ne__(self, other):
        return self.value != value_of(other)

    def __lt__(self, other):
        return self.value < value_of(other)

    def __le__(self, other):
        return self.value <= value_of(other)

    def __gt__(self, other):
        return self.value > value_of(other)

    def __ge__(self, other):
        return self.value >= value_of(other)

    def __bool__(self):
        return bool(self.value)  # NumPy's rule: an error for more than one element

    # --- conversions that would silently cut the gradient: refused ---------------------
    def _untraced(self, what):
        raise _refuse(what, "its result would carry no gradient. Return the value from f "
                            "(for example as aux with fancydl.value_and_grad(..., "
                            "has_aux=True)) and convert it after the pullback")

    def __float__(self):
        self._untraced("float()")

    def __int__(self):
        self._untraced("int()")

    def __complex__(self):
        self._untraced("complex()")

    def __index__(self):
        self._untraced("an index (operator.index)")

    def item(self, *args):
        self._untraced(".item()")

    def tolist(self):
        self._untraced(".tolist()")

    def __setitem__(self, index, value):
        raise _refuse("item assignment (t[...] = v)",
                      "traced values are immutable: build the result with fancydl "
                      "operators (for example a mask multiplication) instead")

    def __getattr__(self, name):
        # Only reached for names Traced lacks. NumPy and copy probe dunders: keep those
        # an AttributeError; an ndarray method would give an untraced result: refuse it.
        if not name.startswith("_") and hasattr(np.ndarray, name):
            raise _refuse(f"ndarray.{name}", f"fancydl cannot differentiate .{name}: "
                          "use fancydl operators, or compute it on plain arrays outside "
                          "the function given to fancydl.vjp")
        raise AttributeError(f"'Traced' object has no attribute {name!r}")


for _ufunc in (np.equal, np.not_equal, np.less, np.less_equal, np.greater,
               np.greater_equal):
    Traced._ufuncs[_ufunc] = (lambda ufunc: lambda a, b: ufunc(value_of(a), value_of(b)))(
        _ufunc)


def is_traced(x):
    """True if ``x`` is a value recorded by :func:`fancydl.vjp`."""
    return isinstance(x, Traced)


def value_of(x):
    """The plain NumPy value of ``x`` (itself if it is not traced).

    Reading the value cuts the gradient: use it only for checks, never for a result
    that depends on ``x`` (see :func:`constant_of`).
    """
    return x.value if isinstance(x, Traced) else x


def constant_of(x, operator, argument):
    """``x`` itself, for an argument that ``operator`` does not differentiate.

    Parameters
    ----------
    x : object
        The argument.
    operator, argument : str
        Names for the message.

    Returns
    -------
    object
        ``x`` unchanged when it is not traced.

    Raises
    ------
    TypeError
        When ``x`` is traced by :func:`fancydl.vjp`: its gradient would silently be
        zero. The message tells how to keep ``x`` out of the trace.
    """
    if isinstance(x, Traced):
        raise TypeError(
            f"{operator}: cannot differentiate with respect to {argument}: it is traced "
            f"by fancydl.vjp, and its gradient would silently be zero. Pass {argument} "
            f"as a plain array: close over it in the function given to fancydl.vjp, or "
            f"leave it out of fancydl.value_and_grad's argnums")
    return x


def install_operators(methods, ufuncs):
    """Give :class:`Traced` its differentiable methods and its NumPy ufunc table.

    Parameters
    ----------
    methods : dict
        Attribute name -> function or property, set on the class.
    ufuncs : dict
        ``numpy.ufunc`` -> fancydl operator taking the ufunc's positional arguments.
    """
    for name, method in methods.items():
        setattr(Traced, name, method)
    Traced._ufuncs.update(ufuncs)
