"""Tests of fancydl.parallel.halves: results, threading, nesting, BLAS limit, errstate."""

import threading

import numpy as np
import pytest

from fancydl import parallel
from fancydl.parallel import THREADED_SIZE, halves

BIG = (4, THREADED_SIZE // 4)  # exactly THREADED_SIZE values: the threaded branch


def _thread_names(*arrays):
    """halves() of a function that reports which thread ran each half."""
    return halves(lambda *half: threading.current_thread().name, *arrays)


def _within(seconds, fn):
    """Run fn in a daemon thread; fail (instead of hanging) if it does not finish."""
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    runner.start()
    runner.join(seconds)
    assert not runner.is_alive(), f"did not finish within {seconds} s (deadlock?)"
    return result["value"]


def test_halves_split_at_n_over_2_and_broadcast_size_one():
    a, b = np.arange(5.0)[:, None], np.ones((1, 1))
    parts = halves(lambda x, y: (x.ravel().tolist(), y.shape), a, b, size=THREADED_SIZE)
    assert parts == [([0.0, 1.0], (1, 1)), ([2.0, 3.0, 4.0], (1, 1))]
    assert halves(lambda x: x.shape, np.ones((1, 3)), size=THREADED_SIZE) == [(1, 3)]


@pytest.mark.parametrize("cores", [1, 2])
def test_work_below_the_threshold_runs_once_on_the_whole_arrays(monkeypatch, cores):
    """No split (one call, so half the NumPy calls of a split) below THREADED_SIZE
    values, whatever the machine; at the threshold, two halves on any machine."""
    monkeypatch.setattr(parallel, "usable_cores", lambda: cores)
    a, b = np.arange(5.0)[:, None], np.ones((1, 1))
    calls = []

    def record(x, y):
        calls.append((x.shape, y.shape, threading.current_thread().name))
        return x.sum()

    main = threading.current_thread().name
    assert halves(record, a, b) == [10.0]
    assert calls == [((5, 1), (1, 1), main)]
    assert halves(record, a, b, size=THREADED_SIZE - 1) == [10.0]
    assert len(calls) == 2
    assert halves(record, a, b, size=THREADED_SIZE) == [1.0, 9.0]
    assert [shape for shape, _, _ in calls[2:]] == [(2, 1), (3, 1)]


def test_large_arrays_run_the_second_half_on_the_worker(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    first, second = _thread_names(np.zeros(BIG))
    assert first == threading.current_thread().name
    assert second.startswith("fancydl")
    small = _thread_names(np.zeros((4, 8)))
    assert small == [threading.current_thread().name]  # not split at all


def test_size_decides_the_thread_for_work_larger_than_the_first_array(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    order = np.arange(4)
    assert _thread_names(order) == [threading.current_thread().name]
    first, second = halves(lambda half: threading.current_thread().name, order,
                           size=THREADED_SIZE)
    assert second.startswith("fancydl") and not first.startswith("fancydl")


def test_single_core_runs_inline(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 1)
    assert _thread_names(np.zeros(BIG)) == [threading.current_thread().name] * 2


def test_nested_halves_do_not_deadlock(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    x = np.arange(np.prod((8,) + BIG[1:]), dtype=float).reshape((8,) + BIG[1:])

    def inner(half):
        return float(half.sum())

    def outer(half):
        return sum(halves(inner, np.repeat(half, 2, axis=0)))

    total = _within(20, lambda: sum(halves(outer, x)))
    assert total == 2 * x.sum()


def test_concurrent_callers_share_one_worker_without_deadlock(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    monkeypatch.setattr(parallel, "_worker", None)
    x = np.ones(BIG)
    results, barrier = [], threading.Barrier(4)

    def call():
        barrier.wait()
        results.append(sum(halves(lambda h: float(h.sum()), x)))

    def run_all():
        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    assert _within(30, run_all) == [x.sum()] * 4
    workers = [t for t in threading.enumerate() if t.name.startswith("fancydl")]
    assert len({t.name for t in workers}) <= 2  # one live worker (plus an old one)


def test_errstate_reaches_the_worker(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    x = np.zeros(BIG)
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        halves(lambda h: np.ones_like(h) / h, x)
    with np.errstate(divide="ignore"):
        assert [np.isinf(r).all() for r in halves(lambda h: np.ones_like(h) / h, x)] \
            == [True, True]


def test_blas_is_limited_to_one_thread_while_halves_run(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)

    def blas_threads(half):
        # NumPy's BLAS (SciPy, if imported, brings its own, which fancydl does not call)
        info = threadpoolctl.threadpool_info()
        return [lib["num_threads"] for lib in info
                if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]

    before = blas_threads(None)
    assert before  # NumPy's BLAS is seen
    during = halves(blas_threads, np.zeros(BIG))
    assert during == [[1] * len(before)] * 2
    assert blas_threads(None) == before  # restored afterwards


def test_without_threadpoolctl_halves_still_work(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    monkeypatch.setattr(parallel, "ThreadpoolController", None)
    x = np.arange(float(np.prod(BIG))).reshape(BIG)
    assert sum(halves(lambda h: float(h.sum()), x)) == x.sum()


def test_an_error_in_either_half_propagates_after_both_finish(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    x = np.zeros(BIG)
    finished = []

    def fail_first(half):
        if threading.current_thread().name.startswith("fancydl"):
            finished.append(True)
            return 0
        raise RuntimeError("first half")

    with pytest.raises(RuntimeError, match="first half"):
        halves(fail_first, x)
    assert finished == [True]

    def fail_second(half):
        if threading.current_thread().name.startswith("fancydl"):
            raise RuntimeError("second half")
        return 0

    with pytest.raises(RuntimeError, match="second half"):
        halves(fail_second, x)
    # the BLAS limit's count went back to zero after the errors
    assert parallel._blas["users"] == 0
