"""The speed suite: tinygrad_cnn against PyTorch, training and inference on nets of many shapes.

    python benchmarks/run.py --quick --json out.json   # every row, a few minutes (3 rounds)
    python benchmarks/run.py                           # 9 rounds, longer samples
    python benchmarks/run.py --only lenet,cifar,loaded # some rows (names: --list), --skip others
    python benchmarks/run.py --time-to-accuracy        # also the MNIST example's recipe to 99% (slow)

How it measures. Both frameworks get the same initial weights and the same batches, and run in
one process, interleaved round by round (the machine is shared and noisy: only ratios from one
run mean anything). Before timing a workload, both take 3 SGD steps from the same weights and
their losses must agree (float32: to 1e-3 relative; float64: 1e-9), or the Hessian-vector products
for the double-backward row; a workload that disagrees is reported as an error, not timed. Each
round times every contender once, after a pause and an untimed call (after a multi-threaded GEMM
BLAS's and PyTorch's worker threads spin for a while and would slow whichever contender runs
next); a sample repeats the call until it lasts at least ``--sample`` seconds. A row reports each
side's median throughput, ``ratio``, the median of the per-round ratios, and their ``ratio_min``
and ``ratio_max`` (the spread). Every ratio is ours / PyTorch's speed (above 1: we are faster),
except memory rows, where it is ours / PyTorch's MiB (below 1: we use less).

tinygrad_cnn runs as a user runs it by default: one process, ``loss.backward()``, ``optim.SGD``,
threads as :mod:`tinygrad_cnn.threads` chooses them (``threads`` in each row: the count after the
row). PyTorch (optional: ``pip install torch==2.13.0``) runs with its default threads.
``import tinygrad_cnn`` tunes the allocator (:mod:`tinygrad_cnn.memory`), process-wide, so
PyTorch's allocations get it too; ``TINYGRAD_CNN_TUNE_ALLOCATOR=0`` in the environment measures
both with glibc's defaults.

Other rows: the loaded machine (LeNet-ish training with one competing busy process started by
the suite, ours against PyTorch under the same competition), peak memory (RSS growth over 5 training
steps, each framework in a fresh subprocess), and with ``--time-to-accuracy`` the MNIST example's
recipe (Adam, one-cycle schedule, batch 64) in both frameworks on the same batches, quarter
epochs interleaved, until the test accuracy (checked after each quarter) reaches 99%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn, optim  # noqa: E402
from tinygrad_cnn.memory import allocator_tuned  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the peer is optional
    torch = None

LR = 0.01
PIECE = 128  # Module.predict's default piece; PyTorch gets the same split as a contender


@dataclass(frozen=True)
class Workload:
    """A net as layers ``(kind, *args)``: ``("conv", c_in, c_out, k, padding[, stride])``, ``("relu",)``,
    ``("pool", k[, stride, padding])``, ``("flatten",)``, ``("linear", n_in, n_out)``, ``("bn", c)``
    (BatchNorm2d), ``("dwconv", c, k, padding[, stride])`` (depthwise: groups = c), ``("gap",)``
    (global average pooling); its input ``(C, H, W)`` per sample."""

    layers: tuple[tuple, ...]
    input: tuple[int, int, int]
    batch: int
    dtype: str = "float32"
    inference: int = 0  # batch of the inference rows (0: none)
    about: str = ""


def convs(*channels: int, k: int = 3, padding: int = 1) -> tuple[tuple, ...]:
    """Conv-ReLU pairs through ``channels`` (3, 32, 64: 3->32, 32->64), ``k`` x ``k`` kernels."""
    return tuple(layer for a, b in zip(channels, channels[1:]) for layer in (("conv", a, b, k, padding), ("relu",)))


POOL, FLATTEN = ("pool", 2), ("flatten",)
LENET = (*convs(1, 16, k=5, padding=0), POOL, *convs(16, 32, k=5, padding=0), POOL, FLATTEN, ("linear", 512, 10))
CIFAR = (*convs(3, 32, 32), POOL, *convs(32, 64), POOL, FLATTEN, ("linear", 64 * 8 * 8, 10))
WORKLOADS: dict[str, Workload] = {
    "lenet": Workload(LENET, (1, 28, 28), 128, inference=1000, about="the MNIST example's net"),
    **{f"lenet_b{b}": Workload(LENET, (1, 28, 28), b, about=f"LeNet-ish at batch {b}") for b in (1, 8, 32, 512)},
    "single_conv": Workload(
        (*convs(1, 32, k=7), FLATTEN, ("linear", 32 * 24 * 24, 10)),
        (1, 28, 28),
        64,
        inference=1000,
        about="seed E: one conv 32@7x7, padding 1",
    ),
    "cifar": Workload(CIFAR, (3, 32, 32), 64, inference=1000, about="CIFAR-shaped: conv3x3 3-32-32, pool, 32-64, pool"),
    "mlp": Workload(
        (FLATTEN, ("linear", 784, 512), ("relu",), ("linear", 512, 512), ("relu",), ("linear", 512, 10)),
        (1, 28, 28),
        128,
        inference=1000,
        about="MLP 784-512-512-10",
    ),
    "lenet_f64": Workload(LENET, (1, 28, 28), 128, dtype="float64", inference=1000, about="LeNet-ish in float64"),
    # shapes nobody tuned for
    "vgg": Workload(
        (*convs(3, 16, 16), POOL, *convs(16, 32, 32), POOL, *convs(32, 64), POOL, FLATTEN, ("linear", 64 * 4 * 4, 10)),
        (3, 32, 32),
        32,
        inference=500,
        about="VGG-ish: five 3x3 convs 16-16-32-32-64, three pools",
    ),
    "wide_1x1": Workload(
        (*convs(3, 128, 128, k=1, padding=0), ("pool", 4), FLATTEN, ("linear", 128 * 8 * 8, 10)),
        (3, 32, 32),
        32,
        inference=500,
        about="wide 1x1 convs: 3-128-128, pool 4",
    ),
    "strided": Workload(
        (("conv", 3, 32, 7, 3, 2), ("relu",), POOL, ("conv", 32, 64, 3, 1, 2), ("relu",), FLATTEN)
        + (("linear", 64 * 8 * 8, 10),),
        (3, 64, 64),
        32,
        about="ResNet-like stem: conv 7x7 stride 2, pool, conv 3x3 stride 2",
    ),
    "batchnorm": Workload(
        (("conv", 3, 32, 3, 1), ("bn", 32), ("relu",), POOL, ("conv", 32, 64, 3, 1), ("bn", 64), ("relu",), POOL)
        + (FLATTEN, ("linear", 64 * 8 * 8, 10)),
        (3, 32, 32),
        64,
        about="CIFAR-shaped with BatchNorm2d after each conv",
    ),
    "mobilenet": Workload(
        (("conv", 3, 32, 3, 1), ("bn", 32), ("relu",), ("dwconv", 32, 3, 1), ("bn", 32), ("relu",))
        + (("conv", 32, 64, 1, 0), ("bn", 64), ("relu",), ("dwconv", 64, 3, 1, 2), ("bn", 64), ("relu",))
        + (("conv", 64, 128, 1, 0), ("bn", 128), ("relu",), ("gap",), FLATTEN, ("linear", 128, 10)),
        (3, 32, 32),
        32,
        about="MobileNet-like: depthwise 3x3 and pointwise 1x1 convs, BatchNorm, global average pool",
    ),
    "resnet_stem": Workload(
        (("conv", 3, 32, 7, 3, 2), ("bn", 32), ("relu",), ("pool", 3, 2, 1), *convs(32, 32, 32))
        + (("gap",), FLATTEN, ("linear", 32, 10)),
        (3, 64, 64),
        32,
        about="ResNet-like: conv 7x7 stride 2, BatchNorm, max pool 3 stride 2, two 3x3 convs, global average pool",
    ),
}
HVP_BATCH = 32
EXTRA_ROWS = {
    "hvp": f"Hessian-vector product of LeNet-ish's loss (double backward), batch {HVP_BATCH}",
    "memory": "peak RSS growth of training steps, CIFAR-shaped and LeNet-ish, each framework in a fresh process",
    "loaded": "LeNet-ish training with one competing busy process",
    "threads": "what every core gains over one thread, ours and PyTorch's: LeNet-ish, CIFAR-shaped, MLP, VGG-ish",
    "time_to_accuracy": "the MNIST example's recipe to 99% test accuracy (opt-in: minutes)",
}


# ---------------------------------------------------------------- models and data


def build(fw: Any, w: Workload, like: nn.Module | None = None) -> Any:
    """``w``'s net in framework ``fw`` (``tinygrad_cnn`` or ``torch``: the same names), with the
    weights of ``like`` if given."""
    make = {
        "conv": lambda c_in, c_out, k, pad, stride=1: fw.nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad),
        "linear": fw.nn.Linear,
        "pool": fw.nn.MaxPool2d,
        "relu": fw.nn.ReLU,
        "flatten": fw.nn.Flatten,
        "bn": fw.nn.BatchNorm2d,
        "dwconv": lambda c, k, pad, stride=1: fw.nn.Conv2d(c, c, k, stride=stride, padding=pad, groups=c),
        "gap": lambda: fw.nn.AdaptiveAvgPool2d(1),
    }
    model = fw.nn.Sequential(*(make[kind](*args) for kind, *args in w.layers))
    if w.dtype == "float64":
        model = model.double()
    if like is not None:
        model.load_state_dict({k: fw.from_numpy(np.array(v)) for k, v in like.state_dict().items()})
    return model


_mnist: np.ndarray | None = None


def batch_of(w: Workload, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inputs for ``w``: real MNIST digits (standardised) for 1x28x28 nets, so pooling sees
    MNIST's ties on the flat background; standard normal values otherwise. Labels 0-9."""
    global _mnist
    rng = np.random.default_rng(seed)
    if w.input == (1, 28, 28):
        if _mnist is None:
            (_mnist, _), _ = tg.datasets.load_mnist()
        images = _mnist[rng.choice(len(_mnist), n, replace=n > len(_mnist))]
        x = ((images / 255.0 - 0.1307) / 0.3081)[:, None]
    else:
        x = rng.standard_normal((n, *w.input))
    return np.ascontiguousarray(x, dtype=w.dtype), rng.integers(0, 10, n)


