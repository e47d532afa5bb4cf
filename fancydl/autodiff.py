"""Reverse-mode differentiation over NumPy arrays: ``vjp``, ``Function`` and ``gradcheck``.

The design follows micrograd and ``torch.autograd.Function``:

* ``vjp(f, *args)`` wraps every floating-point positional array in a :class:`Traced`
  value and calls ``f``.
* Every fancydl operator is a :class:`Function` with a ``forward`` and a hand-written
  ``backward`` side by side. When an operator receives a ``Traced`` input, ``apply``
  records a node that remembers its parents and its ``ctx``; on plain arrays it just
  computes.
* The pullback walks the recorded graph in reverse topological order, calling each
  node's ``backward`` with the gradient of its output and accumulating the gradients
  of its inputs.

Nothing here knows about any particular operator; the operators live in their own
modules and only subclass :class:`Function`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Function", "Traced", "vjp", "gradcheck", "GradcheckReport", "value_of",
           "is_traced"]


class Traced:
    """A NumPy array whose operations are being recorded by :func:`vjp`.

    Only fancydl operators understand a ``Traced`` value; NumPy functions refuse it
    with a ``TypeError`` rather than silently dropping the gradient.

    Attributes
    ----------
    value : numpy.ndarray
        The array itself.
    node : _Node or None
        The operation that produced it (None for a leaf, i.e. an argument of ``vjp``).
    """

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``ndarray + traced`` and friends: route NumPy's arithmetic to fancydl."""
        from . import elementwise
        arithmetic = {np.add: elementwise.add, np.subtract: elementwise.sub,
                      np.multiply: elementwise.mul, np.true_divide: elementwise.div,
                      np.matmul: elementwise.matmul}
        if method == "__call__" and ufunc in arithmetic and not kwargs:
            return arithmetic[ufunc](*inputs)
        raise TypeError(
            f"numpy.{ufunc.__name__} got a traced fancydl value inside fancydl.vjp; "
            "use the fancydl operator instead (fancydl.exp, fancydl.sum, ...) so that "
            "its gradient is recorded")

    def __init__(self, value, node=None):
        self.value = value
        self.node = node

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    size = property(lambda self: self.value.size)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"Traced({self.value!r})"

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a traced fancydl value reached a NumPy function inside fancydl.vjp; "
            "use the fancydl operator instead (fancydl.exp, fancydl.sum, ...) so that "
            "its gradient is recorded")

    # Arithmetic delegates to the differentiable elementwise operators.
    def __add__(self, other):
        from .elementwise import add
        return add(self, other)

    def __radd__(self, other):
        from .elementwise import add
        return add(other, self)

    def __sub__(self, other):
        from .elementwise import sub
        return sub(self, other)

    def __rsub__(self, other):
        from .elementwise import sub
        return sub(other, self)

    def __mul__(self, other):
        from .elementwise import mul
        return mul(self, other)

    def __rmul__(self, other):
        from .elementwise import mul
        return mul(other, self)

    def __truediv__(self, other):
        from .elementwise import div
        return div(self, other)

    def __rtruediv__(self, other):
        from .elementwise import div
        return div(other, self)

    def __neg__(self):
        from .elementwise import neg
        return neg(self)

    def __matmul__(self, other):
        from .elementwise import matmul
        return matmul(self, other)

    def __rmatmul__(self, other):
        from .elementwise import matmul
        return matmul(other, self)

    def __getitem__(self, index):
        from .elementwise import getitem
        return getitem(self, index)

    def sum(self, dim=None, keepdim=False):
        from .elementwise import sum as _sum
        return _sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        from .elementwise import mean
        return mean(self, dim, keepdim)

    def reshape(self, *shape):
        from .elementwise import reshape
        return reshape(self, shape[0] if len(shape) == 1 else shape)


def is_traced(x):
    """True if ``x`` is a value recorded by :func:`vjp`."""
    return isinstance(x, Traced)


def value_of(x):
    """The plain NumPy value of ``x`` (itself if it is not traced)."""
    return x.value if isinstance(x, Traced) else x


class _Node:
    """One recorded call: the function, its context and the traced inputs."""

    __slots__ = ("function", "ctx", "parents", "n_outputs", "output_meta")

    def __init__(self, function, ctx, parents, output_meta):
        self.function = function
        self.ctx = ctx
        self.parents = parents          # {positional index: Traced}
        self.output_meta = output_meta  # [(shape, dtype) or None] per output
        self.n_outputs = len(output_meta)


class Context:
    """What ``forward`` leaves for ``backward``, as in ``torch.autograd.Function``.

    Attributes
    ----------
    needs_input_grad : tuple of bool
        One flag per positional argument of ``forward``: does the pullback need it?
        ``backward`` may return None for the others and skip their computation.
    """

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.saved = ()

    def save_for_backward(self, *arrays):
        self.saved = arrays


