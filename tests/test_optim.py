"""fancydl.optim (SGD, Adam, AdamW, StepLR, CosineAnnealingLR) against torch.optim.

The property tests draw hyperparameters (every flag), a few parameters of random shapes
and a random gradient sequence with None gradients mid-sequence, run fancydl and torch
side by side, and compare the parameters and the optimizer state after every step.
"""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fancydl import optim
from fancydl.optim import lr_scheduler

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def _torch():
    return pytest.importorskip("torch")


# --- hyperparameters -------------------------------------------------------------------

unit = st.floats(0.0, 1.0, allow_nan=False)
maybe_zero = st.one_of(st.just(0.0), st.floats(1e-4, 0.2))


@st.composite
def sgd_kwargs(draw):
    nesterov = draw(st.booleans())   # valid only with momentum > 0, no dampening
    if nesterov:
        momentum, dampening = draw(st.floats(0.05, 0.99)), 0.0
    else:
        momentum = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)))
        dampening = draw(st.one_of(st.just(0.0), unit))
    return dict(lr=draw(st.floats(0.0, 0.5)), momentum=momentum, dampening=dampening,
                weight_decay=draw(maybe_zero), nesterov=nesterov,
                maximize=draw(st.booleans()))


@st.composite
def adam_kwargs(draw):
    beta = st.one_of(st.just(0.0), st.floats(0.0, 0.999), st.just(0.9), st.just(0.999))
    return dict(lr=draw(st.floats(0.0, 0.5)), betas=(draw(beta), draw(beta)),
                eps=draw(st.sampled_from([0.0, 1e-12, 1e-8, 1e-3, 0.1])),
                weight_decay=draw(maybe_zero), amsgrad=draw(st.booleans()),
                maximize=draw(st.booleans()))


OPTIMIZERS = {"SGD": sgd_kwargs(), "Adam": adam_kwargs(), "AdamW": adam_kwargs()}


@st.composite
def problems(draw, dtypes=DTYPES):
    """Initial parameters, a gradient sequence (None entries included), dtype."""
    dtype = draw(st.sampled_from(dtypes))
    n_params = draw(st.integers(1, 3))
    shapes = [tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
              for _ in range(n_params)]
    n_steps = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    skip = draw(st.lists(st.lists(st.booleans(), min_size=n_params, max_size=n_params),
                         min_size=n_steps, max_size=n_steps))
    grads = [[None if skip[t][i] else rng.standard_normal(s).astype(dtype)
              for i, s in enumerate(shapes)] for t in range(n_steps)]
    return params, grads, dtype


# --- running both sides ----------------------------------------------------------------

class TorchSide:
    """A torch optimizer over tensors copied from the same initial parameters."""

    def __init__(self, name, params, kwargs):
        torch = _torch()
        self.tensors = [torch.tensor(p.copy(), requires_grad=True) for p in params]
        self.opt = getattr(torch.optim, name)(self.tensors, **kwargs)

    def step(self, grads):
        torch = _torch()
        for t, g in zip(self.tensors, grads):
            t.grad = None if g is None else torch.tensor(g)
        self.opt.step()

    def params(self):
        return [t.detach().numpy() for t in self.tensors]

    def state(self, i):
        return {k: (v.item() if k == "step" else v.numpy())
                for k, v in self.opt.state.get(self.tensors[i], {}).items()}


def _assert_close(ours, theirs, dtype):
    # Relative to the size of the whole array: entries close to 0 after a
    # cancellation carry the absolute error of their neighbours.
    rtol = RTOL[dtype]
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)


