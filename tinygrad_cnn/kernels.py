"""The NumPy kernels behind the hot primitives: where the speed lives, apart from the rules.

:mod:`tinygrad_cnn.primitives` states each derivative rule in a few lines; when a rule's plain
formula would be slow in NumPy (short inner loops, copies across memory layouts, a window
gradient kh*kw times the image), it calls one of the functions here instead. Every function
computes exactly what its docstring's formula says (up to rounding); only the memory traffic
differs. docs/performance.md explains the design and its measurements.

Layout: conv2d's outputs are laid out batch-inner, (OH, OW, N, C) in memory (see :func:`im2col_blocks`),
so that a pooling window or a kernel offset of all images is one run of N*C values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, cast

import numpy as np

from . import intraop, winograd, winograd5

Shape = tuple[int, ...]
Axes = tuple[int, ...]

ROW_BLOCK = 1024  # elements summed side by side when adding up many short rows
SHORT_SUM_TERMS = 16  # a sum of at most this many terms per output is done as slices added
SHORT_SUM_MIN = 1024  # when there are at least this many outputs
ROW_SUM_MIN = 8  # trailing axes of at least this many terms per output are summed by a GEMM with ones
BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
ROW_TILE = 8192  # a short row broadcast in a binary op or a bias add is repeated to this many elements
LONG_ROW_MIN = 1 << 17  # elements of a binary op's result from which repeating its short row pays
UNROLL_MAX = 64  # max over at most this many elements per output takes the running-maximum path
LONG_RUN_BYTES = 256  # contiguous runs at least this long copy and add at close to full speed
FORWARD_RUN_BYTES = 128  # conv2d's forward copies its im2col matrix row-major from runs this long (see Im2col)
FOLD_BLOCK_BYTES = 2 << 20  # window gradients folded at a time: well inside a core's L2
IM2COL_BLOCK_BYTES = 2 << 20  # how much of the im2col matrix is copied and multiplied at a time
SLAB_BYTES = 256 << 10  # how much of the source a layout-changing copy reads at a time
TASK_BYTES = 512 << 10  # the least work (bytes written) worth handing to another thread
MIN_BLOCKS = 4  # work of several tasks is cut into this many, so that threads can share it out
PARTIAL_SUMS_BYTES = 32 << 20  # memory for the partial sums of a weight gradient's groups of blocks
MATMUL_ROWS = 256  # a GEMM is split into ranges of at least this many rows or columns (see matmul)
MATMUL_PIECE = 1 << 24  # and of at least this many multiply-adds each
POINTWISE_MIN_PIXELS = 32  # a pointwise conv multiplies NCHW images' (C, H*W) matrices from this many pixels each


def keepdims_shape(shape: Shape, axis: Axes) -> Shape:
    """``shape`` with the reduced ``axis`` kept as length 1."""
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def broadcast_axes(g_shape: Shape, shape: Shape) -> Axes:
    """The axes of a gradient of ``g_shape`` to sum to undo broadcasting ``shape`` to it."""
    lead = len(g_shape) - len(shape)
    return tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g_shape[i + lead] != 1)


def sum_to(g: np.ndarray, shape: Shape) -> np.ndarray:
    """g summed back to ``shape`` (the adjoint of broadcasting ``shape`` to g's shape)."""
    if g.shape == shape:
        return g
    axes = broadcast_axes(g.shape, shape)
    return (sum_axes(g, axes, False) if axes else g).reshape(shape)


# --------------------------------------------------------------------------- sums and bias adds


def sum_axes(x: np.ndarray, axis: Axes, keepdims: bool) -> np.ndarray:
    """x.sum(axis, keepdims), in x's memory order: many short rows (a bias gradient) are summed in
    blocks, an axis along which x repeats itself (stride 0: a broadcast gradient) is a product by
    its length, and a few short axes (a nearest upsampling's repeats) are summed as slices of x
    added together. Sums along the innermost axes in memory (a layer norm's, a softmax's, a mean
    over an NCHW image's pixels) are a product with a vector of ones: BLAS's dot products ran 2-4x
    faster than NumPy's reduction over rows of 256 to 1M float32 values, 14x over rows of 32, as
    accurate (about 1e-7 relative either way)."""
    if x.size < SHORT_SUM_MIN:  # small: none of the paths below pays for its checks
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))
    kept = tuple(n for i, n in enumerate(x.shape) if i not in axis)
    repeated = [i for i in axis if x.strides[i] == 0 and x.shape[i] > 1]
    if repeated:
        once = x[tuple(slice(0, 1) if i in repeated else slice(None) for i in range(x.ndim))]
        total = sum_axes(once, axis, True) * math.prod(x.shape[i] for i in repeated)
        return total if keepdims else total.reshape(kept)
    if not x.flags.c_contiguous:
        order = memory_order(x)
        flat = x.transpose(order)
        if flat.flags.c_contiguous:  # reduce the axes where they lie in memory (a batch-inner conv output's)
            total = sum_axes(flat, tuple(sorted(order.index(i) for i in axis)), True).transpose(inverse(order))
            return total if keepdims else total.reshape(kept)
    axis = tuple(sorted(axis))
    split = _split_sum(axis, x.ndim) if x.flags.c_contiguous else None
    if split is not None:  # the innermost (or outermost) reduced axes first, by the paths below, then the others
        total = sum_axes(sum_axes(x, split[0], True), split[1], True)
        return total if keepdims else total.reshape(kept)
    terms = math.prod(x.shape[i] for i in axis)
    if terms >= ROW_SUM_MIN and x.dtype in BLAS_FLOATS and x.flags.c_contiguous and axis[0] == x.ndim - len(axis):
        rows, ones = x.reshape(-1, terms), _ones(terms, x.dtype)  # one dot product per row: BLAS's loop
        total = matmul(rows, ones) if x.size >= MATMUL_PIECE else np.matmul(rows, ones)
        return total.reshape(keepdims_shape(x.shape, axis) if keepdims else kept)
    if x.dtype.kind == "f" and 2 <= terms <= SHORT_SUM_TERMS and x.size >= terms * SHORT_SUM_MIN:
        total = _sum_of_slices(x, axis)
        return total if keepdims else total.reshape(kept)
    lead = len(axis)
    if axis == tuple(range(lead)) and many_short_rows(x, lead):
        y = _sum_rows(x.reshape(-1, math.prod(x.shape[lead:])))
        return y.reshape(keepdims_shape(x.shape, axis) if keepdims else x.shape[lead:])
    return np.asarray(x.sum(axis=axis, keepdims=keepdims))


_ones_columns: dict[tuple[int, np.dtype], np.ndarray] = {}


