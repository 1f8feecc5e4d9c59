"""Tests for tinygrad_cnn.optim: update rules (by hand, against a NumPy reference and against
torch.optim), param groups, state dicts, validation, and learning-rate schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import optim

# ----------------------------------------------------------------------------------------------------
# Helpers

SHAPES = [(3, 4), (5,), (1,)]  # 0-d parameters: see test_sgd_momentum_on_a_0d_parameter


def initial_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def grad_fn(i, t, p):
    """A gradient that depends on the parameter, the parameter's index and the step."""
    rng = np.random.default_rng([i, t])
    a = rng.uniform(0.5, 1.5, np.shape(p))
    b = rng.standard_normal(np.shape(p))
    return np.asarray(a * p + b, dtype=p.dtype)  # an ndarray also for 0-d parameters


def make_params(arrays):
    return [tg.Tensor(a.copy(), requires_grad=True) for a in arrays]


def set_grads(params, t):
    for i, p in enumerate(params):
        p.grad = tg.Tensor(grad_fn(i, t, p.data))


def run(opt, params, steps, start=0):
    traj = []
    for t in range(start, start + steps):
        set_grads(params, t)
        opt.step()
        traj.append([p.array.copy() for p in params])
    return traj


def run_ours(cls, kwargs, steps=5, dtype=np.float64):
    params = make_params(initial_params(dtype))
    return run(cls(params, **kwargs), params, steps)


def run_torch(torch, name, kwargs, steps=5, dtype=np.float64):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in initial_params(dtype)]
    opt = getattr(torch.optim, name)(params, **kwargs)
    traj = []
    for t in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(grad_fn(i, t, p.detach().numpy().copy()))
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj


def ref_sgd(p, g, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """PyTorch's documented SGD algorithm, written out in NumPy."""
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        if "buf" not in state:
            state["buf"] = g.copy()
        else:
            state["buf"] = momentum * state["buf"] + (1 - dampening) * g
        g = g + momentum * state["buf"] if nesterov else state["buf"]
    return p - lr * g


def ref_adam(p, g, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """Adam / AdamW as in the papers with PyTorch's bias correction, written out in NumPy."""
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay:
        g = g + weight_decay * p
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    v = state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def run_ref(update, kwargs, steps=5):
    params = initial_params()
    states = [{} for _ in params]
    traj = []
    for t in range(steps):
        pairs = enumerate(zip(params, states, strict=True))
        params = [update(p, grad_fn(i, t, p), s, **kwargs) for i, (p, s) in pairs]
        traj.append([p.copy() for p in params])
    return traj


def assert_traj_close(got, want, rtol=1e-12, atol=1e-14):
    assert len(got) == len(want)
    for t, (g_step, w_step) in enumerate(zip(got, want, strict=True)):
        for i, (g, w) in enumerate(zip(g_step, w_step, strict=True)):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"step {t}, param {i}")


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.2),
]
ADAM_CONFIGS = [
    dict(lr=0.01),
    dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.1, betas=(0.5, 0.9), weight_decay=0.5),
]
ADAMW_CONFIGS = [
    dict(lr=0.01),  # default weight_decay=1e-2 in both libraries
    dict(lr=0.05, weight_decay=0.5, betas=(0.5, 0.9)),
    dict(lr=0.01, weight_decay=0.0, eps=1e-4),
]
ALL_CONFIGS = (
    [("SGD", c) for c in SGD_CONFIGS] + [("Adam", c) for c in ADAM_CONFIGS] + [("AdamW", c) for c in ADAMW_CONFIGS]
)


def config_id(item):
    name, kwargs = item
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


# ----------------------------------------------------------------------------------------------------
# Hand-computed updates


def one_param(value, grads, cls, **kwargs):
    p = tg.Tensor(np.array([value], dtype=np.float64), requires_grad=True)
    opt = cls([p], **kwargs)
    out = []
    for g in grads:
        p.grad = tg.Tensor(np.array([g], dtype=np.float64))
        opt.step()
        out.append(float(p.data[0]))
    return out


