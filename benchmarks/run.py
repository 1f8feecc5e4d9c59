"""Training and inference throughput of tinygrad_cnn against PyTorch, measured side by side.

    python benchmarks/run.py                 # full run, prints a table
    python benchmarks/run.py --rounds 3      # quicker
    python benchmarks/run.py --json out.json # also write the results

Both frameworks get the same initial weights and the same data, and are measured round-robin in
one process (the machine is shared and noisy: only same-run ratios mean anything). Before timing,
the losses of both after a few SGD steps are compared, so a wrong computation is never
benchmarked. Peak memory per training step is measured in a fresh subprocess per framework (RSS
growth over the process's state before the first step, from /proc/self/status). PyTorch is optional
(`pip install torch==2.13.0`); without it only our numbers are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402
from tinygrad_cnn.memory import tune_allocator  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF

    torch.set_num_threads(2)
except ImportError:  # the peer is optional
    torch = None

# name: (layers as (kind, args), batch size)
MODELS = {
    "lenet": (
        [
            ("conv", (1, 16, 5, 0)),
            ("relu",),
            ("pool", 2),
            ("conv", (16, 32, 5, 0)),
            ("relu",),
            ("pool", 2),
            ("flatten",),
            ("linear", (512, 10)),
        ],
        128,
    ),
    "single_conv": ([("conv", (1, 32, 7, 1)), ("relu",), ("flatten",), ("linear", (32 * 24 * 24, 10))], 64),
}
INFERENCE_BATCH = 1000
PIECE = 128  # inference in pieces: Module.predict's default, and the same split given to PyTorch
LR = 0.01


def build_ours(spec: list) -> nn.Sequential:
    layers = []
    for kind, *args in spec:
        if kind == "conv":
            c_in, c_out, k, pad = args[0]
            layers.append(nn.Conv2d(c_in, c_out, k, padding=pad))
        elif kind == "linear":
            layers.append(nn.Linear(*args[0]))
        elif kind == "pool":
            layers.append(nn.MaxPool2d(args[0]))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "flatten":
            layers.append(nn.Flatten())
    return nn.Sequential(*layers)


def build_torch(spec: list, ours: nn.Sequential):
    layers = []
    for kind, *args in spec:
        if kind == "conv":
            c_in, c_out, k, pad = args[0]
            layers.append(torch.nn.Conv2d(c_in, c_out, k, padding=pad))
        elif kind == "linear":
            layers.append(torch.nn.Linear(*args[0]))
        elif kind == "pool":
            layers.append(torch.nn.MaxPool2d(args[0]))
        elif kind == "relu":
            layers.append(torch.nn.ReLU())
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    return model


def data(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits (standardised), so pooling sees MNIST's ties on the flat background."""
    (x, y), _ = tg.datasets.load_mnist()
    idx = np.random.default_rng(seed).choice(len(x), batch, replace=False)
    images = ((x[idx].astype(np.float32) / 255 - 0.1307) / 0.3081)[:, None]
    return np.ascontiguousarray(images), y[idx].astype(np.int64)


