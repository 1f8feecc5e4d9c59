"""Custom autograd functions, the PyTorch way: ``tinygrad_cnn.autograd.Function``.

A user's op is a subclass of :class:`Function` whose ``forward`` and ``backward`` are written with
Tensor operations, exactly as in PyTorch (``torch.autograd.Function``)::

    class MyReLU(Function):
        @staticmethod
        def forward(ctx, input):               # input: the Tensor passed to apply
            ctx.save_for_backward(input)
            return input.clamp(min=0)

        @staticmethod
        def backward(ctx, grad_output):        # one gradient per output of forward
            (input,) = ctx.saved_tensors
            grad_input = grad_output.clone()
            grad_input[input < 0] = 0
            return grad_input                  # one gradient per input of forward (None for none)

    y = MyReLU.apply(x)

``apply`` runs ``forward`` without recording (under :func:`~tinygrad_cnn.autograd.no_grad`) and, when
an input requires grad, records the whole function as one node of the tape, whose rule is
``backward``. ``forward`` may return one Tensor or a tuple (of Tensors and other values: several
outputs, each with its own gradient in ``backward``). The PyTorch 2 form, a ``forward`` without
``ctx`` plus ``setup_context(ctx, inputs, output)``, works too. ``ctx`` is a :class:`FunctionCtx`.

The library's own primitives use the array protocol of :class:`~tinygrad_cnn.autograd.Primitive`
instead (forward on NumPy arrays, one output), which costs no Tensor per op; both are recorded as
the same kind of node (:class:`~tinygrad_cnn.autograd.Context`), so the engine, the tape viewer
and :mod:`tinygrad_cnn.testing` treat them alike.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import inplace
from ._tensor import Tensor
from .autograd import Context, Primitive, is_grad_enabled, no_grad

__all__ = ["Function", "FunctionCtx", "forward_takes_ctx", "once_differentiable"]


class FunctionCtx(Context):
    """The ``ctx`` of a :class:`Function`: PyTorch's methods on the library's tape node.

    In ``forward`` (or ``setup_context``): :meth:`save_for_backward`, :meth:`mark_non_differentiable`,
    :meth:`mark_dirty`, :meth:`set_materialize_grads`, and attributes of your own (``ctx.k = 3``).
    In ``backward``: :attr:`saved_tensors`, ``needs_input_grad`` (one bool per argument of ``apply``)
    and your attributes.
    """

    __slots__ = ("materialize_grads", "_dirty", "_non_differentiable", "_outputs", "_output_specs")

    def __init__(self, fn: type[Function], inputs: tuple[Any, ...], record: bool) -> None:
        super().__init__(fn, inputs)
        if not record:
            self.needs_input_grad = (False,) * len(inputs)
        self.materialize_grads = True
        self._dirty: tuple[Tensor, ...] = ()
        self._non_differentiable: tuple[Tensor, ...] = ()
        self._outputs: tuple[weakref.ReferenceType[Tensor] | None, ...] = ()  # several outputs: one per output
        self._output_specs: tuple[tuple[tuple[int, ...], np.dtype] | None, ...] = ()  # shape, dtype of tensor outputs

    def save_for_backward(self, *tensors: Tensor | None) -> None:  # type: ignore[override]
        """Keep tensors (inputs, outputs, or None) for ``backward``; read them back as :attr:`saved_tensors`.

        An input comes back as that input and an output as that output, so a ``backward`` written
        with Tensor operations on them can itself be differentiated (``create_graph=True``)."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save variables, but argument {i} is of type {type(t).__name__}"
                )
        self.saved = tuple(None if t is None else t.array for t in tensors)

    def mark_non_differentiable(self, *outputs: Tensor) -> None:
        """Declare outputs that get no gradient (indices, masks): they do not require grad, and
        ``backward`` receives zeros for them (None after ``set_materialize_grads(False)``)."""
        self._non_differentiable += outputs

    def mark_dirty(self, *inputs: Tensor) -> None:
        """Declare inputs that ``forward`` modified in place; each must be returned as an output.
        That input tensor then becomes the output (recorded as an in-place op, as in PyTorch)."""
        self._dirty += inputs

    def set_materialize_grads(self, value: bool) -> None:
        """Whether ``backward`` receives zeros (True, the default) or None for an output no gradient reached."""
        self.materialize_grads = bool(value)

    def output_tensors(self) -> tuple[Tensor | None, ...]:
        if not self.several_outputs:
            return super().output_tensors()
        found: list[Tensor | None] = []
        for ref in self._outputs:
            t = ref() if ref is not None else None
            while t is not None and t.grad_fn is not self:  # modified in place since: its earlier version
                t = t.before_inplace
            found.append(t)
        return tuple(found)

    def grads_for_backward(self, grads: list[Tensor | None]) -> tuple[Tensor | None, ...]:
        """One gradient per output of ``forward``: None where none reached a tensor output becomes
        zeros (unless ``set_materialize_grads(False)``); None for outputs that are not tensors."""
        return tuple(
            Tensor.wrap(np.zeros(*spec)) if g is None and spec is not None and self.materialize_grads else g
            for g, spec in zip(grads, self._output_specs)
        )

    def record(self, output: Any) -> Any:
        """Make what ``forward`` returned the outputs of this node; returns them as ``apply`` does."""
        outputs = output if isinstance(output, tuple) else (output,)
        self.check_outputs(outputs, recording=True)
        results: list[Any] = []
        refs: list[weakref.ReferenceType[Tensor] | None] = []
        for o in outputs:
            if not isinstance(o, Tensor) or o.dtype.kind != "f" or _among(o, self._non_differentiable):
                results.append(o.detach() if isinstance(o, Tensor) and o.requires_grad else o)
                refs.append(None)
                continue
            if _among(o, self._dirty):  # modified in place: the input tensor itself becomes the output
                out = o
                before = o.modified_by(self)
                self.inputs = tuple(before if a is o else a for a in self.inputs)
            else:
                out = Tensor.from_op(o.array, self)
            results.append(out)
            refs.append(weakref.ref(out))
        recorded = [r for r in results if isinstance(r, Tensor) and r.grad_fn is self]
        if recorded:
            self.several_outputs = isinstance(output, tuple)
            self._outputs = tuple(refs)
            self._output_specs = tuple((o.shape, o.dtype) if isinstance(o, Tensor) else None for o in outputs)
            if not self.several_outputs:
                self._output = refs[0]
            self._locked = inplace.protect(self.kept_arrays(), self.inputs, recorded[0])
        return tuple(results) if isinstance(output, tuple) else results[0]

    def check_outputs(self, outputs: tuple[Any, ...], recording: bool) -> None:
        """Refuse arrays among the outputs, and dirty inputs that are not outputs (or, when
        recording, are leaves that require grad), with PyTorch's messages."""
        name = self.fn.__name__
        for k, o in enumerate(outputs):
            if isinstance(o, np.ndarray):
                raise TypeError(
                    f"{name}.forward returned a numpy.ndarray as output {k}: a Function's forward receives and "
                    "returns Tensors, as in PyTorch (wrap it: tinygrad_cnn.from_numpy(array)). An op whose "
                    "forward works on arrays is a tinygrad_cnn.autograd.Primitive."
                )
        for t in self._dirty:
            if not _among(t, outputs):
                raise RuntimeError(
                    f"{name}: some elements marked as dirty during the forward method were not returned as output. "
                    "The inputs that are modified inplace must all be outputs of the Function."
                )
            if recording and t.is_leaf and t.requires_grad:
                raise RuntimeError(
                    f"{name}: a leaf Variable that requires grad is being used in an in-place operation "
                    "(mark_dirty). Work on a clone() of it."
                )


