"""conv2d by Winograd's minimal filtering F(2x2, 5x5): 5x5 kernels, stride 1, dilation 1, 36
multiply-adds per input and output channel for 4 output pixels where im2col's GEMM takes 100.

The output is cut into 2x2 tiles; tile (i, j) of one image and channel reads the 6x6 input tile
d = xp[2i : 2i+6, 2j : 2j+6] of the zero-padded image xp (tiles overlap by 4), and

    y[2i : 2i+2, 2j : 2j+2] = A^T [ (G w G^T) ⊙ (B^T d B) ] A,   summed over the input channels,

with the Toom-Cook matrices of the points 0, 1, -1, 2, -2 and infinity (:data:`A_T`, :data:`G`,
:data:`B_T`; B^T is the one of F(4x4, 3x3), which has the same six points). With U = G w G^T
(6, 6, C, C_out) and V = B^T d B (6, 6, tiles, C), the sum over channels at each of the 36
positions ξ of the transformed tile is one GEMM M[ξ] = V[ξ] @ U[ξ], (tiles, C) @ (C, C_out).

Every transform is itself a GEMM by its small matrix, over whole blocks of tiles of all N images
laid out batch-inner (H, W, N, C) as conv2d's outputs are: B^T d B is B^T (6x6) times the 6 image
rows 2i + r that a row of tiles reads (:func:`_row_windows`: a strided view, the rows of
neighbouring tiles overlap), then B^T times each tile's 6 columns 2j + s of that, one contiguous
(6, N*C) matrix each (:func:`_column_windows`), written straight into V's planes through a
strided ``out``: one batched ``np.matmul`` per pass (4-7x faster than slice operations, which
stream the planes through the cache once per operation).

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

Accuracy: the transforms have entries up to 5 (B^T) and down to 1/24 (G), which cancel in
G^T dU G; in float32 the weight gradient's error is 30-50x im2col's and about 4x PyTorch's (about
1.5e-5 of its largest value), the output's and the input gradient's 3-18x im2col's
(docs/performance.md has the figures). float64 agrees with im2col to about 1e-13.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import cast

import numpy as np

from . import intraop, kernels, winograd

Shape = tuple[int, ...]

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
MIN_CHANNELS = 4  # input channels at least: see fits()
MIN_WORK = 1 << 21  # multiply-adds of im2col's forward GEMM at least: see fits()
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def fits(x_shape: Shape, w_shape: Shape, stride: Shape, dilation: Shape, padding: Shape, dtype: np.dtype) -> bool:
    """Whether conv2d of x (N, C, H, W) of ``x_shape`` by a weight of ``w_shape`` (kh, kw, C, C_out)
    with ``padding`` takes this path: a 5x5 kernel at stride 1, dilation 1, float32 or float64, at
    least MIN_CHANNELS input channels and at least MIN_WORK multiply-adds in im2col's forward GEMM
    (N * OH * OW * 25 * C * C_out). Forward and backward on one thread against the im2col path
    (``benchmarks/winograd.py --kernel 5``, docs/performance.md): 1.2-1.8x from 4 input channels
    and a few million multiply-adds up; below, the path's fixed cost (about 0.15 ms of NumPy calls)
    is more than the GEMM work it saves (LeNet-ish's second layer on 1 or 2 images: 0.71x, 0.93x),
    and with fewer channels the GEMMs are too thin (a first layer of 3 channels, whose input
    gradient is not needed, 0.73x; of 4, 0.99x)."""
    kh, kw, c, c_out = w_shape
    n, _, h, w = x_shape
    oh, ow = h + 2 * padding[0] - kh + 1, w + 2 * padding[1] - kw + 1
    return (
        (kh, kw) == (5, 5)
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and np.dtype(dtype) in FLOATS
        and c >= MIN_CHANNELS
        and oh > 0
        and ow > 0
        and n * oh * ow * 25 * c * c_out >= MIN_WORK
    )


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


def _row_windows(image: np.ndarray, first: int, tiles: int, columns: slice) -> np.ndarray:
    """The 6 image rows 2i + r (r = 0..5) of each of ``tiles`` rows of tiles i from ``first``,
    ``columns`` of them: the read-only view (tiles, 6, columns * N * C) of image (rows, W, N, C),
    each (6, columns * N * C) a matrix with the image's row stride (the rows of neighbouring
    tiles overlap), for a GEMM by a 6x6 transform."""
    part = image[2 * first :, columns]
    row, item = part.strides[0], part.itemsize
    length = part.shape[1] * part.shape[2] * part.shape[3]
    return np.lib.stride_tricks.as_strided(part, (tiles, 6, length), (2 * row, row, item), writeable=False)


def _column_windows(t: np.ndarray, cols: int) -> np.ndarray:
    """The 6 columns 2j + s (s = 0..5) of each of ``cols`` tiles j of t (K, rows, width, N*C):
    the read-only view (K, rows, cols, 6, N*C), each (6, N*C) one contiguous matrix."""
    k, rows, width, nc = t.shape
    s_k, s_r, s_w, item = t.strides
    return np.lib.stride_tricks.as_strided(t, (k, rows, cols, 6, nc), (s_k, s_r, 2 * s_w, s_w, item), writeable=False)


def _input_planes(xp: np.ndarray, block: tuple[int, int, int, int], v: np.ndarray, buffer: np.ndarray) -> None:
    """V = B^T d B of a block's tiles into v (6, 6, rows, cols, N, C) (ξ = 6*k + l, k along the
    tile's rows) from the padded image xp (:func:`_padded_image`); ``buffer`` holds at least
    6 * rows * (2*cols + 4) * N * C values. Both passes are GEMMs by B^T: along the tiles' rows
    one per row of tiles over whole image rows, along their columns one per tile on its 6
    columns (a (6, N*C) matrix each), written straight into v's planes (a batched ``np.matmul``
    with strided operands: 4-7x faster than the 19 slice operations per pass it replaced)."""
    i0, bi, j0, bj = block
    n, c = xp.shape[2:]
    width = 2 * bj + 4
    b_t = B_T.astype(xp.dtype)
    t = buffer[: 6 * bi * width * n * c].reshape(6, bi, width, n * c)
    np.matmul(b_t, _row_windows(xp, i0, bi, slice(2 * j0, 2 * j0 + width)), out=t.reshape(6, bi, -1).swapaxes(0, 1))
    np.matmul(b_t, _column_windows(t, bj), out=v.reshape(6, 6, bi, bj, n * c).transpose(0, 2, 3, 1, 4))


def _output_tiles(
    m: np.ndarray, y: np.ndarray, block: tuple[int, int, int, int], b: np.ndarray | None, buffer: np.ndarray
) -> None:
    """y[2i+a, 2j+b] = (A^T M A)[a, b] (+ the bias b) for a block's tiles (i, j), from m (6, 6,
    rows, cols, N, C_out) into y (OH, OW, N, C_out), leaving out the outputs past y's edge;
    ``buffer`` holds at least 16 * rows * cols * N * C_out values. Both passes are GEMMs by A^T
    (2x6) over m's planes. Where the block's tiles are whole in y and its rows are whole rows of y,
    the second writes each tile's 2x2 outputs straight into y (its (2, N*C_out) pieces are
    contiguous there) and the bias is added onto those rows; else the tiles are made in the
    buffer, the bias added, and copied into y's strided runs."""
    i0, bi, j0, bj = block
    oh, ow = y.shape[:2]
    size = m[0, 0].size
    nc = size // (bi * bj)
    a_t = A_T.astype(m.dtype)
    z = buffer[: 12 * size].reshape(2, 6, size)  # z[a, l] = sum over k of A^T[a, k] M[k, l]
    np.matmul(a_t, m.reshape(6, 6 * size), out=z.reshape(2, 6 * size))
    if oh % 2 == 0 and ow % 2 == 0 and (j0, bj) == (0, ow // 2) and y.flags.c_contiguous:
        rows = y[2 * i0 : 2 * (i0 + bi)]
        tiles = rows.reshape(bi, 2, bj, 2, nc).transpose(1, 0, 2, 3, 4)  # [a, i, j, b]
        np.matmul(a_t, z.reshape(2, 6, bi, bj, nc).transpose(0, 2, 3, 1, 4), out=tiles)
        if b is not None:
            kernels.add_row(rows.reshape(-1, y.shape[-1]), b)
        return
    out = buffer[12 * size : 16 * size].reshape(2, 2, *m.shape[2:])
    np.matmul(a_t, z, out=out.reshape(2, 2, size))
    if b is not None:
        kernels.add_row(out.reshape(-1, out.shape[-1]), b)
    winograd.write_tiles(y, out, block)


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, padding: Shape) -> np.ndarray:
    """conv2d of x (N, C, H, W) by w (5, 5, C, C_out) plus b (C_out,) or None, stride 1, zero
    padding ``padding``: the output (N, OH, OW, C_out), laid out batch-inner (OH, OW, N, C_out).
    Per block of tiles: V = B^T d B, M[ξ] = V[ξ] @ U[ξ] (one batched GEMM), y = A^T M A, the bias."""
    n, c, h, wd = x.shape
    c_out = w.shape[3]
    oh, ow = h + 2 * padding[0] - 4, wd + 2 * padding[1] - 4
    tiles = _tiles((oh, ow))
    xp = _padded_image(x, padding, tiles)
    u = winograd.weight_tiles(w, G)
    dtype = np.result_type(x, w)
    y = np.empty((oh, ow, n, c_out), dtype=dtype)
    blocks = _blocks(tiles, n, c + c_out, dtype.itemsize)

    def run_blocks(indices: range) -> None:
        most = max(blocks[k][1] * blocks[k][3] for k in indices) * n
        wide = max(blocks[k][1] * (2 * blocks[k][3] + 4) for k in indices) * n
        size_v, size_m = 36 * most * c, 36 * most * c_out
        buffer = intraop.scratch(size_v + size_m + max(6 * wide * c, 16 * most * c_out), dtype)
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
    tiles (:func:`_padded_grad`); ``buffer`` holds at least 12 * rows * cols * N * C_out values.
    GEMMs by A (6x2): along the tiles' rows one per row of tiles (its 2 rows of g), along their
    columns one per tile."""
    i0, bi, j0, bj = block
    _, _, n, c_out = gp.shape
    a = A_T.T.astype(gp.dtype)
    g_rows = gp[2 * i0 : 2 * (i0 + bi), 2 * j0 : 2 * (j0 + bj)].reshape(bi, 2, -1)  # [i, a, (j, b, n, c)]
    z = buffer[: 12 * bi * bj * n * c_out].reshape(bi, 6, bj, 2, n * c_out)  # [i, k, j, b]
    np.matmul(a, g_rows, out=z.reshape(bi, 6, -1))
    np.matmul(a, z.swapaxes(0, 1), out=out.reshape(6, 6, bi, bj, n * c_out).transpose(0, 2, 3, 1, 4))


def _fold_tiles(
    dv: np.ndarray, block: tuple[int, int, int, int], band: np.ndarray, first_row: int, buffer: np.ndarray
) -> None:
    """B dV B^T of a block's tiles added onto ``band``, the padded image's rows from ``first_row``
    (rows, Wp, N, C): the adjoint of :func:`_input_planes`. GEMMs by B (= (B^T)^T): along the
    tiles' columns one per tile, its 6 columns then added onto the 2*cols + 4 columns of the
    block's rows (neighbouring tiles overlap); along their rows one per row of tiles, added onto
    the band. dv is (6, 6, rows, cols, N, C); ``buffer`` holds at least
    (36 * rows * cols + 6 * rows * (2*cols + 4)) * N * C values."""
    i0, bi, j0, bj = block
    n, c = dv.shape[4:]
    width = 2 * bj + 4
    b = B_T.T.astype(dv.dtype)
    parts = buffer[: 36 * bi * bj * n * c].reshape(6, bi, bj, 6, n * c)  # [k, i, j, s]
    np.matmul(b, dv.reshape(6, 6, bi, bj, n * c).transpose(0, 2, 3, 1, 4), out=parts)
    t = buffer[parts.size : parts.size + 6 * bi * width * n * c].reshape(6, bi, width, n * c)
    t[:, :, 2 * bj :] = 0  # columns s = 0 and 1 write [0, 2*cols) whole; the last 4 are only added to
    for s in range(6):  # t[k, i, 2j + s] += parts[k, i, j, s]
        target = t[:, :, s : s + 2 * bj - 1 : 2]
        if s < 2:
            np.copyto(target, parts[:, :, :, s])
        else:
            target += parts[:, :, :, s]
    top = 2 * i0 - first_row
    rows = parts.reshape(-1)[: 6 * bi * width * n * c].reshape(bi, 6, width, n, c)  # [i, r]: parts is used up
    np.matmul(b, t.reshape(6, bi, -1).swapaxes(0, 1), out=rows.reshape(bi, 6, -1))
    if bi == 1:
        band[top : top + 6, 2 * j0 : 2 * j0 + width] += rows[0]
        return
    for r in range(6):  # band[2i + r, columns] += rows[i, r]; the tiles' rows overlap
        band[top + r : top + r + 2 * bi - 1 : 2, 2 * j0 : 2 * j0 + width] += rows[:, r]


def conv_grads(
    x: np.ndarray, w: np.ndarray, g: np.ndarray, padding: Shape, need_x: bool, need_w: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """conv2d's input gradient (N, C, H, W) (laid out (H, W, N, C)) and weight gradient (5, 5, C,
    C_out) (None where not needed) from g (N, OH, OW, C_out), in one pass over the blocks of tiles:
    gM = A g A^T per block, then dU += V^T @ gM (V = B^T d B made again) and dV = gM @ U^T folded
    back onto the block's input tiles. Each group of blocks (a task) returns its partial dU and its
    band of the padded image's gradient; both are added up in task order."""
    return _grads(x.shape, x if need_w else None, w, g, padding, need_x)


