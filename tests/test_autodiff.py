"""The reverse-mode tape: vjp over compositions, gradcheck, and the elementwise ops."""

import collections
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    assert fancydl.gradcheck(lambda x: fancydl.flatten(x, 1) @ np.ones((12, 2)), x)
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


# --- parameter trees (issue 12 §2) and structured outputs ---------------------------------

def _mlp(params, x):
    hidden = fancydl.relu(fancydl.linear(x, params["layers"][0]["w"],
                                         params["layers"][0]["b"]))
    return fancydl.linear(hidden, params["layers"][1]["w"], params["layers"][1]["b"])


def _mlp_params(rng):
    return {"layers": [{"w": rng.standard_normal((5, 3)), "b": rng.standard_normal(5)},
                       {"w": rng.standard_normal((2, 5)), "b": rng.standard_normal(2)}]}


def test_dict_parameters_get_dict_gradients_equal_to_flat_arguments(rng):
    params, x = _mlp_params(rng), rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 2))
    out, pullback = fancydl.vjp(_mlp, params, x)
    grads, gx = pullback(g)
    flat = lambda w0, b0, w1, b1, x: _mlp(  # noqa: E731
        {"layers": [{"w": w0, "b": b0}, {"w": w1, "b": b1}]}, x)
    layers = params["layers"]
    out_flat, pullback_flat = fancydl.vjp(flat, layers[0]["w"], layers[0]["b"],
                                          layers[1]["w"], layers[1]["b"], x)
    expected = pullback_flat(g)
    np.testing.assert_array_equal(out, out_flat)
    assert list(grads) == ["layers"] and len(grads["layers"]) == 2
    got = [grads["layers"][0]["w"], grads["layers"][0]["b"], grads["layers"][1]["w"],
           grads["layers"][1]["b"], gx]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_trees_gradcheck_in_float64(rng):
    params, x = _mlp_params(rng), rng.standard_normal((4, 3)) + 0.1
    report = fancydl.gradcheck(_mlp, params, x)
    assert report and set(report.max_errors) == {(0, 0), (0, 1), (0, 2), (0, 3), 1}


def test_non_float_leaves_pass_through_and_get_none(rng):
    x = rng.standard_normal((3, 4))
    args = {"x": x, "target": np.array([0, 1, 3]), "name": "ce", "weight": None, "k": 2}

    def f(args):
        assert args["name"] == "ce" and args["weight"] is None and args["k"] == 2
        return fancydl.cross_entropy(args["x"], args["target"])

    _, pullback = fancydl.vjp(f, args)
    (grads,) = pullback(np.array(1.0))
    assert grads["target"] is None and grads["name"] is None and grads["weight"] is None
    assert grads["k"] is None and grads["x"].shape == x.shape


def test_outputs_of_any_structure_are_plain_and_pulled_back(rng):
    x = rng.standard_normal(3)
    f = lambda x: {"e": fancydl.exp(x), "parts": [fancydl.tanh(x), (x * 2.0, 7)]}  # noqa
    out, pullback = fancydl.vjp(f, x)
    assert isinstance(out["e"], np.ndarray) and isinstance(out["parts"][1][0], np.ndarray)
    assert out["parts"][1][1] == 7
    np.testing.assert_allclose(out["e"], np.exp(x))
    g = rng.standard_normal(3)
    (gx,) = pullback({"e": g, "parts": [None, (g, None)]})
    np.testing.assert_allclose(gx, g * np.exp(x) + 2 * g)
    (gx,) = pullback({"e": None, "parts": None})  # None for a whole subtree
    np.testing.assert_array_equal(gx, np.zeros(3))
    with pytest.raises(ValueError, match=r"grad_out\['parts'\] must have the structure"):
        pullback({"e": g, "parts": [g]})


def test_list_outputs_were_left_traced_before(rng):
    """Regression: a list output kept Traced objects and gave zero gradients."""
    x = rng.standard_normal(3)
    out, pullback = fancydl.vjp(lambda x: [fancydl.exp(x), fancydl.exp(x)], x)
    assert all(type(o) is np.ndarray for o in out)
    np.testing.assert_allclose(pullback([np.ones(3), np.ones(3)])[0], 2 * np.exp(x))


