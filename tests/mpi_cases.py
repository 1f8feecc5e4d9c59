"""Programs that tests/test_distributed.py runs under ``mpiexec -n 2``: ``python mpi_cases.py CASE [DIR]``.

Each case checks what it can on its own and prints ``ok <case> rank <r>`` at the end; the fault
cases write each rank's pid to DIR/pid.<rank> and then fail in their own way.
"""

from __future__ import annotations

import copy
import datetime
import os
import signal
import sys
import time

import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import distributed as dist
from tinygrad_cnn import functional as F
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn.parallel import DistributedDataParallel
from tinygrad_cnn.utils.data import DistributedSampler


def small_cnn() -> nn.Module:
    layers = [nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(10, 3))


def batch(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def identical_on_all_ranks(array: np.ndarray) -> bool:
    """Whether every rank holds exactly these values (bit for bit)."""
    low, high = array.copy(), array.copy()
    dist.all_reduce(low, dist.ReduceOp.MIN)
    dist.all_reduce(high, dist.ReduceOp.MAX)
    return bool(np.array_equal(low, array) and np.array_equal(high, array))


def case_gradients(rank: int, world: int) -> None:
    """One DDP backward over each rank's shard gives the full batch's gradient on every rank."""
    tg.manual_seed(rank)  # different initial values per rank: DDP must broadcast rank 0's
    model = small_cnn()
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.001)  # several buckets
    assert len(ddp._buckets) > 1
    initial = copy.deepcopy(model.state_dict())
    assert all(identical_on_all_ranks(v.numpy()) for v in initial.values())
    x, y = batch(0, 12)
    shard = slice(rank * 12 // world, (rank + 1) * 12 // world)
    F.cross_entropy(ddp(tg.Tensor(x[shard])), y[shard]).backward()
    reference = small_cnn()  # one process, the whole batch, from the same initial values
    reference.load_state_dict(initial)
    F.cross_entropy(reference(tg.Tensor(x)), y).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        got, want = np.asarray(getattr(p.grad, "data", p.grad)), np.asarray(getattr(q.grad, "data", q.grad))
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=name)
        assert identical_on_all_ranks(got), name
    # Gradient accumulation: two local backwards under no_sync, then one that averages them all.
    model.zero_grad()
    with ddp.no_sync():
        F.cross_entropy(ddp(tg.Tensor(x[shard])), y[shard]).backward()
    F.cross_entropy(ddp(tg.Tensor(x[shard])), y[shard]).backward()
    for p, q in zip(model.parameters(), reference.parameters()):
        want = 2 * np.asarray(getattr(q.grad, "data", q.grad))
        np.testing.assert_allclose(np.asarray(getattr(p.grad, "data", p.grad)), want, rtol=2e-5, atol=2e-6)


def case_steps(rank: int, world: int) -> None:
    """50 steps on different data per rank leave the parameters bit-identical on every rank."""
    tg.manual_seed(rank)
    model = small_cnn()
    ddp = DistributedDataParallel(model)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for step in range(50):
        x, y = batch(1000 * step + rank, 8)
        opt.zero_grad()
        F.cross_entropy(ddp(tg.Tensor(x)), y).backward()
        opt.step()
    for name, value in model.state_dict().items():
        assert identical_on_all_ranks(value.numpy()), name
    assert not identical_on_all_ranks(np.array([rank], np.float32))  # the check can fail


def case_sampler(rank: int, world: int) -> None:
    """Each rank's shard of an epoch: disjoint, covering, reproducible, new order per epoch."""
    for n, drop_last in ((10, False), (11, False), (11, True)):
        sampler = DistributedSampler(np.zeros(n), shuffle=True, seed=3, drop_last=drop_last)
        counts = np.zeros(n, np.int64)
        for epoch in range(2):
            sampler.set_epoch(epoch)
            mine = list(sampler)
            assert len(mine) == len(sampler) and mine == list(sampler)
            counts[:] = np.bincount(mine, minlength=n)
            dist.all_reduce(counts)
            expected = sampler.total_size
            assert counts.sum() == expected and counts.max() <= 1 + (expected > n), (n, drop_last, counts)
            if expected <= n:
                assert counts.max() == 1
        first = list(sampler)
        sampler.set_epoch(0)
        assert list(sampler) != first or n < 3


def write_pid(directory: str, rank: int) -> None:
    with open(os.path.join(directory, f"pid.{rank}.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(directory, f"pid.{rank}.tmp"), os.path.join(directory, f"pid.{rank}"))


def train_until(rank: int, fault: str, directory: str) -> None:
    """Train; rank 1 ``fault``s at step 5; nothing after that must hang."""
    write_pid(directory, rank)
    model = small_cnn()
    ddp = DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.1)
    for step in range(10**6):
        if rank == 1 and step == 5:
            if fault == "raise":
                raise ValueError("a failure on rank 1 at step 5")
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "stop":
                os.kill(os.getpid(), signal.SIGSTOP)
        if fault == "wait" and step == 5:
            time.sleep(600)  # the test kills mpiexec meanwhile
        x, y = batch(step, 4)
        opt.zero_grad()
        F.cross_entropy(ddp(tg.Tensor(x)), y).backward()
        opt.step()


def main() -> None:
    case = sys.argv[1]
    timeout = datetime.timedelta(seconds=3 if case == "stop" else 60)
    dist.init_process_group(backend="mpi", timeout=timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    if case in ("raise", "kill", "stop", "wait"):
        train_until(rank, case, sys.argv[2])
    else:
        globals()[f"case_{case}"](rank, world)
    dist.barrier()
    dist.destroy_process_group()
    print(f"ok {case} rank {rank}", flush=True)


if __name__ == "__main__":
    main()
