"""A readable tape: the recorded operations that produced a tensor, as a table or a Graphviz graph.

>>> import tinygrad_cnn as tg
>>> x = tg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> loss = (x * x).sum()
>>> t = loss.tape(names={"x": x})      # or tinygrad_cnn.graph.tape(loss, ...)
>>> loss.backward()
>>> print(t)                           # doctest: +SKIP
 call  at          node  op    inputs  input shapes    args           shape   dtype    saved  extra  |grad|
                   x     leaf                                         (2, 2)  float32                 10.95
 mul   train.py:3  %0    Mul   x, x    (2, 2), (2, 2)                 (2, 2)  float32   16 B    0 B       2
 sum   train.py:3  %1    Sum   %0      (2, 2)          (0, 1), False  ()      float32    0 B    0 B       1

Ops are grouped under the user's call that recorded them (``call``: ``conv2d``, ``cross_entropy``,
a module by its class; ``at``: the user's file and line); :meth:`Tape.summary` collapses the table
to one row per call. :func:`tape` takes a snapshot of the graph when it is called (shapes, dtypes, the bytes each node
keeps for backward), so call it *before* ``backward()``, which frees what the nodes saved. While
the :class:`Tape` object is alive it also records, during every reverse sweep that goes through
its graph, the norm of the gradient that reaches each op's output; leaves show the norm of their
``.grad``. Nothing is recorded, and backward pays nothing, when no tape is alive.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import autograd
from .tensor import Tensor

__all__ = ["GraphvizNotFoundError", "Leaf", "Node", "Tape", "tape"]


class GraphvizNotFoundError(RuntimeError):
    """:meth:`Tape.render` needs Graphviz' ``dot`` program, which is not installed."""


@dataclass
class Leaf:
    """A tensor the graph starts from: a parameter or input (``requires_grad``) or a constant."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    requires_grad: bool
    _ref: Any = field(repr=False, compare=False, default=None)

    @property
    def grad_norm(self) -> float | None:
        """The L2 norm of the leaf's ``.grad`` now (None if it has none)."""
        t = self._ref() if self._ref is not None else None
        if t is None or t.grad is None:
            return None
        return _norm(t.grad)


@dataclass
class Node:
    """One recorded operation, in execution order."""

    index: int  # position in execution order; the output is called "%index"
    op: str  # the Function's name: "Mul", "MatMul", ...
    inputs: tuple[str, ...]  # names of the tensor inputs: "%3" (an op's output), "x0", "c1", "0.weight"
    input_shapes: tuple[tuple[int, ...], ...]
    args: tuple[Any, ...]  # the non-tensor arguments (axes, shapes, ...)
    shape: tuple[int, ...]  # of the output
    dtype: np.dtype
    output_bytes: int  # nbytes of the output array
    output_is_view: bool  # the output shares memory with another array (reshape, transpose, unfold, ...)
    saved_bytes: int  # nbytes of the arrays this node keeps for backward (ctx.save_for_backward and ctx attributes)
    extra_bytes: int  # of those, memory not shared with the node's inputs or output (the real cost of saving)
    freed: bool  # backward already ran through this node and freed what it saved
    grad_norm: float | None = None  # the norm of the gradient of the output in the last reverse sweep
    site: autograd.CallSite | None = None  # the user's line and the library calls that recorded it

    @property
    def name(self) -> str:
        return f"%{self.index}"

    @property
    def calls(self) -> tuple[str, ...]:
        """The library calls that recorded this op, outermost first, e.g. ``("conv2d",)``."""
        return self.site.calls if self.site is not None else ()

    @property
    def where(self) -> str:
        """The user's line that made the outermost call, as ``file.py:12``."""
        return f"{Path(self.site.filename).name}:{self.site.lineno}" if self.site is not None else ""

    @property
    def call_depth(self) -> int:
        """How many of :attr:`calls` name the user's call: the modules it went through, then the
        first function (``("Sequential", "Conv2d", "conv2d")`` of ``(..., "conv2d", "transpose")``)."""
        modules = 0
        if self.site is not None:
            while modules < len(self.site.calls) and self.site.key[modules] != 0:
                modules += 1
        return min(modules + 1, len(self.calls))

    def _call_key(self, depth: int) -> tuple[Any, ...]:
        """What tells this op's call at ``depth`` from another (consecutive ops that share it are one call)."""
        site = self.site
        if site is None or not site.calls:
            return ("op", self.index)  # Function.apply called by the user: a call of its own
        return (site.calls[:depth], site.key[:depth], site.filename, site.lineno, site.key[-1])


