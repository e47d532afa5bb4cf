"""The machinery every optimizer shares: parameter trees, gradient checks, state.

An optimizer holds a *tree* of parameters (a dict name -> array, a list of arrays, or
any nesting of dicts, lists and tuples whose leaves are float32/float64 arrays) and
updates its leaves in place. :meth:`Optimizer.step` takes gradients with the same
structure; a ``None`` leaf means "no gradient" and leaves that parameter and its state
untouched, as a PyTorch parameter whose ``.grad`` is None.

Leaves are numbered in the tree's order (dict insertion order, then list order): these
numbers key :attr:`Optimizer.state` and the ``'params'`` lists of :meth:`state_dict`,
as the parameter ids of ``torch.optim.Optimizer.state_dict``.
"""

from __future__ import annotations

import copy

import numpy as np

from ..validation import check_real

__all__ = ["Optimizer"]


def _is_container(tree):
    return isinstance(tree, (dict, list, tuple))


def _children(tree):
    """(key, child, path suffix) of a dict, list or tuple, in order."""
    if isinstance(tree, dict):
        return [(k, v, f"[{k!r}]") for k, v in tree.items()]
    return [(i, v, f"[{i}]") for i, v in enumerate(tree)]


def _copy_structure(tree):
    """A copy of the containers of ``tree``, sharing its leaves."""
    if isinstance(tree, dict):
        return {k: _copy_structure(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_copy_structure(v) for v in tree]
    return tree


def flatten_params(op, params, path="params"):
    """The leaves of a parameter tree and their paths, checked.

    Parameters
    ----------
    op : str
        Name of the caller, for messages.
    params : dict, list or tuple (nested), or ndarray
        The parameter tree.

    Returns
    -------
    paths : list of str
        ``"params['conv']['weight']"``-style path of each leaf.
    leaves : list of ndarray
        The leaves themselves (not copies), in the same order.

    Raises
    ------
    TypeError
        A leaf is not a float32/float64 numpy array.
    ValueError
        A leaf is read-only, appears twice, or the tree has no leaf.
    """
    paths, leaves = [], []

    def visit(tree, path):
        if _is_container(tree):
            for _, child, suffix in _children(tree):
                visit(child, path + suffix)
            return
        if not isinstance(tree, np.ndarray):
            raise TypeError(f"{op}: {path} must be a numpy.ndarray, got "
                            f"{type(tree).__name__}")
        if tree.dtype not in (np.float32, np.float64):
            raise TypeError(f"{op}: {path} must have dtype float32 or float64, got "
                            f"{tree.dtype}")
        if not tree.flags.writeable:
            raise ValueError(f"{op}: {path} must be writeable (it is updated in "
                             f"place), got a read-only array")
        paths.append(path)
        leaves.append(tree)

    visit(params, path)
    if not leaves:
        raise ValueError(f"{op}: params must hold at least one array, got an empty "
                         f"{type(params).__name__}")
    seen = {}
    for p, leaf in zip(paths, leaves):
        if id(leaf) in seen:
            raise ValueError(f"{op}: the same array appears twice in params, as "
                             f"{seen[id(leaf)]} and {p}; it would be updated twice")
        seen[id(leaf)] = p
    return paths, leaves


def match_grads(op, params, grads, ppath="params", gpath="grads"):
    """The gradient leaves aligned with :func:`flatten_params`'s leaves, checked.

    ``grads`` must have the structure of ``params``: dicts with the same keys (in any
    order), lists/tuples of the same length, and at each parameter an array of the
    parameter's shape and dtype, or None.

    Returns
    -------
    list of (ndarray or None)

    Raises
    ------
    TypeError, ValueError
        Naming the first place where the two trees differ.
    """
    out = []

    def visit(p, g, ppath, gpath):
        if isinstance(p, dict):
            if not isinstance(g, dict):
                raise TypeError(f"{op}: {gpath} must be a dict like {ppath}, got "
                                f"{type(g).__name__}")
            if set(g) != set(p):
                missing = [k for k in p if k not in g]
                extra = [k for k in g if k not in p]
                raise ValueError(f"{op}: {gpath} must have the keys of {ppath}; "
                                 f"missing {missing}, unexpected {extra}")
            for k, child, suffix in _children(p):
                visit(child, g[k], ppath + suffix, gpath + suffix)
        elif isinstance(p, (list, tuple)):
            if not isinstance(g, (list, tuple)):
                raise TypeError(f"{op}: {gpath} must be a list or tuple like {ppath}, "
                                f"got {type(g).__name__}")
            if len(g) != len(p):
                raise ValueError(f"{op}: {gpath} must have {len(p)} entries like "
                                 f"{ppath}, got {len(g)}")
            for i, child, suffix in _children(p):
                visit(child, g[i], ppath + suffix, gpath + suffix)
        elif g is None:
            out.append(None)
        elif not isinstance(g, np.ndarray):
            raise TypeError(f"{op}: {gpath} must be a numpy.ndarray or None, got "
                            f"{type(g).__name__}")
        elif g.shape != p.shape:
            raise ValueError(f"{op}: {gpath} must have the shape of {ppath}, "
                             f"{p.shape}, got {g.shape}")
        elif g.dtype != p.dtype:
            raise TypeError(f"{op}: {gpath} must have the dtype of {ppath}, "
                            f"{p.dtype}, got {g.dtype}")
        else:
            out.append(g)

    visit(params, grads, ppath, gpath)
    return out


def check_flag(op, name, value):
    """Check that ``value`` is a bool (numpy's bool too) and return it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(value).__name__} "
                        f"{value!r}")
    return bool(value)


def check_betas(op, betas):
    """Check Adam's ``betas``: a pair of reals, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{op}: betas must be a pair (beta1, beta2), got {betas!r}")
    out = []
    for i, beta in enumerate(betas):
        beta = check_real(op, f"betas[{i}]", beta)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{op}: betas[{i}] must be in [0, 1), got {beta}")
        out.append(beta)
    return tuple(out)


def check_nonnegative(op, name, value):
    """Check that ``value`` is a real number >= 0 (NaN refused); return it as float."""
    return check_real(op, name, value, minimum=0.0)


class Optimizer:
    """Base class: holds the parameter tree, one parameter group and the state.

    Subclasses define :meth:`_update`, the update of one parameter from its gradient,
    and validate their hyperparameters before calling ``super().__init__``.

    Parameters
    ----------
    params : dict, list or tuple of float ndarrays (nested)
        Updated in place by :meth:`step`.
    defaults : dict
        The hyperparameters, copied into ``param_groups[0]``.

    Attributes
    ----------
    param_groups : list of one dict
        ``param_groups[0]`` holds the hyperparameters (``'lr'``, ...) and ``'params'``,
        the list of parameter arrays. Change ``param_groups[0]['lr']`` (or let a
        scheduler of :mod:`fancydl.optim.lr_scheduler` do it) between steps.
    state : dict int -> dict
        Per-parameter state (momentum buffers, moment estimates), keyed by the
        parameter's index in tree order. A parameter has no entry until its first
        update.
    """

    def __init__(self, params, defaults):
        op = type(self).__name__
        self._paths, leaves = flatten_params(op, params)
        # The structure as it is now: keys added to the caller's dicts later are not
        # parameters of this optimizer (as a torch optimizer keeps its tensor list).
        self._structure = _copy_structure(params)
        self.param_groups = [dict(defaults, params=leaves)]
        self.state = {}

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items()
                          if k != "params")
        return f"{type(self).__name__}({len(self._paths)} arrays, {hyper})"

    def step(self, grads):
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : same structure as ``params``
            One array per parameter, of its shape and dtype, or None to skip that
            parameter (its state is left untouched too).

        Raises
        ------
        TypeError, ValueError
            When ``grads`` does not match ``params``; nothing is updated then.
        """
        op = f"{type(self).__name__}.step"
        flat = match_grads(op, self._structure, grads)
        group = self.param_groups[0]
        # numpy scalars become Python numbers: a float64 scalar would promote a float32
        # update to float64 (NEP 50), a Python float is cast to the array's dtype.
        hyper = {k: (v.item() if isinstance(v, np.generic) else v)
                 for k, v in group.items() if k not in ("params", "initial_lr")}
        for i, (param, grad) in enumerate(zip(group["params"], flat)):
            if grad is None:
                continue
            state = self.state.get(i, {})
            self._update(param, grad, state, **hyper)
            if state:
                self.state[i] = state

    def _update(self, param, grad, state, **hyper):
        raise NotImplementedError

    def state_dict(self):
        """The optimizer's state as a dict of plain values (arrays copied).

        Returns
        -------
        dict
            ``{'state': {index: {name: value}}, 'param_groups': [{...hyper,
            'params': [0, 1, ...]}]}``, the layout of
            ``torch.optim.Optimizer.state_dict`` with parameter indices in tree order.
        """
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self._paths)))
        return {"state": copy.deepcopy(self.state), "param_groups": [group]}

    def load_state_dict(self, state_dict):
        """Restore a state saved by :meth:`state_dict` (hyperparameters included).

        The loaded optimizer continues exactly as the saved one would have. State
        arrays are copied and cast to their parameter's dtype; the hyperparameters
        are taken as saved (not re-validated, as in PyTorch).

        Raises
        ------
        ValueError
            The saved state does not fit these parameters (count, shapes) or comes
            from another kind of optimizer.
        """
        op = f"{type(self).__name__}.load_state_dict"
        if (not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}
                or len(state_dict["param_groups"]) != 1):
            raise ValueError(f"{op}: state_dict must be a dict with keys 'state' and "
                             f"'param_groups' (one group), as state_dict() returns")
        saved = state_dict["param_groups"][0]
        ours = self.param_groups[0]
        needed = set(ours) - {"initial_lr"}
        if not needed <= set(saved) or not set(saved) <= needed | {"initial_lr"}:
            raise ValueError(f"{op}: the saved hyperparameters {sorted(saved)} are not "
                             f"those of {type(self).__name__}, {sorted(needed)}")
        leaves = ours["params"]
        if len(saved["params"]) != len(leaves):
            raise ValueError(f"{op}: the saved state has {len(saved['params'])} "
                             f"parameters, this optimizer has {len(leaves)}")
        state = {}
        for index, entries in state_dict["state"].items():
            if not (isinstance(index, int) and 0 <= index < len(leaves)):
                raise ValueError(f"{op}: state key {index!r} is not a parameter index "
                                 f"in [0, {len(leaves)})")
            if not isinstance(entries, dict):
                raise ValueError(f"{op}: state[{index}] must be a dict, got "
                                 f"{type(entries).__name__}")
            state[index] = {name: self._load_state_value(op, leaves[index], index,
                                                         name, value)
                            for name, value in entries.items()}
        group = copy.deepcopy({k: v for k, v in saved.items() if k != "params"})
        self.param_groups[0] = dict(group, params=leaves)
        self.state = state

    def _load_state_value(self, op, param, index, name, value):
        if not isinstance(value, np.ndarray):
            return copy.deepcopy(value)
        if value.shape != param.shape:
            raise ValueError(f"{op}: state[{index}][{name!r}] has shape {value.shape} "
                             f"but {self._paths[index]} has shape {param.shape}")
        return value.astype(param.dtype, copy=True)
