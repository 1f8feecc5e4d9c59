"""Optimizers with PyTorch's update rules, arguments and defaults.

Updates happen in place on each parameter's array (no graph is recorded), in the parameter's own
dtype: a float32 model is updated in float32.

Writing your own optimizer: subclass :class:`Optimizer`, pass your hyper-parameter defaults to
``super().__init__(params, defaults)`` and implement :meth:`Optimizer.update`, which gets one
parameter's array, its gradient's array, its state dict and its group's hyper-parameters, and
changes the parameter in place::

    class SignSGD(Optimizer):
        def __init__(self, params, lr=0.01):
            super().__init__(params, dict(lr=lr))

        def update(self, param, grad, state, group):
            param -= group["lr"] * np.sign(grad)

``step()`` calls it for every parameter that has a gradient, after checking all of them.
Overriding ``step()`` itself, PyTorch's way (loop over ``self.param_groups``, read ``p.grad``,
keep per-parameter state in ``self.state[p]``), works too.

``state_dict()`` has PyTorch's layout (``"state"`` keyed by parameter index, Tensors in it), and
``load_state_dict`` also takes a state_dict saved by PyTorch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._tensor import Tensor
from ..autograd import enable_grad
from ..inplace import check_writable
from ..storage import array_of

# what learning-rate schedulers add to a parameter group (OneCycleLR: its lr and momentum range)
_SCHEDULER_KEYS = frozenset({"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"})
# what PyTorch's param groups also hold: how its update runs (foreach, fused, ...); ignored on loading
_TORCH_ONLY_KEYS = frozenset({"foreach", "fused", "capturable", "differentiable", "decoupled_weight_decay"})
_NUMBERS = ("lr", "weight_decay", "momentum", "eps", "dampening", "alpha", "rho", "lr_decay")


class Optimizer:
    """Base class: holds ``param_groups`` (dicts of ``params`` and hyper-parameters) and
    ``state`` (a dict per parameter, keyed by the parameter)."""

    _state_keys: frozenset[str] = frozenset()  # what one parameter's state may hold (empty: anything)

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
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for group in given if isinstance(given[0], dict) else [{"params": given}]:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones take the defaults)."""
        name = type(self).__name__
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' list, got {param_group!r:.80}")
        members = [param_group["params"]] if isinstance(param_group["params"], Tensor) else list(param_group["params"])
        group = {**self.defaults, **param_group, "params": members}
        seen = {id(p) for p in self._params()}
        for p in members:
            i = len(seen)
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{name}: parameter {i} is not a Tensor that requires grad")
            if not p.is_leaf:
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

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        for key in _NUMBERS:
            if key not in group:
                continue
            value = group[key]
            if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name}: {key} must be a number, got {value!r}")
            if not value >= 0 or value == math.inf:  # also rejects NaN
                raise ValueError(f"{name}: {key} must be >= 0 and finite, got {value}")
        for key in ("alpha", "rho"):
            if key in group and group[key] > 1:
                raise ValueError(f"{name}: {key} must be in [0, 1], got {group[key]}")
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

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter: to None (the default, as PyTorch 2), or to zeros."""
        for p in self._params():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                array_of(p.grad)[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Apply one update to every parameter that has a gradient; returns ``closure()``'s loss.

        ``closure`` (optional) re-evaluates the model and returns the loss; it runs first, with
        gradient recording on. Raises :class:`~tinygrad_cnn.autograd.InPlaceError` (and changes
        nothing) if a parameter is still saved by a graph that has not run backward: updating it
        would corrupt that backward.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        name = type(self).__name__
        for index, p in enumerate(self._params()):  # check everything first: no half-done step
            if p.grad is not None:
                if tuple(np.shape(array_of(p.grad))) != tuple(p.shape):
                    raise ValueError(
                        f"{name}.step: gradient shape {np.shape(array_of(p.grad))} does not match "
                        f"parameter {index} of shape {p.shape}"
                    )
                check_writable(array_of(p), f"{name}.step: parameter {index} (shape {p.shape})")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    param = array_of(p)
                    grad = np.asarray(array_of(p.grad), dtype=param.dtype)
                    self.update(param, -grad if group.get("maximize") else grad, self.state[p], group)
        return loss

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Change ``param`` in place, given its gradient, its state (a dict that persists across
        steps, empty at the first) and its group's hyper-parameters. Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update() (or step())")

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout: ``{"state": {index: {name: Tensor}}, "param_groups": [...]}``.

        Parameters are referred to by their index in parameter order; ``state`` has an entry for each
        parameter that has state (after its first step). Arrays come as Tensors sharing the optimizer's
        memory, and ``step`` as a float32 0-d Tensor, as in PyTorch.
        """
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            hyper = {k: v for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": list(range(start, start + n))})
            start += n
        state = {
            i: {k: _exported(k, v) for k, v in self.state[p].items()}
            for i, p in enumerate(self._params())
            if self.state.get(p)
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (ours or PyTorch's, Tensors or arrays; a ``state`` list with one
        dict per parameter, as earlier versions saved it, too). PyTorch's implementation options
        (``foreach``, ``fused``, ...) in a group are ignored. Everything is checked first; on an error
        nothing changes."""
        name = type(self).__name__
        if (
            not isinstance(state_dict, dict)
            or not isinstance(state_dict.get("param_groups"), list)
            or not isinstance(state_dict.get("state"), (dict, list))
            or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in state_dict["param_groups"])
        ):
            raise ValueError(
                f"{name}.load_state_dict: expected {{'state': {{index: dict}}, 'param_groups': "
                f"[dict with 'params']}} as returned by state_dict(), got {str(state_dict)[:120]}"
            )
        saved_state = state_dict["state"]
        if isinstance(saved_state, list):
            saved_state = dict(enumerate(saved_state))
        if not all(isinstance(s, dict) for s in saved_state.values()):
            raise ValueError(f"{name}.load_state_dict: each parameter's state must be a dict")
        groups = [{k: v for k, v in g.items() if k not in _TORCH_ONLY_KEYS} for g in state_dict["param_groups"]]
        own_keys = set(self.defaults)
        for g in groups:
            saved_keys = set(g) - {"params"} - _SCHEDULER_KEYS
            if saved_keys != own_keys:
                raise ValueError(
                    f"{name}.load_state_dict: the saved state is from a different optimizer: it has "
                    f"hyper-parameters {sorted(saved_keys)}, {name} has {sorted(own_keys)}"
                )
            try:
                self._check_hyperparameters(g)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name}.load_state_dict: bad saved hyper-parameter: {e}") from None
        for i, s in saved_state.items():
            if self._state_keys and not set(s) <= self._state_keys:
                raise ValueError(
                    f"{name}.load_state_dict: the state of parameter {i} has entries {sorted(s)}; "
                    f"{name} keeps {sorted(self._state_keys)} (a state from a different optimizer?)"
                )
        if len(groups) != len(self.param_groups) or any(
            len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)
        ):
            raise ValueError(
                f"{name}.load_state_dict: the saved state has a different number of "
                "parameter groups or parameters than this optimizer"
            )
        params = self._params()
        restored: dict[Tensor, dict[str, Any]] = {}
        for i, s in saved_state.items():
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(params):
                raise ValueError(
                    f"{name}.load_state_dict: the saved state has an entry for parameter {i!r}; "
                    f"this optimizer has {len(params)} parameters"
                )
            p = params[i]
            values = {k: _as_array(v) for k, v in s.items()}
            for k, v in values.items():
                if isinstance(v, np.ndarray) and v.dtype.kind not in "biuf":
                    raise ValueError(f"{name}.load_state_dict: state '{k}' of parameter {i} holds {v.dtype} data")
                if isinstance(v, np.ndarray) and v.ndim and v.shape != tuple(p.shape):
                    raise ValueError(
                        f"{name}.load_state_dict: state '{k}' of parameter {i} has "
                        f"shape {v.shape}, the parameter has {p.shape}"
                    )
            if values:
                restored[p] = {k: _restored(k, v, p) for k, v in values.items()}
        for own, saved in zip(self.param_groups, groups):
            own.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items() if k != "params"})
        self.state = defaultdict(dict, restored)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


def _exported(key: str, value: Any) -> Any:
    """A state entry as :meth:`Optimizer.state_dict` gives it: arrays as Tensors sharing memory, and the
    step count as a float32 0-d Tensor (PyTorch's type for it)."""
    if isinstance(value, np.ndarray):
        return Tensor.wrap(value)
    if key == "step" and isinstance(value, (int, float)):
        return Tensor.wrap(np.array(value, dtype=np.float32))
    return value


def _as_array(value: Any) -> Any:
    """A saved state entry with a Tensor (ours or PyTorch's) read as its array; anything else unchanged."""
    if isinstance(value, Tensor):
        return value.array
    if not isinstance(value, (np.ndarray, np.generic, int, float)) and hasattr(value, "__array__"):
        return np.asarray(value)
    return value


def _restored(key: str, value: Any, p: Tensor) -> Any:
    """A loaded state entry: float arrays shaped like the parameter copied in its dtype; other 0-d
    arrays (a step count) as Python numbers, the step an int when it is whole."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.shape == tuple(p.shape):
        return np.array(value, dtype=p.dtype)
    if isinstance(value, np.ndarray | np.generic) and np.ndim(value) == 0:
        value = value.item()
    if key == "step" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _zeros(param: np.ndarray) -> np.ndarray:
    return np.zeros_like(param)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    g = grad + weight_decay * p;  buf = momentum * buf + (1 - dampening) * g (buf = g at the first step);
    g = g + momentum * buf if nesterov else buf;  p -= lr * g.
    """

    _state_keys = frozenset({"momentum_buffer"})

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
            ),
        )

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = grad + group["weight_decay"] * param if group["weight_decay"] else grad
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=param.dtype)  # an array even for 0-d
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        param -= group["lr"] * g