def _loss(params, x, target):
    return fancydl.cross_entropy(_mlp(params, x), target)


def test_value_and_grad_returns_the_loss_and_tree_gradients(rng):
    params, x, target = _mlp_params(rng), rng.standard_normal((4, 3)), np.array([0, 1, 1, 0])
    loss, grads = fancydl.value_and_grad(_loss)(params, x, target)
    expected_out, pullback = fancydl.vjp(_loss, params, x, target)
    np.testing.assert_array_equal(loss, expected_out)
    expected = pullback(np.array(1.0))[0]
    for a, b in zip(fancydl.tree.tree_leaves(grads), fancydl.tree.tree_leaves(expected)):
        np.testing.assert_array_equal(a, b)
    assert fancydl.tree.tree_flatten(grads)[1] == fancydl.tree.tree_flatten(params)[1]
    np.testing.assert_array_equal(fancydl.grad(_loss)(params, x, target)["layers"][1]["b"],
                                  grads["layers"][1]["b"])


def test_value_and_grad_argnums_and_aux(rng):
    params, x, target = _mlp_params(rng), rng.standard_normal((4, 3)), np.array([0, 1, 1, 0])

    def with_aux(params, x, target):
        logits = _mlp(params, x)
        return fancydl.cross_entropy(logits, target), {"logits": logits}

    (loss, aux), (gp, gx) = fancydl.value_and_grad(with_aux, argnums=(0, 1),
                                                   has_aux=True)(params, x, target)
    np.testing.assert_allclose(aux["logits"], _mlp(params, x))
    assert type(aux["logits"]) is np.ndarray
    _, pullback = fancydl.vjp(_loss, params, x, target)
    np.testing.assert_allclose(gx, pullback(np.array(1.0))[1])
    gx_only, aux_again = fancydl.grad(with_aux, argnums=-2, has_aux=True)(params, x, target)
    np.testing.assert_array_equal(gx_only, gx)
    assert set(aux_again) == {"logits"}


def test_value_and_grad_traces_only_the_chosen_arguments(rng):
    seen = []

    def f(w, x):
        seen.append((fancydl.autodiff.is_traced(w), fancydl.autodiff.is_traced(x)))
        return fancydl.sum(w * x)

    fancydl.value_and_grad(f)(rng.standard_normal(3), rng.standard_normal(3))
    assert seen == [(True, False)]


def test_value_and_grad_checks_its_arguments(rng):
    w = rng.standard_normal(3)
    with pytest.raises(ValueError, match=r"scalar loss .* got shape \(3,\)"):
        fancydl.value_and_grad(fancydl.exp)(w)
    with pytest.raises(TypeError, match="one element \\(the loss\\), got int"):
        fancydl.value_and_grad(lambda w: 3)(w)
    with pytest.raises(TypeError, match="must return a pair \\(loss, aux\\)"):
        fancydl.value_and_grad(lambda w: fancydl.sum(w), has_aux=True)(w)
    with pytest.raises(ValueError, match="argnums 1 is out of range for a call with 1"):
        fancydl.value_and_grad(lambda w: fancydl.sum(w), argnums=1)(w)
    with pytest.raises(TypeError, match="argnums must be an int"):
        fancydl.value_and_grad(lambda w: fancydl.sum(w), argnums="w")
    with pytest.raises(TypeError, match="f must be callable"):
        fancydl.grad(None)


def test_docstring_examples_run():
    import doctest
    for module in (fancydl.autodiff, fancydl._traced):
        assert doctest.testmod(module, raise_on_error=False).failed == 0


# --- no silent zero gradients ----------------------------------------------------------------

def _image_psf(rng):
    return rng.random((8, 8)), fancydl.gaussian_psf(3, 1.0)


