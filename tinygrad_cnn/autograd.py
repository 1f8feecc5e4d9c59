"""The tape and reverse-mode engine.

Every differentiable operation is a :class:`Function`. Calling ``SomeFunction.apply(*inputs)``
runs its ``forward`` on NumPy arrays and, when gradients are being recorded and an input
requires one, attaches a :class:`Context` (the tape node) to the output tensor. The node keeps
the function, the input tensors and whatever the forward saved for the backward pass.

``backward`` rules receive and return :class:`~tinygrad_cnn.tensor.Tensor` objects and are
written with tensor operations. With ``create_graph=False`` they run under :func:`no_grad`, so
they cost no more than NumPy calls; with ``create_graph=True`` they are themselves recorded,
which is what makes gradients of gradients work.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .tensor import Tensor
else:
    Tensor = None  # tinygrad_cnn.tensor imports this module, then sets Tensor here (the two refer to each other)

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


class enable_grad(set_grad_enabled):
    """Turn recording back on inside a :class:`no_grad` block."""

    def __init__(self) -> None:
        super().__init__(True)


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
    if leaf._ctx is not None or not leaf.requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: only a leaf tensor that requires grad has a .grad")
    key = id(leaf)
    if key not in _accumulate_hooks:
        _accumulate_hooks[key] = []
        weakref.finalize(leaf, _accumulate_hooks.pop, key, None)
    _accumulate_hooks[key].append(hook)
    return RemovableHandle(_accumulate_hooks[key], hook)


# --------------------------------------------------------------------------- the tape node


class GraphFreedError(RuntimeError):
    """Backward was asked to run through a graph whose saved values were already freed."""


_sequence = itertools.count()  # Context.seq: the order in which ops were recorded (for the tape viewer)

# Called as observer(tensor, gradient) for every recorded tensor the reverse sweep reaches, with
# the total gradient of that tensor. Empty unless a tinygrad_cnn.graph.Tape is recording gradients.
_grad_observers: list[Any] = []


class Context:
    """One node of the tape: the function applied, its inputs, and what it saved.

    ``forward`` stores anything it needs as attributes of ``ctx`` (shapes, axes, masks) or
    through :meth:`save_for_backward` (arrays that are inputs or the output). Saved arrays are
    handed back to ``backward`` as tensors by :attr:`saved_tensors`: an input's array comes back
    as that input tensor and the output's array as the output tensor, so a backward rule that
    uses them is itself differentiable; any other array comes back as a constant.
    """

    __slots__ = (
        "fn",
        "inputs",
        "needs_input_grad",
        "values",
        "_saved",
        "_output",
        "_freed",
        "seq",
        "_locked",
        "__dict__",
    )

    def __init__(self, fn: type[Function], inputs: tuple[Any, ...]) -> None:
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        self._saved: tuple[Any, ...] = ()
        self.values: tuple[Any, ...] = ()  # a rule's own values (shapes, axes, constant arrays)
        self._output: weakref.ReferenceType[Tensor] | None = None
        self._freed = False
        self._locked: list[np.ndarray] = []  # arrays made read-only for this node (see _protect)
        self.seq = next(_sequence)

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays (or None) for the backward pass; read them back as :attr:`saved_tensors`."""
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        if self._freed:
            raise self.freed_error()
        output = self._output() if self._output is not None else None
        result = []
        for arr in self._saved:
            if arr is None or isinstance(arr, Tensor):
                result.append(arr)
                continue
            for t in self.inputs:
                if isinstance(t, Tensor) and t.data is arr:
                    result.append(t)
                    break
            else:
                if output is not None and output.data is arr:
                    result.append(output)
                else:
                    result.append(Tensor(arr))
        return tuple(result)

    @property
    def saved_arrays(self) -> tuple[Any, ...]:
        """What ``forward`` saved, as the arrays themselves: for a backward rule's plain path
        (``not is_grad_enabled()``: no graph is built, so constants are all it needs)."""
        if self._freed:
            raise self.freed_error()
        return self._saved

    def kept_arrays(self) -> list[np.ndarray]:
        """Every ndarray this node keeps for its backward: the saved arrays, and those among its
        ``values`` and attributes (inside tuples too)."""
        found = [a for a in self._saved if type(a) is np.ndarray]
        _arrays_in(self.values, found)
        _arrays_in(tuple(v for k, v in self.__dict__.items() if k != "_trace"), found)
        return found

    def freed_error(self) -> GraphFreedError:
        return GraphFreedError(
            f"{self.fn.__name__}: trying to run backward through the graph a second time, but the "
            "values it saved were freed after the first backward. Pass retain_graph=True to the "
            "first backward() if you need to go through the graph twice."
        )

    def free(self) -> None:
        """Drop what the forward saved (called after backward unless ``retain_graph``)."""
        self._saved = ()
        self.values = ()
        self._freed = True
        self.__dict__.clear()
        if self._locked:
            _release(self._locked)
            self._locked = []

    def __del__(self) -> None:
        # A graph dropped without a backward pass (evaluation with grad on, a discarded loss):
        # give the arrays it protected their write access back.
        if self._locked:
            try:
                _release_from_finalizer(self._locked)
            except Exception:  # noqa: S110  (interpreter shutdown: module globals may be gone)
                pass


