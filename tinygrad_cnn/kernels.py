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

from collections.abc import Iterator
from typing import Any

import numpy as np

Shape = tuple[int, ...]
Axes = tuple[int, ...]

ROW_BLOCK = 1024  # elements summed side by side when adding up many short rows
UNROLL_MAX = 64  # max over at most this many elements per output takes the running-maximum path
LONG_RUN_BYTES = 256  # contiguous runs at least this long copy and add at close to full speed
FOLD_BLOCK_BYTES = 2 << 20  # window gradients folded at a time: well inside a core's L2
IM2COL_BLOCK_BYTES = 2 << 20  # how much of the im2col matrix is copied and multiplied at a time
SLAB_BYTES = 256 << 10  # how much of the source a layout-changing copy reads at a time


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
    """x.sum(axis, keepdims); many short rows (a bias gradient) are summed in blocks."""
    lead = len(axis)
    if axis == tuple(range(lead)) and many_short_rows(x, lead):
        y = _sum_rows(x.reshape(-1, int(np.prod(x.shape[lead:]))))
        return y.reshape(keepdims_shape(x.shape, axis) if keepdims else x.shape[lead:])
    return np.asarray(x.sum(axis=axis, keepdims=keepdims))


def many_short_rows(x: np.ndarray, lead: int) -> bool:
    """True when NumPy would loop over x one short row (the axes after ``lead``) at a time, as when
    summing a bias gradient or adding a bias: worth blocking rows together."""
    width = int(np.prod(x.shape[lead:]))
    return x.dtype.kind == "f" and x.flags.c_contiguous and 0 < width <= ROW_BLOCK // 4 and x.size >= 4 * ROW_BLOCK


