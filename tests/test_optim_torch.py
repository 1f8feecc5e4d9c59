"""The optimizers and lr schedulers against PyTorch: the same parameters and gradient
sequence, several steps, every option; schedules step by step (with momentum where cycled) and
across state_dict round trips. Fixed expected values where a formula gives them by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tinygrad_cnn.optim import lr_scheduler

OPTIMIZERS = {
    "sgd-dampening": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    "sgd-maximize": ("SGD", dict(lr=0.1, momentum=0.5, maximize=True)),
    "adam-amsgrad": ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    "adamw-amsgrad": ("AdamW", dict(lr=0.05, betas=(0.8, 0.9), amsgrad=True)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop-centered-momentum": ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.8, centered=True, weight_decay=0.1)),
    "adagrad": ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.5, weight_decay=0.05)),
    "adadelta": ("Adadelta", dict()),
    "adadelta-options": ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
}
SHAPES = [(3, 2), (4,), ()]


def _gradients(steps, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def _run_ours(name, kwargs, init, grads, groups=None):
    params = [tg.Tensor(a.copy(), requires_grad=True) for a in init]
    spec = params if groups is None else [{"params": [params[i] for i in idx], **extra} for idx, extra in groups]
    opt = getattr(optim, name)(spec, **kwargs)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = tg.Tensor(g.copy())
        opt.step()
    return [p.array for p in params], opt


def _run_torch(torch, name, kwargs, init, grads, groups=None):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    spec = params if groups is None else [{"params": [params[i] for i in idx], **extra} for idx, extra in groups]
    opt = getattr(torch.optim, name)(spec, **kwargs)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("key", list(OPTIMIZERS))
def test_optimizer_matches_torch(key, dtype):
    torch = pytest.importorskip("torch")
    name, kwargs = OPTIMIZERS[key]
    init = [a.astype(dtype) for a in _gradients(1, dtype, seed=1)[0]]
    grads = _gradients(6, dtype)
    ours, _ = _run_ours(name, kwargs, init, grads)
    theirs = _run_torch(torch, name, kwargs, init, grads)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for a, b in zip(ours, theirs):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("name", ["RMSprop", "Adagrad", "Adadelta", "Adam"])
def test_per_group_options_match_torch(name):
    torch = pytest.importorskip("torch")
    init = _gradients(1, np.float64, seed=2)[0]
    grads = _gradients(4, np.float64)
    extra = {"Adam": {"amsgrad": True, "lr": 0.3}, "RMSprop": {"centered": True, "momentum": 0.5}}.get(name, {})
    groups = [([0, 2], {"weight_decay": 0.1, **extra}), ([1], {"lr": 0.02})]
    ours, _ = _run_ours(name, {}, init, grads, groups)
    for a, b in zip(ours, _run_torch(torch, name, {}, init, grads, groups)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_adagrad_and_adadelta_by_hand():
    (p,) = [tg.Tensor(np.array([1.0]), requires_grad=True)]
    opt = optim.Adagrad([p], lr=0.5, eps=0.0)
    for g in (2.0, 1.0):
        p.grad = tg.Tensor(np.array([g]))
        opt.step()
    np.testing.assert_allclose(p.data, [1 - 0.5 * 2 / 2 - 0.5 * 1 / math.sqrt(5)])
    q = tg.Tensor(np.array([0.0]), requires_grad=True)
    opt = optim.Adadelta([q], lr=1.0, rho=0.5, eps=1e-2)
    q.grad = tg.Tensor(np.array([4.0]))
    opt.step()  # sq = 0.5 * 16 = 8; delta = sqrt(0 + .01) / sqrt(8.01) * 4
    np.testing.assert_allclose(q.data, [-0.1 / math.sqrt(8.01) * 4])


def test_state_dict_round_trip_of_new_optimizers(tmp_path):
    init = _gradients(1, np.float64, seed=3)[0]
    grads = _gradients(6, np.float64)
    for key, (name, kwargs) in OPTIMIZERS.items():
        straight, _ = _run_ours(name, kwargs, init, grads)
        half, opt = _run_ours(name, kwargs, init, grads[:3])
        tg.save(opt.state_dict(), tmp_path / "opt.h5")
        resumed, _ = _run_ours(name, kwargs, [a.copy() for a in half], [])
        params = [tg.Tensor(a.copy(), requires_grad=True) for a in half]
        opt2 = getattr(optim, name)(params, **kwargs)
        opt2.load_state_dict(tg.load(tmp_path / "opt.h5"))
        for step in grads[3:]:
            for p, g in zip(params, step):
                p.grad = tg.Tensor(g.copy())
            opt2.step()
        for a, b in zip(straight, params):
            np.testing.assert_array_equal(a, b.data, err_msg=key)


def _steps(params, opt, grads, to_tensor):
    for step in grads:
        for p, g in zip(params, step):
            p.grad = to_tensor(g.copy())
        opt.step()


@pytest.mark.parametrize("key", list(OPTIMIZERS))
def test_optimizer_state_dicts_move_between_torch_and_us(key):
    """Three steps on one side, the state_dict carried across (Tensors converted one by one, nothing
    else touched), three more on the other side: the same parameters as six steps on either side.
    Both state_dicts have the same layout: state keyed by index, the same entries, float32 steps."""
    torch = pytest.importorskip("torch")
    name, kwargs = OPTIMIZERS[key]
    init = _gradients(1, np.float64, seed=4)[0]
    grads = _gradients(6, np.float64)
    straight = _run_torch(torch, name, kwargs, init, grads)

    half, ours = _run_ours(name, kwargs, init, grads[:3])
    state = ours.state_dict()
    params = [torch.tensor(a.copy(), requires_grad=True) for a in half]
    theirs = getattr(torch.optim, name)(params, **kwargs)
    _steps(params, theirs, grads[:1], torch.from_numpy)  # give torch state of its own to compare layouts
    reference = theirs.state_dict()
    assert state["state"].keys() == reference["state"].keys()
    for i, entry in state["state"].items():
        assert entry.keys() == reference["state"][i].keys()
        if "step" in entry:
            assert entry["step"].dtype == np.float32 and reference["state"][i]["step"].dtype == torch.float32
    theirs.load_state_dict(
        {
            "state": {
                i: {k: torch.from_numpy(v.numpy().copy()) for k, v in s.items()} for i, s in state["state"].items()
            },
            "param_groups": state["param_groups"],
        }
    )
    with torch.no_grad():
        for p, a in zip(params, half):
            p.copy_(torch.from_numpy(a))
    _steps(params, theirs, grads[3:], torch.from_numpy)
    for a, b in zip(straight, params):
        np.testing.assert_allclose(b.detach().numpy(), a, rtol=1e-12, atol=1e-14, err_msg=key)

    torch_params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    torch_opt = getattr(torch.optim, name)(torch_params, **kwargs)
    _steps(torch_params, torch_opt, grads[:3], torch.from_numpy)
    params_ours = [tg.Tensor(p.detach().numpy().copy(), requires_grad=True) for p in torch_params]
    ours = getattr(optim, name)(params_ours, **kwargs)
    ours.load_state_dict(torch_opt.state_dict())  # PyTorch's own, with its foreach/fused/... options
    _steps(params_ours, ours, grads[3:], tg.Tensor)
    for a, b in zip(straight, params_ours):
        np.testing.assert_allclose(b.detach().numpy(), a, rtol=1e-12, atol=1e-14, err_msg=key)


def test_zero_grad_and_closure():
    p = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = tg.Tensor(np.ones(2))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, 0)
    opt.zero_grad()
    assert p.grad is None

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 5.0
    np.testing.assert_allclose(p.data, [0.8, 1.6])


# --------------------------------------------------------------------------- schedulers

SCHEDULERS = {
    "StepLR": (lambda m, o: m.StepLR(o, 3, gamma=0.5), 12),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3), 12),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.8), 8),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=5, eta_min=0.001), 16),
    "LambdaLR": (lambda m, o: m.LambdaLR(o, lambda e: 1 / (1 + e)), 6),
    "LinearLR": (lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=4), 8),
    "LinearLR-decay": (lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=3), 6),
    "OneCycleLR": (lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=5), 15),
    "OneCycleLR-linear-3phase": (
        lambda m, o: m.OneCycleLR(o, 1.0, total_steps=20, anneal_strategy="linear", three_phase=True),
        20,
    ),
    "SequentialLR": (
        lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=3), m.ExponentialLR(o, 0.7)], milestones=[3]),
        10,
    ),
    "SequentialLR-cosine": (
        lambda m, o: m.SequentialLR(o, [m.ExponentialLR(o, 0.9), m.CosineAnnealingLR(o, 4)], milestones=[2]),
        10,
    ),
}


def _two_groups(lib, kind="sgd"):
    if lib is tg:
        a, b = tg.Tensor(np.ones(1), requires_grad=True), tg.Tensor(np.ones(2), requires_grad=True)
        opt_mod = optim
    else:
        a, b = lib.ones(1, requires_grad=True), lib.ones(2, requires_grad=True)
        opt_mod = lib.optim
    if kind == "adam":
        return opt_mod.Adam([{"params": [a], "lr": 0.1}, {"params": [b]}], lr=0.03)
    return opt_mod.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "momentum": 0.5}], lr=0.03, momentum=0.9)


def _history(sched, opt, steps, key="momentum"):
    rows = []
    for t in range(steps):
        if t:
            opt.step()
            sched.step()
        rows.append(list(sched.get_last_lr()) + [g["betas"][0] if key == "betas" else g[key] for g in opt.param_groups])
    return rows


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_matches_torch(name, kind):
    torch = pytest.importorskip("torch")
    make, steps = SCHEDULERS[name]
    key = "betas" if kind == "adam" else "momentum"
    ours_opt, their_opt = _two_groups(tg, kind), _two_groups(torch, kind)
    ours = _history(make(lr_scheduler, ours_opt), ours_opt, steps, key)
    theirs = _history(make(torch.optim.lr_scheduler, their_opt), their_opt, steps, key)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_state_dict_round_trip(name, tmp_path):
    make, steps = SCHEDULERS[name]
    opt = _two_groups(tg)
    sched = make(lr_scheduler, opt)
    _history(sched, opt, steps // 2)
    state = sched.state_dict()
    if name != "LambdaLR":  # its state holds no functions, but tg.save needs plain values
        tg.save(state, tmp_path / "s.h5")
        state = tg.load(tmp_path / "s.h5")
    opt2 = _two_groups(tg)
    sched2 = make(lr_scheduler, opt2)
    sched2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == sched.get_last_lr()
    rest = steps - steps // 2
    np.testing.assert_allclose(_history(sched2, opt2, rest)[1:], _history(sched, opt, rest)[1:], rtol=1e-12)


def test_chained_schedulers_match_torch():
    torch = pytest.importorskip("torch")
    results = []
    for lib, mod in ((tg, lr_scheduler), (torch, torch.optim.lr_scheduler)):
        opt = _two_groups(lib)
        first, second = mod.ExponentialLR(opt, 0.9), mod.MultiStepLR(opt, [2, 4], 0.5)
        lrs = []
        for _ in range(6):
            opt.step()
            first.step()
            second.step()
            lrs.append(second.get_last_lr())
        results.append(lrs)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_reduce_lr_on_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.95, 0.95, 0.91, 0.96, 0.97, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    for kwargs in (
        dict(patience=1),
        dict(mode="max", factor=0.5, patience=0, threshold=0.05, threshold_mode="abs", cooldown=2),
        dict(patience=2, min_lr=[0.05, 0.0]),
    ):
        histories = []
        for lib, mod in ((tg, lr_scheduler), (torch, torch.optim.lr_scheduler)):
            opt = _two_groups(lib)
            sched = mod.ReduceLROnPlateau(opt, **kwargs)
            rows = []
            for m in metrics:
                opt.step()
                sched.step(m)
                rows.append(sched.get_last_lr())
            histories.append(rows)
        np.testing.assert_allclose(histories[0], histories[1], rtol=1e-12, err_msg=str(kwargs))


def test_one_cycle_by_hand():
    opt = optim.SGD([tg.Tensor(np.ones(1), requires_grad=True)], lr=1.0)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.2, anneal_strategy="linear")
    assert sched.get_last_lr() == [1 / 25] and opt.param_groups[0]["momentum"] == 0.95
    sched.step()  # the end of the warm-up: step 0.2 * 10 - 1 = 1
    assert sched.get_last_lr() == [1.0] and opt.param_groups[0]["momentum"] == pytest.approx(0.85)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, epochs=2)