@pytest.mark.parametrize("call, message", [
    (lambda image, psf: fancydl.wiener(image, psf, 0.1), "wiener: .* respect to psf"),
    (lambda image, psf: fancydl.inverse_filter(image, psf), "inverse_filter: .* to psf"),
    (lambda image, psf: fancydl.blur(image, psf), "blur: .* respect to psf"),
    (lambda image, psf: fancydl.richardson_lucy(image, psf, 2), "richardson_lucy: .* psf"),
    (lambda image, psf: fancydl.transfer_function(psf, image.shape).real,
     "transfer_function: .* psf"),
])
def test_operators_refuse_a_traced_argument_they_cannot_differentiate(rng, call, message):
    """Regression: these returned a zero gradient for the psf."""
    image, psf = _image_psf(rng)
    with pytest.raises(TypeError, match=message + ".* gradient would silently be zero"):
        fancydl.vjp(lambda psf: call(image, psf), psf)


@pytest.mark.parametrize("op", ["wiener", "inverse_filter", "blur"])
def test_closing_over_the_psf_differentiates_the_image(rng, op):
    image, psf = _image_psf(rng)
    extra = (0.1,) if op == "wiener" else ()
    fn = getattr(fancydl, op)
    assert fancydl.gradcheck(lambda image: fn(image, psf, *extra), image)


def test_richardson_lucy_refuses_a_traced_image(rng):
    image, psf = _image_psf(rng)
    with pytest.raises(TypeError, match="richardson_lucy: .* respect to image"):
        fancydl.vjp(lambda image: fancydl.richardson_lucy(image, psf, 2), image)


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_roi_operators_refuse_traced_boxes(rng, op):
    x = rng.standard_normal((1, 2, 6, 6))
    boxes = np.array([[0.0, 0.5, 0.5, 4.0, 4.0]])
    fn = getattr(fancydl, op)
    with pytest.raises(TypeError, match=f"{op}: cannot differentiate with respect to "
                                        "boxes"):
        fancydl.vjp(lambda x, b: fn(x, b, 2), x, boxes)
    with pytest.raises(TypeError, match=rf"{op}: .* respect to boxes\[0\]"):
        fancydl.vjp(lambda x, b: fn(x, [b], 2), x, boxes[:, 1:])
    _, pullback = fancydl.vjp(lambda x: fn(x, boxes, 2), x)
    assert pullback(np.ones((1, 2, 2, 2)))[0].shape == x.shape


class _Square(Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        return x * x * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * 2 * x, None  # forgets the gradient of scale


def test_a_backward_returning_none_for_a_traced_input_raises(rng):
    x, scale = rng.standard_normal(3), np.array(2.0)
    with pytest.raises(TypeError, match=r"Square.backward returned None for argument 1 "
                                        r"\('scale'\), which is traced"):
        fancydl.vjp(_Square.apply, x, scale)[1](np.ones(3))
    _, pullback = fancydl.vjp(lambda x: _Square.apply(x, scale), x)  # scale constant
    np.testing.assert_allclose(pullback(np.ones(3))[0], 2 * x)


def test_mark_zero_gradient_allows_none_where_the_output_does_not_depend(rng):
    x, mean, var = rng.standard_normal((4, 3)), np.zeros(3), np.ones(3)
    _, pullback = fancydl.vjp(
        lambda x, m, v: fancydl.batch_norm(x, m, v, training=True), x, mean, var)
    gx, gm, gv = pullback(rng.standard_normal((4, 3)))
    np.testing.assert_array_equal(gm, np.zeros(3))
    np.testing.assert_array_equal(gv, np.zeros(3))


def test_a_traced_keyword_or_list_argument_of_a_function_raises(rng):
    class Scale(Function):
        @staticmethod
        def forward(ctx, x, factor=1.0):
            return x * factor

        @staticmethod
        def backward(ctx, grad):
            return (grad,)

    x = rng.standard_normal(3)
    with pytest.raises(TypeError, match="Scale: keyword argument 'factor' is traced"):
        fancydl.vjp(lambda x, f: Scale.apply(x, factor=f), x, x)
    with pytest.raises(TypeError, match=r"Scale: argument 1 \('factor'\) is traced"):
        fancydl.vjp(lambda x, f: Scale.apply(x, [f]), x, x)


# --- backward results are checked -------------------------------------------------------------

def _bad_function(result):
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, w):
            return x * w

        @staticmethod
        def backward(ctx, grad):
            return result(grad)

    return Bad


