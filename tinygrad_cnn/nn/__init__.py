"""Layers and models, PyTorch-style: a :class:`Module` holds :class:`Parameter` tensors and
sub-modules, and its ``forward`` composes tensor ops. No layer writes a backward.

Parameter names, layouts and default initialisation match ``torch.nn``, so a ``state_dict`` moves
between the two (``model.load_state_dict(torch_model.state_dict())``, and back with
``{k: torch.from_numpy(v.numpy()) for k, v in model.state_dict().items()}``).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import arguments, threads
from .. import functional as F
from .._tensor import Tensor
from ..autograd import no_grad
from ..inplace import check_writable
from ..parallel import map_batches
from ..random import default_generator
from ..storage import array_of, set_array, write_
from ..validation import pair, positive_int

IntOrPair = int | tuple[int, int]


class _IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns, as PyTorch's named tuple of the same name."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


class Parameter(Tensor):
    """A tensor that is a learnable parameter of a :class:`Module` (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _float_dtype(layer: str, dtype: Any) -> np.dtype:
    """A layer's parameter dtype; None is PyTorch's default, float32 (NumPy would read it as float64)."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{layer}: {dtype!r} is not a NumPy dtype") from None
    if dt.kind != "f":
        raise TypeError(f"{layer}: parameters must have a floating-point dtype, got {dt}")
    return dt


def _is_device(arg: Any) -> bool:
    return type(arg).__name__ == "device" or (isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda", "mps"))


def _uniform(shape: tuple[int, ...], bound: float, dtype: Any) -> Parameter:
    return Parameter(default_generator().uniform(-bound, bound, shape).astype(dtype))


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: dict[int, Any], key: int) -> None:
        self._hooks, self.id = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


_next_hook_id = itertools.count()


class Module:
    """Base class of layers and models.

    Assigning a :class:`Parameter` or a :class:`Module` to an attribute registers it, in
    assignment order; :meth:`register_buffer` registers a tensor that is state but not learnt
    (BatchNorm's running statistics). ``parameters()``, ``buffers()``, ``state_dict()``,
    ``train()``/``eval()``, ``to()`` and ``apply()`` walk them, as in PyTorch. Subclasses define
    ``forward``; call the module itself (``model(x)``), which runs its forward hooks too.
    """

    training: bool = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        threads.adapt()  # the thread count follows the load (see threads.py)
        hooks = self.__dict__.get("_forward_pre_hooks")
        for hook in list(hooks.values()) if hooks else ():
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        hooks = self.__dict__.get("_forward_hooks")
        for hook in list(hooks.values()) if hooks else ():
            result = hook(self, args, out)
            if result is not None:
                out = result
        if _summary_rows is not None:
            _summary_rows.append((self, out))
        return out

    # ------------------------------------------------------------------ registry
    def register_buffer(self, name: str, tensor: Tensor | np.ndarray | None, persistent: bool = True) -> None:
        """Add a buffer: a tensor of state that is not a parameter (no gradient, not optimised).

        It is an attribute (``self.name``), listed by :meth:`buffers`, moved by :meth:`to` and, if
        ``persistent``, saved in :meth:`state_dict`. ``None`` reserves the name (nothing is saved).
        """
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: buffer name must be a non-empty string without '.', got {name!r}")
        if name in vars(self) and name not in self._buffer_names():
            raise KeyError(f"register_buffer: attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            if not isinstance(tensor, np.ndarray):
                raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got {type(tensor).__name__}")
            tensor = Tensor.wrap(tensor)  # its dtype kept (num_batches_tracked is int64)
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer: '{name}' is a Parameter; use register_parameter")
        self.__dict__.setdefault("_buffers", {})[name] = bool(persistent)
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or ``None``, which reserves the name) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got {type(param).__name__}")
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (as attribute assignment does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module, got {type(module).__name__}")
        setattr(self, str(name), module)

    register_module = add_module

    def _buffer_names(self) -> dict[str, bool]:
        """This module's own buffers: name -> persistent."""
        buffers: dict[str, bool] = self.__dict__.get("_buffers", {})
        return buffers

    def get_submodule(self, target: str) -> Module:
        module = self
        for part in target.split(".") if target else []:
            child = vars(module).get(part)
            if not isinstance(child, Module):
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}' (looking up '{target}')")
            module = child
        return module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, value in vars(self).items():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every submodule, depth first; each listed once."""
        memo = set() if memo is None else memo
        if remove_duplicate and id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in vars(self).items():
            if isinstance(child, Module):
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, e.g. ``("0.weight", ...)``, as PyTorch names them.

        A parameter shared by several layers is listed once, under its first name.
        """
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for base, module in modules:
            for name, value in vars(module).items():
                if isinstance(value, Parameter) and not (remove_duplicate and id(value) in seen):
                    seen.add(id(value))
                    yield (f"{base}.{name}" if base else name), value

    def parameters(self, recurse: bool = True) -> list[Parameter]:
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, persistent or not; buffers set to None are skipped."""
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for base, module in modules:
            for name in module._buffer_names():
                value = vars(module).get(name)
                if isinstance(value, Tensor) and not (remove_duplicate and id(value) in seen):
                    seen.add(id(value))
                    yield (f"{base}.{name}" if base else name), value

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: to None (the default, as PyTorch 2), or to zeros."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                array_of(p.grad)[...] = 0

    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turn gradient recording of every parameter on or off (e.g. to freeze layers); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on this module; returns self.

        The usual use is initialisation: ``model.apply(init_weights)``.
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(dtype)``, ``to("cpu")``, ``to(device, dtype)`` or ``to(tensor)``: cast floating-point
        parameters and buffers in place (the same Parameter objects, so an optimizer built before
        still holds them). Only the CPU exists here; any other device is an error."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif _is_device(arg):
                device = arg
            else:
                dtype = arg
        if device is not None and str(device).split(":")[0] != "cpu":
            raise RuntimeError(f"to: tinygrad_cnn runs on the CPU only; cannot move the model to {device!r}")
        if dtype is not None:
            dt = _float_dtype(f"{type(self).__name__}.to", dtype)
            for t in [*self.parameters(), *self.buffers()]:
                if array_of(t).dtype.kind == "f" and array_of(t).dtype != dt:
                    set_array(t, array_of(t).astype(dt))
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def cpu(self) -> Module:
        return self

    # ------------------------------------------------------------------ hooks
    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; if it returns a value, that replaces the
        positional arguments (a tuple, or a single value)."""
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; a returned value replaces the output."""
        return self._add_hook("_forward_hooks", hook)

    def _add_hook(self, kind: str, hook: Callable[..., Any]) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"{kind.strip('_').replace('_', ' ')}: hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.setdefault(kind, {})
        key = next(_next_hook_id)
        hooks[key] = hook
        return RemovableHandle(hooks, key)

    # ------------------------------------------------------------------ inference
    def predict(self, x: Tensor | np.ndarray, batch_size: int = 128, workers: int | None = None) -> Tensor:
        """The model's outputs for a batch ``x``, computed for inference, like Keras's ``predict``.

        Eval mode (every submodule's mode is restored afterwards), no graph, and the batch run in
        pieces of ``batch_size`` samples spread over ``workers`` threads (default: one per core),
        which on a CPU is much faster than one ``model(x)`` over a large batch (see
        :func:`tinygrad_cnn.parallel.map_batches`).
        The values are those of ``model.eval(); model(x)`` under ``no_grad``, up to float rounding.
        """
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            return map_batches(self, x, batch_size, workers)
        finally:
            for m, training in modes:  # each submodule's own mode, even a mixed one
                m.training = training

    # ------------------------------------------------------------------ state
    def _state_tensors(self, prefix: str = "") -> OrderedDict[str, Tensor]:
        """What a state_dict holds, as PyTorch orders it: each module's parameters, then its
        persistent buffers, then its children's (a tensor shared by two layers appears under both names)."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for base, module in self.named_modules(prefix=prefix):
            persistent = module._buffer_names()
            for name, value in vars(module).items():
                if isinstance(value, Parameter) or (isinstance(value, Tensor) and persistent.get(name, False)):
                    out[f"{base}.{name}" if base else name] = value
        return out

    def state_dict(
        self, *, destination: dict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Tensor]:
        """Every parameter and persistent buffer, keyed by dotted name, as PyTorch's ``state_dict``.

        The values are detached Tensors sharing the parameters' memory, so a later optimizer step
        shows in them (``copy.deepcopy(model.state_dict())`` keeps a snapshot); ``keep_vars=True``
        gives the Parameters and buffers themselves. ``prefix`` is put before every key;
        ``destination`` (a dict) is filled and returned instead of a new OrderedDict.
        """
        out: dict[str, Tensor] = OrderedDict() if destination is None else destination
        for name, t in self._state_tensors().items():
            out[prefix + name] = t if keep_vars else t.detach()
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> _IncompatibleKeys:
        """Copy values (Tensors, ours or PyTorch's, or arrays) into the parameters and buffers, in place,
        keeping each one's dtype.

        Returns ``(missing_keys, unexpected_keys)`` as a named tuple, as PyTorch does. With ``strict=True``
        missing or unexpected keys are a :class:`RuntimeError` listing them; a shape mismatch always is
        (both as in PyTorch), and a value that is not an array of real numbers is a :class:`TypeError`.
        Everything is checked before anything is copied, so a failed load leaves the model unchanged.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"load_state_dict for {type(self).__name__}: expected a mapping of parameter names to "
                f"tensors, got {type(state_dict).__name__}"
            )
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise RuntimeError(
                f"load_state_dict for {type(self).__name__}: "
                + "; ".join(parts)
                + " (is this state from a different model?)"
            )
        mismatched, values = [], {}
        for name, p in own.items():
            if name in state_dict:
                raw = state_dict[name]
                value = np.asarray(raw.array if isinstance(raw, Tensor) else raw)
                if value.dtype.kind not in "biuf":
                    raise TypeError(
                        f"load_state_dict for {type(self).__name__}: {name} holds {value.dtype} data "
                        f"({type(raw).__name__}), not an array of real numbers"
                    )
                if value.shape != p.shape:
                    mismatched.append(f"{name}: checkpoint {value.shape} vs model {p.shape}")
                values[name] = value
        if mismatched:
            raise RuntimeError(
                f"load_state_dict for {type(self).__name__}: shape mismatch for "
                + "; ".join(mismatched)
                + " (is this state from a different model?)"
            )
        for name, p in own.items():
            if name in values:
                check_writable(array_of(p), f"load_state_dict for {type(self).__name__}: parameter {name}")
        for name, value in values.items():
            write_(own[name], value)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        """PyTorch's layout: ``Name(extra)`` for a leaf, else one indented line per child."""
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [
            f"({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in vars(self).items()
            if isinstance(child, Module)
        ]
        if len(extra) == 1 and not children:
            return f"{type(self).__name__}({extra[0]})"
        if not extra and not children:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n  " + "\n  ".join(extra + children) + "\n)"

    def summary(self, input_shape: tuple[int, ...], dtype: Any = np.float32) -> str:
        """A table of the layers a forward pass calls, their output shapes and parameter counts.

        Runs one forward pass on zeros of ``input_shape`` (with the batch axis) under no_grad.
        """
        global _summary_rows
        names = {id(m): n for n, m in self.named_modules()}
        _summary_rows = []
        try:
            with no_grad():
                self(Tensor(np.zeros(input_shape, dtype=dtype)))
            rows = _summary_rows
        finally:
            _summary_rows = None
        lines = [f"{'layer':<28}{'output shape':<22}{'params':>10}", "-" * 60]
        for module, out in rows:
            if module is self or any(True for _ in module.children()):
                continue
            shape = str(tuple(out.shape)) if isinstance(out, Tensor) else "-"
            label = f"{names.get(id(module), '?')} ({type(module).__name__})"
            lines.append(f"{label:<28}{shape:<22}{sum(p.numel() for p in module.parameters()):>10,}")
        lines += ["-" * 60, f"{'total parameters':<50}{sum(p.numel() for p in self.parameters()):>10,}"]
        return "\n".join(lines)


_summary_rows: list[tuple[Module, Any]] | None = None


# --------------------------------------------------------------------------- layers with parameters


def _check_device(layer: str, device: Any) -> None:
    if device is not None and str(device).split(":")[0] != "cpu":
        raise RuntimeError(f"{layer}: tinygrad_cnn runs on the CPU only, got device={device!r}")


class Linear(Module):
    """y = x @ weight.T + bias.   x: (..., in_features) -> (..., out_features).

    weight (out_features, in_features) and bias (out_features,) start uniform in
    ±1/sqrt(in_features), PyTorch's default (Kaiming-uniform with a = sqrt(5)).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = np.float32
    ) -> None:
        positive_int("Linear", "in_features", in_features)
        positive_int("Linear", "out_features", out_features)
        _check_device("Linear", device)
        dtype = _float_dtype("Linear", dtype)
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = _uniform((out_features, in_features), bound, dtype)
        self.bias = _uniform((out_features,), bound, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution.   x: (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    weight (out_channels, in_channels // groups, kh, kw) and bias (out_channels,) start uniform in
    ±1/sqrt(in_channels // groups * kh * kw), PyTorch's default. ``padding`` is an int, a pair,
    ``"valid"`` (none) or ``"same"`` (output as large as the input; stride 1 only). ``groups``
    splits the channels into independent convolutions (``groups == in_channels``: depthwise).
    ``padding_mode`` ``"reflect"``, ``"replicate"`` or ``"circular"`` pads the input that way
    (``F.pad``) before a convolution without padding, as PyTorch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair | str = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        check_conv_layer("Conv2d", in_channels, out_channels, groups, device)
        padding_mode = check_padding_mode("Conv2d", padding_mode)
        dtype = _float_dtype("Conv2d", dtype)
        kh, kw = pair("Conv2d", "kernel_size", kernel_size, 1)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride = pair("Conv2d", "stride", stride, 1)
        self.padding: tuple[int, int] | str = conv_padding("Conv2d", padding, self.stride)
        self.dilation = pair("Conv2d", "dilation", dilation, 1)
        self.groups, self.padding_mode = groups, padding_mode
        bound = 1 / math.sqrt(in_channels // groups * kh * kw)
        self.weight = _uniform((out_channels, in_channels // groups, kh, kw), bound, dtype)
        self.bias = _uniform((out_channels,), bound, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        x = functional.pad(x, mode_padding(self.padding, self.kernel_size, self.dilation), self.padding_mode)
        return conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


# --------------------------------------------------------------------------- layers without parameters


class _Elementwise(Module):
    """An activation without parameters; ``inplace=True`` writes the result into the input, as the
    in-place tensor ops do (see docs/pytorch.md)."""

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu_() if self.inplace else F.relu(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Identity(Module):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # PyTorch accepts and ignores any arguments

    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """Merge dims start_dim..end_dim (default: everything but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``, e.g. (N, 784) -> (N, 1, 28, 28)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        d = arguments.dim("Unflatten", self.dim, x.ndim)
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if sizes.count(-1) > 1 or (sizes.count(-1) == 0 and known != x.shape[d]) or x.shape[d] % max(known, 1):
            raise ValueError(f"Unflatten: cannot split dim {self.dim} of size {x.shape[d]} into {sizes}")
        return F.reshape(x, x.shape[:d] + sizes + x.shape[d + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """Zero elements with probability p while training; identity in eval mode."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        if isinstance(p, (str, bytes, bool)) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"Dropout: p must be a number in [0, 1], got {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# --------------------------------------------------------------------------- containers


class Sequential(Module):
    """Modules applied in order; registered as ``"0"``, ``"1"``, ... as in PyTorch, or under the
    names of an ``OrderedDict`` given as the only argument."""

    def __init__(self, *layers: Module | OrderedDict[str, Module]) -> None:
        named: Iterable[tuple[str, Any]]
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            named, what = layers[0].items(), "entry"
        else:
            named, what = ((str(i), layer) for i, layer in enumerate(layers)), "argument"
        for name, layer in named:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: {what} {name} is a {type(layer).__name__}, not a Module")
            setattr(self, name, layer)

    def __len__(self) -> int:
        return sum(1 for _ in self._layers())

    def _layers(self) -> Iterator[tuple[str, Module]]:
        return ((n, m) for n, m in vars(self).items() if isinstance(m, Module))

    def __getitem__(self, index: int | slice) -> Module:
        layers = list(self._layers())
        if isinstance(index, slice):
            return Sequential(OrderedDict(layers[index]))
        return layers[index][1]

    def __iter__(self) -> Iterator[Module]:
        return (m for _, m in self._layers())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for layer in self:
            x = layer(x)
        return x


class ModuleList(Module):
    """A list of modules, registered as ``"0"``, ``"1"``, ...; you write the forward."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        for module in modules or []:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def _items(self) -> list[Module]:
        return [m for m in vars(self).values() if isinstance(m, Module)]

    def __len__(self) -> int:
        return len(self._items())

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(self._items()[index])
        return self._items()[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())


from . import functional, init, utils  # noqa: E402
from .activation import (  # noqa: E402  (the layer modules below build on Module, defined above)
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU6,
    RReLU,
    SiLU,
    Softmax,
    Softmin,
    Softplus,
    Softshrink,
    Softsign,
    Tanhshrink,
    Threshold,
)
from .container import ModuleDict, ParameterDict, ParameterList  # noqa: E402
from .conv import (  # noqa: E402
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    Conv1d,
    ConvTranspose1d,
    ConvTranspose2d,
    MaxPool2d,
    check_conv_layer,
    check_padding_mode,
    conv2d,
    conv_extra_repr,
    conv_padding,
    mode_padding,
)
from .distance import CosineSimilarity, PairwiseDistance  # noqa: E402
from .dropout import Dropout1d, Dropout2d  # noqa: E402
from .loss import (  # noqa: E402
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm  # noqa: E402
from .pooling import AdaptiveAvgPool1d, AdaptiveMaxPool1d, AvgPool1d, LPPool1d, LPPool2d, MaxPool1d  # noqa: E402
from .sparse import Embedding  # noqa: E402
from .vision import (  # noqa: E402
    ChannelShuffle,
    CircularPad1d,
    CircularPad2d,
    ConstantPad1d,
    ConstantPad2d,
    Fold,
    PixelShuffle,
    PixelUnshuffle,
    ReflectionPad1d,
    ReflectionPad2d,
    ReplicationPad1d,
    ReplicationPad2d,
    Unfold,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
    ZeroPad1d,
    ZeroPad2d,
)

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "ChannelShuffle",
    "CircularPad1d",
    "CircularPad2d",
    "CELU",
    "ConstantPad1d",
    "ConstantPad2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "CosineSimilarity",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "ELU",
    "Embedding",
    "Flatten",
    "Fold",
    "GELU",
    "GLU",
    "GroupNorm",
    "Hardshrink",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "HuberLoss",
    "Identity",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "KLDivLoss",
    "L1Loss",
    "LPPool1d",
    "LPPool2d",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSigmoid",
    "LogSoftmax",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Mish",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "PReLU",
    "PairwiseDistance",
    "Parameter",
    "ParameterDict",
    "ParameterList",
    "PixelShuffle",
    "PixelUnshuffle",
    "RReLU",
    "ReLU",
    "ReLU6",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "RemovableHandle",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "SELU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "SmoothL1Loss",
    "Softmax",
    "Softmin",
    "Softplus",
    "Softshrink",
    "Softsign",
    "Tanh",
    "Tanhshrink",
    "Threshold",
    "Unflatten",
    "Unfold",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "ZeroPad1d",
    "ZeroPad2d",
    "functional",
    "init",
    "utils",
]