# ---------------------------------------------------------------- the calls that are timed


# Written once for both frameworks: tinygrad_cnn's names mean what PyTorch's mean.


def trainer(fw: Any, model: Any, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    """One SGD training step of ``model`` on ``(x, y)`` in framework ``fw``; returns the loss."""
    optimizer = fw.optim.SGD(model.parameters(), lr=LR)
    tx, ty = fw.from_numpy(x), fw.from_numpy(y)

    def step() -> float:
        optimizer.zero_grad()
        loss = fw.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def hessian_vector_product(fw: Any, model: Any, x: np.ndarray, y: np.ndarray, v: list[np.ndarray]) -> Callable:
    """Hessian of the loss (with respect to the weights) times ``v``: a double backward."""
    params = list(model.parameters())
    tx, ty, tv = fw.from_numpy(x), fw.from_numpy(y), [fw.from_numpy(a) for a in v]

    def hvp() -> list[np.ndarray]:
        loss = fw.nn.functional.cross_entropy(model(tx), ty)
        grads = fw.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * u).sum() for g, u in zip(grads, tv))
        return [h.numpy() for h in fw.autograd.grad(dot, params)]

    return hvp


def ours_inference(model: nn.Module, x: np.ndarray) -> dict[str, Callable[[], object]]:
    tx = tg.Tensor(x)

    def whole() -> object:
        with tg.no_grad():
            return model(tx)

    return {"model(x)": whole, "predict": lambda: model.predict(tx, batch_size=PIECE)}


