"""The exercise checker: not attempted, pass, and a failing case with a counterexample."""

import numpy as np
import pytest

from fancydl.exercises import NOT_ATTEMPTED, check, exercise, verdict


@exercise("testing.double", cases=[(np.arange(3.0),), (np.array([-1.5]),)])
def _double(x):
    return 2 * x


@exercise("testing.answer_value")
def _value():
    return 42.0


def test_an_untouched_stub_is_not_attempted(capsys):
    def stub(x):
        raise NotImplementedError

    assert verdict("testing.double", stub)[0] == NOT_ATTEMPTED
    assert verdict("testing.answer_value", ...)[0] == NOT_ATTEMPTED
    check("testing.double", stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_a_right_answer_passes(capsys):
    check("testing.double", lambda x: x + x, must_pass=True)
    check("testing.answer_value", 42, must_pass=True)
    assert capsys.readouterr().out.count("✓ correct") == 2


def test_a_wrong_answer_shows_the_failing_case():
    status, message = verdict("testing.double", lambda x: x * x)
    assert status == "fail"
    assert "case 1 of 2 differs" in message and "expected" in message and "got" in message


def test_an_exception_in_the_answer_is_reported_not_raised():
    status, message = verdict("testing.double", lambda x: x.nope)
    assert status == "fail" and "AttributeError" in message


def test_must_pass_raises_for_a_failing_solution():
    with pytest.raises(AssertionError, match="does not pass"):
        check("testing.answer_value", 41.0, must_pass=True)


def test_unknown_exercise_is_named():
    with pytest.raises(ValueError, match="no exercise named 'testing.missing'"):
        check("testing.missing", 1)
