"""A BatchNorm CNN on the bundled MNIST: test accuracy and training time, next to the same
network without BatchNorm, trained the same way in the same run (the machine is shared and noisy).

    python benchmarks/batchnorm_mnist.py [--epochs 3] [--limit-train N] [--seed 0]

The network is examples/mnist_cnn.py's (conv 5x5 16, pool, conv 5x5 32, pool, linear), with a
BatchNorm2d after each convolution (whose bias it makes redundant); Adam with a one-cycle
learning rate (lr only), batch 128, as the example. Prints one line per network.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.datasets import DataLoader, load_mnist
from tinygrad_cnn.optim import lr_scheduler

MEAN, STD = 0.1307, 0.3081


def build(batchnorm: bool) -> nn.Module:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        if batchnorm:
            return [nn.Conv2d(c_in, c_out, 5, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        return [nn.Conv2d(c_in, c_out, 5), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 16), *block(16, 32), nn.Flatten(), nn.Linear(512, 10))


def images(x: np.ndarray) -> tg.Tensor:
    return tg.Tensor((x.astype(np.float32)[:, None] / np.float32(255) - np.float32(MEAN)) / np.float32(STD))


def train(batchnorm: bool, data: tuple, epochs: int, seed: int) -> tuple[float, float]:
    (x_train, y_train), (x_test, y_test) = data
    tg.manual_seed(seed)
    model = build(batchnorm)
    loader = DataLoader(x_train, y_train, batch_size=128, shuffle=True, seed=seed)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    schedule = lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * len(loader), cycle_momentum=False)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            loss = nn.CrossEntropyLoss()(model(images(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    seconds = time.perf_counter() - start
    predictions = model.predict(images(x_test)).numpy().argmax(axis=1)
    return float((predictions == y_test).mean()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (x_train, y_train), test = load_mnist()
    data = ((x_train[: args.limit_train], y_train[: args.limit_train]), test)
    for batchnorm in (True, False):
        accuracy, seconds = train(batchnorm, data, args.epochs, args.seed)
        name = "with BatchNorm2d" if batchnorm else "without"
        print(f"{name:18} test accuracy {100 * accuracy:.2f}%  training {seconds:.1f} s  ({args.epochs} epochs)")


if __name__ == "__main__":
    main()
