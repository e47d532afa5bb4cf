"""Optional cross-checks against PyTorch: ``crosscheck(op, *args, **kwargs)``.

The same call runs in fancydl (gradients through :func:`fancydl.vjp`) and in PyTorch
(gradients through autograd), both pulled back with the same random upstream
gradient. PyTorch is imported only here, only when a cross-check runs: ``import fancydl``
never needs it.

The PyTorch counterpart of an operator is ``torch.nn.functional.<name>`` (or
``torch.<name>``) unless a module registers another one with :func:`torch_reference`,
e.g. for min pooling, which PyTorch spells ``-max_pool2d(-x)``. Where there is none
(stochastic pooling has no PyTorch op), or it needs a package that is missing
(torchvision's roi_align), the report says so in one line and skips, as it does
without PyTorch.
"""

from __future__ import annotations

import inspect
import textwrap
import warnings

import numpy as np

from .autodiff import _vjp

__all__ = ["crosscheck", "CrosscheckReport", "torch_reference", "NoReference",
           "torchvision_ops", "TOLERANCES"]

#: Default (atol, rtol) per dtype: ``|ours - torch| <= atol + rtol * |torch|``.
TOLERANCES = {np.dtype(np.float64): (1e-10, 1e-7), np.dtype(np.float32): (1e-5, 1e-4)}

_REFERENCES = {}


def torch_reference(name):
    """Register ``fn(torch, *args, **kwargs)`` as the PyTorch counterpart of op ``name``.

    The function receives the ``torch`` module and the arguments converted to tensors,
    and returns a tensor or a tuple of tensors.
    """
    def register(fn):
        _REFERENCES[name] = fn
        return fn
    return register


class NoReference(LookupError):
    """There is no PyTorch counterpart to cross-check against, here: raised with the
    reason by a reference (e.g. when its package is missing); :func:`crosscheck` then
    returns a report that skips, saying why."""


def torchvision_ops(name):
    """``torchvision.ops``, for a reference of operator ``name``.

    Raises
    ------
    NoReference
        When torchvision is not installed (it is optional, as PyTorch is).
    """
    try:
        import torchvision.ops
    except ImportError:
        raise NoReference(f"its counterpart torchvision.ops.{name} needs torchvision, "
                          f"which is not installed") from None
    return torchvision.ops


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _resolve_reference(torch, op):
    name = op.__name__
    if name in _REFERENCES:
        return _REFERENCES[name], _REFERENCES[name].__doc__ or f"registered {name}"
    for namespace, label in ((torch.nn.functional, "torch.nn.functional"), (torch, "torch")):
        fn = getattr(namespace, name, None)
        if fn is not None:
            return (lambda _torch, *a, **k: fn(*a, **k)), f"{label}.{name}"
    raise NoReference(f"PyTorch has no operator named {name!r} and none is registered "
                      f"with fancydl.crosscheck.torch_reference")


def _to_torch(torch, value, track):
    """Arrays become tensors (float ones tracked when ``track``); lists recurse."""
    if isinstance(value, np.ndarray):
        tensor = torch.tensor(value)
        if track and np.issubdtype(value.dtype, np.floating):
            tensor.requires_grad_(True)
        return tensor
    if isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value):
        return type(value)(_to_torch(torch, v, False) for v in value)
    return value


def _copy(value):
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


class CrosscheckReport:
    """Outcome of :func:`crosscheck`: truthy when every comparison passed.

    Attributes
    ----------
    rows : list of (label, passed, max_abs_error, max_rel_error)
    """

    def __init__(self, title, rows, tolerance, skipped=None):
        self.title, self.rows, self.tolerance, self.skipped = title, rows, tolerance, skipped

    @property
    def passed(self):
        return self.skipped is None and all(ok for _, ok, _, _ in self.rows)

    def __bool__(self):
        return self.passed

    def __repr__(self):
        if self.skipped:
            return self.skipped
        atol, rtol = self.tolerance
        # The header wraps: a report fits the book's 80-character column.
        lines = [textwrap.fill(f"{self.title}: {'PASS' if self.passed else 'FAIL'} "
                               f"(|fancydl - torch| <= {atol:g} + {rtol:g}*|torch|)",
                               width=79, subsequent_indent="  ", break_long_words=False,
                               break_on_hyphens=False)]
        for label, ok, abs_err, rel_err in self.rows:
            detail = "ok" if ok else f"max abs error {abs_err:.3e}, max rel error {rel_err:.3e}"
            lines.append(f"  {label:<24} {detail}")
        return "\n".join(lines)


