"""Optimizers and learning-rate schedules with PyTorch's update rules.

Updates happen in place on each parameter's array (no graph is recorded), using the
parameter's own dtype: a float32 model is updated in float32.

``state_dict()`` differs from PyTorch's in one respect: ``"state"`` is a list with one dict per
parameter (in parameter order) instead of a dict keyed by int, so that it can be stored in an
HDF5 checkpoint as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .inplace import check_writable
from .tensor import Tensor


class Optimizer:
    """Base class: holds ``param_groups`` (dicts of ``params`` and hyper-parameters) and per-parameter state."""

    # The entries one parameter's state holds, so that load_state_dict refuses the state of another
    # kind of optimizer. None (a subclass that does not say): any entries. With _state_keys_all, a
    # parameter's state holds all of them once it holds any (Adam's step, exp_avg, exp_avg_sq).
    _state_keys: frozenset[str] | None = None
    _state_keys_all: bool = False

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, Tensor) or not isinstance(params, Iterable):
            raise TypeError(
                f"{name}: params must be an iterable of tensors (e.g. model.parameters(), or [t]), "
                f"got {type(params).__name__}"
            )
        given: list[Any] = list(params)
        if not given:
            raise ValueError(f"{name}: got an empty parameter list")
        groups = given if isinstance(given[0], dict) else [{"params": given}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for group in groups:
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"{name}: a parameter group must be a dict with a 'params' list, got {group!r:.80}")
            members = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
            group = {**defaults, **group, "params": members}
            for p in group["params"]:
                i = len(seen)
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{name}: parameter {i} is not a Tensor that requires grad")
                if p.grad_fn is not None:
                    raise ValueError(
                        f"{name}: parameter {i} (shape {p.shape}) is not a leaf tensor: it was computed "
                        "by an op, so backward never fills its .grad; pass the tensor you created"
                    )
                if id(p) in seen:
                    raise ValueError(
                        f"{name}: parameter {i} (shape {p.shape}) is listed twice; it would be updated twice per step"
                    )
                seen.add(id(p))
            self._check_hyperparameters(group)
            self.param_groups.append(group)
        self.state: list[dict[str, Any]] = [{} for _ in self._params()]

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        for key in ("lr", "weight_decay", "momentum", "eps", "dampening"):
            if key not in group:
                continue
            value = group[key]
            if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name}: {key} must be a number, got {value!r}")
            if not value >= 0 or value == math.inf:  # also rejects NaN
                raise ValueError(f"{name}: {key} must be >= 0 and finite, got {value}")
        if "betas" in group:
            betas = group["betas"]
            try:
                b1, b2 = (float(b) for b in betas)
            except (TypeError, ValueError):
                raise TypeError(f"{name}: betas must be a pair of numbers, got {betas!r}") from None
            if not (0 <= b1 < 1 and 0 <= b2 < 1):
                raise ValueError(f"{name}: betas must be in [0, 1), got {betas}")

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self) -> None:
        """Clear the gradients (set ``.grad`` to None) of every parameter."""
        for p in self._params():
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient.

        Raises :class:`~tinygrad_cnn.autograd.InPlaceError` (and changes nothing) if a parameter is
        still saved by a graph that has not run backward: updating it would corrupt that backward.
        """
        name = type(self).__name__
        for index, p in enumerate(self._params()):  # check everything first: no half-done step
            if p.grad is not None:
                if np.shape(p.grad) != p.shape:
                    raise ValueError(
                        f"{name}.step: gradient shape {np.shape(p.grad)} does not match "
                        f"parameter {index} of shape {p.shape}"
                    )
                check_writable(p.data, f"{name}.step: parameter {index} (shape {p.shape})")
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p.data, np.asarray(p.grad, dtype=p.dtype), self.state[index], group)
                index += 1

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters and per-parameter state (copies), parameters referred to by index."""
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            hyper = {k: v for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": list(range(start, start + n))})
            start += n
        state = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in self.state]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. Everything is checked first; on an error nothing changes."""
        name = type(self).__name__
        if (
            not isinstance(state_dict, dict)
            or not isinstance(state_dict.get("param_groups"), list)
            or not isinstance(state_dict.get("state"), list)
            or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in state_dict["param_groups"])
            or not all(isinstance(s, dict) for s in state_dict["state"])
        ):
            raise ValueError(
                f"{name}.load_state_dict: expected {{'state': [dict per parameter], 'param_groups': "
                f"[dict with 'params']}} as returned by state_dict(), got {str(state_dict)[:120]}"
            )
        groups = state_dict["param_groups"]
        own_keys = set(self.defaults)
        for g in groups:
            saved_keys = set(g) - {"params", "initial_lr"}
            if saved_keys != own_keys:
                raise ValueError(
                    f"{name}.load_state_dict: the saved state is from a different optimizer: it has "
                    f"hyper-parameters {sorted(saved_keys)}, {name} has {sorted(own_keys)}"
                )
            try:
                self._check_hyperparameters(g)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name}.load_state_dict: bad saved hyper-parameter: {e}") from None
        keys = self._state_keys
        for i, s in enumerate(state_dict["state"]):
            if keys is not None and (not set(s) <= keys or (self._state_keys_all and s and set(s) != keys)):
                raise ValueError(
                    f"{name}.load_state_dict: the state of parameter {i} has entries {sorted(s)}; "
                    f"{name} keeps {sorted(keys)} (a state from a different optimizer?)"
                )
        if len(groups) != len(self.param_groups) or any(
            len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)
        ):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved state has a different number of "
                "parameter groups or parameters than this optimizer"
            )
        params = self._params()
        if len(state_dict["state"]) != len(params):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved state covers "
                f"{len(state_dict['state'])} parameters, this optimizer has {len(params)}"
            )
        for i, (s, p) in enumerate(zip(state_dict["state"], params)):
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.dtype.kind not in "biuf":
                    raise ValueError(f"{name}.load_state_dict: state '{k}' of parameter {i} holds {v.dtype} data")
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: state '{k}' of parameter {i} has "
                        f"shape {v.shape}, the parameter has {p.shape}"
                    )
        for own, saved in zip(self.param_groups, groups):
            own.update({k: v for k, v in saved.items() if k != "params"})
        self.state = [
            {k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for s, p in zip(state_dict["state"], params)
        ]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    g = grad + weight_decay * p;  buf = momentum * buf + (1 - dampening) * g (buf = g at the first step);
    g = g + momentum * buf if nesterov else buf;  p -= lr * g.
    """

    _state_keys = frozenset({"momentum_buffer"})
    _state_keys_all = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(
            params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        )

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype)  # an array even for 0-d
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * g


class Adam(Optimizer):
    """Adam (Kingma & Ba), with PyTorch's bias correction; ``weight_decay`` adds an L2 term to the gradient."""

    decoupled = False
    _state_keys = frozenset({"step", "exp_avg", "exp_avg_sq"})
    _state_keys_all = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self._check_hyperparameters({"betas": betas})
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if wd and self.decoupled:
            p *= 1 - lr * wd
        elif wd:
            g = g + wd * p
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t)
        denom += eps
        p -= (lr / (1 - beta1**t)) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay before the Adam step."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