def _assert_same_state(ours, side, dtype):
    for i in range(len(side.tensors)):
        theirs = side.state(i)
        mine = ours.state.get(i, {})
        assert set(mine) == set(theirs)
        for key, value in theirs.items():
            if key == "step":
                assert mine[key] == value
            else:
                assert mine[key].dtype == dtype
                _assert_close(mine[key], value, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@given(data=st.data())
def test_matches_torch_over_a_gradient_sequence(name, data):
    kwargs = data.draw(OPTIMIZERS[name])
    params, grad_seq, dtype = data.draw(problems())
    side = TorchSide(name, params, kwargs)
    ours = [p.copy() for p in params]
    opt = getattr(optim, name)(ours, **kwargs)
    for grads in grad_seq:
        opt.step(grads)
        side.step(grads)
        for mine, theirs in zip(ours, side.params()):
            assert mine.dtype == dtype
            _assert_close(mine, theirs, dtype)
        _assert_same_state(opt, side, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@given(data=st.data())
def test_dict_params_match_torch(name, data):
    kwargs = data.draw(OPTIMIZERS[name])
    params, grad_seq, dtype = data.draw(problems())
    names = [f"layer{i}" for i in range(len(params))][::-1]   # not sorted order
    tree = {"net": {n: p.copy() for n, p in zip(names, params)}}
    side = TorchSide(name, params, kwargs)
    opt = getattr(optim, name)(tree, **kwargs)
    for grads in grad_seq:
        # A dict of grads with its keys in another order is the same structure.
        opt.step({"net": dict(reversed(list(zip(names, grads))))})
        side.step(grads)
    for n, theirs in zip(names, side.params()):
        _assert_close(tree["net"][n], theirs, dtype)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@given(data=st.data())
def test_state_dict_round_trip_continues_identically(name, data):
    kwargs = data.draw(OPTIMIZERS[name])
    params, grad_seq, dtype = data.draw(problems())
    cut = data.draw(st.integers(0, len(grad_seq)))
    straight = [p.copy() for p in params]
    opt = getattr(optim, name)(straight, **kwargs)
    for grads in grad_seq[:cut]:
        opt.step(grads)
    saved = opt.state_dict()
    resumed = [p.copy() for p in straight]
    fresh_kwargs = dict(kwargs, lr=0.123)   # hyperparameters come from the state too
    opt2 = getattr(optim, name)(resumed, **fresh_kwargs)
    opt2.load_state_dict(saved)
    for grads in grad_seq[cut:]:
        opt.step(grads)
        opt2.step(grads)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]


def test_state_dict_is_a_copy():
    params = [np.ones(3)]
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    opt.step([np.ones(3)])
    saved = opt.state_dict()
    saved["state"][0]["momentum_buffer"][:] = 100.0
    saved["param_groups"][0]["lr"] = 5.0
    assert opt.state[0]["momentum_buffer"][0] == 1.0
    assert opt.param_groups[0]["lr"] == 0.1
    opt2 = optim.SGD([np.ones(3)], lr=0.1, momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    opt2.state[0]["momentum_buffer"][:] = 7.0
    assert opt.state[0]["momentum_buffer"][0] == 1.0


def test_state_dict_layout_is_torchs():
    torch = _torch()
    params = [np.ones((2, 2), np.float32), np.zeros(3, np.float32)]
    opt = optim.Adam(params, lr=0.01, amsgrad=True)
    opt.step([np.ones((2, 2), np.float32), None])
    t = [torch.tensor(p) for p in params]
    topt = torch.optim.Adam(t, lr=0.01, amsgrad=True)
    t[0].grad = torch.ones((2, 2))
    topt.step()
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert set(ours["state"]) == set(theirs["state"]) == {0}
    assert set(ours["state"][0]) == set(theirs["state"][0])
    assert ours["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
    assert set(ours["param_groups"][0]) <= set(theirs["param_groups"][0])


# --- the edge rules, spelled out ------------------------------------------------------

def test_sgd_first_step_buffer_is_the_gradient_without_dampening():
    params = [np.zeros(2)]
    opt = optim.SGD(params, lr=1.0, momentum=0.5, dampening=0.9)
    opt.step([np.array([1.0, 2.0])])
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], [1.0, 2.0])
    np.testing.assert_array_equal(params[0], [-1.0, -2.0])
    opt.step([np.array([1.0, 2.0])])   # buf = 0.5 * buf + 0.1 * g
    np.testing.assert_allclose(opt.state[0]["momentum_buffer"], [0.6, 1.2])


def test_sgd_without_momentum_keeps_no_state():
    opt = optim.SGD([np.zeros(2)], lr=1.0)
    opt.step([np.ones(2)])
    assert opt.state == {}


def test_none_gradient_leaves_param_and_state_untouched():
    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = optim.Adam(params, lr=0.1)
    opt.step({"a": np.ones(3), "b": np.ones(2)})
    b_before, state_before = params["b"].copy(), copy.deepcopy(opt.state[1])
    opt.step({"a": np.ones(3), "b": None})
    np.testing.assert_array_equal(params["b"], b_before)
    assert opt.state[1]["step"] == state_before["step"] == 1
    np.testing.assert_array_equal(opt.state[1]["exp_avg"], state_before["exp_avg"])
    assert opt.state[0]["step"] == 2


def test_updates_are_in_place_and_keep_dtype():
    w = np.ones((2, 3), np.float32)
    params = {"w": w}
    for cls in (optim.SGD, optim.Adam, optim.AdamW):
        cls(params, lr=0.1).step({"w": np.full((2, 3), 0.5, np.float32)})
        assert params["w"] is w and w.dtype == np.float32


def test_numpy_scalar_hyperparameters_do_not_promote_float32():
    w = np.ones(3, np.float32)
    opt = optim.SGD([w], lr=np.float64(0.1), momentum=np.float64(0.5))
    opt.param_groups[0]["lr"] = np.float64(0.2)
    opt.step([np.ones(3, np.float32)])
    assert w.dtype == np.float32 and opt.state[0]["momentum_buffer"].dtype == np.float32
    np.testing.assert_allclose(w, 0.8)


def test_adamw_decay_is_decoupled_and_adam_decay_is_coupled():
    a, b = [np.array([2.0])], [np.array([2.0])]
    optim.AdamW(a, lr=0.1, weight_decay=0.5).step([np.array([0.0])])
    optim.Adam(b, lr=0.1, weight_decay=0.5).step([np.array([0.0])])
    np.testing.assert_allclose(a[0], [2.0 * (1 - 0.05)])   # shrink only
    np.testing.assert_allclose(b[0], [2.0 - 0.1], rtol=1e-7)  # Adam step of sign(1.0)


def test_amsgrad_divides_by_the_running_maximum():
    params = [np.zeros(1)]
    opt = optim.Adam(params, lr=1.0, betas=(0.0, 0.5), eps=0.0, amsgrad=True)
    opt.step([np.array([2.0])])                     # v = 2, max = 2
    opt.step([np.array([0.0])])                     # m = 0: no move, v = 1, max = 2
    assert opt.state[0]["max_exp_avg_sq"][0] == 2.0
    before = params[0].copy()
    opt.step([np.array([1.0])])                     # v = 1, max stays 2
    bias2 = np.sqrt(1 - 0.5 ** 3)
    np.testing.assert_allclose(before - params[0], 1.0 / (np.sqrt(2.0) / bias2))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_maximize_is_descent_on_the_negated_gradient(name):
    g = [np.array([0.3, -1.0]), np.array([2.0, 0.5])]
    up, down = [np.ones(2)], [np.ones(2)]
    opt_up = getattr(optim, name)(up, lr=0.1, maximize=True)
    opt_down = getattr(optim, name)(down, lr=0.1)
    for grad in g:
        opt_up.step([grad])
        opt_down.step([-grad])
    np.testing.assert_array_equal(up[0], down[0])


# --- schedulers -------------------------------------------------------------------------

SCHEDULERS = {
    "StepLR": st.fixed_dictionaries({"step_size": st.integers(1, 5),
                                     "gamma": st.floats(0.05, 2.0)}),
    "CosineAnnealingLR": st.fixed_dictionaries({"T_max": st.integers(1, 8),
                                                "eta_min": st.sampled_from(
                                                    [0.0, 1e-4, 0.01])}),
}


@pytest.mark.torch
@pytest.mark.parametrize("sched_name", list(SCHEDULERS))
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@given(data=st.data())
def test_scheduler_drives_optimizer_as_torch(sched_name, opt_name, data):
    torch = _torch()
    sched_kwargs = data.draw(SCHEDULERS[sched_name])
    opt_kwargs = data.draw(OPTIMIZERS[opt_name])
    opt_kwargs["lr"] = data.draw(st.floats(1e-3, 0.5))
    # float64: up to 26 steps of float32 Adam (beta2 = 0, say, where the step is
    # about lr·sign(m)) can amplify a last-bit difference from PyTorch's fused
    # kernels past float32's tolerance; the per-step float32 tests are above.
    params, grad_seq, dtype = data.draw(problems(dtypes=(np.float64,)))
    epochs = 3 * sched_kwargs.get("T_max", sched_kwargs.get("step_size")) + 2
    side = TorchSide(opt_name, params, opt_kwargs)
    tsched = getattr(torch.optim.lr_scheduler, sched_name)(side.opt, **sched_kwargs)
    ours = [p.copy() for p in params]
    opt = getattr(optim, opt_name)(ours, **opt_kwargs)
    sched = getattr(lr_scheduler, sched_name)(opt, **sched_kwargs)
    for epoch in range(epochs):
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert opt.param_groups[0]["lr"] == side.opt.param_groups[0]["lr"]
        assert sched.last_epoch == tsched.last_epoch == epoch
        grads = grad_seq[epoch % len(grad_seq)]
        opt.step(grads)
        side.step(grads)
        sched.step()
        tsched.step()
    for mine, theirs in zip(ours, side.params()):
        _assert_close(mine, theirs, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("T_max", [1, 2, 5, 10, 50])
def test_cosine_annealing_values_equal_torchs_over_three_periods(T_max):
    torch = _torch()
    opt = optim.SGD([np.zeros(1)], lr=0.3)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max, eta_min=0.001)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max, eta_min=0.001)
    ours, theirs = [], []
    for _ in range(3 * T_max + 3):
        ours.append(sched.get_last_lr()[0])
        theirs.append(tsched.get_last_lr()[0])
        topt.step()
        sched.step()
        tsched.step()
    assert ours == theirs
    closed = [0.001 + 0.5 * (0.3 - 0.001) * (1 + np.cos(np.pi * t / T_max))
              for t in range(3 * T_max + 3)]
    np.testing.assert_allclose(ours, closed, rtol=1e-10, atol=1e-14)