def _compare(ours, theirs, atol, rtol):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape:
        return False, np.inf, np.inf
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    same_nan = np.isnan(ours) & np.isnan(theirs)
    same_inf = np.isinf(ours) & (ours == theirs)
    diff = np.where(same_nan | same_inf, 0.0, diff)
    scale = np.abs(theirs.astype(np.float64))
    ok = bool(np.all(diff <= atol + rtol * np.where(np.isfinite(scale), scale, 0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, diff)
    return ok, float(diff.max(initial=0.0)), float(np.nan_to_num(rel).max(initial=0.0))


def crosscheck(op, *args, atol=None, rtol=None, rng=None, **kwargs):
    """Run ``op(*args, **kwargs)`` in fancydl and in PyTorch and compare everything.

    Compares each output, then the gradient of every floating-point positional
    argument for one random upstream gradient (the same for both).

    Parameters
    ----------
    op : callable
        A fancydl operator (its ``__name__`` selects the PyTorch counterpart).
    *args, **kwargs
        The call's arguments, as NumPy arrays and Python values. They are copied, so
        in-place updates (batch-norm running statistics) do not leak out.
    atol, rtol : float, optional
        Tolerances; by default from :data:`TOLERANCES` for the first float argument.
    rng : numpy.random.Generator, optional
        Source of the upstream gradient (default: seeded with 0).

    Returns
    -------
    CrosscheckReport
        Prints as a short table; truthy when everything passed. Without PyTorch, or
        without a PyTorch counterpart of ``op`` (:class:`NoReference`), it says so in
        one line and is falsy.
    """
    torch = _import_torch()
    name = getattr(op, "__name__", repr(op))
    if torch is None:
        return _skipped(name, "PyTorch is not installed (pip install torch==2.13.0)")
    try:
        reference, ref_label = _resolve_reference(torch, op)
        return _crosscheck(torch, op, name, reference, ref_label, args, kwargs, atol, rtol,
                           rng)
    except NoReference as reason:
        return _skipped(name, str(reason))


def _skipped(name, reason):
    """A falsy report of one line: ``crosscheck of <name>: skipped, <reason>``."""
    return CrosscheckReport(name, [], (0, 0), skipped=f"crosscheck of {name}: skipped, "
                                                       f"{reason}")


def _crosscheck(torch, op, name, reference, ref_label, args, kwargs, atol, rtol, rng):
    """:func:`crosscheck` once PyTorch and the reference are found."""
    float_args = [a for a in args if isinstance(a, np.ndarray)
                  and np.issubdtype(a.dtype, np.floating)]
    dtype = float_args[0].dtype if float_args else np.dtype(np.float64)
    default_atol, default_rtol = TOLERANCES.get(dtype, TOLERANCES[np.dtype(np.float32)])
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    rng = np.random.default_rng(0) if rng is None else rng

    names = _parameter_names(op, len(args))
    theirs, t_args, untracked = _run_reference(torch, reference, names, args, kwargs)
    ours, pullback, refused = _our_vjp(op, args, kwargs, t_args, names)
    for position in refused:  # fancydl refuses to differentiate it (no silent zeros)
        t_args[position] = t_args[position].detach()
        untracked.append(f"{names[position]} (nor can fancydl)")

    our_outputs = list(ours) if isinstance(ours, tuple) else [ours]
    their_outputs = list(theirs) if isinstance(theirs, (tuple, list)) else [theirs]
    rows, upstream = [], []
    for k, (o, t) in enumerate(zip(our_outputs, their_outputs)):
        label = "output" if len(our_outputs) == 1 else f"output {k}"
        rows.append((label, *_compare(o, t.detach().numpy(), atol, rtol)))
        is_float = np.issubdtype(np.asarray(o).dtype, np.floating) and t.requires_grad
        upstream.append(rng.standard_normal(np.shape(o)).astype(np.asarray(o).dtype)
                        if is_float else None)

    tracked = [t for t in t_args if hasattr(t, "requires_grad") and t.requires_grad]
    if tracked and any(u is not None for u in upstream):
        our_grads = pullback(tuple(upstream) if isinstance(ours, tuple) else upstream[0])
        pairs = [(t, torch.tensor(u)) for t, u in zip(their_outputs, upstream)
                 if u is not None]
        their_grads = torch.autograd.grad([p[0] for p in pairs], tracked,
                                          [p[1] for p in pairs], allow_unused=True)
        tracked_positions = [i for i, t in enumerate(t_args) if any(t is x for x in tracked)]
        for position, their in zip(tracked_positions, their_grads):
            mine = our_grads[position]
            their = np.zeros_like(mine) if their is None else their.numpy()
            rows.append((f"gradient of {names[position]}", *_compare(mine, their, atol, rtol)))
    title = f"crosscheck fancydl.{name} against {ref_label} ({dtype})"
    if untracked:
        title += f"; PyTorch cannot differentiate {', '.join(untracked)}"
    return CrosscheckReport(title, rows, (atol, rtol))


def _our_vjp(op, args, kwargs, t_args, names):
    """``vjp`` of ``op`` tracing the arguments PyTorch tracks; an argument fancydl
    refuses to differentiate (a TypeError naming it) is left untraced and returned."""
    tracked = {i for i, t in enumerate(t_args) if getattr(t, "requires_grad", False)}
    refused = []
    while True:
        try:
            ours, pullback = _vjp(op, [_copy(a) for a in args],
                                  {k: _copy(v) for k, v in kwargs.items()}, tracked,
                                  "crosscheck")
            return ours, pullback, refused
        except TypeError as error:
            hit = [i for i in sorted(tracked) if
                   f"cannot differentiate with respect to {names[i]}" in str(error)]
            if not hit:
                raise
            tracked.discard(hit[0])
            refused.append(hit[0])


def _run_reference(torch, reference, names, args, kwargs):
    """Call the PyTorch reference, untracking arguments PyTorch cannot differentiate.

    Returns
    -------
    result, tensor arguments, names of the arguments left untracked
    """
    untracked = []
    while True:
        t_args = [_to_torch(torch, _copy(a), names[i] not in untracked)
                  for i, a in enumerate(args)]
        t_kwargs = {k: _to_torch(torch, _copy(v), False) for k, v in kwargs.items()}
        try:
            with warnings.catch_warnings():
                # PyTorch's performance notices (e.g. padding='same' with an even
                # kernel copies the input) are not about correctness: keep them quiet.
                warnings.simplefilter("ignore", UserWarning)
                return reference(torch, *t_args, **t_kwargs), t_args, untracked
        except RuntimeError as error:
            refused = [n for n in names if f"argument '{n}'" in str(error)
                       and n not in untracked]
            if "not differentiable" not in str(error) or not refused:
                raise
            untracked.append(refused[0])


def _parameter_names(op, count):
    try:
        params = list(inspect.signature(op).parameters)
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"argument {i}" for i in range(count)]