def test_sgd_by_hand():
    approx = pytest.approx
    assert one_param(1.0, [0.5], optim.SGD, lr=0.1) == approx([0.95], abs=1e-15)
    assert one_param(-2.0, [0.25, -1.0], optim.SGD, lr=0.1) == approx([-2.025, -1.925], abs=1e-15)
    # weight decay: g' = g + wd * p = 1 + 0.1 * 1
    assert one_param(1.0, [1.0], optim.SGD, lr=0.1, weight_decay=0.1) == approx([0.89], abs=1e-15)
    # momentum: buf = g; then buf = 0.9 * buf + g = 1.9
    assert one_param(1.0, [1.0, 1.0], optim.SGD, lr=0.1, momentum=0.9) == approx([0.9, 0.71], abs=1e-15)
    # dampening applies from the second step: buf = 0.9 * 1 + 0.5 * 1 = 1.4
    got = one_param(1.0, [1.0, 1.0], optim.SGD, lr=0.1, momentum=0.9, dampening=0.5)
    assert got == approx([0.9, 0.76], abs=1e-15)
    # nesterov: g + 0.9 * buf: 1.9, then buf = 1.9, 1 + 0.9 * 1.9 = 2.71
    got = one_param(1.0, [1.0, 1.0], optim.SGD, lr=0.1, momentum=0.9, nesterov=True)
    assert got == approx([0.81, 0.539], abs=1e-15)


def test_adam_by_hand():
    approx = pytest.approx
    # With a constant gradient the bias-corrected moments are g and g^2: each step is lr * g / (|g| + eps).
    step = 0.1 * 0.5 / (0.5 + 1e-8)
    assert one_param(1.0, [0.5, 0.5], optim.Adam, lr=0.1) == approx([1 - step, 1 - 2 * step], abs=1e-12)
    # L2 weight decay goes into the gradient (g' = 0.5 + 0.5 * 1 = 1.0, so the first step is ~lr) ...
    got = one_param(1.0, [0.5], optim.Adam, lr=0.1, weight_decay=0.5)
    assert got == approx([1 - 0.1 * 1.0 / (1.0 + 1e-8)], abs=1e-12)
    # ... AdamW decays the weight directly: p = 1 * (1 - 0.1 * 0.5) = 0.95, then the Adam step.
    got = one_param(1.0, [0.5], optim.AdamW, lr=0.1, weight_decay=0.5)
    assert got == approx([0.95 - step], abs=1e-12)
    # Second step by hand, changing gradient: m = 0.9*0.1*0.5 + 0.1*(-1), v = 0.999*0.001*0.25 + 0.001*1
    m, v = 0.9 * 0.05 - 0.1, 0.999 * 0.00025 + 0.001
    p2 = (1 - step) - 0.1 * (m / (1 - 0.9**2)) / (math.sqrt(v / (1 - 0.999**2)) + 1e-8)
    assert one_param(1.0, [0.5, -1.0], optim.Adam, lr=0.1) == approx([1 - step, p2], abs=1e-12)


@pytest.mark.parametrize("item", ALL_CONFIGS, ids=config_id)
def test_against_numpy_reference(item):
    name, kwargs = item
    cls = getattr(optim, name)
    if name == "SGD":
        want = run_ref(ref_sgd, kwargs)
    else:
        ref_kwargs = dict(kwargs, decoupled=name == "AdamW")
        if name == "AdamW":
            ref_kwargs.setdefault("weight_decay", 1e-2)
        want = run_ref(ref_adam, ref_kwargs)
    assert_traj_close(run_ours(cls, kwargs), want)


@pytest.mark.parametrize("item", ALL_CONFIGS, ids=config_id)
def test_against_torch_float64(item):
    torch = pytest.importorskip("torch")
    name, kwargs = item
    want = run_torch(torch, name, kwargs)
    got = run_ours(getattr(optim, name), kwargs)
    assert_traj_close(got, want)


