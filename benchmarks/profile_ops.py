"""Where a LeNet-ish training step spends its time, per primitive (forward and backward).

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_ops.py

Wraps every primitive's forward and backward with a CPU timer. A backward rule that applies
other primitives (MatMul.backward calls MatMul.apply) also counts their time, so rows overlap.
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import functional as F  # noqa: E402
from tinygrad_cnn import nn  # noqa: E402
from tinygrad_cnn import primitives as P  # noqa: E402
from tinygrad_cnn.memory import tune_allocator  # noqa: E402

seconds: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def timed(fn, label):
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[label] += time.process_time() - start
            calls[label] += 1

    return staticmethod(wrapper)


for name, cls in vars(P).items():
    if isinstance(cls, type) and issubclass(cls, tg.autograd.Primitive) and cls is not tg.autograd.Primitive:
        for kind in ("forward", "backward"):
            setattr(cls, kind, timed(getattr(cls, kind), f"{name}.{kind}"))

tune_allocator()
tg.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(1, 16, 5),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 5),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(512, 10),
)
(images, labels), _ = tg.datasets.load_mnist()
x = ((images[:128, None] / 255.0 - 0.1307) / 0.3081).astype(np.float32)
y = labels[:128]


def step() -> None:
    loss = F.cross_entropy(model(tg.Tensor(x)), y)
    model.zero_grad()
    loss.backward()


for _ in range(3):
    step()
seconds.clear()
calls.clear()
steps = 20
start = time.process_time()
for _ in range(steps):
    step()
total = (time.process_time() - start) / steps
print(f"{total * 1e3:.1f} ms CPU per step; per primitive (ms per step, calls per step):")
for label, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
    print(f"  {label:<24}{s / steps * 1e3:8.2f}  x{calls[label] // steps}")