def torch_inference(model: Any, x: np.ndarray) -> dict[str, Callable[[], object]]:
    tx = torch.from_numpy(x)

    def whole() -> object:
        with torch.no_grad():
            return model(tx)

    def pieces() -> object:
        with torch.no_grad():
            return [model(tx[i : i + PIECE]) for i in range(0, len(tx), PIECE)]

    return {"whole": whole, "pieces": pieces}


# ---------------------------------------------------------------- timing


@dataclass
class Settings:
    rounds: int = 9
    sample: float = 0.5  # seconds a sample lasts at least
    settle: float = 0.3  # pause before each sample
    check_steps: int = 3


def round_robin(contenders: dict[str, Callable[[], object]], s: Settings) -> dict[str, list[float]]:
    """Seconds per call of each contender, one sample per round, contenders in alternating order."""
    calls = {}
    for name, fn in contenders.items():  # calibrate: calls per sample
        fn()
        t = time.perf_counter()
        fn()
        calls[name] = max(1, math.ceil(s.sample / max(time.perf_counter() - t, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(s.rounds):
        for name in names if r % 2 == 0 else reversed(names):
            fn = contenders[name]
            time.sleep(s.settle)
            fn()
            t = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - t) / calls[name])
    return times


def speed_row(
    benchmark: str, n: int, ours: list[float], theirs: list[float] | None, unit: str = "img/s", **extra: Any
) -> dict[str, Any]:
    """A row from per-round seconds per call of ``n`` samples; ratios per round, then their median and range."""
    row: dict[str, Any] = {"benchmark": benchmark, "unit": unit, "tinygrad_cnn": n / statistics.median(ours)}
    if theirs is not None:
        ratios = [t / o for o, t in zip(ours, theirs)]
        row.update(
            pytorch=n / statistics.median(theirs),
            ratio=statistics.median(ratios),
            ratio_min=min(ratios),
            ratio_max=max(ratios),
        )
    row["rounds"] = len(ours)
    row["threads"] = tg.get_num_threads()
    row.update(extra)
    return row


def close(a: float, b: float, dtype: str) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9 if dtype == "float64" else 1e-3, atol=1e-6))


