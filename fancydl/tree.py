"""Nested containers of arrays ("pytrees"): flatten them to a list of leaves and back.

A tree is a dict, list or tuple (named tuples included) whose entries are trees, or
anything else, which is a leaf (an array, a number, None, a string, ...). Network
parameters are the usual example::

    params = {"conv": {"weight": w, "bias": b}, "linear": [v, c]}

:func:`fancydl.vjp` and :func:`fancydl.value_and_grad` differentiate the float-array
leaves of such trees and return gradients with the same structure, and
:class:`fancydl.optim` optimizers update them. Dict keys keep their insertion order.

Examples
--------
>>> import numpy as np
>>> from fancydl.tree import tree_flatten, tree_unflatten, tree_map
>>> params = {"w": np.ones(2), "layers": [np.zeros(1), 3]}
>>> leaves, treedef = tree_flatten(params)
>>> len(leaves), treedef
(3, TreeDef({'w': *, 'layers': [*, *]}))
>>> tree_unflatten(treedef, [2 * leaf for leaf in leaves])["layers"][1]
6
>>> tree_map(lambda a, b: a + b, {"x": 1, "y": (2, 3)}, {"x": 10, "y": (20, 30)})
{'x': 11, 'y': (22, 33)}
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["TreeDef", "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves"]


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _children(node):
    """(kind, keys, children) of a container node, or None for a leaf."""
    if isinstance(node, dict):
        return type(node), tuple(node.keys()), list(node.values())
    if isinstance(node, (list, tuple)):
        return type(node), None, list(node)
    return None


class TreeDef:
    """The structure of a tree with its leaves taken out.

    Attributes
    ----------
    num_leaves : int
        How many leaves :func:`tree_unflatten` expects.
    """

    __slots__ = ("kind", "keys", "children", "num_leaves")

    def __init__(self, kind, keys, children):
        self.kind = kind          # None for a leaf, else dict/list/tuple/namedtuple type
        self.keys = keys          # dict keys in order, else None
        self.children = children  # tuple of TreeDef
        self.num_leaves = 1 if kind is None else sum(c.num_leaves for c in children)

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self.kind == other.kind
                and self.keys == other.keys and self.children == other.children)

    def __hash__(self):
        return hash((self.kind, self.keys, self.children))

    def __repr__(self):
        return f"TreeDef({self._describe()})"

    def _describe(self):
        if self.kind is None:
            return "*"
        parts = [c._describe() for c in self.children]
        if self.keys is not None:
            return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(self.keys, parts)) + "}"
        if issubclass(self.kind, list):
            return "[" + ", ".join(parts) + "]"
        inside = ", ".join(parts) + ("," if len(parts) == 1 else "")
        name = "" if self.kind is tuple else self.kind.__name__
        return f"{name}({inside})"

    def unflatten(self, leaves):
        """Rebuild the tree from ``leaves`` (iterable, in :func:`tree_flatten`'s order)."""
        leaves = list(leaves)
        if len(leaves) != self.num_leaves:
            raise ValueError(f"tree_unflatten: the structure {self!r} has "
                             f"{self.num_leaves} leaves, got {len(leaves)}")
        return self._build(iter(leaves))

    def _build(self, leaves):
        if self.kind is None:
            return next(leaves)
        values = [c._build(leaves) for c in self.children]
        if self.keys is not None:
            pairs = zip(self.keys, values)
            return OrderedDict(pairs) if self.kind is OrderedDict else dict(pairs)
        if issubclass(self.kind, tuple):
            return self.kind(*values) if hasattr(self.kind, "_fields") else tuple(values)
        return list(values)

    def flatten_up_to(self, tree, what="tree", none_is_subtree=False):
        """The leaves of ``tree``, which must have this structure.

        Parameters
        ----------
        tree : tree
            Its leaves may be subtrees (as in ``tree_map``'s extra trees).
        what : str
            Name of ``tree`` for the message.
        none_is_subtree : bool
            Let None stand for a whole subtree, giving a None for each of its leaves.

        Raises
        ------
        ValueError
            When the structures differ; the message gives the path of the first
            difference.
        """
        leaves = []
        self._collect(tree, leaves, what, none_is_subtree)
        return leaves

    def _collect(self, node, leaves, path, none_is_subtree):
        if self.kind is None:
            leaves.append(node)
            return
        if node is None and none_is_subtree:
            leaves.extend([None] * self.num_leaves)
            return
        expected = self._describe()
        if self.keys is not None:
            if not isinstance(node, dict) or set(node.keys()) != set(self.keys):
                got = (f"a dict with keys {list(node.keys())!r}" if isinstance(node, dict)
                       else _type_name(node))
                raise ValueError(f"{path} must have the structure {expected}, got {got}")
            for key, child in zip(self.keys, self.children):
                child._collect(node[key], leaves, f"{path}[{key!r}]", none_is_subtree)
            return
        is_list = issubclass(self.kind, list)
        if (not isinstance(node, list if is_list else tuple)
                or len(node) != len(self.children)):
            got = (f"a {type(node).__name__} of length {len(node)}"
                   if isinstance(node, (list, tuple)) else _type_name(node))
            raise ValueError(f"{path} must have the structure {expected}, got {got}")
        for i, (child, item) in enumerate(zip(self.children, node)):
            child._collect(item, leaves, f"{path}[{i}]", none_is_subtree)


def _type_name(x):
    shape = getattr(x, "shape", None)
    kind = f"a leaf {type(x).__name__}"
    return kind if shape is None else f"{kind} of shape {shape}"


def _flatten(node, leaves):
    parts = _children(node)
    if parts is None:
        leaves.append(node)
        return _LEAF
    kind, keys, children = parts
    return TreeDef(kind, keys, tuple(_flatten(c, leaves) for c in children))


_LEAF = TreeDef(None, None, ())


def tree_flatten(tree):
    """Split ``tree`` into its leaves and its structure.

    Parameters
    ----------
    tree : dict, list, tuple or leaf
        Nested containers; everything that is not a dict, list or tuple is a leaf.

    Returns
    -------
    leaves : list
        The leaves, depth first, dict entries in insertion order.
    treedef : TreeDef
        The structure, for :func:`tree_unflatten`.

    Examples
    --------
    >>> tree_flatten([1, {"a": 2, "b": (3,)}])
    ([1, 2, 3], TreeDef([*, {'a': *, 'b': (*,)}]))
    """
    leaves = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def tree_unflatten(treedef, leaves):
    """Inverse of :func:`tree_flatten`: put ``leaves`` back into ``treedef``'s structure.

    Parameters
    ----------
    treedef : TreeDef
    leaves : iterable
        Exactly ``treedef.num_leaves`` values.

    Returns
    -------
    tree

    Examples
    --------
    >>> leaves, treedef = tree_flatten({"a": 1, "b": [2, 3]})
    >>> tree_unflatten(treedef, ["x", "y", "z"])
    {'a': 'x', 'b': ['y', 'z']}
    """
    if not isinstance(treedef, TreeDef):
        raise TypeError(f"tree_unflatten: treedef must be a TreeDef from tree_flatten, "
                        f"got {type(treedef).__name__}")
    return treedef.unflatten(leaves)


def tree_leaves(tree):
    """The leaves of ``tree``, as :func:`tree_flatten` orders them."""
    return tree_flatten(tree)[0]


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf by leaf: ``fn(leaf, *matching leaves of rest)``.

    Parameters
    ----------
    fn : callable
    tree : tree
        Gives the structure of the result.
    *rest : trees
        Each with ``tree``'s structure (dict key order may differ).

    Returns
    -------
    tree of ``fn``'s results, with ``tree``'s structure

    Raises
    ------
    ValueError
        When a tree of ``rest`` has another structure.

    Examples
    --------
    >>> tree_map(lambda x: x * 2, {"a": 1, "b": [2, 3]})
    {'a': 2, 'b': [4, 6]}
    """
    leaves, treedef = tree_flatten(tree)
    others = [treedef.flatten_up_to(r, f"tree_map: argument {i + 2}")
              for i, r in enumerate(rest)]
    return treedef.unflatten(fn(*args) for args in zip(leaves, *others))