@pytest.mark.parametrize("item", [ALL_CONFIGS[2], ALL_CONFIGS[9], ALL_CONFIGS[12]], ids=config_id)
def test_against_torch_float32_updates_in_float32(item):
    torch = pytest.importorskip("torch")
    name, kwargs = item
    want = run_torch(torch, name, kwargs, dtype=np.float32)
    got = run_ours(getattr(optim, name), kwargs, dtype=np.float32)
    assert all(p.dtype == np.float32 for step in got for p in step)
    assert_traj_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("grad_from", ["backward", "ndarray"])
def test_sgd_momentum_on_a_0d_parameter(grad_from):
    p = tg.Tensor(np.array(1.0), requires_grad=True)
    wd = 0.0 if grad_from == "backward" else 0.1
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=wd)
    want, buf = 1.0, None
    for _ in range(3):
        opt.zero_grad()
        if grad_from == "backward":
            (p * p).backward()  # gradient 2 p
        else:
            p.grad = tg.Tensor(np.array(2 * float(p.data)))
        opt.step()
        g = 2 * want + wd * want
        buf = g if buf is None else 0.9 * buf + g
        want -= 0.1 * buf
    assert float(p.data) == pytest.approx(want, rel=1e-12)


def test_params_without_gradient_are_skipped():
    a, b = make_params([np.ones(3), np.ones(2)])
    opt = optim.Adam([a, b], lr=0.1)
    b.grad = tg.Tensor(np.full(2, 0.5))
    opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))
    assert (b.data < 1).all()
    assert a not in opt.state and opt.state[b]["step"] == 1  # state is kept per parameter, as PyTorch


def test_gradient_shape_mismatch_is_an_error():
    (p,) = make_params([np.ones(3)])
    with pytest.raises(RuntimeError, match="different size"):  # PyTorch refuses it at assignment
        p.grad = tg.Tensor(np.ones(4))
    assert p.grad is None


def test_zero_grad():
    a, b, c = make_params([np.ones(3), np.ones(2), np.ones(1)])
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 1.0}], lr=0.1)
    for p in (a, b, c):
        p.grad = tg.Tensor(np.ones_like(p.data))
    opt.zero_grad()
    assert a.grad is None and b.grad is None and c.grad is None
    opt.step()  # nothing to do
    np.testing.assert_array_equal(a.data, np.ones(3))


def test_param_groups_with_different_lr():
    a, b = make_params([np.zeros(2), np.zeros(2)])
    opt = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b], "momentum": 0.5}], lr=0.1, momentum=0.9)
    g0, g1 = opt.param_groups
    assert g0["lr"] == 0.5 and g0["momentum"] == 0.9  # defaults fill what a group leaves out
    assert g1["lr"] == 0.1 and g1["momentum"] == 0.5
    for _ in range(2):
        a.grad, b.grad = tg.ones(2, dtype=a.dtype), tg.ones(2, dtype=b.dtype)
        opt.step()
    np.testing.assert_allclose(a.data, -(0.5 * 1 + 0.5 * 1.9) * np.ones(2), rtol=1e-15)
    np.testing.assert_allclose(b.data, -(0.1 * 1 + 0.1 * 1.5) * np.ones(2), rtol=1e-15)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_param_groups_against_torch(name):
    torch = pytest.importorskip("torch")
    arrays = initial_params()
    defaults = dict(lr=0.05, weight_decay=0.01) | (dict(momentum=0.9) if name == "SGD" else {})
    group_opts = [dict(lr=0.2), dict(weight_decay=0.3)]

    ours = make_params(arrays)
    opt = getattr(optim, name)(
        [{"params": ours[:2], **group_opts[0]}, {"params": ours[2:], **group_opts[1]}], **defaults
    )
    got = run(opt, ours, 4)

    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    topt = getattr(torch.optim, name)(
        [{"params": theirs[:2], **group_opts[0]}, {"params": theirs[2:], **group_opts[1]}], **defaults
    )
    want = []
    for t in range(4):
        for i, p in enumerate(theirs):
            p.grad = torch.from_numpy(grad_fn(i, t, p.detach().numpy().copy()))
        topt.step()
        want.append([p.detach().numpy().copy() for p in theirs])
    assert_traj_close(got, want)


