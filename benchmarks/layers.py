"""Forward and backward of one layer at a time, tinygrad_cnn against PyTorch: finds the layers a
user's net would be slow on.

    OPENBLAS_NUM_THREADS=1 python benchmarks/layers.py [LAYER ...] [--rounds R] [--threads T]

Each layer gets an input of its shape (float32, requiring grad) and runs ``layer(x)``, then the
backward of ``(y * y).sum()``. Both frameworks run in this process, rounds alternating between
them; a round times several calls by CPU time (``time.process_time``). Printed: each side's median
ms per call and ``ratio`` = PyTorch's time / ours (above 1: we are faster). Without PyTorch
installed only our times are printed. ``identity`` measures the harness itself (the loss and its
backward). Layers named ``..._after_conv`` get their input laid out as each framework's conv2d
lays out its output: ours an NCHW view of (H, W, N, C) memory, PyTorch's contiguous NCHW.
``--list`` names the layers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygrad_cnn as tg  # noqa: E402

try:
    import torch
except ImportError:  # PyTorch is optional: then only our times
    torch = None

Make = Callable[[Any], Any]

LAYERS: dict[str, tuple[Make, tuple[int, ...]]] = {
    "identity": (lambda nn: nn.Identity(), (256, 1024)),
    "relu": (lambda nn: nn.ReLU(), (256, 1024)),
    "leaky_relu": (lambda nn: nn.LeakyReLU(0.1), (256, 1024)),
    "elu": (lambda nn: nn.ELU(), (256, 1024)),
    "sigmoid": (lambda nn: nn.Sigmoid(), (256, 1024)),
    "tanh": (lambda nn: nn.Tanh(), (256, 1024)),
    "silu": (lambda nn: nn.SiLU(), (256, 1024)),
    "gelu": (lambda nn: nn.GELU(), (256, 1024)),
    "softmax": (lambda nn: nn.Softmax(dim=1), (256, 1000)),
    "log_softmax": (lambda nn: nn.LogSoftmax(dim=1), (256, 1000)),
    "dropout": (lambda nn: nn.Dropout(0.5), (128, 32, 16, 16)),
    "linear": (lambda nn: nn.Linear(512, 512), (256, 512)),
    "conv3x3": (lambda nn: nn.Conv2d(32, 32, 3, padding=1), (64, 32, 16, 16)),
    "conv5x5_lenet1": (lambda nn: nn.Conv2d(1, 16, 5), (128, 1, 28, 28)),  # LeNet-ish's layers at batch 128
    "conv5x5_lenet2_after_conv": (lambda nn: nn.Conv2d(16, 32, 5), (128, 16, 12, 12)),
    "conv7_single": (lambda nn: nn.Conv2d(1, 32, 7), (64, 1, 28, 28)),
    "conv5x5_same": (lambda nn: nn.Conv2d(16, 32, 5, padding="same"), (64, 16, 16, 16)),
    "conv1x1": (lambda nn: nn.Conv2d(64, 128, 1), (64, 64, 16, 16)),
    "conv1x1_after_conv": (lambda nn: nn.Conv2d(64, 128, 1), (64, 64, 16, 16)),
    "conv1x1_stride2_after_conv": (lambda nn: nn.Conv2d(64, 128, 1, 2), (64, 64, 16, 16)),
    "conv3x3_stride2": (lambda nn: nn.Conv2d(32, 64, 3, 2, 1), (64, 32, 32, 32)),
    "conv3x3_after_conv": (lambda nn: nn.Conv2d(32, 32, 3, padding=1), (64, 32, 16, 16)),
    "conv3x3_16_after_conv": (lambda nn: nn.Conv2d(16, 16, 3, padding=1), (64, 16, 32, 32)),
    "conv3x3_64_after_conv": (lambda nn: nn.Conv2d(64, 64, 3, padding=1), (64, 64, 8, 8)),
    "conv3x3_128_after_conv": (lambda nn: nn.Conv2d(128, 128, 3, padding=1), (32, 128, 8, 8)),
    "conv3x3_valid_after_conv": (lambda nn: nn.Conv2d(32, 64, 3), (64, 32, 15, 15)),  # padding 0, odd output
    "conv3x3_b8_after_conv": (lambda nn: nn.Conv2d(64, 64, 3, padding=1), (8, 64, 28, 28)),
    # DCGAN generator layers (4x4, stride 2, padding 1) at several channel counts, its first layer from the latent
    "conv_transpose4_s2": (lambda nn: nn.ConvTranspose2d(64, 32, 4, 2, 1), (64, 64, 8, 8)),
    "conv_transpose4_s2_after_conv": (lambda nn: nn.ConvTranspose2d(64, 32, 4, 2, 1), (64, 64, 8, 8)),
    "conv_transpose4_s2_c256": (lambda nn: nn.ConvTranspose2d(256, 128, 4, 2, 1), (64, 256, 4, 4)),
    "conv_transpose4_s2_to_rgb": (lambda nn: nn.ConvTranspose2d(32, 3, 4, 2, 1), (64, 32, 16, 16)),
    "conv_transpose4_latent": (lambda nn: nn.ConvTranspose2d(100, 256, 4, 1, 0), (64, 100, 1, 1)),
    "conv_transpose3_s1": (lambda nn: nn.ConvTranspose2d(32, 32, 3, 1, 1), (64, 32, 16, 16)),
    "conv_transpose3_s2_op1": (lambda nn: nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1), (64, 32, 8, 8)),
    "conv_transpose2_s2": (lambda nn: nn.ConvTranspose2d(64, 32, 2, 2), (32, 64, 16, 16)),  # U-Net upsampling
    "conv_transpose_groups4": (lambda nn: nn.ConvTranspose2d(64, 32, 4, 2, 1, groups=4), (64, 64, 8, 8)),
    "conv_transpose_dw": (lambda nn: nn.ConvTranspose2d(32, 32, 4, 2, 1, groups=32), (64, 32, 8, 8)),
    "max_pool2": (lambda nn: nn.MaxPool2d(2), (128, 32, 16, 16)),
    "max_pool3_s2_p1": (lambda nn: nn.MaxPool2d(3, 2, 1), (64, 32, 32, 32)),
    "max_pool2_after_conv": (lambda nn: nn.MaxPool2d(2), (128, 32, 16, 16)),
    "max_pool3_s2_p1_after_conv": (lambda nn: nn.MaxPool2d(3, 2, 1), (64, 32, 32, 32)),
    "max_pool3_s1_p1_after_conv": (lambda nn: nn.MaxPool2d(3, 1, 1), (64, 32, 32, 32)),
    "avg_pool2": (lambda nn: nn.AvgPool2d(2), (128, 32, 16, 16)),
    "avg_pool3_s1_p1": (lambda nn: nn.AvgPool2d(3, 1, 1), (64, 32, 16, 16)),
    "adaptive_avg_pool1": (lambda nn: nn.AdaptiveAvgPool2d(1), (128, 64, 8, 8)),
    "upsample2_nearest": (lambda nn: nn.Upsample(scale_factor=2, mode="nearest"), (64, 32, 16, 16)),
    "batch_norm2d": (lambda nn: nn.BatchNorm2d(32), (64, 32, 16, 16)),
    "batch_norm1d": (lambda nn: nn.BatchNorm1d(256), (256, 256)),
    "layer_norm": (lambda nn: nn.LayerNorm(256), (256, 256)),
    "group_norm": (lambda nn: nn.GroupNorm(8, 32), (64, 32, 16, 16)),
    "batch_norm2d_after_conv": (lambda nn: nn.BatchNorm2d(32), (64, 32, 16, 16)),
    "group_norm_after_conv": (lambda nn: nn.GroupNorm(8, 32), (64, 32, 16, 16)),
}


def sampler(fw: Any, name: str, calls: int) -> Callable[[], float]:
    """A function that runs ``calls`` forward and backward passes of the layer and returns ms per call."""
    make, shape = LAYERS[name]
    fw.manual_seed(0)
    layer = make(fw.nn)
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    after_conv = name.endswith("_after_conv") and fw is tg  # laid out as our conv2d's outputs: (H, W, N, C)
    x = fw.tensor(np.ascontiguousarray(data.transpose(2, 3, 0, 1)) if after_conv else data, requires_grad=True)

    def once() -> None:
        x.grad = None
        y = layer(x.permute(2, 3, 0, 1) if after_conv else x)
        (y * y).sum().backward()

    once()

    def sample() -> float:
        start = time.process_time()
        for _ in range(calls):
            once()
        return (time.process_time() - start) / calls * 1e3

    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("layers", nargs="*", help="layers to run (default: all)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per layer (medians are printed)")
    parser.add_argument("--calls", type=int, default=5, help="calls timed per round")
    parser.add_argument("--threads", type=int, default=1, help="threads for both frameworks (default 1)")
    parser.add_argument("--list", action="store_true", help="list the layers and exit")
    args = parser.parse_args()
    if args.list:
        for name, (_, shape) in LAYERS.items():
            print(f"{name:<20} input {shape}")
        return
    unknown = [n for n in args.layers if n not in LAYERS]
    if unknown:
        parser.error(f"unknown layer(s) {', '.join(unknown)}; --list names them")
    tg.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"{'layer':<20}{'ours ms':>10}{'torch ms':>10}{'ratio':>7}   (ratio = PyTorch's time / ours)")
    for name in args.layers or list(LAYERS):
        sides = {"ours": sampler(tg, name, args.calls)}
        if torch is not None:
            sides["torch"] = sampler(torch, name, args.calls)
        times: dict[str, list[float]] = {side: [] for side in sides}
        for r in range(args.rounds):
            for side in sorted(sides, reverse=bool(r % 2)):  # alternate who goes first
                times[side].append(sides[side]())
        ours = statistics.median(times["ours"])
        if torch is None:
            print(f"{name:<20}{ours:>10.2f}")
            continue
        theirs = statistics.median(times["torch"])
        print(f"{name:<20}{ours:>10.2f}{theirs:>10.2f}{theirs / ours:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