def check_losses(w: Workload, s: Settings) -> dict[str, Any]:
    """Both frameworks train fresh copies (same weights, same batch) for a few SGD steps: the losses."""
    tg.manual_seed(1)
    ours = build(tg, w)
    x, y = batch_of(w, w.batch, seed=1)
    step = trainer(tg, ours, x, y)
    ours_losses = [step() for _ in range(s.check_steps)]
    if torch is None:
        return {"ours": ours_losses}
    tg.manual_seed(1)
    model = build(torch, w, build(tg, w))
    tstep = trainer(torch, model, x, y)
    theirs = [tstep() for _ in range(s.check_steps)]
    equal = all(close(a, b, w.dtype) for a, b in zip(ours_losses, theirs))
    return {"ours": ours_losses, "pytorch": theirs, "equal": equal}


def training_contenders(w: Workload) -> tuple[nn.Module, np.ndarray, np.ndarray, dict[str, Callable[[], object]]]:
    """Our model of ``w``, a batch, and both frameworks' training steps on it from the same weights."""
    tg.manual_seed(0)
    ours = build(tg, w)
    x, y = batch_of(w, w.batch, seed=0)
    contenders: dict[str, Callable[[], object]] = {"ours": trainer(tg, ours, x, y)}
    if torch is not None:
        contenders["pytorch"] = trainer(torch, build(torch, w, ours), x, y)
    return ours, x, y, contenders


def bench_workload(name: str, w: Workload, s: Settings) -> list[dict[str, Any]]:
    check = check_losses(w, s)
    label = f"{name} training (batch {w.batch}{', ' + w.dtype if w.dtype != 'float32' else ''})"
    if check.get("equal") is False:
        return [{"benchmark": label, "error": "losses disagree", "loss_check": check}]
    ours, x, y, contenders = training_contenders(w)
    times = round_robin(contenders, s)
    rows = [speed_row(label, w.batch, times["ours"], times.get("pytorch"), loss_check=check, about=w.about)]
    if w.inference:
        rows += bench_inference(name, w, ours, s)
    return rows


