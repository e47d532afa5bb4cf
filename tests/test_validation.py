"""The argument checks shared by every operator (fancydl.validation)."""

import numpy as np
import pytest

from fancydl.validation import check_pair, check_real


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((2, 5), (2, 5)), ([4, 1], (4, 1)),
                                             (np.int64(2), (2, 2))])
def test_check_pair_normalizes_ints_and_pairs(value, expected):
    assert check_pair("op", "stride", value, minimum=1) == expected


@pytest.mark.parametrize("value", [(2,), [3]])
def test_check_pair_expands_one_element_sequences_only_when_asked(value):
    """Issue D6: PyTorch's conv2d, conv_transpose2d and pooling expand ``(2,)`` to both
    axes; its unfold/fold and torchvision's operators refuse it (the default)."""
    assert check_pair("op", "stride", value, minimum=1, single=True) == (value[0],) * 2
    with pytest.raises(TypeError, match=r"op: stride must be a positive int or a pair of "
                                        r"them, got"):
        check_pair("op", "stride", value, minimum=1)


@pytest.mark.parametrize("value, single, error, match", [
    ((), True, TypeError, r"op: padding must be an int >= 0 or a sequence of one or two "
                          r"of them, got tuple \(\)"),
    ((1, 2, 3), True, TypeError, r"sequence of one or two"),
    ((-1,), True, ValueError, r"op: padding must be .*got \(-1,\)"),
    ((1, -1), False, ValueError, r"got \(1, -1\)"),
    ((True, 1), False, TypeError, r"got tuple \(True, 1\)"),
    (1.5, True, TypeError, r"got float 1.5"),
    ("1", True, TypeError, r"got str '1'"),
])
def test_check_pair_refuses_the_rest_naming_the_argument(value, single, error, match):
    with pytest.raises(error, match=match):
        check_pair("op", "padding", value, minimum=0, single=single)


@pytest.mark.parametrize("bounds, stated", [({}, r"a number \(not NaN\)"),
                                            ({"minimum": 0}, ">= 0"),
                                            ({"maximum": 1}, "<= 1"),
                                            ({"minimum": 0, "maximum": 1}, r"in \[0, 1\]")])
def test_check_real_states_only_the_bounds_it_has(bounds, stated):
    """NaN with no bounds used to read "must be >= None"."""
    with pytest.raises(ValueError, match=rf"^op: x must be {stated}, got nan$"):
        check_real("op", "x", float("nan"), **bounds)
    with pytest.raises(ValueError, match=r"^op: x must be > 0, got 0.0$"):
        check_real("op", "x", 0, minimum=0, inclusive=False)


def test_check_real_finite_refuses_infinities_only_when_asked():
    assert check_real("op", "x", float("inf")) == float("inf")
    with pytest.raises(ValueError, match=r"^op: x must be finite, got -inf$"):
        check_real("op", "x", -float("inf"), finite=True)
    assert check_real("op", "x", 2, minimum=0, finite=True) == 2.0
