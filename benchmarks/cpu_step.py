"""CPU time of one LeNet-ish training step, for comparing versions of the library.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cpu_step.py [REPO ...] [--tune] [--batch N] [--rounds R] [--cpu K]

Measures ``time.process_time()`` (user + system CPU of the process), which other programs on a
shared machine disturb less than wall time. Only tensor ops are used (no nn/optim), so the script
runs against every version of the library since its first commit: point REPO at a
``git worktree`` of the commit to measure (default: this checkout). ``--tune`` calls
``tinygrad_cnn.memory.tune_allocator()`` first.

Each REPO gets a process of its own that stays up; the script asks them for a sample of 5 steps
in turn, ``--rounds`` times (alternating the order), and prints each one's median and minimum.
Alternating matters here: the speed of this shared machine drifts by a third within minutes, so
versions measured one after the other are not comparable. ``--cpu K`` pins every process to
CPU K: on a virtual machine the two CPUs may run at different speeds at the same moment.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SAMPLE_STEPS = 5


def serve(repo: Path, batch: int, tune: bool) -> None:
    """One version's process: on every line read from stdin, time SAMPLE_STEPS steps and print ms per step."""
    sys.path.insert(0, str(repo))
    import tinygrad_cnn as tg
    from tinygrad_cnn import functional as F

    if tune:
        from tinygrad_cnn.memory import tune_allocator

        tune_allocator()
    rng = np.random.default_rng(0)

    def param(*shape: int, fan_in: int) -> tg.Tensor:
        return tg.Tensor((rng.uniform(-1, 1, shape) / np.sqrt(fan_in)).astype(np.float32), requires_grad=True)

    params = [
        param(16, 1, 5, 5, fan_in=25),
        param(16, fan_in=25),
        param(32, 16, 5, 5, fan_in=400),
        param(32, fan_in=400),
        param(10, 512, fan_in=512),
        param(10, fan_in=512),
    ]
    w1, b1, w2, b2, w3, b3 = params
    raw = gzip.open(repo / "tinygrad_cnn/data/mnist/train-images-idx3-ubyte.gz").read()
    pixels = np.frombuffer(raw, np.uint8, offset=16)[: batch * 784].reshape(batch, 1, 28, 28)
    x = ((pixels / 255.0 - 0.1307) / 0.3081).astype(np.float32)  # real digits: pooling sees their ties
    y = rng.integers(0, 10, batch)

    def step() -> None:
        h = F.max_pool2d(F.relu(F.conv2d(tg.Tensor(x), w1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2)), 2)
        loss = F.cross_entropy(F.linear(h.reshape(batch, -1), w3, b3), y)
        for p in params:
            p.grad = None
        loss.backward()

    for _ in range(3):
        step()
    for _ in sys.stdin:
        start = time.process_time()
        for _ in range(SAMPLE_STEPS):
            step()
        print((time.process_time() - start) / SAMPLE_STEPS * 1e3, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="*", type=Path, default=[Path(__file__).resolve().parents[1]])
    parser.add_argument("--tune", action="store_true", help="call tune_allocator() first")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cpu", type=int, help="pin every process to this CPU")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.repos[0].resolve(), args.batch, args.tune)
        return
    pin = [] if args.cpu is None else ["taskset", "-c", str(args.cpu)]
    children = []
    for repo in args.repos:
        command = [sys.executable, __file__, str(repo.resolve()), "--serve", "--batch", str(args.batch)]
        children.append(
            subprocess.Popen(
                pin + command + ["--tune"] * args.tune, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
    samples: list[list[float]] = [[] for _ in children]
    for r in range(args.rounds):
        order = range(len(children)) if r % 2 == 0 else reversed(range(len(children)))
        for i in order:
            children[i].stdin.write("\n")
            children[i].stdin.flush()
            samples[i].append(float(children[i].stdout.readline()))
    for child in children:
        child.stdin.close()
        child.wait()
    tuned = " (tuned allocator)" if args.tune else ""
    for repo, times in zip(args.repos, samples):
        median = statistics.median(times)
        print(
            f"{repo}{tuned}: {median:.1f} ms CPU per step (median of {len(times)}; min {min(times):.1f}), "
            f"{args.batch / median * 1e3:,.0f} img/s per core, batch {args.batch}"
        )


if __name__ == "__main__":
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        print("note: set OPENBLAS_NUM_THREADS=1 to measure one core", file=sys.stderr)
    main()