def bench_inference(name: str, w: Workload, ours: nn.Module, s: Settings) -> list[dict[str, Any]]:
    x, _ = batch_of(w, w.inference, seed=2)
    ours.eval()
    contenders = {f"ours {k}": fn for k, fn in ours_inference(ours, x).items()}
    outputs_match = None
    if torch is not None:
        model = build(torch, w, ours).eval()
        theirs = torch_inference(model, x)
        contenders.update({f"pytorch {k}": fn for k, fn in theirs.items()})
        ours_out = np.asarray(contenders["ours model(x)"]().numpy())  # type: ignore[attr-defined]
        their_out = theirs["whole"]().numpy()  # type: ignore[attr-defined]
        outputs_match = bool(np.allclose(ours_out, their_out, rtol=1e-3, atol=1e-4))
        if not outputs_match:
            return [{"benchmark": f"{name} inference", "error": "outputs disagree"}]
    times = round_robin(contenders, s)
    n = w.inference
    whole = times.get("pytorch whole")
    best = [min(a, b) for a, b in zip(whole, times["pytorch pieces"])] if whole is not None else None
    return [
        speed_row(
            f"{name} inference model(x) (batch {n})", n, times["ours model(x)"], whole, outputs_match=outputs_match
        ),
        # predict runs the batch in pieces over the cores: PyTorch gets the same pieces or the whole
        # batch at once, whichever was faster in that round
        speed_row(f"{name} inference predict (batch {n})", n, times["ours predict"], best, outputs_match=outputs_match),
    ]


def bench_hvp(s: Settings) -> list[dict[str, Any]]:
    """Hessian-vector product of LeNet-ish's loss at batch 32 (double backward)."""
    w = Workload(LENET, (1, 28, 28), HVP_BATCH)
    tg.manual_seed(0)
    ours = build(tg, w)
    x, y = batch_of(w, w.batch, seed=0)
    rng = np.random.default_rng(3)
    v = [rng.standard_normal(p.shape).astype(np.float32) for p in ours.parameters()]
    contenders: dict[str, Callable[[], object]] = {"ours": hessian_vector_product(tg, ours, x, y, v)}
    check: dict[str, Any] = {}
    if torch is not None:
        contenders["pytorch"] = hessian_vector_product(torch, build(torch, w, ours), x, y, v)
        a = np.concatenate([h.ravel() for h in contenders["ours"]()])  # type: ignore[union-attr]
        b = np.concatenate([h.ravel() for h in contenders["pytorch"]()])  # type: ignore[union-attr]
        err = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
        check = {"max_error_relative_to_max": err, "equal": err < 1e-3}
        if not check["equal"]:
            return [{"benchmark": "lenet hessian-vector product", "error": "products disagree", "hvp_check": check}]
    times = round_robin(contenders, s)
    return [
        speed_row(
            f"lenet hessian-vector product (batch {w.batch})",
            w.batch,
            times["ours"],
            times.get("pytorch"),
            hvp_check=check,
        )
    ]


def bench_loaded(s: Settings, all_cores_too: bool) -> list[dict[str, Any]]:
    """LeNet-ish training while one other process spins on a core (``python -c 'while True: pass'``)."""
    w = WORKLOADS["lenet"]
    _, x, y, contenders = training_contenders(w)
    cores = tg.threads.usable_cores().cores
    if all_cores_too:  # a fixed count, as torch.set_num_threads gives: every core whatever the load
        step = trainer(tg, build(tg, w), x, y)

        def all_cores() -> object:
            with tg.threads.exactly(max(1, int(cores))):
                return step()

        contenders["ours, on every core"] = all_cores
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.perf_counter() + 1.5  # the competitor is there: let the defaults see it
        while time.perf_counter() < deadline:
            for fn in contenders.values():
                fn()
        times = round_robin(contenders, s)
    finally:
        competitor.kill()
        competitor.wait()
    rows = [
        speed_row(
            f"lenet training (batch {w.batch}) with 1 competing busy process",
            w.batch,
            times["ours"],
            times.get("pytorch"),
            competitor="python -c 'while True: pass'",
        )
    ]
    if all_cores_too:
        rows.append(
            speed_row(
                f"lenet training (batch {w.batch}) with 1 competing busy process, ours on every core",
                w.batch,
                times["ours, on every core"],
                times.get("pytorch"),
            )
        )
    return rows


