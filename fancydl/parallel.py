"""Two halves of a batch, the second in a worker thread.

NumPy runs its elementwise loops and reductions on one core, but releases the GIL while
it does: splitting the work on the leading (batch) axis and running the second half in a
worker thread uses both cores of a small machine, as PyTorch's CPU kernels do.

Measured on two cores: batch_norm's training step at (32, 64, 32, 32) float32 takes 0.7
of its single-threaded time when the other core is free, 1.1 when it is busy.

A hand-off costs about 0.1 ms on the machine of ``benchmarks/RESULTS.md`` (an idle
core of that virtual machine sleeps, and takes about 60 microseconds to wake: the
worker's, and the caller's too when its half finishes first). So work of fewer than
:data:`THREADED_SIZE` values is not split at all: ``fn`` runs once, on the whole
arrays. Splitting it anyway, on the calling thread, doubled the NumPy calls of every
small operator: the LeNet training step of ``benchmarks/bench_training.py`` took
14-18% longer (three pairs of fresh processes). Above the threshold the split is always
the same (at n // 2), whatever the machine and whether or not the thread is used, so
results are deterministic: they depend on the size of the work, never on the machine.
On a machine with one usable core, and inside a half that already runs on the worker
(a nested call), the two halves run one after the other on the calling thread.

While the two halves run side by side, BLAS is limited to one thread (through
``threadpoolctl`` when it is installed; OpenBLAS's thread count is process-wide), so
that a matrix product in either half does not start a second set of threads that would
fight the halves for the same two cores. The libraries limited are those loaded when
fancydl first splits work (NumPy's BLAS, which is the one fancydl calls).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:  # optional: fancydl needs only NumPy
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    ThreadpoolController = None

__all__ = ["halves", "single_blas_thread", "THREADED_SIZE"]

#: Work of fewer values than this is not worth a thread hand-off: it runs whole.
#: Measured on the machine of ``benchmarks/RESULTS.md``, forward + backward of
#: (n, 64, 32, 32) float32, best of 7, threaded against whole: at 2**18 values
#: batch_norm (training) took 1.36-1.42 ms against 0.55, group_norm 0.86-1.01 against
#: 0.45, log_softmax 0.66-0.74 against 0.55, max_pool2d (3x3, stride 2) the same; at
#: 2**19 batch_norm still 1.39-1.82 against 0.77-0.89; at 2**20 max_pool2d gained
#: (3.3-4.8 ms against 5.9) and batch_norm still lost (2.0-2.3 against 1.5); at 2**21,
#: the size of the benchmarks' cases, the threads won or tied for all four. (It was
#: 2**18, set before the hand-off's cost was measured.)
THREADED_SIZE = 1 << 20

_lock = threading.Lock()   # guards the worker's creation and the BLAS limit's count
_worker = None             # the one worker thread (a ThreadPoolExecutor), made on demand
_on_worker = threading.local()
_blas = {"controller": None, "limiter": None, "users": 0}


def _reset_after_fork():
    """A forked child has no worker thread, and the lock may have been held at fork."""
    global _worker, _lock
    _worker, _lock = None, threading.Lock()
    _blas.update(limiter=None, users=0)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_after_fork)


def usable_cores():
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _mark_worker():
    _on_worker.active = True


def _get_worker():
    """The worker thread, created once even when several threads ask at the same time."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fancydl",
                                         initializer=_mark_worker)
        return _worker


class _OneBlasThread:
    """Context: BLAS runs one thread while at least one split is in flight (counted, so
    that concurrent callers restore the original limits only when the last one leaves)."""

    def __enter__(self):
        if ThreadpoolController is None:
            return self
        with _lock:
            if _blas["users"] == 0:
                if _blas["controller"] is None:  # after NumPy's BLAS is loaded
                    _blas["controller"] = ThreadpoolController()
                _blas["limiter"] = _blas["controller"].limit(limits=1, user_api="blas")
            _blas["users"] += 1
        return self

    def __exit__(self, *exc):
        if ThreadpoolController is None:
            return
        with _lock:
            _blas["users"] -= 1
            if _blas["users"] == 0 and _blas["limiter"] is not None:
                _blas["limiter"].restore_original_limits()
                _blas["limiter"] = None


def single_blas_thread():
    """Context manager: BLAS runs one thread inside it (a no-op without threadpoolctl).

    For many small matrix products, where OpenBLAS's own threads cost more than they
    save, especially on a loaded machine; :func:`halves` then supplies the second core.
    Nested and concurrent uses are counted: the original limits come back when the
    last one exits.
    """
    return _OneBlasThread()


def _with_errstate(fn, errors, errcall):
    """``fn`` run under the caller's floating-point error handling (``np.errstate`` is
    a context variable from NumPy 2.0 on, thread-local before: set it explicitly)."""
    def run(*args):
        with np.errstate(call=errcall, **errors):
            return fn(*args)
    return run


def _threaded():
    """Whether a split runs its second half on the worker: two cores or more, and not
    already on the worker (a nested call)."""
    return usable_cores() > 1 and not getattr(_on_worker, "active", False)


def halves(fn, *arrays, size=None):
    """``[fn(*half) for half in the two halves of arrays along axis 0]``, or
    ``[fn(*arrays)]`` for work too small to split.

    Parameters
    ----------
    fn : callable
        Called once per half with the halves of ``arrays`` (or once, with the whole
        arrays, for work too small to split); must not depend on which half runs
        first. It may itself call :func:`halves` (the nested call runs on
        the thread it is made from).
    *arrays : ndarray
        Split at ``n // 2`` along axis 0 (``n`` the largest leading size); an array of
        size 1 along axis 0 broadcasts: both halves get it whole.
    size : int, optional
        How many values the work touches, for the decision to split it (default: the
        size of the first array).

    Returns
    -------
    list
        ``fn``'s results, first half first; one result, of ``fn`` on the whole arrays,
        when ``n < 2`` or the work has fewer than :data:`THREADED_SIZE` values. The
        second half runs in a worker thread, with the caller's context variables and
        ``np.errstate`` and BLAS limited to one thread, on a machine with two usable
        cores or more.
    """
    n = max(a.shape[0] for a in arrays)
    if n < 2 or (arrays[0].size if size is None else size) < THREADED_SIZE:
        return [fn(*arrays)]
    parts = [[a if a.shape[0] == 1 else a[part] for a in arrays]
             for part in (slice(0, n // 2), slice(n // 2, n))]
    if not _threaded():
        return [fn(*p) for p in parts]
    worker = _get_worker()
    in_worker = _with_errstate(fn, np.geterr(), np.geterrcall())
    with _OneBlasThread():
        second = worker.submit(contextvars.copy_context().run, in_worker, *parts[1])
        try:
            first = fn(*parts[0])
        finally:
            concurrent.futures.wait([second])  # never leave the worker writing behind
        return [first, second.result()]