@pytest.mark.torch
@pytest.mark.parametrize("sched_name", list(SCHEDULERS))
def test_scheduler_state_dict_round_trip_and_resume(sched_name):
    torch = _torch()
    kwargs = {"StepLR": dict(step_size=3, gamma=0.5),
              "CosineAnnealingLR": dict(T_max=4, eta_min=0.01)}[sched_name]
    opt = optim.SGD([np.zeros(1)], lr=0.2)
    sched = getattr(lr_scheduler, sched_name)(opt, **kwargs)
    for _ in range(5):
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    tsched = getattr(torch.optim.lr_scheduler, sched_name)(topt, **kwargs)
    for _ in range(5):
        topt.step()
        tsched.step()
    for key, value in saved_sched.items():
        assert tsched.state_dict()[key] == value

    # Restored into a fresh pair, the schedule carries on identically.
    opt2 = optim.SGD([np.zeros(1)], lr=0.2)
    sched2 = getattr(lr_scheduler, sched_name)(opt2, **kwargs)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    # ... and a scheduler resumed with last_epoch does as torch's.
    opt3 = optim.SGD([np.zeros(1)], lr=0.2)
    opt3.load_state_dict(saved_opt)
    sched3 = getattr(lr_scheduler, sched_name)(opt3, last_epoch=5, **kwargs)
    tsched3 = getattr(torch.optim.lr_scheduler, sched_name)(topt, last_epoch=5, **kwargs)
    for _ in range(8):
        sched.step()
        sched2.step()
        sched3.step()
        topt.step()
        tsched3.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
        assert sched3.get_last_lr() == tsched3.get_last_lr()
        assert sched3.last_epoch == tsched3.last_epoch


