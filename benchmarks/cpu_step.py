"""CPU time of one training step of a small net, for comparing versions of the library.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cpu_step.py [REPO ...] [--net NET] [--batch N] [--tune] [--rounds R]

REPO ``torch`` runs the same step in PyTorch on one thread, for one-thread ratios.
``--net`` picks the workload (default ``lenet``): ``lenet`` (conv 1->16 5x5, relu, pool 2, conv
16->32 5x5, relu, pool 2, linear 512->10, on MNIST digits), ``cifar`` (3x32x32: conv3x3 3->32 and
32->32 with padding 1, relu each, pool 2, conv3x3 32->64 padding 1, relu, pool 2, linear 4096->10),
``mlp`` (784->512->512->10 with relu), ``conv7`` (conv 1->32 7x7 padding 1, relu, linear),
``vgg`` (3x32x32: conv3x3 3->16->16, pool 2, 16->32->32, pool 2, 32->64, pool 2, linear 1024->10,
every conv with padding 1 and a relu), ``strided`` (3x64x64: conv 3->32 7x7 stride 2 padding 3,
relu, pool 2, conv 32->64 3x3 stride 2 padding 1, relu, linear 4096->10), ``mobilenet`` (3x32x32:
conv3x3 3->32, depthwise 3x3 of 32 channels (groups 32), conv1x1 32->64, avg pool 2, depthwise
3x3 of 64, conv1x1 64->128, a relu after every conv, 3x3s with padding 1, global average pool,
linear 128->10; needs conv2d's ``groups``), ``batchnorm`` (``cifar``'s first and third convs, each
followed by batch norm in training mode), ``resnet_stem`` (3x64x64: conv 3->32 7x7 stride 2
padding 3, batch norm, relu, max pool 3 stride 2 padding 1, two conv3x3 32->32 padding 1 with a
relu each, global average pool, linear 32->10; ``batchnorm`` and ``resnet_stem`` are
benchmarks/run.py's), ``odd3x3`` (3x40x40: conv3x3 3->24 and 24->48 padding 1, pool 2, 48->48
unpadded (18x18), 48->96 padding 1, pool 2, 96->96 padding 1 (9x9), 96->128 unpadded (7x7), a relu
after every conv, global average pool, linear 128->10: odd sizes and channel counts), ``dcgan`` (a
DCGAN-style generator: a 64-d latent (N, 64, 1, 1), conv_transpose2d 64->128 4x4, then 128->64,
64->32 and 32->3 4x4 stride 2 padding 1, a relu after each but the last, tanh, 3x32x32 images, a
linear 3072->10 head for the loss) and ``hvp`` (a
Hessian-vector product of LeNet-ish's loss with respect to its weights: double backward). Never
tune to one of them: compare a change on all of them, at small and large batches.

Measures ``time.process_time()`` (user + system CPU of the process), which other programs on a
shared machine disturb less than wall time. Only tensor ops are used (no nn/optim), so the script
runs against every version of the library since its first commit: point REPO at a
``git worktree`` of the commit to measure (default: this checkout). ``--tune`` calls
``tinygrad_cnn.memory.tune_allocator()`` first, which ``import tinygrad_cnn`` does by default
since that became the default: the flag makes older versions measure alike.

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
from typing import Any

import numpy as np

SAMPLE_STEPS = 5
NN_FUNCTIONAL_NETS = (
    "batchnorm",
    "resnet_stem",
    "odd3x3",
    "dcgan",
)  # need tinygrad_cnn.nn.functional (batch_norm, pools)
NETS = (
    "lenet",
    "cifar",
    "mlp",
    "conv7",
    "hvp",
    "vgg",
    "strided",
    "mobilenet",
    "batchnorm",
    "resnet_stem",
    "odd3x3",
    "dcgan",
)


def serve(repo: str, net: str, batch: int, tune: bool) -> None:
    """One contender's process: on every line read from stdin, time SAMPLE_STEPS steps and print ms per step."""
    rng = np.random.default_rng(0)
    arrays, x = workload(repo, net, batch, rng)
    y = rng.integers(0, 10, batch)
    vector = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    step = (
        torch_step(net, arrays, x, y, vector)
        if repo == "torch"
        else our_step(Path(repo), net, arrays, x, y, vector, tune)
    )
    for _ in range(3):
        step()
    for _ in sys.stdin:
        start = time.process_time()
        for _ in range(SAMPLE_STEPS):
            step()
        print((time.process_time() - start) / SAMPLE_STEPS * 1e3, flush=True)


