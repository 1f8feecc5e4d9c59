"""conv2d by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2015): 3x3 kernels, stride 1,
dilation 1, 2.25x fewer multiply-adds than im2col's GEMM.

The output is cut into 2x2 tiles; tile (i, j) of one image and channel reads the 4x4 input tile
d = xp[2i : 2i+4, 2j : 2j+4] of the zero-padded image xp (tiles overlap by 2), and

    y[2i : 2i+2, 2j : 2j+2] = A^T [ (G w G^T) ⊙ (B^T d B) ] A,   summed over the input channels,

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]],
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].

With U = G w G^T (4, 4, C, C_out) and V = B^T d B (4, 4, tiles, C), the sum over channels at each
of the 16 positions ξ of the 4x4 transformed tile is one GEMM M[ξ] = V[ξ] @ U[ξ], (tiles, C) @
(C, C_out): 16 multiply-adds per input channel and output channel for 4 output pixels, where
im2col's GEMM takes 9 per pixel. The transforms are additions of strided slices of the image laid
out batch-inner, (H, W, N, C) as conv2d's outputs are (:func:`kernels.conv_output`), with its
columns split by parity (:func:`_split_image`), so that each slice is one long run per block of tiles.

The gradients, for a loss with gradient g (N, OH, OW, C_out) at y:

- dx is the full correlation of g with the kernel flipped and its channels swapped,
  w'[p, q, o, c] = w[2-p, 2-q, c, o], over g padded by 2 - padding: the same forward pass.
- dU[ξ] = V[ξ]^T @ (A g A^T)[ξ], summed over the tiles (the 2x2 tiles of g, A = (A^T)^T), a GEMM
  (C, tiles) @ (tiles, C_out); then dw = G^T dU G (the adjoint of w -> U).

Tiles are processed in blocks of consecutive tiles whose transformed planes stay in the cache
(about BLOCK_BYTES), groups of blocks on the library's threads (:mod:`tinygrad_cnn.intraop`), cut
by the shapes alone. An odd output size takes a last row or column of tiles half outside the
output: the image gets one more row or column of zeros, g likewise, and the tiles' missing
outputs are not written. docs/performance.md has the measurements behind :func:`fits`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import cast

import numpy as np

from . import intraop, kernels

Shape = tuple[int, ...]

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
BLOCK_BYTES = 4 << 20  # transformed planes (input's and output's) of a block of tiles: see _blocks
MIN_ROWS = 256  # GEMM rows (tiles * N) per block at least: fewer run BLAS well below its speed
MIN_CHANNELS = 16  # see fits()
TASK_SHARE = 4  # blocks cost dozens of NumPy calls each: a task takes TASK_SHARE times kernels.TASK_BYTES at least
MIN_VALUES = 1 << 15  # see fits()
MIN_FULL_PIXELS = 14 * 14  # see conv_grads()


def fits(x_shape: Shape, w_shape: Shape, stride: Shape, dilation: Shape, padding: Shape) -> bool:
    """Whether conv2d of x (N, C, H, W) of ``x_shape`` by a weight of ``w_shape`` (kh, kw, C, C_out)
    takes the Winograd path: a 3x3 kernel at stride 1, dilation 1, padding 0 or 1, at least
    MIN_CHANNELS input and output channels, and at least MIN_VALUES of N*H*W times the smaller
    channel count. Below, the transforms (slice-adds over the image, a few dozen NumPy calls per
    block of tiles) cost more than the GEMMs save. Forward and backward on one thread against the
    im2col path (``benchmarks/winograd.py --all``, docs/performance.md): 1.3-1.7x with padding 1
    from 16 channels at 8 or more images, 1.0-1.6x unpadded; turned down: 0.9-0.96x for one 32x32
    image of 16 channels, 0.8-0.9x for one 16x16 image of 32, 0.6-0.8x for 3 -> 32 channels."""
    kh, kw, c, c_out = w_shape
    n, _, h, w = x_shape
    return (
        (kh, kw) == (3, 3)
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and all(p in (0, 1) for p in padding)
        and min(c, c_out) >= MIN_CHANNELS
        and n * h * w * min(c, c_out) >= MIN_VALUES
    )


def weight_tiles(w: np.ndarray, g_matrix: np.ndarray = G) -> np.ndarray:
    """U = G w G^T per channel pair: w (r, r, C, C_out) -> (n*n, C, C_out), ξ = n*i + j, for the
    kernel transform G (n, r) (default: this module's, n = 4, r = 3; :mod:`winograd5` passes its own)."""
    g = g_matrix.astype(w.dtype)
    n, r = g.shape
    c, c_out = w.shape[2:]
    over_rows = (g @ w.reshape(r, r * c * c_out)).reshape(n, r, c * c_out)
    return np.matmul(g, over_rows).reshape(n * n, c, c_out)


def weight_from_tiles(du: np.ndarray, g_matrix: np.ndarray = G) -> np.ndarray:
    """dw = G^T dU G per channel pair, the adjoint of :func:`weight_tiles`: (n*n, C, C_out) -> (r, r, C, C_out)."""
    g_t = g_matrix.T.astype(du.dtype)
    r, n = g_t.shape
    c, c_out = du.shape[1:]
    over_rows = (g_t @ du.reshape(n, n * c * c_out)).reshape(r, n, c * c_out)
    return np.matmul(g_t, over_rows).reshape(r, r, c, c_out)


def _tiles(out_hw: Shape) -> tuple[int, int]:
    """Rows and columns of 2x2 tiles covering an output of (OH, OW)."""
    return -(-out_hw[0] // 2), -(-out_hw[1] // 2)


def _split_image(x: np.ndarray, padding: Shape, tiles: Shape) -> np.ndarray:
    """x (N, C, H, W) zero-padded by ``padding`` and, at the bottom and right, up to the 4x4 input
    tiles of ``tiles`` (rows, columns) of 2x2 output tiles, its columns split by parity:
    (2*rows + 2, 2, cols + 1, N, C), padded pixel (h, w) at [h, w % 2, w // 2]. The tiles' column
    s (0..3) of tiles j..j' is then one run [s % 2, j + s // 2 : j' + s // 2] of (j' - j) * N * C
    values: NumPy's loops over runs of N*C (a few thousand values) ran 2-3x slower."""
    n, c, h, w = x.shape
    (ph, pw), (th, tw) = padding, tiles
    out = np.empty((2 * th + 2, 2, tw + 1, n, c), dtype=x.dtype)
    out[:ph] = 0
    out[ph + h :] = 0
    image = x.transpose(2, 3, 0, 1)  # (H, W, N, C)
    for parity in range(2):
        first = (parity - pw) % 2  # x's first column that lands on this parity
        columns = image[:, first::2]
        start = (pw + first) // 2
        target = out[ph : ph + h, parity]
        target[:, :start] = 0
        target[:, start + columns.shape[1] :] = 0
        kernels.copy_in_slabs(columns, target[:, start : start + columns.shape[1]])
    return out


def _blocks(tiles: Shape, n: int, channels: int, itemsize: int) -> list[tuple[int, int, int, int]]:
    """The (rows, columns) grid of tiles cut into blocks of consecutive tiles (first row, rows,
    first column, columns): whole rows of tiles when a row fits in BLOCK_BYTES of transformed
    planes (16 per tile, ``channels`` values for each of the N images: inputs and outputs together),
    else equal pieces of one row; at least MIN_ROWS GEMM rows each, and large work cut into
    kernels.MIN_BLOCKS blocks at least (for threads), as :class:`kernels.Im2col`'s, but with
    TASK_SHARE times its work per task at least (one 4-image 32x32 16-channel conv in 4 blocks
    rather than 1 ran 0.8x of im2col's speed against 1.2x). Depends on the shapes only.

    A block takes about 20 NumPy calls, each of which lets go of the GIL and takes it back; on two
    threads, 2 MB blocks (calls on ~16K values) spent their time handing the GIL over (forward and
    backward of 16 channels on 32x32 images, batch 500: 0.89x of im2col's speed on two threads
    against 1.45x on one); 4 MB blocks were as fast on one thread and 1.21x on two."""
    th, tw = tiles
    tile_bytes = 16 * n * channels * itemsize
    per_block = min(BLOCK_BYTES // tile_bytes, -(-th * tw // kernels.split_count(th * tw * tile_bytes // TASK_SHARE)))
    per_block = max(-(-MIN_ROWS // n), per_block, 1)
    if per_block >= tw:
        step = per_block // tw
        return [(i, min(step, th - i), 0, tw) for i in range(0, th, step)]
    return [(i, 1, cols.start, len(cols)) for i in range(th) for cols in intraop.pieces(tw, 1, -(-tw // per_block))]


def _input_planes(xp: np.ndarray, block: tuple[int, int, int, int], v: np.ndarray, rows_buffer: np.ndarray) -> None:
    """V = B^T d B of a block's tiles into v (16, rows, cols, N, C), from the image xp split by
    column parity (see :func:`_split_image`); rows_buffer holds (4, rows, 2, cols + 1, N, C) of the
    row transform."""
    i0, bi, j0, bj = block
    d = [xp[2 * i0 + r : 2 * i0 + r + 2 * bi - 1 : 2, :, j0 : j0 + bj + 1] for r in range(4)]  # tiles' row r
    t = rows_buffer
    _b_transform(d, t)
    by_column = v.reshape(4, 4, *v.shape[1:]).swapaxes(0, 1)  # [s', r'] = V[4 r' + s']: all rows r' in one op
    _b_transform([t[:, :, s % 2, s // 2 : s // 2 + bj] for s in range(4)], by_column)


def _b_transform(d: Sequence[np.ndarray], out: np.ndarray) -> None:
    """out[k] = sum over r of B^T[k, r] * d[r], k = 0..3 (four slice-adds)."""
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


def _output_tiles(
    m: np.ndarray, y: np.ndarray, block: tuple[int, int, int, int], b: np.ndarray | None, cols_buffer: np.ndarray
) -> None:
    """y[2i+a, 2j+b] = (A^T M A)[a, b] (+ the bias b) for a block's tiles (i, j), from m (16, rows,
    cols, N, C_out) into y (OH, OW, N, C_out), leaving out the outputs past y's edge; cols_buffer
    holds (4, 2, rows, cols, N, C_out) of the column transform. The sums are made in that buffer
    (contiguous) and copied into y at the end: slice-adds into y's runs of N*C_out were slower."""
    z = cols_buffer
    planes = m.reshape(4, 4, *m.shape[1:])  # [r, s] = M[4 r + s]; each op below covers all rows r
    np.add(planes[:, 0], planes[:, 1], out=z[:, 0])
    z[:, 0] += planes[:, 2]
    np.subtract(planes[:, 1], planes[:, 2], out=z[:, 1])
    z[:, 1] -= planes[:, 3]
    z[0] += z[1]
    z[0] += z[2]  # z[0, b] = (A^T M A)[0, b]
    z[1] -= z[2]
    z[1] -= z[3]  # z[1, b] = (A^T M A)[1, b]
    if b is not None:
        kernels.add_row(z[:2].reshape(-1, z.shape[-1]), b)
    write_tiles(y, z[:2], block)


def write_tiles(y: np.ndarray, tiles: np.ndarray, block: tuple[int, int, int, int]) -> None:
    """y[2i+a, 2j+b] = tiles[a, b, i - i0, j - j0] for the block's tiles (i, j) from (i0, j0): tiles
    (2, 2, rows, cols, N, C_out) of outputs into y (OH, OW, N, C_out), leaving out those past y's edge."""
    i0, bi, j0, bj = block
    oh, ow = y.shape[:2]
    for a in range(2):
        rows = min(bi, (oh - a + 1) // 2 - i0)  # tiles of the block whose output row 2i + a is in y
        for b_ in range(2):
            cols = min(bj, (ow - b_ + 1) // 2 - j0)
            target = y[2 * i0 + a : 2 * (i0 + rows) + a - 1 : 2, 2 * j0 + b_ : 2 * (j0 + cols) + b_ - 1 : 2]
            np.copyto(target, tiles[a, b_, :rows, :cols])


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, padding: Shape) -> np.ndarray:
    """conv2d of x (N, C, H, W) by w (3, 3, C, C_out) plus b (C_out,) or None, stride 1, zero
    padding ``padding``: the output (N, OH, OW, C_out), laid out batch-inner (OH, OW, N, C_out).
    Per block of tiles: V = B^T d B, M[ξ] = V[ξ] @ U[ξ] (one batched GEMM), y = A^T M A, the bias."""
    oh, ow = x.shape[2] + 2 * padding[0] - 2, x.shape[3] + 2 * padding[1] - 2
    y, tasks = _split_conv_tasks(_split_image(x, padding, _tiles((oh, ow))), w, b, (oh, ow))
    intraop.run(tasks)
    return y


def _split_conv_tasks(
    xp: np.ndarray, w: np.ndarray, b: np.ndarray | None, out_hw: Shape
) -> tuple[np.ndarray, list[Callable[[], None]]]:
    """:func:`conv_forward` of the image xp split and padded by :func:`_split_image`, for an output
    of ``out_hw``: the output, left unwritten until the tasks returned with it have run (in any
    order, on any threads)."""
    n, c = xp.shape[3:]
    c_out = w.shape[3]
    oh, ow = out_hw
    tiles = _tiles((oh, ow))
    u = weight_tiles(w)
    dtype = np.result_type(xp, w)
    y = np.empty((oh, ow, n, c_out), dtype=dtype)
    blocks = _blocks(tiles, n, c + c_out, dtype.itemsize)

    def run_blocks(indices: range) -> None:
        most = max(blocks[k][1] * blocks[k][3] for k in indices) * n
        wide = max(blocks[k][1] * (2 * blocks[k][3] + 2) for k in indices) * n
        size_v, size_m = 16 * most * c, 16 * most * c_out
        buffer = intraop.scratch(size_v + size_m + max(4 * wide * c, 8 * most * c_out), dtype)
        rest = buffer[size_v + size_m :]
        for k in indices:
            i0, bi, j0, bj = block = blocks[k]
            v = buffer[: 16 * bi * bj * n * c].reshape(16, bi, bj, n, c)
            _input_planes(xp, block, v, rest[: 4 * bi * (2 * bj + 2) * n * c].reshape(4, bi, 2, bj + 1, n, c))
            m = buffer[size_v : size_v + 16 * bi * bj * n * c_out].reshape(16, bi * bj * n, c_out)
            np.matmul(v.reshape(16, bi * bj * n, c), u, out=m)
            _output_tiles(
                m.reshape(16, bi, bj, n, c_out),
                y,
                block,
                b,
                rest[: 8 * bi * bj * n * c_out].reshape(4, 2, bi, bj, n, c_out),
            )

    tasks: list[Callable[[], None]] = [partial(run_blocks, indices) for indices in intraop.pieces(len(blocks), 1)]
    return y.transpose(2, 0, 1, 3), tasks


def _input_grad_tasks(gp: np.ndarray, w: np.ndarray, hw: Shape) -> tuple[np.ndarray, list[Callable[[], None]]]:
    """conv2d's input gradient (N, C, H, W) of an image of ``hw``, laid out (H, W, N, C), from g
    (N, OH, OW, C_out) padded by 2 - padding and split by :func:`_split_image` (gp) and w (3, 3, C,
    C_out): the correlation of g with the flipped kernel whose channels are swapped (see the
    module's docstring), as :func:`_split_conv_tasks`' tasks."""
    gx, tasks = _split_conv_tasks(gp, w[::-1, ::-1].transpose(0, 1, 3, 2), None, hw)
    return gx.transpose(0, 3, 1, 2), tasks


def _a_transform(g0: np.ndarray, g1: np.ndarray, out: np.ndarray) -> None:
    """out[k] = sum over a of A[k, a] * g_a, A = [[1, 0], [1, 1], [1, -1], [0, -1]] (four slice ops)."""
    np.copyto(out[0], g0)
    np.add(g0, g1, out=out[1])
    np.subtract(g0, g1, out=out[2])
    np.multiply(g1, -1, out=out[3])  # not np.negative: NumPy 2.4's float32 loop misreads g1 at some strides into out's


def weight_grad_tasks(
    x: np.ndarray, g: np.ndarray, padding: Shape, g_split: tuple[np.ndarray, Shape] | None = None
) -> tuple[list[Callable[[], np.ndarray]], Callable[[Sequence[np.ndarray]], np.ndarray]]:
    """conv2d's weight gradient (3, 3, C, C_out) from x (N, C, H, W) and g (N, OH, OW, C_out), as
    tasks that each sum dU = V^T @ (A g A^T) per ξ over a group of blocks of tiles, and the function
    that adds their results up in task order (the same sum whatever the thread count) and returns
    dw = G^T dU G. ``g_split``: g as split by :func:`_split_image` for the input gradient, with the
    padding it got there (read from there, not copied again), or None."""
    n, c, h, wd = x.shape
    _, oh, ow, c_out = g.shape
    tiles = _tiles((oh, ow))
    xp = _split_image(x, padding, tiles)
    if g_split is None:
        g_split = _split_image(g.transpose(0, 3, 1, 2), (0, 0), (tiles[0] - 1, tiles[1] - 1)), (0, 0)
    gp, (top, left) = g_split  # g's pixel (a, b) is gp's padded pixel (a + top, b + left)
    dtype = np.result_type(x, g)
    blocks = _blocks(tiles, n, c + c_out, dtype.itemsize)

    def run_blocks(indices: range) -> np.ndarray:
        most = max(blocks[k][1] * blocks[k][3] for k in indices) * n
        wide = max(blocks[k][1] * (2 * blocks[k][3] + 2) for k in indices) * n
        size_v, size_g = 16 * most * c, 16 * most * c_out
        buffer = intraop.scratch(size_v + size_g + max(4 * wide * c, 4 * wide * c_out), dtype)
        rest = buffer[size_v + size_g :]
        total = np.zeros((16, c, c_out), dtype=dtype)
        part = np.empty_like(total)
        for k in indices:
            i0, bi, j0, bj = block = blocks[k]
            count = bi * bj * n
            v = buffer[: 16 * count * c].reshape(16, bi, bj, n, c)
            _input_planes(xp, block, v, rest[: 4 * bi * (2 * bj + 2) * n * c].reshape(4, bi, 2, bj + 1, n, c))
            planes = buffer[size_v : size_v + 16 * count * c_out].reshape(4, 4, bi, bj, n, c_out)
            rows_t = rest[: 4 * bi * 2 * bj * n * c_out].reshape(4, bi, 2, bj, n, c_out)
            first = 2 * i0 + top
            for b in range(2):  # the tiles' column b: g's columns 2j + b
                parity, start = (b + left) % 2, j0 + (b + left) // 2
                g0, g1 = (gp[first + a : first + a + 2 * bi - 1 : 2, parity, start : start + bj] for a in range(2))
                _a_transform(g0, g1, rows_t[:, :, b])
            _a_transform(rows_t[:, :, 0], rows_t[:, :, 1], planes.swapaxes(0, 1))  # all rows r in each op
            np.matmul(v.reshape(16, count, c).transpose(0, 2, 1), planes.reshape(16, count, c_out), out=part)
            total += part
        return total

    def add_up(sums: Sequence[np.ndarray]) -> np.ndarray:
        return weight_from_tiles(kernels.sum_in_order(sums))

    most = max(1, min(16, kernels.PARTIAL_SUMS_BYTES // (16 * c * c_out * dtype.itemsize)))
    return [partial(run_blocks, indices) for indices in intraop.pieces(len(blocks), 1, most)], add_up


def conv_grads(
    x: np.ndarray, w: np.ndarray, g: np.ndarray, padding: Shape, need_x: bool, need_w: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """conv2d's input gradient (N, C, H, W) (laid out (H, W, N, C)) and weight gradient (3, 3, C, C_out)
    (None where not needed) from g (N, OH, OW, C_out): the tasks of both run from one queue, reading
    one copy of g. Unpadded on a small g, the input gradient is the im2col path's fold
    (:func:`kernels.fold_products_tasks`): the full correlation pads g by 2 - padding on each side
    and computes H x W pixels, where the fold takes OH x OW windows, and below MIN_FULL_PIXELS
    of g that costs more than the GEMMs save (one thread: a 13x13 g of 64 channels at batch 64,
    0.93x of the fold's speed; 5x5 at batch 128 and 128 channels, 0.72x; 14x14 and more, 1.2-1.6x)."""
    gx: np.ndarray | None = None
    x_tasks: list[Callable[[], None]] = []
    g_split = None
    _, oh, ow, _ = g.shape
    if need_x and (tuple(padding) == (1, 1) or oh * ow >= MIN_FULL_PIXELS):
        full = (2 - padding[0], 2 - padding[1])
        g_split = _split_image(g.transpose(0, 3, 1, 2), full, _tiles(x.shape[2:])), full
        gx, x_tasks = _input_grad_tasks(g_split[0], w, x.shape[2:])
    elif need_x:
        gx, x_tasks = kernels.fold_products_tasks(kernels.conv_rows(g), w, x.shape, (1, 1), (1, 1), padding)
    w_tasks, add_up = weight_grad_tasks(x, g, padding, g_split) if need_w else ([], None)
    tasks: list[Callable[[], np.ndarray | None]] = [*x_tasks, *w_tasks]
    results = intraop.run(tasks)
    gw = add_up(cast(list[np.ndarray], results[len(x_tasks) :])) if add_up is not None else None
    return gx, gw