@pytest.mark.parametrize("result, error, message", [
    (lambda g: (g.sum(0), g), ValueError,
     r"Bad.backward returned a gradient of shape \(3,\) for argument 0 \('x'\), expected "
     r"the argument's shape \(2, 3\)"),
    (lambda g: (g, g.astype(np.float32)), TypeError,
     r"Bad.backward returned a gradient of dtype float32 for argument 1 \('w'\), "
     r"expected the argument's dtype float64"),
    (lambda g: (g,), ValueError, "Bad.backward returned 1 gradients, expected 2"),
    (lambda g: (g, g, g), ValueError, "Bad.backward returned 3 gradients, expected 2"),
    (lambda g: (g, g.tolist()), TypeError,
     r"Bad.backward returned a list as the gradient of argument 1"),
])
def test_wrong_backward_results_raise_naming_function_and_argument(rng, result, error,
                                                                   message):
    x, w = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    _, pullback = fancydl.vjp(_bad_function(result).apply, x, w)
    with pytest.raises(error, match=message):
        pullback(np.ones((2, 3)))


def test_gradcheck_fails_on_a_wrong_shaped_gradient_instead_of_broadcasting(rng):
    """A (1, 3) gradient for a (2, 3) input used to broadcast and could pass."""
    Broadcasting = _bad_function(lambda g: (g.sum(0, keepdims=True) / 2, g))
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"shape \(1, 3\) for argument 0"):
        fancydl.gradcheck(Broadcasting.apply, x, np.ones((2, 3)))


# --- saved arrays are protected ----------------------------------------------------------------