def bench_threads(s: Settings, names: tuple[str, ...] = ("lenet", "cifar", "mlp", "vgg")) -> list[dict[str, Any]]:
    """Training on every core against one thread, each framework's own gain, interleaved in one run."""
    cores = max(1, int(tg.threads.usable_cores().cores))
    rows = []
    for name in names:
        _, _, _, steps = training_contenders(WORKLOADS[name])
        contenders: dict[str, Callable[[], object]] = {}
        for count in (1, cores):
            contenders[f"ours {count}"] = partial(_with_threads, steps["ours"], partial(tg.threads.exactly, count))
            if torch is not None:
                contenders[f"pytorch {count}"] = partial(
                    _with_threads, steps["pytorch"], partial(_torch_threads, count)
                )
        times = round_robin(contenders, s)
        gains = {fw: [a / b for a, b in zip(times[f"{fw} 1"], times[f"{fw} {cores}"])] for fw in ("ours", "pytorch")}
        row: dict[str, Any] = {
            "benchmark": f"{name} training, {cores} threads over 1",
            "unit": "x",
            "tinygrad_cnn": statistics.median(gains["ours"]),
        }
        if torch is not None:
            ratios = [o / t for o, t in zip(gains["ours"], gains["pytorch"])]
            row.update(pytorch=statistics.median(gains["pytorch"]), ratio=statistics.median(ratios))
            row.update(ratio_min=min(ratios), ratio_max=max(ratios))
        rows.append(row | {"rounds": s.rounds, "threads": cores})
    return rows


def _with_threads(fn: Callable[[], object], threads: Callable[[], Any]) -> object:
    with threads():
        return fn()


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- memory


def memory_probe(framework: str, name: str) -> None:
    """Run in a fresh subprocess: print the RSS growth (MiB) over 5 training steps of ``name``."""
    w = WORKLOADS[name]
    tg.manual_seed(0)
    ours = build(tg, w)
    rng = np.random.default_rng(0)  # synthetic data: loading MNIST would set the peak before we start
    x = rng.standard_normal((w.batch, *w.input)).astype(w.dtype)
    y = rng.integers(0, 10, w.batch)
    step = trainer(torch, build(torch, w, ours), x, y) if framework == "pytorch" else trainer(tg, ours, x, y)
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