def _among(t: Any, tensors: tuple[Any, ...]) -> bool:
    return any(t is u for u in tensors)


def forward_takes_ctx(cls: type) -> bool:
    """Whether ``cls.forward`` takes ``ctx`` first (the classic form) rather than pairing with
    ``setup_context`` (PyTorch 2's form)."""
    return getattr(cls, "setup_context", Function.setup_context) is Function.setup_context


class Function:
    """Base class of custom ops, as ``torch.autograd.Function`` (see the module docstring).

    Subclass it with static ``forward`` and ``backward`` methods and call ``YourOp.apply(*args)``:

    * ``forward(ctx, *args)`` receives the arguments of ``apply`` as they are (Tensors stay Tensors)
      and runs without recording; it returns a Tensor or a tuple. Or, PyTorch 2's form:
      ``forward(*args)`` plus ``setup_context(ctx, inputs, output)``, which fills ``ctx``.
    * ``backward(ctx, *grad_outputs)`` receives one gradient (a Tensor) per output of ``forward``
      and returns one gradient per argument of ``apply`` (None for non-tensors and for inputs
      that need none, see ``ctx.needs_input_grad``). It runs under ``no_grad`` for an ordinary
      ``backward()`` and is recorded under ``create_graph=True``: written with Tensor operations
      on ``ctx.saved_tensors``, it can be differentiated again (or mark it
      :func:`once_differentiable`).

    Gradients that ``backward`` returns are checked against their inputs' shapes, with an error
    naming your Function. A ``convention`` class attribute (:mod:`tinygrad_cnn.testing.conventions`)
    declares what ``backward`` returns at kinks, for :func:`tinygrad_cnn.testing.check_op`.
    """

    @staticmethod
    def forward(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define a static forward method")

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple[Any, ...], output: Any) -> None:
        raise NotImplementedError  # not overridden: forward takes ctx itself

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError(f"{ctx.fn.__name__}: a Function subclass must define a static backward method")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "Legacy autograd function with non-static forward method is deprecated. Please use new-style "
            f"autograd function with static forward method: {type(self).__name__}.apply(...)"
        )

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` on ``args`` without recording; record one node if an input requires grad."""
        record = is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(cls, args, record)
        with no_grad():
            if forward_takes_ctx(cls):
                output = cls.forward(ctx, *args, **kwargs)
            else:
                output = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, _bound_arguments(cls.forward, args, kwargs), output)
        if not record:
            ctx.check_outputs(output if isinstance(output, tuple) else (output,), recording=False)
            return output
        return ctx.record(output)


def _bound_arguments(forward: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The ``inputs`` of ``setup_context``: every argument of ``forward``, defaults filled in, in order."""
    try:
        bound = inspect.signature(forward).bind(*args, **kwargs)
    except (TypeError, ValueError):  # no signature to read (a builtin), or forward takes *args
        return args
    bound.apply_defaults()
    return tuple(bound.arguments.values())


# --------------------------------------------------------------------------- once_differentiable


class _DelayedError(Primitive):
    """Identity whose backward refuses: what a once-differentiable backward's results become
    when a graph is being recorded."""

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, anchor: np.ndarray, name: str) -> np.ndarray:
        ctx.values = (name,)
        return g

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Any:
        raise RuntimeError(
            f"trying to differentiate twice a function that was marked with @once_differentiable ({ctx.values[0]})"
        )


def once_differentiable(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a ``backward`` that is not itself differentiable (NumPy inside, say), as in
    ``torch.autograd.function``: it runs without recording, so its results are constants; when a
    gradient it received requires grad (``create_graph=True`` through a graph of gradients),
    differentiating its results raises an error instead of giving a wrong zero."""

    @functools.wraps(backward)
    def wrapper(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        with no_grad():
            result = backward(ctx, *grad_outputs)
        if not is_grad_enabled():
            return result
        anchor = next((g for g in grad_outputs if isinstance(g, Tensor) and g.requires_grad), None)
        if anchor is None:
            return result

        def delayed(g: Any) -> Any:
            if isinstance(g, np.ndarray):
                g = Tensor.wrap(g)
            if not isinstance(g, Tensor) or g.dtype.kind != "f":
                return g
            return _DelayedError.apply(g, anchor, ctx.fn.__name__)

        return tuple(delayed(g) for g in result) if isinstance(result, tuple) else delayed(result)

    return wrapper
