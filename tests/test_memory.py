"""The allocator tuning that ``import tinygrad_cnn`` applies (tinygrad_cnn.memory): on by default,
off where the environment says so, and what it is for: training steps that stop page-faulting
their freed buffers back in."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

STEPS = """
import resource
import numpy as np
import tinygrad_cnn as tg

tg.manual_seed(0)
nn = tg.nn
model = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 12 * 12, 10))
x, y = tg.randn(64, 1, 28, 28), tg.tensor(np.arange(64) % 10)


def step():
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()


step(), step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(tg.memory.allocator_tuned(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None, reason="mallopt is glibc's"
)


def page_faults_of_steps(**environment: str) -> tuple[bool, int]:
    """(whether the allocator was tuned, minor page faults of 5 training steps after 2 warm-up
    steps) in a fresh interpreter with ``environment`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    env.update(environment, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


@glibc_only
def test_import_tunes_the_allocator_and_steps_stop_page_faulting() -> None:
    tuned, faults = page_faults_of_steps()
    untuned, untuned_faults = page_faults_of_steps(TINYGRAD_CNN_TUNE_ALLOCATOR="0")
    assert tuned and not untuned
    # 5 steps fault ~15,000 pages back in with glibc's defaults (~2.4 MB per step), none when tuned
    assert untuned_faults > 5 * 256, untuned_faults
    assert faults < untuned_faults / 10, (faults, untuned_faults)


@glibc_only
def test_glibc_settings_of_the_user_are_left_to_rule() -> None:
    assert page_faults_of_steps(MALLOC_TOP_PAD_="131072")[0] is False
    assert page_faults_of_steps(TINYGRAD_CNN_TUNE_ALLOCATOR="1")[0] is True
