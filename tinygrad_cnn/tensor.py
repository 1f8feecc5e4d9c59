"""The Tensor: a NumPy array, an optional gradient, and the tape node that produced it.

The class is deliberately thin: arithmetic and every op are one-line delegations to
:mod:`tinygrad_cnn.functional`, where composites are built from the primitives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

    from .autograd import Context

Axis = int | tuple[int, ...] | None


def _to_array(data: Any, dtype: DTypeLike | None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    try:
        if dtype is not None:
            dtype = np.dtype(dtype)
        if isinstance(data, (np.ndarray, np.generic)):
            arr = np.asarray(data)
            if dtype is not None:
                arr = arr.astype(dtype, copy=False)
        else:
            arr = np.asarray(data, dtype=dtype)
            if dtype is None and arr.dtype == np.float64:
                arr = arr.astype(np.float32)  # Python floats default to float32, as in PyTorch
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError(
            f"Tensor: cannot make a tensor from {type(data).__name__}"
            + (f" with dtype {dtype!r}" if dtype is not None else "")
            + f": {e}"
        ) from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"Tensor: cannot hold data of type {type(data).__name__} (dtype {arr.dtype}); "
            "tensors hold numbers or booleans"
        )
    return arr


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    ``Tensor(data, requires_grad=False, dtype=None)``: a NumPy array keeps its dtype (and its
    memory: no copy is made); Python floats and lists of floats become float32, Python ints
    int64. Only floating-point tensors can require a gradient.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data: ArrayLike | Tensor, requires_grad: bool = False, dtype: DTypeLike | None = None):
        self.data: np.ndarray = _to_array(data, dtype)
        self.grad: np.ndarray | None = None
        self._ctx: Context | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def from_op(cls, data: np.ndarray, ctx: Context) -> Tensor:
        """The output of a recorded op (what ``Function.apply`` makes): ``ctx`` is its tape node."""
        t = cls.__new__(cls)
        t.data, t.grad, t._ctx, t.requires_grad = data, None, ctx, True
        return t

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (leaf tensors only); returns self."""
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"Tensor: only (real) floating-point tensors can require grad; this one has dtype {self.data.dtype} "
                "(integer tensors are for labels and indices). Convert first, e.g. t.astype(np.float32)."
            )
        if not requires_grad and self._ctx is not None:
            raise ValueError("Tensor: requires_grad can only be turned off on a leaf tensor; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    # ------------------------------------------------------------------ array-like basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def grad_fn(self) -> Context | None:
        """The tape node that computed this tensor (a :class:`~tinygrad_cnn.autograd.Context`), None for a leaf."""
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        """True for tensors created by the user rather than by a recorded op."""
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        """All axes reversed, as ``ndarray.T``."""
        return self.transpose()

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped (batched matrix transpose)."""
        return self.swapaxes(-1, -2)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python scalar."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut off from the tape."""
        return Tensor(self.data)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", precision=4, threshold=50)
        extras = [f"dtype={self.dtype}"] if self.dtype not in (np.float32, np.int64, np.bool_) else []
        if self._ctx is not None:
            extras.append(f"op={self._ctx.fn.__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}{''.join(', ' + e for e in extras)})"

    __hash__ = object.__hash__  # __eq__ is elementwise; identity hashing keeps tensors usable as keys

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"The truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.data)

    # ------------------------------------------------------------------ autograd
    def backward(self, grad: ArrayLike | Tensor | None = None, retain_graph: bool = False) -> None:
        """Reverse-mode sweep from this tensor; fills ``.grad`` of every leaf that requires one.

        ``grad`` is the gradient of this tensor (default: 1 for a scalar). The values saved for
        backward are freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph (no input required grad, "
                "or it was computed under no_grad)"
            )
        from .autograd import backward  # autograd imports this module: the other way round only at run time

        backward([self], [grad], retain_graph=retain_graph)

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """Call ``hook(self)`` after each ``backward()`` that accumulated into this leaf's ``.grad``;
        returns a handle whose ``remove()`` unregisters it (see :mod:`tinygrad_cnn.autograd`)."""
        from .autograd import register_post_accumulate_grad_hook

        return register_post_accumulate_grad_hook(self, hook)

    def zero_grad(self) -> None:
        self.grad = None

    def tape(self, **kwargs: Any) -> Any:
        """The recorded ops that produced this tensor, printable as a table: see :func:`tinygrad_cnn.graph.tape`."""
        from .graph import tape

        return tape(self, **kwargs)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: Any) -> Tensor:
        return F.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return F.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return F.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return F.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return F.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return F.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return F.div(other, self)

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __pow__(self, exponent: float) -> Tensor:
        return F.pow(self, exponent)

    def __matmul__(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return F.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return F.getitem(self, index)

    # comparisons: not differentiable, return boolean tensors
    def __lt__(self, other: Any) -> Tensor:
        return F.compare(np.less, self, other)

    def __le__(self, other: Any) -> Tensor:
        return F.compare(np.less_equal, self, other)

    def __gt__(self, other: Any) -> Tensor:
        return F.compare(np.greater, self, other)

    def __ge__(self, other: Any) -> Tensor:
        return F.compare(np.greater_equal, self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.compare(np.equal, self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.compare(np.not_equal, self, other)

    # ------------------------------------------------------------------ ops (see functional.py)
    def exp(self) -> Tensor:
        return F.exp(self)

    def log(self) -> Tensor:
        return F.log(self)

    def sqrt(self) -> Tensor:
        return F.sqrt(self)

    def relu(self) -> Tensor:
        return F.relu(self)

    def sigmoid(self) -> Tensor:
        return F.sigmoid(self)

    def tanh(self) -> Tensor:
        return F.tanh(self)

    def abs(self) -> Tensor:
        return F.abs(self)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        return F.clip(self, min, max)

    def maximum(self, other: Any) -> Tensor:
        return F.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return F.minimum(self, other)

    def astype(self, dtype: DTypeLike) -> Tensor:
        return F.astype(self, dtype)

    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return F.sum(self, axis, keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return F.mean(self, axis, keepdims)

    def var(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return F.var(self, axis, keepdims, ddof)

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return F.max(self, axis, keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return F.min(self, axis, keepdims)

    def argmax(self, axis: int | None = None) -> Tensor:
        return Tensor(self.data.argmax(axis=axis))

    def argmin(self, axis: int | None = None) -> Tensor:
        return Tensor(self.data.argmin(axis=axis))

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        return F.reshape(self, *shape)

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        return F.transpose(self, *axes)

    def permute(self, *axes: int | Sequence[int]) -> Tensor:
        return F.transpose(self, *axes)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        return F.swapaxes(self, axis1, axis2)

    def flatten(self, start_axis: int = 1, end_axis: int = -1) -> Tensor:
        return F.flatten(self, start_axis, end_axis)

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        return F.broadcast_to(self, *shape)

    def pad(self, pad_width: Any, value: float = 0.0) -> Tensor:
        return F.pad(self, pad_width, value)

    def matmul(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def conv2d(
        self, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1
    ) -> Tensor:
        return F.conv2d(self, weight, bias, stride, padding, dilation)

    def max_pool2d(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1) -> Tensor:
        return F.max_pool2d(self, kernel_size, stride, padding, dilation)

    def avg_pool2d(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
        return F.avg_pool2d(self, kernel_size, stride, padding)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return F.log_softmax(self, axis)

    def softmax(self, axis: int = -1) -> Tensor:
        return F.softmax(self, axis)

    def logsumexp(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return F.logsumexp(self, axis, keepdims)


from . import functional as F  # noqa: E402  (functional builds on Tensor; imported last to break the cycle)