class Function:
    """Base class of every differentiable fancydl operator.

    Subclasses define two static methods, side by side::

        class Exp(Function):
            @staticmethod
            def forward(ctx, x):
                y = np.exp(x)
                ctx.save_for_backward(y)
                return y

            @staticmethod
            def backward(ctx, grad):
                (y,) = ctx.saved
                return (grad * y,)

    ``forward`` receives plain NumPy arrays and returns an array or a tuple of arrays
    (integer outputs, such as pooling indices, are never differentiated).
    ``backward`` receives one upstream gradient per output and returns one gradient
    per positional argument of ``forward`` (None where there is none).
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - always overridden
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - always overridden
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run ``forward``; record a node when any positional argument is traced."""
        needs = tuple(isinstance(a, Traced) for a in args)
        plain = tuple(value_of(a) for a in args)
        ctx = Context(needs)
        out = cls.forward(ctx, *plain, **kwargs)
        if not any(needs):
            return out
        # NumPy turns 0-d results into scalars (``-x`` of a 0-d array): keep arrays.
        out = (tuple(np.asarray(o) if isinstance(o, np.generic) else o for o in out)
               if isinstance(out, tuple) else
               np.asarray(out) if isinstance(out, np.generic) else out)
        outputs = out if isinstance(out, tuple) else (out,)
        meta = [(o.shape, o.dtype) if _is_float_array(o) else None for o in outputs]
        node = _Node(cls, ctx, {i: a for i, a in enumerate(args) if needs[i]}, meta)
        wrapped = tuple(Traced(o, _OutputRef(node, k)) if meta[k] is not None else o
                        for k, o in enumerate(outputs))
        return wrapped if isinstance(out, tuple) else wrapped[0]


class _OutputRef:
    """Which output of which node a traced value is."""

    __slots__ = ("node", "index")

    def __init__(self, node, index):
        self.node = node
        self.index = index


def _is_float_array(x):
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)


def _topological_order(roots):
    """Nodes reachable from ``roots``, each after every node that consumes it."""
    order, seen = [], set()
    stack = [(node, False) for node in roots]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node.parents.values():
            if parent.node is not None and id(parent.node.node) not in seen:
                stack.append((parent.node.node, False))
    return order[::-1]


def _flatten_outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


def vjp(f, *args, **kwargs):
    """Evaluate ``f(*args, **kwargs)`` and return its vector-Jacobian product.

    Parameters
    ----------
    f : callable
        Any Python function built from fancydl operators.
    *args
        Positional arguments. Every floating-point ``numpy.ndarray`` among them is
        differentiated; anything else (ints, index arrays, None) is passed through.
    **kwargs
        Passed to ``f`` unchanged and never differentiated.

    Returns
    -------
    out : ndarray or tuple of ndarray
        ``f``'s result as plain arrays.
    pullback : callable
        ``pullback(grad_out)`` takes an upstream gradient of ``out``'s shape (a tuple
        of them if ``out`` is a tuple; None for an output that does not matter) and
        returns a tuple with one entry per positional argument: the gradient, of the
        argument's shape, or None where the argument is not a float array.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> y, pullback = fancydl.vjp(fancydl.softmax, x, 0)
    >>> gx, gdim = pullback(np.array([1.0, 0.0, 0.0]))
    >>> gdim is None
    True
    """
    if not callable(f):
        raise TypeError(f"vjp: f must be callable, got {type(f).__name__}")
    leaves = [Traced(a) if _is_float_array(a) else None for a in args]
    traced_args = [leaf if leaf is not None else a for leaf, a in zip(leaves, args)]
    result = f(*traced_args, **kwargs)
    outputs = _flatten_outputs(result)
    plain = tuple(value_of(o) for o in outputs)
    out = plain if isinstance(result, tuple) else plain[0]

    def pullback(grad_out):
        grads_out = _flatten_outputs(grad_out) if isinstance(result, tuple) else [grad_out]
        if len(grads_out) != len(outputs):
            raise ValueError(f"pullback: expected {len(outputs)} upstream gradients, "
                             f"got {len(grads_out)}")
        return _backpropagate(outputs, grads_out, args, leaves)

    return out, pullback


def _check_upstream(grad, output, position):
    grad = np.asarray(grad)
    if grad.shape != np.shape(output):
        raise ValueError(f"pullback: upstream gradient {position} must have the output's "
                         f"shape {np.shape(output)}, got {grad.shape}")
    return grad.astype(output.dtype, copy=False)


