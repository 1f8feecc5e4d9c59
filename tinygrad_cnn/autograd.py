"""The tape and the reverse-mode engine, in the order they run.

1. **Recording.** Every differentiable operation is a :class:`Primitive` (the table of them is
   :mod:`tinygrad_cnn.primitives`). ``SomePrimitive.apply(*inputs)`` runs its ``forward`` on NumPy
   arrays and, when gradients are being recorded (:func:`is_grad_enabled`) and an input requires
   one, makes a :class:`Context`, the tape node: the function, its inputs, what the forward saved,
   and where it was called from. The node becomes the output tensor's ``grad_fn``. A user's
   :class:`Function` (PyTorch's protocol, :mod:`tinygrad_cnn.custom_function`) is recorded the same
   way, as one node, which may have several outputs.
2. **The reverse sweep.** :func:`run_backward` (behind ``Tensor.backward`` and :func:`grad`) visits
   the nodes from the output back to the leaves (:func:`_topological_order`), calls each node's
   rule with the total gradient of its output (:func:`_input_gradients`), and adds what the rule
   returns onto the gradients of its inputs (:class:`_Gradients`): into ``.grad`` for leaves.
3. **Hooks.** What else happens at each node is a :class:`BackwardHook`: freeing what the node
   saved (unless ``retain_graph``), NaN/Inf checks (:func:`detect_anomaly`), and any hook
   registered with :func:`add_backward_hook` (the tape viewer's gradient norms use one).

``backward`` rules receive and return :class:`~tinygrad_cnn.Tensor` objects and are written
with tensor operations. With ``create_graph=False`` they run under :func:`no_grad`; with
``create_graph=True`` they are themselves recorded, which is what makes gradients of gradients work.
"""

from __future__ import annotations

import contextlib
import itertools
import linecache
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Iterator, Sequence
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

from . import inplace, threads
from ._tensor import Tensor
from .inplace import InPlaceError, check_writable

if TYPE_CHECKING:
    from .custom_function import FunctionCtx

__all__ = [
    "AnomalyError",
    "BackwardHook",
    "CallSite",
    "Context",
    "Function",
    "FunctionCtx",
    "GraphFreedError",
    "InPlaceError",
    "RemovableHandle",
    "add_backward_hook",
    "backward",
    "backward_hooks",
    "check_writable",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "inference_mode",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "no_grad",
    "once_differentiable",
    "Primitive",
    "register_post_accumulate_grad_hook",
    "remove_backward_hook",
    "run_backward",
    "set_grad_enabled",
]

# --------------------------------------------------------------------------- grad mode


class _GradMode(threading.local):
    enabled: bool = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether operations are currently recorded on the tape."""
    return _grad_mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator that turns recording on or off."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._saved: list[bool] = []

    def __enter__(self) -> None:
        self._saved.append(_grad_mode.enabled)
        _grad_mode.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _grad_mode.enabled = self._saved.pop()


class no_grad(set_grad_enabled):
    """Stop recording operations: ``with no_grad(): ...`` or ``@no_grad()``.

    Use it for evaluation and for parameter updates; nothing inside builds a graph, so no
    memory is kept for a backward pass.
    """

    def __init__(self) -> None:
        super().__init__(False)


class inference_mode(set_grad_enabled):
    """``torch.inference_mode``: here the same as :class:`no_grad` (``inference_mode(False)`` records)."""

    def __init__(self, mode: bool = True) -> None:
        super().__init__(not mode)


class enable_grad(set_grad_enabled):
    """Turn recording back on inside a :class:`no_grad` block."""

    def __init__(self) -> None:
        super().__init__(True)


# --------------------------------------------------------------------------- the tape node

# --------------------------------------------------------------------------- the tape node


class GraphFreedError(RuntimeError):
    """Backward was asked to run through a graph whose saved values were already freed."""


class CallSite(NamedTuple):
    """Where a node was recorded: the library calls it was made in, outermost first (e.g.
    ``("Sequential", "Conv2d", "conv2d")``: a module is named by its class), and the line of the
    user's code that made the outermost one. ``key`` tells calls apart: per call, the id of the
    module (0 for a function), then the instruction of the user's line that made the call."""

    calls: tuple[str, ...]
    filename: str
    lineno: int
    function: str
    key: tuple[int, ...] = ()

    def __str__(self) -> str:
        site = f'File "{self.filename}", line {self.lineno}, in {self.function}'
        line = linecache.getline(self.filename, self.lineno).strip()
        return f"{site}\n    {line}" if line else site  # no source line for exec'd code


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NOT_CALLS = {"apply", "forward", "__init__", "__call__", "<lambda>", "<genexpr>", "<listcomp>", "<dictcomp>"}
_OPERATORS = {"__truediv__": "div", "__rtruediv__": "div", "__radd__": "add", "__rsub__": "sub", "__rmul__": "mul"}


# What a frame running a code object adds to a call site, found once per code object: a call's
# label, _MODULE (``__call__``: labelled by the class of its ``self``), None (nothing: apply,
# forward, private helpers), or _USER (code outside the library, where the walk stops).
_MODULE, _USER, _UNSEEN = object(), object(), object()
_frame_labels: dict[CodeType, Any] = {}


def _frame_label(code: CodeType) -> Any:
    if len(_frame_labels) > 10_000:  # code made at run time (exec in a loop): do not grow without end
        _frame_labels.clear()
    name = code.co_name
    if not code.co_filename.startswith(_PACKAGE_DIR):
        label = _USER
    elif name == "__call__":
        label = _MODULE
    elif name.startswith("__") and name not in _NOT_CALLS:  # an operator: __mul__ -> mul
        label = _OPERATORS.get(name, name.strip("_"))
    elif not name.startswith(("_", "<")) and name not in _NOT_CALLS:
        label = name
    else:
        label = None
    _frame_labels[code] = label
    return label


