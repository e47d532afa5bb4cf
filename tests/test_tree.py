"""fancydl.tree: flatten, unflatten and map nested dicts, lists and tuples."""

import collections
import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fancydl
from fancydl.tree import TreeDef, tree_flatten, tree_leaves, tree_map, tree_unflatten

Point = collections.namedtuple("Point", "x y")

leaves = st.one_of(st.integers(), st.none(), st.text(max_size=3),
                   st.floats(allow_nan=False))
keys = st.text(min_size=1, max_size=3)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.lists(children, max_size=3).map(tuple),
                               st.dictionaries(keys, children, max_size=3),
                               st.tuples(children, children).map(lambda t: Point(*t))),
    max_leaves=12)


@given(trees)
def test_flatten_then_unflatten_gives_the_tree_back(tree):
    flat, treedef = tree_flatten(tree)
    rebuilt = tree_unflatten(treedef, flat)
    assert rebuilt == tree and type(rebuilt) is type(tree)
    assert treedef.num_leaves == len(flat) == len(tree_leaves(tree))
    assert tree_flatten(rebuilt)[1] == treedef


@given(trees)
def test_tree_map_applies_fn_to_every_leaf_in_order(tree):
    seen = []
    mapped = tree_map(lambda leaf: seen.append(leaf) or len(seen), tree)
    assert seen == tree_flatten(tree)[0]
    assert tree_flatten(mapped)[0] == list(range(1, len(seen) + 1))
    assert tree_flatten(mapped)[1] == tree_flatten(tree)[1]


def test_dict_keys_keep_their_insertion_order():
    flat, treedef = tree_flatten({"b": 1, "a": 2, "c": {"z": 3, "y": 4}})
    assert flat == [1, 2, 3, 4]
    assert list(tree_unflatten(treedef, flat)) == ["b", "a", "c"]


def test_none_and_arrays_are_leaves():
    w = np.ones(3)
    flat, treedef = tree_flatten({"w": w, "b": None, "layers": [np.zeros(2), (w,)]})
    assert len(flat) == 4 and flat[0] is w and flat[1] is None and flat[3] is w
    assert repr(treedef) == "TreeDef({'w': *, 'b': *, 'layers': [*, (*,)]})"


def test_namedtuples_are_rebuilt():
    tree = [Point(1, 2), Point(x=(3,), y={})]
    assert tree_map(lambda v: v * 10, tree) == [Point(10, 20), Point((30,), {})]


def test_tree_map_with_several_trees_matches_dict_keys_by_name():
    out = tree_map(lambda a, b: a - b, {"x": 5, "y": [7, 8]}, {"y": [1, 2], "x": 1})
    assert out == {"x": 4, "y": [6, 6]}


def test_tree_map_names_a_structure_mismatch():
    with pytest.raises(ValueError, match=r"argument 2\['y'\] must have the structure "
                                         r"\[\*, \*\], got a list of length 3"):
        tree_map(lambda a, b: a, {"x": 1, "y": [1, 2]}, {"x": 1, "y": [1, 2, 3]})
    with pytest.raises(ValueError, match="got a dict with keys \\['a'\\]"):
        tree_map(lambda a, b: a, {"x": 1}, {"a": 1})
    with pytest.raises(ValueError, match="got a leaf int"):
        tree_map(lambda a, b: a, (1, 2), 3)


def test_unflatten_checks_the_number_of_leaves():
    _, treedef = tree_flatten([1, 2])
    with pytest.raises(ValueError, match="has 2 leaves, got 3"):
        tree_unflatten(treedef, [1, 2, 3])
    with pytest.raises(TypeError, match="treedef must be a TreeDef"):
        tree_unflatten([1, 2], [1, 2])


def test_treedefs_compare_by_structure():
    assert tree_flatten([1, {"a": 2}])[1] == tree_flatten([5, {"a": 6}])[1]
    assert tree_flatten([1, 2])[1] != tree_flatten((1, 2))[1]
    assert isinstance(tree_flatten(3)[1], TreeDef)


def test_docstring_examples_run():
    assert doctest.testmod(fancydl.tree, raise_on_error=False).failed == 0