def _backpropagate(outputs, grads_out, args, leaves):
    grads = {}  # id(node) -> list of gradients per output; id(leaf) -> gradient

    def accumulate(traced, grad):
        if traced.node is None:
            key = id(traced)
            grads[key] = grad if key not in grads else grads[key] + grad
            return
        ref = traced.node
        slots = grads.setdefault(id(ref.node), [None] * ref.node.n_outputs)
        slots[ref.index] = grad if slots[ref.index] is None else slots[ref.index] + grad

    roots = []
    for k, (o, g) in enumerate(zip(outputs, grads_out)):
        if g is None or not isinstance(o, Traced):
            continue
        accumulate(o, _check_upstream(g, o.value, k))
        if o.node is not None:
            roots.append(o.node.node)

    for node in _topological_order(roots):
        slots = grads.pop(id(node), None)
        if slots is None:
            continue
        upstream = [g if g is not None else
                    (np.zeros(m[0], m[1]) if m is not None else None)
                    for g, m in zip(slots, node.output_meta)]
        input_grads = node.function.backward(node.ctx, *upstream)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for i, parent in node.parents.items():
            g = input_grads[i] if i < len(input_grads) else None
            if g is not None:
                accumulate(parent, g)

    result = []
    for leaf, a in zip(leaves, args):
        if leaf is None:
            result.append(None)
        else:
            result.append(grads[id(leaf)] if id(leaf) in grads else np.zeros_like(a))
    return tuple(result)


class GradcheckReport:
    """Result of :func:`gradcheck`: truthy when every gradient matched.

    Attributes
    ----------
    passed : bool
    max_errors : dict
        Argument position -> largest |analytic - numeric| over its entries.
    """

    def __init__(self, name, max_errors, atol, rtol, passed):
        self.name = name
        self.max_errors = max_errors
        self.atol = atol
        self.rtol = rtol
        self.passed = passed

    def __bool__(self):
        return self.passed

    def __repr__(self):
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"gradcheck of {self.name}: {verdict} "
                 f"(central differences, atol={self.atol:g}, rtol={self.rtol:g})"]
        for position, err in self.max_errors.items():
            mark = "ok" if err["ok"] else f"max error {err['abs']:.3e}"
            lines.append(f"  argument {position}: {mark}")
        return "\n".join(lines)


def gradcheck(f, *args, eps=1e-6, atol=1e-7, rtol=1e-5, rng=None, **kwargs):
    """Compare ``vjp(f, ...)`` with central finite differences, in float64.

    A random upstream gradient ``u`` (never a plain sum, which can hide errors: the
    sum of batch-normalized outputs has zero input gradient) is pulled back, and each
    entry ``i`` of every float argument is checked against
    ``(<u, f(x + eps e_i)> - <u, f(x - eps e_i)>) / (2 eps)``.

    Parameters
    ----------
    f : callable
        A function built from fancydl operators.
    *args
        Its positional arguments; every float array must be float64.
    eps, atol, rtol : float
        Step and tolerances: entry-wise ``|analytic - numeric| <= atol + rtol*|numeric|``.
    rng : numpy.random.Generator, optional
        Source of the random upstream gradient (default: seeded with 0).
    **kwargs
        Passed to ``f``.

    Returns
    -------
    GradcheckReport
        Truthy when every entry of every gradient is within tolerance.
    """
    for i, a in enumerate(args):
        if _is_float_array(a) and a.dtype != np.float64:
            raise TypeError(f"gradcheck: argument {i} must be float64 for finite "
                            f"differences to be meaningful, got {a.dtype}")
    rng = np.random.default_rng(0) if rng is None else rng
    out, pullback = vjp(f, *args, **kwargs)
    outputs = _flatten_outputs(out)
    upstream = [rng.standard_normal(np.shape(o)) if _is_float_array(o) else None
                for o in outputs]
    analytic = pullback(tuple(upstream) if isinstance(out, tuple) else upstream[0])

    def projected(perturbed_args):
        values = _flatten_outputs(f(*perturbed_args, **kwargs))
        return sum(float(np.sum(u * v)) for u, v in zip(upstream, values) if u is not None)

    max_errors, passed = {}, True
    for i, a in enumerate(args):
        if analytic[i] is None:
            continue
        numeric = np.zeros_like(a)
        work = [np.array(x, copy=True) if _is_float_array(x) else x for x in args]
        flat = work[i].reshape(-1)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = projected(work)
            flat[j] = original - eps
            minus = projected(work)
            flat[j] = original
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        diff = np.abs(analytic[i] - numeric)
        ok = bool(np.all(diff <= atol + rtol * np.abs(numeric)))
        max_errors[i] = {"abs": float(diff.max(initial=0.0)), "ok": ok}
        passed &= ok
    name = getattr(f, "__name__", type(f).__name__)
    return GradcheckReport(name, max_errors, atol, rtol, passed)