class Adam(Optimizer):
    """Adam (Kingma & Ba), with PyTorch's bias correction; ``weight_decay`` adds an L2 term to the
    gradient; ``amsgrad`` divides by the running maximum of the second moment."""

    decoupled = False
    _state_keys = frozenset({"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"})

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        self._check_hyperparameters({"betas": betas})
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, {**defaults, "maximize": maximize})

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        g = grad
        if wd and self.decoupled:
            param *= 1 - lr * wd
        elif wd:
            g = g + wd * param
        if not state:
            state.update(step=0, exp_avg=_zeros(param), exp_avg_sq=_zeros(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = _zeros(param)
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t)
        denom += eps
        param -= (lr / (1 - beta1**t)) * (m / denom)


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
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """RMSprop (Hinton), as PyTorch: sq = alpha * sq + (1 - alpha) * g**2; with ``centered`` the
    squared running mean of g is subtracted; p -= lr * g / (sqrt(sq) + eps), through a momentum
    buffer if ``momentum`` > 0."""

    _state_keys = frozenset({"step", "square_avg", "momentum_buffer", "grad_avg"})

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
        super().__init__(params, {**defaults, "maximize": maximize})

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
        g = grad + group["weight_decay"] * param if group["weight_decay"] else grad
        if not state:
            state.update(step=0, square_avg=_zeros(param))
            if momentum > 0:
                state["momentum_buffer"] = _zeros(param)
            if group["centered"]:
                state["grad_avg"] = _zeros(param)
        state["step"] += 1
        sq = state["square_avg"]
        sq *= alpha
        sq += (1 - alpha) * (g * g)
        if group["centered"]:
            mean = state["grad_avg"]
            mean += (1 - alpha) * (g - mean)
            avg = np.sqrt(sq - mean * mean)
        else:
            avg = np.sqrt(sq)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += g / avg
            param -= group["lr"] * buf
        else:
            param -= group["lr"] * (g / avg)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.): sum += g**2; p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)."""

    _state_keys = frozenset({"step", "sum"})

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        if not initial_accumulator_value >= 0:
            raise ValueError(f"Adagrad: initial_accumulator_value must be >= 0, got {initial_accumulator_value}")
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        super().__init__(params, {**defaults, "maximize": maximize})

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = grad + group["weight_decay"] * param if group["weight_decay"] else grad
        if not state:
            state.update(step=0, sum=np.full_like(param, group["initial_accumulator_value"]))
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += g * g
        std = np.sqrt(state["sum"])
        std += group["eps"]
        param -= clr * (g / std)


class Adadelta(Optimizer):
    """Adadelta (Zeiler): sq = rho * sq + (1 - rho) * g**2;
    delta = sqrt(acc + eps) / sqrt(sq + eps) * g;  acc = rho * acc + (1 - rho) * delta**2;  p -= lr * delta."""

    _state_keys = frozenset({"step", "square_avg", "acc_delta"})

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        rho, eps = group["rho"], group["eps"]
        g = grad + group["weight_decay"] * param if group["weight_decay"] else grad
        if not state:
            state.update(step=0, square_avg=_zeros(param), acc_delta=_zeros(param))
        state["step"] += 1
        sq, acc = state["square_avg"], state["acc_delta"]
        sq *= rho
        sq += (1 - rho) * (g * g)
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
        acc *= rho
        acc += (1 - rho) * (delta * delta)
        param -= group["lr"] * delta