# A call site as recorded (cheap: every recorded op makes one), made a CallSite when first read:
# the labels and keys innermost first, then the user's code object (None if the walk ran out of
# frames), line and instruction.
_RawSite = tuple[list[str], list[int], CodeType | None, int, int]


def _record_site(frame: FrameType | None) -> _RawSite:
    """What :func:`_call_site` needs of the frames from ``frame`` out to the user's: read now, while they run."""
    calls: list[str] = []
    key: list[int] = []
    while frame is not None:
        code = frame.f_code
        label = _frame_labels.get(code, _UNSEEN)
        if label is _UNSEEN:
            label = _frame_label(code)
        if label is _USER:
            return calls, key, code, frame.f_lineno, frame.f_lasti
        if label is not None:
            instance = 0
            if label is _MODULE:  # a module (or any callable object): named by its class
                owner = frame.f_locals.get("self", _USER)
                label = None if owner is _USER else type(owner).__name__
                instance = id(owner)
            if label is not None and (not calls or calls[-1] != label):  # x * y: __mul__, then mul
                calls.append(label)
                key.append(instance)
        frame = frame.f_back
    return calls, key, None, 0, 0


def _site_of(raw: _RawSite) -> CallSite:
    calls, key, code, lineno, lasti = raw
    if code is None:
        return CallSite(tuple(reversed(calls)), "(unknown)", 0, "?", tuple(reversed(key)))
    return CallSite(tuple(reversed(calls)), code.co_filename, lineno, code.co_name, (*reversed(key), lasti))


def _call_site(frame: FrameType | None) -> CallSite:
    """The :class:`CallSite` of code running in ``frame``: the library's frames up to the user's."""
    return _site_of(_record_site(frame))


_sequence = itertools.count()  # Context.seq: the order in which ops were recorded


class AccumulateGrad:
    """Where a leaf's gradient ends up, as PyTorch names it in ``next_functions``; ``variable`` is the leaf."""

    def __init__(self, variable: Tensor) -> None:
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


class Context:
    """One node of the tape: the function applied, its inputs, and what its forward kept.

    ``fn``: the :class:`Primitive` (or :class:`Function`); ``inputs``: the arguments of ``apply``
    (Tensors and constants); ``needs_input_grad``: one bool per input; ``saved``: the arrays passed to
    :meth:`save_for_backward` (read back as :attr:`saved_tensors` or :attr:`saved_arrays`);
    ``values``: the rule's own small values (shapes, axes, constant masks), as a tuple;
    ``seq``: the recording order; ``site``: where it was recorded (:class:`CallSite`).
    A custom Function may also keep attributes of its own (``ctx.scale = 2``), as in PyTorch.
    What the forward kept is dropped by :meth:`free` after the node's backward (unless
    ``retain_graph``): the saved arrays, the values, and the attributes that hold arrays or Tensors;
    the other attributes stay, as in PyTorch.
    """

    __slots__ = (
        "fn",
        "inputs",
        "needs_input_grad",
        "saved",
        "values",
        "seq",
        "_site",
        "_output",
        "_freed",
        "_locked",
        "__dict__",
    )

    several_outputs = False  # a Function whose forward returned a tuple (see custom_function.FunctionCtx)

    def __init__(self, fn: type[Primitive] | type[Function], inputs: tuple[Any, ...]) -> None:
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = tuple([isinstance(t, Tensor) and t.requires_grad for t in inputs])
        self.saved: tuple[np.ndarray | None, ...] = ()
        self.values: tuple[Any, ...] = ()
        self.seq = next(_sequence)
        self._site: _RawSite | CallSite = _record_site(sys._getframe(2))  # the caller of apply
        self._output: weakref.ReferenceType[Tensor] | None = None
        self._freed = False
        self._locked: list[np.ndarray] = []  # arrays made read-only while this node lives (see inplace)

    @property
    def site(self) -> CallSite:
        """Where this node was recorded (made from what was read of the frames then, when first asked for)."""
        site = self._site
        if type(site) is not CallSite:
            site = self._site = _site_of(cast("_RawSite", site))
        return site

    def name(self) -> str:
        """The node's name as PyTorch spells ``grad_fn.name()``, e.g. ``"MulBackward"``."""
        return f"{self.fn.__name__}Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    @property
    def next_functions(self) -> tuple[tuple[Any, int], ...]:
        """PyTorch's ``grad_fn.next_functions``: per tensor input, ``(its grad_fn, 0)``,
        ``(AccumulateGrad, 0)`` for a leaf that requires grad, ``(None, 0)`` for a constant."""
        return tuple(
            ((t.grad_fn or AccumulateGrad(t)) if t.requires_grad else None, 0)
            for t in self.inputs
            if isinstance(t, Tensor)
        )

    def save_for_backward(self, *arrays: np.ndarray | None) -> None:
        """Keep arrays (or None) for the backward pass; read them back as :attr:`saved_tensors`."""
        self.saved = arrays

    @property
    def saved_tensors(self) -> tuple[Tensor, ...]:
        """The saved arrays as Tensors: an input's array comes back as that input tensor and the
        output's as the output tensor (so a backward rule that uses them is itself differentiable);
        any other array as a constant."""
        if self._freed:
            raise self.freed_error()
        outputs = self.output_tensors()
        result: list[Any] = []  # Tensors (None where None was saved)
        for arr in self.saved:
            if arr is None or isinstance(arr, Tensor):
                result.append(arr)
                continue
            for t in (*self.inputs, *outputs):
                if isinstance(t, Tensor) and t.before_inplace is not None:
                    t = as_used_by(t, self.seq)
                if isinstance(t, Tensor) and t.array is arr:
                    result.append(t)
                    break
            else:
                result.append(Tensor.wrap(arr))
        return tuple(result)

    def output_tensors(self) -> tuple[Tensor | None, ...]:
        """The tensors this node produced, one per output of its forward (None for one that is
        gone, or that is not differentiable)."""
        return (self._output() if self._output is not None else None,)

    @property
    def saved_arrays(self) -> tuple[Any, ...]:
        """What ``forward`` saved, as the arrays themselves (for ``backward_arrays``)."""
        if self._freed:
            raise self.freed_error()
        return self.saved

    @property
    def freed(self) -> bool:
        """True once :meth:`free` has dropped what the node kept."""
        return self._freed

    def kept_arrays(self) -> list[np.ndarray]:
        """Every ndarray this node keeps for its backward: the saved arrays, and those among its
        ``values`` and attributes (inside tuples too)."""
        found = [a for a in self.saved if type(a) is np.ndarray]
        _arrays_in(self.values, found)
        attributes = self.__dict__
        if attributes:  # a custom ctx's own attributes (a primitive's node has none)
            _arrays_in(tuple(attributes.values()), found)
        return found

    def freed_error(self) -> GraphFreedError:
        return GraphFreedError(
            f"{self.fn.__name__}: trying to run backward through the graph a second time, but the "
            "values it saved were freed after the first backward. Pass retain_graph=True to the "
            "first backward() if you need to go through the graph twice."
        )

    def free(self) -> None:
        """Drop what the forward kept (called after backward unless ``retain_graph``)."""
        self.saved = ()
        self.values = ()
        self._freed = True
        attributes = self.__dict__
        if attributes:
            for name in [name for name, value in attributes.items() if _holds_data(value)]:
                del attributes[name]  # a custom ctx's own arrays and Tensors; its other attributes stay, as in PyTorch
        if self._locked:
            inplace.release(self._locked)
            self._locked = []

    def __del__(self) -> None:
        # A graph dropped without a backward pass (evaluation with grad on, a discarded loss):
        # give the arrays it protected their write access back.
        if self._locked:
            try:
                inplace.release_from_finalizer(self._locked)
            except Exception:  # noqa: S110  (interpreter shutdown: module globals may be gone)
                pass


