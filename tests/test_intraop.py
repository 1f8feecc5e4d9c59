"""Intra-op threads: tasks run side by side, in order, with errors raised; and results never depend on
the thread count (the kernels cut their work by the shapes alone). How much the threads gain is a
benchmark (benchmarks/run.py), not a test."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Iterator
from functools import partial

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import intraop, kernels, threads
from tinygrad_cnn import nn as tnn
from tinygrad_cnn.nn import functional as F


@pytest.fixture
def width() -> Iterator[None]:
    """Restore the thread count (and its fixed setting) after a test that sets it."""
    state = threads._state
    saved = state.width, state.fixed
    yield
    state.width, state.fixed = saved


def test_tasks_run_side_by_side_and_results_come_in_task_order(width: None) -> None:
    tg.set_num_threads(2)
    barrier = threading.Barrier(2, timeout=10)  # passes only if two tasks run at once

    def task(i: int) -> tuple[int, int]:
        if i < 2:
            barrier.wait()
        return i, threading.get_ident()

    results = intraop.run([partial(task, i) for i in range(6)])
    assert [i for i, _ in results] == list(range(6))
    assert len({ident for _, ident in results[:2]}) == 2


def test_a_task_runs_its_own_work_on_its_thread(width: None) -> None:
    tg.set_num_threads(3)
    inner = intraop.run([lambda: (intraop.width(), intraop.run([threading.get_ident, threading.get_ident]))] * 3)
    assert all(w == 1 and len(set(idents)) == 1 for w, idents in inner)
    assert intraop.width() == 3


def test_every_task_finishes_and_the_first_error_is_raised(width: None) -> None:
    tg.set_num_threads(2)
    done = []

    def task(i: int) -> None:
        done.append(i)
        if i in (1, 3):
            raise ValueError(f"task {i}")

    with pytest.raises(ValueError, match="task 1"):
        intraop.run([partial(task, i) for i in range(5)])
    assert sorted(done) == list(range(5))


@pytest.mark.parametrize(
    "n,minimum,most", [(0, 1, 16), (1, 1, 16), (10, 3, 16), (100, 7, 4), (1000, 1, 16), (5, 10, 16)]
)
def test_pieces_cover_the_range_by_the_sizes_alone(n: int, minimum: int, most: int) -> None:
    pieces = intraop.pieces(n, minimum, most)
    assert [i for r in pieces for i in r] == list(range(n))
    sizes = [len(r) for r in pieces]
    assert len(pieces) <= most and max(sizes) - min(sizes) <= 1
    assert len(pieces) == 1 or min(sizes) >= minimum


def test_scratch_memory_is_reused_by_its_thread() -> None:
    a = intraop.scratch((10, 10), np.float32)
    b = intraop.scratch(50, np.float64)
    assert a.shape == (10, 10) and b.dtype == np.float64 and np.shares_memory(a, b)
    other = intraop.run([partial(intraop.scratch, 10, np.float32)])[0]  # the calling thread's, too
    assert np.shares_memory(other, a)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_pool_of_its_own(width: None) -> None:
    tg.set_num_threads(2)
    intraop.run([lambda: 1, lambda: 2])  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # the child: without a pool of its own, run() would wait forever
        signal.alarm(20)
        ok = intraop.run([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def step_arrays(seed: int) -> list[np.ndarray]:
    """Loss, parameter gradients and the input gradient of a small CNN's training step: big enough
    that the convolutions, the fold, the GEMMs and the elementwise ops are cut into several tasks."""
    tg.manual_seed(seed)
    model = tnn.Sequential(
        tnn.Conv2d(3, 24, 3, padding=1),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(24, 24, 1),  # pointwise: GEMMs on the pooled output's own memory
        tnn.Conv2d(24, 32, 5, padding=2),
        tnn.ReLU(),
        tnn.Flatten(),
        tnn.Linear(32 * 12 * 12, 300),
        tnn.ReLU(),
        tnn.Linear(300, 10),
    )
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal((96, 3, 24, 24)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(model(x), tg.tensor(rng.integers(0, 10, 96)))
    loss.backward()
    return [loss.detach().numpy(), x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]


def test_results_never_depend_on_the_thread_count(width: None) -> None:
    results = []
    for count in (1, 2, 3):
        tg.set_num_threads(count)
        results.append(step_arrays(0))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("count", [1, 2])
def test_the_split_kernels_compute_what_they_say(width: None, count: int) -> None:
    tg.set_num_threads(count)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 150))
    np.testing.assert_allclose(kernels.matmul(a, b), a @ b, rtol=1e-12)
    x = rng.standard_normal((8, 300, 200)).transpose(1, 0, 2)  # split along its memory order
    y = rng.standard_normal((8, 300, 200)).transpose(1, 0, 2)
    got = kernels.elementwise(np.multiply, x, y)
    np.testing.assert_array_equal(got, x * y)
    assert got.transpose(1, 0, 2).flags.c_contiguous  # laid out like x
    np.testing.assert_array_equal(kernels.elementwise(np.multiply, x, y.copy()), x * y)  # layouts differ
    np.testing.assert_array_equal(kernels.elementwise(np.maximum, x, 0.0), np.maximum(x, 0.0))


def test_users_threads_may_run_ops_at_once_while_the_count_grows(width: None) -> None:
    """Two of the user's threads train at once (as PyTorch allows) while the count goes from 2 to 3."""
    tg.set_num_threads(2)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((512, 300)), rng.standard_normal((300, 200))
    want = kernels.matmul(a, b)
    results: list[bool] = []

    def work() -> None:
        results.extend(np.array_equal(kernels.matmul(a, b), want) for _ in range(20))

    threads_ = [threading.Thread(target=work) for _ in range(2)]
    for t in threads_:
        t.start()
    tg.set_num_threads(3)
    for t in threads_:
        t.join(timeout=60)
    assert results == [True] * 40


def test_tasks_on_other_threads_keep_the_callers_numpy_error_state(width: None) -> None:
    """The library silences NumPy's warnings where it means to (np.errstate, which NumPy keeps per
    thread); a large op split over threads stays as quiet as on one."""
    tg.set_num_threads(2)
    x = tg.tensor(np.full((1000, 1000), np.inf, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x * 0.0  # inf * 0: NaN, silently, as in PyTorch
    assert np.isnan(y.numpy()).all()
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
        intraop.run([partial(np.multiply, x.numpy()[:500], 0.0), partial(np.multiply, x.numpy()[500:], 0.0)])
