"""The capstone chapter's network (fancydl.models): shapes, modes, gradients, errors,
step-for-step agreement with PyTorch, the accuracy it reaches, and its exercises."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fancydl
from fancydl import models
from fancydl.exercises import NOT_ATTEMPTED, verdict
from fancydl.exercises import training_cnn as answers
from fancydl.tree import tree_leaves


def small_network(seed=0, **options):
    rng = np.random.default_rng(seed)
    params, buffers = models.init_lenet(rng, channels=(3, 4), **options)
    x = rng.random((6, 1, 8, 8))
    target = rng.integers(0, 10, 6)
    return params, buffers, x, target


# --- the network ---------------------------------------------------------------------

@pytest.mark.parametrize("batch_norm", [True, False])
def test_init_lenet_shapes_dtypes_and_buffers(batch_norm):
    params, buffers = models.init_lenet(np.random.default_rng(0), channels=(5, 7),
                                        image_size=12, num_classes=4,
                                        batch_norm=batch_norm, dtype=np.float32)
    conv1, conv2 = params["block1"]["conv"], params["block2"]["conv"]
    assert conv1["weight"].shape == (5, 1, 3, 3) and conv2["weight"].shape == (7, 5, 3, 3)
    assert ("bias" in conv1) is (not batch_norm)  # BN would subtract a conv bias again
    assert params["fc"]["weight"].shape == (4, 7 * 3 * 3)
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(params))
    if batch_norm:
        assert params["block2"]["bn"]["weight"].shape == (7,)
        np.testing.assert_array_equal(buffers["block1"]["running_var"], np.ones(5))
    else:
        assert buffers == {} and "bn" not in params["block1"]


def test_parameter_count_matches_the_exercise():
    params, _ = models.init_lenet(np.random.default_rng(0))
    assert models.count_parameters(params) == answers.parameter_count()


@pytest.mark.parametrize("pooling", models.POOLINGS)
@pytest.mark.parametrize("training", [True, False])
def test_lenet_gives_one_logit_per_class(pooling, training):
    params, buffers, x, _ = small_network()
    logits = models.lenet(params, x, buffers, training=training, pooling=pooling,
                          rng=np.random.default_rng(1))
    assert logits.shape == (6, 10) and logits.dtype == np.float64
    assert np.all(np.isfinite(logits))


def test_training_mode_updates_buffers_and_evaluation_mode_uses_them():
    params, buffers, x, _ = small_network()
    before = copy.deepcopy(buffers)
    models.lenet(params, x, buffers, training=False)
    np.testing.assert_array_equal(buffers["block1"]["running_mean"],
                                  before["block1"]["running_mean"])
    models.lenet(params, x, buffers, training=True)
    assert not np.allclose(buffers["block1"]["running_mean"],
                           before["block1"]["running_mean"])
    # With batch statistics as running statistics, evaluation equals training mode.
    pre = fancydl.conv2d(x, params["block1"]["conv"]["weight"], padding=1)
    exact = {"running_mean": pre.mean(axis=(0, 2, 3)),
             "running_var": pre.var(axis=(0, 2, 3))}
    bn = params["block1"]["bn"]
    np.testing.assert_allclose(
        fancydl.batch_norm(pre, exact["running_mean"], exact["running_var"],
                           bn["weight"], bn["bias"]),
        fancydl.batch_norm(pre, None, None, bn["weight"], bn["bias"], training=True),
        rtol=1e-12, atol=1e-12)


def test_gradients_of_the_loss_pass_gradcheck():
    params, _, x, target = small_network(batch_norm=True)
    report = fancydl.gradcheck(lambda p: models.lenet_loss(p, x, target), params)
    assert report, report
    params, buffers, x, target = small_network(seed=3, batch_norm=False)
    report = fancydl.gradcheck(
        lambda p: models.lenet_loss(p, x, target, pooling="avg"), params)
    assert report, report


def test_train_step_lowers_the_loss_and_updates_in_place():
    params, buffers, x, target = small_network()
    weight = params["fc"]["weight"]
    running = buffers["block2"]["running_var"].copy()
    optimizer = fancydl.optim.SGD(params, lr=0.1)
    losses = [models.train_step(params, buffers, optimizer, x, target) for _ in range(5)]
    assert isinstance(losses[0], float) and losses[-1] < losses[0]
    assert params["fc"]["weight"] is weight  # the same arrays, updated in place
    assert not np.allclose(buffers["block2"]["running_var"], running)


def test_evaluate_counts_correct_predictions_and_keeps_buffers():
    params, buffers, x, target = small_network()
    models.lenet(params, x, buffers, training=True)
    before = copy.deepcopy(buffers)
    loss, accuracy = models.evaluate(params, buffers, x, target, batch_size=4)
    logits = models.lenet(params, x, buffers, training=False)
    assert accuracy == np.mean(logits.argmax(axis=1) == target)
    assert loss == pytest.approx(float(fancydl.cross_entropy(logits, target)), rel=1e-12)
    models.evaluate(params, buffers, x, target, training=True)
    for name in before:
        for key in before[name]:
            np.testing.assert_array_equal(buffers[name][key], before[name][key])


def test_bad_arguments_are_named():
    params, buffers, x, target = small_network()
    with pytest.raises(ValueError, match="pooling"):
        models.lenet(params, x, buffers, pooling="median")
    with pytest.raises(TypeError, match="rng"):
        models.lenet(params, x, buffers, pooling="stochastic")
    with pytest.raises(ValueError, match="buffers"):
        models.lenet(params, x, None, training=False)
    with pytest.raises(TypeError, match="rng"):
        models.init_lenet(0)
    with pytest.raises(ValueError, match="image_size"):
        models.init_lenet(np.random.default_rng(0), image_size=6)
    with pytest.raises(ValueError, match="same length"):
        models.evaluate(params, buffers, x, target[:3])
    with pytest.raises(ValueError, match="batch_size"):
        models.evaluate(params, buffers, x, target, batch_size=0)


# --- step for step with PyTorch --------------------------------------------------------

def run_both(make_fancydl, make_torch, steps, batch_norm=True, pooling="max"):
    """Losses of ``steps`` training steps in fancydl and in torch, from equal weights."""
    torch = pytest.importorskip("torch")
    x_train, y_train, _, _ = fancydl.data.load_digits()
    params, buffers = models.init_lenet(np.random.default_rng(0), batch_norm=batch_norm)
    model = models.lenet_torch(params, buffers, pooling=pooling)
    ours, theirs = make_fancydl(params), make_torch(model.parameters())
    rng = np.random.default_rng(1)
    feed = (batch for _ in range(steps) for batch in fancydl.data.batches(
        x_train, y_train, batch_size=64, shuffle=True, rng=rng))
    losses = []
    for _, (xb, yb) in zip(range(steps), feed):
        loss = models.train_step(params, buffers, ours, xb, yb, pooling=pooling)
        theirs.zero_grad()
        torch_loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xb)),
                                                       torch.from_numpy(yb))
        torch_loss.backward()
        theirs.step()
        losses.append((loss, torch_loss.item()))
    return np.array(losses), params, buffers, model


@pytest.fixture
def torch_one_thread():
    """This network is too small to gain from threads, which a loaded machine slows."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.mark.torch