def bench_memory(names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        w = WORKLOADS[name]
        row: dict[str, Any] = {
            "benchmark": f"{name} peak RSS growth, 5 training steps (batch {w.batch})",
            "unit": "MiB",
        }
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


# ---------------------------------------------------------------- time to accuracy


def bench_time_to_accuracy(target: float = 0.99, limit: int | None = None, checks: int = 4) -> list[dict[str, Any]]:
    """The MNIST example's recipe (its net, Adam at 3e-3 peak with a one-cycle schedule over 3 epochs,
    batch 64, shuffled) in both frameworks on the same batches. Each epoch is cut into ``checks``
    parts; the parts alternate between the frameworks, and after each part the side's test accuracy
    is measured (not timed). A side's row: its training seconds until its test accuracy first
    reaches ``target``. (Checked once an epoch, the row measured luck: both frameworks reach 99%
    around the end of the second epoch, to within 0.05%, and whichever crossed it a batch earlier
    saved a whole epoch.)"""
    from tinygrad_cnn.examples.mnist import build_model, normalize

    (x_train, y_train), (x_test, y_test) = tg.datasets.load_mnist()
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    batch, epochs, lr = 64, 3, 3e-3
    order = np.random.default_rng(0)
    tg.manual_seed(0)
    ours = build_model()
    steps = epochs * math.ceil(len(x_train) / batch)
    opt = optim.Adam(ours.parameters(), lr=lr)
    sched = optim.OneCycleLR(opt, lr, steps, cycle_momentum=False)
    x_test_ours = normalize(x_test)
    sides: dict[str, dict[str, Any]] = {"tinygrad_cnn": {"seconds": 0.0, "reached": None, "accuracy": []}}
    if torch is not None:
        theirs = build(torch, WORKLOADS["lenet"], ours)  # the example's net
        topt = torch.optim.Adam(theirs.parameters(), lr=lr)
        tsched = torch.optim.lr_scheduler.OneCycleLR(topt, lr, total_steps=steps, cycle_momentum=False)
        x_test_theirs = torch.from_numpy(x_test_ours.numpy())
        sides["pytorch"] = {"seconds": 0.0, "reached": None, "accuracy": []}

    def ours_part(batches: list[np.ndarray]) -> Callable[[], float]:
        for idx in batches:
            opt.zero_grad()
            F.cross_entropy(ours(normalize(x_train[idx])), y_train[idx]).backward()
            opt.step()
            sched.step()
        return lambda: float((ours.predict(x_test_ours).argmax(1).numpy() == y_test).mean())

    def torch_part(batches: list[np.ndarray]) -> Callable[[], float]:
        for idx in batches:
            topt.zero_grad()
            xb = torch.from_numpy(normalize(x_train[idx]).numpy())
            TF.cross_entropy(theirs(xb), torch.from_numpy(y_train[idx].astype(np.int64))).backward()
            topt.step()
            tsched.step()

        def accuracy() -> float:
            with torch.no_grad():
                return float((theirs(x_test_theirs).argmax(1).numpy() == y_test).mean())

        return accuracy

    for epoch in range(epochs):
        perm = order.permutation(len(x_train))
        batches = [perm[i : i + batch] for i in range(0, len(perm), batch)]
        for part in range(checks):
            share = batches[part * len(batches) // checks : (part + 1) * len(batches) // checks]
            for name, run in (("tinygrad_cnn", ours_part), ("pytorch", torch_part)):
                side = sides.get(name)
                if side is None or side["reached"] is not None:
                    continue
                t = time.perf_counter()
                evaluate = run(share)
                side["seconds"] += time.perf_counter() - t  # training only
                accuracy = evaluate()
                side["accuracy"].append(accuracy)
                if accuracy >= target:
                    side["reached"] = epoch + (part + 1) / checks
    row: dict[str, Any] = {
        "benchmark": f"MNIST example's recipe, time to {target:.0%} test accuracy",
        "unit": "s",
        "tinygrad_cnn": sides["tinygrad_cnn"]["seconds"] if sides["tinygrad_cnn"]["reached"] else None,
        "epochs": {k: v["reached"] for k, v in sides.items()},
        "accuracy": {k: v["accuracy"] for k, v in sides.items()},
    }
    if "pytorch" in sides:
        row["pytorch"] = sides["pytorch"]["seconds"] if sides["pytorch"]["reached"] else None
        if row["tinygrad_cnn"] and row["pytorch"]:
            row["ratio"] = row["pytorch"] / row["tinygrad_cnn"]  # speed ratio: above 1 we are faster
    return [row]


# ---------------------------------------------------------------- the suite


def run_suite(
    names: list[str],
    s: Settings,
    extras: tuple[str, ...] = ("hvp", "loaded", "memory"),
    all_cores_too: bool = False,
    progress: Callable[[dict[str, Any]], None] = lambda row: None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(new: list[dict[str, Any]]) -> None:
        for row in new:
            rows.append(row)
            progress(row)

    for name in names:
        add(bench_workload(name, WORKLOADS[name], s))
    if "hvp" in extras:
        add(bench_hvp(s))
    if "memory" in extras:
        add(bench_memory(["cifar", "lenet"]))
    if "loaded" in extras:
        add(bench_loaded(s, all_cores_too))
    if "threads" in extras:
        add(bench_threads(s))
    if "time_to_accuracy" in extras:
        add(bench_time_to_accuracy())
    return rows


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "commit": commit,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch else None,
        "torch_threads": torch.get_num_threads() if torch else None,
        "cpus": len(tg.threads.usable_cores().cpus),
        "load_average": os.getloadavg(),
        "allocator": "tuned" if allocator_tuned() else "default",
        "threads_env": {k: os.environ[k] for k in tg.threads.ENVIRONMENT_VARIABLES if k in os.environ},
    }


def format_row(r: dict[str, Any]) -> str:
    name = f"{r['benchmark']} [{r.get('unit', '')}]"
    if "error" in r:
        return f"{name:<78} ERROR: {r['error']}"

    def num(v: Any) -> str:
        digits = 2 if r.get("unit") == "x" else 1
        return f"{v:>12,.{digits}f}" if isinstance(v, float) else f"{'-':>12}"

    ratio = f"{r['ratio']:>6.2f}" if "ratio" in r else f"{'-':>6}"
    spread = f" ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})" if "ratio_min" in r else ""
    return f"{name:<78}{num(r.get('tinygrad_cnn'))}{num(r.get('pytorch'))}{ratio}{spread}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as docs/performance.md shows them."""

    def num(v: Any, unit: str) -> str:
        if not isinstance(v, float):
            return "-"
        return f"{v:.2f}" if unit == "x" else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

    lines = ["| benchmark | tinygrad_cnn | PyTorch | ours / PyTorch (min-max) |", "| --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['benchmark']} | error: {r['error']} | | |")
            continue
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        if "ratio_min" in r:
            ratio += f" ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
        lines.append(
            f"| {r['benchmark']} ({r['unit']}) | {num(r.get('tinygrad_cnn'), r['unit'])} "
            f"| {num(r.get('pytorch'), r['unit'])} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of short samples: a few minutes")
    parser.add_argument("--rounds", type=int, help="rounds (default 9, --quick 3); medians are reported")
    parser.add_argument("--sample", type=float, help="seconds per sample at least (default 0.5, --quick 0.15)")
    parser.add_argument("--only", help="comma-separated rows to run (default: all but time_to_accuracy; see --list)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--skip", default="", help="comma-separated rows not to run")
    parser.add_argument("--time-to-accuracy", action="store_true", help="also the MNIST recipe to 99%% (minutes)")
    parser.add_argument("--json", metavar="PATH", help="write the environment and the rows as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the rows as a Markdown table at the end")
    parser.add_argument("--memory-probe", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        for name, w in WORKLOADS.items():
            print(f"{name:<16} batch {w.batch:<4} {w.about}")
        for name, about in EXTRA_ROWS.items():
            print(f"{name:<16} {about}")
        return
    if args.memory_probe:
        memory_probe(*args.memory_probe)
        return
    s = Settings(
        rounds=args.rounds or (3 if args.quick else 9),
        sample=args.sample or (0.15 if args.quick else 0.5),
        settle=0.2 if args.quick else 0.3,
    )
    chosen = args.only.split(",") if args.only else [n for n in [*WORKLOADS, *EXTRA_ROWS] if n != "time_to_accuracy"]
    chosen += ["time_to_accuracy"] * args.time_to_accuracy
    chosen = [n for n in chosen if n not in args.skip.split(",")]
    unknown = [n for n in chosen if n not in WORKLOADS and n not in EXTRA_ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join([*WORKLOADS, *EXTRA_ROWS])}")
    names = [n for n in chosen if n in WORKLOADS]
    extras = tuple(n for n in chosen if n in EXTRA_ROWS)
    env = environment()
    peer = f"torch {env['torch']} ({env['torch_threads']} threads)" if torch else "torch not installed"
    print(
        f"numpy {env['numpy']}, {peer}, {env['cpus']} CPUs, load average "
        f"{env['load_average'][0]:.1f}, allocator {env['allocator']}, {s.rounds} rounds; ratio = ours / "
        "PyTorch's speed (memory: ours / PyTorch's MiB), median and range of the per-round ratios",
        flush=True,
    )
    print(f"{'benchmark [unit]':<78}{'tinygrad_cnn':>12}{'pytorch':>12}{'ratio':>6}", flush=True)
    rows = run_suite(
        names,
        s,
        extras,
        all_cores_too=True,
        progress=lambda row: print(format_row(row), flush=True),
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
    if args.markdown:
        print(markdown_table(rows))
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
