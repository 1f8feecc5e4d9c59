"""CPU time of one grouped or depthwise conv2d layer, forward and backward, ours against PyTorch.

    OPENBLAS_NUM_THREADS=1 python benchmarks/grouped_conv.py [--rounds R] [--batch N] [--only NAME ...]

Each case is a 3x3 convolution with padding 1 (``C_in -> C_out``, ``groups``, ``stride``) of a
random float32 batch; a step is ``y = conv2d(x, w, b)`` and ``y.backward(g)`` (the gradients of
x, w and b). Our input and output gradient are laid out as conv2d's outputs are, ``(H, W, N, C)``
in memory, as they are inside a net (``--nchw``: plain NCHW arrays). PyTorch runs on one thread.
The two are timed in turn, ``--rounds`` samples of 5 steps each (alternating which goes first), with
``time.process_time()``; the table shows the medians and their ratio (PyTorch's time / ours:
above 1 is faster than PyTorch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

# name: (C_in, C_out, groups, H = W, stride)
CASES = {
    "dw32 32x32": (32, 32, 32, 32, 1),
    "dw64 32x32": (64, 64, 64, 32, 1),
    "dw128 16x16": (128, 128, 128, 16, 1),
    "dw32 16x16": (32, 32, 32, 16, 1),
    "dw128 32x32": (128, 128, 128, 32, 1),
    "dw32 32x32 s2": (32, 32, 32, 32, 2),
    "dw64 32x32 s2": (64, 64, 64, 32, 2),
    "dw128 16x16 s2": (128, 128, 128, 16, 2),
    "dw32 x2 32x32": (32, 64, 32, 32, 1),
    "g2 (32/group) 32x32": (64, 64, 2, 32, 1),
    "g8 (8/group) 32x32": (64, 64, 8, 32, 1),
    "g32 (4/group) 16x16": (128, 128, 32, 16, 1),
}
STEPS = 5


def case_step(lib: Any, case: tuple[int, int, int, int, int], batch: int, nchw: bool) -> Any:
    """A function running STEPS forward and backward passes of the case in ``lib`` (tinygrad_cnn or torch)."""
    c_in, c_out, groups, side, stride = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c_in, side, side)).astype(np.float32)
    if lib.__name__ != "torch" and not nchw:
        x = np.ascontiguousarray(x.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)  # as conv2d outputs are
    w = (rng.standard_normal((c_out, c_in // groups, 3, 3)) / 3).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    xs, ws, bs = (lib.tensor(a, requires_grad=True) for a in (x, w, b))
    out = (side + 2 - 3) // stride + 1
    g_array = rng.standard_normal((batch, c_out, out, out)).astype(np.float32)
    if lib.__name__ != "torch" and not nchw:  # as the gradient reaching a conv2d output is
        g_array = np.ascontiguousarray(g_array.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    g = lib.tensor(g_array)

    def steps() -> None:
        for _ in range(STEPS):
            for t in (xs, ws, bs):
                t.grad = None
            lib.nn.functional.conv2d(xs, ws, bs, stride, 1, 1, groups).backward(g)

    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="these cases only")
    parser.add_argument("--nchw", action="store_true", help="give ours plain NCHW arrays")
    args = parser.parse_args()
    import torch

    import tinygrad_cnn as tg

    torch.set_num_threads(1)
    print(f"batch {args.batch}, 3x3, padding 1, ms of CPU per forward+backward (median of {args.rounds})")
    print(f"{'case':<22}{'ours':>8}{'torch':>8}{'torch/ours':>12}")
    for name in args.only or CASES:
        contenders = [case_step(lib, CASES[name], args.batch, args.nchw) for lib in (tg, torch)]
        times: list[list[float]] = [[], []]
        for step in contenders:
            step()  # warm up
        for r in range(args.rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                start = time.process_time()
                contenders[i]()
                times[i].append((time.process_time() - start) / STEPS * 1e3)
        ours, theirs = (statistics.median(t) for t in times)
        print(f"{name:<22}{ours:8.2f}{theirs:8.2f}{theirs / ours:12.2f}", flush=True)


if __name__ == "__main__":
    main()
