"""conv2d by Winograd's minimal filtering F(2x2, 5x5): 5x5 kernels, stride 1, dilation 1, 36
multiply-adds per input and output channel for 4 output pixels where im2col's GEMM takes 100.

The output is cut into 2x2 tiles; tile (i, j) of one image and channel reads the 6x6 input tile
d = xp[2i : 2i+6, 2j : 2j+6] of the zero-padded image xp (tiles overlap by 4), and

    y[2i : 2i+2, 2j : 2j+2] = A^T [ (G w G^T) ⊙ (B^T d B) ] A,   summed over the input channels,

with the Toom-Cook matrices of the points 0, 1, -1, 2, -2 and infinity (:data:`A_T`, :data:`G`,
:data:`B_T`; B^T is the one of F(4x4, 3x3), which has the same six points). With U = G w G^T
(6, 6, C, C_out) and V = B^T d B (6, 6, tiles, C), the sum over channels at each of the 36
positions ξ of the transformed tile is one GEMM M[ξ] = V[ξ] @ U[ξ], (tiles, C) @ (C, C_out).

Every transform is a few slice operations per row of its matrix (:func:`_combine`, skipping the
zeros), over whole blocks of tiles of all N images, laid out batch-inner (H, W, N, C) as conv2d's
outputs are: each slice is a run of N*C values per tile. B^T d B reads the padded image's rows
2i + r directly (a strided view, runs of whole image rows), then the columns 2j + s of that.

Both gradients come from the same tiles, for a loss with gradient g (N, OH, OW, C_out) at y
(zero-padded to whole tiles): with gM = A g A^T per tile (the adjoint of the output transform),

- dU[ξ] = V[ξ]^T @ gM[ξ], summed over the tiles, and dw = G^T dU G;
- dV[ξ] = gM[ξ] @ U[ξ]^T, and dx is B dV B^T of every tile added back onto the 6x6 input tile it
  came from (the adjoint of the input transform, which is a sum over overlapping tiles), with the
  padding cropped. This is the exact gradient of the forward's arithmetic, on the forward's own
  tiles: a small image takes no full correlation over an output padded by 4 (the 3x3 path's
  input gradient, which for 8x8 outputs would compute 12x12 pixels from 16x16).

Tiles are processed in blocks of whole rows of tiles (or pieces of one row) whose transformed
planes stay in the cache (about BLOCK_BYTES), groups of blocks on the library's threads
(:mod:`tinygrad_cnn.intraop`), cut by the shapes only. A group of blocks adds its part of dx into
its own band of image rows; the bands overlap by 4 rows and are added up in task order, as the
partial sums of dU are: the same bits on any number of threads.

Accuracy: the transforms have entries up to 5 (B^T) and 1/24 (G), so float32 rounding is a few
times larger than im2col's (docs/performance.md has the figures); float64 agrees with im2col to
about 1e-13.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import cast

import numpy as np

from . import intraop, kernels

Shape = tuple[int, ...]
Planes = Sequence[np.ndarray] | np.ndarray  # six arrays of one shape, or one array of them along its first axis

A_T = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]], dtype=np.float64)
G = np.array(
    [
        [1 / 4, 0, 0, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3],
        [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3],
        [0, 0, 0, 0, 1],
    ]
)
B_T = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=np.float64,
)
BLOCK_BYTES = 4 << 20  # transformed planes (input's and output's) of a block of tiles: see _blocks
MIN_ROWS = 256  # GEMM rows (tiles * N) per block at least: fewer run BLAS well below its speed
MIN_CHANNELS = 20  # the least harmonic mean of C and C_out: see fits()
MIN_VALUES = 1 << 15  # see fits()
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def fits(x_shape: Shape, w_shape: Shape, stride: Shape, dilation: Shape, dtype: np.dtype) -> bool:
    """Whether conv2d of x (N, C, H, W) of ``x_shape`` by a weight of ``w_shape`` (kh, kw, C, C_out)
    takes this path: a 5x5 kernel at stride 1, dilation 1 (any padding), float32 or float64, a
    harmonic mean 2 C C_out / (C + C_out) of at least MIN_CHANNELS, and at least MIN_VALUES of
    N*H*W times the smaller channel count. The GEMMs saved grow with C * C_out, the transforms
    with C + C_out: forward and backward on one thread, 16 -> 32 channels (21.3) ran 1.1-1.25x
    the im2col path's speed from 16 images of 12x12 up, 32 -> 64 1.35x, but 16 -> 16 (16.0) 0.95x
    and 8 -> 16 0.6x; LeNet-ish at 8 images of 12x12 (18K values) 0.83x. docs/performance.md has
    the figures."""
    kh, kw, c, c_out = w_shape
    n, _, h, w = x_shape
    return (
        (kh, kw) == (5, 5)
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and np.dtype(dtype) in FLOATS
        and 2 * c * c_out >= MIN_CHANNELS * (c + c_out)
        and n * h * w * min(c, c_out) >= MIN_VALUES
    )


def weight_tiles(w: np.ndarray) -> np.ndarray:
    """U = G w G^T per channel pair: w (5, 5, C, C_out) -> (36, C, C_out), ξ = 6*k + l."""
    g = G.astype(w.dtype)
    c, c_out = w.shape[2:]
    over_rows = (g @ w.reshape(5, 5 * c * c_out)).reshape(6, 5, c * c_out)
    return np.matmul(g, over_rows).reshape(36, c, c_out)


def weight_from_tiles(du: np.ndarray) -> np.ndarray:
    """dw = G^T dU G per channel pair, the adjoint of :func:`weight_tiles`: (36, C, C_out) -> (5, 5, C, C_out)."""
    g_t = G.T.astype(du.dtype)
    c, c_out = du.shape[1:]
    over_rows = (g_t @ du.reshape(6, 6 * c * c_out)).reshape(5, 6, c * c_out)
    return np.matmul(g_t, over_rows).reshape(5, 5, c, c_out)


def _combine(coefficients: np.ndarray, terms: Sequence[np.ndarray], out: np.ndarray, spare: np.ndarray) -> None:
    """out = sum of c * t over the coefficients c (not 0) and terms t, in slice operations: the
    first two terms in one (when neither needs a product), a product only where c is not ±1,
    through ``spare`` (an array of out's shape)."""
    pairs = [(c, t) for c, t in zip(coefficients.tolist(), terms) if c != 0]
    (c0, t0), rest = pairs[0], pairs[1:]
    if c0 == 1 and rest and rest[0][0] in (1, -1):
        (np.add if rest[0][0] == 1 else np.subtract)(t0, rest[0][1], out=out)
        rest = rest[1:]
    elif c0 == 1:
        np.copyto(out, t0)
    else:
        np.multiply(t0, c0, out=out)
    for c, t in rest:
        if c == 1:
            np.add(out, t, out=out)
        elif c == -1:
            np.subtract(out, t, out=out)
        else:
            np.multiply(t, c, out=spare)
            out += spare


def _b_transform(d: Planes, planes: Planes, spare: np.ndarray) -> None:
    """planes[k] = sum over r of B^T[k, r] * d[r] in 19 slice operations (B^T's 22 entries of 5
    values taken one at a time would be 30): with s = d4 - d2 and e = d1 - d3,
    out = [4 (d0 - d2) + s, (d3 + d4) - 4 (d1 + d2), 4 (d1 - d2) + (d4 - d3), s - 2e, s + 2e,
    4e + (d5 - d3)]."""
    out = list(planes)  # views: the in-place operations below write into the planes
    np.subtract(d[1], d[3], out=out[3])  # e
    np.subtract(d[5], d[3], out=out[5])
    np.multiply(out[3], 4, out=spare)
    out[5] += spare
    np.subtract(d[4], d[2], out=out[4])  # s
    np.subtract(d[0], d[2], out=out[0])
    out[0] *= 4
    out[0] += out[4]
    np.multiply(out[3], 2, out=spare)
    np.subtract(out[4], spare, out=out[3])
    out[4] += spare
    np.add(d[1], d[2], out=out[1])
    out[1] *= -4
    out[1] += d[3]
    out[1] += d[4]
    np.subtract(d[1], d[2], out=out[2])
    out[2] *= 4
    out[2] += d[4]
    out[2] -= d[3]


def _b_adjoint(v: Planes, planes: Planes, spare: np.ndarray) -> None:
    """planes[s] = sum over l of B^T[l, s] * v[l] for s = 0..4 (planes[5] would be v[5] itself), the
    adjoint of :func:`_b_transform`, in 16 slice operations: with a = v1 + v2, b = v3 + v4,
    c = v1 - v2, d = v3 - v4: out = [4 v0, 4 (v5 - c) - 2d, -(4 (v0 + a) + v0 + b),
    c + 2d - 5 v5, (v0 + a) + b]."""
    out = list(planes)  # views: the in-place operations below write into the planes
    np.multiply(v[0], 4, out=out[0])
    np.subtract(v[1], v[2], out=out[3])  # c
    np.subtract(v[5], out[3], out=out[1])
    out[1] *= 4
    np.subtract(v[3], v[4], out=spare)  # d
    spare *= 2
    out[1] -= spare
    out[3] += spare
    np.multiply(v[5], 5, out=spare)
    out[3] -= spare
    np.add(v[1], v[2], out=out[4])  # a
    out[4] += v[0]
    np.multiply(out[4], -4, out=out[2])
    out[2] -= v[0]
    np.add(v[3], v[4], out=spare)  # b
    out[2] -= spare
    out[4] += spare


def _tiles(out_hw: Shape) -> tuple[int, int]:
    """Rows and columns of 2x2 tiles covering an output of (OH, OW)."""
    return -(-out_hw[0] // 2), -(-out_hw[1] // 2)


def _padded_image(x: np.ndarray, padding: Shape, tiles: Shape) -> np.ndarray:
    """x (N, C, H, W) zero-padded by ``padding`` and, at the bottom and right, up to the 6x6 input
    tiles of ``tiles`` (rows, columns): (2*rows + 4, 2*cols + 4, N, C), laid out so."""
    n, c, h, w = x.shape
    (ph, pw), (th, tw) = padding, tiles
    hp, wp = 2 * th + 4, 2 * tw + 4
    out = np.empty((hp, wp, n, c), dtype=x.dtype)
    out[:ph] = 0
    out[ph + h :] = 0
    out[ph : ph + h, :pw] = 0
    out[ph : ph + h, pw + w :] = 0
    kernels.copy_in_slabs(x.transpose(2, 3, 0, 1), out[ph : ph + h, pw : pw + w])
    return out


def _padded_grad(g: np.ndarray, tiles: Shape) -> np.ndarray:
    """g (N, OH, OW, C_out) as (2*rows, 2*cols, N, C_out) for ``tiles`` (rows, columns), zeros past
    its edge: a view where g is laid out batch-inner with even OH and OW already, else a copy."""
    n, oh, ow, c = g.shape
    th, tw = tiles
    if (oh, ow) == (2 * th, 2 * tw):
        view = kernels.reshaped_view(g.transpose(1, 2, 0, 3), (oh, ow, n, c))
        if view is not None and view.flags.c_contiguous:
            return view
    out = np.zeros((2 * th, 2 * tw, n, c), dtype=g.dtype)
    kernels.copy_in_slabs(g.transpose(1, 2, 0, 3), out[:oh, :ow])
    return out


def _blocks(tiles: Shape, n: int, channels: int, itemsize: int) -> list[tuple[int, int, int, int]]:
    """The (rows, columns) grid of tiles cut into blocks of consecutive tiles (first row, rows,
    first column, columns): whole rows of tiles when a row fits in BLOCK_BYTES of transformed
    planes (36 per tile, ``channels`` values for each of the N images), else equal pieces of one
    row; at least MIN_ROWS GEMM rows each. Depends on the shapes only."""
    th, tw = tiles
    per_block = max(-(-MIN_ROWS // n), BLOCK_BYTES // (36 * n * channels * itemsize), 1)
    if per_block >= tw:
        step = per_block // tw
        return [(i, min(step, th - i), 0, tw) for i in range(0, th, step)]
    return [(i, 1, cols.start, len(cols)) for i in range(th) for cols in intraop.pieces(tw, 1, -(-tw // per_block))]


def _input_planes(xp: np.ndarray, block: tuple[int, int, int, int], v: np.ndarray, buffer: np.ndarray) -> None:
    """V = B^T d B of a block's tiles into v (6, 6, rows, cols, N, C) (ξ = 6*k + l, k along the
    tile's rows) from the padded image xp (:func:`_padded_image`); ``buffer`` holds at least
    (6 * rows * (2*cols + 4) + 6 * rows * cols) * N * C values."""
    i0, bi, j0, bj = block
    n, c = xp.shape[2:]
    width = 2 * bj + 4
    rows = [xp[2 * i0 + r : 2 * i0 + r + 2 * bi - 1 : 2, 2 * j0 : 2 * j0 + width] for r in range(6)]
    t = buffer[: 6 * bi * width * n * c].reshape(6, bi, width, n, c)
    rest = buffer[t.size : t.size + 6 * bi * bj * n * c]  # at least bi * width * N * C (cols >= 1)
    spare = rest[: bi * width * n * c].reshape(bi, width, n, c)
    _b_transform(rows, t, spare)  # t[k] = sum over r of B^T[k, r] * (the tiles' row r), whole padded rows at once
    columns = [t[:, :, s : s + 2 * bj - 1 : 2] for s in range(6)]  # (6, rows, cols, N, C) each
    _b_transform(columns, v.swapaxes(0, 1), rest.reshape(6, bi, bj, n, c))


def _output_tiles(
    m: np.ndarray, y: np.ndarray, block: tuple[int, int, int, int], b: np.ndarray | None, buffer: np.ndarray
) -> None:
    """y[2i+a, 2j+b] = (A^T M A)[a, b] (+ the bias b) for a block's tiles (i, j), from m (6, 6,
    rows, cols, N, C_out) into y (OH, OW, N, C_out), leaving out the outputs past y's edge;
    ``buffer`` holds at least 22 * rows * cols * N * C_out values."""
    i0, bi, j0, bj = block
    oh, ow = y.shape[:2]
    size = m[0, 0].size
    z = buffer[: 12 * size].reshape(2, 6, *m.shape[2:])
    out = buffer[12 * size : 16 * size].reshape(2, 2, *m.shape[2:])
    spare = buffer[16 * size : 17 * size].reshape(m.shape[2:])
    for a in range(2):  # z[a, l] = sum over k of A^T[a, k] M[k, l]
        _combine(A_T[a], list(m), z[a], buffer[16 * size : 22 * size].reshape(6, *m.shape[2:]))
    for a in range(2):
        for b_ in range(2):
            _combine(A_T[b_], list(z[a]), out[a, b_], spare)
    if b is not None:
        kernels.add_row(out.reshape(-1, out.shape[-1]), b)
    for a in range(2):
        rows = min(bi, (oh - a + 1) // 2 - i0)  # tiles of the block whose output row 2i + a is in y
        for b_ in range(2):
            cols = min(bj, (ow - b_ + 1) // 2 - j0)
            target = y[2 * i0 + a : 2 * (i0 + rows) + a - 1 : 2, 2 * j0 + b_ : 2 * (j0 + cols) + b_ - 1 : 2]
            np.copyto(target, out[a, b_, :rows, :cols])


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, padding: Shape) -> np.ndarray:
    """conv2d of x (N, C, H, W) by w (5, 5, C, C_out) plus b (C_out,) or None, stride 1, zero
    padding ``padding``: the output (N, OH, OW, C_out), laid out batch-inner (OH, OW, N, C_out).
    Per block of tiles: V = B^T d B, M[ξ] = V[ξ] @ U[ξ] (one batched GEMM), y = A^T M A, the bias."""
    n, c, h, wd = x.shape
    c_out = w.shape[3]
    oh, ow = h + 2 * padding[0] - 4, wd + 2 * padding[1] - 4
    tiles = _tiles((oh, ow))
    xp = _padded_image(x, padding, tiles)
    u = weight_tiles(w)
    dtype = np.result_type(x, w)
    y = np.empty((oh, ow, n, c_out), dtype=dtype)
    blocks = _blocks(tiles, n, c + c_out, dtype.itemsize)

    def run_blocks(indices: range) -> None:
        most = max(blocks[k][1] * blocks[k][3] for k in indices) * n
        wide = max(blocks[k][1] * (2 * blocks[k][3] + 4) for k in indices) * n
        size_v, size_m = 36 * most * c, 36 * most * c_out
        buffer = intraop.scratch(size_v + size_m + max(6 * wide * c + 6 * most * c, 22 * most * c_out), dtype)
        rest = buffer[size_v + size_m :]
        for k in indices:
            _, bi, _, bj = block = blocks[k]
            count = bi * bj * n
            v = buffer[: 36 * count * c].reshape(6, 6, bi, bj, n, c)
            _input_planes(xp, block, v, rest)
            m = buffer[size_v : size_v + 36 * count * c_out].reshape(36, count, c_out)
            np.matmul(v.reshape(36, count, c), u, out=m)
            _output_tiles(m.reshape(6, 6, bi, bj, n, c_out), y, block, b, rest)

    intraop.run([partial(run_blocks, indices) for indices in intraop.pieces(len(blocks), 1)])
    return y.transpose(2, 0, 1, 3)


def _grad_planes(gp: np.ndarray, block: tuple[int, int, int, int], out: np.ndarray, buffer: np.ndarray) -> None:
    """gM = A g A^T of a block's tiles into out (6, 6, rows, cols, N, C_out) from g padded to whole
    tiles (:func:`_padded_grad`); ``buffer`` holds at least 18 * rows * cols * N * C_out values."""
    i0, bi, j0, bj = block
    th2, tw2, n, c_out = gp.shape
    tiles = gp.reshape(th2 // 2, 2, tw2 // 2, 2, n, c_out)[i0 : i0 + bi, :, j0 : j0 + bj]  # [i, a, j, b]
    size = bi * bj * n * c_out
    z = buffer[: 12 * size].reshape(6, 2, bi, bj, n, c_out)  # z[k, b] = sum over a of A[k, a] g_ab
    spare = buffer[12 * size : 18 * size].reshape(6, bi, bj, n, c_out)
    first = spare.reshape(-1)[: 2 * size].reshape(bi, bj, 2, n, c_out)
    a_cols = A_T.T
    for k in range(6):
        _combine(a_cols[k], [tiles[:, a] for a in range(2)], z[k].transpose(1, 2, 0, 3, 4), first)
    for l_ in range(6):  # gM[k, l] = sum over b of A[l, b] z[k, b]
        _combine(a_cols[l_], [z[:, 0], z[:, 1]], out[:, l_], spare)


def _fold_tiles(
    dv: np.ndarray, block: tuple[int, int, int, int], band: np.ndarray, first_row: int, buffer: np.ndarray
) -> None:
    """B dV B^T of a block's tiles added onto ``band``, the padded image's rows from ``first_row``
    (rows, Wp, N, C): the adjoint of :func:`_input_planes` (:func:`_b_adjoint` along the tiles'
    columns, added onto their 2*cols + 4 columns; then along their rows, added onto the band's rows).
    dv is (6, 6, rows, cols, N, C); ``buffer`` holds at least 6 * rows * (2*cols + 4) * N * C
    values plus the larger of that and 24 * rows * cols * N * C."""
    i0, bi, j0, bj = block
    n, c = dv.shape[4:]
    width = 2 * bj + 4
    t = buffer[: 6 * bi * width * n * c].reshape(6, bi, width, n, c)
    rest = buffer[t.size :]
    parts = rest[: 24 * bi * bj * n * c].reshape(4, 6, bi, bj, n, c)
    columns = [t[:, :, s : s + 2 * bj - 1 : 2] for s in range(6)]
    t[:, :, 2 * bj :] = 0  # columns s = 0 and 1 write [0, 2*cols) whole; the last 4 are only added to
    by_column = dv.swapaxes(0, 1)  # [l, k]
    _b_adjoint(by_column, [columns[0], columns[1], parts[0], parts[1], parts[2]], parts[3])
    for s in range(2, 5):  # t[k][:, 2j + s] += sum over l of B^T[l, s] dV[k, l]
        columns[s] += parts[s - 2]
    columns[5] += by_column[5]
    top = 2 * i0 - first_row
    rows = rest[: 6 * bi * width * n * c].reshape(6, bi, width, n, c)
    _b_adjoint(t, rows[:5], rows[5])
    for r in range(6):  # band[2i + r, columns] += sum over k of B^T[k, r] t[k]
        band[top + r : top + r + 2 * bi - 1 : 2, 2 * j0 : 2 * j0 + width] += rows[r] if r < 5 else t[5]


def conv_grads(
    x: np.ndarray, w: np.ndarray, g: np.ndarray, padding: Shape, need_x: bool, need_w: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """conv2d's input gradient (N, C, H, W) (laid out (H, W, N, C)) and weight gradient (5, 5, C,
    C_out) (None where not needed) from g (N, OH, OW, C_out), in one pass over the blocks of tiles:
    gM = A g A^T per block, then dU += V^T @ gM (V = B^T d B made again) and dV = gM @ U^T folded
    back onto the block's input tiles. Each group of blocks (a task) returns its partial dU and its
    band of the padded image's gradient; both are added up in task order."""
    n, c, h, wd = x.shape
    _, oh, ow, c_out = g.shape
    tiles = _tiles((oh, ow))
    xp = _padded_image(x, padding, tiles) if need_w else None
    gp = _padded_grad(g, tiles)
    u = weight_tiles(w).transpose(0, 2, 1) if need_x else None  # U^T: (36, C_out, C)
    dtype = np.result_type(x, w, g)
    blocks = _blocks(tiles, n, c + c_out, dtype.itemsize)
    wp = 2 * tiles[1] + 4

    def run_blocks(indices: range) -> tuple[np.ndarray | None, int, np.ndarray | None]:
        most = max(blocks[k][1] * blocks[k][3] for k in indices) * n
        wide = max(blocks[k][1] * (2 * blocks[k][3] + 4) for k in indices) * n
        size_v, size_m = 36 * most * c, 36 * most * c_out
        buffer = intraop.scratch(
            size_v + size_m + max(6 * wide * c + max(24 * most * c, 6 * wide * c), 18 * most * c_out), dtype
        )
        rest = buffer[size_v + size_m :]
        first_row = 2 * blocks[indices[0]][0]
        last_row = 2 * (blocks[indices[-1]][0] + blocks[indices[-1]][1]) + 4
        band = np.zeros((last_row - first_row, wp, n, c), dtype=dtype) if need_x else None
        total = np.zeros((36, c, c_out), dtype=dtype) if need_w else None
        part = np.empty((36, c, c_out), dtype=dtype) if need_w else None
        for k in indices:
            _, bi, _, bj = block = blocks[k]
            count = bi * bj * n
            gm = buffer[size_v : size_v + 36 * count * c_out].reshape(6, 6, bi, bj, n, c_out)
            _grad_planes(gp, block, gm, rest)
            planes = buffer[: 36 * count * c].reshape(6, 6, bi, bj, n, c)  # V, then dV
            if total is not None and xp is not None:
                _input_planes(xp, block, planes, rest)
                np.matmul(planes.reshape(36, count, c).transpose(0, 2, 1), gm.reshape(36, count, c_out), out=part)
                total += part
            if band is not None and u is not None:
                np.matmul(gm.reshape(36, count, c_out), u, out=planes.reshape(36, count, c))
                _fold_tiles(planes, block, band, first_row, rest)
        return total, first_row, band

    tasks = [partial(run_blocks, indices) for indices in intraop.pieces(len(blocks), 1)]
    results = intraop.run(tasks)
    gw = weight_from_tiles(kernels.sum_in_order([cast(np.ndarray, r[0]) for r in results])) if need_w else None
    gx = _assemble([(r[1], cast(np.ndarray, r[2])) for r in results], (h, wd), padding) if need_x else None
    return gx, gw


def _assemble(bands: Sequence[tuple[int, np.ndarray]], hw: Shape, padding: Shape) -> np.ndarray:
    """The input gradient (N, C, H, W), laid out (H, W, N, C), from the tasks' overlapping bands of
    the padded image's gradient (first row, (rows, Wp, N, C)), in row order: the rows a band
    shares with the one before are added (in task order), the others copied; the padding cropped."""
    last, band = bands[-1]
    total = np.empty((last + len(band), *band.shape[1:]), dtype=band.dtype)
    end = 0  # bands[0] starts at row 0; each next one starts at most where the one before ends
    for start, band in bands:
        shared = end - start
        total[start:end] += band[:shared]
        total[end : start + len(band)] = band[shared:]
        end = start + len(band)
    (h, wd), (ph, pw) = hw, padding
    image = total[ph : ph + h, pw : pw + wd]
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    return image.transpose(2, 3, 0, 1)