def _holds_data(value: Any) -> bool:
    """True for an array or a Tensor, or a tuple or list holding one: what a custom ctx attribute
    would keep alive for as long as the graph is referenced (a loss kept after backward)."""
    if isinstance(value, (np.ndarray, Tensor)):
        return True
    return isinstance(value, (tuple, list)) and any(_holds_data(v) for v in value)


def _arrays_in(values: tuple[Any, ...], found: list[np.ndarray]) -> None:
    """Append the ndarrays among ``values`` (and inside tuples among them) to ``found``."""
    for value in values:
        kind = type(value)
        if kind is np.ndarray:
            found.append(value)
        elif kind is tuple:
            _arrays_in(value, found)


# --------------------------------------------------------------------------- Primitive


class Primitive:
    """Base class of every primitive (the table in :mod:`tinygrad_cnn.primitives`): one ``forward``
    on NumPy arrays and one ``backward`` (its VJP) on Tensors.

    This is the library's own protocol, a thin layer over NumPy. For your own op use
    :class:`~tinygrad_cnn.autograd.Function` (PyTorch's protocol, forward on Tensors); a Primitive
    is for the rare op whose forward must be one NumPy call without any per-op Tensor overhead::

        class Cube(Primitive):
            @staticmethod
            def forward(ctx, x):               # x: np.ndarray
                ctx.save_for_backward(x)
                return x ** 3

            @staticmethod
            def backward(ctx, grad):           # grad: Tensor shaped like the output
                (x,) = ctx.saved_tensors       # x comes back as the input Tensor
                return grad * 3 * x * x        # one gradient per input (None to skip one)

        y = Cube.apply(t)

    ``forward`` receives the inputs with every :class:`Tensor` replaced by its ndarray (other
    arguments, such as ints and tuples, pass through) and returns one ndarray. ``backward``
    receives the gradient of the output as a Tensor and returns one gradient (Tensor, ndarray
    or None) per positional input of ``forward``; gradients for non-tensor arguments are ignored.
    Write ``backward`` with Tensor operations and it can be differentiated again.

    Optionally, a Primitive may also define ``backward_arrays(ctx, g)``: the same rule on plain
    arrays (``g`` an ndarray; what forward saved in ``ctx.saved_arrays``), returning arrays. When no
    graph is being recorded (``create_graph=False``) the engine calls it instead of ``backward``;
    it is only worth having where it is measurably faster (see docs/performance.md).
    """

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Any:
        raise NotImplementedError

    # False where ``forward`` only moves or selects values (no arithmetic: no floating-point
    # warning can arise), so that ``apply`` need not silence NumPy's warnings around it.
    computes = True

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run ``forward`` on the arrays of ``args``; record a node if an input requires grad."""
        arrays = []
        wants_grad = False
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.array)
                wants_grad = wants_grad or a.requires_grad
            else:
                arrays.append(a)
        record = wants_grad and _grad_mode.enabled
        ctx = Context(cls, args) if record else _Scratch()
        if cls.computes and not _quiet.on:
            _quiet.on = True  # what _quiet_inf_nan does, without its object
            try:
                with np.errstate(all="ignore"):
                    raw = cls.forward(ctx, *arrays, **kwargs)
            finally:
                _quiet.on = False
        else:
            raw = cls.forward(ctx, *arrays, **kwargs)
        out = raw if type(raw) is np.ndarray else np.asarray(raw)
        if out is not raw and record:  # NumPy returned a scalar for a 0-d result
            ctx.saved = tuple(out if a is raw else a for a in ctx.saved)
        if _anomaly_mode.enabled:
            _check_finite(cls.__name__, "forward output", out, ctx if record else None)
        if not record or out.dtype.kind != "f":  # integer/bool outputs are constants, like comparisons
            return Tensor.wrap(out)
        result = Tensor.from_op(out, ctx)
        ctx._output = weakref.ref(result)
        ctx._locked = inplace.protect(ctx.kept_arrays(), ctx.inputs, result)
        return result


class _Quiet(threading.local):
    on: bool = False  # inside _quiet_inf_nan: the ops run there need not enter it again


_quiet = _Quiet()


class _quiet_inf_nan:
    """NumPy warns when an op meets Inf or NaN (inf - inf, 0 / 0, log 0); PyTorch stays silent, and so do
    the library's rules: Inf and NaN are values, which :func:`detect_anomaly` traces to their op and line.
    Entered once around a whole reverse sweep, whose rules' ops then skip it, and (inline, in
    :meth:`Primitive.apply`) around each forward that computes (about 1 us); user code outside keeps
    NumPy's warnings."""

    __slots__ = ("_state",)

    def __enter__(self) -> None:
        if _quiet.on:
            self._state = None
            return
        self._state = np.errstate(all="ignore")
        self._state.__enter__()
        _quiet.on = True

    def __exit__(self, *exc: Any) -> None:
        if self._state is not None:
            _quiet.on = False
            self._state.__exit__(*exc)


