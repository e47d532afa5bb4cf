"""fancydl.data: mini-batches with a seeded shuffle, and the digits split."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fancydl.data import batches, load_digits


@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_batches_cover_each_example_once_and_stay_aligned(n, batch_size, shuffle,
                                                          drop_last, seed):
    x = np.arange(n * 6, dtype=np.float64).reshape(n, 2, 3)
    y = np.arange(n)
    rng = np.random.default_rng(seed) if shuffle else None
    out = list(batches(x, y, batch_size=batch_size, shuffle=shuffle, rng=rng,
                       drop_last=drop_last))
    sizes = [len(yb) for _, yb in out]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest and not drop_last else [])
    seen = np.concatenate([yb for _, yb in out]) if out else np.array([], int)
    for xb, yb in out:
        np.testing.assert_array_equal(xb, x[yb])          # aligned
    if drop_last:
        assert len(np.unique(seen)) == len(seen) == full * batch_size
    else:
        np.testing.assert_array_equal(np.sort(seen), y)    # each example once
    if not shuffle:
        np.testing.assert_array_equal(seen, y[:len(seen)])  # in order


@given(seed=st.integers(0, 2**32 - 1))
def test_shuffle_is_deterministic_given_the_generator(seed):
    x = np.arange(50)
    first = [b for (b,) in batches(x, batch_size=8, shuffle=True,
                                   rng=np.random.default_rng(seed))]
    again = [b for (b,) in batches(x, batch_size=8, shuffle=True,
                                   rng=np.random.default_rng(seed))]
    other = [b for (b,) in batches(x, batch_size=8, shuffle=True,
                                   rng=np.random.default_rng(seed + 1))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_epochs_differ_and_the_order_is_drawn_at_the_call():
    rng = np.random.default_rng(0)
    x = np.arange(20)
    epoch1 = batches(x, batch_size=20, shuffle=True, rng=rng)
    epoch2 = batches(x, batch_size=20, shuffle=True, rng=rng)
    (a,), (b,) = next(epoch1), next(epoch2)
    reference = np.random.default_rng(0)
    np.testing.assert_array_equal(a, reference.permutation(20))
    np.testing.assert_array_equal(b, reference.permutation(20))
    assert not np.array_equal(a, b)


def test_unshuffled_batches_are_views():
    x = np.zeros((6, 2))
    (xb,) = next(batches(x, batch_size=4))
    assert np.shares_memory(xb, x) and xb.shape == (4, 2)


@pytest.mark.parametrize("call, error, match", [
    (lambda: batches(batch_size=2), TypeError, "at least one array"),
    (lambda: batches(np.zeros(3), np.zeros(4), batch_size=2), ValueError,
     r"same length along axis 0, got lengths \[3, 4\]"),
    (lambda: batches([1, 2, 3], batch_size=2), TypeError,
     r"arrays\[0\] must be a numpy.ndarray.*got list"),
    (lambda: batches(np.array(1.0), batch_size=1), TypeError,
     r"at least one dimension, got shape \(\)"),
    (lambda: batches(np.zeros(3), batch_size=0), ValueError,
     "batch_size must be >= 1, got 0"),
    (lambda: batches(np.zeros(3), batch_size=2.0), TypeError, "batch_size must be an int"),
    (lambda: batches(np.zeros(3), batch_size=2, shuffle=True), TypeError,
     "shuffle=True needs rng, a numpy.random.Generator, got NoneType"),
    (lambda: batches(np.zeros(3), batch_size=2, shuffle=True, rng=0), TypeError,
     "got int"),
    (lambda: batches(np.zeros(3), batch_size=2, shuffle="yes"), TypeError, "shuffle must"),
    (lambda: batches(np.zeros(3), batch_size=2, drop_last=None), TypeError, "drop_last"),
])
def test_batches_bad_input_raises_at_the_call(call, error, match):
    with pytest.raises(error, match=match):
        call()   # not only at the first next()


# --- digits ------------------------------------------------------------------------------

def _sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_digits()


def _rows_sorted(images, labels):
    flat = np.concatenate([images.reshape(len(images), -1), labels[:, None]], axis=1)
    return flat[np.lexsort(flat.T[::-1])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_digits_split_is_a_partition_of_sklearns_digits(dtype):
    digits = _sklearn_digits()
    x_train, y_train, x_test, y_test = load_digits(dtype=dtype)
    assert x_train.shape[1:] == x_test.shape[1:] == (1, 8, 8)
    assert x_train.dtype == x_test.dtype == dtype
    assert y_train.dtype == y_test.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    together = _rows_sorted(np.concatenate([x_train, x_test]).astype(np.float64),
                            np.concatenate([y_train, y_test]))
    expected = _rows_sorted((digits.images / 16.0).astype(dtype).astype(np.float64),
                            digits.target)
    np.testing.assert_array_equal(together, expected)


@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.5])
def test_digits_split_is_stratified(test_size):
    digits = _sklearn_digits()
    _, y_train, _, y_test = load_digits(test_size=test_size)
    counts = np.bincount(digits.target, minlength=10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10),
                                  np.round(test_size * counts).astype(int))
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10)
                                  + np.bincount(y_test, minlength=10), counts)
    assert len(np.unique(y_train[:20])) > 3   # shuffled, not sorted by class


def test_digits_split_is_seeded():
    a, b, c = load_digits(), load_digits(), load_digits(seed=1)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.y_train, c.y_train)
    assert a.x_train.shape == c.x_train.shape


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(test_size=0.0), ValueError, r"test_size must be in \(0.0, 1.0\), got 0.0"),
    (dict(test_size=1.5), ValueError, "test_size"),
    (dict(test_size="0.2"), TypeError, "test_size must be a real number"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(seed=None), TypeError, "seed must be an int"),
    (dict(dtype=np.int64), TypeError, "dtype must be float32 or float64, got int64"),
])
def test_digits_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_digits(**kwargs)


def test_digits_without_sklearn_says_so(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match="load_digits needs scikit-learn.*pip install"):
        load_digits()


def test_docstring_examples_run():
    import doctest

    import fancydl.data

    _sklearn_digits()
    result = doctest.testmod(fancydl.data)
    assert result.failed == 0 and result.attempted > 5
