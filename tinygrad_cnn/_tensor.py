"""The Tensor: a NumPy array, an optional gradient, and the tape node that produced it.

The class is deliberately thin: arithmetic and every op are one-line delegations to
:mod:`tinygrad_cnn.functional`, where composites are built from the primitives. Names and meanings
are PyTorch's: ``dim``/``keepdim`` (NumPy's ``axis``/``keepdims`` accepted as aliases),
``transpose(d0, d1)`` swaps two dimensions, ``.grad`` and ``.data`` are Tensors, and
``t.numpy()`` (or ``t.array``, which never refuses) is the NumPy array itself.
"""

from __future__ import annotations

import builtins
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

    from .autograd import Context

Axis = int | tuple[int, ...] | None
IntOrPair = int | tuple[int, int]

_NUMPY_REFUSAL = "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."


def _to_array(data: Any, dtype: DTypeLike | None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.array
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
                arr = arr.astype(_dtypes.get_default_dtype())  # Python floats: the default dtype, as in PyTorch
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


class Size(tuple):
    """A shape, as PyTorch's ``torch.Size``: a tuple of ints (``Size([2, 3]) == (2, 3)``) with ``numel()``."""

    def numel(self) -> builtins.int:
        return builtins.int(np.prod(self, dtype=np.int64))

    def __repr__(self) -> str:
        return f"tinygrad_cnn.Size({list(self)})"


def _is_size(a: Any) -> builtins.bool:
    return isinstance(a, (builtins.int, np.integer)) and not isinstance(a, (builtins.bool, np.bool_))


def _legacy_array(args: tuple[Any, ...], dtype: DTypeLike | None) -> np.ndarray:
    """The array of ``Tensor(*args)``, PyTorch's legacy constructor: sizes (ints) give zeros of that
    shape; data (numbers, lists, arrays) becomes the default float dtype, except a floating-point
    NumPy array or Tensor, which is kept as it is (dtype and memory)."""
    if builtins.all(_is_size(a) for a in args):
        shape = tuple(builtins.int(a) for a in args) or (0,)
        return np.zeros(shape, dtype=_dtypes.get_default_dtype() if dtype is None else dtype)
    if len(args) != 1:
        raise TypeError(
            f"Tensor: expected one data argument or sizes (ints), got {len(args)} arguments "
            "(requires_grad and dtype are keywords)"
        )
    arr = _to_array(args[0], dtype)
    if dtype is None and arr.dtype.kind not in "fc":
        arr = arr.astype(_dtypes.get_default_dtype())
    return arr


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    ``Tensor(data, requires_grad=False, dtype=None)``, PyTorch's legacy constructor: numbers,
    lists and integer or boolean arrays become the default float dtype (float32), as
    ``torch.Tensor``; a floating-point NumPy array keeps its dtype and its memory (no copy);
    ``Tensor(2, 3)`` is a (2, 3) tensor of zeros. :func:`tinygrad_cnn.tensor` is the factory that
    infers the dtype (Python ints are int64), as ``torch.tensor``; ``Tensor.wrap(array)`` wraps
    any array as it is. Only floating-point tensors can require a gradient.

    ``t.array`` is the NumPy array itself (shared, never refused); ``t.numpy()`` is the same
    array but refuses a tensor that requires grad, as PyTorch does; ``t.data`` is a detached
    Tensor sharing the memory, ``t.grad`` a Tensor (or None).
    """

    __slots__ = ("array", "_grad", "requires_grad", "_ctx", "_retains_grad", "before_inplace", "__weakref__")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, *data: Any, requires_grad: builtins.bool = False, dtype: DTypeLike | None = None):
        self.array: np.ndarray = _legacy_array(data, dtype)
        self._grad: Tensor | None = None
        self._ctx: Context | None = None
        self._retains_grad = False
        self.before_inplace: Tensor | None = None  # what this tensor was before an in-place op that was recorded
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def from_op(cls, data: np.ndarray, ctx: Context) -> Tensor:
        """The output of a recorded op (what ``Primitive.apply`` makes): ``ctx`` is its tape node."""
        t = cls.__new__(cls)
        t.array, t._grad, t._ctx, t.requires_grad, t._retains_grad, t.before_inplace = (
            data,
            None,
            ctx,
            True,
            False,
            None,
        )
        return t

    @classmethod
    def wrap(cls, arr: np.ndarray) -> Tensor:
        """A constant leaf around the ndarray ``arr`` (no checks, no copy): for arrays the library made."""
        t = Tensor.__new__(Tensor)
        t.array, t._grad, t._ctx, t.requires_grad, t._retains_grad, t.before_inplace = (
            arr,
            None,
            None,
            False,
            False,
            None,
        )
        return t

    def requires_grad_(self, requires_grad: builtins.bool = True) -> Tensor:
        """Set ``requires_grad`` in place (leaf tensors only); returns self."""
        if requires_grad and self.array.dtype.kind != "f":
            raise TypeError(
                f"Tensor: only (real) floating-point tensors can require grad; this one has dtype {self.array.dtype} "
                "(integer tensors are for labels and indices). Convert first, e.g. t.float()."
            )
        if not requires_grad and self._ctx is not None:
            raise ValueError(
                "Tensor: you can only change requires_grad flags of leaf variables. "
                "If you want to use a computed variable in a subgraph that doesn't require "
                "differentiation use var_no_grad = var.detach()."
            )
        self.requires_grad = bool(requires_grad)
        return self

    # ------------------------------------------------------------------ .data and .grad: Tensors
    @property
    def data(self) -> Tensor:
        """A detached Tensor sharing this tensor's memory (PyTorch's ``.data``); assign to replace the values."""
        return Tensor.wrap(self.array)

    @data.setter
    def data(self, value: Tensor | np.ndarray) -> None:
        self.array = value.array if isinstance(value, Tensor) else _to_array(value, None)

    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by ``backward()``: a Tensor shaped like this one, or None."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}"
                )
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has data of a different size: {value.shape} vs {self.shape}")
        self._grad = value

    @property
    def grad_fn(self) -> Context | None:
        """The tape node that produced this tensor (None for a leaf), e.g. ``<MulBackward>``."""
        return self._ctx

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in ``.grad`` during ``backward()``."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._ctx is not None:
            self._retains_grad = True

    @property
    def retains_grad(self) -> builtins.bool:
        return self._retains_grad

    # ------------------------------------------------------------------ array-like basics
    @property
    def shape(self) -> tuple[builtins.int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype, a ``numpy.dtype`` (equal to ``tinygrad_cnn.float32`` etc.)."""
        return self.array.dtype

    @property
    def ndim(self) -> builtins.int:
        return self.array.ndim

    def dim(self) -> builtins.int:
        """The number of dimensions."""
        return self.array.ndim

    def size(self, dim: builtins.int | None = None) -> Any:
        """The shape (a :class:`Size`, a tuple), or the length of dimension ``dim``."""
        if dim is None:
            return Size(self.array.shape)
        return self.array.shape[arguments.dim("size", dim, self.ndim)]

    def numel(self) -> builtins.int:
        """The number of elements."""
        return self.array.size

    nelement = numel

    def element_size(self) -> builtins.int:
        return self.array.itemsize

    def is_floating_point(self) -> builtins.bool:
        return self.array.dtype.kind == "f"

    def is_contiguous(self) -> builtins.bool:
        return bool(self.array.flags.c_contiguous)

    @property
    def is_leaf(self) -> builtins.bool:
        """True for tensors created by the user rather than by a recorded op."""
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        """All dimensions reversed."""
        return F.permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:
        """The last two dimensions swapped (batched matrix transpose)."""
        return F.transpose(self, -2, -1)

    def t(self) -> Tensor:
        """The transpose of a matrix (a tensor of at most 2 dimensions)."""
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return F.permute(self, *reversed(range(self.ndim)))

    def numpy(self, *, force: builtins.bool = False) -> np.ndarray:
        """The underlying array (shared, not copied); refused for a tensor that requires grad unless ``force``."""
        if self.requires_grad and not force:
            raise RuntimeError(_NUMPY_REFUSAL)
        return self.array

    def item(self) -> builtins.float | builtins.int | builtins.bool:
        """The value of a one-element tensor as a Python scalar."""
        if self.array.size != 1:
            raise ValueError(
                f"item: only one-element tensors can be converted to a Python scalar, this one has shape {self.shape}"
            )
        return self.array.item()

    def tolist(self) -> Any:
        return self.array.tolist()

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut off from the tape."""
        return Tensor.wrap(self.array)

    def detach_(self) -> Tensor:
        """Cut this tensor off from the tape in place: it becomes a leaf that requires no grad."""
        self._ctx, self.requires_grad, self.before_inplace = None, False, None
        return self

    def clone(self) -> Tensor:
        """A copy with its own memory; differentiable (the gradient passes through unchanged)."""
        return F.clone(self)

    def contiguous(self) -> Tensor:
        """This tensor (every tensor can be reshaped and viewed here; see docs/pytorch.md)."""
        return self

    # ------------------------------------------------------------------ devices and dtypes
    @property
    def device(self) -> Any:
        return _device.device("cpu")

    @property
    def is_cuda(self) -> builtins.bool:
        return False

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)``: only "cpu" exists here."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        copy = kwargs.pop("copy", False)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (str, _device.device)):
                device = a
            else:
                dtype = a
        if device is not None:
            _device.require_cpu(device)  # a clear error for anything but the CPU
        out = self if dtype is None else F.astype(self, dtype)
        return F.clone(out) if copy and out is self else out

    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args: Any, **kwargs: Any) -> Tensor:
        _device.require_cpu("cuda")
        return self  # not reached: device() raises

    def type(self, dtype: Any = None) -> Any:
        """Without an argument, the type's name (``'torch.FloatTensor'`` style); else a cast."""
        if dtype is None:
            return _dtypes.type_name(self.dtype)
        return F.astype(self, _dtypes.from_type_name(dtype))

    def type_as(self, other: Tensor) -> Tensor:
        return F.astype(self, other.dtype)

    def float(self) -> Tensor:
        return F.astype(self, np.float32)

    def double(self) -> Tensor:
        return F.astype(self, np.float64)

    def half(self) -> Tensor:
        return F.astype(self, np.float16)

    def long(self) -> Tensor:
        return F.astype(self, np.int64)

    def int(self) -> Tensor:
        return F.astype(self, np.int32)

    def short(self) -> Tensor:
        return F.astype(self, np.int16)

    def byte(self) -> Tensor:
        return F.astype(self, np.uint8)

    def bool(self) -> Tensor:
        return F.astype(self, np.bool_)

    def astype(self, dtype: DTypeLike) -> Tensor:
        """NumPy's name for :meth:`to` with a dtype."""
        return F.astype(self, dtype)

    # ------------------------------------------------------------------ Python protocols
    def __len__(self) -> builtins.int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.array)

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.array)))

    def __array__(self, dtype: Any = None, copy: builtins.bool | None = None) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError(_NUMPY_REFUSAL)
        return self.array if dtype is None else self.array.astype(dtype, copy=False)

    def __repr__(self) -> str:
        body = _array_text(self.array)
        extras = [f"dtype={self.dtype}"] if self.dtype not in (np.float32, np.int64, np.bool_) else []
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.fn.__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    __hash__ = object.__hash__  # __eq__ is elementwise; identity hashing keeps tensors usable as keys

    def __format__(self, format_spec: str) -> str:
        """A 0-d tensor formats as its value (``f"{loss:.4f}"``), as in PyTorch; others as their repr."""
        if self.ndim == 0:
            return self.array.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __bool__(self) -> builtins.bool:
        if self.array.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous (shape {self.shape})")
        return bool(self.array)

    def __float__(self) -> builtins.float:
        return float(self.item())

    def __int__(self) -> builtins.int:
        return int(self.item())

    def __index__(self) -> builtins.int:
        if self.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.array.item())

    # ------------------------------------------------------------------ autograd
    def backward(
        self,
        gradient: ArrayLike | Tensor | None = None,
        retain_graph: builtins.bool | None = None,
        create_graph: builtins.bool = False,
        inputs: Sequence[Tensor] | None = None,
    ) -> None:
        """Reverse-mode sweep from this tensor; fills ``.grad`` of every leaf that requires one.

        ``gradient`` is the gradient of this tensor (default: 1 for a scalar). The values saved for
        backward are freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if inputs is not None:
            raise NotImplementedError("backward(inputs=...) is not supported; use tinygrad_cnn.autograd.grad")
        if create_graph:
            raise NotImplementedError(
                "backward(create_graph=True) is not supported; use tinygrad_cnn.autograd.grad(..., create_graph=True)"
            )
        _autograd.backward([self], [gradient], retain_graph=bool(retain_graph))

    def register_hook(self, hook: Any) -> Any:
        """Call ``hook(grad)`` with this tensor's gradient in each backward; a Tensor it returns replaces
        the gradient. Returns a handle whose ``remove()`` unregisters it (as PyTorch's)."""
        return _autograd.register_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """Call ``hook(self)`` after each ``backward()`` that accumulated into this leaf's ``.grad``;
        returns a handle whose ``remove()`` unregisters it (see :mod:`tinygrad_cnn.autograd`)."""
        return _autograd.register_post_accumulate_grad_hook(self, hook)

    def zero_grad(self) -> None:
        self._grad = None

    def tape(self, **kwargs: Any) -> Any:
        """The recorded ops that produced this tensor, printable as a table: see :func:`tinygrad_cnn.graph.tape`."""
        from .graph import tape

        return tape(self, **kwargs)

    # ------------------------------------------------------------------ in-place ops
    def _inplace(self, op: str, compute: Callable[[Tensor], Tensor], *others: Any) -> Tensor:
        """Replace this tensor's values by ``compute(self)``, with PyTorch's rules (see docs/pytorch.md).

        Nothing recorded (no grad needed, or under no_grad): the values are written into this
        tensor's memory, so views of it see them. Recorded: the result is computed out of place and
        this tensor becomes it; the tape keeps what it was before, for the ops that used it earlier.
        """
        record = _autograd.is_grad_enabled() and (
            self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)
        )
        if not record:
            with _autograd.no_grad():
                result = compute(self)
            _check_inplace_result(op, self, result)
            _inplace.check_writable(self.array, f"{op}: this tensor (shape {self.shape})")
            np.copyto(self.array, result.array, casting="unsafe")
            return self
        if self._ctx is None and self.requires_grad:
            raise RuntimeError(
                f"{op}: a leaf Variable that requires grad is being used in an in-place operation. "
                "(Update parameters under tinygrad_cnn.no_grad(), or work on a clone().)"
            )
        before = self._earlier_version()
        result = compute(before)
        _check_inplace_result(op, self, result)
        if result.dtype != self.dtype:
            result = F.astype(result, self.dtype)
        if before.requires_grad and not result.requires_grad:
            # overwritten by constants (fill_, zero_, copy_ of a constant): still recorded, as in
            # PyTorch, with a zero gradient to the values it had
            result = F.where(np.ones((), dtype=bool), result, before)
        if result.requires_grad and result._ctx is not None:
            self._ctx = result._ctx
            self._ctx._output = weakref.ref(self)
        self.array, self.requires_grad, self.before_inplace = result.array, result.requires_grad, before
        return self

    def _earlier_version(self) -> Tensor:
        """A stand-in for this tensor as it is now (its node, its array), for the ops that used it so far."""
        before = Tensor.wrap(self.array)
        before._ctx, before.requires_grad, before.before_inplace = self._ctx, self.requires_grad, self.before_inplace
        if self._ctx is not None and self._ctx._output is not None:
            self._ctx._output = weakref.ref(before)
        return before

    def modified_by(self, ctx: Context) -> Tensor:
        """Record that the op of ``ctx`` changed this tensor in place (what a custom Function's
        ``ctx.mark_dirty`` declares): the tensor becomes that op's output, and its earlier version,
        returned, goes to ``before_inplace`` for the ops recorded before."""
        before = self._earlier_version()
        self._ctx, self.requires_grad, self.before_inplace = ctx, True, before
        return before

    def add_(self, other: Any, *, alpha: builtins.float = 1) -> Tensor:
        return self._inplace("add_", lambda t: F.add(t, other, alpha=alpha), other)

    def sub_(self, other: Any, *, alpha: builtins.float = 1) -> Tensor:
        return self._inplace("sub_", lambda t: F.sub(t, other, alpha=alpha), other)

    def mul_(self, other: Any) -> Tensor:
        return self._inplace("mul_", lambda t: F.mul(t, other), other)

    def div_(self, other: Any, *, rounding_mode: str | None = None) -> Tensor:
        return self._inplace("div_", lambda t: F.div(t, other, rounding_mode=rounding_mode), other)

    def pow_(self, exponent: Any) -> Tensor:
        return self._inplace("pow_", lambda t: F.pow(t, exponent), exponent)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._inplace("clamp_", lambda t: F.clamp(t, min, max), min, max)

    clip_ = clamp_

    def relu_(self) -> Tensor:
        return self._inplace("relu_", F.relu)

    def neg_(self) -> Tensor:
        return self._inplace("neg_", F.neg)

    def exp_(self) -> Tensor:
        return self._inplace("exp_", F.exp)

    def masked_fill_(self, mask: Any, value: Any) -> Tensor:
        return self._inplace("masked_fill_", lambda t: F.masked_fill(t, mask, value), value)

    def scatter_(
        self, dim: builtins.int, index: Any, src: Any = None, *, value: Any = None, reduce: str | None = None
    ) -> Tensor:
        return self._inplace("scatter_", lambda t: F.scatter(t, dim, index, src, value=value, reduce=reduce), src)

    def scatter_add_(self, dim: builtins.int, index: Any, src: Any) -> Tensor:
        return self._inplace("scatter_add_", lambda t: F.scatter_add(t, dim, index, src), src)

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src``'s values (broadcast to this shape, cast to this dtype) into this tensor."""
        return self._inplace("copy_", lambda t: F.copy_into(t, src), src)

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        return self._inplace("fill_", lambda t: F.full_like(t, value), value)

    def uniform_(self, a: builtins.float = 0.0, b: builtins.float = 1.0) -> Tensor:
        return self._inplace("uniform_", lambda t: F.random_like(t, "uniform", a, b))

    def normal_(self, mean: builtins.float = 0.0, std: builtins.float = 1.0) -> Tensor:
        return self._inplace("normal_", lambda t: F.random_like(t, "normal", mean, std))

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._inplace("__setitem__", lambda t: F.index_put(t, index, value), value)

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

    def __floordiv__(self, other: Any) -> Tensor:
        return F.div(self, other, rounding_mode="floor")

    def __rfloordiv__(self, other: Any) -> Tensor:
        return F.div(other, self, rounding_mode="floor")

    def __mod__(self, other: Any) -> Tensor:
        return F.remainder(self, other)

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return F.abs(self)

    def __invert__(self) -> Tensor:
        return F.logical_not(self) if self.dtype == np.bool_ else F.bitwise_not(self)

    def __and__(self, other: Any) -> Tensor:
        return F.bitwise_and(self, other)

    def __or__(self, other: Any) -> Tensor:
        return F.bitwise_or(self, other)

    def __xor__(self, other: Any) -> Tensor:
        return F.bitwise_xor(self, other)

    def __pow__(self, exponent: Any) -> Tensor:
        return F.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return F.pow(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return F.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return F.getitem(self, index)

    # comparisons: not differentiable, return boolean tensors
    def __lt__(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return F.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return F.ge(self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.ne(self, other)

    # ------------------------------------------------------------------ ops (see functional.py)
    def add(self, other: Any, *, alpha: Any = 1) -> Tensor:
        return F.add(self, other, alpha=alpha)

    def sub(self, other: Any, *, alpha: Any = 1) -> Tensor:
        return F.sub(self, other, alpha=alpha)

    def mul(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def div(self, other: Any, *, rounding_mode: str | None = None) -> Tensor:
        return F.div(self, other, rounding_mode=rounding_mode)

    def pow(self, exponent: Any) -> Tensor:
        return F.pow(self, exponent)

    def remainder(self, other: Any) -> Tensor:
        return F.remainder(self, other)

    def neg(self) -> Tensor:
        return F.neg(self)

    def exp(self) -> Tensor:
        return F.exp(self)

    def log(self) -> Tensor:
        return F.log(self)

    def log1p(self) -> Tensor:
        return F.log1p(self)

    def sqrt(self) -> Tensor:
        return F.sqrt(self)

    def rsqrt(self) -> Tensor:
        return F.rsqrt(self)

    def square(self) -> Tensor:
        return F.square(self)

    def sin(self) -> Tensor:
        return F.sin(self)

    def cos(self) -> Tensor:
        return F.cos(self)

    def relu(self) -> Tensor:
        return F.relu(self)

    def sigmoid(self) -> Tensor:
        return F.sigmoid(self)

    def tanh(self) -> Tensor:
        return F.tanh(self)

    def sign(self) -> Tensor:
        return F.sign(self)

    def abs(self) -> Tensor:
        return F.abs(self)

    def floor(self) -> Tensor:
        return F.floor(self)

    def ceil(self) -> Tensor:
        return F.ceil(self)

    def round(self, decimals: builtins.int = 0) -> Tensor:
        return F.round(self, decimals)

    def trunc(self) -> Tensor:
        return F.trunc(self)

    def softplus(self) -> Tensor:
        return F.softplus(self)

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        return F.masked_fill(self, mask, value)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        return F.clamp(self, min, max)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:
        return F.clip(self, min, max)

    def maximum(self, other: Any) -> Tensor:
        return F.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return F.minimum(self, other)

    def eq(self, other: Any) -> Tensor:
        return F.eq(self, other)

    def ne(self, other: Any) -> Tensor:
        return F.ne(self, other)

    def lt(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def le(self, other: Any) -> Tensor:
        return F.le(self, other)

    def gt(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def ge(self, other: Any) -> Tensor:
        return F.ge(self, other)

    def logical_and(self, other: Any) -> Tensor:
        return F.logical_and(self, other)

    def logical_or(self, other: Any) -> Tensor:
        return F.logical_or(self, other)

    def logical_xor(self, other: Any) -> Tensor:
        return F.logical_xor(self, other)

    def logical_not(self) -> Tensor:
        return F.logical_not(self)

    def bitwise_not(self) -> Tensor:
        return F.bitwise_not(self)

    def isnan(self) -> Tensor:
        return F.isnan(self)

    def isinf(self) -> Tensor:
        return F.isinf(self)

    def isfinite(self) -> Tensor:
        return F.isfinite(self)

    def equal(self, other: Any) -> builtins.bool:
        return F.equal(self, other)

    def allclose(
        self, other: Any, rtol: builtins.float = 1e-05, atol: builtins.float = 1e-08, equal_nan: builtins.bool = False
    ) -> builtins.bool:
        return F.allclose(self, other, rtol, atol, equal_nan)

    def isclose(
        self, other: Any, rtol: builtins.float = 1e-05, atol: builtins.float = 1e-08, equal_nan: builtins.bool = False
    ) -> Tensor:
        return F.isclose(self, other, rtol, atol, equal_nan)

    def sum(
        self,
        dim: Axis = None,
        keepdim: builtins.bool = False,
        *,
        dtype: Any = None,
        axis: Axis = None,
        keepdims: builtins.bool | None = None,
    ) -> Tensor:
        return F.sum(self, dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)

    def mean(
        self,
        dim: Axis = None,
        keepdim: builtins.bool = False,
        *,
        dtype: Any = None,
        axis: Axis = None,
        keepdims: builtins.bool | None = None,
    ) -> Tensor:
        return F.mean(self, dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)

    def var(
        self,
        dim: Axis = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        *,
        correction: builtins.float | None = None,
        axis: Axis = None,
        keepdims: builtins.bool | None = None,
        ddof: builtins.int | None = None,
    ) -> Tensor:
        return F.var(self, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(
        self,
        dim: Axis = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        *,
        correction: builtins.float | None = None,
        axis: Axis = None,
        keepdims: builtins.bool | None = None,
        ddof: builtins.int | None = None,
    ) -> Tensor:
        return F.std(self, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims, ddof=ddof)

    def prod(
        self,
        dim: builtins.int | None = None,
        keepdim: builtins.bool = False,
        *,
        dtype: Any = None,
        axis: builtins.int | None = None,
        keepdims: builtins.bool | None = None,
    ) -> Tensor:
        return F.prod(self, dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)

    def max(
        self,
        dim: Any = None,
        keepdim: builtins.bool = False,
        *,
        axis: Any = None,
        keepdims: builtins.bool | None = None,
    ) -> Any:
        return F.max(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def min(
        self,
        dim: Any = None,
        keepdim: builtins.bool = False,
        *,
        axis: Any = None,
        keepdims: builtins.bool | None = None,
    ) -> Any:
        return F.min(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amax(
        self,
        dim: Axis = (),
        keepdim: builtins.bool = False,
        *,
        axis: Axis = None,
        keepdims: builtins.bool | None = None,
    ) -> Tensor:
        return F.amax(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amin(
        self,
        dim: Axis = (),
        keepdim: builtins.bool = False,
        *,
        axis: Axis = None,
        keepdims: builtins.bool | None = None,
    ) -> Tensor:
        return F.amin(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def argmax(
        self, dim: builtins.int | None = None, keepdim: builtins.bool = False, *, axis: builtins.int | None = None
    ) -> Tensor:
        return F.argmax(self, dim, keepdim, axis=axis)

    def argmin(
        self, dim: builtins.int | None = None, keepdim: builtins.bool = False, *, axis: builtins.int | None = None
    ) -> Tensor:
        return F.argmin(self, dim, keepdim, axis=axis)

    def all(self, dim: Axis = None, keepdim: builtins.bool = False, *, axis: Axis = None, out: None = None) -> Tensor:
        return F.all(self, dim, keepdim, axis=axis, out=out)

    def any(self, dim: Axis = None, keepdim: builtins.bool = False, *, axis: Axis = None, out: None = None) -> Tensor:
        return F.any(self, dim, keepdim, axis=axis, out=out)

    def count_nonzero(self, dim: Axis = None) -> Tensor:
        return F.count_nonzero(self, dim)

    def norm(self, p: Any = "fro", dim: Axis = None, keepdim: builtins.bool = False, *, dtype: Any = None) -> Tensor:
        return F.norm(self, p, dim, keepdim, dtype=dtype)

    def logsumexp(
        self,
        dim: Axis = None,
        keepdim: builtins.bool = False,
        *,
        axis: Axis = None,
        keepdims: builtins.bool | None = None,
    ) -> Tensor:
        return F.logsumexp(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def cumsum(self, dim: builtins.int, *, dtype: Any = None) -> Tensor:
        return F.cumsum(self, dim, dtype=dtype)

    def reshape(self, *shape: builtins.int | Sequence[builtins.int]) -> Tensor:
        return F.reshape(self, *shape)

    def view(self, *shape: Any) -> Tensor:
        return F.view(self, *shape)

    def view_as(self, other: Tensor) -> Tensor:
        return F.view_as(self, other)

    def reshape_as(self, other: Tensor) -> Tensor:
        return F.reshape_as(self, other)

    def permute(self, *dims: builtins.int | Sequence[builtins.int]) -> Tensor:
        return F.permute(self, *dims)

    def transpose(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        return F.transpose(self, dim0, dim1)

    def swapaxes(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        return F.swapaxes(self, dim0, dim1)

    def swapdims(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        return F.swapdims(self, dim0, dim1)

    def movedim(self, source: builtins.int, destination: builtins.int) -> Tensor:
        return F.movedim(self, source, destination)

    def flatten(self, start_dim: builtins.int = 0, end_dim: builtins.int = -1) -> Tensor:
        return F.flatten(self, start_dim, end_dim)

    def ravel(self) -> Tensor:
        return F.ravel(self)

    def unflatten(self, dim: builtins.int, sizes: Sequence[builtins.int]) -> Tensor:
        return F.unflatten(self, dim, sizes)

    def unsqueeze(self, dim: builtins.int) -> Tensor:
        return F.unsqueeze(self, dim)

    def squeeze(self, dim: Axis = None) -> Tensor:
        return F.squeeze(self, dim)

    def broadcast_to(self, *shape: builtins.int | Sequence[builtins.int]) -> Tensor:
        return F.broadcast_to(self, *shape)

    def expand(self, *sizes: builtins.int | Sequence[builtins.int]) -> Tensor:
        return F.expand(self, *sizes)

    def expand_as(self, other: Tensor) -> Tensor:
        return F.expand_as(self, other)

    def repeat(self, *sizes: builtins.int | Sequence[builtins.int]) -> Tensor:
        return F.repeat(self, *sizes)

    def flip(self, dims: builtins.int | Sequence[builtins.int]) -> Tensor:
        return F.flip(self, dims)

    def narrow(self, dim: builtins.int, start: builtins.int, length: builtins.int) -> Tensor:
        return F.narrow(self, dim, start, length)

    def split(
        self, split_size_or_sections: builtins.int | Sequence[builtins.int], dim: builtins.int = 0
    ) -> tuple[Tensor, ...]:
        return F.split(self, split_size_or_sections, dim)

    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        return F.chunk(self, chunks, dim)

    def unbind(self, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        return F.unbind(self, dim)

    def gather(self, dim: builtins.int, index: Any) -> Tensor:
        return F.gather(self, dim, index)

    def scatter(
        self, dim: builtins.int, index: Any, src: Any = None, *, value: Any = None, reduce: str | None = None
    ) -> Tensor:
        return F.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim: builtins.int, index: Any, src: Any) -> Tensor:
        return F.scatter_add(self, dim, index, src)

    def index_select(self, dim: builtins.int, index: Any) -> Tensor:
        return F.index_select(self, dim, index)

    def masked_select(self, mask: Any) -> Tensor:
        return F.masked_select(self, mask)

    def nonzero(self, *, as_tuple: builtins.bool = False) -> Any:
        return F.nonzero(self, as_tuple=as_tuple)

    def matmul(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def mm(self, other: Tensor) -> Tensor:
        return F.mm(self, other)

    def bmm(self, other: Tensor) -> Tensor:
        return F.bmm(self, other)

    def dot(self, other: Tensor) -> Tensor:
        return F.dot(self, other)

    def softmax(
        self, dim: builtins.int | None = None, *, dtype: Any = None, axis: builtins.int | None = None
    ) -> Tensor:
        return F.softmax(self, dim, dtype=dtype, axis=axis)

    def log_softmax(
        self, dim: builtins.int | None = None, *, dtype: Any = None, axis: builtins.int | None = None
    ) -> Tensor:
        return F.log_softmax(self, dim, dtype=dtype, axis=axis)

    def pad(self, pad_width: Any, value: builtins.float = 0.0) -> Tensor:
        return F.pad(self, pad_width, value)

    def conv2d(
        self,
        weight: Tensor,
        bias: Tensor | None = None,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
    ) -> Tensor:
        return F.conv2d(self, weight, bias, stride, padding, dilation)

    def max_pool2d(
        self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0, dilation: IntOrPair = 1
    ) -> Tensor:
        return F.max_pool2d(self, kernel_size, stride, padding, dilation)

    def avg_pool2d(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> Tensor:
        return F.avg_pool2d(self, kernel_size, stride, padding)

    # ---- more of PyTorch's methods: elementwise, triangles, sorting, and new tensors like this one

    def log2(self) -> Tensor:
        return F.log2(self)

    def log10(self) -> Tensor:
        return F.log10(self)

    def expm1(self) -> Tensor:
        return F.expm1(self)

    def reciprocal(self) -> Tensor:
        return F.reciprocal(self)

    def clamp_min(self, min: Any) -> Tensor:
        return F.clamp_min(self, min)

    def clamp_max(self, max: Any) -> Tensor:
        return F.clamp_max(self, max)

    def lerp(self, end: Any, weight: Any) -> Tensor:
        return F.lerp(self, end, weight)

    def roll(
        self, shifts: builtins.int | Sequence[builtins.int], dims: builtins.int | Sequence[builtins.int] | None = None
    ) -> Tensor:
        return F.roll(self, shifts, dims)

    def tril(self, diagonal: builtins.int = 0) -> Tensor:
        return F.tril(self, diagonal)

    def triu(self, diagonal: builtins.int = 0) -> Tensor:
        return F.triu(self, diagonal)

    def diag(self, diagonal: builtins.int = 0) -> Tensor:
        return F.diag(self, diagonal)

    def outer(self, other: Tensor) -> Tensor:
        return F.outer(self, other)

    def addmm(self, mat1: Tensor, mat2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
        return F.addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def argwhere(self) -> Tensor:
        return F.argwhere(self)

    def sort(self, dim: builtins.int = -1, descending: builtins.bool = False, stable: builtins.bool = False) -> Any:
        return _sorting.sort(self, dim, descending, stable)

    def argsort(
        self, dim: builtins.int = -1, descending: builtins.bool = False, stable: builtins.bool = False
    ) -> Tensor:
        return _sorting.argsort(self, dim, descending, stable)

    def topk(
        self, k: builtins.int, dim: builtins.int = -1, largest: builtins.bool = True, sorted: builtins.bool = True
    ) -> Any:
        return _sorting.topk(self, k, dim, largest, sorted)

    def unique(
        self,
        sorted: builtins.bool = True,
        return_inverse: builtins.bool = False,
        return_counts: builtins.bool = False,
        dim: builtins.int | None = None,
    ) -> Any:
        return _sorting.unique(self, sorted, return_inverse, return_counts, dim)

    def bincount(self, weights: Any = None, minlength: builtins.int = 0) -> Tensor:
        return _sorting.bincount(self, weights, minlength)

    def tan(self) -> Tensor:
        return F.tan(self)

    def asin(self) -> Tensor:
        return F.asin(self)

    arcsin = asin

    def acos(self) -> Tensor:
        return F.acos(self)

    arccos = acos

    def atan(self) -> Tensor:
        return F.atan(self)

    arctan = atan

    def sinh(self) -> Tensor:
        return F.sinh(self)

    def cosh(self) -> Tensor:
        return F.cosh(self)

    def asinh(self) -> Tensor:
        return F.asinh(self)

    def acosh(self) -> Tensor:
        return F.acosh(self)

    def atanh(self) -> Tensor:
        return F.atanh(self)

    def erf(self) -> Tensor:
        return F.erf(self)

    def fmod(self, other: Any) -> Tensor:
        return F.fmod(self, other)

    def frac(self) -> Tensor:
        return F.frac(self)

    def floor_divide(self, other: Any) -> Tensor:
        return F.floor_divide(self, other)

    def logit(self, eps: builtins.float | None = None) -> Tensor:
        return F.logit(self, eps)

    def xlogy(self, other: Any) -> Tensor:
        return F.xlogy(self, other)

    def logaddexp(self, other: Any) -> Tensor:
        return F.logaddexp(self, other)

    def deg2rad(self) -> Tensor:
        return F.deg2rad(self)

    def rad2deg(self) -> Tensor:
        return F.rad2deg(self)

    def nan_to_num(
        self, nan: builtins.float = 0.0, posinf: builtins.float | None = None, neginf: builtins.float | None = None
    ) -> Tensor:
        return F.nan_to_num(self, nan, posinf, neginf)

    def nansum(self, dim: Axis = None, keepdim: builtins.bool = False, *, dtype: Any = None) -> Tensor:
        return F.nansum(self, dim, keepdim, dtype=dtype)

    def nanmean(self, dim: Axis = None, keepdim: builtins.bool = False, *, dtype: Any = None) -> Tensor:
        return F.nanmean(self, dim, keepdim, dtype=dtype)

    def cumprod(self, dim: builtins.int, *, dtype: Any = None) -> Tensor:
        return F.cumprod(self, dim, dtype=dtype)

    def diff(self, n: builtins.int = 1, dim: builtins.int = -1, prepend: Any = None, append: Any = None) -> Tensor:
        return F.diff(self, n, dim, prepend, append)

    def diagonal(self, offset: builtins.int = 0, dim1: builtins.int = 0, dim2: builtins.int = 1) -> Tensor:
        return F.diagonal(self, offset, dim1, dim2)

    def trace(self) -> Tensor:
        return F.trace(self)

    def tile(self, *dims: Any) -> Tensor:
        return F.tile(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], builtins.int) else dims)

    def repeat_interleave(self, repeats: Any, dim: builtins.int | None = None) -> Tensor:
        return F.repeat_interleave(self, repeats, dim)

    def take(self, index: Any) -> Tensor:
        return F.take(self, index)

    def take_along_dim(self, indices: Any, dim: builtins.int | None = None) -> Tensor:
        return F.take_along_dim(self, indices, dim)

    def mv(self, vec: Tensor) -> Tensor:
        return F.mv(self, vec)

    def inner(self, other: Any) -> Tensor:
        return F.inner(self, other)

    def addcmul(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
        return F.addcmul(self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
        return F.addcdiv(self, tensor1, tensor2, value=value)

    def dist(self, other: Any, p: builtins.float = 2) -> Tensor:
        return F.dist(self, other, p)

    def index_add(self, dim: builtins.int, index: Any, source: Any, *, alpha: Any = 1) -> Tensor:
        return F.index_add(self, dim, index, source, alpha=alpha)

    def index_fill(self, dim: builtins.int, index: Any, value: Any) -> Tensor:
        return F.index_fill(self, dim, index, value)

    def index_copy(self, dim: builtins.int, index: Any, source: Any) -> Tensor:
        return F.index_copy(self, dim, index, source)

    def select(self, dim: builtins.int, index: builtins.int) -> Tensor:
        return F.select(self, dim, index)

    def tensor_split(self, indices_or_sections: Any, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        return F.tensor_split(self, indices_or_sections, dim)

    def fliplr(self) -> Tensor:
        return F.fliplr(self)

    def flipud(self) -> Tensor:
        return F.flipud(self)

    def rot90(self, k: builtins.int = 1, dims: Sequence[builtins.int] = (0, 1)) -> Tensor:
        return F.rot90(self, k, dims)

    def kthvalue(self, k: builtins.int, dim: builtins.int = -1, keepdim: builtins.bool = False) -> Any:
        return F.kthvalue(self, k, dim, keepdim)

    def median(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Any:
        return F.median(self, dim, keepdim)

    def aminmax(self, *, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Any:
        return F.aminmax(self, dim=dim, keepdim=keepdim)

    def msort(self) -> Tensor:
        return _sorting.msort(self)

    def where(self, condition: Any, other: Any) -> Tensor:
        """``where(condition, self, other)``."""
        return F.where(condition, self, other)

    def absolute(self) -> Tensor:
        return F.abs(self)

    def negative(self) -> Tensor:
        return F.neg(self)

    def divide(self, other: Any, *, rounding_mode: str | None = None) -> Tensor:
        return F.div(self, other, rounding_mode=rounding_mode)

    true_divide = divide

    def greater(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def moveaxis(self, source: builtins.int, destination: builtins.int) -> Tensor:
        return F.movedim(self, source, destination)

    ger = outer

    def ndimension(self) -> builtins.int:
        return self.ndim

    def stride(self, dim: builtins.int | None = None) -> Any:
        """Steps in elements between neighbours along each dim (NumPy's byte strides / itemsize)."""
        steps = tuple(s // self.array.itemsize for s in self.array.strides)
        return steps if dim is None else steps[arguments.dim("stride", dim, self.ndim)]

    def data_ptr(self) -> builtins.int:
        return builtins.int(self.array.__array_interface__["data"][0])

    def get_device(self) -> builtins.int:
        """-1: the CPU, as PyTorch numbers it."""
        return -1

    def is_complex(self) -> builtins.bool:
        return self.dtype.kind == "c"

    def pin_memory(self) -> Tensor:
        """PyTorch's error on a machine without an accelerator (there is nothing to pin memory for)."""
        raise RuntimeError("Cannot access accelerator device when none is available.")

    def is_pinned(self) -> builtins.bool:
        return False

    def share_memory_(self) -> Tensor:
        """The tensor itself (one process shares its memory already)."""
        return self

    def bernoulli(self, p: Any = None, *, generator: Any = None) -> Tensor:
        """1 with probability ``self`` (or ``p``) per element, else 0, in this tensor's dtype."""
        return _factories.bernoulli(self if p is None else F.full_like(self, p), generator=generator)

    def multinomial(
        self, num_samples: builtins.int, replacement: builtins.bool = False, *, generator: Any = None
    ) -> Tensor:
        return _factories.multinomial(self, num_samples, replacement, generator=generator)

    def new_tensor(self, data: Any, *, dtype: Any = None, requires_grad: builtins.bool = False, **_: Any) -> Tensor:
        """A new tensor of ``data`` (copied), with this tensor's dtype unless ``dtype`` is given."""
        return _factories.tensor(data, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_zeros(self, *size: Any, dtype: Any = None, requires_grad: builtins.bool = False, **_: Any) -> Tensor:
        return _factories.zeros(*size, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, requires_grad: builtins.bool = False, **_: Any) -> Tensor:
        return _factories.ones(*size, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, requires_grad: builtins.bool = False, **_: Any) -> Tensor:
        return _factories.empty(*size, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def new_full(
        self, size: Sequence[builtins.int], fill_value: Any, *, dtype: Any = None,
        requires_grad: builtins.bool = False, **_: Any,
    ) -> Tensor:  # fmt: skip
        return _factories.full(
            size, fill_value, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad
        )

    # ------------------------------------------------------------------ more of PyTorch's names
    def replace_(self, compute: Callable[[Tensor], Tensor], *, op: str = "replace_") -> Tensor:
        """Replace this tensor's values by ``compute(self)`` in place, by the rules of the in-place ops
        (docs/pytorch.md): how ``F.leaky_relu(x, inplace=True)``, ``F.elu_`` and the like are written."""
        return self._inplace(op, compute)

    @property
    def nbytes(self) -> builtins.int:
        return builtins.int(self.array.nbytes)

    @property
    def itemsize(self) -> builtins.int:
        return builtins.int(self.array.itemsize)

    @property
    def is_cpu(self) -> builtins.bool:
        return True

    def is_signed(self) -> builtins.bool:
        """True for floating-point and signed integer dtypes (False for bool and uint8), as PyTorch."""
        return self.dtype.kind in "fic"

    def less(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def less_equal(self, other: Any) -> Tensor:
        return F.le(self, other)

    def greater_equal(self, other: Any) -> Tensor:
        return F.ge(self, other)

    def not_equal(self, other: Any) -> Tensor:
        return F.ne(self, other)

    def multiply(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def subtract(self, other: Any, *, alpha: Any = 1) -> Tensor:
        return F.sub(self, other, alpha=alpha)

    def atan2(self, other: Any) -> Tensor:
        return F.atan2(self, other)

    arctan2 = atan2

    def hypot(self, other: Any) -> Tensor:
        return F.hypot(self, other)

    def fmax(self, other: Any) -> Tensor:
        return F.fmax(self, other)

    def fmin(self, other: Any) -> Tensor:
        return F.fmin(self, other)

    def copysign(self, other: Any) -> Tensor:
        return F.copysign(self, other)

    def heaviside(self, values: Any) -> Tensor:
        return F.heaviside(self, values)

    def logaddexp2(self, other: Any) -> Tensor:
        return F.logaddexp2(self, other)

    def exp2(self) -> Tensor:
        return F.exp2(self)

    def erfc(self) -> Tensor:
        return F.erfc(self)

    def sgn(self) -> Tensor:
        return F.sgn(self)

    def signbit(self) -> Tensor:
        return F.signbit(self)

    def positive(self) -> Tensor:
        return F.positive(self)

    def fix(self) -> Tensor:
        return F.fix(self)

    def isposinf(self) -> Tensor:
        return F.isposinf(self)

    def isneginf(self) -> Tensor:
        return F.isneginf(self)

    def cummax(self, dim: builtins.int) -> Any:
        return F.cummax(self, dim)

    def cummin(self, dim: builtins.int) -> Any:
        return F.cummin(self, dim)

    def logcumsumexp(self, dim: builtins.int) -> Tensor:
        return F.logcumsumexp(self, dim)

    def unfold(self, dimension: builtins.int, size: builtins.int, step: builtins.int) -> Tensor:
        """Windows of ``size`` along ``dimension`` every ``step``, as a new last dim (PyTorch's; a copy here)."""
        return F.unfold_dimension(self, dimension, size, step)

    def kron(self, other: Any) -> Tensor:
        return F.kron(self, other)

    def cross(self, other: Any, dim: builtins.int | None = None) -> Tensor:
        return F.cross(self, other, dim)

    def prelu(self, weight: Tensor) -> Tensor:
        from .nn.activation import prelu  # nn builds on this module

        return prelu(self, weight)

    def hardshrink(self, lambd: builtins.float = 0.5) -> Tensor:
        from .nn.activation import hardshrink

        return hardshrink(self, lambd)


def _array_text(arr: np.ndarray) -> str:
    """The values as ``print(tensor)`` shows them, in PyTorch's format: floats with 4 decimals
    (``2.5000``), or as ``2.`` when all are whole, or in scientific notation (``1.0000e-05``) when
    they span more than 1000x, exceed 1e8 or go below 1e-4; all padded to one width."""
    options: dict[str, Any] = {"separator": ", ", "prefix": "tensor(", "threshold": 1000, "edgeitems": 3}
    if arr.dtype.kind != "f":
        return np.array2string(arr, max_line_width=80, **options)
    finite = arr[np.isfinite(arr) & (arr != 0)].astype(np.float64)
    if finite.size == 0:
        return np.array2string(
            arr, max_line_width=80, formatter={"float_kind": _float_format(".0f", True, 1)}, **options
        )
    magnitude = np.abs(finite)
    low, high = magnitude.min(), magnitude.max()
    whole = bool((finite == np.ceil(finite)).all())
    sci = high / low > 1000.0 or high > 1.0e8 or (not whole and low < 1.0e-4)
    spec = ".4e" if sci else ".0f" if whole else ".4f"
    width = max(len(format(v, spec)) + (whole and not sci) for v in finite)
    return np.array2string(
        arr, max_line_width=80, formatter={"float_kind": _float_format(spec, whole and not sci, width)}, **options
    )


def _float_format(spec: str, whole: bool, width: int) -> Callable[[Any], str]:
    def text(v: Any) -> str:
        body = format(float(v), spec) + ("." if whole and np.isfinite(v) else "")
        return body.rjust(width)

    return text


# PyTorch's in-place spellings ``name_`` of the methods ``name`` whose result has the tensor's shape:
# ``t.name_(*args)`` replaces t's values by ``t.name(*args)``, by the rules of the in-place ops.
IN_PLACE_FORMS = (
    # one operand
    "abs", "absolute", "acos", "acosh", "arccos", "arcsin", "arctan", "asin", "asinh", "atan", "atanh",
    "ceil", "cos", "cosh", "deg2rad", "erf", "erfc", "exp2", "expm1", "fix", "floor", "frac", "log",
    "log10", "log1p", "log2", "logical_not", "logit", "nan_to_num", "negative", "rad2deg", "reciprocal",
    "round", "rsqrt", "sgn", "sigmoid", "sign", "sin", "sinh", "sqrt", "square", "tan", "tanh", "trunc",
    "bitwise_not", "cumsum", "cumprod", "tril", "triu",
    # more operands
    "addcdiv", "addcmul", "addmm", "arctan2", "atan2", "clamp_max", "clamp_min", "copysign", "divide",
    "floor_divide", "fmod", "heaviside", "hypot", "index_add", "index_copy", "index_fill", "lerp",
    "multiply", "remainder", "subtract", "true_divide", "xlogy",
    # comparisons and logic: the tensor gets 1 or 0 in its own dtype
    "eq", "ne", "not_equal", "ge", "greater_equal", "gt", "greater", "le", "less_equal", "lt", "less",
    "logical_and", "logical_or", "logical_xor",
)  # fmt: skip


def _in_place_form(name: str) -> Callable[..., Tensor]:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return self._inplace(f"{name}_", lambda t: getattr(t, name)(*args, **kwargs), *args, *kwargs.values())

    method.__name__ = method.__qualname__ = f"{name}_"
    method.__doc__ = f"In place: this tensor's values become ``self.{name}(...)``'s (PyTorch's ``Tensor.{name}_``)."
    return method


for _name in IN_PLACE_FORMS:
    setattr(Tensor, f"{_name}_", _in_place_form(_name))


def _check_inplace_result(op: str, t: Tensor, result: Tensor) -> None:
    if result.shape != t.shape:
        raise RuntimeError(f"{op}: output with shape {t.shape} doesn't match the broadcast shape {result.shape}")
    if _dtypes.category(result.dtype) > _dtypes.category(t.dtype):
        raise RuntimeError(f"{op}: result type {result.dtype} can't be cast to the desired output type {t.dtype}")


from . import (  # noqa: E402
    _device,
    _dtypes,
    arguments,  # noqa: E402  (arguments builds on Tensor, like functional)
)
from . import autograd as _autograd  # noqa: E402  (autograd imports this module: only its names at run time here)
from . import factories as _factories  # noqa: E402
from . import functional as F  # noqa: E402  (functional builds on Tensor; imported last to break the cycle)
from . import inplace as _inplace  # noqa: E402
from . import sorting as _sorting  # noqa: E402
