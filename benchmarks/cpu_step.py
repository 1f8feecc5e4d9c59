"""CPU time of one LeNet-ish training step, for comparing versions of the library.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cpu_step.py [REPO] [--tune]

Measures ``time.process_time()`` (user + system CPU of this process), which other programs on a
shared machine barely disturb, unlike wall time. Only tensor ops are used (no nn/optim), so the
script runs against every version of the library since its first commit: point REPO at a
``git worktree`` of the commit to measure (default: this checkout). ``--tune`` calls
``tinygrad_cnn.memory.tune_allocator()`` first.
"""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

import numpy as np

args = [a for a in sys.argv[1:] if a != "--tune"]
repo = Path(args[0] if args else Path(__file__).resolve().parents[1]).resolve()
sys.path.insert(0, str(repo))

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402

if "--tune" in sys.argv:
    from tinygrad_cnn.memory import tune_allocator

    tune_allocator()

BATCH = 128
rng = np.random.default_rng(0)


def param(*shape: int, fan_in: int) -> tg.Tensor:
    return tg.Tensor((rng.uniform(-1, 1, shape) / np.sqrt(fan_in)).astype(np.float32), requires_grad=True)


params = [param(16, 1, 5, 5, fan_in=25), param(16, fan_in=25), param(32, 16, 5, 5, fan_in=400),
          param(32, fan_in=400), param(10, 512, fan_in=512), param(10, fan_in=512)]
w1, b1, w2, b2, w3, b3 = params
raw = gzip.open(repo / "tinygrad_cnn/data/mnist/train-images-idx3-ubyte.gz").read()
pixels = np.frombuffer(raw, np.uint8, offset=16)[: BATCH * 784].reshape(BATCH, 1, 28, 28)
x = ((pixels / 255.0 - 0.1307) / 0.3081).astype(np.float32)  # real digits: pooling sees their ties
y = rng.integers(0, 10, BATCH)


def step() -> None:
    h = F.max_pool2d(F.relu(F.conv2d(tg.Tensor(x), w1, b1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2)), 2)
    loss = F.cross_entropy(F.linear(h.reshape(BATCH, -1), w3, b3), y)
    for p in params:
        p.grad = None
    loss.backward()


for _ in range(3):
    step()
best = float("inf")
for _ in range(3):
    start = time.process_time()
    for _ in range(10):
        step()
    best = min(best, (time.process_time() - start) / 10)
print(f"{repo}{' (tuned allocator)' if '--tune' in sys.argv else ''}: {best * 1e3:.1f} ms CPU per step, "
      f"{BATCH / best:,.0f} img/s per core")
