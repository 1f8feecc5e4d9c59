"""Time of the copies between memory layouts that reshapes and padding make (``kernels.copy_in_slabs``).

    OPENBLAS_NUM_THREADS=1 python benchmarks/layout_copies.py [--threads N]

For conv outputs of several shapes (H·W positions, N images, C channels), laid out batch-inner
``(H, W, N, C)`` as conv2d makes them: the flatten to NCHW order (``forward``), its gradient laid
back out (``backward``), and the copy of an NCHW image into the zero-padded ``(C, H, W, N)`` layout
that a padded convolution of few channels reads (``pad``). Run it in two checkouts to compare
versions (best of 5 repeats of 10 copies each, ms per copy).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import kernels

SHAPES = [(24, 64, 32), (24, 128, 16), (16, 32, 64), (8, 128, 32), (2, 128, 512), (24, 64, 3), (14, 256, 8),
          (24, 60, 32), (32, 32, 16), (24, 8, 32), (56, 32, 64), (7, 64, 256), (28, 16, 32)]  # fmt: skip


def best_ms(src: np.ndarray, dst: np.ndarray, repeats: int = 5, calls: int = 10) -> float:
    """ms per ``kernels.copy_in_slabs(src, dst)``, the best of ``repeats`` runs of ``calls`` copies."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            kernels.copy_in_slabs(src, dst)
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    tg.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print("side, N, C: forward / backward / pad (ms per copy)")
    for side, n, c in SHAPES:
        batch_inner = rng.standard_normal((side, side, n, c)).astype(np.float32).transpose(2, 3, 0, 1)
        nchw = np.empty(batch_inner.shape, np.float32)
        grad = np.empty((side, side, n, c), np.float32).transpose(2, 3, 0, 1)
        padded = np.empty((c, side + 2, side + 2, n), np.float32).transpose(3, 0, 1, 2)[:, :, 1:-1, 1:-1]
        times = [best_ms(batch_inner, nchw), best_ms(nchw, grad), best_ms(nchw, padded)]
        print(f"{side}x{side}, {n}, {c}: " + " / ".join(f"{t:.3f}" for t in times))


if __name__ == "__main__":
    main()
