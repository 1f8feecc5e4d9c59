"""conv2d by Winograd's F(2x2, 3x3) (``--kernel 5``: F(2x2, 5x5)) against the im2col path, kernel
by kernel, on one thread.

    OPENBLAS_NUM_THREADS=1 python benchmarks/winograd.py [--kernel 3|5] [--rounds R] [--all]

For each shape (batch, channels in -> out, image size, padding; the image laid out as a conv2d
output's, batch-inner), times ``kernels.conv_forward`` and ``kernels.conv_grads`` (input, weight
and bias gradients) as they run, and again with ``winograd.fits`` answering no (the im2col path),
rounds alternating; prints the medians of thread CPU time in ms and im2col's time over Winograd's
(above 1: Winograd is faster). Shapes that ``winograd.fits`` (``winograd5.fits``) turns down are marked ``(im2col)``:
their figures are what Winograd would have done (``--all`` forces it on them too, to see why).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import kernels, winograd, winograd5  # noqa: E402

SHAPES = [  # batch, C, C_out, H = W, padding
    (64, 3, 32, 32, 1),
    (64, 16, 16, 32, 1),
    (8, 16, 16, 32, 1),
    (1, 16, 16, 32, 1),
    (128, 16, 32, 16, 1),
    (64, 32, 32, 32, 1),
    (64, 32, 32, 32, 0),
    (8, 32, 32, 32, 1),
    (1, 32, 32, 16, 1),
    (64, 32, 64, 16, 1),
    (64, 32, 64, 15, 0),
    (64, 64, 64, 16, 1),
    (8, 64, 64, 56, 1),
    (1, 64, 64, 56, 1),
    (128, 64, 128, 8, 1),
    (32, 128, 128, 14, 1),
    (128, 128, 128, 7, 0),
    (1, 128, 128, 28, 1),
    (64, 256, 256, 7, 1),
    (8, 256, 256, 14, 1),
]
SHAPES_5X5 = [  # LeNet-ish's second layer at batch 128, 8 and 1, padded ("same") ones, few and many channels
    (128, 16, 32, 12, 0),
    (8, 16, 32, 12, 0),
    (1, 16, 32, 12, 0),
    (64, 16, 32, 16, 2),
    (64, 16, 16, 14, 2),
    (64, 6, 16, 14, 0),
    (64, 4, 16, 28, 0),
    (64, 32, 4, 16, 2),
    (16, 32, 64, 28, 2),
    (8, 64, 64, 14, 2),
    (1, 64, 64, 16, 2),
    (4, 256, 256, 10, 2),
    (64, 3, 32, 32, 2),
    (128, 1, 16, 28, 0),
]


def cpu_ms(f: Callable[[], object], calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        f()
    return (time.thread_time() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", type=int, choices=(3, 5), default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="Winograd on every shape, even those fits() turns down")
    args = parser.parse_args()
    tg.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'shape':<32}{'forward im2col/wino':>22}{'backward im2col/wino':>24}{'both':>7}")
    k = args.kernel
    module = winograd if k == 3 else winograd5
    for n, c, c_out, hw, pad in SHAPES if k == 3 else SHAPES_5X5:
        padding, one = (pad, pad), (1, 1)
        x = rng.standard_normal((hw, hw, n, c), dtype=np.float32).transpose(2, 3, 0, 1)
        w = rng.standard_normal((k, k, c, c_out), dtype=np.float32)
        b = rng.standard_normal(c_out, dtype=np.float32)
        g = rng.standard_normal((hw + 2 * pad - k + 1,) * 2 + (n, c_out), dtype=np.float32).transpose(2, 0, 1, 3)
        if k == 3:
            takes = winograd.fits(x.shape, w.shape, one, one, padding)
        else:
            takes = winograd5.fits(x.shape, w.shape, one, one, padding, x.dtype)

        forward = partial(kernels.conv_forward, x, w, b, one, one, padding)
        backward = partial(kernels.conv_grads, x, w, g, one, one, padding, None, (True, True, True))
        im2col = mock.patch.object(module, "fits", return_value=False)
        wino = mock.patch.object(module, "fits", return_value=takes or args.all)
        start = time.perf_counter()
        with im2col:
            backward()
        calls = max(1, int(0.05 / (time.perf_counter() - start)))
        times: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, patch in (("im2col", im2col), ("wino", wino)):
                with patch:
                    times.setdefault(f"forward {name}", []).append(cpu_ms(forward, calls))
                    times.setdefault(f"backward {name}", []).append(cpu_ms(backward, calls))
        med = {k: statistics.median(v) for k, v in times.items()}
        cells = []
        for part in ("forward", "backward"):
            old, new = med[f"{part} im2col"], med[f"{part} wino"]
            cells.append(f"{old:6.2f}/{new:6.2f} {old / new:4.2f}x")
        both = (med["forward im2col"] + med["backward im2col"]) / (med["forward wino"] + med["backward wino"])
        shape = f"{n}x {c}->{c_out} {hw}x{hw} p{pad}" + ("" if takes else " (im2col)")
        print(f"{shape:<32}{cells[0]:>22}{cells[1]:>24}{both:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
