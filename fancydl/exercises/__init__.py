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
import sys
import textwrap
import warnings

import numpy as np

__all__ = ["exercise", "check", "verdict", "Exercise", "ForbiddenCall", "NOT_ATTEMPTED"]

NOT_ATTEMPTED = "not attempted yet"

_REGISTRY = {}

#: What "without autodiff" forbids: fancydl's and PyTorch's automatic gradients.
AUTODIFF = ("fancydl.vjp", "fancydl.grad", "fancydl.value_and_grad",
            "fancydl.autodiff.vjp", "fancydl.autodiff.grad",
            "fancydl.autodiff.value_and_grad", "torch.autograd.grad",
            "torch.autograd.backward", "torch.Tensor.backward")


class ForbiddenCall(Exception):
    """Raised by a function an exercise asks not to use, while its checker runs."""


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
        Tolerances of the comparison of floats (``numpy.allclose``); integers
        (Python or NumPy integers in the reference) are compared exactly.
    forbid : sequence of str
        Dotted names (``"fancydl.conv2d"``, ``"numpy.convolve"``,
        ``"torch.Tensor.backward"``) the exercise says not to use: while the answer
        runs, each is replaced by a stub raising :class:`ForbiddenCall`.
    require : sequence of str or tuple of str
        Dotted names the exercise says to use; a tuple means "one of these". Each
        case fails unless the answer called it.
    calls : callable, optional
        ``calls(recorded, args)`` inspects the recorded calls of the required
        functions (a dict from dotted name to a list of ``(args, kwargs)``) for the
        case ``args`` and returns a message if they break the exercise's rule.
    """

    def __init__(self, name, reference, cases=None, rtol=1e-6, atol=1e-9, forbid=(),
                 require=(), calls=None):
        self.name, self.reference, self.cases = name, reference, cases
        self.rtol, self.atol = rtol, atol
        self.forbid, self.calls = tuple(forbid), calls
        self.require = tuple((r,) if isinstance(r, str) else tuple(r) for r in require)


def exercise(name, cases=None, rtol=1e-6, atol=1e-9, forbid=(), require=(), calls=None):
    """Decorator registering its function as the reference of exercise ``name``."""
    def register(reference):
        _REGISTRY[name] = Exercise(name, reference, cases, rtol, atol, forbid, require,
                                   calls)
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
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_summary(v)}" for k, v in value.items()) + "}"
    return repr(value)


# --- comparing an answer with the reference ------------------------------------------

def _is_number(value):
    return isinstance(value, (int, float, np.number)) and not isinstance(
        value, (bool, np.bool_))


def _numeric_array(value):
    """``value`` as a numeric array, or None for nested sequences of other things."""
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind in "iufc" else None
    if _is_number(value):
        return np.asarray(value)
    if isinstance(value, (tuple, list)):
        try:
            array = np.asarray(value)
        except ValueError:  # ragged
            return None
        return array if array.dtype.kind in "iufc" else None
    return None


def _type_name(value):
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:60]


def _compare_numbers(got, expected, rtol, atol):
    """Why ``got`` differs from the numeric scalar or array ``expected``, or None."""
    want = np.asarray(expected)
    scalar = want.ndim == 0
    if got is None:
        return "the answer is None: did the function forget to `return`?"
    if isinstance(got, (str, bytes)):
        return (f"expected a number, got the string {got!r}: return the number "
                "itself, not its text")
    if isinstance(got, (bool, np.bool_)):
        return f"expected a number, got the bool {got!r}"
    try:
        array = np.asarray(got)
    except ValueError:  # ragged nested lists
        return f"expected {'a number' if scalar else 'an array'}, got {_type_name(got)}"
    if array.dtype.kind not in "iufc":
        what = "booleans" if array.dtype.kind == "b" else _type_name(got)
        return f"expected {'a number' if scalar else 'numbers'}, got {what}"
    if array.shape != want.shape:
        if scalar:
            return f"expected a single number, got an array of shape {array.shape}"
        return f"expected shape {want.shape}, got shape {array.shape}"
    if array.dtype.kind == "c" and want.dtype.kind != "c":
        return ("expected real numbers, got complex ones: take the real part "
                "(.real) once the imaginary part is only rounding error")
    if want.dtype.kind in "iu":
        if array.dtype.kind not in "iu":
            return (f"expected {'an integer' if scalar else 'integers'}, got "
                    f"{'a float' if scalar else 'floats'} (a count or a size is an "
                    "integer: use // and int())")
        return None if np.array_equal(array, want) else ""
    close = np.allclose(array.astype(np.complex128 if array.dtype.kind == "c" else
                                     np.float64), want, rtol=rtol, atol=atol,
                        equal_nan=True)
    return None if close else ""


def _compare(got, expected, rtol, atol):
    """Why ``got`` does not match ``expected``: None if it does, "" when only the
    values differ, otherwise a sentence about the type or the shape."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected a dict, got {_type_name(got)}"
        if set(got) != set(expected):
            return f"expected the keys {sorted(expected)}, got {sorted(got)}"
        for key in expected:
            reason = _compare(got[key], expected[key], rtol, atol)
            if reason is not None:
                return f"[{key!r}]: {reason}" if reason else reason
        return None
    if isinstance(expected, (tuple, list)):
        if isinstance(got, (tuple, list)):
            if len(got) != len(expected):
                return f"expected {len(expected)} items, got {len(got)}"
            for index, (g, e) in enumerate(zip(got, expected)):
                reason = _compare(g, e, rtol, atol)
                if reason is not None:
                    return f"item {index}: {reason}" if reason else reason
            return None
        as_array = _numeric_array(expected)
        if as_array is not None and isinstance(got, np.ndarray):
            return _compare_numbers(got, as_array, rtol, atol)  # array-likes are fine
        return f"expected a tuple of {len(expected)} items, got {_type_name(got)}"
    if isinstance(expected, np.ndarray) or _is_number(expected):
        return _compare_numbers(got, expected, rtol, atol)
    if isinstance(got, np.ndarray):
        return f"expected {_type_name(expected)}, got {_type_name(got)}"
    return None if got == expected else ""


