"""fancydl.allocator: freed buffers stay mapped, so the next step does not page-fault."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from fancydl import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Three buffers allocated, filled and freed per step, as a kernel's workspace is: with
# glibc's defaults the top of the heap goes back to the system after each step.
_STEPS = textwrap.dedent("""
    import resource
    import fancydl, numpy as np
    def step():
        buffers = [np.ones(n, np.float32) for n in (2 << 20, 2 << 20, 1 << 20)]
        del buffers
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
""")


def _faults_per_step(setting):
    env = dict(os.environ, FANCYDL_KEEP_FREED_MEMORY=setting)
    run = subprocess.run([sys.executable, "-c", _STEPS], env=env, capture_output=True,
                         text=True, check=True)
    return float(run.stdout)


@pytest.mark.parametrize("value", ["0", "false", "No", " OFF "])
def test_switched_off_by_the_environment(value):
    assert allocator.keep_freed_memory({"FANCYDL_KEEP_FREED_MEMORY": value}) is False


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's mallopt")
def test_applies_on_glibc():
    assert allocator.keep_freed_memory({}) is True


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's mallopt")
def test_freed_buffers_are_reused_without_page_faults():
    """About 1,500 page faults a step (20 MiB of fresh pages; 5,000 without NumPy's
    huge pages) with glibc's defaults; none once fancydl is imported."""
    assert _faults_per_step("0") > 500
    assert _faults_per_step("1") < 50
