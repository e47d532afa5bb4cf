"""Time fancydl against PyTorch, each side in a fresh Python process.

A benchmark module ``benchmarks/bench_<topic>.py`` defines ``CASES``, a list of
:class:`Case`. For each case, each side runs in its own subprocesses (in one process,
PyTorch's CPU kernels were measured up to 17x slower right after heavy NumPy work), a
few of them (:data:`PROCESSES`): in each, the setup code runs once, the statement runs
untimed for :data:`WARMUP_SECONDS`, then it is timed with ``timeit`` over several
repeats. The ratio is fancydl's best time over the baseline's best time; the median
of all the repeats is kept too, as a measure of the noise, and so is the largest peak
resident memory (setup included). :func:`environment` records what the numbers
depend on: CPU, cores, NumPy and its BLAS, PyTorch and its threads, the load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import textwrap

_TIMER = textwrap.dedent("""
    import json, resource, statistics, time, timeit
    {setup}
    timer = timeit.Timer({stmt!r}, globals=globals())
    warm_until = time.perf_counter() + {warmup}
    while time.perf_counter() < warm_until:
        timer.timeit(1)
    number, _ = timer.autorange()
    number = max(1, number // 4)
    times = [t / number for t in timer.repeat(repeat={repeat}, number=number)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"best": min(times), "median": statistics.median(times),
                      "times": times, "peak_mb": peak_mb}}))
""")

_ENVIRONMENT = textwrap.dedent("""
    import json, os, platform
    import numpy, threadpoolctl
    info = {"python": platform.python_version(), "machine": platform.machine(),
            "numpy": numpy.__version__,
            "blas": [{k: lib.get(k) for k in ("internal_api", "version", "num_threads",
                                               "threading_layer", "architecture")}
                     for lib in threadpoolctl.threadpool_info()
                     if lib.get("user_api") == "blas"]}
    import fancydl.parallel
    import fancydl.allocator
    info["fancydl_memory"] = {"kept": fancydl.allocator.applied,
                              "mmap_mib": fancydl.allocator.MMAP_THRESHOLD_BYTES >> 20,
                              "trim_mib": fancydl.allocator.TRIM_THRESHOLD_BYTES >> 20}
    info["fancydl_threads"] = {"usable_cores": fancydl.parallel.usable_cores(),
                               "threaded_size": fancydl.parallel.THREADED_SIZE}
    try:
        import torch
    except ImportError:
        info["torch"] = None
    else:
        info["torch"] = {"version": torch.__version__,
                         "num_threads": torch.get_num_threads(),
                         "num_interop_threads": torch.get_num_interop_threads()}
    print(json.dumps(info))
