"""The reverse-mode tape: vjp over compositions, gradcheck, and the elementwise ops."""

import subprocess
import sys

import numpy as np
import pytest

import fancydl
from fancydl.autodiff import Function


def test_vjp_of_a_composition_matches_the_chain_rule_by_hand(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    g = rng.standard_normal((4, 2))
    out, pullback = fancydl.vjp(lambda x, w: fancydl.tanh(fancydl.linear(x, w)), x, w)
    y = np.tanh(x @ w.T)
    gx, gw = pullback(g)
    local = g * (1 - y**2)
    np.testing.assert_allclose(out, y)
    np.testing.assert_allclose(gx, local @ w)
    np.testing.assert_allclose(gw, local.T @ x)


def test_a_value_used_twice_accumulates_its_gradients(rng):
    x = rng.standard_normal(5)
    out, pullback = fancydl.vjp(lambda x: x * x + fancydl.exp(x), x)
    g = rng.standard_normal(5)
    np.testing.assert_allclose(pullback(g)[0], g * (2 * x + np.exp(x)))


def test_pullback_entries_follow_the_positional_arguments(rng):
    x = rng.standard_normal((2, 3))
    index = np.array([1, 0])
    out, pullback = fancydl.vjp(lambda x, i, scale: x[np.arange(2), i] * scale, x, index, 2)
    gx, gi, gscale = pullback(np.ones(2))
    assert gi is None and gscale is None
    np.testing.assert_array_equal(gx, [[0, 2, 0], [2, 0, 0]])


def test_unused_float_argument_gets_a_zero_gradient(rng):
    x, unused = rng.standard_normal(3), rng.standard_normal(4)
    _, pullback = fancydl.vjp(lambda x, u: fancydl.relu(x), x, unused)
    assert np.array_equal(pullback(np.ones(3))[1], np.zeros(4))


def test_tuple_outputs_take_a_tuple_of_upstream_gradients_with_none(rng):
    x = rng.standard_normal(3)
    out, pullback = fancydl.vjp(lambda x: (fancydl.exp(x), fancydl.sigmoid(x)), x)
    (gx,) = pullback((None, np.ones(3)))
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(gx, s * (1 - s))


def test_pullback_can_be_called_repeatedly(rng):
    x = rng.standard_normal((3, 4))
    _, pullback = fancydl.vjp(fancydl.cross_entropy, x, np.array([0, 1, 2]))
    first = pullback(np.array(1.0))[0].copy()
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], first)
    np.testing.assert_allclose(pullback(np.array(2.0))[0], 2 * first)


def test_zero_dimensional_results_stay_traced(rng):
    """NumPy returns a scalar for ``-x`` of a 0-d array; the tape must not lose it."""
    x, t = rng.standard_normal(4), rng.standard_normal(4)
    _, pullback = fancydl.vjp(lambda x: -fancydl.sum(x * t) / 2.0, x)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], -t / 2)


def test_broadcasting_gradients_are_summed_back(rng):
    x, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    assert fancydl.gradcheck(lambda x, b: (x + b) * b - x / (b + 3.0), x, b)


@pytest.mark.parametrize("name", ["exp", "relu", "sigmoid", "tanh", "neg"])
def test_elementwise_gradchecks(rng, name):
    x = rng.standard_normal((3, 4)) + 0.01  # away from relu's kink at 0
    assert fancydl.gradcheck(getattr(fancydl, name), x)


def test_shape_ops_gradcheck(rng):
    x = rng.standard_normal((2, 3, 4))
    assert fancydl.gradcheck(lambda x: fancydl.sum(x, (0, 2)) * fancydl.mean(x, (0, 2)), x)
    assert fancydl.gradcheck(lambda x: fancydl.flatten(x) @ np.ones((12, 2)), x)
    assert fancydl.gradcheck(lambda x: fancydl.log(x * x + 1.0).reshape(4, 6)[1:3], x)


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise", invalid="raise"):
        out = fancydl.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])


def test_numpy_functions_refuse_traced_values(rng):
    with pytest.raises(TypeError, match="numpy.sin got a traced .* use the fancydl operator"):
        fancydl.vjp(lambda x: np.sin(x), rng.standard_normal(3))
    with pytest.raises(TypeError, match="use the fancydl operator"):
        fancydl.vjp(lambda x: np.concatenate([x, x]), rng.standard_normal(3))


def test_numpy_arithmetic_with_a_traced_value_is_recorded(rng):
    x, c = rng.standard_normal(3), rng.standard_normal(3)
    _, pullback = fancydl.vjp(lambda x: c * x + np.add(c, x), x)
    np.testing.assert_allclose(pullback(np.ones(3))[0], c + 1)


def test_gradcheck_catches_a_wrong_backward(rng):
    class WrongSquare(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved
            return (grad * x,)  # missing factor 2

    report = fancydl.gradcheck(WrongSquare.apply, rng.standard_normal(4))
    assert not report and "FAIL" in repr(report)


def test_gradcheck_requires_float64(rng):
    with pytest.raises(TypeError, match="argument 0 must be float64"):
        fancydl.gradcheck(fancydl.exp, rng.standard_normal(3).astype(np.float32))


def test_pullback_checks_the_upstream_shape(rng):
    _, pullback = fancydl.vjp(fancydl.exp, rng.standard_normal(3))
    with pytest.raises(ValueError, match="must have the output's shape \\(3,\\)"):
        pullback(np.ones(4))


def test_vjp_needs_a_callable():
    with pytest.raises(TypeError, match="f must be callable"):
        fancydl.vjp(np.ones(3), np.ones(3))


def test_linear_names_mismatched_features(rng):
    with pytest.raises(ValueError, match="weight has 4 input features but input has 3"):
        fancydl.linear(rng.standard_normal((2, 3)), rng.standard_normal((5, 4)))


def test_crosscheck_reports_pass_and_records_errors(rng):
    pytest.importorskip("torch")
    report = fancydl.crosscheck(fancydl.log_softmax, rng.standard_normal((3, 4)), 1)
    assert report and "PASS" in repr(report)
    assert [row[0] for row in report.rows] == ["output", "gradient of input"]


def test_crosscheck_says_when_pytorch_cannot_differentiate_an_argument(rng):
    pytest.importorskip("torch")
    logp = fancydl.log_softmax(rng.standard_normal((3, 4)), 1)
    report = fancydl.crosscheck(fancydl.nll_loss, logp, np.array([0, 1, 3]), np.ones(4))
    assert report and "PyTorch cannot differentiate weight" in repr(report)


def test_import_fancydl_without_torch():
    """``import fancydl`` must work where PyTorch is absent; crosscheck then skips."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # makes 'import torch' raise ImportError\n"
        "import numpy as np, fancydl\n"
        "r = fancydl.crosscheck(fancydl.softmax, np.ones(3), 0)\n"
        "assert not r and 'PyTorch is not installed' in repr(r), repr(r)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