# ----------------------------------------------------------------------------------------------------
# state_dict / load_state_dict


OPTIMIZERS_FOR_STATE = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.01)),
    ("AdamW", dict(lr=0.05, betas=(0.8, 0.95))),
]


@pytest.mark.parametrize("via_file", [False, True], ids=["in-memory", "h5"])
@pytest.mark.parametrize("item", OPTIMIZERS_FOR_STATE, ids=config_id)
def test_state_dict_round_trip_continues_identically(item, via_file, tmp_path):
    name, kwargs = item
    cls = getattr(optim, name)
    params = make_params(initial_params())
    opt = cls(params, **kwargs)
    run(opt, params, 3)
    state = opt.state_dict()
    assert state["param_groups"][0]["params"] == [0, 1, 2]
    if via_file:
        tg.save({"optimizer": state}, tmp_path / "opt.h5")
        state = tg.load(tmp_path / "opt.h5")["optimizer"]

    # A fresh optimizer with other hyper-parameters, over copies of the current parameters.
    params2 = make_params([p.array for p in params])
    opt2 = cls(params2, lr=123.0)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    assert opt2.param_groups[0]["params"][0] is params2[0]  # the parameters themselves are not replaced

    cont1 = run(opt, params, 3, start=3)
    cont2 = run(opt2, params2, 3, start=3)
    for s1, s2 in zip(cont1, cont2, strict=True):
        for a, b in zip(s1, s2, strict=True):
            np.testing.assert_array_equal(a, b)


def test_state_dict_holds_tensors_sharing_the_state_as_pytorch():
    """PyTorch's layout and meaning: state keyed by parameter index, Tensors sharing the optimizer's
    memory (an in-place change shows), the step a float32 0-d Tensor; the groups are copies."""
    params = make_params(initial_params())
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, 2)
    state = opt.state_dict()
    assert sorted(state["state"]) == list(range(len(params)))
    entry = state["state"][0]
    assert all(isinstance(v, tg.Tensor) for v in entry.values())
    assert entry["step"].dtype == np.float32 and entry["step"].shape == () and entry["step"].item() == 2
    entry["exp_avg"][...] = 99.0
    assert (opt.state[params[0]]["exp_avg"] == 99.0).all()
    state["param_groups"][0]["lr"] = 99.0
    assert opt.param_groups[0]["lr"] == 0.1


def test_state_dict_lists_only_parameters_with_state():
    params = make_params(initial_params())
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    assert opt.state_dict()["state"] == {}
    params[1].grad = tg.ones_like(params[1])
    opt.step()
    assert list(opt.state_dict()["state"]) == [1]


def test_load_state_dict_casts_state_to_the_parameter_dtype():
    params = make_params(initial_params())
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, 1)
    params32 = make_params([p.array.astype(np.float32) for p in params])
    opt32 = optim.SGD(params32, lr=0.1, momentum=0.9)
    opt32.load_state_dict(opt.state_dict())
    assert all(s["momentum_buffer"].dtype == np.float32 for s in opt32.state.values())


def test_load_state_dict_group_count_mismatch():
    params = make_params(initial_params())
    state = optim.SGD(params, lr=0.1).state_dict()
    other = optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups or parameters"):
        other.load_state_dict(state)


def test_load_state_dict_param_count_mismatch():
    params = make_params(initial_params())
    state = optim.Adam(params[:2], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="different number"):
        optim.Adam(params, lr=0.1).load_state_dict(state)


def test_load_state_dict_state_shape_mismatch():
    params = make_params([np.ones(3), np.ones(2)])
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, 1)
    other_params = make_params([np.ones(3), np.ones(5)])
    other = optim.Adam(other_params, lr=0.1)
    before = dict(other.state)
    with pytest.raises(ValueError, match=r"parameter 1 has shape \(2,\), the parameter has \(5,\)"):
        other.load_state_dict(opt.state_dict())
    assert dict(other.state) == before and other.param_groups[0]["lr"] == 0.1


