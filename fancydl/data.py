"""Datasets and mini-batches: what a training loop needs, and nothing is downloaded.

- :func:`batches` cuts aligned arrays into mini-batches, optionally in a seeded random
  order (the role of ``torch.utils.data.DataLoader(..., shuffle=True)``).
- :func:`load_digits` returns scikit-learn's bundled 8x8 handwritten digits (1797
  images, shipped inside scikit-learn) as NCHW images with a fixed, stratified
  train/test split.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .validation import check_float_dtype, check_int, check_real

__all__ = ["batches", "load_digits", "Split"]


def batches(*arrays, batch_size, shuffle=False, rng=None, drop_last=False):
    """Mini-batches of aligned arrays, in order or in a seeded random order.

    Every array is cut along its first axis with the same indices, so the i-th
    example of each array stays together. The order is drawn once, when
    ``batches`` is called (one epoch); call it again for the next epoch's order.

    Parameters
    ----------
    *arrays : ndarray
        One or more arrays with the same length N along axis 0 (e.g. images
        (N, C, H, W) and labels (N,)).
    batch_size : int
        Examples per batch, >= 1 (keyword-only).
    shuffle : bool, default False
        Visit the examples in a random permutation drawn from ``rng``.
    rng : numpy.random.Generator, optional
        Required when ``shuffle=True``; the order is a function of its state only.
    drop_last : bool, default False
        Drop the last batch when it is smaller than ``batch_size``.

    Returns
    -------
    iterator of tuple of ndarray
        One tuple per batch, one entry per array, each of length ``batch_size``
        (the last may be shorter unless ``drop_last``). Without shuffle the entries
        are views (basic slices); with shuffle they are copies.

    Raises
    ------
    TypeError, ValueError
        No array, arrays of different lengths, a bad ``batch_size``, or
        ``shuffle=True`` without a Generator; raised at the call, not at the first batch.

    Examples
    --------
    >>> import numpy as np
    >>> from fancydl.data import batches
    >>> x, y = np.arange(10).reshape(5, 2), np.arange(5)
    >>> [yb.tolist() for xb, yb in batches(x, y, batch_size=2)]
    [[0, 1], [2, 3], [4]]
    >>> rng = np.random.default_rng(0)
    >>> [yb.tolist() for xb, yb in batches(x, y, batch_size=2, shuffle=True, rng=rng,
    ...                                    drop_last=True)]
    [[2, 4], [3, 0]]
    """
    op = "batches"
    if not arrays:
        raise TypeError(f"{op}: needs at least one array, got none")
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            got = f"shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"{op}: arrays[{i}] must be a numpy.ndarray with at least "
                            f"one dimension, got {got}")
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"{op}: every array must have the same length along axis 0, "
                         f"got lengths {lengths}")
    batch_size = check_int(op, "batch_size", batch_size, minimum=1)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"{op}: shuffle must be a bool, got {type(shuffle).__name__}")
    if not isinstance(drop_last, (bool, np.bool_)):
        raise TypeError(f"{op}: drop_last must be a bool, got {type(drop_last).__name__}")
    if shuffle and not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: shuffle=True needs rng, a numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    n = lengths[0]
    order = rng.permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    return _iterate(arrays, order, batch_size, stop)


def _iterate(arrays, order, batch_size, stop):
    for start in range(0, stop, batch_size):
        index = (slice(start, start + batch_size) if order is None
                 else order[start:start + batch_size])
        yield tuple(a[index] for a in arrays)


class Split(NamedTuple):
    """A train/test split: ``x_train, y_train, x_test, y_test = split``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(*, test_size=0.25, seed=0, dtype=np.float64):
    """scikit-learn's 8x8 handwritten digits as NCHW images, split train/test.

    The 1797 grey-level images (values 0..16 in the original, from the UCI "optical
    recognition of handwritten digits" set) are scaled to [0, 1] by dividing by 16.

    **The split** is stratified and seeded: for each class c with n_c images,
    ``round(test_size * n_c)`` of them, chosen by a permutation drawn from
    ``numpy.random.default_rng(seed)``, go to the test set. Each class therefore has
    the same share in both sets. Both sets are then shuffled (seeded as well), so
    consecutive examples are not sorted by class. The same arguments always give the
    same split; with the defaults the test set has 450 images and the training set 1347.

    Parameters
    ----------
    test_size : float, default 0.25
        Fraction of each class held out, in (0, 1).
    seed : int, default 0
        Seed of the split; the split is a pure function of it.
    dtype : float32 or float64, default float64
        dtype of the images.

    Returns
    -------
    Split
        ``(x_train, y_train, x_test, y_test)``: images (N, 1, 8, 8) of ``dtype`` in
        [0, 1] and labels (N,) int64 in 0..9.

    Raises
    ------
    ImportError
        scikit-learn is not installed (it is an optional dependency of fancydl).

    Examples
    --------
    >>> from fancydl.data import load_digits
    >>> x_train, y_train, x_test, y_test = load_digits()
    >>> x_train.shape, x_test.shape, y_train.dtype
    ((1347, 1, 8, 8), (450, 1, 8, 8), dtype('int64'))
    """
    op = "load_digits"
    test_size = check_real(op, "test_size", test_size, minimum=0.0, maximum=1.0,
                           inclusive=False)
    seed = check_int(op, "seed", seed, minimum=0)
    dtype = check_float_dtype(op, dtype)
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError(f"{op} needs scikit-learn, which ships the digits "
                          "(nothing is downloaded): pip install scikit-learn") from error

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(dtype)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    train, test = _stratified_split(labels, test_size, np.random.default_rng(seed))
    return Split(images[train], labels[train], images[test], labels[test])


def _stratified_split(labels, test_size, rng):
    """Indices (train, test), each class split in proportion, both in random order."""
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_size * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