class _Scratch(Context):
    """Stand-in ctx for a forward that is not recorded: attributes work, saving is a no-op."""

    def __init__(self) -> None:
        self.needs_input_grad, self.values, self._locked = (), (), []

    def save_for_backward(self, *arrays: np.ndarray | None) -> None:
        pass


# --------------------------------------------------------------------------- leaf hooks

# id(leaf) -> the hooks registered with Tensor.register_post_accumulate_grad_hook on that leaf.
_accumulate_hooks: dict[int, list[Any]] = {}


class RemovableHandle:
    """What registering a hook returns: ``handle.remove()`` unregisters it."""

    def __init__(self, hooks: list[Any], hook: Any) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register_post_accumulate_grad_hook(leaf: Tensor, hook: Any) -> RemovableHandle:
    """Call ``hook(leaf)`` once per ``backward()`` that accumulated a gradient into ``leaf.grad``,
    after the whole reverse sweep (PyTorch's hook of this name runs when the leaf's gradient is
    complete; this engine knows that only at the end). Hooks run in the order the sweep first
    reached their leaves, which is the same on every run of the same graph."""
    if leaf.grad_fn is not None or not leaf.requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: only a leaf tensor that requires grad has a .grad")
    return _register(_accumulate_hooks, leaf, hook)


def _register(table: dict[int, list[Any]], t: Tensor, hook: Any) -> RemovableHandle:
    """Add ``hook`` to ``t``'s list in ``table`` (the list goes when ``t`` does)."""
    key = id(t)
    if key not in table:
        table[key] = []
        weakref.finalize(t, table.pop, key, None)
    table[key].append(hook)
    return RemovableHandle(table[key], hook)


# id(tensor) -> the hooks registered with Tensor.register_hook on that tensor.
_gradient_hooks: dict[int, list[Any]] = {}


def register_hook(t: Tensor, hook: Any) -> RemovableHandle:
    """Call ``hook(grad)`` with the total gradient of ``t`` in each backward sweep, before it is
    used (a recorded tensor: passed on to its rule; a leaf: added to ``.grad``); a tensor the hook
    returns replaces the gradient. As PyTorch's ``Tensor.register_hook``."""
    if not t.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    return _register(_gradient_hooks, t, hook)


def _hooked(t: Tensor, g: Tensor) -> Tensor:
    """``g`` after the ``register_hook`` hooks of ``t``, in registration order."""
    for hook in list(_gradient_hooks.get(id(t), ())):
        replaced = hook(g)
        if replaced is not None:
            if not isinstance(replaced, Tensor) or replaced.shape != g.shape:
                got = f"shape {replaced.shape}" if isinstance(replaced, Tensor) else type(replaced).__name__
                raise RuntimeError(f"hook: a gradient hook must return None or a Tensor of shape {g.shape}, got {got}")
            g = replaced
    return g


# --------------------------------------------------------------------------- the reverse sweep


def run_backward(
    roots: Sequence[Tensor],
    root_grads: Sequence[Tensor],
    inputs: Sequence[Tensor] | None = None,
    retain_graph: bool = False,
    create_graph: bool = False,
) -> list[Tensor | None] | None:
    """Reverse-mode sweep from ``roots`` seeded with ``root_grads``.

    With ``inputs=None`` gradients are accumulated into ``.grad`` of every leaf that requires
    one (what ``Tensor.backward`` does). Otherwise the gradients of ``inputs`` are returned and
    no ``.grad`` is touched (what :func:`grad` does).
    """
    threads.adapt()  # the thread count follows the load (once per step, see threads.py)
    hooks = [*_hooks, *([_ANOMALY_CHECK] if _anomaly_mode.enabled else []), *([] if retain_graph else [_FreeSaved()])]
    # each hook called only at the points where it does something (most hooks override one method)
    reached, returned, done = (
        [h for h in hooks if getattr(getattr(h, method), "__func__", None) is not getattr(BackwardHook, method)]
        for method in ("node_reached", "rule_returned", "node_done")
    )
    grads = _Gradients(inputs)
    with set_grad_enabled(create_graph), _quiet_inf_nan():
        for root, seed in zip(roots, root_grads, strict=True):
            grads.add(root, seed)
        for node, ctx in _topological_order(roots):
            if ctx.several_outputs:
                g: Any = _pop_outputs(grads, cast("FunctionCtx", ctx), reached)
            else:
                g = grads.pop(node)
                for hook in reached:
                    hook.node_reached(node, g)
            if g is not None:
                input_grads = _input_gradients(ctx, g, create_graph)
                for hook in returned:
                    hook.rule_returned(node, input_grads)
                for t, gi in zip(ctx.inputs, input_grads):
                    if gi is not None:
                        grads.add(as_used_by(t, ctx.seq) if t.before_inplace is not None else t, gi)
            for hook in done:
                hook.node_done(node)
    grads.finish_hooked_leaves()
    grads.run_accumulate_hooks()
    return None if inputs is None else grads.of(inputs)


