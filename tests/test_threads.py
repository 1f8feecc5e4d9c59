"""BLAS thread control: set_num_threads/get_num_threads (PyTorch's meaning), capped blocks, and the
default that follows the load. The load is faked (``_cpu_seconds``), so the decisions are tested
exactly; how much the default gains under real load is a benchmark (benchmarks/run.py, loaded row)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import tinygrad_cnn as tg
from tinygrad_cnn import nn, threads


def blas_threads() -> int:
    """BLAS's own thread count (not tinygrad_cnn's)."""
    counts = [lib.get_num_threads() for lib in threads._blas().lib_controllers]
    return max(counts)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[threads._State]:
    """A fresh adaptive state on a 2-core share (whatever the environment says); BLAS restored afterwards."""
    before, width = blas_threads(), threads._state.width
    state = threads._State()
    state.adaptive, state.fixed = True, None
    monkeypatch.setattr(threads, "_state", state)
    monkeypatch.setattr(threads, "usable_cores", lambda: threads.CoreShare(frozenset({0, 1}), 2.0))
    yield state
    for lib in threads._blas().lib_controllers:
        lib.set_num_threads(before)
    assert threads._state is state
    monkeypatch.undo()
    threads._state.width = width


def fake_load(monkeypatch: pytest.MonkeyPatch, busy: list[float], ours: list[float]) -> None:
    """Successive /proc/stat readings: all processes' busy CPU seconds and ours."""
    readings = iter(zip(busy, ours))
    monkeypatch.setattr(threads, "_cpu_seconds", lambda cpus: next(readings))


def test_set_and_get_num_threads_as_in_pytorch(fresh: threads._State) -> None:
    tg.set_num_threads(1)
    assert tg.get_num_threads() == 1
    tg.set_num_threads(2)
    assert tg.get_num_threads() == 2
    threads.adapt()  # fixed: the load is not looked at
    assert fresh.sample is None and tg.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_non_positive_ints(bad: object) -> None:
    with pytest.raises(ValueError, match="set_num_threads: the number of threads must be a positive int"):
        tg.set_num_threads(bad)  # type: ignore[arg-type]


def test_busy_cores_mean_one_thread_idle_cores_all(fresh: threads._State, monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.5 s apart: others use 1.0 s (busy 1.2 - ours 0.2) of 2 cores' 1.0 s -> 1 idle core -> 1 thread;
    # then others use 0.1 s -> 1.9 idle cores -> 2 threads; then others use 0.4 s -> 1.2 idle -> 1
    fake_load(monkeypatch, busy=[0, 1.2, 1.7, 2.6], ours=[0, 0.2, 0.6, 1.1])
    threads._look(0.0)
    assert tg.get_num_threads() == 1  # before the first interval is measured: the safe count
    threads._look(0.5)
    assert tg.get_num_threads() == 1
    threads._look(1.0)
    assert tg.get_num_threads() == 2
    assert blas_threads() == 1  # each of our threads calls BLAS on one thread
    threads._look(1.5)
    assert tg.get_num_threads() == 1


def test_never_above_the_cores_this_process_may_use(fresh: threads._State, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "usable_cores", lambda: threads.CoreShare(frozenset({0}), 1.0))
    fake_load(monkeypatch, busy=[0, 0.0], ours=[0, 0.0])
    threads._look(0.0)
    threads._look(0.5)
    assert tg.get_num_threads() == 1


def test_a_blas_count_set_by_someone_else_is_left_alone(fresh: threads._State, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_load(monkeypatch, busy=[0, 0.2, 0.2, 0.3], ours=[0, 0.2, 0.2, 0.3])
    threads._look(0.0)
    threads._look(0.5)
    assert tg.get_num_threads() == 2
    with threadpool_limits(limits=2, user_api="blas"):  # the user's own choice for a block
        threads._look(1.0)  # BLAS threads itself now: our ops run on one thread meanwhile
        assert tg.get_num_threads() == 1 and blas_threads() == 2
    threads._look(1.5)  # back at one BLAS thread: adapting again (the interval restarts)
    assert fresh.sample is not None


def test_no_load_figures_mean_one_thread(fresh: threads._State, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_cpu_seconds", lambda cpus: None)
    threads._look(0.0)
    assert not fresh.adaptive and tg.get_num_threads() == 1


@pytest.mark.parametrize(
    "environment,fixed",
    [
        ({"OPENBLAS_NUM_THREADS": "2"}, 2),
        ({"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "1"}, 3),  # PyTorch's variable first
        ({"OPENBLAS_NUM_THREADS": "1"}, 1),
        ({"OMP_NUM_THREADS": "four"}, None),  # not a count: the default
        ({}, None),
    ],
)
def test_environment_variables_fix_the_count(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], fixed: int | None
) -> None:
    for name in threads.ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    state = threads._State()
    assert state.fixed == fixed and state.adaptive == (fixed is None)


def test_capped_bounds_and_restores(fresh: threads._State, monkeypatch: pytest.MonkeyPatch) -> None:
    tg.set_num_threads(2)
    with threads.capped(1):
        assert tg.get_num_threads() == 1
        tg.set_num_threads(2)  # a cap is a bound on every count set inside it
        assert tg.get_num_threads() == 1
        with threads.capped(2):
            assert tg.get_num_threads() == 1
    assert tg.get_num_threads() == 2
    with pytest.raises(ValueError, match="capped"):
        with threads.capped(0):
            pass


def test_exactly_fixes_the_count_for_a_block(fresh: threads._State, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_load(monkeypatch, busy=[0, 1.2, 2.4], ours=[0, 0.2, 0.4])  # one core busy: one thread
    threads._look(0.0)
    threads._look(0.5)
    with threads.exactly(2):
        threads._look(1.0)  # fixed: the load is not looked at
        assert tg.get_num_threads() == 2 and fresh.fixed == 2
    assert fresh.fixed is None and tg.get_num_threads() == 1  # adaptive again, at the count it had
    tg.set_num_threads(3)
    with threads.exactly(1):
        assert tg.get_num_threads() == 1
    assert tg.get_num_threads() == 3 and fresh.fixed == 3
    with pytest.raises(ValueError, match="exactly: the number of threads must be a positive int"):
        with threads.exactly(0):
            pass


def test_map_batches_workers_run_ops_and_blas_on_one_thread(fresh: threads._State) -> None:
    tg.set_num_threads(2)
    seen = []

    def fn(x: tg.Tensor) -> tg.Tensor:
        seen.append((tg.get_num_threads(), blas_threads()))
        return x * 2

    out = tg.parallel.map_batches(fn, np.ones((8, 3), np.float32), batch_size=2, workers=2)
    assert np.array_equal(out.numpy(), np.full((8, 3), 2, np.float32))
    assert seen == [(1, 1)] * 4 and tg.get_num_threads() == 2


def test_modules_and_backward_look_at_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(threads, "adapt", lambda: calls.append(1))
    model = nn.Linear(3, 2)
    model(tg.ones(1, 3)).sum().backward()
    assert len(calls) == 2  # once for the module call, once when the sweep starts