def test_steplr_closed_form():
    opt = optim.Adam([np.zeros(1)], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    rates = []
    for _ in range(10):
        rates.append(sched.get_last_lr()[0])
        sched.step()
    assert rates == [0.5 ** (t // 3) for t in range(10)]


# --- bad input ------------------------------------------------------------------------

def _p():
    return [np.zeros(3)]


BAD_CONSTRUCTION = [
    (lambda: optim.SGD(_p(), lr=-0.1), ValueError, r"lr must be >= 0.0, got -0.1"),
    (lambda: optim.SGD(_p(), lr=float("nan")), ValueError, "lr"),
    (lambda: optim.SGD(_p(), lr="0.1"), TypeError, "lr must be a real number"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=-0.5), ValueError, "momentum.*-0.5"),
    (lambda: optim.SGD(_p(), lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
    (lambda: optim.SGD(_p(), lr=0.1, nesterov=True), ValueError,
     r"nesterov=True requires momentum > 0.*momentum=0"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     ValueError, "nesterov.*dampening=0.1"),
    (lambda: optim.SGD(_p(), lr=0.1, nesterov=1), TypeError, "nesterov must be a bool"),
    (lambda: optim.SGD(_p(), lr=0.1, maximize="no"), TypeError, "maximize"),
    (lambda: optim.Adam(_p(), lr=-1.0), ValueError, "Adam: lr"),
    (lambda: optim.Adam(_p(), eps=-1e-8), ValueError, "eps must be >= 0.0, got -1e-08"),
    (lambda: optim.Adam(_p(), betas=(1.0, 0.999)), ValueError,
     r"betas\[0\] must be in \[0, 1\), got 1.0"),
    (lambda: optim.Adam(_p(), betas=(0.9, -0.1)), ValueError, r"betas\[1\].*-0.1"),
    (lambda: optim.AdamW(_p(), betas=(0.9, 1.5)), ValueError, r"AdamW: betas\[1\]"),
    (lambda: optim.Adam(_p(), betas=0.9), TypeError, "betas must be a pair"),
    (lambda: optim.Adam(_p(), weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda: optim.AdamW(_p(), amsgrad=None), TypeError, "amsgrad must be a bool"),
    (lambda: optim.SGD([], lr=0.1), ValueError, "at least one array, got an empty list"),
    (lambda: optim.SGD({}, lr=0.1), ValueError, "empty dict"),
    (lambda: optim.SGD([np.zeros(3, np.int64)], lr=0.1), TypeError,
     r"params\[0\] must have dtype float32 or float64, got int64"),
    (lambda: optim.SGD({"w": [1.0, 2.0]}, lr=0.1), TypeError,
     r"params\['w'\]\[0\] must be a numpy.ndarray, got float"),
]


@pytest.mark.parametrize("make, error, match", BAD_CONSTRUCTION)
def test_bad_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_read_only_and_repeated_params_are_refused():
    frozen = np.zeros(3)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match=r"params\['w'\] must be writeable"):
        optim.SGD({"w": frozen}, lr=0.1)
    w = np.zeros(3)
    with pytest.raises(ValueError, match=r"appears twice.*params\[0\] and params\[1\]"):
        optim.Adam([w, w])


def _tree():
    return {"conv": {"weight": np.zeros((2, 3)), "bias": np.zeros(2)},
            "fc": [np.zeros(4, np.float32)]}


BAD_GRADS = [
    ({"conv": {"weight": np.zeros((2, 3))}, "fc": [np.zeros(4, np.float32)]},
     ValueError, r"grads\['conv'\] must have the keys.*missing \['bias'\]"),
    ({"conv": {"weight": np.zeros((2, 3)), "bias": np.zeros(2), "x": None},
      "fc": [np.zeros(4, np.float32)]}, ValueError, r"unexpected \['x'\]"),
    ({"conv": {"weight": np.zeros((3, 2)), "bias": np.zeros(2)},
      "fc": [np.zeros(4, np.float32)]}, ValueError,
     r"grads\['conv'\]\['weight'\] must have the shape of params\['conv'\]\['weight'\], "
     r"\(2, 3\), got \(3, 2\)"),
    ({"conv": {"weight": np.zeros((2, 3)), "bias": np.zeros(2)},
      "fc": [np.zeros(4, np.float64)]}, TypeError,
     r"grads\['fc'\]\[0\] must have the dtype of params\['fc'\]\[0\], float32, got float64"),
    ({"conv": {"weight": np.zeros((2, 3)), "bias": np.zeros(2)}, "fc": []},
     ValueError, r"grads\['fc'\] must have 1 entries like params\['fc'\], got 0"),
    ({"conv": {"weight": np.zeros((2, 3)), "bias": 0.0}, "fc": [None]},
     TypeError, r"grads\['conv'\]\['bias'\] must be a numpy.ndarray or None, got float"),
    ({"conv": [np.zeros((2, 3)), np.zeros(2)], "fc": [None]},
     TypeError, r"grads\['conv'\] must be a dict like params\['conv'\], got list"),
    ([np.zeros((2, 3)), np.zeros(2), np.zeros(4, np.float32)],
     TypeError, "grads must be a dict like params, got list"),
    ({"conv": {"weight": np.zeros((2, 3)), "bias": np.zeros(2)}, "fc": np.zeros(4)},
     TypeError, r"grads\['fc'\] must be a list or tuple like params\['fc'\], got ndarray"),
]


@pytest.mark.parametrize("grads, error, match", BAD_GRADS)
@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_bad_grads_are_refused_and_nothing_moves(cls, grads, error, match):
    params = _tree()
    opt = cls(params, lr=0.1)
    params["conv"]["weight"] += 1.0
    with pytest.raises(error, match=f"{cls.__name__}.step: .*" + match):
        opt.step(grads)
    np.testing.assert_array_equal(params["conv"]["weight"], 1.0)
    assert opt.state == {}


def test_tuple_and_list_grads_are_interchangeable():
    params = (np.zeros(2), np.zeros(1))
    optim.SGD(params, lr=1.0).step([np.ones(2), None])
    np.testing.assert_array_equal(params[0], [-1.0, -1.0])


BAD_LOADS = [
    (lambda sd: {"state": sd["state"]}, "keys 'state' and 'param_groups'"),
    (lambda sd: dict(sd, param_groups=[dict(sd["param_groups"][0], params=[0])]),
     "the saved state has 1 parameters, this optimizer has 2"),
    (lambda sd: dict(sd, state={0: {"momentum_buffer": np.zeros(5)}}),
     r"state\[0\]\['momentum_buffer'\] has shape \(5,\) but params\[0\] has shape \(3,\)"),
    (lambda sd: dict(sd, state={7: {"momentum_buffer": np.zeros(3)}}),
     "state key 7 is not a parameter index"),
    (lambda sd: optim.Adam([np.zeros(3), np.zeros(2)]).state_dict(),
     "saved hyperparameters.*are not those of SGD"),
]


@pytest.mark.parametrize("corrupt, match", BAD_LOADS)
def test_bad_state_dict_is_refused(corrupt, match):
    opt = optim.SGD([np.zeros(3), np.zeros(2)], lr=0.1, momentum=0.9)
    opt.step([np.ones(3), np.ones(2)])
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(corrupt(opt.state_dict()))


BAD_SCHEDULERS = [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), ValueError, "step_size must be >= 1"),
    (lambda o: lr_scheduler.StepLR(o, step_size=2.5), TypeError, "step_size must be an int"),
    (lambda o: lr_scheduler.StepLR(o, 2, gamma="x"), TypeError, "gamma"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be >= 1"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=3, eta_min=None), TypeError,
     "eta_min"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, 3, last_epoch=-2), ValueError,
     "last_epoch must be >= -1"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, 3, last_epoch=4), KeyError,
     "initial_lr"),
    (lambda o: lr_scheduler.StepLR("opt", 3), TypeError,
     "optimizer must be a fancydl.optim optimizer, got str"),
    (lambda o: lr_scheduler.StepLR(o, 3).load_state_dict({"last_epoch": 2}), ValueError,
     "state_dict must have the keys"),
]


@pytest.mark.parametrize("make, error, match", BAD_SCHEDULERS)
def test_bad_scheduler_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make(optim.SGD([np.zeros(1)], lr=0.1))


def test_structure_is_fixed_at_construction():
    params = {"w": np.zeros(2)}
    opt = optim.SGD(params, lr=1.0)
    params["late"] = np.zeros(3)   # not a parameter of opt
    with pytest.raises(ValueError, match=r"unexpected \['late'\]"):
        opt.step({"w": np.ones(2), "late": np.ones(3)})
    opt.step({"w": np.ones(2)})
    np.testing.assert_array_equal(params["w"], -1.0)


# --- documentation ----------------------------------------------------------------------

def test_docstring_examples_run():
    import doctest

    from fancydl.optim import adam, optimizer, sgd

    for module in (sgd, adam, optimizer, lr_scheduler):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
    assert doctest.testmod(sgd).attempted > 0