def ours_train_step(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    loss = F.cross_entropy(model(tg.Tensor(x)), y)
    model.zero_grad()
    loss.backward()
    with tg.no_grad():
        for p in model.parameters():
            p.data -= np.float32(LR) * p.grad
    return loss.item()


def torch_train_step(model, x, y) -> float:
    loss = TF.cross_entropy(model(x), y)
    model.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= LR * p.grad
    return loss.item()


def ours_infer(model: nn.Module, x: np.ndarray) -> None:
    with tg.no_grad():
        model(tg.Tensor(x))


def ours_predict(model: nn.Module, x: np.ndarray) -> None:
    model.predict(x, batch_size=PIECE)  # eval mode, no graph, pieces spread over the cores


def torch_infer(model, x) -> None:
    with torch.no_grad():
        model(x)


def torch_infer_pieces(model, x) -> None:
    with torch.no_grad():
        for i in range(0, len(x), PIECE):
            model(x[i : i + PIECE])


def check_agreement(spec: list, batch: int, steps: int = 5) -> tuple[float, float | None]:
    """Train fresh copies of both for a few steps on the same data; return both final losses."""
    tg.manual_seed(1)
    ours = build_ours(spec)
    x, y = data(batch, seed=1)
    theirs = build_torch(spec, ours) if torch else None
    for _ in range(steps):
        loss_ours = ours_train_step(ours, x, y)
        loss_theirs = torch_train_step(theirs, torch.from_numpy(x), torch.from_numpy(y)) if torch else None
    return loss_ours, loss_theirs


SETTLE = 0.3  # seconds between contenders (see round_robin)


def round_robin(contenders: dict[str, Callable[[], None]], rounds: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each contender, measured in alternation.

    Each measurement starts after a pause and one untimed call: after a multi-threaded GEMM,
    OpenBLAS's worker threads keep spinning on a core for about 0.1 s (PyTorch's OpenMP workers
    briefly too), which would slow down whichever contender runs next; and a contender's own
    first call after the pause wakes its sleeping threads.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(SETTLE)
            fn()
            t = time.perf_counter()
            for _ in range(repeats):
                fn()
            times[name].append((time.perf_counter() - t) / repeats)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_models(rounds: int) -> list[dict]:
    rows = []
    for name, (spec, batch) in MODELS.items():
        loss_ours, loss_theirs = check_agreement(spec, batch)
        if loss_theirs is not None and not np.isclose(loss_ours, loss_theirs, rtol=1e-3, atol=1e-4):
            raise SystemExit(f"{name}: losses disagree after 5 steps: ours {loss_ours:.6f}, torch {loss_theirs:.6f}")
        tg.manual_seed(0)
        ours = build_ours(spec)
        x, y = data(batch)
        xi, _ = data(INFERENCE_BATCH)
        train = {"tinygrad_cnn": lambda m=ours, x=x, y=y: ours_train_step(m, x, y)}
        infer = {
            "tinygrad_cnn": lambda m=ours, x=xi: ours_infer(m, x),
            "tinygrad_cnn predict": lambda m=ours, x=xi: ours_predict(m, x),
        }
        if torch:
            theirs = build_torch(spec, ours)
            tx, ty, txi = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xi)
            train["pytorch"] = lambda m=theirs, tx=tx, ty=ty: torch_train_step(m, tx, ty)
            infer["pytorch"] = lambda m=theirs, txi=txi: torch_infer(m, txi)
            infer["pytorch pieces"] = lambda m=theirs, txi=txi: torch_infer_pieces(m, txi)
        for mode, contenders, n in (("train", train, batch), ("inference", infer, INFERENCE_BATCH)):
            med = round_robin(contenders, rounds, repeats=10)  # consecutive steps, as in training
            for label in [k for k in contenders if not k.startswith("pytorch")]:
                row = {
                    "benchmark": f"{name} {mode} (batch {n}){label[len('tinygrad_cnn') :]}",
                    "unit": "img/s",
                    "tinygrad_cnn": n / med[label],
                }
                if torch:
                    # predict runs the batch in pieces: PyTorch gets the same split, or the whole
                    # batch at once, whichever it does faster
                    peer = min(med["pytorch"], med["pytorch pieces"]) if label.endswith("predict") else med["pytorch"]
                    row["pytorch"] = n / peer
                    row["ratio"] = row["tinygrad_cnn"] / row["pytorch"]
                if mode == "train":
                    row["loss_check"] = {"ours": loss_ours, "pytorch": loss_theirs}
                rows.append(row)
    return rows