def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only (n, 1) column of ones (kept: sums along the same axes come again every step)."""
    column = _ones_columns.get((n, dtype))
    if column is None:
        if len(_ones_columns) > 256:
            _ones_columns.clear()
        column = _ones_columns[n, dtype] = np.ones((n, 1), dtype)
        column.flags.writeable = False
    return column


def _split_sum(axis: Axes, ndim: int) -> tuple[Axes, Axes] | None:
    """Sorted reduced axes of a C-contiguous array that are neither all innermost nor all outermost
    but include either end, as (those at the end, the others): (0, 1, 4) of 5 axes (a group norm of
    a batch-inner conv output, seen as (H, W, N, G, C/G)) as ((4,), (0, 1)). NumPy's own loop over
    such a mix is slow; each end has a fast path."""
    inner = 0
    while inner < len(axis) and axis[len(axis) - 1 - inner] == ndim - 1 - inner:
        inner += 1
    if 0 < inner < len(axis):
        return axis[len(axis) - inner :], axis[: len(axis) - inner]
    outer = 0
    while outer < len(axis) and axis[outer] == outer:
        outer += 1
    if 0 < outer < len(axis):
        return axis[:outer], axis[outer:]
    return None


def _sum_of_slices(x: np.ndarray, axis: Axes) -> np.ndarray:
    """x summed over ``axis`` (kept as length 1) as its slices at each position along them added
    one after another. NumPy reduces a short axis one output element at a time: summing the 2
    repeats of a (64, 32, 32, 16, 2) gradient took 15 ms, adding its two slices 0.36 ms."""
    positions = [
        tuple(slice(p[axis.index(i)], p[axis.index(i)] + 1) if i in axis else slice(None) for i in range(x.ndim))
        for p in np.ndindex(*(x.shape[i] for i in axis))
    ]
    total = np.add(x[positions[0]], x[positions[1]])
    for index in positions[2:]:
        total += x[index]
    return total


def many_short_rows(x: np.ndarray, lead: int) -> bool:
    """True when NumPy would loop over x one short row (the axes after ``lead``) at a time, as when
    summing a bias gradient or adding a bias: worth blocking rows together."""
    width = math.prod(x.shape[lead:])
    return x.dtype.kind == "f" and x.flags.c_contiguous and 0 < width <= ROW_BLOCK // 4 and x.size >= 4 * ROW_BLOCK


def _row_blocks(rows: np.ndarray, width: int = ROW_BLOCK) -> tuple[np.ndarray, np.ndarray, int]:
    """A C-contiguous (M, T) seen as blocks of r rows, each one row of r*T (~``width``) elements:
    the (M // r, r*T) view, the remaining rows (M % r, T), and r."""
    m, t = rows.shape
    r = max(1, min(width // t, m))
    full = m - m % r
    return rows[:full].reshape(full // r, r * t), rows[full:], r


def _sum_rows(rows: np.ndarray) -> np.ndarray:
    """rows (M, T) summed over M. NumPy adds short rows one by one with a loop of only T elements;
    summing blocks of r rows as rows of r*T elements first makes its inner loop r times longer."""
    blocks, rest, r = _row_blocks(rows)
    total = _pairwise_sum(blocks).reshape(r, rows.shape[1]).sum(axis=0)
    return total + rest.sum(axis=0) if len(rest) else total


def _pairwise_sum(rows: np.ndarray) -> np.ndarray:
    """rows (R, W) summed over R by halves (the first half plus the second, again and again):
    rounding errors grow with log R, not with R as when NumPy adds row after row down axis 0
    (whose drift, in a batch norm's statistics, moved a training run off PyTorch's)."""
    while len(rows) > 8:
        half = len(rows) // 2
        total = rows[:half] + rows[half : 2 * half]
        if len(rows) % 2:
            total[0] += rows[-1]
        rows = total
    return rows.sum(axis=0)


def add_row(y: np.ndarray, row: np.ndarray) -> None:
    """y += row in place, for a bias: y (M, T), row (T,) or anything else that broadcasts.
    As with sums, NumPy would loop over one short row of y at a time; adding the row repeated to
    ~8192 elements to blocks of rows makes its loop that much longer (NumPy's binary loops over
    rows shorter than that ran 1.5-2x slower than over one long run here)."""
    if not (y.ndim == 2 and row.shape == y.shape[1:] and many_short_rows(y, 1)):
        y += row
        return
    blocks, rest, r = _row_blocks(y, ROW_TILE)
    blocks += np.tile(row, r)
    rest += row


# --------------------------------------------------------------------------- standardisation


AFFINE_FOLD = 8  # the affine map folds into one scale and shift when they have at most 1/8 of x's elements


def standardize(
    x: np.ndarray, axes: Axes, eps: float, weight: np.ndarray | None = None, bias: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """y = (x - mean) / sqrt(var + eps) * weight + bias over ``axes`` (biased variance; weight and
    bias optional, of x's ndim, broadcasting); returns y, x standardised (None where it was not made:
    see below), and the mean and variance (x's shape with ``axes`` kept as 1).

    The statistics take four passes over x's size, each on the fast paths of :func:`sum_axes` and
    :func:`binary` (which work in x's memory order: a batch-inner conv output's reduced axes lead
    there, many short rows). Where weight and bias are constant along most of x (a batch norm's
    per channel, a group norm's per sample and channel), the affine map folds into one scale
    s = weight / sqrt(var + eps) and shift bias - mean * s, of that small shape, and y = x * s +
    shift takes two passes instead of four, without x standardised ever made (as PyTorch's CPU
    kernels compute it). Otherwise (a layer norm's weight varies along every reduced axis) it is
    made, and kept for the gradient."""
    count = x.dtype.type(math.prod(x.shape[i] for i in axes))
    mean = sum_axes(x, axes, True) / count
    centred = binary(np.subtract, x, mean)
    var = sum_axes(elementwise(np.square, centred), axes, True) / count
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    if folds(x.shape, mean.shape, weight, bias):
        scale = inv_std if weight is None else inv_std * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        return binary(np.add, binary(np.multiply, x, scale), shift), None, mean, var
    standardized = binary(np.multiply, centred, inv_std)
    y = standardized if weight is None else binary(np.multiply, standardized, weight)
    return (y if bias is None else binary(np.add, y, bias)), standardized, mean, var


def folds(x_shape: Shape, stats_shape: Shape, weight: np.ndarray | None, bias: np.ndarray | None) -> bool:
    """Whether :func:`standardize` folds the affine map (weight and/or bias) into one small scale and shift."""
    affine = weight if weight is not None else bias
    if affine is None:
        return False
    folded = math.prod(max(a, b) for a, b in zip(stats_shape, affine.shape))
    return folded * AFFINE_FOLD <= math.prod(x_shape)


def standardize_grads(
    g: np.ndarray,
    x: np.ndarray,
    standardized: np.ndarray | None,
    weight: np.ndarray | None,
    affine_shape: Shape | None,
    mean: np.ndarray,
    var: np.ndarray,
    axes: Axes,
    eps: float,
    needs: Sequence[bool],
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The gradients (dx, dweight, dbias) of :func:`standardize` (None where ``needs`` says not
    needed); ``standardized`` is what it returned (None: the affine map was folded), ``affine_shape``
    the shape of its weight and bias (None without either). With x̂ standardised, s = 1 / sqrt(var +
    eps), n values per mean and ĝ = g * weight:
    dx = s * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂)) (the means over ``axes``), dweight = g * x̂ and
    dbias = g, each summed over the axes where the weight has length 1.

    Folded, no x̂ is made: g and g * x are first summed over the reduced axes along which the
    weight is constant (s1 and s2, small; sum(g * x̂) there is s * (s2 - mean * s1)), the means
    follow from those, and dx = g * (weight * s) + x * b + c, with b and c of the statistics' shape,
    takes four passes over x's size."""
    need_x, need_w, need_b = needs
    n = x.dtype.type(math.prod(x.shape[i] for i in axes))
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    gw = None
    kept = () if affine_shape is None else tuple(i for i, k in enumerate(affine_shape) if k == 1)
    if standardized is None:
        assert affine_shape is not None
        constant = tuple(i for i in axes if affine_shape[i] == 1)
        varying = tuple(i for i in axes if affine_shape[i] != 1)
        s1 = sum_axes(g, constant, True)
        s2 = sum_axes(binary(np.multiply, g, x), constant, True)
        sum_gx = (s2 - mean * s1) * inv_std  # sum of g * x̂ over the constant axes
        gw = np.sum(sum_gx, axis=kept, keepdims=True) if need_w else None
        gb = np.sum(s1, axis=kept, keepdims=True) if need_b else None
        if not need_x:
            return None, gw, gb
        w = weight if weight is not None else x.dtype.type(1)
        mean_g = np.sum(w * s1, axis=varying, keepdims=True) / n
        mean_gx = np.sum(w * sum_gx, axis=varying, keepdims=True) / n
        b = -inv_std * inv_std * mean_gx
        c = -inv_std * mean_g - mean * b
        gx = binary(np.multiply, g, w * inv_std)
        gx += binary(np.add, binary(np.multiply, x, b), c)
        return gx, gw, gb
    if need_w:
        gw = binary(np.multiply, g, standardized)
        gw = sum_axes(gw, kept, True) if kept else gw
    gb = (sum_axes(g, kept, True) if kept else g) if need_b else None
    if not need_x:
        return None, gw, gb
    g_hat = g if weight is None else binary(np.multiply, g, weight)
    mean_g = sum_axes(g_hat, axes, True) / n
    mean_gx = sum_axes(binary(np.multiply, g_hat, standardized), axes, True) / n
    gx = binary(np.subtract, g_hat, mean_g)
    gx -= binary(np.multiply, standardized, mean_gx)
    return binary(np.multiply, gx, inv_std), gw, gb


# --------------------------------------------------------------------------- special functions

_exact_erf = np.frompyfunc(math.erf, 1, 1)


# erf(x) / x as a rational function of u = x**2 on |x| <= 4: numerator then denominator
# coefficients, lowest degree first, fitted to math.erf (40,000 points, Sanathanan-Koerner
# iterations for relative error): relative error below 5e-9, within 0.54 ulp of float32 once rounded
_ERF_NUMERATOR = (
    1.1283791693847898,
    0.18514762638799834,
    0.05430582717066229,
    0.003846932525794996,
    0.0003794040885387749,
    4.680043201680494e-06,
    -1.317081530273048e-08,
)
_ERF_DENOMINATOR = (
    1.0,
    0.4974162267270966,
    0.11393216311311546,
    0.015455905373885647,
    0.0013067649957692938,
    6.306800396376873e-05,
)


def _polynomial(coefficients: Sequence[float], u: np.ndarray) -> np.ndarray:
    """sum of coefficients[k] * u**k by Horner's rule, in place on one fresh array."""
    out = np.full_like(u, coefficients[-1])
    for c in coefficients[-2::-1]:
        out *= u
        out += c
    return out


def erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise. float64: exact (``math.erf`` per element; slow, for checks). Other float
    dtypes: x * P(x**2) / Q(x**2) computed in float64 with x clipped to [-4, 4] (erf(4) rounds to
    1 in float32), within 0.54 ulp of float32 (see the coefficients above)."""
    if x.dtype == np.float64:
        return np.asarray(_exact_erf(x), dtype=np.float64)  # asarray: a 0-d x gives a Python float
    z = np.clip(np.asarray(x, dtype=np.float64), -4.0, 4.0)
    u = z * z
    y = _polynomial(_ERF_NUMERATOR, u)
    y *= z
    y /= _polynomial(_ERF_DENOMINATOR, u)
    return np.asarray(y, dtype=x.dtype)


# --------------------------------------------------------------------------- selection

SELECT_MIN = 4096  # elements from which where() picks by bits rather than with np.where


def where(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.where(cond, a, b) (with broadcasting), for 4- and 8-byte dtypes as b ^ ((a ^ b) & mask)
    on their bits, mask all ones where cond holds: np.where branches on every element, and on a
    mixed mask (relu's, a sigmoid's sign) that took 3.6 ns per float32 against ~0.5 here. The bits
    are copied as they are (NaNs and signed zeros included), as np.where copies them."""
    if max(np.size(cond), np.size(a), np.size(b)) < SELECT_MIN:
        return np.where(cond, a, b)
    dtype = np.result_type(a, b)
    if dtype.itemsize not in (4, 8) or dtype.kind not in "fiu":
        return np.where(cond, a, b)
    bits = np.int32 if dtype.itemsize == 4 else np.int64
    a_bits, b_bits = (np.asarray(v, dtype=dtype).view(bits) for v in (a, b))
    # -1 (all ones) where cond holds, by NumPy's cast of the booleans (a boolean byte may hold any
    # nonzero value: NumPy 1.24's comparisons of booleans wrote 254 for True; read as int8, that is -2)
    mask = np.negative(np.asarray(cond, dtype=bool), dtype=bits)
    out = np.bitwise_and(np.bitwise_xor(a_bits, b_bits), mask)
    out ^= b_bits
    return out.view(dtype)


def masked(g: np.ndarray, keep: np.ndarray, out: np.ndarray | None = None, finite: bool | None = None) -> np.ndarray:
    """g where ``keep`` (boolean, g's shape), 0 elsewhere, whatever g holds there: a gradient
    that a selection sends nowhere is 0, as in PyTorch, even where g is inf or NaN. Computed as
    ``g * keep``, which is exact for finite g and twice as fast as :func:`where`; where that would
    make a NaN of an inf or a NaN it drops (inf * 0), the selection is made again by :func:`where`.
    ``finite``: :func:`all_finite` of g, when the caller already knows it."""
    out = np.multiply(g, keep, out=out)
    if not (all_finite(g) if finite is None else finite):
        np.copyto(out, where(keep, g, np.zeros((), dtype=out.dtype)))
    return out


def all_finite(a: np.ndarray) -> bool:
    """Whether no element of a is inf or NaN. A float32 or float64 array contiguous in memory is
    checked by one BLAS dot of itself (its sum of squares is finite only if every element is;
    should the sum overflow, element by element): ``np.isfinite(a).all()`` makes a mask of a's size."""
    if a.dtype.kind not in "fc":
        return True
    if a.dtype in (np.float32, np.float64) and a.size:
        flat = a.transpose(memory_order(a))
        if flat.flags.c_contiguous:
            flat = flat.reshape(-1)
            with np.errstate(all="ignore"):
                if math.isfinite(np.dot(flat, flat)):
                    return True
    return bool(np.isfinite(a).all())


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) as where(x >= 0, 1, e) / (1 + e) with e = exp(-|x|), which never overflows
    and is exact on both sides of 0 (1 - sigmoid(-x) would lose the small values)."""
    e = np.empty_like(x)
    np.abs(x, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    y = where(x >= 0, np.ones((), dtype=x.dtype), e)  # a fresh array of x's dtype
    e += 1
    y /= e
    return y


# --------------------------------------------------------------------------- maximum


def max_and_where(x: np.ndarray, axis: Axes) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """y = x.max(axis) (axes removed), and what finds each first maximum again (``where``):
    (x, y) when few elements make each output (pooling windows: y is a running maximum over
    strided views of x, no copy of the windows), else (the index of the first maximum,)."""
    count = math.prod(x.shape[a] for a in axis)
    if count <= UNROLL_MAX and x.size >= 4 * count:
        y = _running_max(x, axis)
        return y, (x, y)
    kept = [i for i in range(x.ndim) if i not in axis]
    flat = x.transpose(kept + list(axis)).reshape([x.shape[i] for i in kept] + [count])
    first = flat.argmax(axis=-1)
    return np.take_along_axis(flat, first[..., None], axis=-1)[..., 0], (first,)


def first_max_mask(x_shape: Shape, axis: Axes, where: tuple[np.ndarray, ...]) -> np.ndarray:
    """The (x_shape) boolean mask, true at each output's first maximum."""
    mask = np.zeros(x_shape, dtype=bool)
    for pos, hit in _first_max_masks(x_shape, axis, where):
        _select(mask, axis, pos)[...] = hit
    return mask


def to_first_max(g: np.ndarray, x_shape: Shape, axis: Axes, where: tuple[np.ndarray, ...]) -> np.ndarray:
    """g (x's shape with ``axis`` removed or kept as 1) written at each first maximum, 0 elsewhere:
    the (x_shape) gradient of a max, straight into one array laid out in memory like x (for
    pooling windows: like the image, so the Fold that follows is a free reshape)."""
    masks = _first_max_masks(x_shape, axis, where)
    if len(where) == 1:
        grad = np.empty(x_shape, dtype=g.dtype)
    elif _overlapping_windows(where[0], axis):
        # offset-major, each kernel offset's slice contiguous in the windows' own memory order: one
        # pass per offset writes in order, and fold adds each slice back without a rearranging copy
        rest = sorted((0, 1, 2, 5), key=lambda a: -where[0].strides[a])
        layout = [3, 4, *rest]
        grad = np.empty([x_shape[a] for a in layout], dtype=g.dtype).transpose(inverse(layout))
    else:
        grad = np.empty_like(where[0], dtype=g.dtype)
    g_kept = g.reshape(masks[0][1].shape)
    finite = all_finite(g_kept)  # once for all positions
    for pos, hit in masks:
        masked(g_kept, hit, out=_select(grad, axis, pos), finite=finite)
    return grad


def _overlapping_windows(x: np.ndarray, axis: Axes) -> bool:
    """Whether x is a view of pooling windows (N, OH, OW, kh, kw, C) reduced over (kh, kw) whose
    windows overlap (a stride below the kernel's extent): their gradient is then added up by
    :func:`fold` one kernel offset at a time."""
    if x.ndim != 6 or axis != (3, 4) or min(x.strides) < 0:
        return False
    return x.strides[1] < x.strides[3] * x.shape[3] or x.strides[2] < x.strides[4] * x.shape[4]


def _running_max(x: np.ndarray, axis: Axes) -> np.ndarray:
    """x.max(axis) as np.maximum over views of x, one reduced axis at a time, the outermost in
    memory first. Pooling windows of conv2d's batch-inner (H, W, N, C) output: reducing over the
    window's rows first reads whole image rows of all images (runs of W*N*C elements); its
    columns, then, runs of N*C (of a channels-last image: W*C, then only C). Each step's result
    keeps x's memory order (``empty_like``), so the next step's views are as long."""
    y, dims = x, list(range(x.ndim))  # dims: which axis of x each axis of y is
    for a in (a for a in memory_order(x) if a in axis):
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


def _first_max_masks(
    x_shape: Shape, axis: Axes, where: tuple[np.ndarray, ...]
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(position, mask) for every reduced position: where that position holds the first maximum."""
    positions = list(np.ndindex(*(x_shape[a] for a in axis)))
    if len(where) == 1:
        return [(pos, where[0] == k) for k, pos in enumerate(positions)]
    x, y = where
    has_nan = bool(np.isnan(y).any()) if y.dtype.kind == "f" else False
    masks = []
    taken = None  # where an earlier position already holds the maximum
    for k, pos in enumerate(positions):
        if k + 1 == len(positions) and taken is not None:
            # Every window holds its maximum (or its first NaN) somewhere: what no earlier
            # position took is the last one's, with no comparison.
            masks.append((pos, ~taken))
            break
        candidate = _select(x, axis, pos)
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


def _select(x: np.ndarray, axis: Axes, position: tuple[int, ...]) -> np.ndarray:
    """The view of x at ``position`` along the reduced ``axis`` (those axes removed)."""
    index: list[Any] = [slice(None)] * x.ndim
    for a, i in zip(axis, position):
        index[a] = i
    return x[tuple(index) + (Ellipsis,)]  # the Ellipsis keeps a 0-d result a view, not a scalar


# --------------------------------------------------------------------------- reshapes and layouts


def reshape(x: np.ndarray, shape: Shape, layout: list[int] | None = None) -> tuple[np.ndarray, list[int] | None]:
    """x reshaped to ``shape`` (C order, as NumPy), and x's memory order if that took a copy.

    Without ``layout``: a view where NumPy can make one; otherwise a copy, made in cache-sized
    slabs (see :func:`copy_in_slabs`). The memory order returned (None for a view) is the layout to
    give the gradient when it is reshaped back: laid out like x, the rules before this one see
    arrays laid out like their own (conv2d's batch-inner outputs). With ``layout`` (axes of
    ``shape`` from the outermost in memory): a copy, laid out so, except for a broadcast x (a
    stride of 0: a gradient of a sum), which stays a view where it can (nothing to lay out).
    """
    if layout is not None and 0 in x.strides and x.size > 1:  # broadcast (a gradient of a sum): its view keeps it so
        y = reshaped_view(x, shape)
        if y is not None:
            return y, None
    if layout is not None:
        dst = np.empty([shape[a] for a in layout], dtype=x.dtype).transpose(inverse(layout))
        return copy_in_slabs(x.reshape(shape), dst), None
    y = reshaped_view(x, shape)
    if y is not None:
        return y, None
    return copy_in_slabs(x, np.empty(x.shape, dtype=x.dtype)).reshape(shape), memory_order(x)


def reshaped_view(x: np.ndarray, shape: Shape) -> np.ndarray | None:
    """x seen with ``shape`` without a copy, or None where NumPy's reshape would copy.

    NumPy's own test (C order): leaving out axes of length 1, the old axes fall into consecutive
    groups whose sizes multiply to the new axes' sizes, and within a group each axis steps over
    exactly the next one (stride = next stride * next length)."""
    if x.flags.c_contiguous or x.size == 0:
        return x.reshape(shape)
    known = math.prod(n for n in shape if n != -1)
    new = [x.size // known if n == -1 else n for n in shape if n != 1]
    if math.prod(new) != x.size:
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


def inverse(order: list[int]) -> list[int]:
    """The permutation that undoes ``order`` (``np.argsort`` of a permutation, without NumPy's overhead)."""
    undo = [0] * len(order)
    for i, a in enumerate(order):
        undo[a] = i
    return undo


def memory_order(x: np.ndarray) -> list[int]:
    """x's axes from the outermost in memory to the innermost (by stride; ties keep axis order)."""
    return sorted(range(x.ndim), key=lambda a: -abs(x.strides[a]))


def laid_out_like(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """a (of like's shape) laid out in memory as ``like`` is: a itself if it is, else a copy. For a
    weight's gradient: an optimizer's passes over a weight and a gradient laid out differently read
    one of them across cache lines (SGD's update over a transposed 512x784 gradient: 13x slower).
    The copy goes in slabs (:func:`copy_in_slabs`: a 4x4 kernel's 100x256 weight, 0.62 -> 0.47 ms)."""
    if memory_order(a) == memory_order(like):
        return a
    return copy_in_slabs(a, np.empty_like(like, dtype=a.dtype))


def copy_in_slabs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """dst[...] = src, for arrays of one shape laid out differently in memory (a transpose);
    returns dst. ``np.copyto`` walks dst in its own memory order, so across layouts it reads src
    one element per cache line; the copy is cut so that those lines are still in the cache when
    the next elements of each are read (groups of pieces run on several threads):

    - by default, into slabs of src's outermost memory axis (SLAB_BYTES of src each);
    - where src's stride along dst's innermost axis is a multiple of a large power of two (a
      batch-inner conv2d output read by NCHW: a stride of N·C floats, 8 KiB for 64 images of 32
      channels), in pieces along that axis, each staged through a buffer whose stride along it is
      not: at such a stride every element read falls into the same few sets of the cache, which
      hold 8 lines each, so the lines are evicted before their neighbours are read (the staged
      copy is 2-4x faster here).
    """
    if src.nbytes <= SLAB_BYTES:  # stays in the cache whatever the order
        np.copyto(dst, src)
        return dst
    merged_src, merged_dst = merged_axes(src, dst)
    axis = memory_order(merged_dst)[-1]
    if merged_src.shape[axis] > 16 and _aliasing(abs(merged_src.strides[axis])):  # up to 16 lines stay (2 sets)
        order = [axis] + [a for a in memory_order(merged_src) if a != axis]
        src, copy = merged_src, partial(staged_copy, merged_src, merged_dst, axis, order)
        step = max(8, SLAB_BYTES * src.shape[axis] // src.nbytes)
    else:
        axis = memory_order(src)[0]
        copy, step = partial(plain_copy, src, dst, axis), max(1, SLAB_BYTES * src.shape[axis] // src.nbytes)
    starts = range(0, src.shape[axis], step)
    minimum = max(1, TASK_BYTES * len(starts) // src.nbytes)
    intraop.run([partial(copy, starts[r.start : r.stop], step) for r in intraop.pieces(len(starts), minimum)])
    return dst


def merged_axes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Views of a and b (of one shape) in which neighbouring axes that step over each other in
    both (stride = next stride * next length) are one axis: a (N, C, H, W) pair whose H and W are
    consecutive in both memory orders is copied as (N, C, H·W), with runs as long as they are."""
    shape = [a.shape[0]]
    for i in range(1, a.ndim):
        if all(x.strides[i - 1] == x.strides[i] * x.shape[i] for x in (a, b)):
            shape[-1] *= a.shape[i]
        else:
            shape.append(a.shape[i])
    return (a, b) if len(shape) == a.ndim else (a.reshape(shape), b.reshape(shape))


def _aliasing(stride: int) -> bool:
    """Whether elements this many bytes apart fall into at most 4 of an L1 cache's sets (a line's
    set is its address modulo 4 KiB; a set holds 8 lines)."""
    return stride > 0 and 4096 // math.gcd(stride, 4096) <= 4


def plain_copy(src: np.ndarray, dst: np.ndarray, axis: int, starts: range, step: int) -> None:
    for start in starts:
        index = (slice(None),) * axis + (slice(start, start + step),)
        np.copyto(dst[index], src[index])


def staged_copy(src: np.ndarray, dst: np.ndarray, axis: int, order: list[int], starts: range, step: int) -> None:
    """Pieces of ``step`` along ``axis`` copied through a buffer laid out in ``order`` (axis outermost)
    whose rows are padded by a cache line, so that its stride along ``axis`` does not alias."""
    rest = [src.shape[a] for a in order[1:]]
    row = math.prod(rest)
    buffer = intraop.scratch((step, row + 64 // src.itemsize), src.dtype)
    for start in starts:
        index = (slice(None),) * axis + (slice(start, start + step),)
        part = src[index]
        staged = buffer[: part.shape[axis], :row].reshape([part.shape[axis]] + rest).transpose(inverse(order))
        np.copyto(staged, part)
        np.copyto(dst[index], staged)


def index_add(g: np.ndarray, shape: Shape, index: Any) -> np.ndarray:
    """zeros(shape) with g added at ``index`` (repeated indices add up)."""
    out = np.zeros(shape, dtype=g.dtype)
    items = index if isinstance(index, tuple) else (index,)
    if all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items):
        out[index] = g  # basic indexing never selects an element twice
    else:
        np.add.at(out, index, g)
    return out


# --------------------------------------------------------------------------- sliding windows


def out_hw(hw: Shape, kernel: Shape, stride: Shape, dilation: Shape) -> tuple[int, int]:
    """(OH, OW): how many windows fit along the height and the width."""
    oh, ow = ((size - d * (k - 1) - 1) // s + 1 for size, k, s, d in zip(hw, kernel, stride, dilation))
    return oh, ow


def windows(x: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape) -> np.ndarray:
    """The read-only (N, OH, OW, kh, kw, C) view of the sliding windows of x (N, C, H, W)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, c, h, w = x.shape
    oh, ow = out_hw((h, w), kernel, stride, dilation)
    s_n, s_c, s_h, s_w = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, oh, ow, kh, kw, c), (s_n, sh * s_h, sw * s_w, dh * s_h, dw * s_w, s_c), writeable=False
    )


def _offset_views(image: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape) -> Iterator[np.ndarray]:
    """For each kernel offset (p, q), row-major, the view (N, OH, OW, C) of an image indexed
    (N, H, W, C) (laid out in memory in any order) holding the pixels every window's (p, q) element reads."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = out_hw(image.shape[1:3], kernel, stride, dilation)
    for p in range(kh):
        for q in range(kw):
            yield image[:, p * dh : p * dh + sh * (oh - 1) + 1 : sh, q * dw : q * dw + sw * (ow - 1) + 1 : sw, :]


def split_count(nbytes: int) -> int:
    """How many pieces work that writes ``nbytes`` is cut into at least: MIN_BLOCKS, or fewer,
    no smaller than TASK_BYTES each (1 for small work)."""
    return max(1, min(MIN_BLOCKS, nbytes // TASK_BYTES))


def _image_blocks(n: int, bytes_per_image: int, budget: int) -> Iterator[slice]:
    """Consecutive slices of a batch of n images, as many images each as fit in ``budget`` bytes
    of per-image work (at least one)."""
    step = max(1, budget // max(1, bytes_per_image))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def fold(g: np.ndarray, x_shape: Shape, kernel: Shape, stride: Shape, dilation: Shape) -> np.ndarray:
    """Window gradients g (N, OH, OW, kh, kw, C) added back onto the (N, C, H, W) image they came
    from (overlaps summed): one strided slice-add per kernel offset, no per-pixel loop."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = g.shape[1], g.shape[2]
    if (sh, sw) == (kh, kw) and (dh, dw) == (1, 1):
        # Windows that tile the image without overlap (pooling): a single rearranging copy.
        tiles = g.transpose(0, 1, 3, 2, 4, 5).reshape(n, oh * kh, ow * kw, c)
        if (oh * kh, ow * kw) != (h, w):  # rows and columns no window reached get 0
            tiles = np.pad(tiles, ((0, 0), (0, h - oh * kh), (0, w - ow * kw), (0, 0)))
        return tiles.transpose(0, 3, 1, 2)
    # Each slice-add below reads one kernel offset of g. Unless g is laid out offset-major
    # already, that is runs of only C elements; copying a few images' windows at a time
    # offset-major first (a block that stays in cache) makes every slice-add read one block.
    offset_major = _offset_major(g)
    rearrange = c * g.itemsize < LONG_RUN_BYTES and not offset_major
    # the image gradient laid out as g's offset slices (batch-inner pooling windows'), else channels-last
    order = memory_order(g[:, :, :, 0, 0]) if offset_major else [0, 1, 2, 3]
    out = np.zeros([(n, h, w, c)[a] for a in order], dtype=g.dtype).transpose(inverse(order))
    for images in _image_blocks(n, g[:1].nbytes, FOLD_BLOCK_BYTES) if rearrange else [slice(0, n)]:
        part = g[images].transpose(3, 4, 0, 1, 2, 5)  # (kh, kw, n', OH, OW, C)
        part = np.ascontiguousarray(part) if rearrange else part
        offsets = (part[p, q] for p in range(kh) for q in range(kw))
        for view, offset_grad in zip(_offset_views(out[images], kernel, stride, dilation), offsets):
            view += offset_grad
    return out.transpose(0, 3, 1, 2)


def _offset_major(g: np.ndarray) -> bool:
    """Whether each kernel offset's slice g[:, :, :, p, q] of window gradients (N, OH, OW, kh, kw, C)
    is one contiguous block (in any order of its axes), the offsets outermost."""
    first = g[:, :, :, 0, 0]
    return first.transpose(memory_order(first)).flags.c_contiguous and min(g.strides[3:5]) >= first.nbytes


# --------------------------------------------------------------------------- conv2d


class Im2col:
    """The (OH*OW*N, kh*kw*C) im2col matrix of x (N, C, H, W) zero-padded by ``padding`` (rows,
    columns on each side), in blocks of consecutive rows: ``rows[i]`` are block i's rows, and
    ``block(i, buffer)`` copies it into ``buffer`` (a flat array of ``block_size`` elements or
    more) and returns it. Rows run batch-inner (OH, OW, N); columns (kh, kw, C).

    In blocks because the whole matrix is kh*kw times the image: copying it all and then
    multiplying streams it through memory twice, where a block that stays in the cache is
    multiplied right after its copy (a 3x3 conv of 32 channels on 32x32 images, batch 64: 49 ms
    for the whole matrix, 21 ms in blocks), and it is never all in memory at once. Blocks are
    about IM2COL_BLOCK_BYTES, and a matrix of several TASK_BYTES is cut into up to MIN_BLOCKS
    at least, so that threads can share it out (:mod:`tinygrad_cnn.intraop`); the cut depends on
    the shapes only.

    Row-major, the copy reads each window's channels, a contiguous run of C (times kw when the
    image is channels-last). With few channels that run is short, and the copy is several times
    faster column-major, from the image laid out batch-inner (C, H, W, N) (a copy of the image
    first, unless it is laid out so already, as conv2d's outputs are when C is 1): that reads
    runs along the image's rows of all N images. The GEMM takes either memory order. Row-major
    from runs of ``row_major_from`` bytes: LONG_RUN_BYTES for the weight gradient, and
    FORWARD_RUN_BYTES for the forward pass, whose product with the weight was faster over a
    row-major block from runs of 32 float32 channels already (0.97-1.25x over 13 shapes, one
    thread). Padding goes into that copy of the image (or one in x's own memory order), never a
    separate pass.
    """

    def __init__(
        self,
        x: np.ndarray,
        kernel: Shape,
        stride: Shape,
        dilation: Shape,
        padding: Shape = (0, 0),
        row_major_from: int = LONG_RUN_BYTES,
    ) -> None:
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (dh, dw), (ph, pw) = kernel, stride, dilation, padding
        oh, ow = out_hw((h + 2 * ph, w + 2 * pw), kernel, stride, dilation)
        s_n, s_c, s_h, s_w = x.strides  # of the windows (OH, OW, N, kh, kw, C) read row-major, as below:
        run = _contiguous_run((oh, ow, n, kh, kw, c), (sh * s_h, sw * s_w, s_n, dh * s_h, dw * s_w, s_c), x.itemsize)
        self.row_major = run * x.itemsize >= row_major_from
        image = pad_image(x, padding, memory_order(x) if self.row_major else [1, 2, 3, 0])
        win = windows(image, kernel, stride, dilation)  # (N, OH, OW, kh, kw, C)
        self.win = win.transpose(1, 2, 0, 3, 4, 5) if self.row_major else win.transpose(3, 4, 5, 1, 2, 0)
        self.n, self.oh, self.ow, self.k, self.dtype = n, oh, ow, kh * kw * c, x.dtype
        pixel_bytes = n * self.k * x.itemsize  # one output pixel of all N images
        pixels = max(1, IM2COL_BLOCK_BYTES // max(1, pixel_bytes))
        pixels = min(pixels, -(-oh * ow // split_count(oh * ow * pixel_bytes)))
        self.blocks = list(_pixel_blocks(oh, ow, pixels))
        self.rows = [slice((i * ow + j) * n, (i * ow + j + rows * cols) * n) for i, j, rows, cols in self.blocks]
        self.block_size = max(r.stop - r.start for r in self.rows) * self.k

    def block(self, index: int, buffer: np.ndarray) -> np.ndarray:
        """Block ``index`` of the matrix, (its rows, kh*kw*C), copied into ``buffer``."""
        i, j, rows, cols = self.blocks[index]
        count = rows * cols * self.n
        win = self.win
        if self.row_major:
            block = buffer[: count * self.k].reshape(count, self.k)
            np.copyto(block.reshape(rows, cols, *win.shape[2:]), win[i : i + rows, j : j + cols])
            return block
        block_t = buffer[: count * self.k].reshape(self.k, count)
        np.copyto(block_t.reshape(*win.shape[:3], rows, cols, self.n), win[:, :, :, i : i + rows, j : j + cols])
        return block_t.T

    def buffer(self) -> np.ndarray:
        """A buffer for :meth:`block` in the calling thread's scratch memory (see :func:`intraop.scratch`)."""
        return intraop.scratch(self.block_size, self.dtype)


def _pixel_blocks(oh: int, ow: int, pixels: int) -> Iterator[tuple[int, int, int, int]]:
    """The (OH, OW) grid of output pixels cut into blocks of at most ``pixels`` (at least one)
    that are consecutive in row-major order: (first row, first column, rows, columns), whole rows
    when a row fits, else equal pieces of one row (a row of 32 in 16 and 16, not 28 and 4: a
    sliver of a block is a GEMM too small to run at speed)."""
    if pixels >= ow:
        step = pixels // ow
        for i in range(0, oh, step):
            yield i, 0, min(step, oh - i), ow
        return
    for i in range(oh):
        for piece in intraop.pieces(ow, 1, -(-ow // pixels)):
            yield i, piece.start, 1, len(piece)


def conv_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Shape, dilation: Shape, padding: Shape
) -> tuple[np.ndarray, np.ndarray | None]:
    """im2col(x padded) @ w + b: conv2d's output (N, OH, OW, C_out) from x (N, C, H, W),
    w (kh, kw, C, C_out) and b (C_out,) or None, laid out batch-inner (see :func:`conv_output`).
    Each block of :class:`Im2col` is multiplied (and its bias added) while it is in the cache,
    groups of blocks on several threads. Also returns the im2col matrix when it was a single
    block (small: worth keeping for :func:`conv_weight_grad`), else None. A pointwise conv takes
    :func:`pointwise_conv_forward`, a 3x3 one at stride 1 that :func:`winograd.fits`
    :func:`winograd.conv_forward` (None for the matrix), a 5x5 one that :func:`winograd5.fits`
    :func:`winograd5.conv_forward`."""
    if pointwise(w.shape, padding):
        return pointwise_conv_forward(x, w, b, stride), None
    if winograd.fits(x.shape, w.shape, stride, dilation, padding):
        return winograd.conv_forward(x, w, b, padding), None
    if winograd5.fits(x.shape, w.shape, stride, dilation, padding, np.result_type(x, w)):
        return winograd5.conv_forward(x, w, b, padding), None
    kh, kw, c, c_out = w.shape
    cols = Im2col(x, (kh, kw), stride, dilation, padding, FORWARD_RUN_BYTES)
    weight = w.reshape(kh * kw * c, c_out)
    y = np.empty((cols.oh * cols.ow * cols.n, c_out), dtype=np.result_type(x, w))

    single = len(cols.rows) == 1

    def multiply(blocks: range) -> np.ndarray:
        buffer = np.empty(cols.block_size, dtype=cols.dtype) if single else cols.buffer()  # a single block is kept
        for i in blocks:
            block = cols.block(i, buffer)
            np.matmul(block, weight, out=y[cols.rows[i]])
            if b is not None:
                add_row(y[cols.rows[i]], b)
        return block

    kept = intraop.run([partial(multiply, blocks) for blocks in intraop.pieces(len(cols.rows), 1)])
    return conv_output(y, cols.n, cols.oh, cols.ow), kept[0] if single else None


def conv_weight_grad(
    x: np.ndarray,
    g_rows: np.ndarray,
    w_shape: Shape,
    stride: Shape,
    dilation: Shape,
    padding: Shape,
    cols: np.ndarray | None = None,
) -> np.ndarray:
    """conv2d's weight gradient (see :func:`conv_weight_grad_tasks`)."""
    if cols is not None:
        return matmul(cols.T, g_rows).reshape(w_shape)
    tasks, total = conv_weight_grad_tasks(x, g_rows, w_shape, stride, dilation, padding)
    return total(intraop.run(tasks))


def conv_weight_grad_tasks(
    x: np.ndarray, g_rows: np.ndarray, w_shape: Shape, stride: Shape, dilation: Shape, padding: Shape
) -> tuple[list[Callable[[], np.ndarray]], Callable[[Sequence[np.ndarray]], np.ndarray]]:
    """im2col(x padded)^T @ g_rows: conv2d's weight gradient, of ``w_shape`` (kh, kw, C, C_out),
    from the batch-inner (OH*OW*N, C_out) output gradient, as tasks that each sum the products of a
    group of the im2col matrix's blocks, and the function that adds their results up, in task order
    (the same sum whatever the thread count). The blocks are copied again rather than kept from the
    forward pass (see :func:`conv_forward`): a copy that stays in the cache costs less than keeping
    kh*kw times the image in memory and reading it back from there."""
    return _block_products(x, None, g_rows, w_shape, stride, dilation, padding, LONG_RUN_BYTES)[1:]


def _block_products(
    x: np.ndarray,
    w: np.ndarray | None,
    g_rows: np.ndarray,
    w_shape: Shape,
    stride: Shape,
    dilation: Shape,
    padding: Shape,
    row_major_from: int,
) -> tuple[np.ndarray | None, list[Callable[[], np.ndarray]], Callable[[Sequence[np.ndarray]], np.ndarray]]:
    """Tasks over x's :class:`Im2col` blocks (copied row-major from runs of ``row_major_from``
    bytes), each block copied once and, while it is in the cache, multiplied by ``w`` into the
    returned batch-inner rows (None: not computed) and, transposed, by its rows of g_rows; each
    task returns its partial sum of the weight gradient, and the function returned adds them up in
    task order, to ``w_shape``."""
    kh, kw, c, c_out = w_shape
    cols = Im2col(x, (kh, kw), stride, dilation, padding, row_major_from)
    weight = None if w is None else w.reshape(kh * kw * c, c_out)
    y = None if w is None else np.empty((cols.oh * cols.ow * cols.n, c_out), dtype=np.result_type(x, w))
    dtype = np.result_type(x, g_rows)
    most = max(1, min(16, PARTIAL_SUMS_BYTES // (kh * kw * c * c_out * dtype.itemsize)))

    def multiply(blocks: range) -> np.ndarray:
        buffer = cols.buffer()
        total = np.zeros((kh * kw * c, c_out), dtype=dtype)
        part = np.empty_like(total)
        for i in blocks:
            block = cols.block(i, buffer)
            if y is not None and weight is not None:
                np.matmul(block, weight, out=y[cols.rows[i]])
            np.matmul(block.T, g_rows[cols.rows[i]], out=part)
            total += part
        return total

    def add_up(sums: Sequence[np.ndarray]) -> np.ndarray:
        return sum_in_order(sums).reshape(w_shape)

    tasks: list[Callable[[], np.ndarray]] = [
        partial(multiply, blocks) for blocks in intraop.pieces(len(cols.rows), 1, most)
    ]
    return (None if y is None else conv_output(y, cols.n, cols.oh, cols.ow)), tasks, add_up


def conv_transpose_forward(
    x: np.ndarray,
    x_rows: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    y_shape: Shape,
    stride: Shape,
    dilation: Shape,
    padding: Shape,
    groups: int = 1,
) -> np.ndarray:
    """A transposed convolution: conv2d's input gradient, of ``y_shape`` (N, C_out, OH, OW), for the
    output gradient x (N, C, H, W) (its batch-inner rows ``x_rows``) of the conv2d by w
    (kh, kw, C_out/G, C) with ``groups`` G, plus b (C_out,) or None; laid out (OH, OW, N, C_out).

    :func:`fold_products` (:func:`grouped_conv_input_grad` for G > 1) of x's rows, the bias added
    onto the result's batch-inner rows in place. At stride 1 without groups where the Winograd
    path takes it (:func:`winograd.fits`), the same values as the conv2d of x zero-padded by
    d*(k-1) - p with w's kernel flipped and its channels swapped:
    y[n, o, i, j] = sum of xp[n, c, i + p*d, j + q*d] * w[kh-1-p, kw-1-q, o, c] (+ b[o]). Where
    :func:`winograd5.fits` the conv2d (a 5x5 kernel at stride 1), :func:`winograd5.input_grad`."""
    kh, kw = w.shape[:2]
    flipped_padding = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
    by_tiles = (
        groups == 1
        and winograd5.fits(y_shape, w.shape, stride, dilation, padding, np.result_type(x, w))
        and out_hw((y_shape[2] + 2 * padding[0], y_shape[3] + 2 * padding[1]), (kh, kw), stride, dilation)
        == x.shape[2:]
    )
    if groups == 1 and tuple(stride) == (1, 1) and min(flipped_padding) >= 0 and not by_tiles:
        flipped = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))  # (kh, kw, C, C_out)
        if winograd.fits(x.shape, flipped.shape, stride, dilation, flipped_padding):
            return conv_forward(x, flipped, b, stride, dilation, flipped_padding)[0].transpose(0, 3, 1, 2)
    if by_tiles:
        y = winograd5.input_grad(x.transpose(0, 2, 3, 1), w, y_shape, padding)
    elif groups == 1:
        y = fold_products(x_rows, w, y_shape, stride, dilation, padding)
    else:
        y = grouped_conv_input_grad(x_rows, w, y_shape, stride, dilation, padding, groups)
    if b is not None:
        rows = reshaped_view(y.transpose(2, 3, 0, 1), (-1, y.shape[1]))
        if rows is None:  # not laid out batch-inner after all: a new array
            return y + b.reshape(-1, 1, 1)
        add_row(rows, b)
    return y


def conv_transpose_grads(
    g: np.ndarray,
    w: np.ndarray,
    x_rows: np.ndarray,
    stride: Shape,
    dilation: Shape,
    padding: Shape,
    groups: int,
    needs: Sequence[bool],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A transposed convolution's input and weight gradients (None where ``needs`` says not needed)
    from g (N, C_out, OH, OW), for :func:`conv_transpose_forward`'s w (kh, kw, C_out/G, C) and
    input rows x_rows (H*W*N, C): dx (N, C, H, W) = the conv2d of g by w (laid out batch-inner),
    dw (w's shape) = that conv2d's weight gradient for the output gradient x_rows.

    Both at once from one pass over g's im2col blocks (:func:`conv_forward_and_weight_grad`, grouped
    :func:`grouped_conv_forward_and_weight_grad`); apart for a pointwise or depthwise weight (their
    own kernels), or one that :func:`winograd.fits` or :func:`winograd5.fits` (its forward and
    weight gradient)."""
    need_x, need_w = needs
    n, (h, wd) = (
        g.shape[0],
        out_hw((g.shape[2] + 2 * padding[0], g.shape[3] + 2 * padding[1]), w.shape[:2], stride, dilation),
    )
    if groups == 1 and winograd.fits(g.shape, w.shape, stride, dilation, padding):
        y = winograd.conv_forward(g, w, None, padding) if need_x else None
        gw = None
        if need_w:
            tasks, add_up = winograd.weight_grad_tasks(g, conv_output(x_rows, n, h, wd), padding)
            gw = add_up(cast(list[np.ndarray], intraop.run(tasks)))
    elif groups == 1 and winograd5.fits(g.shape, w.shape, stride, dilation, padding, np.result_type(g, w)):
        y = winograd5.conv_forward(g, w, None, padding) if need_x else None
        gw = winograd5.conv_grads(g, w, conv_output(x_rows, n, h, wd), padding, False, True)[1] if need_w else None
    elif need_x and need_w and groups == 1 and not pointwise(w.shape, padding):
        y, gw = conv_forward_and_weight_grad(g, w, x_rows, stride, dilation, padding)
    elif need_x and need_w and groups > 1 and w.shape[2] > 1:
        y, gw = grouped_conv_forward_and_weight_grad(g, w, x_rows, stride, dilation, padding, groups)
    elif groups == 1:
        y, cols = conv_forward(g, w, None, stride, dilation, padding) if need_x else (None, None)
        gw = conv_weight_grad(g, x_rows, w.shape, stride, dilation, padding, cols) if need_w else None
    else:
        y = grouped_conv_forward(g, w, None, stride, dilation, padding, groups) if need_x else None
        gw = grouped_conv_weight_grad(g, x_rows, w.shape, stride, dilation, padding, groups) if need_w else None
    return (None if y is None else y.transpose(0, 3, 1, 2)), gw


def conv_forward_and_weight_grad(
    x: np.ndarray, w: np.ndarray, g_rows: np.ndarray, stride: Shape, dilation: Shape, padding: Shape
) -> tuple[np.ndarray, np.ndarray]:
    """conv2d's output without bias (as :func:`conv_forward`'s, batch-inner) and its weight gradient
    for the batch-inner (OH*OW*N, C_out) output gradient ``g_rows`` (as :func:`conv_weight_grad`'s,
    of w's shape (kh, kw, C, C_out)), from one pass over the :class:`Im2col` blocks of x: each block
    is copied once and multiplied by w and, transposed, by its rows of g_rows while it is in the
    cache (apart, the two would copy every block twice, the second time column-major from a
    transposed copy of x where C_out is small). For a transposed convolution, whose input and
    weight gradients these are (x its output's gradient, g_rows its input's pixels). Groups of
    blocks on several threads, their partial sums of the weight gradient added in task order."""
    y, tasks, add_up = _block_products(x, w, g_rows, w.shape, stride, dilation, padding, FORWARD_RUN_BYTES)
    assert y is not None
    return y, add_up(intraop.run(tasks))


def sum_in_order(sums: Sequence[np.ndarray]) -> np.ndarray:
    """The tasks' partial sums added up in task order, into the first (the same sum whatever the thread count)."""
    total = sums[0]
    for part in sums[1:]:
        total += part
    return total


def conv_input_and_weight_grads(
    x: np.ndarray, w: np.ndarray, g_rows: np.ndarray, stride: Shape, dilation: Shape, padding: Shape
) -> tuple[np.ndarray, np.ndarray]:
    """conv2d's input and weight gradients together (:func:`fold_products`, :func:`conv_weight_grad`):
    the tasks of both run from one queue, so that threads done with one gradient's tasks take the
    other's instead of waiting for the slowest task of each in turn."""
    gx, fold_tasks = fold_products_tasks(g_rows, w, x.shape, stride, dilation, padding)
    weight_tasks, add_up = conv_weight_grad_tasks(x, g_rows, w.shape, stride, dilation, padding)
    results = intraop.run([*fold_tasks, *weight_tasks])  # the fold's bands first: they tend to be the larger tasks
    return gx, add_up(cast(list[np.ndarray], results[len(fold_tasks) :]))


def conv_grads(
    x: np.ndarray,
    w: np.ndarray,
    g: np.ndarray,
    stride: Shape,
    dilation: Shape,
    padding: Shape,
    cols: np.ndarray | None,
    needs: Sequence[bool],
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """conv2d's gradients (dx, dw, db) of x (N, C, H, W), w (kh, kw, C, C_out) and the bias (C_out,)
    from g (N, OH, OW, C_out) (None where ``needs`` says not needed), for :func:`conv_forward`'s
    output: :func:`pointwise_conv_grads` for a pointwise conv, :func:`winograd.conv_grads` where
    :func:`winograd.fits` (:func:`winograd5.conv_grads` where :func:`winograd5.fits`), else from
    g's batch-inner rows, both gradients from one queue of tasks (:func:`conv_input_and_weight_grads`)
    unless the forward pass kept its im2col matrix ``cols``."""
    need_x, need_w, need_b = needs
    if pointwise(w.shape, padding):
        gx, gw = pointwise_conv_grads(x, w, g, stride, need_x, need_w)
        return gx, gw, sum_axes(g, (0, 1, 2), False) if need_b else None
    g_rows = conv_rows(g)
    if winograd.fits(x.shape, w.shape, stride, dilation, padding):
        gx, gw = winograd.conv_grads(x, w, g, padding, need_x, need_w)
        return gx, gw, sum_to(g_rows, (w.shape[3],)) if need_b else None
    if (need_x or need_w) and winograd5.fits(x.shape, w.shape, stride, dilation, padding, np.result_type(x, w)):
        gx, gw = winograd5.conv_grads(x, w, g, padding, need_x, need_w)
        return gx, gw, sum_to(g_rows, (w.shape[3],)) if need_b else None
    if need_x and need_w and cols is None:
        gx, gw = conv_input_and_weight_grads(x, w, g_rows, stride, dilation, padding)
    else:
        gx = fold_products(g_rows, w, x.shape, stride, dilation, padding) if need_x else None
        gw = conv_weight_grad(x, g_rows, w.shape, stride, dilation, padding, cols) if need_w else None
    return gx, gw, sum_to(g_rows, (w.shape[3],)) if need_b else None


# --------------------------------------------------------------------------- pointwise (1x1) conv2d


def pointwise(w_shape: Shape, padding: Shape) -> bool:
    """Whether a conv2d by a weight of ``w_shape`` (kh, kw, C, C_out) is pointwise: a 1x1 kernel
    without padding, each output pixel a product of one input pixel's channels (C,) with the
    (C, C_out) weight. Its im2col matrix is the input itself (subsampled by the stride), so it
    takes no copy of windows (:func:`pointwise_conv_forward`)."""
    return tuple(w_shape[:2]) == (1, 1) and tuple(padding) == (0, 0)


def _pointwise_stack(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """x (N, C, H, W) as the stack of (C, I) matrices a pointwise conv multiplies, and whether
    it is one matrix per image. A view where x's layout allows: the (H*W*N, C) rows of channels,
    batch-inner, as (H*W*N, C, 1) (conv2d's outputs, or x laid out (C, H, W, N)); else (N, C, H*W),
    one matrix per image (contiguous NCHW x, or NHWC), for images of POINTWISE_MIN_PIXELS or more;
    else the rows of a batch-inner copy of x (small images: a GEMM call each is too little work)."""
    n, c, h, w = x.shape
    rows = reshaped_view(x.transpose(2, 3, 0, 1), (h * w * n, c))
    if rows is not None and _blas_ready(rows):
        return rows[:, :, None], False
    images = reshaped_view(x, (n, c, h * w))
    if h * w >= POINTWISE_MIN_PIXELS and images is not None and _blas_ready(images):
        return images, True
    copy = copy_in_slabs(x.transpose(2, 3, 0, 1), np.empty((h, w, n, c), dtype=x.dtype))
    return copy.reshape(h * w * n, c)[:, :, None], False


def _blas_ready(m: np.ndarray) -> bool:
    """Whether the matrices of m (..., R, C) step by one element along rows or columns, as BLAS
    reads them (NumPy's matmul runs a slow loop of its own on other strides)."""
    return any(size == 1 or stride == m.itemsize for size, stride in zip(m.shape[-2:], m.strides[-2:]))


def _rows_stack(rows: np.ndarray, per_image: bool, n: int) -> np.ndarray:
    """Batch-inner rows (OH*OW*N, D) (a conv2d output or its gradient) as the stack matching
    :func:`_pointwise_stack`'s: (OH*OW*N, D, 1), or per image (N, D, OH*OW) (views)."""
    return rows.reshape(-1, n, rows.shape[1]).transpose(1, 2, 0) if per_image else rows[:, :, None]


def _stack_pieces(m: np.ndarray) -> list[range]:
    """Pieces of a stack of matrices m (O, C, I) for threads, cut by the shapes alone: ranges of
    rows when I is 1 (at least MATMUL_ROWS each), else of matrices."""
    return intraop.pieces(m.shape[0], MATMUL_ROWS if m.shape[2] == 1 else 1, split_count(m.nbytes))


def _stack_product(a: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
    """out = a @ m for a (D, C) and each matrix of the stack m (O, C, I) (out (O, D, I)): one GEMM
    of m's rows by a^T when I is 1, else one GEMM per matrix, computed as (m^T @ a^T)^T where
    out's matrices are transposed in memory (BLAS writes rows)."""
    if m.shape[2] == 1:
        np.matmul(m[:, :, 0], a.T, out=out[:, :, 0])
    elif out.strides[2] == out.itemsize:
        np.matmul(a, m, out=out)
    else:
        np.matmul(m.transpose(0, 2, 1), a.T, out=out.transpose(0, 2, 1))


def pointwise_conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Shape) -> np.ndarray:
    """A pointwise conv2d (see :func:`pointwise`): y[n, i, j] = x[n, :, i*sh, j*sw] @ w[0, 0] + b,
    of x (N, C, H, W), w (1, 1, C, C_out), b (C_out,) or None -> (N, OH, OW, C_out), laid out
    batch-inner as :func:`conv_forward`'s. On x's own memory (:func:`_pointwise_stack`): a
    batch-inner x is one GEMM of its (H*W*N, C) rows by w; a contiguous NCHW x one
    (H*W, C) @ (C, C_out) GEMM per image (x's (C, H*W) matrix read transposed), written straight
    into the image's rows of y (a transposing copy of x first cost more: docs/performance.md).
    A stride > 1 takes the subsampled view, copied. Pieces of the stack on several threads."""
    sh, sw = stride
    xs = x[:, :, ::sh, ::sw]
    n, _, oh, ow = xs.shape
    xm, per_image = _pointwise_stack(xs)
    weight_t = w.reshape(w.shape[2:]).T  # (C_out, C)
    y = np.empty((oh * ow * n, weight_t.shape[0]), dtype=np.result_type(x, w))
    ym = _rows_stack(y, per_image, n)

    def multiply(r: range) -> None:
        _stack_product(weight_t, xm[r.start : r.stop], ym[r.start : r.stop])
        if b is not None and not per_image:  # while the piece's rows are in the cache
            add_row(y[r.start : r.stop], b)

    intraop.run([partial(multiply, r) for r in _stack_pieces(xm)])
    if b is not None and per_image:  # to all rows at once: an image's rows are strided (1.2 ms against 0.2)
        add_row(y, b)
    return conv_output(y, n, oh, ow)


def pointwise_conv_grads(
    x: np.ndarray, w: np.ndarray, g: np.ndarray, stride: Shape, need_x: bool, need_w: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A pointwise conv2d's input and weight gradients (None where not needed), from g
    (N, OH, OW, C_out): dx[n, :, i*sh, j*sw] = w[0, 0] @ g[n, i, j] (0 on the pixels the stride
    skips), dw[0, 0] = sum over n, i, j of outer(x[n, :, i*sh, j*sw], g[n, i, j]). GEMMs on the
    stacks of :func:`pointwise_conv_forward` (g's batch-inner rows: a view where g is laid out as
    conv2d's output); dx is laid out batch-inner, or NCHW where x's matrices are per image. The
    tasks of both gradients run from one queue; dw's pieces' partial sums are added up in task
    order (the same sum whatever the thread count)."""
    sh, sw = stride
    xs = x[:, :, ::sh, ::sw]
    n, c, oh, ow = xs.shape
    xm, per_image = _pointwise_stack(xs)
    gm = _rows_stack(conv_rows(g), per_image, n)  # (O, C_out, I)
    weight = w.reshape(w.shape[2:])  # (C, C_out)
    dtype = np.result_type(x, w, g)
    gxm = np.empty(xm.shape, dtype=dtype) if need_x else None

    def input_grad(r: range) -> None:
        assert gxm is not None
        _stack_product(weight, gm[r.start : r.stop], gxm[r.start : r.stop])

    def weight_grad(r: range) -> np.ndarray:
        if not per_image:
            return xm[r.start : r.stop, :, 0].T @ gm[r.start : r.stop, :, 0]
        total = np.zeros(weight.shape, dtype=dtype)
        part = np.empty_like(total)
        for i in r:
            np.matmul(xm[i], gm[i].T, out=part)
            total += part
        return total

    x_tasks = [partial(input_grad, r) for r in _stack_pieces(gm)] if need_x else []
    w_tasks = [partial(weight_grad, r) for r in _stack_pieces(xm)] if need_w else []
    tasks: list[Callable[[], np.ndarray | None]] = [*x_tasks, *w_tasks]
    sums = cast(list[np.ndarray], intraop.run(tasks)[len(x_tasks) :])
    gw = sum_in_order(sums).reshape(w.shape) if need_w else None
    if gxm is None:
        return None, gw
    gx = gxm.reshape(n, c, oh, ow) if per_image else conv_output(gxm[:, :, 0], n, oh, ow).transpose(0, 3, 1, 2)
    if (sh, sw) == (1, 1):
        return gx, gw
    order = memory_order(gx)
    full = np.zeros([x.shape[a] for a in order], dtype=dtype).transpose(inverse(order))
    full[:, :, ::sh, ::sw] = gx
    return full, gw


def pad_constant(
    x: np.ndarray, pad_width: Sequence[tuple[int, int]], value: float, order: list[int] | None = None
) -> np.ndarray:
    """np.pad(x, pad_width, constant_values=value), a copy laid out in memory in ``order`` (x's
    axes, the outermost first; default: as x is). np.pad's result is C-contiguous: from a
    batch-inner conv output that was a transposing copy, 8.1 ms for 2M floats against 0.55 here,
    and every op after it read across layouts. Only the border is filled; x is copied into the
    middle once."""
    order = memory_order(x) if order is None else order
    shape = [n + lo + hi for n, (lo, hi) in zip(x.shape, pad_width)]
    out = np.empty([shape[a] for a in order], dtype=x.dtype).transpose(inverse(order))
    for axis, (lo, _) in enumerate(pad_width):
        before = (slice(None),) * axis
        out[before + (slice(0, lo),)].fill(value)
        out[before + (slice(lo + x.shape[axis], None),)].fill(value)
    copy_in_slabs(x, out[tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape, pad_width))])
    return out


def pad_image(x: np.ndarray, padding: Shape, order: list[int]) -> np.ndarray:
    """x (N, C, H, W) with ``padding`` rows and columns of zeros on each side, a copy laid out in
    memory in ``order`` (see :func:`pad_constant`); x itself if there is no padding and x is laid
    out so already."""
    ph, pw = padding
    if (ph, pw) == (0, 0):
        return x if memory_order(x) == order else np.ascontiguousarray(x.transpose(order)).transpose(inverse(order))
    return pad_constant(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), 0, order)


def _contiguous_run(shape: Shape, strides: Shape, itemsize: int) -> int:
    """How many elements a row-major read of an array of this shape and these strides takes in one contiguous run."""
    run = 1
    for size, stride in zip(reversed(shape), reversed(strides)):
        if size == 1:
            continue
        if stride != run * itemsize:
            break
        run *= size
    return run


def conv_output(rows: np.ndarray, n: int, oh: int, ow: int) -> np.ndarray:
    """The GEMM's batch-inner (OH*OW*N, C_out) rows seen as the (N, OH, OW, C_out) output (a view:
    the memory stays batch-inner, so any window of the output is a run of N*C_out values)."""
    return rows.reshape(oh, ow, n, rows.shape[1]).transpose(2, 0, 1, 3)


def conv_rows(g: np.ndarray) -> np.ndarray:
    """The inverse of :func:`conv_output`: g (N, OH, OW, C) as (OH*OW*N, C) rows, batch-inner."""
    n, oh, ow, c = g.shape
    return g.transpose(1, 2, 0, 3).reshape(oh * ow * n, c)


def image_rows(x: np.ndarray) -> np.ndarray:
    """x (N, C, H, W) as (H*W*N, C) rows of channels, batch-inner, as :func:`conv_rows` reads a
    conv2d output's gradient: a view where x is laid out (H, W, N, C) already (conv2d's and
    conv_transpose2d's outputs), else a copy in slabs (:func:`copy_in_slabs`). For a transposed
    convolution, whose input plays the part of conv2d's output gradient."""
    n, c, h, w = x.shape
    rows = reshaped_view(x.transpose(2, 3, 0, 1), (h * w * n, c))
    if rows is not None and _blas_ready(rows):
        return rows
    return copy_in_slabs(x.transpose(2, 3, 0, 1), np.empty((h, w, n, c), dtype=x.dtype)).reshape(h * w * n, c)


def fold_products(
    g_rows: np.ndarray, w: np.ndarray, x_shape: Shape, stride: Shape, dilation: Shape, padding: Shape = (0, 0)
) -> np.ndarray:
    """conv2d's input gradient: fold(g_rows @ w^T), the window gradient never in memory (see
    :func:`fold_products_tasks`)."""
    out, tasks = fold_products_tasks(g_rows, w, x_shape, stride, dilation, padding)
    intraop.run(tasks)
    return out


def fold_products_tasks(
    g_rows: np.ndarray, w: np.ndarray, x_shape: Shape, stride: Shape, dilation: Shape, padding: Shape
) -> tuple[np.ndarray, list[Callable[[], None]]]:
    """conv2d's input gradient: fold(g_rows @ w^T), the window gradient never in memory; returns
    the gradient, zeros until the tasks returned with it have run (in any order, on any threads).

    g_rows (OH*OW*N, C_out) batch-inner, w (kh, kw, C, C_out) -> (N, C, H, W), laid out (H, W, N, C).
    The image is filled a band of rows at a time, bands on several threads. For each kernel offset,
    the rows of g whose windows land that offset in the band (a contiguous range of g's rows: they
    run (OH, OW, N)) are multiplied by the offset's (C_out, C) block of w, and the product is added
    onto the band at once, while it is in the cache: each slice-add reads and writes runs of N*C
    values. A band is small enough for its image rows and a product to stay in the cache
    (materialising all kh*kw products first and folding them afterwards streams kh*kw times the
    image through memory). With ``padding``, the parts of each product that fall on the padding are
    left out: no padded image is made and cropped."""
    kh, kw, c, c_out = w.shape
    per_offset = w.reshape(kh * kw, c, c_out).transpose(0, 2, 1)  # (kh*kw, C_out, C)
    n, _, h, wd = x_shape
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    oh, ow = out_hw((h + 2 * ph, wd + 2 * pw), (kh, kw), stride, dilation)
    out = np.zeros((h, wd, n, c), dtype=np.result_type(g_rows, w))
    columns = []  # per kernel column q: the windows whose q-th column lands inside the image, and where
    for q in range(kw):
        first, stop = max(0, -((q * dw - pw) // sw)), min(ow, (wd - 1 + pw - q * dw) // sw + 1)
        start = first * sw + q * dw - pw
        columns.append((slice(first, stop), slice(start, start + sw * (stop - first - 1) + 1, sw), stop > first))
    row_bytes = wd * n * c * out.itemsize  # one image row of all N images
    band_rows = max(1, FOLD_BLOCK_BYTES // 2 // max(1, row_bytes))
    bands = -(-h // band_rows) if h else 1
    bands = max(bands, split_count(h * row_bytes))

    kernel_row_at_once = kw * -(-h // sh) * ow * n * c * out.itemsize <= FOLD_BLOCK_BYTES // 2  # a small image

    def fold_band(band: range) -> None:
        window_rows = -(-len(band) // sh)  # at most this many window rows land
        buffer = intraop.scratch((kw if kernel_row_at_once else 1) * window_rows * ow * n * c, out.dtype)
        for p in range(kh):
            # window rows i whose p-th row lands in the band: band.start <= i*sh + p*dh - ph < band.stop
            lo, hi = max(0, -((p * dh - ph - band.start) // sh)), min(oh, -((p * dh - ph - band.stop) // sh))
            if lo >= hi:
                continue
            g_part = g_rows[lo * ow * n : hi * ow * n]
            count = (hi - lo) * ow * n
            if kernel_row_at_once:  # one call: NumPy loops over the kernel row's kw GEMMs in C
                products = buffer[: kw * count * c].reshape(kw, count, c)
                np.matmul(g_part, per_offset[p * kw : (p + 1) * kw], out=products)
            first_row = lo * sh + p * dh - ph
            rows = slice(first_row, first_row + sh * (hi - lo - 1) + 1, sh)
            for q, (windows_w, cols, any_w) in enumerate(columns):
                if any_w:
                    if kernel_row_at_once:
                        block = products[q]
                    else:
                        block = buffer[: count * c].reshape(count, c)
                        np.matmul(g_part, per_offset[p * kw + q], out=block)
                    landing = out[rows, cols]  # a view: `out[rows, cols] += ...` would copy it back once more
                    landing += block.reshape(hi - lo, ow, n, c)[:, windows_w]

    return out.transpose(2, 3, 0, 1), [partial(fold_band, band) for band in intraop.pieces(h, 1, bands)]


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b; a large product of 2-D arrays is computed in pieces on several threads, cut by the
    shapes alone (the same result whatever the thread count): ranges of a's rows, or of b's
    columns where a has fewer rows than b has columns.

    Each piece's GEMM packs the other operand again, at a cost per piece that its own work pays
    off only from a few hundred rows (or columns) up, whatever the inner sizes: a 1000x784 batch
    times a 784x512 weight took 7.8 ms in one GEMM on one thread, 8.2 in two row ranges, 9.6 in
    eight and 11.1 in sixteen. So the pieces are few (MATMUL_ROWS rows and MATMUL_PIECE
    multiply-adds at least), a power of two of them (they share out evenly over the usual core
    counts), cut along the larger side of the output, so that the smaller operand is the one
    repacked (a 128x784 batch times that weight: 14% slower on one thread in two row ranges, 2%
    in two column ranges)."""
    if a.ndim != 2 or b.ndim != 2:
        return a @ b
    by_rows = a.shape[0] >= b.shape[1]
    length = a.shape[0] if by_rows else b.shape[1]
    count = min(16, length // MATMUL_ROWS, a.shape[0] * a.shape[1] * b.shape[1] // MATMUL_PIECE)
    if count < 2:
        return a @ b
    count = 1 << (count.bit_length() - 1)
    ranges = intraop.pieces(length, length // count, count)
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    if by_rows:
        tasks = [partial(np.matmul, a[r.start : r.stop], b, out=out[r.start : r.stop]) for r in ranges]
    else:
        tasks = [partial(np.matmul, a, b[:, r.start : r.stop], out=out[:, r.start : r.stop]) for r in ranges]
    intraop.run(tasks)
    return out


def transposed(b: np.ndarray) -> bool:
    """True for a transposed view of a C-contiguous matrix (``linear``'s weight.T)."""
    return b.flags.f_contiguous and not b.flags.c_contiguous


def matmul_right_grad(a: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^T @ g, the gradient of b in a @ b (2-D), laid out in memory like b: computed as
    (g^T @ a)^T when b is a transposed view, so that a Linear layer's weight gets a gradient laid
    out like it (see :func:`laid_out_like`)."""
    return matmul(g.T, a).T if transposed(b) else matmul(a.T, g)


def elementwise(ufunc: Callable[..., Any], x: np.ndarray, *others: Any) -> np.ndarray:
    """ufunc(x, *others), for ``others`` of x's shape laid out like x, or scalars. A large x is
    done in slabs of its memory on several threads, the result laid out like x."""
    if x.nbytes < 2 * TASK_BYTES:
        return ufunc(x, *others)
    order = memory_order(x)
    flat = x.transpose(order)
    if not flat.flags.c_contiguous:
        return ufunc(x, *others)
    ins = [flat.reshape(-1)]
    for other in others:
        if np.ndim(other) == 0:
            ins.append(other)
        elif np.shape(other) == x.shape and other.transpose(order).flags.c_contiguous:
            ins.append(other.transpose(order).reshape(-1))
        else:
            return ufunc(x, *others)
    dtype = ufunc(*(a if np.ndim(a) == 0 else a[:0] for a in ins)).dtype
    out = np.empty(flat.shape, dtype=dtype)
    dst = out.reshape(-1)

    def slab(r: range) -> None:
        ufunc(*(a if np.ndim(a) == 0 else a[r.start : r.stop] for a in ins), out=dst[r.start : r.stop])

    intraop.run([partial(slab, r) for r in intraop.pieces(x.size, TASK_BYTES // x.itemsize)])
    return out.transpose(inverse(order))


def binary(ufunc: Callable[..., Any], a: Any, b: Any) -> Any:
    """ufunc(a, b) with NumPy's broadcasting, a and b arrays or scalars. Operands of one shape and
    layout go through :func:`elementwise`; a short row broadcast over the leading axes (in memory
    order) of a large array, as a bias or a batch norm's statistics are, is repeated to a long row
    first (:func:`_with_long_row`): NumPy's loop over one short row at a time is 2-4x slower. An
    operand that repeats along some axes (stride 0, a broadcast gradient) counts as its row.
    Small operands go straight to the ufunc: these checks would cost more than they save."""
    if a.__class__ is not np.ndarray or b.__class__ is not np.ndarray or max(a.size, b.size) < LONG_ROW_MIN:
        return ufunc(a, b)
    if a.shape != b.shape or 0 in a.strides or 0 in b.strides:
        sa, sb = _unbroadcast(a), _unbroadcast(b)
        if sa.shape != sb.shape:
            out = _with_long_row(ufunc, sa, sb) if sa.size >= sb.size else _with_long_row(ufunc, sb, sa, swapped=True)
            if out is not None:
                return out
    return elementwise(ufunc, a, b) if a.shape == b.shape else ufunc(a, b)


def _unbroadcast(a: np.ndarray) -> np.ndarray:
    """a without the axes it repeats (stride 0, as np.broadcast_to makes), kept as length 1."""
    if 0 not in a.strides or a.size == 0:
        return a
    return a[tuple(slice(0, 1) if step == 0 else slice(None) for step in a.strides)]


def _with_long_row(
    ufunc: Callable[..., Any], big: np.ndarray, row: np.ndarray, swapped: bool = False
) -> np.ndarray | None:
    """ufunc(big, row) (ufunc(row, big) if ``swapped``) laid out like big, when row's non-1 axes
    are big's innermost in memory with at most ROW_BLOCK // 4 elements and big has many such rows;
    None otherwise. big is seen as (M, T) in memory order and the row, repeated to ~ROW_TILE
    elements, meets blocks of rows; the pieces run on several threads. A row that also repeats
    along some of those innermost axes is first spelt out along them, when that is small."""
    lead = big.ndim - row.ndim
    if lead < 0 or big.dtype.kind != "f" or any(r not in (1, n) for r, n in zip(row.shape, big.shape[lead:])):
        return None
    order = memory_order(big)
    flat = big.transpose(order)
    full_row = row.reshape((1,) * lead + row.shape).transpose(order)
    kept = [i for i, n in enumerate(full_row.shape) if n != 1]
    if not kept or not flat.flags.c_contiguous:
        return None
    inner = kept[0]
    t = math.prod(flat.shape[inner:])
    if kept != list(range(inner, big.ndim)):  # the row repeats along inner axes too (a group norm's statistics)
        if t * AFFINE_FOLD > big.size:
            return None
        # spelt out along them (small): NumPy's loop would otherwise run along the innermost repeat alone
        full_row = np.ascontiguousarray(np.broadcast_to(full_row, (1,) * inner + flat.shape[inner:]))
        if not many_short_rows(flat, inner):
            out = ufunc(full_row, flat) if swapped else ufunc(flat, full_row)
            return out.transpose(inverse(order))
    elif not many_short_rows(flat, inner):
        return None
    tail = np.ascontiguousarray(full_row).reshape(t)
    dtype = (ufunc(tail[:0], flat.reshape(-1)[:0]) if swapped else ufunc(flat.reshape(-1)[:0], tail[:0])).dtype
    out = np.empty(flat.shape, dtype=dtype)
    src, dst = flat.reshape(-1, t), out.reshape(-1, t)
    m, r = src.shape[0], max(1, min(ROW_TILE // t, src.shape[0]))
    long_row = np.empty(r * t, dtype=tail.dtype)
    long_row.reshape(r, t)[...] = tail

    def piece(rows: range) -> None:
        full = rows.start + (rows.stop - rows.start) // r * r
        for lo, hi, operand in ((rows.start, full, long_row), (full, rows.stop, tail)):
            if hi > lo:
                s, d = src[lo:hi].reshape(-1, operand.size), dst[lo:hi].reshape(-1, operand.size)
                ufunc(operand, s, out=d) if swapped else ufunc(s, operand, out=d)

    if out.nbytes < 2 * TASK_BYTES:
        piece(range(m))
    else:
        per_task = max(r, TASK_BYTES // (t * big.itemsize) // r * r)
        intraop.run([partial(piece, rows) for rows in intraop.pieces(m, per_task)])
    return out.transpose(inverse(order))


def power(x: np.ndarray, p: float) -> np.ndarray:
    """x ** p for a constant p, in x's dtype. For a float x, the exponents PyTorch computes without
    pow take the same route (square, sqrt, 1 / sqrt, reciprocal, x*x*x, 1 / (x*x)): NumPy's pow
    took 497-548 us for 256x1024 float32 at p = +-0.5, sqrt 115."""
    if x.dtype.kind == "f":
        if p == 2:
            return np.square(x)
        if p == 0.5:
            return np.sqrt(x)
        if p == -0.5:
            return np.reciprocal(np.sqrt(x))
        if p == -1:
            return np.reciprocal(x)
        if p == 3:
            return x * x * x
        if p == -2:
            return np.reciprocal(x * x)
        if p == 1:
            return x.copy()
    return np.asarray(x ** np.asarray(p, dtype=x.dtype))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0) elementwise, laid out like x, on several threads when large. Against rows of
    zeros (:func:`_max_with_zeros`): NumPy's maximum with a scalar 0 took 98 us for 256x1024
    float32, with an array 38 us."""
    if x.size < ROW_TILE or x.dtype.kind != "f":  # a short loop either way
        return np.maximum(x, 0)
    order = memory_order(x)
    flat = x.transpose(order)
    if not flat.flags.c_contiguous:
        return np.maximum(x, 0)
    if x.nbytes >= 2 * TASK_BYTES:
        return elementwise(_max_with_zeros, x)
    out = np.empty_like(x)  # laid out like x, and owning its memory (not a view of a flat array)
    _max_with_zeros(flat.reshape(-1), out.transpose(order).reshape(-1))
    return out


def _max_with_zeros(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """np.maximum(x, 0) of a 1-D x, in rows of ROW_TILE against a row of zeros."""
    out = np.empty_like(x) if out is None else out
    full = x.size - x.size % ROW_TILE
    if full:
        zeros = np.zeros(ROW_TILE, dtype=x.dtype)
        np.maximum(x[:full].reshape(-1, ROW_TILE), zeros, out=out[:full].reshape(-1, ROW_TILE))
    if full < x.size:
        np.maximum(x[full:], np.zeros(x.size - full, dtype=x.dtype), out=out[full:])
    return out


def _passed_by_relu(g: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return masked(g, np.not_equal(y, 0), out)


def relu_grad(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g where y != 0, else 0: relu's input gradient from its output y (>= 0, or NaN: PyTorch
    passes g there, as ``not y <= 0``), a slab at a time (the mask of a slab stays in the cache), on
    several threads."""
    return elementwise(_passed_by_relu, g, y)


# --------------------------------------------------------------------------- grouped and depthwise conv2d

BAND_BYTES = 1 << 20  # output (or image) rows a band works on at a time (fewer, larger bands: less Python per element)
Landing = tuple[int, tuple[slice, slice], tuple[slice, slice]]  # see _landings
COLUMN_MAJOR = 1 << 62  # Im2col's ``row_major_from`` that makes its blocks column-major whatever the channels


def grouped_conv_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Shape, dilation: Shape, padding: Shape, groups: int
) -> np.ndarray:
    """conv2d with ``groups``: x (N, C, H, W), w (kh, kw, C/G, C_out), b (C_out,) or None ->
    (N, OH, OW, C_out), laid out batch-inner as :func:`conv_forward`'s output; output channel o
    reads input channels g*C/G ... (g+1)*C/G - 1 of its group g = o // (C_out/G).

    Depthwise (one input channel per group): :func:`depthwise_conv_forward`.
    Otherwise the blocks of the column-major im2col matrix (:class:`Im2col`, the padding in its
    copy) are copied group-major (:func:`_group_major_block`), and each block is multiplied by
    all G weights in one batched GEMM, its output columns written in place, groups of blocks on
    several threads."""
    kh, kw, cg, c_out = w.shape
    if cg == 1:
        return depthwise_conv_forward(x, w, b, stride, dilation, padding)
    m = c_out // groups
    cols = Im2col(x, (kh, kw), stride, dilation, padding, COLUMN_MAJOR)
    weight = np.ascontiguousarray(w.reshape(kh * kw * cg, groups, m).transpose(1, 0, 2))  # (G, K, M)
    y = np.empty((cols.oh * cols.ow * cols.n, c_out), dtype=np.result_type(x, w))

    def multiply(blocks: range) -> None:
        buffer = cols.buffer()
        for i in blocks:
            block = _group_major_block(cols, i, buffer, groups)  # (G, K, rows)
            out = y[cols.rows[i]]
            np.matmul(block.transpose(0, 2, 1), weight, out=out.reshape(-1, groups, m).transpose(1, 0, 2))
            if b is not None:
                add_row(out, b)

    intraop.run([partial(multiply, blocks) for blocks in intraop.pieces(len(cols.rows), 1)])
    return conv_output(y, cols.n, cols.oh, cols.ow)


def grouped_conv_weight_grad(
    x: np.ndarray, g_rows: np.ndarray, w_shape: Shape, stride: Shape, dilation: Shape, padding: Shape, groups: int
) -> np.ndarray:
    """conv2d's weight gradient with ``groups``, of ``w_shape`` (kh, kw, C/G, C_out), from the
    batch-inner (OH*OW*N, C_out) output gradient: per group, that group's im2col columns
    transposed times its output channels of g (one batched GEMM per block of
    :func:`grouped_conv_forward`), the blocks' products added up in task order.
    Depthwise: :func:`depthwise_conv_weight_grad`."""
    if w_shape[2] == 1:
        return depthwise_conv_weight_grad(x, g_rows, w_shape, stride, dilation, padding)
    return _grouped_blocks(x, None, g_rows, w_shape, stride, dilation, padding, groups)[1]


def grouped_conv_forward_and_weight_grad(
    x: np.ndarray, w: np.ndarray, g_rows: np.ndarray, stride: Shape, dilation: Shape, padding: Shape, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grouped_conv_forward` without bias and :func:`grouped_conv_weight_grad` for the
    batch-inner output gradient ``g_rows``, from one pass over the group-major im2col blocks (one
    copy of x's padded image, each block copied once): as :func:`conv_forward_and_weight_grad`,
    for a grouped transposed convolution's gradients. Not for depthwise weights (C/G = 1)."""
    y, gw = _grouped_blocks(x, w, g_rows, w.shape, stride, dilation, padding, groups)
    assert y is not None
    return y, gw


def _grouped_blocks(
    x: np.ndarray,
    w: np.ndarray | None,
    g_rows: np.ndarray,
    w_shape: Shape,
    stride: Shape,
    dilation: Shape,
    padding: Shape,
    groups: int,
) -> tuple[np.ndarray | None, np.ndarray]:
    """One pass over x's group-major im2col blocks: each block times ``w`` (the grouped conv2d
    of x, without bias; None: not computed) and its transpose times g (the weight gradient)."""
    kh, kw, cg, c_out = w_shape
    m = c_out // groups
    cols = Im2col(x, (kh, kw), stride, dilation, padding, COLUMN_MAJOR)
    weight = None if w is None else np.ascontiguousarray(w.reshape(kh * kw * cg, groups, m).transpose(1, 0, 2))
    y = None if w is None else np.empty((cols.oh * cols.ow * cols.n, c_out), dtype=np.result_type(x, w))
    dtype = np.result_type(x, g_rows)

    def multiply(blocks: range) -> np.ndarray:
        buffer = cols.buffer()
        total = np.zeros((groups, kh * kw * cg, m), dtype=dtype)
        part = np.empty_like(total)
        for i in blocks:
            block = _group_major_block(cols, i, buffer, groups)  # (G, K, rows)
            if y is not None and weight is not None:
                out = y[cols.rows[i]].reshape(-1, groups, m).transpose(1, 0, 2)
                np.matmul(block.transpose(0, 2, 1), weight, out=out)
            np.matmul(block, g_rows[cols.rows[i]].reshape(-1, groups, m).transpose(1, 0, 2), out=part)
            total += part
        return total

    total = sum_in_order(intraop.run([partial(multiply, blocks) for blocks in intraop.pieces(len(cols.rows), 1)]))
    gw = total.reshape(groups, kh, kw, cg, m).transpose(1, 2, 3, 0, 4).reshape(w_shape)
    return (None if y is None else conv_output(y, cols.n, cols.oh, cols.ow)), gw


def _group_major_block(cols: Im2col, index: int, buffer: np.ndarray, groups: int) -> np.ndarray:
    """Block ``index`` of a column-major :class:`Im2col` transposed and split by group:
    (G, kh*kw*C/G, its rows), the columns of group g (kernel offset, then channel) in row g. The
    copy reads runs along the image rows of all N images, as the plain column-major block does."""
    i, j, rows, columns = cols.blocks[index]
    kh, kw, c = cols.win.shape[:3]
    win = cols.win.reshape(kh, kw, groups, c // groups, *cols.win.shape[3:]).transpose(2, 0, 1, 3, 4, 5, 6)
    count = rows * columns * cols.n
    block = buffer[: cols.k * count].reshape(groups, cols.k // groups, count)
    np.copyto(block.reshape(*win.shape[:4], rows, columns, cols.n), win[:, :, :, :, i : i + rows, j : j + columns])
    return block


def grouped_conv_input_grad(
    g_rows: np.ndarray, w: np.ndarray, x_shape: Shape, stride: Shape, dilation: Shape, padding: Shape, groups: int
) -> np.ndarray:
    """conv2d's input gradient with ``groups``: g_rows (OH*OW*N, C_out) batch-inner, w (kh, kw,
    C/G, C_out) -> (N, C, H, W), laid out (H, W, N, C) like conv2d's outputs.

    Depthwise: :func:`depthwise_conv_input_grad`. Otherwise the image is filled a band of rows at
    a time, bands on several threads: for each kernel offset, the windows whose element at that
    offset lands in the band (padding left out, :func:`_landings`) have their gradient times the
    offset's weights, one small batched GEMM per group (C_out/G by C/G), added onto the pixels they
    read; the offset that lands on every pixel of the band (if one does) writes its product there
    first, with no zeros and no add."""
    kh, kw, cg, c_out = w.shape
    if cg == 1:
        return depthwise_conv_input_grad(g_rows, w, x_shape, stride, dilation, padding)
    m = c_out // groups
    n, c, h, wd = x_shape
    oh, ow = out_hw((h + 2 * padding[0], wd + 2 * padding[1]), (kh, kw), stride, dilation)
    dtype = np.result_type(g_rows, w)
    out = np.empty((h, wd, n, c), dtype=dtype)
    g = g_rows.reshape(oh, ow, n, c_out)
    weights = np.ascontiguousarray(w.reshape(kh * kw, cg, groups, m).transpose(0, 2, 3, 1))  # (kh*kw, G, M, C/G)

    def fold_band(band: range) -> None:
        products = intraop.scratch(-(-len(band) // stride[0]) * ow * n * c, dtype)
        found = _landings((kh, kw), stride, dilation, padding, (h, wd), (oh, ow), band)
        # an image slice steps by the stride: equal to the band's (step 1) only if it lands on every pixel
        landings, covered = _covering_first(found, (slice(band.start, band.stop, 1), slice(0, wd, 1)))
        if not covered:
            out[band.start : band.stop] = 0
        for i, (k, (wr, wc), (ir, ic)) in enumerate(landings):
            src, landing = g[wr, wc], out[ir, ic]
            part = landing if i == 0 and covered else products[: landing.size].reshape(landing.shape)
            r, cols = src.shape[:2]
            by_group = src.reshape(r, cols * n, groups, m).transpose(0, 2, 1, 3)
            np.matmul(by_group, weights[k], out=part.reshape(r, cols * n, groups, cg).transpose(0, 2, 1, 3))
            if part is not landing:
                landing += part  # a view: `out[ir, ic] += ...` would copy it back once more

    intraop.run([partial(fold_band, band) for band in _bands(h, wd * n * c * out.itemsize)])
    return out.transpose(2, 3, 0, 1)


def depthwise_conv_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Shape, dilation: Shape, padding: Shape
) -> np.ndarray:
    """A depthwise conv2d (groups = C_in, M = C_out / C_in output channels each): x (N, C_in, H, W),
    w (kh, kw, 1, C_out), b (C_out,) or None -> (N, OH, OW, C_out) laid out batch-inner.

    y[n,i,j,o] = b[o] + sum over (p, q) of xp[n, o // M, i*sh + p*dh, j*sw + q*dw] * w[p,q,0,o]
    (xp: x zero-padded, laid out (H, W, N, C) by :func:`_depthwise_image`), computed by
    :func:`_correlation_tasks`."""
    kh, kw, _, c = w.shape
    image = _depthwise_image(x, padding, c // x.shape[1])
    n = image.shape[0]
    oh, ow = out_hw(image.shape[2:], (kh, kw), stride, dilation)
    y = np.empty((oh, ow, n * c), dtype=np.result_type(x, w))
    weights = _across_images(w, n)
    intraop.run(_correlation_tasks(image, weights, stride, dilation, y, None if b is None else np.tile(b, n)))
    return conv_output(y.reshape(oh * ow * n, c), n, oh, ow)


def depthwise_conv_weight_grad(
    x: np.ndarray, g_rows: np.ndarray, w_shape: Shape, stride: Shape, dilation: Shape, padding: Shape
) -> np.ndarray:
    """A depthwise conv2d's weight gradient, (kh, kw, 1, C_out): dw[p,q,0,o] = sum over n, i, j of
    g[n,i,j,o] * xp[n, o // M, i*sh + p*dh, j*sw + q*dw] (M = C_out / C_in), from g_rows
    (OH*OW*N, C_out) batch-inner: per band of output rows (on several threads), one ``np.einsum``
    of the band's windows (those of :func:`_correlation_tasks`) and g, summing in runs of N*C
    values; the bands' sums added in task order, then over the N images."""
    kh, kw, _, c = w_shape
    image = _depthwise_image(x, padding, c // x.shape[1])
    n = image.shape[0]
    oh, ow = out_hw(image.shape[2:], (kh, kw), stride, dilation)
    g = g_rows.reshape(oh, ow, n * c)

    def band(rows: range) -> np.ndarray:
        windows = _window_rows(image, (kh, kw), stride, dilation, rows)
        return np.einsum("ipjqk,ijk->pqk", windows, g[rows.start : rows.stop])

    total = sum_in_order(intraop.run([partial(band, rows) for rows in _bands(oh, ow * n * c * g.itemsize)]))
    return total.reshape(kh, kw, n, c).sum(axis=2).reshape(w_shape)


def depthwise_conv_input_grad(
    g_rows: np.ndarray, w: np.ndarray, x_shape: Shape, stride: Shape, dilation: Shape, padding: Shape
) -> np.ndarray:
    """A depthwise conv2d's input gradient: g_rows (OH*OW*N, C_out) batch-inner -> (N, C_in, H, W)
    laid out (H, W, N, C), dx[n, c, h, w] = sum over m and the (i, p), (j, q) with
    i*sh + p*dh - ph = h and j*sw + q*dw - pw = w of g[n, i, j, c*M + m] * w[p, q, 0, c*M + m].

    The image rows h of one phase a = h mod sh (and columns likewise) are reached by the kernel
    rows p with (a + ph - p*dh) divisible by sh, from g's rows u + (a + ph - p*dh) / sh
    (:func:`_phases`): per phase, a correlation at stride 1 of g (zero-padded) with those kernel
    taps in reverse order (:func:`_correlation_tasks`, all phases' bands from one queue), written
    straight into the phase's rows and columns; the M output channels of each input channel are
    added up after. At stride 1 that is one correlation with the flipped kernel."""
    kh, kw, _, c_out = w.shape
    n, c, h, wd = x_shape
    oh, ow = out_hw((h + 2 * padding[0], wd + 2 * padding[1]), (kh, kw), stride, dilation)
    (rows, pad_h), (cols, pad_w) = (
        _phases(*axis) for axis in zip((kh, kw), stride, dilation, padding, (h, wd), (oh, ow))
    )
    g = conv_output(g_rows, n, oh, ow).transpose(0, 3, 1, 2)  # (N, C_out, OH, OW), laid out (OH, OW, N, C_out)
    image = _depthwise_image(g, (pad_h, pad_w), 1)
    weights = _across_images(w, n)
    out = np.empty((h, wd, n * c_out), dtype=np.result_type(g_rows, w))
    tasks = []
    for a, taps_h, first_h, step_h, count_h in rows:
        for b, taps_w, first_w, step_w, count_w in cols:
            target = out[a :: stride[0], b :: stride[1]]
            if not (taps_h and taps_w):  # pixels no window reads
                target[...] = 0
                continue
            top, left = first_h + pad_h, first_w + pad_w
            span_h, span_w = (
                (count_h - 1) + (len(taps_h) - 1) * step_h + 1,
                (count_w - 1) + (len(taps_w) - 1) * step_w + 1,
            )
            view = image[:, :, top : top + span_h, left : left + span_w]
            tasks += _correlation_tasks(view, weights[taps_h][:, taps_w], (1, 1), (step_h, step_w), target)
    intraop.run(tasks)
    m = c_out // c
    result = out.reshape(h, wd, n, c_out)
    if m > 1:  # the M output channels of each input channel add up
        per_output = result.reshape(h, wd, n, c, m)
        result = per_output[..., 0].copy()
        for k in range(1, m):
            result += per_output[..., k]
    return result.transpose(2, 3, 0, 1)


def _phases(
    k: int, stride: int, dilation: int, pad: int, size: int, out: int
) -> tuple[list[tuple[int, list[int], int, int, int]], int]:
    """Along one axis of a convolution's input gradient: for each phase a < stride of the image
    positions a + stride*u (u < count), the kernel taps p that reach it, in reverse order, for which
    dx[a + stride*u] = sum over j of g[u + first + j*step] * w[taps[j]]: (a, taps, first, step,
    count); and the padding of g that every phase's reads fit in."""
    phases, pad_g = [], 0
    for a in range(min(stride, size)):
        count = len(range(a, size, stride))
        taps = [p for p in reversed(range(k)) if (a + pad - p * dilation) % stride == 0]
        if not taps:
            phases.append((a, taps, 0, 1, count))
            continue
        offsets = [(a + pad - p * dilation) // stride for p in taps]  # increasing by a constant step
        step = offsets[1] - offsets[0] if len(taps) > 1 else 1
        pad_g = max(pad_g, -offsets[0], count - 1 + offsets[-1] - (out - 1))
        phases.append((a, taps, offsets[0], step, count))
    return phases, pad_g


def _correlation_tasks(
    image: np.ndarray,
    weights: np.ndarray,
    stride: Shape,
    dilation: Shape,
    out: np.ndarray,
    bias: np.ndarray | None = None,
) -> list[Callable[[], None]]:
    """Tasks that fill out (OH, OW, N*C) (any strides) with the per-channel correlation of image
    (N, C, H, W), laid out (H, W, N, C), and weights (kh, kw, N*C) (each channel's repeated across
    the N images), plus ``bias`` (N*C,): out[i, j, k] = sum over (p, q) of
    image[k // C, k % C, i*sh + p*dh, j*sw + q*dw] * weights[p, q, k] + bias[k].

    A band of output rows per task: one ``np.einsum`` over the band's windows, the view
    (rows, kh, OW, kw, N*C) of :func:`_window_rows`, whose inner loop multiplies and adds runs of
    N*C values into the output in one pass per kernel offset (NumPy's multiply then add: two
    passes, and 2x the time)."""
    kernel = weights.shape[:2]

    def band(rows: range) -> None:
        part = out[rows.start : rows.stop]
        np.einsum("ipjqk,pqk->ijk", _window_rows(image, kernel, stride, dilation, rows), weights, out=part)
        if bias is not None:
            part += bias

    return [partial(band, rows) for rows in _bands(out.shape[0], out.shape[1] * out.shape[2] * out.itemsize)]


def _depthwise_image(x: np.ndarray, padding: Shape, repeat: int) -> np.ndarray:
    """x (N, C, H, W) zero-padded, laid out (H, W, N, C) in memory (a copy unless there is no
    padding and x is laid out so, as conv2d's outputs are), each channel ``repeat`` times in a row."""
    image = pad_image(x, padding, [2, 3, 0, 1]).transpose(2, 3, 0, 1)  # (H, W, N, C)
    if repeat > 1:
        image = np.repeat(image, repeat, axis=3)
    elif not image.flags.c_contiguous:  # laid out so, but with gaps (a slice of channels): its windows would be copied
        image = copy_in_slabs(image, np.empty(image.shape, dtype=image.dtype))
    return image.transpose(2, 3, 0, 1)


def _window_rows(image: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape, rows: range) -> np.ndarray:
    """The sliding windows of output rows ``rows`` of image (N, C, H, W) laid out (H, W, N, C), as
    the view (rows, kh, OW, kw, N*C): each window element a run of N*C values."""
    (kh, _), (sh, _), (dh, _) = kernel, stride, dilation
    part = image[:, :, rows.start * sh : (rows.stop - 1) * sh + dh * (kh - 1) + 1]
    win = windows(part, kernel, stride, dilation)  # (N, rows, OW, kh, kw, C)
    n, r, ow, _, kw, c = win.shape
    return win.transpose(1, 3, 2, 4, 0, 5).reshape(r, kh, ow, kw, n * c)


def _across_images(w: np.ndarray, n: int) -> np.ndarray:
    """A depthwise weight (kh, kw, 1, C) as (kh, kw, N*C): each offset's C weights repeated for N
    images, so that a product with an (..., N, C) image runs over N*C values, not N runs of C."""
    kh, kw, _, c = w.shape
    return np.tile(w.reshape(kh * kw, 1, c), (1, n, 1)).reshape(kh, kw, n * c)


def _bands(count: int, row_bytes: int) -> list[range]:
    """range(count) rows cut into bands of about BAND_BYTES (at least one row each)."""
    return intraop.pieces(count, max(1, BAND_BYTES // max(1, row_bytes)), max(1, count))


def _landings(
    kernel: Shape, stride: Shape, dilation: Shape, padding: Shape, image_hw: Shape, out_hw: Shape, image_rows: range
) -> Iterator[Landing]:
    """For each kernel offset k = p*kw + q: the windows whose (p, q) element lands on the unpadded
    image's ``image_rows``, and the pixels it lands on, as (k, (window rows, window columns),
    (image rows, image columns)); offsets that land nowhere there (on the padding only) are left out."""
    for p in range(kernel[0]):
        wr, ir = _landing(p, stride[0], dilation[0], padding[0], range(out_hw[0]), image_rows)
        if wr.start == wr.stop:
            continue
        for q in range(kernel[1]):
            wc, ic = _landing(q, stride[1], dilation[1], padding[1], range(out_hw[1]), range(image_hw[1]))
            if wc.start != wc.stop:
                yield p * kernel[1] + q, (wr, wc), (ir, ic)


def _covering_first(landings: Iterable[Landing], band: tuple[slice, slice]) -> tuple[list[Landing], bool]:
    """The landings of :func:`_landings`, one whose image slices are the whole ``band`` first, and
    whether there is one: that offset's product can be written straight into the band, with no
    zeros first and no separate add."""
    found = list(landings)
    for i, landing in enumerate(found):
        if landing[2] == band:
            return [landing, *found[:i], *found[i + 1 :]], True
    return found, False


def _landing(k: int, stride: int, dilation: int, pad: int, among: range, image: range) -> tuple[slice, slice]:
    """Along one axis: the windows ``among`` these whose element k (at i*stride + k*dilation - pad
    of the unpadded image, for window i) lands in ``image``, and the positions it lands on."""
    shift = k * dilation - pad
    lo = max(among.start, -((shift - image.start) // stride))
    hi = max(lo, min(among.stop, -((shift - image.stop) // stride)))
    first = lo * stride + shift
    return slice(lo, hi), slice(first, first + stride * (hi - lo - 1) + 1, stride)