def workload(repo: str, net: str, batch: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """The net's parameters (weights as PyTorch lays them out, then biases) and a batch of inputs."""

    def param(*shape: int, fan_in: int) -> np.ndarray:
        return (rng.uniform(-1, 1, shape) / np.sqrt(fan_in)).astype(np.float32)

    def layer(c_in: int, c_out: int, k: int = 0) -> list[np.ndarray]:
        fan_in = c_in * max(k, 1) ** 2
        return [
            param(c_out, c_in, k, k, fan_in=fan_in) if k else param(c_out, c_in, fan_in=fan_in),
            param(c_out, fan_in=fan_in),
        ]

    if net in ("lenet", "hvp"):
        mnist = Path(__file__).resolve().parents[1] if repo == "torch" else Path(repo)
        raw = gzip.open(mnist / "tinygrad_cnn/data/mnist/train-images-idx3-ubyte.gz").read()
        pixels = np.frombuffer(raw, np.uint8, offset=16)[: batch * 784].reshape(batch, 1, 28, 28)
        x = ((pixels / 255.0 - 0.1307) / 0.3081).astype(np.float32)  # real digits: pooling sees their ties
        return layer(1, 16, 5) + layer(16, 32, 5) + layer(512, 10), x
    if net == "cifar":
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        return layer(3, 32, 3) + layer(32, 32, 3) + layer(32, 64, 3) + layer(64 * 8 * 8, 10), x

    def norm(c: int) -> list[np.ndarray]:
        return [np.ones(c, np.float32), np.zeros(c, np.float32)]

    if net == "batchnorm":
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        return layer(3, 32, 3) + norm(32) + layer(32, 64, 3) + norm(64) + layer(64 * 8 * 8, 10), x
    if net == "resnet_stem":
        x = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        return layer(3, 32, 7) + norm(32) + layer(32, 32, 3) + layer(32, 32, 3) + layer(32, 10), x
    if net == "odd3x3":
        x = rng.standard_normal((batch, 3, 40, 40)).astype(np.float32)
        channels = (3, 24, 48, 48, 96, 96, 128)
        return [a for c_in, c_out in zip(channels, channels[1:]) for a in layer(c_in, c_out, 3)] + layer(128, 10), x
    if net == "mobilenet":
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        convs = layer(3, 32, 3) + layer(1, 32, 3) + layer(32, 64, 1) + layer(1, 64, 3) + layer(64, 128, 1)
        return convs + layer(128, 10), x
    if net == "strided":
        x = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        return layer(3, 32, 7) + layer(32, 64, 3) + layer(64 * 8 * 8, 10), x
    if net == "vgg":
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        channels = (3, 16, 16, 32, 32, 64)
        return [a for c_in, c_out in zip(channels, channels[1:]) for a in layer(c_in, c_out, 3)] + layer(1024, 10), x
    if net == "dcgan":
        channels = (64, 128, 64, 32, 3)
        # weights as PyTorch lays out a transposed convolution's: (C_in, C_out, kh, kw)
        convs = [
            a
            for c_in, c_out in zip(channels, channels[1:])
            for a in (param(c_in, c_out, 4, 4, fan_in=c_out * 16), param(c_out, fan_in=c_out * 16))
        ]
        return convs + layer(3 * 32 * 32, 10), rng.standard_normal((batch, 64, 1, 1)).astype(np.float32)
    if net == "mlp":
        return layer(784, 512) + layer(512, 512) + layer(512, 10), rng.standard_normal((batch, 784)).astype(np.float32)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)  # conv7
    return layer(1, 32, 7) + layer(32 * 24 * 24, 10), x