# --------------------------------------------------------------------------- Function


class Function:
    """Base class of every primitive: one ``forward`` and one ``backward`` (its VJP).

    Subclass it to add your own op::

        class Cube(Function):
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

    Optionally, a Function may also define ``backward_arrays(ctx, g)``: the same rule on plain
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

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        record = _grad_mode.enabled and any(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = Context(cls, args) if record else _Scratch()
        raw = cls.forward(ctx, *arrays, **kwargs)
        out = raw if isinstance(raw, np.ndarray) else np.asarray(raw)
        if out is not raw and record:  # NumPy returned a scalar for a 0-d result
            ctx._saved = tuple(out if a is raw else a for a in ctx._saved)
        if _anomaly_mode.enabled:
            _check_finite(cls.__name__, "forward output", out, ctx if record else None)
        if not record or out.dtype.kind != "f":  # integer/bool outputs are constants, like comparisons
            return Tensor(out)
        result = Tensor._from_op(out, ctx)
        ctx._output = weakref.ref(result)
        _protect(ctx)
        if _anomaly_mode.enabled:
            ctx.__dict__["_trace"] = _user_frame()
        return result


class _Scratch:
    """Stand-in ctx for a forward that is not recorded: attributes work, saving is a no-op."""

    needs_input_grad = ()
    values: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        pass


# --------------------------------------------------------------------------- in-place safety
#
# A backward rule reads the arrays its forward saved. If one of them were changed in place before
# the backward pass (``t.data[...] = 0``, an optimizer step, ``np.copyto``), the gradient would be
# silently wrong. So while a node is alive, every array it keeps is read-only: the arrays passed to
# ``save_for_backward``, every ndarray attribute of ``ctx`` (one level into tuples), the arrays they
# are views of (their ``.base`` chain, up to the array that owns the memory), the ``.data`` of
# every tensor of the graph they are views of, and the node's output when it is a view (reshape,
# transpose, slicing: it shares memory with what other nodes save). NumPy then refuses any write
# through those array objects ("assignment destination is read-only"). The flags are restored when
# the node is freed (after backward, unless retain_graph) or garbage-collected. Arrays that were
# read-only already are left alone. Cost: a few attribute checks per saved array, nothing when
# nothing is recorded.
#
# Not covered: an ndarray object viewing the same memory that was made outside the graph before
# the forward pass and is not in the chain above (e.g. ``v = a[1:]`` made earlier, then ``Tensor(a)``
# recorded: writing through ``v`` is not blocked; ``Tensor(a[1:])`` and ``Tensor(a[2:])`` are two
# such leaves); writes that bypass NumPy's flag (ctypes, C code).

_lock_counts: dict[int, list[Any]] = {}  # id(array) -> [array, number of live nodes protecting it]
_deferred: dict[int, np.ndarray] = {}  # released, but its base was still protected: restore later
# The bookkeeping is shared by threads (a user's threads may record tapes over the same parameters,
# as PyTorch allows), so it is guarded by a lock. A finalizer (Context.__del__) may run at any allocation,
# even inside a guarded section of its own thread: it never waits for the lock, it queues its release
# for whoever holds the lock to finish.
_guard = threading.Lock()
_pending: list[list[np.ndarray]] = []


class InPlaceError(ValueError):
    """An array saved for a backward pass is about to be modified in place."""


def _lock_one(arr: np.ndarray, locked: list[np.ndarray]) -> None:
    """Make ``arr`` read-only (counted, so that the last node to release it restores it)."""
    key = id(arr)
    entry = _lock_counts.get(key)
    if entry is not None:
        entry[1] += 1
        locked.append(arr)
    elif arr.flags.writeable:
        arr.setflags(write=False)
        _lock_counts[key] = [arr, 1]
        locked.append(arr)
    elif key in _deferred:  # read-only only because we could not restore it yet
        _lock_counts[key] = [_deferred.pop(key), 1]
        locked.append(arr)
    # else: read-only already (a broadcast view, the user's own choice): not ours to restore


def _base_array(arr: np.ndarray) -> np.ndarray | None:
    """The array ``arr`` is a view of, or None if it owns its memory (or the owner is not an array)."""
    base = arr.base
    if base is not None and type(base) is not np.ndarray:  # as_strided / sliding_window_view keep a DummyArray
        base = getattr(base, "base", None)
    return base if isinstance(base, np.ndarray) else None


def _lock_chain(arr: np.ndarray, locked: list[np.ndarray]) -> np.ndarray:
    """Make ``arr`` and every array it is a view of read-only (counted); return the memory's owner."""
    while True:
        _lock_one(arr, locked)
        base = _base_array(arr)
        if base is None:
            return arr
        arr = base