def input_grad(g: np.ndarray, w: np.ndarray, x_shape: Shape, padding: Shape) -> np.ndarray:
    """conv2d's input gradient alone (see :func:`conv_grads`), for an input of ``x_shape``: a
    transposed convolution's forward."""
    return cast(np.ndarray, _grads(x_shape, None, w, g, padding, True)[0])


def _grads(
    x_shape: Shape, x: np.ndarray | None, w: np.ndarray, g: np.ndarray, padding: Shape, need_x: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """:func:`conv_grads`; the weight gradient where x is given."""
    n, c, h, wd = x_shape
    _, oh, ow, c_out = g.shape
    need_w = x is not None
    tiles = _tiles((oh, ow))
    xp = None if x is None else _padded_image(x, padding, tiles)
    gp = _padded_grad(g, tiles)
    u = winograd.weight_tiles(w, G).transpose(0, 2, 1) if need_x else None  # U^T: (36, C_out, C)
    dtype = np.result_type(w, g) if x is None else np.result_type(x, w, g)
    blocks = _blocks(tiles, n, c + c_out, dtype.itemsize)
    wp = 2 * tiles[1] + 4

    def run_blocks(indices: range) -> tuple[np.ndarray | None, int, np.ndarray | None]:
        most = max(blocks[k][1] * blocks[k][3] for k in indices) * n
        wide = max(blocks[k][1] * (2 * blocks[k][3] + 4) for k in indices) * n
        size_v, size_m = 36 * most * c, 36 * most * c_out
        buffer = intraop.scratch(size_v + size_m + max(36 * most * c + 6 * wide * c, 12 * most * c_out), dtype)
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
    gw = (
        winograd.weight_from_tiles(kernels.sum_in_order([cast(np.ndarray, r[0]) for r in results]), G)
        if need_w
        else None
    )
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