def forward(F: Any, net: str, p: list[Any], x: Any) -> Any:
    """The net's logits, written once for both frameworks (``F`` is either's functional module)."""
    batch = x.shape[0]
    if net in ("lenet", "hvp"):
        h = F.max_pool2d(F.relu(F.conv2d(x, p[0], p[1])), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p[2], p[3])), 2)
        return F.linear(h.reshape(batch, -1), p[4], p[5])
    if net == "cifar":
        h = F.relu(F.conv2d(x, p[0], p[1], padding=1))
        h = F.max_pool2d(F.relu(F.conv2d(h, p[2], p[3], padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p[4], p[5], padding=1)), 2)
        return F.linear(h.reshape(batch, -1), p[6], p[7])
    if net == "batchnorm":
        h = F.conv2d(x, p[0], p[1], padding=1)
        h = F.max_pool2d(F.relu(F.batch_norm(h, None, None, p[2], p[3], training=True)), 2)
        h = F.conv2d(h, p[4], p[5], padding=1)
        h = F.max_pool2d(F.relu(F.batch_norm(h, None, None, p[6], p[7], training=True)), 2)
        return F.linear(h.reshape(batch, -1), p[8], p[9])
    if net == "resnet_stem":
        h = F.conv2d(x, p[0], p[1], stride=2, padding=3)
        h = F.max_pool2d(F.relu(F.batch_norm(h, None, None, p[2], p[3], training=True)), 3, 2, 1)
        h = F.relu(F.conv2d(h, p[4], p[5], padding=1))
        h = F.relu(F.conv2d(h, p[6], p[7], padding=1))
        return F.linear(F.adaptive_avg_pool2d(h, 1).reshape(batch, -1), p[8], p[9])
    if net == "odd3x3":
        h = x
        for i, (pad, pool) in enumerate(((1, False), (1, True), (0, False), (1, True), (1, False), (0, False))):
            h = F.relu(F.conv2d(h, p[2 * i], p[2 * i + 1], padding=pad))
            h = F.max_pool2d(h, 2) if pool else h
        return F.linear(F.adaptive_avg_pool2d(h, 1).reshape(batch, -1), p[12], p[13])
    if net == "mobilenet":
        h = F.relu(F.conv2d(x, p[0], p[1], padding=1))
        h = F.relu(F.conv2d(h, p[2], p[3], 1, 1, 1, 32))  # depthwise
        h = F.avg_pool2d(F.relu(F.conv2d(h, p[4], p[5])), 2)
        h = F.relu(F.conv2d(h, p[6], p[7], 1, 1, 1, 64))
        h = F.avg_pool2d(F.relu(F.conv2d(h, p[8], p[9])), 16)
        return F.linear(h.reshape(batch, -1), p[10], p[11])
    if net == "strided":
        h = F.max_pool2d(F.relu(F.conv2d(x, p[0], p[1], stride=2, padding=3)), 2)
        h = F.relu(F.conv2d(h, p[2], p[3], stride=2, padding=1))
        return F.linear(h.reshape(batch, -1), p[4], p[5])
    if net == "vgg":
        h = x
        for i, pool in enumerate((False, True, False, True, True)):
            h = F.relu(F.conv2d(h, p[2 * i], p[2 * i + 1], padding=1))
            h = F.max_pool2d(h, 2) if pool else h
        return F.linear(h.reshape(batch, -1), p[10], p[11])
    if net == "dcgan":
        h = F.relu(F.conv_transpose2d(x, p[0], p[1]))  # 1x1 -> 4x4
        for i in (1, 2):
            h = F.relu(F.conv_transpose2d(h, p[2 * i], p[2 * i + 1], stride=2, padding=1))
        h = F.tanh(F.conv_transpose2d(h, p[6], p[7], stride=2, padding=1))  # 3x32x32
        return F.linear(h.reshape(batch, -1), p[8], p[9])
    if net == "mlp":
        h = F.relu(F.linear(x, p[0], p[1]))
        return F.linear(F.relu(F.linear(h, p[2], p[3])), p[4], p[5])
    h = F.relu(F.conv2d(x, p[0], p[1], padding=1))
    return F.linear(h.reshape(batch, -1), p[2], p[3])


def our_step(repo: Path, net: str, arrays: list, x: np.ndarray, y: np.ndarray, vector: list, tune: bool) -> Any:
    sys.path.insert(0, str(repo))
    import tinygrad_cnn as tg
    from tinygrad_cnn import functional as F
    from tinygrad_cnn.nn import functional as NF  # batch_norm, adaptive_avg_pool2d, conv_transpose2d

    if tune:
        from tinygrad_cnn.memory import tune_allocator

        tune_allocator()
    params = [tg.Tensor(a, requires_grad=True) for a in arrays]
    v = [tg.Tensor(a) for a in vector]

    def step() -> None:
        loss = F.cross_entropy(forward(NF if net in NN_FUNCTIONAL_NETS else F, net, params, tg.Tensor(x)), y)
        for p in params:
            p.grad = None
        if net != "hvp":
            loss.backward()
            return
        grads = tg.autograd.grad(loss, params, create_graph=True)
        sum(F.sum(g * vi) for g, vi in zip(grads, v)).backward()

    return step


def torch_step(net: str, arrays: list, x: np.ndarray, y: np.ndarray, vector: list) -> Any:
    """The same step in PyTorch, on one thread (compare with OPENBLAS_NUM_THREADS=1)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    v = [torch.tensor(a) for a in vector]
    xt, yt = torch.tensor(x), torch.tensor(y)

    def step() -> None:
        loss = F.cross_entropy(forward(F, net, params, xt), yt)
        for p in params:
            p.grad = None
        if net != "hvp":
            loss.backward()
            return
        grads = torch.autograd.grad(loss, params, create_graph=True)
        sum((g * vi).sum() for g, vi in zip(grads, v)).backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="*", default=[str(Path(__file__).resolve().parents[1])])
    parser.add_argument("--net", choices=NETS, default="lenet", help="the workload (see above)")
    parser.add_argument("--tune", action="store_true", help="call tune_allocator() first")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cpu", type=int, help="pin every process to this CPU")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(str(args.repos[0]), args.net, args.batch, args.tune)
        return
    pin = [] if args.cpu is None else ["taskset", "-c", str(args.cpu)]
    children = []
    for repo in args.repos:
        command = [
            sys.executable,
            __file__,
            repo if repo == "torch" else str(Path(repo).resolve()),
            "--serve",
            "--net",
            args.net,
            "--batch",
            str(args.batch),
        ]
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
            f"{repo}{tuned}: {args.net} {median:.2f} ms CPU per step (median of {len(times)}; min {min(times):.2f}), "
            f"{args.batch / median * 1e3:,.0f} img/s per core, batch {args.batch}"
        )


if __name__ == "__main__":
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        print("note: set OPENBLAS_NUM_THREADS=1 to measure one core", file=sys.stderr)
    main()