@dataclass
class Group:
    """Consecutive ops recorded by one call of the user's: ``conv2d``, ``max_pool2d``, a module."""

    calls: tuple[str, ...]  # the call and the calls it was made in, outermost first
    where: str  # the user's line, ``file.py:12``
    nodes: list[Node]

    @property
    def name(self) -> str:
        return " > ".join(self.calls) if self.calls else self.nodes[0].op


# --------------------------------------------------------------------------- building the tape


def tape(
    tensors: Tensor | Sequence[Tensor],
    names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    record_grads: bool = True,
) -> Tape:
    """The recorded operations that produced ``tensors`` (one tensor or several), in execution order.

    ``names`` labels leaves, e.g. ``names=model.named_parameters()`` or ``names={"x": x}``; other
    leaves are called ``x0, x1, ...`` (they require grad) and ``c0, c1, ...`` (constants).
    With ``record_grads`` (the default) the tape records the gradient norm of each op's output
    during later backward passes through this graph, for as long as the tape object lives.
    """
    roots = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    for i, r in enumerate(roots):
        if not isinstance(r, Tensor):
            raise TypeError(f"tape: expected Tensors, got {type(r).__name__} at position {i}")
    given: dict[int, str] = {}
    if names is not None:
        pairs = names.items() if isinstance(names, Mapping) else names
        for name, t in pairs:
            given.setdefault(id(t), str(name))

    # Every tensor reachable from the roots (iteratively: graphs of any depth).
    recorded: dict[int, tuple[Tensor, autograd.Context]] = {}
    leaves: dict[int, Tensor] = {}
    stack = list(roots)
    while stack:
        t = stack.pop()
        key = id(t)
        if key in recorded or key in leaves:
            continue
        if t.grad_fn is None:
            leaves[key] = t
            continue
        recorded[key] = (t, t.grad_fn)
        stack.extend(a for a in t.grad_fn.inputs if isinstance(a, Tensor))

    order = sorted(recorded.values(), key=lambda pair: pair[1].seq)
    label: dict[int, str] = {id(t): f"%{i}" for i, (t, _) in enumerate(order)}
    counters = {"x": 0, "c": 0}
    leaf_rows: list[Leaf] = []

    def leaf_name(t: Tensor) -> str:
        key = id(t)
        if key not in label:
            if key in given:
                label[key] = given[key]
            else:
                kind = "x" if t.requires_grad else "c"
                label[key] = f"{kind}{counters[kind]}"
                counters[kind] += 1
            leaf_rows.append(Leaf(label[key], t.shape, t.dtype, t.requires_grad, weakref.ref(t)))
        return label[key]

    nodes: list[Node] = []
    for i, (t, ctx) in enumerate(order):
        tensor_inputs = [a for a in ctx.inputs if isinstance(a, Tensor)]
        in_names = tuple(label[id(a)] if a.grad_fn is not None else leaf_name(a) for a in tensor_inputs)
        saved, extra = _saved_bytes(ctx, t)
        nodes.append(
            Node(
                index=i,
                op=ctx.fn.__name__,
                inputs=in_names,
                input_shapes=tuple(a.shape for a in tensor_inputs),
                args=tuple(a for a in ctx.inputs if not isinstance(a, Tensor)),
                shape=t.shape,
                dtype=t.dtype,
                output_bytes=t.data.nbytes,
                output_is_view=not t.data.flags.owndata,
                saved_bytes=saved,
                extra_bytes=extra,
                freed=ctx.freed,
                site=ctx.site,
            )
        )
    for r in roots:  # a root that is itself a leaf
        if r.grad_fn is None:
            leaf_name(r)
    result = Tape(nodes, leaf_rows, [label[id(r)] for r in roots])
    if record_grads and order:
        result._watch([t for t, _ in order])
    return result