# --------------------------------------------------------------------------- learning-rate schedules


class LRScheduler:
    """Sets each group's ``lr`` from the number of ``step()`` calls so far (``last_epoch``).

    Call ``step()`` once per epoch (or per batch, for per-batch schedules such as OneCycleLR),
    after ``optimizer.step()``, as in PyTorch.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, base_lr: float, t: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        name = type(self).__name__
        try:
            last_epoch, base_lrs = int(state["last_epoch"]), [float(b) for b in state["base_lrs"]]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{name}.load_state_dict: expected {{'last_epoch': int, 'base_lrs': [float, ...]}} "
                f"as returned by state_dict(), got {str(state)[:120]}"
            ) from None
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the saved state has {len(base_lrs)} learning rates, the "
                f"optimizer has {len(self.optimizer.param_groups)} parameter groups"
            )
        if last_epoch < 0:
            raise ValueError(f"{name}.load_state_dict: last_epoch must be >= 0, got {last_epoch}")
        self.lr_at(base_lrs[0], last_epoch)  # e.g. OneCycleLR past its total_steps: an error now, not later
        self.last_epoch, self.base_lrs = last_epoch, base_lrs
        self._apply()


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (t // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 (PyTorch's closed form)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), stepped once per batch, as PyTorch's ``OneCycleLR``
    with cosine annealing: warm up from max_lr/div_factor to max_lr over the first
    ``pct_start`` of ``total_steps``, then anneal to max_lr/(div_factor*final_div_factor)."""

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ) -> None:
        if not isinstance(total_steps, (int, np.integer)) or isinstance(total_steps, bool) or total_steps < 1:
            raise ValueError(f"OneCycleLR: total_steps must be a positive int, got {total_steps!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be in [0, 1], got {pct_start}")
        if not (max_lr > 0 and div_factor > 0 and final_div_factor > 0) or math.inf in (max_lr, div_factor):
            raise ValueError(
                f"OneCycleLR: max_lr, div_factor and final_div_factor must be finite and > 0, got "
                f"{max_lr}, {div_factor}, {final_div_factor}"
            )
        self.max_lr, self.total_steps = max_lr, total_steps
        self.initial_lr, self.min_lr = max_lr / div_factor, max_lr / div_factor / final_div_factor
        self.warmup_end = float(pct_start * total_steps) - 1
        if total_steps - 1 - self.warmup_end <= 0:  # PyTorch divides by zero here
            raise ValueError(
                f"OneCycleLR: total_steps={total_steps} with pct_start={pct_start} leaves no step to anneal"
            )
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {t} times, more than total_steps={self.total_steps}")

        def cos(start: float, end: float, frac: float) -> float:
            return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2

        if t <= self.warmup_end and self.warmup_end > 0:  # warmup_end <= 0: no warm-up phase at all
            return cos(self.initial_lr, self.max_lr, t / self.warmup_end)
        return cos(self.max_lr, self.min_lr, (t - self.warmup_end) / (self.total_steps - 1 - self.warmup_end))