def _row_blocks(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A C-contiguous (M, T) seen as blocks of r rows, each one row of r*T (~1024) elements: the
    (M // r, r*T) view, the remaining rows (M % r, T), and r."""
    m, t = rows.shape
    r = ROW_BLOCK // t
    full = m - m % r
    return rows[:full].reshape(full // r, r * t), rows[full:], r


def _sum_rows(rows: np.ndarray) -> np.ndarray:
    """rows (M, T) summed over M. NumPy adds short rows one by one with a loop of only T elements;
    summing blocks of r rows as rows of r*T elements first makes its inner loop r times longer."""
    blocks, rest, r = _row_blocks(rows)
    total = blocks.sum(axis=0).reshape(r, rows.shape[1]).sum(axis=0)
    return total + rest.sum(axis=0) if len(rest) else total


def add_row(y: np.ndarray, row: np.ndarray) -> None:
    """y += row in place, for a bias: y (M, T), row (T,) or anything else that broadcasts.
    As with sums, NumPy would loop over one short row of y at a time; adding the row repeated to
    ~1024 elements to blocks of rows makes its loop that much longer."""
    if not (y.ndim == 2 and row.shape == y.shape[1:] and many_short_rows(y, 1)):
        y += row
        return
    blocks, rest, r = _row_blocks(y)
    blocks += np.tile(row, r)
    rest += row


# --------------------------------------------------------------------------- maximum


def max_and_where(x: np.ndarray, axis: Axes) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """y = x.max(axis) (axes removed), and what finds each first maximum again (``where``):
    (x, y) when few elements make each output (pooling windows: y is a running maximum over
    strided views of x, no copy of the windows), else (the index of the first maximum,)."""
    count = int(np.prod([x.shape[a] for a in axis]))
    if count <= UNROLL_MAX and x.size >= 4 * count:
        y = _running_max(x, axis)
        return y, (x, y)
    kept = [i for i in range(x.ndim) if i not in axis]
    flat = x.transpose(kept + list(axis)).reshape([x.shape[i] for i in kept] + [count])
    first = flat.argmax(axis=-1)
    return np.take_along_axis(flat, first[..., None], axis=-1)[..., 0], (first,)


def first_max_mask(x_shape: Shape, axis: Axes, where: tuple[np.ndarray, ...], dtype: Any) -> np.ndarray:
    """The (x_shape) mask, 1 at each output's first maximum and 0 elsewhere."""
    mask = np.zeros(x_shape, dtype=dtype)
    for pos, hit in _first_max_masks(x_shape, axis, where):
        _select(mask, axis, pos)[...] = hit
    return mask


def to_first_max(g: np.ndarray, x_shape: Shape, axis: Axes, where: tuple[np.ndarray, ...]) -> np.ndarray:
    """g (x's shape with ``axis`` removed or kept as 1) written at each first maximum, 0 elsewhere:
    the (x_shape) gradient of a max, straight into one array laid out in memory like x (for
    pooling windows: like the image, so the Fold that follows is a free reshape)."""
    masks = _first_max_masks(x_shape, axis, where)
    grad = np.empty_like(where[0], dtype=g.dtype) if len(where) == 2 else np.empty(x_shape, dtype=g.dtype)
    g_kept = g.reshape(masks[0][1].shape)
    for pos, hit in masks:
        np.multiply(g_kept, hit, out=_select(grad, axis, pos))
    return grad


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
    ``shape`` from the outermost in memory): always a copy, laid out so.
    """
    if layout is not None:
        dst = np.empty([shape[a] for a in layout], dtype=x.dtype).transpose(np.argsort(layout))
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


def memory_order(x: np.ndarray) -> list[int]:
    """x's axes from the outermost in memory to the innermost (by stride; ties keep axis order)."""
    return sorted(range(x.ndim), key=lambda a: -abs(x.strides[a]))


def copy_in_slabs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """dst[...] = src, for arrays of one shape laid out differently in memory (a transpose);
    returns dst. Copied a slab of src's outermost memory axis at a time: one ``np.copyto``
    walks dst in its own order and, across layouts, reads src one element per cache line, so
    that src falls out of the cache before the rest of each line is used; a slab stays in it."""
    if src.ndim == 0 or src.size == 0:
        dst[...] = src
        return dst
    axis = memory_order(src)[0]
    step = max(1, SLAB_BYTES * src.shape[axis] // max(1, src.nbytes))
    index: list[Any] = [slice(None)] * src.ndim
    for start in range(0, src.shape[axis], step):
        index[axis] = slice(start, start + step)
        np.copyto(dst[tuple(index)], src[tuple(index)])
    return dst


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


def _clipped_offset_views(
    image: np.ndarray, out: tuple[int, int], kernel: Shape, stride: Shape, padding: Shape, dilation: Shape
) -> Iterator[tuple[int, np.ndarray, tuple[slice, slice]]]:
    """:func:`_offset_views` of an image seen zero-padded by ``padding`` without the padded copy:
    for each kernel offset (p, q), row-major, its index p*kw + q, the view (N, OH', OW', C) of the pixels inside the
    image that the (p, q) elements of the (OH, OW) = ``out`` windows read, and which of those
    windows read them (their rows and columns); the windows whose (p, q) element falls on the
    padding read zeros and are left out. Offsets that read only padding are skipped."""
    ranges = []
    for size, n_out, k, s, pad, d in zip(image.shape[1:3], out, kernel, stride, padding, dilation):
        axis = []
        for offset in range(0, d * k, d):  # window i reads row i*s + offset - pad of the image
            first = max(0, -(-(pad - offset) // s))
            stop = min(n_out, (size - 1 + pad - offset) // s + 1)
            start = first * s + offset - pad
            axis.append((slice(first, stop), slice(start, start + s * (stop - first - 1) + 1, s), stop > first))
        ranges.append(axis)
    for p, (windows_h, rows, any_h) in enumerate(ranges[0]):
        for q, (windows_w, cols, any_w) in enumerate(ranges[1]):
            if any_h and any_w:
                yield p * kernel[1] + q, image[:, rows, cols, :], (windows_h, windows_w)


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
    out = np.zeros((n, h, w, c), dtype=g.dtype)  # channels-last, like the windows
    # Each slice-add below reads one kernel offset of g. Unless g is laid out offset-major
    # already, that is runs of only C elements; copying a few images' windows at a time
    # offset-major first (a block that stays in cache) makes every slice-add read one block.
    rearrange = c * g.itemsize < LONG_RUN_BYTES and not g.transpose(3, 4, 0, 1, 2, 5).flags.c_contiguous
    for images in _image_blocks(n, g[:1].nbytes, FOLD_BLOCK_BYTES) if rearrange else [slice(0, n)]:
        part = g[images].transpose(3, 4, 0, 1, 2, 5)  # (kh, kw, n', OH, OW, C)
        part = np.ascontiguousarray(part) if rearrange else part
        offsets = (part[p, q] for p in range(kh) for q in range(kw))
        for view, offset_grad in zip(_offset_views(out[images], kernel, stride, dilation), offsets):
            view += offset_grad
    return out.transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------- conv2d


def im2col_blocks(
    x: np.ndarray, kernel: Shape, stride: Shape, dilation: Shape, padding: Shape = (0, 0)
) -> Iterator[tuple[slice, np.ndarray]]:
    """The (OH*OW*N, kh*kw*C) im2col matrix of x (N, C, H, W) zero-padded by ``padding`` (rows,
    columns on each side), a block of consecutive rows at a time: (which rows, the block).
    Rows run batch-inner (OH, OW, N); columns (kh, kw, C). Each block is copied into one buffer
    of about IM2COL_BLOCK_BYTES, reused for the next block: use it before asking for the next.

    A block at a time because the whole matrix is kh*kw times the image: copying it all and then
    multiplying streams it through memory twice, where a block that stays in the cache is
    multiplied right after its copy (a 3x3 conv of 32 channels on 32x32 images, batch 64: 49 ms
    for the whole matrix, 21 ms in blocks), and it is never all in memory at once.

    Row-major, the copy reads each window's channels, a contiguous run of C (times kw when the
    image is channels-last). With few channels that run is short, and the copy is several times
    faster column-major, from the image laid out batch-inner (C, H, W, N) (a copy of the image
    first, unless it is laid out so already, as conv2d's outputs are when C is 1): that reads
    runs along the image's rows of all N images. The GEMM takes either memory order. Padding
    goes into that copy of the image (or one in x's own memory order), never a separate pass.
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = kernel, stride, dilation, padding
    oh, ow = out_hw((h + 2 * ph, w + 2 * pw), kernel, stride, dilation)
    s_n, s_c, s_h, s_w = x.strides  # of the windows (OH, OW, N, kh, kw, C) read row-major, as below:
    run = _contiguous_run((oh, ow, n, kh, kw, c), (sh * s_h, sw * s_w, s_n, dh * s_h, dw * s_w, s_c), x.itemsize)
    row_major = run * x.itemsize >= LONG_RUN_BYTES
    image = pad_image(x, padding, memory_order(x) if row_major else [1, 2, 3, 0])
    win = windows(image, kernel, stride, dilation)  # (N, OH, OW, kh, kw, C)
    win = win.transpose(1, 2, 0, 3, 4, 5) if row_major else win.transpose(3, 4, 5, 1, 2, 0)
    k = kh * kw * c
    pixels = max(1, IM2COL_BLOCK_BYTES // max(1, n * k * x.itemsize))  # output pixels (of all N images) per block
    if pixels >= oh * ow:  # one block: the whole matrix, in one copy
        yield slice(0, oh * ow * n), win.reshape(oh * ow * n, k) if row_major else win.reshape(k, oh * ow * n).T
        return
    buffer = np.empty(min(pixels, oh * ow) * n * k, dtype=x.dtype)
    for i, j, rows, cols in _pixel_blocks(oh, ow, pixels):
        count = rows * cols * n
        first = (i * ow + j) * n
        if row_major:
            block = buffer[: count * k].reshape(count, k)
            np.copyto(block.reshape(rows, cols, n, kh, kw, c), win[i : i + rows, j : j + cols])
        else:
            block_t = buffer[: count * k].reshape(k, count)
            np.copyto(block_t.reshape(kh, kw, c, rows, cols, n), win[:, :, :, i : i + rows, j : j + cols])
            block = block_t.T
        yield slice(first, first + count), block


def _pixel_blocks(oh: int, ow: int, pixels: int) -> Iterator[tuple[int, int, int, int]]:
    """The (OH, OW) grid of output pixels cut into blocks of at most ``pixels`` (at least one)
    that are consecutive in row-major order: (first row, first column, rows, columns), whole rows
    when a row fits, else pieces of one row."""
    if pixels >= ow:
        step = pixels // ow
        for i in range(0, oh, step):
            yield i, 0, min(step, oh - i), ow
        return
    for i in range(oh):
        for j in range(0, ow, pixels):
            yield i, j, 1, min(pixels, ow - j)


def conv_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Shape, dilation: Shape, padding: Shape
) -> tuple[np.ndarray, np.ndarray | None]:
    """im2col(x padded) @ w + b: conv2d's output (N, OH, OW, C_out) from x (N, C, H, W),
    w (kh, kw, C, C_out) and b (C_out,) or None, laid out batch-inner (see :func:`conv_output`).
    Each block of :func:`im2col_blocks` is multiplied (and its bias added) while it is in the
    cache. Also returns the im2col matrix when it was a single block (small: worth keeping for
    :func:`conv_weight_grad`), else None."""
    kh, kw, c, c_out = w.shape
    n, _, h, wd = x.shape
    oh, ow = out_hw((h + 2 * padding[0], wd + 2 * padding[1]), (kh, kw), stride, dilation)
    weight = w.reshape(kh * kw * c, c_out)
    y = np.empty((oh * ow * n, c_out), dtype=np.result_type(x, w))
    block = None
    for rows, block in im2col_blocks(x, (kh, kw), stride, dilation, padding):
        np.matmul(block, weight, out=y[rows])
        if b is not None:
            add_row(y[rows], b)
    single = block is not None and len(block) == len(y)
    return conv_output(y, n, oh, ow), block if single else None


def conv_weight_grad(
    x: np.ndarray,
    g_rows: np.ndarray,
    w_shape: Shape,
    stride: Shape,
    dilation: Shape,
    padding: Shape,
    cols: np.ndarray | None = None,
) -> np.ndarray:
    """im2col(x padded)^T @ g_rows: conv2d's weight gradient, of ``w_shape`` (kh, kw, C, C_out),
    from the batch-inner (OH*OW*N, C_out) output gradient. The im2col matrix is ``cols`` when the
    forward pass kept it (see :func:`conv_forward`), else copied again a block at a time: a copy
    that stays in the cache costs less than keeping kh*kw times the image in memory and reading
    it back from there."""
    if cols is not None:
        return (cols.T @ g_rows).reshape(w_shape)
    kh, kw, c, c_out = w_shape
    total = np.zeros((kh * kw * c, c_out), dtype=np.result_type(x, g_rows))
    part = np.empty_like(total)
    for rows, block in im2col_blocks(x, (kh, kw), stride, dilation, padding):
        np.matmul(block.T, g_rows[rows], out=part)
        total += part
    return total.reshape(w_shape)


def pad_image(x: np.ndarray, padding: Shape, order: list[int]) -> np.ndarray:
    """x (N, C, H, W) with ``padding`` rows and columns of zeros on each side, a copy laid out in
    memory in ``order`` (x's axes, the outermost first); x itself if there is no padding and x is
    laid out so already. Only the border is zeroed; the image is copied into the middle once."""
    ph, pw = padding
    n, c, h, w = x.shape
    if (ph, pw) == (0, 0):
        return x if memory_order(x) == order else np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))
    shape = (n, c, h + 2 * ph, w + 2 * pw)
    out = np.empty([shape[a] for a in order], dtype=x.dtype).transpose(np.argsort(order))
    for border in (out[:, :, :ph], out[:, :, ph + h :], out[:, :, ph : ph + h, :pw], out[:, :, ph : ph + h, pw + w :]):
        border.fill(0)
    copy_in_slabs(x, out[:, :, ph : ph + h, pw : pw + w])
    return out


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


def fold_products(
    g_rows: np.ndarray, w: np.ndarray, x_shape: Shape, stride: Shape, dilation: Shape, padding: Shape = (0, 0)
) -> np.ndarray:
    """conv2d's input gradient: fold(g_rows @ w^T), the window gradient never in memory.

    g_rows (OH*OW*N, C_out) batch-inner, w (kh, kw, C, C_out) -> (N, C, H, W), laid out (H, W, N, C).
    Each kernel offset's (C_out, C) block of w multiplies g and the product is added onto the image
    at once, while it is in the cache: each slice-add reads and writes runs of N*C values. A few
    images at a time when the batch is large, so that the product block and the image it lands on
    stay in the cache (materialising all kh*kw blocks first and folding them afterwards streams
    kh*kw times the image through memory). With ``padding``, the parts of each block that fall on
    the padding are left out: no padded image is made and cropped."""
    kh, kw, c, c_out = w.shape
    per_offset = w.reshape(kh * kw, c, c_out).transpose(0, 2, 1)  # (kh*kw, C_out, C)
    n, _, h, wd = x_shape
    (ph, pw), kernel = padding, (kh, kw)
    oh, ow = out_hw((h + 2 * ph, wd + 2 * pw), kernel, stride, dilation)
    g_pixels = g_rows.reshape(oh * ow, n, c_out)
    out = np.zeros((h, wd, n, c), dtype=np.result_type(g_rows, w))
    for images in _image_blocks(n, oh * ow * c * out.itemsize, FOLD_BLOCK_BYTES // 2):
        count = images.stop - images.start
        g_part = g_rows if count == n else g_pixels[:, images].reshape(-1, c_out)
        block = np.empty((oh * ow * count, c), dtype=out.dtype)
        block_pixels = block.reshape(oh, ow, count, c).transpose(2, 0, 1, 3)  # (N', OH, OW, C) view
        image = out[:, :, images].transpose(2, 0, 1, 3)  # (N', H, W, C) view
        for k, view, (rows, cols) in _clipped_offset_views(image, (oh, ow), kernel, stride, padding, dilation):
            np.matmul(g_part, per_offset[k], out=block)
            view += block_pixels[:, rows, cols]
    return out.transpose(2, 3, 0, 1)