def test_changing_a_saved_input_in_place_raises_naming_the_operator(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    _, pullback = fancydl.vjp(lambda x, w: fancydl.linear(x, w), x, w)
    w *= 2
    with pytest.raises(RuntimeError, match=r"linear: argument 1 of vjp \(an array of shape "
                                           r"\(2, 3\)\) was modified in place"):
        pullback(np.ones((4, 2)))


def test_changing_an_untraced_saved_array_in_place_raises(rng):
    x, w = rng.standard_normal((1, 1, 5, 5)), rng.standard_normal((2, 1, 3, 3))
    _, pullback = fancydl.vjp(lambda w: fancydl.conv2d(x, w), w)
    x[0, 0, 2, 2] += 1.0
    with pytest.raises(RuntimeError, match="modified in place after the forward pass"):
        pullback(np.ones((1, 2, 3, 3)))


def test_changing_a_returned_output_that_backward_needs_raises(rng):
    x = rng.standard_normal(3)
    out, pullback = fancydl.vjp(fancydl.exp, x)
    out[0] = 0.0
    with pytest.raises(RuntimeError, match="exp: its output .* was modified in place"):
        pullback(np.ones(3))


def test_arrays_no_backward_reads_may_change(rng):
    x, b = rng.standard_normal(3), rng.standard_normal(3)
    out, pullback = fancydl.vjp(fancydl.add, x, b)
    x *= 2
    out *= 3
    np.testing.assert_array_equal(pullback(np.ones(3))[1], np.ones(3))


def test_in_place_running_statistics_in_training_are_not_false_alarms(rng):
    x, mean, var = rng.standard_normal((4, 3)), np.zeros(3), np.ones(3)
    w = rng.standard_normal(3)

    def twice(x, w):  # the same buffers updated twice in one forward
        y = fancydl.batch_norm(x, mean, var, w, training=True)
        return fancydl.batch_norm(y, mean, var, w, training=True)

    _, pullback = fancydl.vjp(twice, x, w)
    assert pullback(np.ones((4, 3)))[1].shape == (3,)


# --- traced values behave or refuse -----------------------------------------------------------

def test_comparisons_and_truth_follow_numpy(rng):
    x = np.array([1.0, 2.0, 3.0])

    def f(t):
        assert np.array_equal(t == 2.0, [False, True, False])
        assert np.array_equal(t != t, [False] * 3)
        assert np.array_equal(2.0 < t, [False, False, True])
        assert np.array_equal(np.array([3.0, 2.0, 1.0]) >= t, [True, True, False])
        assert bool(t[1] > 1.0)
        with pytest.raises(ValueError, match="truth value of an array"):
            bool(t)
        assert {t: 1}[t] == 1  # hashable by identity, like a torch.Tensor
        return fancydl.sum(t)

    fancydl.vjp(f, x)


def test_numpy_style_methods_are_differentiable(rng):
    x = rng.standard_normal((2, 3))
    checks = {
        "T": (lambda t: t.T, lambda a: a.T),
        "transpose": (lambda t: t.transpose(), lambda a: a.transpose()),
        "transpose axes": (lambda t: t.transpose(1, 0), lambda a: a.transpose(1, 0)),
        "max": (lambda t: t.max(axis=0), lambda a: a.max(axis=0)),
        "min": (lambda t: t.min(1, keepdims=True), lambda a: a.min(1, keepdims=True)),
        "np.sum": (lambda t: np.sum(t), lambda a: np.sum(a)),
        "np.sum axis": (lambda t: np.sum(t, axis=0), lambda a: np.sum(a, axis=0)),
        "sum axis": (lambda t: t.sum(axis=0), lambda a: a.sum(axis=0)),
        "sum dim": (lambda t: t.sum(dim=1, keepdim=True), lambda a: a.sum(1, keepdims=True)),
        "np.mean": (lambda t: np.mean(t, axis=1), lambda a: np.mean(a, axis=1)),
        "np.max": (lambda t: np.max(t), lambda a: np.max(a)),
        "np.reshape": (lambda t: np.reshape(t, (3, 2)), lambda a: np.reshape(a, (3, 2))),
        "np.transpose": (lambda t: np.transpose(t), lambda a: np.transpose(a)),
        "astype": (lambda t: t.astype(np.float32), lambda a: a.astype(np.float32)),
        "ravel": (lambda t: t.ravel(), lambda a: a.ravel()),
        "pow": (lambda t: t ** 2 + np.exp(t), lambda a: a ** 2 + np.exp(a)),
        "iter": (lambda t: [row for row in t][1], lambda a: a[1]),
    }
    for name, (traced_fn, numpy_fn) in checks.items():
        out, pullback = fancydl.vjp(traced_fn, x)
        expected = numpy_fn(x)
        assert type(out) is np.ndarray and out.dtype == expected.dtype, name
        np.testing.assert_allclose(out, expected, err_msg=name)
        if name not in ("astype", "pow", "sum dim"):  # NumPy has no dim=
            assert fancydl.gradcheck(traced_fn, x), name
    _, pullback = fancydl.vjp(lambda t: t.astype(np.float32), x)
    g = pullback(np.ones((2, 3), np.float32))[0]
    assert g.dtype == np.float64 and np.array_equal(g, np.ones((2, 3)))


@pytest.mark.parametrize("refused, message", [
    (lambda t: float(t[0]), r"float\(\) got a traced"),
    (lambda t: int(t[0]), r"int\(\) got a traced"),
    (lambda t: t.item(), r"\.item\(\) got a traced"),
    (lambda t: t.tolist(), r"\.tolist\(\) got a traced"),
    (lambda t: t.astype(np.int64), "cast to int64 would cut its gradient"),
    (lambda t: t.sum(dtype=np.float32), "supports only axis/dim"),
    (lambda t: t.clip(0, 1), "ndarray.clip got a traced .* cannot differentiate .clip"),
    (lambda t: t.copy(), "ndarray.copy got a traced"),
    (lambda t: np.concatenate([t, t]), "NumPy function got a traced"),
    (lambda t: np.maximum(t, 0), "numpy.maximum got a traced"),
    (lambda t: np.add.reduce(t), r"numpy.add.reduce got a traced"),
    (lambda t: t.__setitem__(0, 1.0), r"item assignment"),
])
def test_untraced_results_are_refused_with_a_friendly_type_error(rng, refused, message):
    with pytest.raises(TypeError, match=message):
        fancydl.vjp(refused, rng.standard_normal(3))


def test_numpy_probes_for_missing_dunders_still_get_attribute_errors(rng):
    def f(t):
        assert not hasattr(t, "__array_interface__") and not hasattr(t, "detach")
        assert np.shape(t) == (3,) and np.ndim(t) == 1
        return t

    fancydl.vjp(f, rng.standard_normal(3))


# --- no import circle -----------------------------------------------------------------------

def _fancydl_modules():
    import pkgutil
    return sorted(m.name for m in pkgutil.walk_packages(fancydl.__path__, "fancydl."))


@pytest.mark.parametrize("module", _fancydl_modules())
def test_any_submodule_can_be_imported_first(module):
    code = f"import {module}; import fancydl; assert fancydl.vjp and fancydl.tree"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_engine_modules_import_no_circle():
    """_traced imports nothing of fancydl; validation only _traced; autodiff only
    _traced and tree; elementwise the three of them."""
    import ast
    import pathlib
    root = pathlib.Path(fancydl.__file__).parent
    allowed = {"_traced": set(), "tree": set(), "validation": {"_traced"},
               "autodiff": {"_traced", "tree"},
               "elementwise": {"_traced", "autodiff", "validation"}}
    for name, permitted in allowed.items():
        tree = ast.parse((root / f"{name}.py").read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported.add((node.module or "").split(".")[0])
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[1] for a in node.names
                             if a.name.startswith("fancydl.")}
        assert imported <= permitted, (name, imported - permitted)


# --- property: any tree of parameters, any tree of outputs ---------------------------------

_leaf_arrays = st.lists(st.integers(1, 3), max_size=2).map(lambda s: np.zeros(s))
_param_trees = st.recursive(
    _leaf_arrays, lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=2).map(tuple),
        st.dictionaries(st.sampled_from("abcd"), children, min_size=1, max_size=3)),
    max_leaves=6)