def _pop_outputs(grads: _Gradients, ctx: FunctionCtx, hooks: list[BackwardHook]) -> tuple[Tensor | None, ...] | None:
    """The gradients of the outputs of a node with several outputs, as its backward takes them
    (:meth:`~tinygrad_cnn.custom_function.FunctionCtx.grads_for_backward`), each output reported to
    the hooks; None when no gradient reached any."""
    found = []
    for t in ctx.output_tensors():
        g = None if t is None else grads.pop(t)
        if t is not None:
            for hook in hooks:
                hook.node_reached(t, g)
        found.append(g)
    return ctx.grads_for_backward(found) if any(g is not None for g in found) else None


def as_used_by(t: Tensor, seq: int) -> Tensor:
    """``t`` as the node recorded ``seq``-th used it: what it was before the in-place ops recorded
    on it since (an in-place op on a tensor that requires grad keeps its earlier version in ``before_inplace``)."""
    while t.before_inplace is not None and t.grad_fn is not None and t.grad_fn.seq >= seq:
        t = t.before_inplace
    return t


def _topological_order(roots: Sequence[Tensor]) -> list[tuple[Tensor, Context]]:
    """The nodes reachable from ``roots``, each with the first of its output tensors reached, each
    after every node that consumes one of its outputs. Iterative depth-first post-order: graphs of
    any depth work (no recursion limit).
    """
    order: list[tuple[Tensor, Context]] = []
    visited: set[int] = set()  # ids of nodes (a node with several outputs is visited once)
    for root in roots:
        if root.grad_fn is None or id(root.grad_fn) in visited:
            continue
        visited.add(id(root.grad_fn))
        stack: list[tuple[Tensor, Context, Iterator[Any]]] = [(root, root.grad_fn, iter(root.grad_fn.inputs))]
        while stack:
            node, ctx, children = stack[-1]
            for child in children:
                if not isinstance(child, Tensor):
                    continue
                if child.before_inplace is not None:
                    child = as_used_by(child, ctx.seq)
                fn = child.grad_fn
                if fn is not None and id(fn) not in visited:
                    visited.add(id(fn))
                    stack.append((child, fn, iter(fn.inputs)))
                    break
            else:
                stack.pop()
                order.append((node, ctx))
    order.reverse()
    return order


def _input_gradients(ctx: Context, g: Any, create_graph: bool) -> list[Tensor | None]:
    """The gradients ``ctx``'s rule gives its inputs, checked, one per input (None where none is
    needed). The rule is ``backward_arrays`` on plain arrays where the Primitive has one and no
    graph is being recorded, else the differentiable ``backward``. ``g`` is the gradient of the
    output, or a tuple, one per output, for a node with several."""
    if ctx._freed:
        raise ctx.freed_error()
    plain = None if create_graph else getattr(ctx.fn, "backward_arrays", None)
    if plain is not None:
        returned = plain(ctx, g.array)
    else:
        differentiable: Any = ctx.fn.backward
        returned = differentiable(ctx, *g) if type(g) is tuple else differentiable(ctx, g)
    returned = returned if type(returned) is tuple else (returned,)
    n = len(ctx.inputs)
    if len(returned) != n:
        rule = ctx.fn.__name__
        if any(r is not None for r in returned[n:]) or any(ctx.needs_input_grad[len(returned) :]):
            raise RuntimeError(
                f"{rule}.backward returned {len(returned)} gradient(s) for the {n} positional "
                "argument(s) of forward; return one per argument (None for those without a gradient)"
            )
        returned = returned[:n] + (None,) * (n - len(returned))
    grads: list[Tensor | None] = []
    for t, gi, needed in zip(ctx.inputs, returned, ctx.needs_input_grad):
        if gi is None or not needed:
            grads.append(None)
            continue
        kind = type(gi)
        arr = gi if kind is np.ndarray else gi.array if kind is Tensor else None
        expected = t.array
        if arr is not None and arr.shape == expected.shape and arr.dtype == expected.dtype:  # the common case
            grads.append(gi if kind is Tensor else Tensor.wrap(arr))
        else:
            grads.append(_as_gradient(ctx.fn.__name__, len(grads), gi, t))
    return grads


def _as_gradient(rule: str, index: int, g: Any, target: Tensor) -> Tensor:
    """Check a gradient returned by a backward rule against the input it belongs to."""
    if not isinstance(g, Tensor):
        try:
            g = Tensor.wrap(np.asarray(g))
        except (TypeError, ValueError):
            raise RuntimeError(
                f"{rule}.backward returned {type(g).__name__} {str(g)[:40]!r} for input {index}, "
                "not a gradient (a Tensor, an ndarray or None)"
            ) from None
    if g.shape != target.shape:
        raise RuntimeError(
            f"{rule}.backward returned a gradient of shape {g.shape} for input {index}, which has shape {target.shape}"
        )
    if g.dtype != target.dtype:
        if g.dtype.kind != "f":
            raise RuntimeError(
                f"{rule}.backward returned a gradient of dtype {g.dtype} for input {index} of dtype {target.dtype}"
            )
        g = g.astype(target.dtype)
    return g


