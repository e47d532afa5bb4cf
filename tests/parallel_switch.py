"""A test helper: force fancydl.parallel's threaded branch on small inputs."""

import contextlib

from fancydl import parallel


@contextlib.contextmanager
def threads(on=True):
    """With ``on``, every :func:`fancydl.parallel.halves` call of two items or more
    runs its second half on the worker thread (as large inputs do on two cores)."""
    saved = parallel.THREADED_SIZE, parallel.usable_cores
    if on:
        parallel.THREADED_SIZE, parallel.usable_cores = 1, lambda: 2
    try:
        yield
    finally:
        parallel.THREADED_SIZE, parallel.usable_cores = saved