@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_same_loss_as_pytorch_at_every_step(optimizer, torch_one_thread):
    torch = torch_one_thread
    if optimizer == "sgd_momentum":
        make = (lambda p: fancydl.optim.SGD(p, lr=0.05, momentum=0.9),
                lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9))
    else:
        make = (lambda p: fancydl.optim.Adam(p, lr=0.01),
                lambda p: torch.optim.Adam(p, lr=0.01))
    losses, params, buffers, model = run_both(*make, steps=25)
    relative = np.abs(losses[:, 0] - losses[:, 1]) / np.abs(losses[:, 1])
    assert len(losses) == 25 and relative.max() < 1e-10, relative.max()
    assert losses[-5:, 0].mean() < 0.5 * losses[0, 0]  # it did learn
    final = model.state_dict()
    np.testing.assert_allclose(params["fc"]["weight"], final["9.weight"].numpy(),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(buffers["block2"]["running_var"],
                               final["5.running_var"].numpy(), rtol=1e-9)


@pytest.mark.torch
def test_same_loss_as_pytorch_without_batch_norm_with_average_pooling(torch_one_thread):
    torch = torch_one_thread
    losses, *_ = run_both(lambda p: fancydl.optim.SGD(p, lr=0.1, momentum=0.9),
                          lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                          steps=20, batch_norm=False, pooling="avg")
    relative = np.abs(losses[:, 0] - losses[:, 1]) / np.abs(losses[:, 1])
    assert relative.max() < 1e-10, relative.max()


@pytest.mark.torch
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(2, 5),
       channels=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       image_size=st.sampled_from([4, 8]), batch_norm=st.booleans(),
       training=st.booleans(), pooling=st.sampled_from(["max", "avg"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_logits_and_gradients_match_torch_nn(seed, batch, channels, image_size,
                                              batch_norm, training, pooling, dtype):
    """Forward and every parameter gradient, for a random upstream gradient."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    params, buffers = models.init_lenet(rng, channels=channels, image_size=image_size,
                                        num_classes=3, batch_norm=batch_norm, dtype=dtype)
    for stats in buffers.values():  # running statistics away from their (0, 1) start
        stats["running_mean"][:] = rng.standard_normal(stats["running_mean"].shape)
        stats["running_var"][:] = rng.random(stats["running_var"].shape) + 0.5
    x = rng.random((batch, 1, image_size, image_size)).astype(dtype)
    upstream = rng.standard_normal((batch, 3)).astype(dtype)
    model = models.lenet_torch(params, buffers, pooling=pooling).train(training)

    logits, pullback = fancydl.vjp(
        lambda p: models.lenet(p, x, buffers, training=training, pooling=pooling), params)
    (grads,) = pullback(upstream)
    torch_logits = model(torch.from_numpy(x))
    torch_logits.backward(torch.from_numpy(upstream))

    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), **tol)
    for ours, theirs in zip(tree_leaves(grads), model.parameters(), strict=True):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), **tol)
    norms = [m for m in model if isinstance(m, torch.nn.BatchNorm2d)]
    for stats, module in zip(buffers.values(), norms):
        np.testing.assert_allclose(stats["running_var"], module.running_var.numpy(), **tol)


def test_lenet_torch_refuses_stochastic_pooling():
    pytest.importorskip("torch")
    params, buffers, _, _ = small_network()
    with pytest.raises(ValueError, match="pooling"):
        models.lenet_torch(params, buffers, pooling="stochastic")


def test_the_chapter_recipe_reaches_97_percent():
    x_train, y_train, x_test, y_test = fancydl.data.load_digits()
    params, buffers = models.init_lenet(np.random.default_rng(0))
    optimizer = fancydl.optim.Adam(params, lr=0.01)
    rng = np.random.default_rng(1)
    for _ in range(5):  # the chapter's recipe
        for xb, yb in fancydl.data.batches(x_train, y_train, batch_size=64,
                                           shuffle=True, rng=rng):
            models.train_step(params, buffers, optimizer, xb, yb)
    assert models.evaluate(params, buffers, x_test, y_test)[1] >= 0.97


# --- the exercises -----------------------------------------------------------------------

def test_parameter_count_exercise_refuses_near_misses():
    assert verdict("training_cnn.parameter_count", 6138)[0] == "pass"
    for wrong in (6090, 6186, 6042):  # no BN; BN plus conv biases; BN without fc bias
        assert verdict("training_cnn.parameter_count", wrong)[0] == "fail"
    assert verdict("training_cnn.parameter_count", ...)[0] == NOT_ATTEMPTED


def _step_with(update, **options):
    """A train-step answer whose parameter update and options are given."""
    def train_step(params, buffers, x, target, lr):
        loss, grads = fancydl.value_and_grad(models.lenet_loss)(params, x, target,
                                                                buffers=buffers, **options)
        for param, grad in zip(tree_leaves(params), tree_leaves(grads)):
            update(param, grad, lr)
        return float(loss), params, buffers
    return train_step


def _descend(param, grad, lr):
    param -= lr * grad


def test_train_step_exercise_accepts_the_solution_and_refuses_mistakes():
    name = "training_cnn.train_step"
    assert verdict(name, answers.sgd_train_step)[0] == "pass"
    assert verdict(name, _step_with(_descend))[0] == "pass"

    def ascend(param, grad, lr):
        param += lr * grad

    def forget_lr(param, grad, lr):
        param -= grad

    def new_array(param, grad, lr):
        param = param - lr * grad  # noqa: F841  (rebinds a name: params unchanged)

    for wrong in (_step_with(ascend), _step_with(forget_lr), _step_with(new_array),
                  _step_with(_descend, training=False)):
        status, message = verdict(name, wrong)
        assert status == "fail" and "differs" in message

    def no_buffers(params, buffers, x, target, lr):
        # Training mode but running statistics never updated.
        return _step_with(_descend)(params, None, x, target, lr)[:2] + (buffers,)

    assert verdict(name, no_buffers)[0] == "fail"

    def with_optimizer(params, buffers, x, target, lr):
        optimizer = fancydl.optim.SGD(params, lr=lr)
        loss = models.train_step(params, buffers, optimizer, x, target)
        return loss, params, buffers

    status, message = verdict(name, with_optimizer)  # the exercise says by hand
    assert status == "fail" and "not to use `fancydl.optim.SGD`" in message

    def stub(params, buffers, x, target, lr):
        raise NotImplementedError

    assert verdict(name, stub)[0] == NOT_ATTEMPTED


def test_batch_norm_eval_exercise_refuses_batch_statistics_and_missing_eps():
    name = "training_cnn.batch_norm_eval"
    assert verdict(name, answers.batch_norm_eval)[0] == "pass"

    def with_fancydl(x, mean, var, weight, bias):
        return fancydl.batch_norm(x, mean, var, weight, bias)

    status, message = verdict(name, with_fancydl)  # the exercise says NumPy only
    assert status == "fail" and "not to use `fancydl.batch_norm`" in message

    def batch_statistics(x, mean, var, weight, bias):
        return fancydl.batch_norm(x, None, None, weight, bias, training=True)

    def no_eps(x, mean, var, weight, bias):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return ((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape))
                * weight.reshape(shape) + bias.reshape(shape))

    def variance_not_std(x, mean, var, weight, bias):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return ((x - mean.reshape(shape)) / (var.reshape(shape) + 1e-5)
                * weight.reshape(shape) + bias.reshape(shape))

    for wrong in (batch_statistics, no_eps, variance_not_std):
        assert verdict(name, wrong)[0] == "fail"