@given(structure=_param_trees, seed=st.integers(0, 2**32 - 1))
def test_any_parameter_tree_gets_gradients_of_its_structure(structure, seed):
    """f maps each leaf p to tanh(p) * c (a tree of the same structure) plus a scalar
    sum; the pullback of upstream u is u_leaf * c * (1 - tanh^2) + u_sum * c."""
    from fancydl.tree import tree_flatten, tree_leaves, tree_map
    rng = np.random.default_rng(seed)
    params = tree_map(lambda z: rng.standard_normal(z.shape), structure)
    consts = tree_map(lambda z: rng.standard_normal(z.shape), structure)

    def f(params):
        per_leaf = tree_map(lambda p, c: fancydl.tanh(p) * c, params, consts)
        total = fancydl.add(0.0, np.zeros(()))
        for p, c in zip(tree_leaves(params), tree_leaves(consts)):
            total = total + fancydl.sum(p * c)
        return {"per_leaf": per_leaf, "total": total}

    out, pullback = fancydl.vjp(f, params)
    assert tree_flatten(out["per_leaf"])[1] == tree_flatten(params)[1]
    upstream = tree_map(lambda o: rng.standard_normal(np.shape(o)), out)
    (grads,) = pullback(upstream)
    assert tree_flatten(grads)[1] == tree_flatten(params)[1]
    expected = tree_map(
        lambda p, c, u: u * c * (1 - np.tanh(p) ** 2) + upstream["total"] * c,
        params, consts, upstream["per_leaf"])
    for g, e in zip(tree_leaves(grads), tree_leaves(expected)):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


# --- regressions of the adversarial review ------------------------------------------------

def test_gradients_of_zero_dimensional_arguments_are_arrays(rng):
    """Two 0-d gradients added up gave a NumPy scalar, which gradcheck then failed."""
    assert fancydl.gradcheck(lambda a: a * 2.0 + a, np.array(1.5))
    g = fancydl.grad(lambda a: a * a + a)(np.array(3.0))
    assert type(g) is np.ndarray and g.shape == () and g == 7.0

    seen = []

    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad):
            seen.append(type(grad))
            return (grad,)

    _, pullback = fancydl.vjp(lambda a: (lambda y: y + y)(Identity.apply(a * 1.0)),
                              np.array(2.0))
    assert pullback(np.array(1.0))[0] == 2.0 and seen == [np.ndarray]


def test_untraced_zero_dimensional_results_are_arrays_as_inside_vjp():
    x = np.array(0.5)
    for result in (fancydl.neg(x), fancydl.exp(x), fancydl.log(x), fancydl.relu(x),
                   fancydl.tanh(x), fancydl.mean(np.ones(3)), fancydl.add(x, 1.0),
                   fancydl.mul(x, x), fancydl.pow(x, 2.0)):
        assert type(result) is np.ndarray and result.shape == ()


