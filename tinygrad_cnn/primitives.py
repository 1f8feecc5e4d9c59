"""Every primitive of tinygrad_cnn: one forward (on NumPy arrays) and one backward (its VJP).

This module is the whole table of derivative rules. Everything else in the library, conv2d,
pooling and the losses included, is composed from these in :mod:`tinygrad_cnn.functional`.

Notation in the rule comments: ``g`` is the gradient of the output, ``y`` the output.
Backward rules are written with Tensor operations, so they can be differentiated again. The rules
a CNN step runs most also have a plain path: in an ordinary backward pass nothing is recorded, and
they apply the same formula to the arrays themselves (see :func:`_operands`), which skips a few
microseconds of bookkeeping per operation.
Elementwise binary ops broadcast like NumPy; their rules sum ``g`` back to each input's shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .autograd import Context, Function, is_grad_enabled
from ._tensor import Tensor

Shape = tuple[int, ...]


def sum_to(g: Any, shape: Shape) -> Any:
    """Sum a broadcast gradient (a Tensor, or an ndarray in a plain backward) back to ``shape``
    (the adjoint of broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if not axes:
        return g.reshape(shape)
    summed = _sum(g, axes, False) if isinstance(g, np.ndarray) else Sum.apply(g, axes, False)
    return summed.reshape(shape)


def _operands(ctx: Context, g: Tensor) -> tuple[tuple[Any, ...], Any]:
    """What ``forward`` saved, and ``g``: as Tensors when the backward pass is itself recorded
    (``create_graph``), as plain arrays otherwise. Formulas written with ``@``, ``*``,
    ``swapaxes`` and ``reshape`` then serve both cases."""
    if is_grad_enabled():
        return ctx.saved_tensors, g
    return ctx.saved_arrays, g.array


def _permuted(a: Any, axes: tuple[int, ...]) -> Any:
    """``a`` with its axes reordered: an ndarray (``transpose``) or a Tensor (``permute``)."""
    return a.transpose(axes) if isinstance(a, np.ndarray) else a.permute(*axes)


# --------------------------------------------------------------------------- elementwise


class Add(Function):
    """y = a + b.   da = g,  db = g."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor, Tensor]:
        sa, sb = ctx.shapes
        return sum_to(g, sa), sum_to(g, sb)


class Sub(Function):
    """y = a - b.   da = g,  db = -g."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor, Tensor | None]:
        sa, sb = ctx.shapes
        return sum_to(g, sa), (sum_to(-g, sb) if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b.   da = g * b,  db = g * a."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(g * b, a.shape) if need_a else None, sum_to(g * a, b.shape) if need_b else None)


class Div(Function):
    """y = a / b.   da = g / b,  db = -g * a / b**2."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(g / b, a.shape) if need_a else None
        gb = sum_to(-g * a / (b * b), b.shape) if need_b else None
        return ga, gb


class Neg(Function):
    """y = -x.   dx = -g."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return -x

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return -g


class Pow(Function):
    """y = x ** p for a constant scalar p.   dx = g * p * x ** (p - 1)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, p: float) -> np.ndarray:
        ctx.save_for_backward(x)
        ctx.p = p
        return x ** np.asarray(p, dtype=x.dtype)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        p = ctx.p
        if p == 0:
            return g * 0.0
        return g * p * (x ** (p - 1) if p != 2 else x)


class Exp(Function):
    """y = exp(x).   dx = g * y."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g * y


class Log(Function):
    """y = log(x).   dx = g / x."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return g / x


class ReLU(Function):
    """y = max(x, 0).   dx = g * (x > 0)   (relu'(0) = 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Any:
        (y,), g = _operands(ctx, g)
        return g * (y > 0)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)).   dx = g * y * (1 - y)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        # exp(-|x|) never overflows; pick the form that is exact on each side of 0.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class Tanh(Function):
    """y = tanh(x).   dx = g * (1 - y**2)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class Log1p(Function):
    """y = log(1 + x).   dx = g / (1 + x)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log1p(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return g / (x + 1)


class Sin(Function):
    """y = sin(x).   dx = g * cos(x), with cos(x) = sin(x + pi/2)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return g * Sin.apply(x + np.pi / 2)


class PowTensor(Function):
    """y = a ** b for tensors a, b.   da = g * b * a ** (b - 1),  db = g * y * log(a) (0 where a == 0
    and b >= 0, as PyTorch)."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b, y = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = gb = None
        if need_a:
            ga = sum_to(g * b * PowTensor.apply(a, b - 1), a.shape)
        if need_b:
            zero = (a.array == 0) & (b.array >= 0)
            safe_a = Where.apply(zero, Tensor(np.ones((), dtype=a.dtype)), a)
            log_a = Where.apply(zero, Tensor(np.zeros((), dtype=a.dtype)), Log.apply(safe_a))
            gb = sum_to(g * y * log_a, b.shape)
        return ga, gb


class Where(Function):
    """y = cond ? a : b for a constant boolean ``cond``.   da = g * cond,  db = g * !cond."""

    @staticmethod
    def forward(ctx: Context, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.cond = cond
        ctx.shapes = (a.shape, b.shape)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[None, Tensor | None, Tensor | None]:
        cond = Tensor(np.broadcast_to(ctx.cond, g.shape))
        zero = Tensor(np.zeros((), dtype=g.dtype))
        sa, sb = ctx.shapes
        _, need_a, need_b = ctx.needs_input_grad
        ga = sum_to(Where.apply(cond, g, zero), sa) if need_a else None
        gb = sum_to(Where.apply(cond, zero, g), sb) if need_b else None
        return None, ga, gb


class Cast(Function):
    """y = x.astype(dtype).   dx = g.astype(x.dtype)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dtype: Any) -> np.ndarray:
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Cast.apply(g, ctx.dtype)


# --------------------------------------------------------------------------- reductions


class Sum(Function):
    """y = x.sum(axis, keepdims).   dx = broadcast g back to x's shape."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        ctx.shape, ctx.axis, ctx.keepdims = x.shape, axis, keepdims
        return _sum(x, axis, keepdims)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        if not ctx.keepdims:
            g = g.reshape(_keepdims_shape(ctx.shape, ctx.axis))
        return Expand.apply(g, ctx.shape)


def _sum(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    lead = len(axis)
    if axis == tuple(range(lead)) and _many_short_rows(x, lead):
        y = _sum_rows(x.reshape(-1, int(np.prod(x.shape[lead:]))))
        return y.reshape(_keepdims_shape(x.shape, axis) if keepdims else x.shape[lead:])
    return np.asarray(x.sum(axis=axis, keepdims=keepdims))


_ROW_BLOCK = 1024  # elements summed side by side when adding up many short rows


def _many_short_rows(x: np.ndarray, lead: int) -> bool:
    """True when NumPy would loop over x one short row (the axes after ``lead``) at a time, as when
    summing a bias gradient or adding a bias: worth blocking rows together."""
    width = int(np.prod(x.shape[lead:]))
    return x.dtype.kind == "f" and x.flags.c_contiguous and 0 < width <= _ROW_BLOCK // 4 and x.size >= 4 * _ROW_BLOCK


def _row_blocks(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A C-contiguous (M, T) seen as blocks of r rows, each one row of r*T (~1024) elements: the
    (M // r, r*T) view, the remaining rows (M % r, T), and r."""
    m, t = rows.shape
    r = _ROW_BLOCK // t
    full = m - m % r
    return rows[:full].reshape(full // r, r * t), rows[full:], r


def _sum_rows(rows: np.ndarray) -> np.ndarray:
    """rows (M, T) summed over M. NumPy adds short rows one by one with a loop of only T elements;
    summing blocks of r rows as rows of r*T elements first makes its inner loop r times longer."""
    blocks, rest, r = _row_blocks(rows)
    total = blocks.sum(axis=0).reshape(r, rows.shape[1]).sum(axis=0)
    return total + rest.sum(axis=0) if len(rest) else total


def _add_row(y: np.ndarray, row: np.ndarray) -> None:
    """y += row in place, for a bias: y (M, T), row (T,) or anything else that broadcasts.
    As with :func:`_sum_rows`, NumPy would loop over one short row of y at a time; adding the row
    repeated to ~1024 elements to blocks of rows makes its loop that much longer."""
    if not (y.ndim == 2 and row.shape == y.shape[1:] and _many_short_rows(y, 1)):
        y += row
        return
    blocks, rest, r = _row_blocks(y)
    blocks += np.tile(row, r)
    rest += row


class Max(Function):
    """y = x.max(axis, keepdims).   dx = g at the first maximum (row-major over ``axis``), 0 elsewhere.

    Sending the whole gradient to one element, the first maximum, is PyTorch's convention for
    max-pooling; it keeps gradients exact when values tie (MNIST's flat background ties a lot).
    A NaN counts as the maximum, as in NumPy and PyTorch.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        reduced = tuple(x.shape[a] for a in axis)
        if 0 in reduced:
            raise ValueError(f"max: cannot reduce over zero-size axes {axis} of shape {x.shape}")
        count = int(np.prod(reduced))
        kept_shape = tuple(n for i, n in enumerate(x.shape) if i not in axis)
        ctx.x_shape, ctx.axis = x.shape, axis
        if count <= _UNROLL_MAX and x.size >= 4 * count:
            # Few elements per output (pooling windows): a running maximum over strided views of
            # x, with no copy of the windows. The backward finds the first maximum again.
            y = _running_max(x, axis)
            ctx.windows = (x, y)
        else:
            kept = [i for i in range(x.ndim) if i not in axis]
            flat = x.transpose(kept + list(axis)).reshape(kept_shape + (count,))
            first = flat.argmax(axis=-1)
            y = np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]
            ctx.first = first
        return y.reshape(_keepdims_shape(x.shape, axis)) if keepdims else y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        first_max = _first_max_masks(ctx)  # one boolean mask per reduced position
        if not is_grad_enabled():
            # Plain backward: write g where each mask holds, straight into the gradient array,
            # laid out in memory like x (for tiling pooling windows: like the image, so the
            # Fold that follows is a free reshape).
            x = ctx.windows[0] if hasattr(ctx, "windows") else None
            grad = np.empty(ctx.x_shape, dtype=g.dtype) if x is None else np.empty_like(x, dtype=g.dtype)
            g_kept = g.array.reshape(first_max[0][1].shape)
            for pos, hit in first_max:
                np.multiply(g_kept, hit, out=_select(grad, ctx.axis, pos))
            return Tensor(grad)
        mask = np.zeros(ctx.x_shape, dtype=g.dtype)  # create_graph: stay differentiable in g
        for pos, hit in first_max:
            _select(mask, ctx.axis, pos)[...] = hit
        g = g.reshape(_keepdims_shape(ctx.x_shape, ctx.axis))
        return Expand.apply(g, ctx.x_shape) * Tensor(mask)


_UNROLL_MAX = 64  # reductions over at most this many elements use Max's running-maximum path


def _running_max(x: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """x.max(axis) as np.maximum over views of x, one reduced axis at a time, the outermost in
    memory first. Pooling windows of conv2d's batch-inner (H, W, N, C) output: reducing over the
    window's rows first reads whole image rows of all images (runs of W*N*C elements); its
    columns, then, runs of N*C (of a channels-last image: W*C, then only C). Each step's result
    keeps x's memory order (``empty_like``), so the next step's views are as long."""
    y, dims = x, list(range(x.ndim))  # dims: which axis of x each axis of y is
    for a in (a for a in _memory_order(x) if a in axis):
        i = dims.index(a)
        views = [y[(slice(None),) * i + (k, Ellipsis)] for k in range(y.shape[i])]
        out = np.empty_like(views[0])
        if len(views) == 1:
            out[...] = views[0]
        else:
            np.maximum(views[0], views[1], out=out)
            for view in views[2:]:
                np.maximum(out, view, out=out)
        y = out
        dims.pop(i)
    return y


def _first_max_masks(ctx: Context) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(position, mask) for every reduced position: where that position holds the first maximum."""
    positions = list(np.ndindex(*(ctx.x_shape[a] for a in ctx.axis)))
    if not hasattr(ctx, "windows"):
        return [(pos, ctx.first == k) for k, pos in enumerate(positions)]
    x, y = ctx.windows
    has_nan = bool(np.isnan(y).any()) if y.dtype.kind == "f" else False
    masks = []
    taken = None  # where an earlier position already holds the maximum
    for k, pos in enumerate(positions):
        if k + 1 == len(positions) and taken is not None:
            # Every window holds its maximum (or its first NaN) somewhere: what no earlier
            # position took is the last one's, with no comparison.
            masks.append((pos, ~taken))
            break
        candidate = _select(x, ctx.axis, pos)
        hit = np.greater_equal(candidate, y)  # the maximum itself
        if has_nan:  # a NaN is the maximum (as np.maximum and argmax have it)
            hit |= np.isnan(candidate)
        if taken is None:
            taken = hit.copy(order="K")  # laid out like hit, so that the mask operations stay contiguous
        else:
            np.greater(hit, taken, out=hit)  # hit and not taken (booleans: True > False only)
            taken |= hit
        masks.append((pos, hit))
    return masks


def _select(x: np.ndarray, axis: tuple[int, ...], position: tuple[int, ...]) -> np.ndarray:
    """The view of x at ``position`` along the reduced ``axis`` (those axes removed)."""
    index: list[Any] = [slice(None)] * x.ndim
    for a, i in zip(axis, position):
        index[a] = i
    return x[(*index, Ellipsis)]  # the Ellipsis keeps a 0-d result a view, not a scalar


def _keepdims_shape(shape: Shape, axis: tuple[int, ...]) -> Shape:
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


# --------------------------------------------------------------------------- shape


class Reshape(Function):
    """y = x.reshape(shape).   dx = g.reshape(x.shape).

    When x's memory order differs from its axis order (conv2d's outputs are laid out batch-inner),
    the reshape is a copy: it is made in cache-sized slabs, and the plain backward lays dx out in
    memory like x, so that the backward rules before it see g in the layout of their own arrays.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: Shape) -> np.ndarray:
        ctx.shape = x.shape
        y = _reshaped_view(x, shape)
        if y is not None:
            return y
        ctx.memory_order = _memory_order(x)
        return _copy_in_slabs(x, np.empty(x.shape, dtype=x.dtype)).reshape(shape)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        order = getattr(ctx, "memory_order", None)
        if order is None or is_grad_enabled():
            return Reshape.apply(g, ctx.shape)
        laid_out_like_x = np.empty([ctx.shape[a] for a in order], dtype=g.dtype).transpose(np.argsort(order))
        return Tensor(_copy_in_slabs(g.array.reshape(ctx.shape), laid_out_like_x))


def _reshaped_view(x: np.ndarray, shape: Shape) -> np.ndarray | None:
    """x seen with ``shape`` without a copy, or None where NumPy's reshape would copy.

    NumPy's own test (C order): leaving out axes of length 1, the old axes fall into consecutive
    groups whose sizes multiply to the new axes' sizes, and within a group each axis steps over
    exactly the next one (stride = next stride * next length)."""
    if x.flags.c_contiguous or x.size == 0:
        return x.reshape(shape)
    known = int(np.prod([n for n in shape if n != -1]))
    new = [x.size // known if n == -1 else n for n in shape if n != 1]
    if int(np.prod(new)) != x.size:
        return x.reshape(shape)  # NumPy's error for a shape that does not fit
    old = [(n, stride) for n, stride in zip(x.shape, x.strides) if n != 1]
    i = j = 0
    while i < len(old) and j < len(new):
        i_end, j_end, old_size, new_size = i + 1, j + 1, old[i][0], new[j]
        while old_size != new_size:
            if old_size < new_size:
                old_size *= old[i_end][0]
                i_end += 1
            else:
                new_size *= new[j_end]
                j_end += 1
        if any(old[k][1] != old[k + 1][1] * old[k + 1][0] for k in range(i, i_end - 1)):
            return None
        i, j = i_end, j_end
    return x.reshape(shape)


def _memory_order(x: np.ndarray) -> list[int]:
    """x's axes from the outermost in memory to the innermost (by stride; ties keep axis order)."""
    return sorted(range(x.ndim), key=lambda a: -abs(x.strides[a]))


_SLAB_BYTES = 256 << 10  # how much of the source a layout-changing copy reads at a time


def _copy_in_slabs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """dst[...] = src, for arrays of one shape laid out differently in memory (a transpose);
    returns dst. Copied a slab of src's outermost memory axis at a time: one ``np.copyto``
    walks dst in its own order and, across layouts, reads src one element per cache line, so
    that src falls out of the cache before the rest of each line is used; a slab stays in it."""
    if src.ndim == 0 or src.size == 0:
        dst[...] = src
        return dst
    axis = _memory_order(src)[0]
    step = max(1, _SLAB_BYTES * src.shape[axis] // max(1, src.nbytes))
    index: list[Any] = [slice(None)] * src.ndim
    for start in range(0, src.shape[axis], step):
        index[axis] = slice(start, start + step)
        np.copyto(dst[tuple(index)], src[tuple(index)])
    return dst


class Permute(Function):
    """y = x.transpose(axes).   dx = g.transpose(argsort(axes))."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        ctx.inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))  # argsort(axes)
        return x.transpose(axes)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Permute.apply(g, ctx.inverse)


class Expand(Function):
    """y = broadcast_to(x, shape).   dx = g summed back to x's shape."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: Shape) -> np.ndarray:
        ctx.shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return sum_to(g, ctx.shape)


class GetItem(Function):
    """y = x[index].   dx = zeros like x with g added at ``index`` (see :class:`IndexAdd`)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, index: Any) -> np.ndarray:
        ctx.shape, ctx.index = x.shape, index
        return np.asarray(x[index])

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return IndexAdd.apply(g, ctx.shape, ctx.index)


class IndexAdd(Function):
    """y = zeros(shape); y[index] += g (repeated indices add up).   dg = dy[index].

    The adjoint of :class:`GetItem`, so gradients of indexing can be differentiated again.
    """

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, shape: Shape, index: Any) -> np.ndarray:
        ctx.index = index
        out = np.zeros(shape, dtype=g.dtype)
        if _is_basic_index(index):
            out[index] = g  # basic indexing never selects an element twice
        else:
            np.add.at(out, index, g)
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return GetItem.apply(g, ctx.index)


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


class Pad(Function):
    """y = x padded with a constant.   dx = g with the padding cropped off."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, pad_width: tuple[tuple[int, int], ...], value: float) -> np.ndarray:
        ctx.crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, x.shape))
        return np.pad(x, pad_width, constant_values=value)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return GetItem.apply(g, ctx.crop)


class Concatenate(Function):
    """y = concatenate(xs, axis).   dx_i = the slice of g that x_i occupies."""

    @staticmethod
    def forward(ctx: Context, axis: int, *xs: np.ndarray) -> np.ndarray:
        ctx.axis = axis
        ctx.bounds = np.cumsum([0] + [x.shape[axis] for x in xs])
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Tensor | None, ...]:
        lead = (slice(None),) * ctx.axis
        b = ctx.bounds
        return (None,) + tuple(
            GetItem.apply(g, lead + (slice(int(b[i]), int(b[i + 1])),)) if need else None
            for i, need in enumerate(ctx.needs_input_grad[1:])
        )


# --------------------------------------------------------------------------- linear algebra


class MatMul(Function):
    """y = a @ b for a, b with ndim >= 2 (batch dims broadcast).   da = g @ b^T,  db = a^T @ g."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Any, Any]:
        need_a, need_b = ctx.needs_input_grad
        (a, b), g = _operands(ctx, g)
        ga = sum_to(g @ b.swapaxes(-1, -2), a.shape) if need_a else None
        gb = sum_to(a.swapaxes(-1, -2) @ g, b.shape) if need_b else None
        return ga, gb


class MatMulAdd(Function):
    """y = a @ b + c for 2-D a, b and a c that broadcasts to y's shape (a bias row).
    da = g @ b^T,  db = a^T @ g,  dc = g summed back to c's shape.

    MatMul then Add, with the bias added into the GEMM's fresh output in place: one pass fewer
    over y than two primitives (a layer's output is the largest array of its forward pass).
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        ctx.c_shape = c.shape
        y = a @ b
        _add_row(y, c)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Any, Any, Any]:
        need_a, need_b, need_c = ctx.needs_input_grad
        (a, b), g = _operands(ctx, g)
        return (
            g @ b.swapaxes(-1, -2) if need_a else None,
            a.swapaxes(-1, -2) @ g if need_b else None,
            sum_to(g, ctx.c_shape) if need_c else None,
        )


class WindowMatMul(Function):
    """The core of conv2d: the sliding windows of an image times a weight (a tensordot over the
    window axes).

    x (N, C, H, W), w (kh, kw, C, C_out), b (C_out,) or None, stride, dilation -> y (N, OH, OW, C_out),
    y[n,i,j,o] = sum over p,q,c of x[n, c, i*sh + p*dh, j*sw + q*dw] * w[p,q,c,o] + b[o]: the windows
    are :class:`Unfold`'s. Forward: the windows copied once into the im2col matrix
    (OH*OW*N, kh*kw*C), one GEMM, the bias added into its output in place.
    dx = Fold(g (x) w^T): one small GEMM per kernel offset, each added onto the image while it is
    still in the cache.   dw = im2col^T @ g.   db = g summed over (N, OH, OW).

    Memory layout: the im2col rows, and so y's memory, run batch-inner, (OH, OW, N, C_out): one
    pixel of every image, then the next pixel. Any window of such an image (a pooling window, a
    kernel offset) is then a block of N*C contiguous values, so the ops after it (pooling, its
    backward, the fold of dx) read long runs instead of runs of C. y is returned as a view with
    the shape (N, OH, OW, C_out); nothing outside the primitives sees the layout.
    """

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Shape, dilation: Shape
    ) -> np.ndarray:
        kh, kw, c, c_out = w.shape
        oh, ow = _out_hw(x.shape[2:], (kh, kw), stride, dilation)
        cols = _im2col(x, (kh, kw), stride, dilation)
        ctx.save_for_backward(x, w)
        ctx.cols = cols  # the plain backward's weight gradient reads it instead of copying again
        ctx.args = (x.shape, (kh, kw), stride, dilation)
        y = cols @ w.reshape(kh * kw * c, c_out)
        if b is not None:
            _add_row(y, b)
        return y.reshape(oh, ow, len(x), c_out).transpose(2, 0, 1, 3)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Any, Any, Any]:
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        (x, w), g = _operands(ctx, g)
        n, oh, ow, c_out = g.shape
        kh, kw, c = w.shape[:3]
        rows = oh * ow * n
        g_rows = _permuted(g, (1, 2, 0, 3)).reshape(rows, c_out)  # batch-inner, like the im2col rows
        gx = gw = gb = None
        if need_x:
            per_offset = _permuted(w.reshape(kh * kw, c, c_out), (0, 2, 1))  # (kh*kw, C_out, C)
            if isinstance(g, Tensor):  # recorded: the same product and fold, as differentiable ops
                gx = (g_rows.reshape(1, rows, c_out) @ per_offset).reshape(kh, kw, oh, ow, n, c)
                gx = Fold.apply(gx.permute(4, 2, 3, 0, 1, 5), *ctx.args)
            else:
                gx = _fold_products(g_rows, per_offset, *ctx.args)
        if need_w:
            # Plain: the forward's im2col copy. Recorded: the im2col matrix as a function of x,
            # so that dw stays differentiable.
            cols = (
                ctx.cols
                if not isinstance(x, Tensor)
                else Unfold.apply(x, *ctx.args[1:]).permute(1, 2, 0, 3, 4, 5).reshape(rows, kh * kw * c)
            )
            gw = (cols.swapaxes(0, 1) @ g_rows).reshape(kh, kw, c, c_out)
        if need_b:
            gb = sum_to(g_rows, (c_out,))
        return gx, gw, gb


def _fold_products(
    g_rows: np.ndarray, per_offset: np.ndarray, x_shape: Shape, kernel: Shape, stride: Shape, dilation: Shape
) -> np.ndarray:
    """Fold(g (x) w^T) without the window gradient in memory: g_rows (OH*OW*N, C_out), batch-inner,
    times each kernel offset's (C_out, C) block, added onto the image at once, a batch-inner
    (H, W, N, C) array: each slice-add reads and writes runs of N*C values. A few images at a time
    when the whole batch is large, so that the product block and the image it lands on stay in
    the cache (materialising all kh*kw blocks first and folding them afterwards streams kh*kw
    times the image through memory)."""
    n, c, h, w = x_shape
    oh, ow = _out_hw((h, w), kernel, stride, dilation)
    g_pixels = g_rows.reshape(oh * ow, n, g_rows.shape[1])  # (OH*OW, N, C_out)
    out = np.zeros((h, w, n, c), dtype=np.result_type(g_rows, per_offset))
    for images in _image_blocks(n, oh * ow * c * out.itemsize, _FOLD_BLOCK_BYTES // 2):
        count = images.stop - images.start
        g_part = g_rows if count == n else g_pixels[:, images].reshape(-1, g_rows.shape[1])
        block = np.empty((oh * ow * count, c), dtype=out.dtype)
        block_pixels = block.reshape(oh, ow, count, c).transpose(2, 0, 1, 3)  # (N', OH, OW, C) view
        image = out[:, :, images].transpose(2, 0, 1, 3)  # (N', H, W, C) view
        for view, w_offset in zip(_offset_views(image, kernel, stride, dilation), per_offset):
            np.matmul(g_part, w_offset, out=block)
            view += block_pixels
    return out.transpose(2, 3, 0, 1)


def _image_blocks(n: int, bytes_per_image: int, budget: int) -> Iterator[slice]:
    """Consecutive slices of a batch of n images, as many images each as fit in ``budget`` bytes
    of per-image work (at least one)."""
    step = max(1, budget // max(1, bytes_per_image))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def _im2col(x: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape) -> np.ndarray:
    """The (OH*OW*N, kh*kw*C) im2col matrix of x (N, C, H, W): conv2d's one copy. Rows run
    batch-inner (OH, OW, N); columns (kh, kw, C).

    Row-major, the copy reads each window's channels, a contiguous run of C (times kw when the
    image is channels-last). With few channels that run is short, and the copy is several times
    faster column-major, from the image laid out batch-inner (C, H, W, N) (a copy of the image
    first, unless it is laid out so already, as conv2d's outputs are when C is 1): that reads
    runs along the image's rows of all N images. The GEMM takes either memory order.
    """
    n, c = x.shape[:2]
    windows = _windows(x, kernel, stride, dilation).transpose(1, 2, 0, 3, 4, 5)  # (OH, OW, N, kh, kw, C)
    oh, ow, _, kh, kw, _ = windows.shape
    if _contiguous_run(windows) * x.itemsize >= _LONG_RUN_BYTES:
        return windows.reshape(oh * ow * n, kh * kw * c)
    batch_inner = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)  # (N, C, H, W) view
    kernel_major = _windows(batch_inner, kernel, stride, dilation).transpose(3, 4, 5, 1, 2, 0)
    return kernel_major.reshape(kh * kw * c, oh * ow * n).T


def _contiguous_run(x: np.ndarray) -> int:
    """How many elements a row-major read of x takes in one contiguous run."""
    run = 1
    for size, stride in zip(reversed(x.shape), reversed(x.strides)):
        if size == 1:
            continue
        if stride != run * x.itemsize:
            break
        run *= size
    return run


# --------------------------------------------------------------------------- sliding windows


class Unfold(Function):
    """Sliding windows ("im2col") of an NCHW image, windows first and channels last.

    x: (N, C, H, W) -> y: (N, OH, OW, kh, kw, C) with
    y[n, i, j, p, q, c] = x[n, c, i*sh + p*dh, j*sw + q*dw], OH = (H - dh*(kh-1) - 1) // sh + 1.
    The forward is a strided view (no copy). Channels come last so that, when x is stored with
    channels innermost in memory (as conv2d's outputs are), copying the windows reads contiguous runs.
    dx = :class:`Fold` of g (the adjoint: every window adds its gradient back onto the pixels it read).
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape) -> np.ndarray:
        ctx.args = (x.shape, kernel, stride, dilation)
        return _windows(x, kernel, stride, dilation)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Fold.apply(g, *ctx.args)


def _windows(x: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape) -> np.ndarray:
    """The read-only (N, OH, OW, kh, kw, C) view of the sliding windows of x (N, C, H, W)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, c, h, w = x.shape
    oh, ow = _out_hw((h, w), kernel, stride, dilation)
    s_n, s_c, s_h, s_w = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, oh, ow, kh, kw, c), (s_n, sh * s_h, sw * s_w, dh * s_h, dw * s_w, s_c), writeable=False
    )


def _out_hw(hw: Shape, kernel: Shape, stride: Shape, dilation: Shape) -> tuple[int, int]:
    """(OH, OW): how many windows fit along the height and the width."""
    return tuple((size - d * (k - 1) - 1) // s + 1 for size, k, s, d in zip(hw, kernel, stride, dilation))


def _offset_views(image: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape) -> Iterator[np.ndarray]:
    """For each kernel offset (p, q), row-major, the view (N, OH, OW, C) of an image indexed
    (N, H, W, C) (laid out in memory in any order) holding the pixels every window's (p, q) element reads."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = _out_hw(image.shape[1:3], kernel, stride, dilation)
    for p in range(kh):
        for q in range(kw):
            yield image[:, p * dh : p * dh + sh * (oh - 1) + 1 : sh, q * dw : q * dw + sw * (ow - 1) + 1 : sw, :]


class Fold(Function):
    """The adjoint of :class:`Unfold`: g (N, OH, OW, kh, kw, C) -> (N, C, H, W), overlaps summed.

    One strided slice-add per kernel offset (kh*kw of them), no per-pixel loop and no np.add.at.
    """

    @staticmethod
    def forward(
        ctx: Context, g: np.ndarray, x_shape: Shape, kernel: Shape, stride: Shape, dilation: Shape
    ) -> np.ndarray:
        ctx.args = (kernel, stride, dilation)
        n, c, h, w = x_shape
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        oh, ow = g.shape[1], g.shape[2]
        if (sh, sw) == (kh, kw) and (dh, dw) == (1, 1):
            # Windows that tile the image without overlap (pooling): a single rearranging copy.
            tiles = g.transpose(0, 1, 3, 2, 4, 5).reshape(n, oh * kh, ow * kw, c)
            if (oh * kh, ow * kw) != (h, w):  # rows and columns no window reached get 0
                tiles = np.pad(tiles, ((0, 0), (0, h - oh * kh), (0, w - ow * kw), (0, 0)))
            return tiles.transpose(0, 3, 1, 2)
        out = np.zeros((n, h, w, c), dtype=g.dtype)  # channels-last, like the windows
        # Each slice-add below reads one kernel offset of g. Unless g is laid out offset-major
        # already, that is runs of only C elements; copying a few
        # images' windows at a time offset-major first (a block that stays in cache) makes every
        # slice-add read one contiguous block instead.
        rearrange = c * g.itemsize < _LONG_RUN_BYTES and not g.transpose(3, 4, 0, 1, 2, 5).flags.c_contiguous
        for images in _image_blocks(n, g[:1].nbytes, _FOLD_BLOCK_BYTES) if rearrange else [slice(0, n)]:
            part = g[images].transpose(3, 4, 0, 1, 2, 5)  # (kh, kw, n', OH, OW, C)
            part = np.ascontiguousarray(part) if rearrange else part
            offsets = (part[p, q] for p in range(kh) for q in range(kw))
            for view, offset_grad in zip(_offset_views(out[images], kernel, stride, dilation), offsets):
                view += offset_grad
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Tensor:
        return Unfold.apply(g, *ctx.args)


_LONG_RUN_BYTES = 256  # contiguous runs at least this long copy and add at close to full speed
_FOLD_BLOCK_BYTES = 2 << 20  # window gradients Fold rearranges at a time: well inside a core's L2


def einsum_subscripts(equation: str, ndims: list[int]) -> str:
    """``equation`` in explicit form (``"ij,jk->ik"``), with ``...`` spelled out as letters, after
    checks: one term per operand, each as long as its operand's ndim, no index twice in a term."""
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"{len(terms)} terms for {len(ndims)} operands")
    used = set(equation) - set(",->.")
    if not all(c.isalpha() for c in used):
        raise ValueError("subscripts must be letters")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    ell = max((n - len(t.replace("...", "")) for t, n in zip(terms, ndims) if "..." in t), default=0)
    fill = "".join(spare[:ell])
    expanded = []
    for t, n in zip(terms, ndims):
        if "..." in t:
            t = t.replace("...", fill[ell - (n - len(t.replace("...", ""))) :])
        if len(t) != n:
            raise ValueError(f"term {t!r} has {len(t)} subscripts for an operand with {n} dimensions")
        if len(set(t)) != len(t):
            raise ValueError(f"an index repeated within one operand ({t!r}, a diagonal) is not supported")
        expanded.append(t)
    if arrow:
        out = output.replace("...", fill)
    else:  # implicit output: the indices seen once, in alphabetical order
        counts = "".join(expanded)
        out = fill + "".join(sorted(c for c in set(counts) if counts.count(c) == 1 and c not in fill))
    return ",".join(expanded) + "->" + out


class Einsum(Function):
    """y = einsum("a,b,...->out", x0, x1, ...).   dx_i = einsum("out,<others>->x_i's indices", g, others),
    broadcast along the indices that only x_i has."""

    @staticmethod
    def forward(ctx: Context, equation: str, *xs: np.ndarray) -> np.ndarray:
        ctx.equation = equation
        ctx.save_for_backward(*xs)
        return np.asarray(np.einsum(equation, *xs, optimize=len(xs) > 2))

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple[Any, ...]:
        xs = ctx.saved_tensors
        terms, out = ctx.equation.split("->")
        terms_list = terms.split(",")
        grads: list[Any] = [None]
        for i, need in enumerate(ctx.needs_input_grad[1:]):
            if not need:
                grads.append(None)
                continue
            others = [(t, x) for j, (t, x) in enumerate(zip(terms_list, xs)) if j != i]
            known = set(out) | set("".join(t for t, _ in others))
            mine = terms_list[i]
            kept = "".join(c for c in mine if c in known)
            eq = ",".join([out] + [t for t, _ in others]) + "->" + kept
            gi = Einsum.apply(eq, g, *(x for _, x in others))
            if kept != mine:  # indices only x_i has: its gradient is the same along them
                shape = tuple(xs[i].shape[mine.index(c)] if c in kept else 1 for c in mine)
                gi = Expand.apply(gi.reshape(shape), xs[i].shape)
            grads.append(gi)
        return tuple(grads)


# --------------------------------------------------------------------------- softmax


class LogSoftmax(Function):
    """y = x - logsumexp(x, axis).   dx = g - exp(y) * sum(g, axis).

    Stable for large logits: the maximum is subtracted before exponentiating.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int) -> np.ndarray:
        ctx.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> Any:
        (y,), g = _operands(ctx, g)
        exp_y = y.exp() if isinstance(y, Tensor) else np.exp(y)
        return g - exp_y * g.sum(axis=ctx.axis, keepdims=True)
