"""Data-parallel training throughput: 1 and 2 MPI ranks against PyTorch (2 threads), interleaved.

    python benchmarks/distributed.py                  # 5 rounds, prints tables
    python benchmarks/distributed.py --rounds 3 --json out.json

Every contender runs in a fresh process (an ``mpiexec -n N`` job for ours) that builds the model,
takes a few untimed steps, then times ``--steps`` training steps of the same global batch
(forward, backward, gradient averaging, SGD update); rank 0 reports images per second. The
contenders alternate round by round (the machine is shared and noisy: only same-run ratios mean
anything), and each figure is the median of the rounds, with the range beside it.

The 2-rank job also times an allreduce of the model's whole gradient (one DDP bucket) and of 16x
its size. From those two sizes it fits a latency and a per-byte cost and writes a simulated
scaling table for more ranks: compute time from the 1-rank, 1-thread step time divided by N (each rank
takes 1/N of the global batch, an optimistic linear split) plus the allreduce time a ring
allreduce would take (2(N-1) messages of S/N bytes each way) with the fitted costs. On a cluster
the costs are the network's, not shared memory's: the table also shows an assumed network of 50 us
latency and 1 GB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402
from tinygrad_cnn.memory import tune_allocator  # noqa: E402

# name: (input shape of one image, global batch, layers)
MODELS = {
    "lenet": ((1, 28, 28), 128),
    "cifar": ((3, 32, 32), 64),
}
LR = 0.01
NETWORK_LATENCY, NETWORK_PER_BYTE = 50e-6, 1e-9  # an assumed cluster network (10 Gb Ethernet class)


def build_ours(name: str) -> nn.Sequential:
    if name == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(512, 10),
        )  # fmt: skip
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 16 x 16
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64 x 8 x 8
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64 x 4 x 4
        nn.Flatten(), nn.Linear(1024, 10),
    )  # fmt: skip


def build_torch(name: str, ours: nn.Sequential):
    import torch

    layers = []
    for m in ours:
        if isinstance(m, nn.Conv2d):
            c_out, c_in, k, _ = m.weight.shape
            layers.append(torch.nn.Conv2d(c_in, c_out, k, padding=m.padding))
        elif isinstance(m, nn.Linear):
            layers.append(torch.nn.Linear(m.weight.shape[1], m.weight.shape[0]))
        elif isinstance(m, nn.MaxPool2d):
            layers.append(torch.nn.MaxPool2d(2))
        elif isinstance(m, nn.ReLU):
            layers.append(torch.nn.ReLU())
        else:
            layers.append(torch.nn.Flatten())
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    return model


def batch(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    shape, _ = MODELS[name]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, 10, n)


def run_ours(name: str, steps: int) -> dict:
    """One rank of an mpiexec job (or a plain process: a world of one)."""
    from tinygrad_cnn import distributed as dist
    from tinygrad_cnn.nn.parallel import DistributedDataParallel

    tune_allocator()  # as the MNIST example and benchmarks/run.py do
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    tg.manual_seed(0)
    model = build_ours(name)
    net = DistributedDataParallel(model) if world > 1 else model
    _, global_batch = MODELS[name]
    lo, hi = global_batch * rank // world, global_batch * (rank + 1) // world
    x, y = batch(name, global_batch, 0)
    x, y = np.ascontiguousarray(x[lo:hi]), y[lo:hi]

    def step() -> None:
        model.zero_grad()
        F.cross_entropy(net(tg.Tensor(x)), y).backward()
        with tg.no_grad():
            for p in model.parameters():
                p.data -= np.float32(LR) * np.asarray(getattr(p.grad, "data", p.grad))

    for _ in range(3):
        step()
    dist.barrier()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t
    result = {"img_s": global_batch * steps / seconds}
    if world > 1:  # the gradient's allreduce alone, at its size and 16x it
        size = sum(p.size for p in model.parameters())
        for label, n in (("allreduce_s", size), ("allreduce_16x_s", 16 * size)):
            flat = np.ones(n, np.float32)
            dist.barrier()
            t = time.perf_counter()
            for _ in range(50):
                dist.all_reduce(flat, dist.ReduceOp.AVG)
            result[label] = (time.perf_counter() - t) / 50
        result["gradient_bytes"] = 4 * size
    dist.destroy_process_group()
    return result if rank == 0 else {}


def run_torch(name: str, steps: int) -> dict:
    import torch
    import torch.nn.functional as TF

    tune_allocator()  # process-wide: PyTorch's CPU allocations go through the same malloc
    torch.set_num_threads(2)
    tg.manual_seed(0)
    model = build_torch(name, build_ours(name))
    _, global_batch = MODELS[name]
    x, y = (torch.from_numpy(a) for a in batch(name, global_batch, 0))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        TF.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= LR * p.grad

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return {"img_s": global_batch * steps / (time.perf_counter() - t)}


def contenders(name: str, steps: int) -> dict[str, list[str]]:
    me = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--steps", str(steps)]
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    found = {"1 rank": me + ["--ours"], "1 rank, 1 BLAS thread": ["env", "OPENBLAS_NUM_THREADS=1"] + me + ["--ours"]}
    if mpiexec:
        found["2 ranks"] = [mpiexec, "-n", "2"] + me + ["--ours"]
    try:
        import torch  # noqa: F401

        found["pytorch 2 threads"] = me + ["--torch"]
    except ImportError:
        pass
    return found


def measure(rounds: int, steps: int) -> dict:
    results: dict = {}
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}  # each contender sets its own
    for name in MODELS:
        runs: dict[str, list[dict]] = {label: [] for label in contenders(name, steps)}
        for _ in range(rounds):
            for label, command in contenders(name, steps).items():
                out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
                if out.returncode != 0:
                    raise SystemExit(f"{label} {name} failed:\n{out.stderr}")
                runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
        results[name] = runs
    return results


def median_range(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def report(results: dict) -> str:
    lines = ["| model (global batch) | contender | img/s median (range) | vs PyTorch 2 threads |", "|---|---|---|---|"]
    for name, runs in results.items():
        peer = runs.get("pytorch 2 threads")
        torch_med = median_range([r["img_s"] for r in peer])[0] if peer else None
        for label, rs in runs.items():
            med, lo, hi = median_range([r["img_s"] for r in rs])
            ratio = f"{med / torch_med:.2f}" if torch_med else "-"
            lines.append(f"| {name} ({MODELS[name][1]}) | {label} | {med:,.0f} ({lo:,.0f}-{hi:,.0f}) | {ratio} |")
        if "2 ranks" in runs:
            two = median_range([r["img_s"] for r in runs["2 ranks"]])[0]
            for base in ("1 rank", "1 rank, 1 BLAS thread"):
                one = median_range([r["img_s"] for r in runs[base]])[0]
                lines.append(f"| {name} | scaling efficiency of 2 ranks over {base}: {two / one / 2:.0%} | | |")
    lines.append("")
    lines += simulated(results)
    return "\n".join(lines)


def simulated(results: dict) -> list[str]:
    lines = [
        "| model | allreduce of its gradient, 2 ranks (measured) | ranks | simulated img/s, shared memory | "
        "simulated img/s, network (50 us, 1 GB/s) |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        if "2 ranks" not in runs:
            continue
        twos = runs["2 ranks"]
        size = twos[0]["gradient_bytes"]
        t1 = statistics.median([r["allreduce_s"] for r in twos])
        t16 = statistics.median([r["allreduce_16x_s"] for r in twos])
        per_byte = max(0.0, (t16 - t1) / (15 * size))  # two ranks exchange one half each way
        latency = max(0.0, t1 - per_byte * size) / 2  # 2(N-1) = 2 messages for N = 2
        _, global_batch = MODELS[name]
        step_1 = global_batch / statistics.median([r["img_s"] for r in runs["1 rank, 1 BLAS thread"]])
        for n in (2, 4, 8, 16, 32):
            cells = []
            for alpha, beta in ((latency, per_byte), (NETWORK_LATENCY, NETWORK_PER_BYTE)):
                ring = 2 * (n - 1) * (alpha + beta * size / n)
                cells.append(f"{global_batch / (step_1 / n + ring):,.0f}")
            lines.append(f"| {name} | {t1 * 1e6:,.0f} us for {size / 1e3:,.0f} kB | {n} | {cells[0]} | {cells[1]} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        result = run_ours(args.child, args.steps) if args.ours else run_torch(args.child, args.steps)
        if result:
            print(json.dumps(result), flush=True)
        return
    results = measure(args.rounds, args.steps)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
