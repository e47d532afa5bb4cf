"""Keep freed memory for the next step instead of handing it back to the system.

fancydl's kernels allocate buffers of a few megabytes (columns, stacked phases,
gradients) and free them at the end of every call. glibc's ``malloc`` serves a block
that large from its heap only while a threshold it adjusts by itself allows, and it
gives the top of the heap back to the system as soon as more than twice that
threshold is free there. The next call then gets fresh pages, and the kernel has to
map and zero every 4 KiB page on first touch: a page fault each. Whether a given step
crosses the line depends on the sizes of its buffers and on what ran before it, so
the same operator can be fast in one process and several times slower in the next.

Measured on the two-core machine of ``benchmarks/RESULTS.md`` (a page fault costs
about 2.3 µs there): allocating, filling and freeing 8 + 8 + 4 MiB of float32 arrays
takes 3.6 ms a step with glibc's defaults (about 1,500 page faults a step) and 0.5 ms
with the setting below (none); one conv_transpose2d training step went from 2,700
page faults to none.

:func:`keep_freed_memory` fixes both thresholds with ``mallopt``: blocks below
:data:`MMAP_THRESHOLD_BYTES` (glibc's own upper limit, 32 MiB) come from the heap,
and up to :data:`TRIM_THRESHOLD_BYTES` of free memory at its top stays mapped for
the next call. fancydl calls it once, when it is imported, on Linux with glibc
(elsewhere it does nothing); set the environment variable
``FANCYDL_KEEP_FREED_MEMORY=0`` (or ``false``, ``no``, ``off``) before importing
fancydl to keep glibc's defaults. The setting applies to the whole process, PyTorch
included if it runs there, as NumPy's own choice of huge pages does. Arrays above 32
MiB always get fresh pages (glibc maps them separately).

The price is resident memory: up to :data:`TRIM_THRESHOLD_BYTES` of freed memory per
malloc arena (the main thread's, and the worker thread's of
:mod:`fancydl.parallel`) stays with the process. A step that allocates and frees
5 × 24 MiB left the process at 153 MiB instead of 33 MiB.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES"]

#: Blocks at least this large get their own mapping (glibc's maximum for this setting).
MMAP_THRESHOLD_BYTES = 32 * 2**20

#: Free memory kept at the top of the heap before glibc returns it to the system.
TRIM_THRESHOLD_BYTES = 128 * 2**20

# mallopt's parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

_OFF = ("0", "false", "no", "off")

#: Whether :func:`keep_freed_memory` has set the thresholds in this process.
applied = False


def keep_freed_memory(environ=None):
    """Set glibc's trim and mmap thresholds (see the module's docstring).

    Parameters
    ----------
    environ : mapping, optional
        Where to read ``FANCYDL_KEEP_FREED_MEMORY`` (default ``os.environ``); ``0``,
        ``false``, ``no`` or ``off`` (any case) leaves glibc's defaults.

    Returns
    -------
    bool
        True when both thresholds were set; False when switched off, not running on
        glibc, or ``mallopt`` refused a value.
    """
    global applied
    environ = os.environ if environ is None else environ
    if environ.get("FANCYDL_KEEP_FREED_MEMORY", "1").strip().lower() in _OFF:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # The mmap threshold first: setting either one stops glibc's own adjustment.
    done = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
    applied = applied or done
    return done
