"""RSS growth per training step when every loss is kept after backward (``history.append(loss)``).

A kept loss keeps its graph's nodes; after backward they must hold no activations (PyTorch keeps only
its small grad_fn nodes). Trains the example's CNN at batch 64 for STEPS steps, keeping every loss, and
prints the RSS growth per step, for tinygrad_cnn and (when installed) PyTorch, in separate processes.

    python benchmarks/kept_loss_memory.py [steps]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, resource, numpy as np
steps, which = int(sys.argv[1]), sys.argv[2]

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

rng = np.random.default_rng(0)
x = rng.random((64, 1, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, 64)
history, rss = [], []
if which == "tinygrad_cnn":
    import runpy
    import tinygrad_cnn as tg
    from tinygrad_cnn import functional as F, optim
    example = runpy.run_path(sys.argv[3])
    tg.manual_seed(0)
    model = example["build_model"]()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(tg.Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss
else:
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)
    nn = torch.nn  # the example's build_model()
    model = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss
for i in range(steps):
    history.append(step())
    if i == 9:
        start = rss_mb()
end = rss_mb()
print((end - start) / (steps - 10))
"""


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    results = {}
    for which in ("tinygrad_cnn", "torch"):
        cmd = [sys.executable, "-c", CHILD, str(steps), which, str(ROOT / "examples" / "mnist_cnn.py")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={"OPENBLAS_NUM_THREADS": "1", "PATH": ""})
        if proc.returncode != 0:
            results[which] = proc.stderr.strip().splitlines()[-1]
            continue
        results[which] = f"{float(proc.stdout):.3f} MB/step"
    print(json.dumps({"steps": steps, "batch": 64, "rss_growth": results}))


if __name__ == "__main__":
    main()
