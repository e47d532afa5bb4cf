"""Checkers for the book's exercise cells.

Every exercise has a name ``"<chapter>.<exercise>"``; its definition lives in the
module ``fancydl.exercises.<chapter>``, registered with :func:`exercise`. A notebook
cell calls :func:`check` with the reader's answer, which is either a function (tested
on every case against the reference) or a value (compared with the reference value)::

    def stable_softmax(z):
        raise NotImplementedError  # your code here

    check("softmax.stable_softmax", stable_softmax)

prints one of three verdicts: not attempted yet (the stub is untouched), a pass, or
the first failing case with the input, the expected and the received value. Reference
solutions call ``check(..., must_pass=True)``, which raises unless the answer passes,
so that running the notebooks also tests the solutions.
"""

from __future__ import annotations

import copy
import importlib

import numpy as np

__all__ = ["exercise", "check", "verdict", "Exercise", "NOT_ATTEMPTED"]

NOT_ATTEMPTED = "not attempted yet"

_REGISTRY = {}


class Exercise:
    """One exercise: a reference and the cases to try an answer on.

    Parameters
    ----------
    name : str
        ``"<chapter>.<exercise>"``.
    reference : callable
        For a function exercise, the correct function; for a value exercise
        (``cases is None``), a function of no arguments returning the correct value.
    cases : list of tuple, optional
        Argument tuples for a function exercise.
    rtol, atol : float
        Tolerances of the comparison (``numpy.allclose``).
    """

    def __init__(self, name, reference, cases=None, rtol=1e-6, atol=1e-9):
        self.name, self.reference, self.cases = name, reference, cases
        self.rtol, self.atol = rtol, atol


def exercise(name, cases=None, rtol=1e-6, atol=1e-9):
    """Decorator registering its function as the reference of exercise ``name``."""
    def register(reference):
        _REGISTRY[name] = Exercise(name, reference, cases, rtol, atol)
        return reference
    return register


def _lookup(name):
    if name not in _REGISTRY and "." in name:
        chapter = name.split(".", 1)[0]
        try:
            importlib.import_module(f"{__name__}.{chapter}")
        except ModuleNotFoundError:
            pass
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none loaded"
        raise ValueError(f"check: no exercise named {name!r} (known: {known})")
    return _REGISTRY[name]


def _summary(value):
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=4, threshold=20, edgeitems=3)
        return f"array of shape {value.shape}: {text}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_summary(v) for v in value) + ")"
    return repr(value)


def _matches(got, expected, rtol, atol):
    if isinstance(expected, (tuple, list)):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(_matches(g, e, rtol, atol) for g, e in zip(got, expected)))
    if isinstance(expected, (np.ndarray, float, int, np.number)) and not isinstance(
            expected, bool):
        try:
            got_array = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        expected_array = np.asarray(expected, dtype=np.float64)
        return (got_array.shape == expected_array.shape
                and bool(np.allclose(got_array, expected_array, rtol=rtol, atol=atol,
                                     equal_nan=True)))
    return got == expected


def verdict(name, answer):
    """The verdict on ``answer`` without printing it.

    Returns
    -------
    status : str
        ``"pass"``, ``"fail"`` or ``"not attempted yet"``.
    message : str
        What was found: the failing case, or what to do next.
    """
    ex = _lookup(name)
    if answer is None or answer is Ellipsis:
        return NOT_ATTEMPTED, "replace the `...` with your answer"
    if ex.cases is None:
        expected = ex.reference()
        if _matches(answer, expected, ex.rtol, ex.atol):
            return "pass", "correct"
        return "fail", f"expected {_summary(expected)}, got {_summary(answer)}"
    if not callable(answer):
        return "fail", f"expected a function, got {type(answer).__name__}"
    for number, args in enumerate(ex.cases, start=1):
        expected = ex.reference(*copy.deepcopy(args))
        try:
            got = answer(*copy.deepcopy(args))
        except NotImplementedError:
            return NOT_ATTEMPTED, "replace the `raise NotImplementedError` with your code"
        except Exception as error:  # the reader's code: report, never crash the notebook
            return "fail", (f"case {number} raised {type(error).__name__}: {error}\n"
                            f"  input: {_summary(args)}")
        if not _matches(got, expected, ex.rtol, ex.atol):
            return "fail", (f"case {number} of {len(ex.cases)} differs\n"
                            f"  input:    {_summary(args)}\n"
                            f"  expected: {_summary(expected)}\n"
                            f"  got:      {_summary(got)}")
    return "pass", f"all {len(ex.cases)} cases agree with the reference"


def check(name, answer, must_pass=False):
    """Check the reader's ``answer`` to exercise ``name`` and print the verdict.

    Parameters
    ----------
    name : str
        ``"<chapter>.<exercise>"``.
    answer : callable or value
        The reader's function or value; ``...`` or a function that raises
        ``NotImplementedError`` counts as not attempted.
    must_pass : bool
        Raise ``AssertionError`` unless the answer passes (for reference solutions).

    Raises
    ------
    AssertionError
        With ``must_pass=True``, when the answer does not pass.
    """
    status, message = verdict(name, answer)
    mark = {"pass": "✓ correct", "fail": "✗ not yet right"}.get(status, "… not attempted yet")
    print(f"{mark} [{name}]: {message}")
    if must_pass and status != "pass":
        raise AssertionError(f"reference solution of {name} does not pass: {message}")