def bench_ops(rounds: int) -> list[dict]:
    """Forward + backward of single ops at the shapes the two models use."""
    rng = np.random.default_rng(0)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    cases = {
        "conv2d 128x1x28x28 * 16x1x5x5": (
            lambda a, w: F.conv2d(a, w),
            lambda a, w: TF.conv2d(a, w),
            [arr(128, 1, 28, 28), arr(16, 1, 5, 5)],
        ),
        "conv2d 128x16x12x12 * 32x16x5x5": (
            lambda a, w: F.conv2d(a, w),
            lambda a, w: TF.conv2d(a, w),
            [arr(128, 16, 12, 12), arr(32, 16, 5, 5)],
        ),
        "conv2d 64x1x28x28 * 32x1x7x7 pad 1": (
            lambda a, w: F.conv2d(a, w, padding=1),
            lambda a, w: TF.conv2d(a, w, padding=1),
            [arr(64, 1, 28, 28), arr(32, 1, 7, 7)],
        ),
        "max_pool2d 128x16x24x24 k2": (
            lambda a: F.max_pool2d(a, 2),
            lambda a: TF.max_pool2d(a, 2),
            [arr(128, 16, 24, 24)],
        ),
        "matmul 128x512 @ 512x10": (lambda a, b: a @ b, lambda a, b: a @ b, [arr(128, 512), arr(512, 10)]),
        "matmul 64x18432 @ 18432x10": (lambda a, b: a @ b, lambda a, b: a @ b, [arr(64, 18432), arr(18432, 10)]),
        "log_softmax+nll 128x10": (
            lambda a: F.cross_entropy(a, labels),
            lambda a: TF.cross_entropy(a, tlabels),
            [arr(128, 10)],
        ),
    }
    labels = rng.integers(0, 10, 128)
    tlabels = torch.from_numpy(labels) if torch else None
    rows = []
    for name, (ours_fn, torch_fn, arrays) in cases.items():

        def run_ours(fn=ours_fn, arrays=arrays) -> None:
            ts = [tg.Tensor(a, requires_grad=True) for a in arrays]
            out = fn(*ts)
            out.backward(np.ones(out.shape, dtype=np.float32))

        contenders = {"tinygrad_cnn": run_ours}
        if torch:

            def run_torch(fn=torch_fn, arrays=arrays) -> None:
                ts = [torch.from_numpy(a).requires_grad_() for a in arrays]
                out = fn(*ts)
                out.backward(torch.ones_like(out))

            contenders["pytorch"] = run_torch
        med = round_robin(contenders, rounds, repeats=5)
        row = {"benchmark": f"op {name} fwd+bwd", "unit": "ms", "tinygrad_cnn": med["tinygrad_cnn"] * 1e3}
        if torch:
            row["pytorch"] = med["pytorch"] * 1e3
            row["ratio"] = row["pytorch"] / row["tinygrad_cnn"]  # > 1: we are faster
        rows.append(row)
    return rows


def memory_probe(framework: str, model_name: str) -> None:
    """Run in a fresh subprocess: print the RSS growth (MiB) over 5 training steps."""
    spec, batch = MODELS[model_name]
    tg.manual_seed(0)
    ours = build_ours(spec)
    rng = np.random.default_rng(0)  # synthetic data: loading MNIST would set the peak before we start
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    if framework == "pytorch":
        model, x, y = build_torch(spec, ours), torch.from_numpy(x), torch.from_numpy(y)
        step = lambda: torch_train_step(model, x, y)  # noqa: E731
    else:
        step = lambda: ours_train_step(ours, x, y)  # noqa: E731
    before = _status_kib("VmRSS")
    for _ in range(5):
        step()
    print((_status_kib("VmHWM") - before) / 1024)


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc (VmHWM: peak RSS since exec; ru_maxrss is not
    reset by exec on Linux, so a child would report its parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def bench_memory() -> list[dict]:
    rows = []
    for name in MODELS:
        row = {"benchmark": f"{name} peak RSS growth per training step", "unit": "MiB"}
        for framework in ["tinygrad_cnn"] + (["pytorch"] if torch else []):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-probe", framework, name],
                capture_output=True,
                text=True,
                check=True,
            )
            row[framework] = float(out.stdout.strip().splitlines()[-1])
        if torch:
            row["ratio"] = row["tinygrad_cnn"] / max(row["pytorch"], 1e-9)
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'benchmark':<52}{'tinygrad_cnn':>14}{'pytorch':>12}{'ratio':>8}")
    for r in rows:
        theirs = f"{r['pytorch']:>12,.1f}" if "pytorch" in r else f"{'-':>12}"
        ratio = f"{r['ratio']:>8.2f}" if "ratio" in r else f"{'-':>8}"
        print(f"{r['benchmark'] + ' [' + r['unit'] + ']':<52}{r['tinygrad_cnn']:>14,.1f}{theirs}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="round-robin rounds (medians are reported)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--skip-ops", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--no-tune", action="store_true", help="skip tinygrad_cnn.memory.tune_allocator()")
    parser.add_argument("--memory-probe", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.no_tune:
        tune_allocator()  # process-wide: PyTorch's CPU allocations go through the same malloc
    if args.memory_probe:
        memory_probe(*args.memory_probe)
        return
    print(
        f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}"
        f"{f' ({torch.get_num_threads()} threads)' if torch else ''}, {os.cpu_count()} CPUs, "
        f"allocator {'default' if args.no_tune else 'tuned'}; "
        f"ratio = ours / PyTorch for img/s and MiB, PyTorch / ours for ms (higher is better for us except MiB)"
    )
    rows = bench_models(args.rounds)
    if not args.skip_ops:
        rows += bench_ops(args.rounds)
    if not args.skip_memory:
        rows += bench_memory()
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
