"""Where a training step spends its time, per primitive (forward and backward).

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_ops.py [--net NET] [--batch N] [--steps S]

The nets are those of ``benchmarks/cpu_step.py`` (``lenet``, ``cifar``, ``mlp``, ``conv7``,
``hvp``). Wraps every primitive's forward, backward and backward_arrays with a CPU timer. A
backward rule that applies other primitives (MatMul.backward calls MatMul.apply) also counts
their time, so rows overlap; "engine" is what the step spent outside every primitive (recording,
the reverse sweep, argument checks).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cpu_step  # noqa: E402

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import primitives as P  # noqa: E402

seconds: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()
depth = [0]  # primitives running now: only the outermost one's time counts towards "engine"


clock = [time.process_time]


def timed(fn: Any, label: str) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock[0]()
        depth[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            depth[0] -= 1
            elapsed = clock[0]() - start
            seconds[label] += elapsed
            if depth[0] == 0:
                seconds["(in primitives)"] += elapsed
            calls[label] += 1

    return staticmethod(wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=cpu_step.NETS, default="lenet")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, help="tinygrad_cnn.set_num_threads(N) first")
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time (for --threads)")
    args = parser.parse_args()
    if args.threads:
        tg.set_num_threads(args.threads)
    if args.wall:
        clock[0] = time.perf_counter
    for name, cls in vars(P).items():
        if isinstance(cls, type) and issubclass(cls, tg.autograd.Primitive) and cls is not tg.autograd.Primitive:
            for kind in ("forward", "backward", "backward_arrays"):
                if kind in vars(cls):
                    setattr(cls, kind, timed(getattr(cls, kind), f"{name}.{kind}"))
    rng = np.random.default_rng(0)
    arrays, x = cpu_step.workload(str(ROOT), args.net, args.batch, rng)
    y = rng.integers(0, 10, args.batch)
    vector = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    step = cpu_step.our_step(ROOT, args.net, arrays, x, y, vector, tune=True)
    for _ in range(3):
        step()
    seconds.clear()
    calls.clear()
    start = clock[0]()
    for _ in range(args.steps):
        step()
    total = (clock[0]() - start) / args.steps
    seconds["engine"] = total * args.steps - seconds.pop("(in primitives)", 0.0)
    what = "ms wall-clock" if args.wall else "ms CPU"
    print(f"{args.net}, batch {args.batch}: {total * 1e3:.2f} {what} per step; per primitive (ms per step, calls):")
    for label, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<28}{s / args.steps * 1e3:8.2f}  x{calls[label] // args.steps}")


if __name__ == "__main__":
    main()