def _root(arr: np.ndarray) -> np.ndarray:
    """The array that owns ``arr``'s memory (``arr`` itself if it is not a view)."""
    while (base := _base_array(arr)) is not None:
        arr = base
    return arr


def _protect(ctx: Context) -> None:
    """Make every array ``ctx`` keeps read-only for the node's lifetime (see the comment above)."""
    arrays = ctx.kept_arrays()
    # An output that is a view (reshape, transpose, slicing) shares memory with what other nodes of
    # the graph may save: it is read-only for the node's lifetime too.
    output = ctx._output() if ctx._output is not None else None
    out_view = output is not None and output.data.base is not None and output.data.flags.writeable
    if not arrays and not out_view:
        return
    with _guard:
        if arrays:
            _protect_arrays(ctx, arrays)
        if out_view:
            _lock_one(output.data, ctx._locked)
        _drain()
    if _pending:
        _release_from_finalizer([])


def _arrays_in(values: tuple[Any, ...], found: list[np.ndarray]) -> None:
    """Append the ndarrays among ``values`` (and inside tuples among them) to ``found``."""
    for value in values:
        kind = type(value)
        if kind is np.ndarray:
            found.append(value)
        elif kind is tuple:
            _arrays_in(value, found)


def _protect_arrays(ctx: Context, arrays: list[np.ndarray]) -> None:
    locked = ctx._locked
    output = ctx._output() if ctx._output is not None else None
    out_root = _root(output.data) if output is not None else None
    for arr in arrays:
        root = _lock_chain(arr, locked)
        if root is out_root and output.data is not arr:  # the output is (a view of) what was saved
            _lock_chain(output.data, locked)
            out_root = None
        # The tensor of the graph holding this array, and the tensors it is a view of.
        t = None
        for u in ctx.inputs:
            if getattr(u, "data", None) is arr:
                t = u
                break
        while t is not None:
            if t.data is not arr:
                _lock_chain(t.data, locked)
            parent = t._ctx
            t = None
            if parent is not None:
                for u in parent.inputs:
                    data = getattr(u, "data", None)
                    if type(data) is np.ndarray and data.base is not None and _root(data) is root:
                        t = u  # the parent op made a view of u
                        break


def _release(locked: list[np.ndarray]) -> None:
    """Undo what :func:`_protect` did for one node."""
    with _guard:
        _release_arrays(locked)
        _drain()
    if _pending:
        _release_from_finalizer([])