def _exp_views(a):
    e = fancydl.exp(a)
    return e[:1], e[1:]


@pytest.mark.parametrize("changed", [0, 1])
def test_every_returned_view_of_a_saved_array_is_guarded(rng, changed):
    """Only the last view of one saved array was guarded: changing out[0] gave wrong
    gradients silently."""
    out, pullback = fancydl.vjp(_exp_views, rng.standard_normal(3))
    out[changed][:] = 0.0
    with pytest.raises(RuntimeError, match=f"exp: output {changed} of vjp .* modified"):
        pullback((np.ones(1), np.ones(2)))


def test_in_place_messages_name_the_public_operator_and_argument(rng):
    x, w = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    _, pullback = fancydl.vjp(lambda x: fancydl.linear(x, w), x)
    w *= 2
    with pytest.raises(RuntimeError, match=r"linear: argument 1 \('weight'\) of linear"):
        pullback(np.ones((2, 4)))
    _, pullback = fancydl.vjp(lambda x: fancydl.amin(x, 1), x)
    x[0, 0] = 7.0
    with pytest.raises(RuntimeError, match="amin: argument 0 of vjp"):
        pullback(np.ones(2))
    y = rng.standard_normal(3)
    out, pullback = fancydl.vjp(lambda a: (a[0:2], a * a), y)
    out[0][:] = 7.0  # a view of the argument, which mul's backward reads
    with pytest.raises(RuntimeError, match="mul: output 0 of vjp"):
        pullback((np.ones(2), np.ones(3)))


def test_nested_vjp_of_traced_values_is_refused_instead_of_cutting_the_gradient(rng):
    x = rng.standard_normal(3)
    nested = "not supported"
    with pytest.raises(TypeError, match=f"vjp: argument 0 is a value traced by .*{nested}"):
        fancydl.vjp(lambda a: fancydl.vjp(fancydl.exp, a)[0], x)
    with pytest.raises(TypeError, match=f"grad: argument 0 is a value traced .*{nested}"):
        fancydl.grad(lambda a: fancydl.sum(fancydl.grad(
            lambda b: fancydl.sum(b * b * b))(a)))(x)
    with pytest.raises(TypeError, match=f"mul: argument 1 .* traced .*{nested}"):
        fancydl.vjp(lambda a: fancydl.vjp(lambda b: b * a, np.ones(3))[0], x)
    with pytest.raises(TypeError, match=f"vjp: output 0 of f is a value traced .*{nested}"):
        fancydl.vjp(lambda a: fancydl.vjp(lambda b: a, np.ones(3))[0], x)


def test_a_vjp_on_plain_arrays_inside_another_vjp_still_works(rng):
    x, c = rng.standard_normal(3), rng.standard_normal(3)
    g = rng.standard_normal(3)

    def f(a):
        inner, inner_pullback = fancydl.vjp(fancydl.exp, c)
        return fancydl.exp(a) * inner * inner_pullback(np.ones(3))[0]

    out, pullback = fancydl.vjp(f, x)
    np.testing.assert_allclose(out, np.exp(x) * np.exp(c) ** 2)
    np.testing.assert_allclose(pullback(g)[0], g * out)


def test_gradcheck_differences_each_output_on_its_own(rng):
    """A large output that does not depend on a swamped the change of a small one."""
    a, b = rng.standard_normal(3), rng.standard_normal(200) * 1e3
    assert fancydl.gradcheck(lambda a, b: (fancydl.tanh(a), b * 1.0), a, b)


@pytest.mark.parametrize("result", [lambda a: [a * 2], lambda a: float(a.sum())])
def test_a_forward_returning_no_array_raises_naming_the_function(rng, result):
    class Twice(Function):
        @staticmethod
        def forward(ctx, a):
            return result(a)

        @staticmethod
        def backward(ctx, grad):
            return (2 * grad,)

    with pytest.raises(TypeError, match="Twice.forward returned a (list|float), "
                                        "expected a numpy.ndarray"):
        fancydl.vjp(Twice.apply, rng.standard_normal(3))