class _Gradients:
    """Where a sweep's gradients go. A recorded tensor's gradients are summed until the sweep
    reaches it (:meth:`pop`). A leaf's go into its ``.grad`` (``Tensor.backward``), or, when the
    sweep was asked for the gradients of ``inputs`` (:func:`grad`), are kept for :meth:`of`."""

    def __init__(self, inputs: Sequence[Tensor] | None) -> None:
        self.pending: dict[int, Tensor] = {}
        self.wanted = None if inputs is None else {id(t) for t in inputs}
        self.captured: dict[int, Tensor | None] = {}
        self.hooked: dict[int, Tensor] = {}  # leaves with post-accumulate hooks that got a gradient, in order
        self.hook_leaves: dict[int, Tensor] = {}  # leaves with gradient hooks: summed in pending, added at the end

    def add(self, t: Tensor, g: Tensor) -> None:
        key = id(t)
        if t.grad_fn is None:
            if key not in _gradient_hooks:
                self._deliver(t, g)
                return
            self.hook_leaves[key] = t
        previous = self.pending.get(key)
        self.pending[key] = g if previous is None else previous + g

    def _deliver(self, t: Tensor, g: Tensor) -> None:
        """A leaf's gradient: kept for :meth:`of`, or added to its ``.grad``."""
        key = id(t)
        if self.wanted is not None:
            if key in self.wanted:
                previous = self.captured.get(key)
                self.captured[key] = g if previous is None else previous + g
        elif t.requires_grad:
            if _accumulate_hooks and key in _accumulate_hooks:
                self.hooked[key] = t
            if t.grad is None:
                t.grad = Tensor.wrap(np.array(g.array, copy=True))
            elif t.grad.array.flags.writeable:
                t.grad.array += g.array  # accumulate in place, as PyTorch does
            else:  # .grad is saved by a live graph (or read-only): leave that array alone
                t.grad = Tensor(t.grad.array + g.array)

    def pop(self, node: Tensor) -> Tensor | None:
        """The total gradient of ``node`` (None if none reached it), now that the sweep is there."""
        key = id(node)
        g = self.pending.pop(key, None)
        if g is not None and key in _gradient_hooks:
            g = _hooked(node, g)
        if self.wanted is not None and key in self.wanted:
            self.captured[key] = g
        elif g is not None and node.retains_grad:  # Tensor.retain_grad(): a non-leaf keeps its .grad
            node.grad = Tensor.wrap(np.array(g.array, copy=True))
        return g

    def of(self, inputs: Sequence[Tensor]) -> list[Tensor | None]:
        return [self.captured.get(id(t)) for t in inputs]

    def finish_hooked_leaves(self) -> None:
        """Leaves with gradient hooks: their summed gradient through the hooks, then into ``.grad``."""
        for key, leaf in self.hook_leaves.items():
            g = self.pending.pop(key, None)
            if g is not None:
                self._deliver(leaf, _hooked(leaf, g))

    def run_accumulate_hooks(self) -> None:
        """Call the post-accumulate hooks of the leaves whose ``.grad`` this sweep added to."""
        for key, t in self.hooked.items():
            for hook in list(_accumulate_hooks.get(key, ())):
                hook(t)


# --------------------------------------------------------------------------- hooks


class BackwardHook:
    """Extra work for the reverse sweep, called at every node it visits, in the order it visits
    them. Subclass it, override the methods you need, and register an instance with
    :func:`add_backward_hook` (it then runs in every sweep, on every thread, until
    :func:`remove_backward_hook`). ``node`` is the recorded tensor (``node.grad_fn`` its Context).
    """

    def node_reached(self, node: Tensor, grad: Tensor | None) -> None:
        """The sweep reached ``node`` with the total gradient of it (None: no gradient reached it,
        and its rule will not run). A node with several outputs (a custom :class:`Function`'s) is
        reached once per output, then its rule runs once."""

    def rule_returned(self, node: Tensor, input_grads: list[Tensor | None]) -> None:
        """``node``'s backward rule returned these gradients, one per input (checked; None where
        an input needs none), before they are added onto the inputs' gradients."""

    def node_done(self, node: Tensor) -> None:
        """The sweep is done with ``node`` (also when no gradient reached it)."""


_hooks: list[BackwardHook] = []


def add_backward_hook(hook: BackwardHook) -> None:
    """Run ``hook`` in every reverse sweep from now on (once, however often it is added)."""
    if hook not in _hooks:
        _hooks.append(hook)


def remove_backward_hook(hook: BackwardHook) -> None:
    """Stop running ``hook`` (nothing happens if it is not registered)."""
    if hook in _hooks:
        _hooks.remove(hook)


def backward_hooks() -> tuple[BackwardHook, ...]:
    """The hooks registered with :func:`add_backward_hook`, in the order they run."""
    return tuple(_hooks)


class _FreeSaved(BackwardHook):
    """Drops what each node saved once the sweep is past it (a sweep without ``retain_graph``), and
    its inputs' arrays: each input becomes a stand-in that keeps the graph's shape but takes no memory
    (one per tensor for the whole sweep), so a loss kept after backward (``history.append(loss)``)
    keeps no activation alive, as in PyTorch. One instance per sweep."""

    def __init__(self) -> None:
        self.stand_ins: dict[int, Tensor] = {}

    def node_done(self, node: Tensor) -> None:
        ctx = node.grad_fn
        if ctx is None or ctx.freed:
            return
        ctx.free()
        stand_ins = self.stand_ins
        inputs = []
        for t in ctx.inputs:
            if isinstance(t, Tensor) and (t.grad_fn is not None or not t.requires_grad):  # parameters stay
                stand_in = stand_ins.get(id(t))  # every t is alive during the sweep: ids are not reused
                if stand_in is None:
                    stand_in = stand_ins[id(t)] = _stand_in(t)
                t = stand_in
            inputs.append(t)
        ctx.inputs = tuple(inputs)


def _stand_in(t: Tensor) -> Tensor:
    """``t`` as a freed node keeps it: the same node, shape, dtype and ``requires_grad``, with a
    zero-strided array for values."""
    view = _zeros_view(t.array.dtype, t.array.shape)
    fn = t.grad_fn
    return Tensor.wrap(view) if fn is None else Tensor.from_op(view, fn)