def _release_from_finalizer(locked: list[np.ndarray]) -> None:
    if locked:
        _pending.append(locked)  # list.append is atomic and allocates no tracked object
    while _pending and _guard.acquire(blocking=False):
        try:
            _drain()
        finally:
            _guard.release()


def _drain() -> None:
    while _pending:
        _release_arrays(_pending.pop())


def _release_arrays(locked: list[np.ndarray]) -> None:
    restored = False
    for arr in reversed(locked):  # bases were locked after their views: restore them first
        key = id(arr)
        entry = _lock_counts[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _lock_counts[key]
            try:
                arr.setflags(write=True)
                restored = True
            except ValueError:  # a base is still protected by another node
                _deferred[key] = arr
    while restored and _deferred:
        restored = False
        for key, arr in list(_deferred.items()):
            try:
                arr.setflags(write=True)
            except ValueError:
                continue
            del _deferred[key]
            restored = True


def check_writable(arr: np.ndarray, what: str) -> None:
    """Raise :class:`InPlaceError` naming ``what`` if ``arr`` cannot be written in place."""
    if arr.flags.writeable:
        return
    if id(arr) in _lock_counts or id(_root(arr)) in _lock_counts or id(arr) in _deferred:
        raise InPlaceError(
            f"{what} is saved for the backward pass of a graph that is still alive, so changing it in place "
            "would make that backward pass return a wrong gradient. Run backward() on that graph first "
            "(without retain_graph=True), or drop it (del loss, or compute it under tg.no_grad()) "
            "before changing the values."
        )
    raise InPlaceError(f"{what} is a read-only array (not made so by tinygrad_cnn); it cannot be changed in place")


# --------------------------------------------------------------------------- anomaly detection


class _AnomalyMode(threading.local):
    enabled: bool = False
    in_backward_of: Context | None = None  # the node whose backward rule is running


_anomaly_mode = _AnomalyMode()


class AnomalyError(FloatingPointError):
    """A NaN or Inf appeared in a forward output or a gradient under :func:`detect_anomaly`."""


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Check every forward output and every gradient for NaN/Inf while inside this block.

    The error names the op and the line of user code that recorded it. Only in this mode is the
    recording site kept, so normal runs pay nothing.
    """
    previous = _anomaly_mode.enabled
    _anomaly_mode.enabled = True
    try:
        yield
    finally:
        _anomaly_mode.enabled = previous


def _user_frame() -> str:
    import traceback

    package_dir = __file__.rsplit("/", 1)[0]
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(package_dir):
            site = f'File "{frame.filename}", line {frame.lineno}, in {frame.name}'
            return f"{site}\n    {frame.line}" if frame.line else site  # no source line for exec'd code
    return "(recording site unknown)"


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
    site = (ctx.__dict__.get("_trace") if ctx is not None else None) or _user_frame()
    name = ctx.fn.__name__ if ctx is not None else op
    raise AnomalyError(f"{message}.\n{name} was recorded at:\n{site}")


# --------------------------------------------------------------------------- reverse mode


def _topological_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Non-leaf tensors reachable from ``roots``, each after every tensor that consumes it.

    Iterative depth-first post-order, so graphs of any depth work (no recursion limit).
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    for root in roots:
        if root._ctx is None or id(root) in visited:
            continue
        visited.add(id(root))
        stack: list[tuple[Tensor, Iterator[Any]]] = [(root, iter(root._ctx.inputs))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if isinstance(child, Tensor) and child._ctx is not None and id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, iter(child._ctx.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _as_gradient(rule: str, index: int, g: Any, target: Tensor) -> Tensor:
    """Check a gradient returned by a backward rule against the input it belongs to."""
    if not isinstance(g, Tensor):
        try:
            g = Tensor(np.asarray(g))
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


def _call_rule(ctx: Context, g: Tensor, create_graph: bool) -> Any:
    """The gradients ``ctx``'s rule gives its inputs: ``backward_arrays`` on plain arrays where the
    rule has one and no graph is being recorded, else the differentiable ``backward``."""
    plain = None if create_graph else getattr(ctx.fn, "backward_arrays", None)
    return plain(ctx, g.data) if plain is not None else ctx.fn.backward(ctx, g)


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
    grads: dict[int, Tensor] = {}
    wanted = None if inputs is None else {id(t) for t in inputs}
    captured: dict[int, Tensor] = {}
    hooked: dict[int, Tensor] = {}  # leaves with post-accumulate hooks that got a gradient, in order

    def accumulate(t: Tensor, g: Tensor) -> None:
        key = id(t)
        if wanted is not None and key in wanted and t._ctx is None:
            captured[key] = captured[key] + g if key in captured else g
        elif t._ctx is None:
            if wanted is None and t.requires_grad:
                if _accumulate_hooks and key in _accumulate_hooks:
                    hooked[key] = t
                if t.grad is None:
                    t.grad = np.array(g.data, copy=True)
                elif t.grad.flags.writeable:
                    t.grad += g.data  # accumulate in place, as PyTorch does
                else:  # .grad is saved by a live graph (or read-only): leave that array alone
                    t.grad = t.grad + g.data
        else:
            grads[key] = grads[key] + g if key in grads else g

    with set_grad_enabled(create_graph):
        for root, g in zip(roots, root_grads, strict=True):
            accumulate(root, g)
        for node in _topological_order(roots):
            g = grads.pop(id(node), None)
            if wanted is not None and id(node) in wanted:
                captured[id(node)] = g if g is not None else None
            if g is None:
                if not retain_graph and not node._ctx._freed:
                    node._ctx.free()  # no gradient reached it: still, nothing of this graph stays saved
                continue
            for observe in _grad_observers:
                observe(node, g)
            ctx = node._ctx
            if ctx._freed:
                raise ctx.freed_error()
            rule = ctx.fn.__name__
            if _anomaly_mode.enabled:
                _anomaly_mode.in_backward_of = ctx
                try:
                    in_grads = _call_rule(ctx, g, create_graph)
                finally:
                    _anomaly_mode.in_backward_of = None
            else:
                in_grads = _call_rule(ctx, g, create_graph)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            if (
                len(in_grads) < len(ctx.inputs)
                and any(ctx.needs_input_grad[len(in_grads) :])
                or len(in_grads) > len(ctx.inputs)
            ):
                raise RuntimeError(
                    f"{rule}.backward returned {len(in_grads)} gradient(s) for the {len(ctx.inputs)} positional "
                    "argument(s) of forward; return one per argument (None for those without a gradient)"
                )
            for i, (t, gi, needed) in enumerate(zip(ctx.inputs, in_grads, ctx.needs_input_grad)):
                if gi is None or not needed:
                    continue
                gi = _as_gradient(rule, i, gi, t)
                if _anomaly_mode.enabled:
                    _check_finite(rule, f"gradient for input {i}", gi.data, ctx)
                accumulate(t, gi)
            if not retain_graph:
                ctx.free()
    for key, t in hooked.items():
        for hook in list(_accumulate_hooks.get(key, ())):
            hook(t)
    if inputs is None:
        return None
    return [captured.get(id(t)) for t in inputs]


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
            g = Tensor(np.zeros_like(t.data))
        final.append(g)
    return tuple(final)


def _seed_gradient(op: str, out: Tensor, seed: Any) -> Tensor:
    if seed is None:
        if out.size != 1:
            raise ValueError(
                f"{op}: the output has shape {out.shape}; gradients can be implicitly created only "
                "for scalar outputs. Pass the gradient of the output explicitly."
            )
        return Tensor(np.ones_like(out.data))
    try:
        g = seed if isinstance(seed, Tensor) else Tensor(np.array(seed, dtype=out.dtype))
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{op}: the gradient must be a Tensor or an array of numbers, got {type(seed).__name__} ({e})"
        ) from None
    if g.dtype.kind not in "biuf":
        raise TypeError(f"{op}: the gradient must hold real numbers, got dtype {g.dtype}")
    if g.dtype != out.dtype:
        g = Tensor(g.data.astype(out.dtype))
    if g.shape != out.shape:
        raise ValueError(f"{op}: gradient of shape {g.shape} given for an output of shape {out.shape}")
    return g