def test_a_complex_result_from_traced_arguments_is_refused(rng):
    """A complex output used to be returned untraced: every gradient silently zero."""
    class Rotate(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1j

        @staticmethod
        def backward(ctx, grad):
            return (grad,)

    with pytest.raises(TypeError, match=r"Rotate: a complex result from traced "
                                        r"arguments cannot be differentiated"):
        fancydl.vjp(Rotate.apply, rng.standard_normal(3))
    assert Rotate.apply(np.ones(2)).dtype == np.complex128  # untraced: computed


def test_outer_values_computed_while_an_inner_grad_runs_keep_their_gradient(rng):
    """An inner grad on plain arrays may run while f computes with its own traced
    values (here, inside the inner function): their gradient is not cut, and the
    engine used to refuse them as nested."""
    x, w0 = rng.standard_normal(3), rng.standard_normal(2)

    def f(x):
        kept = {}

        def inner(w):
            kept["h"] = fancydl.tanh(x)  # x is traced by the outer vjp
            return fancydl.sum(w * w)

        scale = float(fancydl.grad(inner)(w0).sum())
        return kept["h"] * scale

    upstream = rng.standard_normal(3)
    (grad_x,) = fancydl.vjp(f, x)[1](upstream)
    np.testing.assert_allclose(grad_x, upstream * (1 - np.tanh(x) ** 2) * 2 * w0.sum())


def test_arguments_that_are_not_differentiated_are_not_walked(rng):
    """value_and_grad(loss)(w, data) flattened all of data (50,000 items: 73 ms a
    call), and a self-referencing argument hit the recursion limit."""
    data = [1.0]
    data.append(data)  # refers to itself
    value, grad_w = fancydl.value_and_grad(lambda w, d: fancydl.sum(w * d[0]))(
        np.ones(3), data)
    assert value == 3.0
    np.testing.assert_array_equal(grad_w, np.ones(3))


def test_each_thread_records_into_its_own_tape():
    """An operation of thread A recorded while thread B's vjp ran went to B's tape:
    A's in-place change went unnoticed and A's gradient was wrong."""
    x = np.array([1.0, 2.0, 3.0])
    b_inside, a_done, results = threading.Event(), threading.Event(), {}

    def f_a(a):
        b_inside.wait(5)
        return a * a

    def f_b(b):
        b_inside.set()
        a_done.wait(5)
        return b * 2.0

    def run_a():
        results["a"] = fancydl.vjp(f_a, x)
        a_done.set()

    threads = [threading.Thread(target=run_a),
               threading.Thread(target=lambda: fancydl.vjp(f_b, np.ones(3)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, pullback = results["a"]
    x *= 10
    with pytest.raises(RuntimeError, match="mul: argument 0 of vjp .* modified in place"):
        pullback(np.ones(3))


@pytest.mark.parametrize("upstream, dtype", [(np.ones(3) * (1 + 5j), "complex128"),
                                             (np.array([1, None, 2]), "object")])
def test_a_complex_or_object_upstream_gradient_is_refused(rng, upstream, dtype):
    _, pullback = fancydl.vjp(lambda a: a * 2.0, rng.standard_normal(3))
    with pytest.raises(TypeError, match=f"pullback: upstream gradient 0 must be a real "
                                        f"array .* got dtype {dtype}"):
        pullback(upstream)


def test_real_upstream_gradients_of_another_dtype_are_cast_as_in_torch(rng):
    _, pullback = fancydl.vjp(lambda a: a * 2.0, np.ones(2, np.float32))
    np.testing.assert_array_equal(pullback(np.array([1e300, 1]))[0], [np.inf, 2])
    np.testing.assert_array_equal(pullback(np.array([True, False]))[0], [2, 0])


def test_has_aux_accepts_a_named_tuple(rng):
    Result = collections.namedtuple("Result", "loss aux")
    x = rng.standard_normal(3)
    (loss, aux), g = fancydl.value_and_grad(
        lambda a: Result(fancydl.sum(a * a), a * 2.0), has_aux=True)(x)
    np.testing.assert_allclose(g, 2 * x)
    np.testing.assert_allclose(aux, 2 * x)