def _saved_bytes(ctx: autograd.Context, output: Tensor) -> tuple[int, int]:
    """(nbytes of the arrays ctx keeps, bytes of those that share no memory with inputs/output)."""
    kept: dict[int, np.ndarray] = {}
    for arr in ctx.kept_arrays():
        kept.setdefault(id(arr), arr)
    own = [a.data for a in ctx.inputs if isinstance(a, Tensor)] + [output.data]
    saved = extra = 0
    buffers: set[int] = set()
    for arr in kept.values():
        saved += arr.nbytes
        if any(np.may_share_memory(arr, o) for o in own):
            continue
        base = _buffer(arr)  # a view keeps its whole base alive: count the base, once
        if id(base) not in buffers:
            buffers.add(id(base))
            extra += base.nbytes
    return saved, extra


def _buffer(arr: np.ndarray) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _norm(a: np.ndarray) -> float:
    return float(np.linalg.norm(np.ravel(a)))


# --------------------------------------------------------------------------- gradient observation

_recording: weakref.WeakSet[Tape] = weakref.WeakSet()


class _GradientNorms(autograd.BackwardHook):
    """Registered while a tape records: the norm of each gradient the sweep reaches."""

    def node_reached(self, node: Tensor, grad: Tensor | None) -> None:
        if grad is not None:
            for t in list(_recording):
                t._record(node, grad)


_observer = _GradientNorms()


def _stop_if_idle() -> None:
    if not any(True for _ in _recording):
        autograd.remove_backward_hook(_observer)


# --------------------------------------------------------------------------- the Tape