def test_load_state_dict_state_of_a_parameter_that_is_not_there():
    params = make_params(initial_params())
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, 1)
    state = opt.state_dict()
    state["state"][len(params)] = state["state"][0]
    other = optim.Adam(make_params(initial_params()), lr=0.1)
    with pytest.raises(ValueError, match=f"an entry for parameter {len(params)}; this optimizer has {len(params)}"):
        other.load_state_dict(state)
    assert not other.state


def test_load_state_dict_of_the_list_layout_earlier_versions_saved():
    params = make_params(initial_params())
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, 1)
    state = opt.state_dict()
    old = {"param_groups": state["param_groups"], "state": [
        {k: (int(v.item()) if k == "step" else v.numpy().copy()) for k, v in state["state"][i].items()}
        for i in range(len(params))
    ]}  # fmt: skip
    other = optim.Adam(make_params(initial_params()), lr=0.1)
    other.load_state_dict(old)
    for p, q in zip(params, other.param_groups[0]["params"], strict=True):
        assert other.state[q]["step"] == 1 and type(other.state[q]["step"]) is int
        np.testing.assert_array_equal(other.state[q]["exp_avg"], opt.state[p]["exp_avg"])


# ----------------------------------------------------------------------------------------------------
# Validation


def _p():
    return make_params([np.ones(2)])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optim.SGD(_p(), lr=-0.1), "lr must be >= 0"),
        (lambda: optim.SGD(_p(), lr=0.1, momentum=-0.5), "momentum must be >= 0"),
        (lambda: optim.SGD(_p(), lr=0.1, weight_decay=-1e-4), "weight_decay must be >= 0"),
        (lambda: optim.SGD(_p(), lr=0.1, nesterov=True), "Nesterov"),
        (lambda: optim.SGD(_p(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
        (lambda: optim.SGD([{"params": _p(), "lr": -1.0}], lr=0.1), "lr must be >= 0"),
        (lambda: optim.Adam(_p(), lr=-1e-3), "lr must be >= 0"),
        (lambda: optim.Adam(_p(), weight_decay=-0.1), "weight_decay must be >= 0"),
        (lambda: optim.Adam(_p(), betas=(1.0, 0.999)), "betas"),
        (lambda: optim.Adam(_p(), betas=(0.9, 1.0)), "betas"),
        (lambda: optim.Adam(_p(), betas=(-0.1, 0.999)), "betas"),
        (lambda: optim.AdamW(_p(), lr=-1e-3), "lr must be >= 0"),
        (lambda: optim.AdamW(_p(), weight_decay=-1e-2), "weight_decay must be >= 0"),
        (lambda: optim.AdamW(_p(), betas=(0.9, 1.5)), "betas"),
        (lambda: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda: optim.Adam(iter([])), "empty parameter list"),
        (lambda: optim.StepLR(optim.SGD(_p(), lr=0.1), step_size=0), "step_size"),
        (lambda: optim.CosineAnnealingLR(optim.SGD(_p(), lr=0.1), T_max=0), "T_max"),
        (lambda: optim.OneCycleLR(optim.SGD(_p(), lr=0.1), max_lr=0.1, total_steps=0), "total_steps"),
        (lambda: optim.OneCycleLR(optim.SGD(_p(), lr=0.1), max_lr=0.1, total_steps=1, pct_start=1.0), "no step"),
    ],
)
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: optim.Adam(_p(), eps=-1e-8), id="Adam-eps<0"),
        pytest.param(lambda: optim.AdamW(_p(), eps=-1e-8), id="AdamW-eps<0"),
        pytest.param(lambda: optim.Adam(_p(), lr=float("nan")), id="Adam-lr=nan"),
    ],
)
def test_invalid_adam_eps_and_nan_lr(make):
    with pytest.raises(ValueError):
        make()