def _matches(got, expected, rtol, atol):
    return _compare(got, expected, rtol, atol) is None


# --- what the exercise allows: forbidden and required functions ----------------------

def _resolve(path):
    """``(owner, attribute, value)`` for a dotted name, or None if its top module is
    not imported (an answer cannot use a library it has not imported)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        if module_name in sys.modules or module_name.split(".")[0] in ("numpy",
                                                                        "fancydl"):
            try:
                owner = importlib.import_module(module_name)
            except ImportError:
                continue
            try:
                for part in parts[cut:-1]:
                    owner = getattr(owner, part)
                return owner, parts[-1], getattr(owner, parts[-1])
            except AttributeError:
                return None
    return None


_INHERITED = object()  # an attribute a class got from its base


def _short(path):
    return path.replace("numpy.", "np.", 1) if path.startswith("numpy.") else path


class _Restrictions:
    """Context manager replacing forbidden functions by stubs and wrapping required
    ones in call recorders, where the answer can reach them: the module attribute
    and any global name of the answer bound to the same object."""

    def __init__(self, ex, answer):
        self.ex, self.answer = ex, answer
        self.recorded = {}
        self._undo = []

    def _replace(self, path, make):
        found = _resolve(path)
        if found is None:
            return
        owner, attribute, original = found
        replacement = make(original)
        targets = [(owner, attribute)]
        namespace = getattr(self.answer, "__globals__", {})
        targets += [(namespace, key) for key, value in list(namespace.items())
                    if value is original]
        for target, key in targets:
            if isinstance(target, dict):
                self._undo.append((target, key, target[key]))
                target[key] = replacement
            else:
                own = vars(target).get(key, _INHERITED)
                self._undo.append((target, key, own))
                setattr(target, key, replacement)

    def __enter__(self):
        try:
            for path in self.ex.forbid:
                self._replace(path, lambda original, path=path: _stub(path))
            for group in self.ex.require:
                for path in group:
                    self.recorded[path] = []
                    self._replace(path, lambda original, path=path: _spy(
                        original, self.recorded[path]))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        while self._undo:
            target, key, original = self._undo.pop()
            if isinstance(target, dict):
                target[key] = original
            elif original is _INHERITED:
                delattr(target, key)
            else:
                setattr(target, key, original)
        return False

    def reset(self):
        for calls in self.recorded.values():
            calls.clear()

    def missing(self):
        """The first required group the answer did not call, as text, or None."""
        for group in self.ex.require:
            if not any(self.recorded.get(path) for path in group):
                return " or ".join(f"`{_short(p)}`" for p in group)
        return None


def _stub(path):
    def forbidden(*args, **kwargs):
        raise ForbiddenCall(f"this exercise asks you not to use `{_short(path)}`")
    forbidden.__name__ = path.rsplit(".", 1)[-1]
    return forbidden


def _spy(original, calls):
    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)
    recorded.__name__ = getattr(original, "__name__", "recorded")
    recorded.__doc__ = getattr(original, "__doc__", None)
    return recorded


def _not_attempted_function():
    return NOT_ATTEMPTED, "replace the `raise NotImplementedError` with your code"


def _check_function(ex, answer):
    expected = [ex.reference(*copy.deepcopy(args)) for args in ex.cases]
    total = len(ex.cases)
    with _Restrictions(ex, answer) as rules:
        for number, (args, want) in enumerate(zip(ex.cases, expected), start=1):
            rules.reset()
            try:
                with warnings.catch_warnings(record=True) as warned:
                    warnings.simplefilter("always")
                    got = answer(*copy.deepcopy(args))
            except NotImplementedError:
                return _not_attempted_function()
            except ForbiddenCall as error:
                return "fail", f"case {number}: {error}"
            except Exception as error:  # the reader's code: report, never crash
                return "fail", (f"case {number} raised {type(error).__name__}: "
                                f"{error}\n  input: {_summary(args)}")
            if got is Ellipsis:
                return _not_attempted_function()
            missing = rules.missing()
            if missing is not None:
                return "fail", (f"case {number}: this exercise asks you to use "
                                f"{missing}, and the answer did not call it")
            rule = ex.calls(rules.recorded, args) if ex.calls else None
            if rule:
                return "fail", f"case {number}: {rule}"
            reason = _compare(got, want, ex.rtol, ex.atol)
            if reason is not None:
                why = f"\n  why:      {reason}" if reason else ""
                if warned:  # e.g. NumPy's overflow in exp: the likely cause
                    why += f"\n  warning:  {warned[0].message}"
                return "fail", (f"case {number} of {total} differs\n"
                                f"  input:    {_summary(args)}\n"
                                f"  expected: {_summary(want)}\n"
                                f"  got:      {_summary(got)}{why}")
    return "pass", f"all {total} cases agree with the reference"


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
        reason = _compare(answer, expected, ex.rtol, ex.atol)
        if reason is None:
            return "pass", "correct"
        why = f" ({reason})" if reason else ""
        return "fail", f"expected {_summary(expected)}, got {_summary(answer)}{why}"
    if not callable(answer):
        return "fail", f"expected a function, got {type(answer).__name__}"
    return _check_function(ex, answer)


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
    # Wrapped to the book's 80-character column.
    print(textwrap.fill(f"{mark} [{name}]: {message}", width=79, subsequent_indent="  ",
                        break_long_words=False, break_on_hyphens=False))
    if must_pass and status != "pass":
        raise AssertionError(f"reference solution of {name} does not pass: {message}")