class Tape:
    """The ops that produced some tensors, in execution order: ``print(tape)`` shows a table.

    ``tape.nodes`` (:class:`Node`, one per op) and ``tape.leaves`` (:class:`Leaf`) hold the
    data; :meth:`to_dot` returns the graph as Graphviz DOT text and :meth:`render` draws it.
    """

    def __init__(self, nodes: list[Node], leaves: list[Leaf], roots: list[str]) -> None:
        self.nodes = nodes
        self.leaves = leaves
        self.roots = roots
        self._refs: dict[int, tuple[weakref.ReferenceType[Tensor], Node]] = {}

    # ------------------------------------------------------------------ sequence protocol
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    @property
    def ops(self) -> list[str]:
        """The op names in execution order."""
        return [n.op for n in self.nodes]

    @property
    def saved_bytes(self) -> int:
        """Total nbytes of the arrays the nodes keep for backward."""
        return sum(n.saved_bytes for n in self.nodes)

    @property
    def extra_bytes(self) -> int:
        """Memory saved for backward beyond the tensors the graph holds anyway."""
        return sum(n.extra_bytes for n in self.nodes)

    # ------------------------------------------------------------------ gradient norms
    def _watch(self, tensors: list[Tensor]) -> None:
        self._refs = {id(t): (weakref.ref(t), n) for t, n in zip(tensors, self.nodes)}
        _recording.add(self)
        autograd.add_backward_hook(_observer)
        weakref.finalize(self, _stop_if_idle)

    def _record(self, tensor: Tensor, grad: Tensor) -> None:
        entry = self._refs.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            entry[1].grad_norm = _norm(grad.data)

    def stop(self) -> None:
        """Stop recording gradient norms (they also stop when the tape is garbage collected)."""
        _recording.discard(self)
        self._refs = {}
        _stop_if_idle()

    # ------------------------------------------------------------------ calls
    def groups(self, depth: int = 1) -> list[Group]:
        """The ops grouped by the user's calls that recorded them, in execution order: at
        ``depth`` 1 the calls the user's code made (``conv2d``, ``cross_entropy``, a model);
        deeper, the calls made inside those (a model's layers, then the functions they call)."""
        out: list[Group] = []
        previous: tuple[Any, ...] | None = None
        for n in self.nodes:
            key = n._call_key(depth)
            if key != previous:
                out.append(Group(n.calls[:depth], n.where, []))
                previous = key
            out[-1].nodes.append(n)
        return out

    # ------------------------------------------------------------------ the table
    def rows(self) -> list[dict[str, str]]:
        """The table as a list of dicts of strings (one per leaf, then one per op). ``call`` names
        the user's call that recorded an op (on the first op of each call), ``at`` its line."""
        out = []
        for leaf in self.leaves:
            g = leaf.grad_norm
            out.append(
                {
                    "call": "",
                    "at": "",
                    "node": leaf.name,
                    "op": "leaf" if leaf.requires_grad else "const",
                    "inputs": "",
                    "input shapes": "",
                    "args": "",
                    "shape": _shape(leaf.shape),
                    "dtype": str(leaf.dtype),
                    "saved": "",
                    "extra": "",
                    "|grad|": _num(g) if g is not None else "",
                }
            )
        previous = None
        for n in self.nodes:
            depth = n.call_depth
            key = n._call_key(depth)
            first = key != previous  # the first op of a call: name the call
            previous = key
            out.append(
                {
                    "call": (" > ".join(n.calls[:depth]) or n.op) if first else "",
                    "at": n.where if first else "",
                    "node": n.name,
                    "op": n.op,
                    "inputs": ", ".join(n.inputs),
                    "input shapes": ", ".join(_shape(s) for s in n.input_shapes),
                    "args": _abbrev(", ".join(_fmt_arg(a) for a in n.args), 32),
                    "shape": _shape(n.shape) + (" view" if n.output_is_view else ""),
                    "dtype": str(n.dtype),
                    "saved": "freed" if n.freed else _bytes(n.saved_bytes),
                    "extra": "" if n.freed else _bytes(n.extra_bytes),
                    "|grad|": _num(n.grad_norm) if n.grad_norm is not None else "-",
                }
            )
        return out

    def summary(self, depth: int = 1) -> str:
        """The table collapsed to the user's calls: one row per call at ``depth`` (see :meth:`groups`)
        with its ops, the shape of its last output, what its ops save and its output's |grad|."""
        rows = []
        for g in self.groups(depth):
            last = g.nodes[-1]
            freed = all(n.freed for n in g.nodes)
            rows.append(
                {
                    "call": g.name,
                    "at": g.where,
                    "ops": ", ".join(n.op for n in g.nodes),
                    "nodes": g.nodes[0].name + (f"..{last.name}" if len(g.nodes) > 1 else ""),
                    "shape": _shape(last.shape),
                    "saved": "freed" if freed else _bytes(sum(n.saved_bytes for n in g.nodes if not n.freed)),
                    "|grad|": _num(last.grad_norm) if last.grad_norm is not None else "-",
                }
            )
        return _format(rows, ["call", "at", "nodes", "ops", "shape", "saved", "|grad|"], {"saved", "|grad|"})

    def __str__(self) -> str:
        headers = ["call", "at", "node", "op", "inputs", "input shapes", "args", "shape", "dtype", "saved", "extra"]
        table = _format(self.rows(), headers + ["|grad|"], {"saved", "extra", "|grad|"})
        out_bytes = sum(n.output_bytes for n in self.nodes if not n.output_is_view)
        return (
            f"{table}\n{len(self.nodes)} ops; outputs {_bytes(out_bytes)} (views not counted); "
            f"saved for backward {_bytes(self.saved_bytes)}, of which {_bytes(self.extra_bytes)} "
            "beyond inputs and outputs"
        )

    def __repr__(self) -> str:
        return f"<Tape of {len(self.nodes)} ops, {len(self.leaves)} leaves, roots {', '.join(self.roots)}>"

    # ------------------------------------------------------------------ Graphviz
    def to_dot(self, constants: bool = True, rankdir: str = "TB", title: str | None = None) -> str:
        """The graph as Graphviz DOT text: leaves as ellipses (blue: require grad, grey: constants),
        ops as boxes labelled with their output shape and, after backward, the gradient norm.
        ``constants=False`` leaves out constant leaves (labels, masks)."""
        lines = [
            "digraph tape {",
            f"  rankdir={rankdir};",
            '  node [fontname="Helvetica", fontsize=10, margin="0.08,0.03", height=0.3];',
            '  edge [arrowsize=0.6, color="#555555"];',
        ]
        if title:
            lines.append(f'  labelloc=t; label="{_dot_escape(title)}"; fontname="Helvetica"; fontsize=12;')
        ids: dict[str, str] = {}
        for i, leaf in enumerate(self.leaves):
            if not leaf.requires_grad and not constants:
                continue
            ids[leaf.name] = f"leaf{i}"
            text = f"{leaf.name}\n{_shape(leaf.shape)} {leaf.dtype}"
            g = leaf.grad_norm
            if g is not None:
                text += f"\n|grad| {_num(g)}"
            fill = "#cfe2ff" if leaf.requires_grad else "#eeeeee"
            lines.append(f'  leaf{i} [shape=ellipse, style=filled, fillcolor="{fill}", label="{_dot_escape(text)}"];')
        for k, group in enumerate(self.groups()):
            if group.calls:  # the ops of one user call drawn inside a box named by it
                lines.append(f"  subgraph cluster{k} {{")
                label = f"{group.name}  {group.where}"
                lines.append(f'    label="{_dot_escape(label)}"; style="rounded,dashed"; color="#999999";')
            lines.extend(self._dot_node(n, ids) for n in group.nodes)
            if group.calls:
                lines.append("  }")
        for n in self.nodes:
            for name in n.inputs:
                if name in ids:
                    lines.append(f"  {ids[name]} -> op{n.index};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _dot_node(self, n: Node, ids: dict[str, str]) -> str:
        """One op's box in :meth:`to_dot` (and its id in ``ids``)."""
        ids[n.name] = f"op{n.index}"
        text = f"{n.name} {n.op}"
        args = _abbrev(", ".join(_fmt_arg(a) for a in n.args), 28)
        if args:
            text += f"\n{args}"
        text += f"\n{_shape(n.shape)}" + (" view" if n.output_is_view else "")
        if n.grad_norm is not None:
            text += f"\n|grad| {_num(n.grad_norm)}"
        fill = "#ffd8a8" if n.name in self.roots else "#fff3bf"
        return f'  op{n.index} [shape=box, style="rounded,filled", fillcolor="{fill}", label="{_dot_escape(text)}"];'

    def render(self, path: str | Path, format: str | None = None, dpi: int | None = None, **dot_options: Any) -> Path:
        """Draw the graph with Graphviz' ``dot`` into ``path`` (format from the suffix: .png,
        .svg, .pdf, ...; ``dpi`` sets the resolution of bitmaps). Other keyword arguments go to
        :meth:`to_dot`. Raises :class:`GraphvizNotFoundError` if ``dot`` is not installed;
        :meth:`to_dot` works without it. Returns the path."""
        path = Path(path)
        fmt = format or path.suffix.lstrip(".") or "png"
        exe = shutil.which("dot")
        if exe is None:
            raise GraphvizNotFoundError(
                "Tape.render: Graphviz' 'dot' program was not found on PATH. Install Graphviz "
                "(apt-get install graphviz, brew install graphviz, conda install graphviz), or write "
                "Tape.to_dot() to a .dot file and render it elsewhere."
            )
        command = [exe, f"-T{fmt}", "-o", str(path)] + ([f"-Gdpi={int(dpi)}"] if dpi else [])
        proc = subprocess.run(command, input=self.to_dot(**dot_options).encode(), capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"Tape.render: dot failed ({proc.returncode}): {proc.stderr.decode().strip()}")
        return path


# --------------------------------------------------------------------------- formatting


def _format(rows: list[dict[str, str]], headers: list[str], right: set[str]) -> str:
    """Rows of strings as a text table under ``headers`` (the ``right`` columns right-aligned)."""
    widths = {h: max([len(h)] + [len(r[h]) for r in rows]) for h in headers}

    def line(cells: Mapping[str, str]) -> str:
        parts = [cells[h].rjust(widths[h]) if h in right else cells[h].ljust(widths[h]) for h in headers]
        return (" " + "  ".join(parts)).rstrip()

    return "\n".join([line({h: h for h in headers})] + [line(r) for r in rows])


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _num(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return str(x) if not math.isfinite(x) else "0"
    return f"{x:.4g}"


def _fmt_arg(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"array{_shape(a.shape)}"
    if isinstance(a, slice):
        parts = ["" if a.start is None else str(a.start), "" if a.stop is None else str(a.stop)]
        if a.step is not None:
            parts.append(str(a.step))
        return ":".join(parts)
    if a is Ellipsis:
        return "..."
    if isinstance(a, bool):
        return str(a)
    if isinstance(a, float):
        return f"{a:g}"
    if isinstance(a, np.dtype):
        return str(a)
    if isinstance(a, tuple):
        return "(" + ", ".join(_fmt_arg(x) for x in a) + ("," if len(a) == 1 else "") + ")"
    return repr(a)


def _abbrev(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
