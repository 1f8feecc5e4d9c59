"""Layers and models, PyTorch-style: a :class:`Module` holds :class:`Parameter` tensors and
sub-modules, and its ``forward`` composes tensor ops. No layer writes a backward.

Parameter names, layouts and default initialisation match ``torch.nn``, so a ``state_dict``
moves between the two as arrays (``{k: v.numpy() for k, v in torch_model.state_dict().items()}``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..inplace import check_writable
from ..parallel import map_batches
from ..random import default_generator
from ..tensor import Tensor
from ..validation import pair, positive_int

IntOrPair = int | tuple[int, int]


class Parameter(Tensor):
    """A tensor that is a learnable parameter of a :class:`Module` (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _float_dtype(layer: str, dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{layer}: {dtype!r} is not a NumPy dtype") from None
    if dt.kind != "f":
        raise TypeError(f"{layer}: parameters must have a floating-point dtype, got {dt}")
    return dt


def _uniform(shape: tuple[int, ...], bound: float, dtype: Any) -> Parameter:
    return Parameter(default_generator().uniform(-bound, bound, shape).astype(dtype))


class Module:
    """Base class of layers and models.

    Assigning a :class:`Parameter` or a :class:`Module` to an attribute registers it, in
    assignment order; ``parameters()``, ``state_dict()``, ``train()``/``eval()`` walk them.
    Subclasses define ``forward``; call the module itself (``model(x)``).
    """

    training: bool = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if _summary_rows is not None:
            _summary_rows.append((self, out))
        return out

    # ------------------------------------------------------------------ registry
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, e.g. ``("0.weight", ...)``, as PyTorch names them.

        A parameter shared by several layers is listed once, under its first name.
        """
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            base, module = stack.pop()
            children = []
            for name, value in vars(module).items():
                full = f"{base}.{name}" if base else name
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield full, value
                elif isinstance(value, Module):
                    children.append((full, value))
            # depth first, in assignment order: parameters of earlier children come first
            stack.extend(reversed(children))

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

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
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter's array, keyed by dotted name."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters (in place, keeping each parameter's dtype).

        With ``strict=True`` missing or unexpected keys are an error; a shape mismatch always is, and
        so is a value that is not an array of real numbers. Everything is checked before anything is
        copied, so a failed load leaves the model unchanged.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"load_state_dict for {type(self).__name__}: expected a mapping of parameter names to "
                f"arrays, got {type(state_dict).__name__}"
            )
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(
                f"load_state_dict for {type(self).__name__}: "
                + "; ".join(parts)
                + " (is this state from a different model?)"
            )
        mismatched, values = [], {}
        for name, p in own.items():
            if name in state_dict:
                raw = state_dict[name]
                value = np.asarray(raw.data if isinstance(raw, Tensor) else raw)
                if value.dtype.kind not in "biuf":
                    raise TypeError(
                        f"load_state_dict for {type(self).__name__}: {name} holds {value.dtype} data "
                        f"({type(raw).__name__}), not an array of real numbers"
                    )
                if value.shape != p.shape:
                    mismatched.append(f"{name}: checkpoint {value.shape} vs model {p.shape}")
                values[name] = value
        if mismatched:
            raise ValueError(
                f"load_state_dict for {type(self).__name__}: shape mismatch for "
                + "; ".join(mismatched)
                + " (is this state from a different model?)"
            )
        for name, p in own.items():
            if name in values:
                check_writable(p.data, f"load_state_dict for {type(self).__name__}: parameter {name}")
        for name, value in values.items():
            np.copyto(own[name].data, value, casting="unsafe")

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"

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
            lines.append(f"{label:<28}{shape:<22}{sum(p.size for p in module.parameters()):>10,}")
        lines += ["-" * 60, f"{'total parameters':<50}{self.num_parameters():>10,}"]
        return "\n".join(lines)


_summary_rows: list[tuple[Module, Any]] | None = None


# --------------------------------------------------------------------------- layers with parameters


class Linear(Module):
    """y = x @ weight.T + bias.   x: (..., in_features) -> (..., out_features).

    weight (out_features, in_features) and bias (out_features,) start uniform in
    ±1/sqrt(in_features), PyTorch's default (Kaiming-uniform with a = sqrt(5)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = np.float32) -> None:
        positive_int("Linear", "in_features", in_features)
        positive_int("Linear", "out_features", out_features)
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

    weight (out_channels, in_channels, kh, kw) and bias (out_channels,) start uniform in
    ±1/sqrt(in_channels*kh*kw), PyTorch's default.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        bias: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        positive_int("Conv2d", "in_channels", in_channels)
        positive_int("Conv2d", "out_channels", out_channels)
        dtype = _float_dtype("Conv2d", dtype)
        kh, kw = pair("Conv2d", "kernel_size", kernel_size, 1)
        pair("Conv2d", "stride", stride, 1), pair("Conv2d", "padding", padding, 0)
        pair("Conv2d", "dilation", dilation, 1)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        bound = 1 / math.sqrt(in_channels * kh * kw)
        self.weight = _uniform((out_channels, in_channels, kh, kw), bound, dtype)
        self.bias = _uniform((out_channels,), bound, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}"
            + (f", dilation={self.dilation}" if self.dilation != 1 else "")
            + ("" if self.bias is not None else ", bias=False")
        )


# --------------------------------------------------------------------------- layers without parameters


class MaxPool2d(Module):
    """Max pooling; stride defaults to kernel_size."""

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0, dilation: IntOrPair = 1
    ) -> None:
        _check_pool("MaxPool2d", kernel_size, stride, padding, dilation)
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling (zero padding counted); stride defaults to kernel_size."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> None:
        _check_pool("AvgPool2d", kernel_size, stride, padding, 1)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


def _check_pool(layer: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> None:
    k = pair(layer, "kernel_size", kernel_size, 1)
    if stride is not None:
        pair(layer, "stride", stride, 1)
    p = pair(layer, "padding", padding, 0)
    pair(layer, "dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{layer}: padding {p} must be at most half the kernel size {k}")


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class LogSoftmax(Module):
    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.axis)


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """Merge axes start_axis..end_axis (default: everything but the batch axis)."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1) -> None:
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_axis, self.end_axis)


class Dropout(Module):
    """Zero elements with probability p while training; identity in eval mode."""

    def __init__(self, p: float = 0.5) -> None:
        if isinstance(p, (str, bytes, bool)) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"Dropout: p must be a number in [0, 1], got {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------- containers


class Sequential(Module):
    """Modules applied in order; registered as ``"0"``, ``"1"``, ... as in PyTorch."""

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def __len__(self) -> int:
        return sum(1 for _ in self.children())

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*list(self.children())[index])
        return list(self.children())[index]

    def __iter__(self) -> Iterator[Module]:
        return self.children()

    def forward(self, x: Any) -> Any:
        for layer in self.children():
            x = layer(x)
        return x


class ModuleList(Module):
    """A list of modules, registered as ``"0"``, ``"1"``, ...; you write the forward."""

    def __init__(self, modules: list[Module] | None = None) -> None:
        for module in modules or []:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self)), module)
        return self

    def __len__(self) -> int:
        return sum(1 for _ in self.children())

    def __getitem__(self, index: int) -> Module:
        return list(self.children())[index]

    def __iter__(self) -> Iterator[Module]:
        return self.children()