def test_parameters_must_require_grad():
    with pytest.raises(TypeError, match="parameter 1"):
        optim.SGD([tg.Tensor(np.ones(2), requires_grad=True), tg.Tensor(np.ones(2))], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD([np.ones(2)], lr=0.1)


# ----------------------------------------------------------------------------------------------------
# Learning-rate schedules


def step_lr(base, t, step_size, gamma):
    return base * gamma ** (t // step_size)


def cosine_lr(base, t, T_max, eta_min):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2


def one_cycle_lr(t, max_lr, total, pct_start=0.3, div=25.0, final_div=1e4):
    lo, hi = max_lr / div, max_lr / div / final_div
    warm = pct_start * total - 1

    def anneal(start, end, frac):
        return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2

    if t <= warm:
        return anneal(lo, max_lr, t / warm)
    return anneal(max_lr, hi, (t - warm) / (total - 1 - warm))


SCHEDULES = {
    "StepLR": (
        lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
        lambda t, base: step_lr(base, t, 3, 0.5),
        dict(step_size=3, gamma=0.5),
        15,
    ),
    "CosineAnnealingLR": (
        lambda o: optim.CosineAnnealingLR(o, T_max=8, eta_min=1e-3),
        lambda t, base: cosine_lr(base, t, 8, 1e-3),
        dict(T_max=8, eta_min=1e-3),
        30,
    ),
    "CosineAnnealingLR-eta0": (
        lambda o: optim.CosineAnnealingLR(o, T_max=5),
        lambda t, base: cosine_lr(base, t, 5, 0.0),
        dict(T_max=5),
        12,
    ),
    "OneCycleLR": (
        lambda o: optim.OneCycleLR(o, max_lr=0.2, total_steps=20),
        lambda t, base: one_cycle_lr(t, 0.2, 20),
        dict(max_lr=0.2, total_steps=20),
        21,
    ),
    "OneCycleLR-one-step": (  # all of training is one batch, which PyTorch allows
        lambda o: optim.OneCycleLR(o, max_lr=0.003, total_steps=1),
        lambda t, base: one_cycle_lr(t, 0.003, 1),
        dict(max_lr=0.003, total_steps=1),
        2,
    ),
    "OneCycleLR-custom": (
        lambda o: optim.OneCycleLR(
            o, max_lr=1.0, total_steps=37, pct_start=0.25, div_factor=10.0, final_div_factor=100.0
        ),
        lambda t, base: one_cycle_lr(t, 1.0, 37, 0.25, 10.0, 100.0),
        dict(max_lr=1.0, total_steps=37, pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
        38,
    ),
}
BASE_LRS = [0.1, 0.03]


def lr_history(sched, steps, first=True):
    """The lr of ``steps`` consecutive epochs: the current one (if ``first``), then after each step()."""
    lrs = []
    for t in range(steps):
        if t or not first:
            sched.step()
        lrs.append(sched.get_last_lr())
    return lrs


def two_group_sgd():
    a, b = make_params([np.ones(2), np.ones(3)])
    return optim.SGD([{"params": [a], "lr": BASE_LRS[0]}, {"params": [b], "lr": BASE_LRS[1]}], lr=0.5)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_closed_form(name):
    make, formula, _, steps = SCHEDULES[name]
    got = lr_history(make(two_group_sgd()), steps)
    want = [[formula(t, base) for base in BASE_LRS] for t in range(steps)]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-17)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_against_torch(name):
    torch = pytest.importorskip("torch")
    make, _, kwargs, steps = SCHEDULES[name]
    got = lr_history(make(two_group_sgd()), steps)

    ta, tb = torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)
    topt = torch.optim.SGD([{"params": [ta], "lr": BASE_LRS[0]}, {"params": [tb], "lr": BASE_LRS[1]}], lr=0.5)
    cls = name.split("-")[0]
    tsched = getattr(torch.optim.lr_scheduler, cls)(topt, **kwargs)
    want = [tsched.get_last_lr()]
    for _ in range(steps - 1):
        topt.step()
        tsched.step()
        want.append(tsched.get_last_lr())
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


def test_schedule_key_values():
    opt = optim.SGD(_p(), lr=0.5)
    sched = optim.OneCycleLR(opt, max_lr=0.2, total_steps=20)
    lrs = [lr[0] for lr in lr_history(sched, 20)]  # t = 0 .. 19
    assert lrs[0] == pytest.approx(0.2 / 25)
    assert lrs[5] == pytest.approx(0.2)  # the warm-up ends at pct_start * total_steps - 1
    assert max(lrs) == lrs[5]
    assert lrs[19] == pytest.approx(0.2 / 25 / 1e4)
    assert np.all(np.diff(lrs[:6]) > 0) and np.all(np.diff(lrs[5:]) < 0)
    sched.step()  # to total_steps, as torch allows
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()
    cos = optim.CosineAnnealingLR(optim.SGD(_p(), lr=0.1), T_max=4, eta_min=0.01)
    lrs = [lr[0] for lr in lr_history(cos, 9)]
    assert lrs[0] == pytest.approx(0.1) and lrs[4] == pytest.approx(0.01) and lrs[8] == pytest.approx(0.1)


def test_schedule_drives_the_optimizer_updates():
    (p,) = make_params([np.zeros(1)])
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = tg.Tensor(np.ones(1))
        opt.step()
        sched.step()
    np.testing.assert_allclose(p.data, [-(1 + 0.5 + 0.25)])
    assert sched.get_last_lr() == [0.125] and opt.param_groups[0]["initial_lr"] == 1.0


@pytest.mark.parametrize("via_file", [False, True], ids=["in-memory", "h5"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_state_dict_round_trip(name, via_file, tmp_path):
    make, _, _, steps = SCHEDULES[name]
    sched = make(two_group_sgd())
    k = steps // 2
    lr_history(sched, k + 1)  # k steps
    state = sched.state_dict()
    assert state["last_epoch"] == k
    if via_file:
        tg.save(state, tmp_path / "sched.h5")
        state = tg.load(tmp_path / "sched.h5")
    sched2 = make(two_group_sgd())
    sched2.load_state_dict(state)
    assert sched2.last_epoch == k
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert sched2.optimizer.param_groups[1]["lr"] == sched.optimizer.param_groups[1]["lr"]
    assert lr_history(sched2, steps - 1 - k, first=False) == lr_history(sched, steps - 1 - k, first=False)


class SignMomentum(optim.Optimizer):
    """A user's optimizer, built like SGD and Adam: it says nothing about the state it keeps."""

    def __init__(self, params, lr=0.01, beta=0.9):
        super().__init__(params, {"lr": lr, "beta": beta})

    def update(self, p, g, state, group):
        velocity = state.get("velocity")
        state["velocity"] = g.copy() if velocity is None else group["beta"] * velocity + g
        p -= group["lr"] * np.sign(state["velocity"])


def test_a_users_optimizer_subclass_round_trips_its_state_dict():
    """The base class declares everything load_state_dict reads (it used to read an attribute only
    SGD and Adam set, so a user's subclass crashed there)."""
    rng = np.random.default_rng(0)
    x, start = rng.standard_normal(5), rng.standard_normal(5)

    def train(opt, w, steps):
        for _ in range(steps):
            opt.zero_grad()
            (((w * tg.Tensor(x)).sum() - 1.0) ** 2).backward()
            opt.step()

    w = tg.Tensor(start.copy(), requires_grad=True)
    opt = SignMomentum([w], lr=0.1)
    train(opt, w, 2)
    saved, w_saved = opt.state_dict(), w.array.copy()
    train(opt, w, 3)

    resumed = tg.Tensor(w_saved, requires_grad=True)
    again = SignMomentum([resumed], lr=0.5)
    again.load_state_dict(saved)
    assert again.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(again.state[resumed]["velocity"], saved["state"][0]["velocity"])
    train(again, resumed, 3)
    np.testing.assert_array_equal(resumed.data, w.data)
    with pytest.raises(ValueError, match="different optimizer"):
        optim.SGD([resumed], lr=0.1, momentum=0.9).load_state_dict(saved)