_zero_buffers: dict[np.dtype, np.ndarray] = {}
_zero_views: dict[tuple[np.dtype, tuple[int, ...]], np.ndarray] = {}  # shared by every stand-in of that dtype and shape


def _zeros_view(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of zeros of any shape that takes no memory (all strides 0, one shared element)."""
    view = _zero_views.get((dtype, shape))
    if view is not None:
        return view
    buffer = _zero_buffers.get(dtype)
    if buffer is None:
        buffer = _zero_buffers.setdefault(dtype, np.zeros(1, dtype))
    view = np.ndarray(shape, dtype, buffer=buffer, strides=(0,) * len(shape))
    view.flags.writeable = False
    if len(_zero_views) > 1000:  # a net of ever-new shapes: keep the table small
        _zero_views.clear()
    _zero_views[dtype, shape] = view
    return view


# --------------------------------------------------------------------------- anomaly detection


class _AnomalyMode(threading.local):
    enabled: bool = False
    in_backward_of: Context | None = None  # the node whose backward rule is running


_anomaly_mode = _AnomalyMode()


def is_anomaly_enabled() -> bool:
    """Whether :func:`detect_anomaly` is on (in this thread)."""
    return _anomaly_mode.enabled


class AnomalyError(RuntimeError, FloatingPointError):
    """A NaN or Inf appeared in a forward output or a gradient under :func:`detect_anomaly`.

    A :class:`RuntimeError`, the class PyTorch raises there (and a :class:`FloatingPointError`)."""


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Check every forward output and every gradient for NaN/Inf while inside this block.

    The error names the op and the line of user code that recorded it.
    """
    previous = _anomaly_mode.enabled
    _anomaly_mode.enabled = True
    try:
        yield
    finally:
        _anomaly_mode.enabled = previous
        _anomaly_mode.in_backward_of = None


class _AnomalyCheck(BackwardHook):
    """Under :func:`detect_anomaly`: every gradient a rule returns must be finite, and ops run
    inside a rule are blamed on it."""

    def node_reached(self, node: Tensor, grad: Tensor | None) -> None:
        if grad is not None:  # reset by rule_returned
            _anomaly_mode.in_backward_of = node.grad_fn

    def rule_returned(self, node: Tensor, input_grads: list[Tensor | None]) -> None:
        ctx = node.grad_fn
        _anomaly_mode.in_backward_of = None
        for i, gi in enumerate(input_grads):
            if gi is not None and ctx is not None:
                _check_finite(ctx.fn.__name__, f"gradient for input {i}", gi.array, ctx)


_ANOMALY_CHECK = _AnomalyCheck()


def _check_finite(op: str, what: str, arr: np.ndarray, ctx: Context | None) -> None:
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        return
    kinds = " and ".join(k for k, bad in (("NaN", np.isnan(arr).any()), ("Inf", np.isinf(arr).any())) if bad)
    outer = _anomaly_mode.in_backward_of
    if outer is not None and outer is not ctx:
        # an op run inside a backward rule: blame the rule, and the line that recorded its op
        message = f"{outer.fn.__name__}.backward: {kinds} in the {what} of {op} (shape {arr.shape})"
        ctx = outer
    else:
        message = f"{op}: {kinds} in its {what} (shape {arr.shape})"
    site = ctx.site if ctx is not None else _call_site(sys._getframe(1))
    name = ctx.fn.__name__ if ctx is not None else op
    raise AnomalyError(f"{message}.\n{name} was recorded at:\n{site}")


# --------------------------------------------------------------------------- entry points


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | np.ndarray | Sequence[Any] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned as Tensors.

    Like ``torch.autograd.grad``. ``.grad`` attributes are left alone. With
    ``create_graph=True`` the returned gradients are recorded on the tape, so they can be
    differentiated again (gradients of gradients, Hessian-vector products).

    ``grad_outputs`` defaults to ones for scalar outputs; non-scalar outputs need one.
    An input that does not influence the outputs is an error unless ``allow_unused=True``,
    in which case its gradient is a tensor of zeros.
    """

    def as_list(what: str, value: Any) -> list[Any]:
        if isinstance(value, Tensor):
            return [value]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"grad: {what} must be a Tensor or a list/tuple of Tensors, got {type(value).__name__}")
        return list(value)

    outs, ins = as_list("outputs", outputs), as_list("inputs", inputs)
    if grad_outputs is None:
        seeds: list[Any] = [None] * len(outs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        seeds = [grad_outputs]
    else:
        seeds = as_list("grad_outputs", grad_outputs)
    if len(seeds) != len(outs):
        raise ValueError(f"grad: {len(seeds)} grad_outputs given for {len(outs)} outputs")
    for i, t in enumerate(outs):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: output {i} is a {type(t).__name__}, not a Tensor")
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise ValueError(f"grad: input {i} does not require grad")
    root_grads = [_seed_gradient("grad", out, seed) for out, seed in zip(outs, seeds, strict=True)]
    for i, out in enumerate(outs):
        if not out.requires_grad:
            raise ValueError(f"grad: output {i} does not require grad (was it computed under no_grad?)")
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outs, root_grads, ins, retain_graph=retain_graph, create_graph=create_graph)
    assert result is not None
    final = []
    for i, (t, g) in enumerate(zip(ins, result)):
        if g is None:
            if not allow_unused:
                raise ValueError(
                    f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                    "pass allow_unused=True to get zeros for it"
                )
            g = Tensor(np.zeros_like(t.array))
        final.append(g)
    return tuple(final)


def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Tensor | Sequence[Any] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate into ``.grad`` of the leaves the gradients of ``tensors``, each seeded with its
    entry of ``grad_tensors`` (default: 1 for a scalar), like ``torch.autograd.backward``."""
    outs = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        seeds: list[Any] = [grad_tensors] if grad_tensors is not None else [None] * len(outs)
    else:
        seeds = list(grad_tensors)
    if len(seeds) != len(outs):
        raise ValueError(f"backward: {len(seeds)} grad_tensors given for {len(outs)} tensors")
    for i, t in enumerate(outs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    retain = create_graph if retain_graph is None else retain_graph
    seeded = [_seed_gradient("backward", t, s) for t, s in zip(outs, seeds)]
    run_backward(outs, seeded, retain_graph=retain, create_graph=create_graph)


def _seed_gradient(op: str, out: Tensor, seed: Any) -> Tensor:
    if seed is None:
        if out.numel() != 1:
            raise ValueError(
                f"{op}: the output has shape {out.shape}; gradients can be implicitly created only "
                "for scalar outputs. Pass the gradient of the output explicitly."
            )
        return Tensor.wrap(np.ones_like(out.array))
    try:
        g = seed if isinstance(seed, Tensor) else Tensor(np.array(seed, dtype=out.dtype))
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{op}: the gradient must be a Tensor or an array of numbers, got {type(seed).__name__} ({e})"
        ) from None
    if g.dtype.kind not in "biuf":
        raise TypeError(f"{op}: the gradient must hold real numbers, got dtype {g.dtype}")
    if g.dtype != out.dtype:
        g = Tensor(g.array.astype(out.dtype))
    if g.shape != out.shape:
        raise ValueError(f"{op}: gradient of shape {g.shape} given for an output of shape {out.shape}")
    return g


# --------------------------------------------------------------------------- PyTorch's gradcheck


def gradcheck(
    func: Any,
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_batched_forward_grad: bool = False,
    check_forward_ad: bool = False,
    check_backward_ad: bool = True,
    fast_mode: bool = False,
    masked: bool | None = None,
) -> bool:
    """``torch.autograd.gradcheck``: the gradient of ``func(*inputs)`` with respect to the inputs
    that require grad, against central finite differences with step ``eps``; passes where
    ``|analytic - numeric| <= atol + rtol * |numeric|``. Returns True, or raises
    :class:`~tinygrad_cnn.testing.GradcheckError` (a RuntimeError) naming the input and the worst
    element (returns False instead with ``raise_exception=False``). Use float64 inputs.

    Built on :func:`tinygrad_cnn.testing.gradcheck` (which also checks kinks against the op's
    declared convention, and picks ``eps`` and tolerances from the dtype); one random projection
    of the outputs is checked, as PyTorch's ``fast_mode``. The engine is deterministic
    (``nondet_tol`` has nothing to tolerate); forward-mode and batched checks do not exist here."""
    _no_forward_ad("gradcheck", check_batched_grad, check_batched_forward_grad, check_forward_ad, masked)
    del nondet_tol, check_undefined_grad, check_grad_dtypes, fast_mode  # see the docstring
    if not check_backward_ad:
        return True
    return _torch_style_check("gradcheck", func, inputs, None, eps, atol, rtol, raise_exception)


def gradgradcheck(
    func: Any,
    inputs: Any,
    grad_outputs: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    gen_non_contig_grad_outputs: bool = False,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_fwd_over_rev: bool = False,
    check_rev_over_rev: bool = True,
    fast_mode: bool = False,
    masked: bool = False,
) -> bool:
    """``torch.autograd.gradgradcheck``: the gradient of the gradient of ``func`` (the first-order
    gradient seeded with ``grad_outputs``, random by default, differentiated again) against
    finite differences, with :func:`gradcheck`'s meaning of ``eps``, ``atol``, ``rtol`` and
    ``raise_exception``. Built on :func:`tinygrad_cnn.testing.gradgradcheck`."""
    _no_forward_ad("gradgradcheck", check_batched_grad, False, check_fwd_over_rev, masked)
    del gen_non_contig_grad_outputs, nondet_tol, check_undefined_grad, check_grad_dtypes, fast_mode
    if not check_rev_over_rev:
        return True
    return _torch_style_check("gradgradcheck", func, inputs, grad_outputs, eps, atol, rtol, raise_exception)


def _no_forward_ad(name: str, batched: bool, batched_forward: bool, forward: bool, masked: bool | None) -> None:
    for flag, what in ((batched, "batched"), (batched_forward, "batched forward"), (forward, "forward-mode AD")):
        if flag:
            raise NotImplementedError(f"{name}: tinygrad_cnn has no {what} gradients to check")
    if masked:
        raise NotImplementedError(f"{name}: tinygrad_cnn has no masked (sparse) tensors")


def _torch_style_check(
    name: str, func: Any, inputs: Any, grad_outputs: Any, eps: float, atol: float, rtol: float, raise_exception: bool
) -> bool:
    from . import testing  # the toolkit builds on this module: imported when used

    args = inputs if isinstance(inputs, tuple) else tuple(inputs) if isinstance(inputs, list) else (inputs,)
    checked = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    if not checked:
        raise ValueError(
            f"{name} expects at least one input tensor to require gradient, "
            "but none of the them have requires_grad=True."
        )
    for i in checked:
        if args[i].dtype != np.float64:
            warnings.warn(
                f"Input #{i} requires gradient and is not a double precision floating point. "
                "This check will likely fail if all the inputs are not of double precision floating point.",
                stacklevel=3,
            )
    check = testing.gradcheck if name == "gradcheck" else testing.gradgradcheck
    try:
        return check(func, *args, eps=eps, atol=atol, rtol=rtol, grad_output=grad_outputs)
    except testing.GradcheckError:
        if raise_exception:
            raise
        return False


# --------------------------------------------------------------------------- PyTorch's Function

from . import custom_function as function  # noqa: E402  (builds on Context and Primitive above)

sys.modules[__name__ + ".function"] = function  # ``tinygrad_cnn.autograd.function``, as ``os.path`` is made
from .custom_function import Function, FunctionCtx, once_differentiable  # noqa: E402