""")

#: Environment variables that change thread counts, reported when set.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


@dataclasses.dataclass
class Case:
    """One measurement: the same work in fancydl and in PyTorch.

    Attributes
    ----------
    name : str
        What is measured, with its shapes.
    target : float or None
        The largest acceptable ratio fancydl / PyTorch (None: reported only).
    fancydl_setup, fancydl_stmt : str
        Code run once, and the timed statement, on the fancydl side.
    torch_setup, torch_stmt : str
        The same on the PyTorch side.
    baseline : str
        What the other side is (e.g. "torch" or "scikit-image").
    subject : str
        What the measured side is: "fancydl", except in the cases that compare two
        ways within one library (it still runs from ``fancydl_setup``/``fancydl_stmt``).
    """

    name: str
    target: float | None
    fancydl_setup: str
    fancydl_stmt: str
    torch_setup: str
    torch_stmt: str
    baseline: str = "torch"
    subject: str = "fancydl"


def _run(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


#: Seconds each side runs its statement, untimed, before the timing starts: the
#: first calls of a step include one-time costs (the allocator growing its heap, pages
#: touched for the first time, caches and thread pools warming up). Measured on the
#: conv_transpose2d training step: its first 20 calls averaged 5.3-5.9 ms, the
#: following ones 4.6-5.1 ms.
WARMUP_SECONDS = 1.0


def time_fresh(setup, stmt, repeat=5):
    """Time ``stmt`` in a fresh interpreter after running ``setup`` once, then the
    statement for :data:`WARMUP_SECONDS` untimed.

    Returns
    -------
    dict
        ``best`` and ``median`` seconds per call over ``repeat`` repeats, and
        ``peak_mb``, the process's peak resident memory in MiB.
    """
    return _run(_TIMER.format(setup=textwrap.dedent(setup), stmt=stmt, repeat=repeat,
                              warmup=WARMUP_SECONDS))


#: Fresh processes per side and case. The best time of the same statement can differ
#: several-fold from one fresh process to the next: PyTorch's depthwise conv2d forward
#: and backward took 3.6, 7.3 and 13.6 ms in three runs of ``make bench`` on one quiet
#: machine (fancydl's 11.2-12.1 ms), so a single process per side made the ratio a draw.
PROCESSES = 3


def _best_of_processes(setup, stmt, repeat, processes):
    """:func:`time_fresh` in ``processes`` fresh processes: the best time of all, the
    median of all the repeats, the largest peak memory."""
    runs = [time_fresh(setup, stmt, repeat) for _ in range(processes)]
    times = [t for run in runs for t in run["times"]]
    return {"best": min(times), "median": statistics.median(times),
            "peak_mb": max(run["peak_mb"] for run in runs)}


def measure(case, repeat=5, processes=PROCESSES):
    """Time both sides of ``case``, each in ``processes`` fresh processes.

    Returns
    -------
    dict
        name, times in ms (the best of all the repeats, and their median), peak memory
        in MiB, the ratio of the best times, the target and whether it is met (None:
        no target).
    """
    ours = _best_of_processes(case.fancydl_setup, case.fancydl_stmt, repeat, processes)
    theirs = _best_of_processes(case.torch_setup, case.torch_stmt, repeat, processes)
    ratio = ours["best"] / theirs["best"]
    met = None if case.target is None else ratio <= case.target
    return {"name": case.name, "subject": case.subject, "baseline": case.baseline,
            "fancydl_ms": ours["best"] * 1e3, "fancydl_median_ms": ours["median"] * 1e3,
            "baseline_ms": theirs["best"] * 1e3,
            "baseline_median_ms": theirs["median"] * 1e3,
            "fancydl_peak_mb": ours["peak_mb"], "baseline_peak_mb": theirs["peak_mb"],
            "ratio": ratio, "target": case.target, "met": met}


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"


def environment():
    """What the timings depend on, measured in a fresh interpreter (as the cases are).

    Returns
    -------
    dict
        cpu model, logical cores (and those this process may use), Python, NumPy and
        its BLAS libraries (threadpoolctl: library, version, threads), fancydl's own
        threading, PyTorch's version and thread counts, thread-count environment
        variables, the load average.
    """
    info = _run(_ENVIRONMENT)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info.update(cpu=_cpu_model(), cores=os.cpu_count(), usable_cores=usable,
                thread_variables={v: os.environ[v] for v in THREAD_VARIABLES
                                  if v in os.environ},
                load=os.getloadavg() if hasattr(os, "getloadavg") else None)
    return info


def describe(info):
    """:func:`environment`'s dict as Markdown lines."""
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['threading_layer']}, "
                     f"{b['architecture']}, {b['num_threads']} threads)"
                     for b in info["blas"]) or "none found"
    torch = info["torch"]
    torch_line = ("not installed" if torch is None else
                  f"{torch['version']}, {torch['num_threads']} intra-op threads, "
                  f"{torch['num_interop_threads']} inter-op threads")
    variables = ", ".join(f"{k}={v}" for k, v in info["thread_variables"].items()) or \
        "none set"
    load = "unknown" if info["load"] is None else \
        ", ".join(f"{x:.2f}" for x in info["load"])
    memory = info["fancydl_memory"]
    kept = (f"glibc keeps freed blocks below {memory['mmap_mib']} MiB for reuse, up to "
            f"{memory['trim_mib']} MiB (fancydl.allocator)" if memory["kept"]
            else "the allocator's defaults (fancydl.allocator not applied)")
    ours = info["fancydl_threads"]
    halves = ("the two halves of large arrays on two threads" if ours["usable_cores"] > 1
              else "one thread")
    return [f"- CPU: {info['cpu']} ({info['machine']}), {info['cores']} logical cores, "
            f"{info['usable_cores']} usable",
            f"- Python {info['python']}; NumPy {info['numpy']}; BLAS: {blas}",
            f"- fancydl: {halves} (fancydl.parallel, arrays of at least "
            f"{ours['threaded_size']} values)",
            f"- fancydl memory: {kept}",
            f"- PyTorch: {torch_line}",
            f"- Thread environment variables: {variables}",
            f"- Load average (1, 5, 15 min) when the run started: {load}"]
