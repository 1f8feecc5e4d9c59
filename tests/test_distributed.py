"""tinygrad_cnn.distributed, DistributedDataParallel and DistributedSampler, under ``mpiexec -n 2``.

Each test launches tests/mpi_cases.py as a two-rank MPI job (about a second each), bounded by a
timeout, and checks its output; the fault tests also check that no rank process and no MPI shared
memory in /dev/shm outlive the job.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="needs the mpi extra: pip install -e '.[mpi]'")

from tinygrad_cnn.utils.data import DistributedSampler  # noqa: E402

CASES = Path(__file__).with_name("mpi_cases.py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (pip install mpich)")


def launch(*args: str) -> subprocess.Popen:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(CASES.parent.parent))
    return subprocess.Popen(
        [MPIEXEC, "-n", "2", sys.executable, str(CASES), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # so a test can signal mpiexec alone, and clean up the group if it fails
    )


def finish(job: subprocess.Popen, timeout: float) -> tuple[int, str, str, float]:
    start = time.monotonic()
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        pytest.fail(f"the MPI job did not end within {timeout} s:\n{out}\n{err}")
    return job.returncode, out, err, time.monotonic() - start


def mpi_shared_memory() -> set[str]:
    try:
        return {name for name in os.listdir("/dev/shm") if name.startswith("mpich_shm_")}
    except FileNotFoundError:
        return set()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def assert_nothing_left(pids: list[int], shm_before: set[str], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)], "rank processes outlived the job"
    # A segment that a live process still maps belongs to another MPI job running meanwhile
    # (other test runs on the machine), not to this one.
    left = {name for name in mpi_shared_memory() - shm_before if not mapped_by_a_live_process(name)}
    assert not left, f"MPI shared memory left in /dev/shm: {sorted(left)}"


def mapped_by_a_live_process(name: str) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/maps") as f:
                    if name in f.read():
                        return True
            except OSError:
                continue
    return False


def rank_pids(directory: Path, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    files = [directory / f"pid.{r}" for r in range(2)]
    while not all(f.exists() for f in files):
        assert time.monotonic() < deadline, "the ranks did not start"
        time.sleep(0.05)
    return [int(f.read_text()) for f in files]


@needs_mpiexec
@pytest.mark.parametrize("case", ["gradients", "steps", "sampler"])
def test_two_ranks(case):
    """gradients: one DDP step equals the full batch's gradient; steps: 50 steps keep every rank's
    parameters bit-identical; sampler: the shards of an epoch are disjoint and cover the data."""
    shm = mpi_shared_memory()
    code, out, err, _ = finish(launch(case), timeout=120)
    assert code == 0, err
    assert all(f"ok {case} rank {r}" in out for r in range(2)), out + err  # the ranks' lines may interleave
    assert mpi_shared_memory() <= shm


@needs_mpiexec
def test_an_exception_on_one_rank_aborts_the_job_with_its_traceback(tmp_path):
    shm = mpi_shared_memory()
    code, _, err, _ = finish(launch("raise", str(tmp_path)), timeout=60)
    assert code != 0
    assert "rank 1 of 2 failed; aborting the job" in err
    assert "ValueError: a failure on rank 1 at step 5" in err and "train_until" in err
    assert_nothing_left(rank_pids(tmp_path), shm)


@needs_mpiexec
def test_a_killed_rank_ends_the_job(tmp_path):
    shm = mpi_shared_memory()
    job = launch("kill", str(tmp_path))
    pids = rank_pids(tmp_path)
    code, out, err, seconds = finish(job, timeout=30)
    assert code != 0 and "Killed (signal 9)" in out + err  # mpiexec's report
    assert seconds < 10
    assert_nothing_left(pids, shm)


@needs_mpiexec
def test_a_stopped_rank_gives_a_timeout_error_not_a_hang(tmp_path):
    shm = mpi_shared_memory()
    job = launch("stop", str(tmp_path))  # the case's process group has a 3 s timeout
    pids = rank_pids(tmp_path)
    code, _, err, _ = finish(job, timeout=60)
    assert code != 0
    assert "DistributedTimeoutError" in err and "rank 0 waited 3 s" in err
    assert_nothing_left(pids, shm)


@needs_mpiexec
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_mpiexec_leaves_no_rank_and_no_shared_memory(tmp_path, sig):
    shm = mpi_shared_memory()
    job = launch("wait", str(tmp_path))
    pids = rank_pids(tmp_path)
    time.sleep(0.5)  # in the middle of training
    job.send_signal(sig)
    finish(job, timeout=30)
    assert_nothing_left(pids, shm)


@pytest.mark.parametrize("n", [0, 1, 7, 12])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sampler_shards(n, world, drop_last, shuffle):
    shards = [DistributedSampler(range(n), world, r, shuffle, seed=1, drop_last=drop_last) for r in range(world)]
    got = [list(s) for s in shards]
    assert {len(g) for g in got} == {len(shards[0])}
    flat = np.concatenate([np.asarray(g, np.int64) for g in got])
    if drop_last or n % world == 0:
        assert len(set(flat.tolist())) == len(flat) == n // world * world  # disjoint
    else:
        assert set(flat.tolist()) == set(range(n))  # every sample, a few twice (padding)
        assert len(flat) == -(-n // world) * world
    assert [list(s) for s in shards] == got  # the same order while the epoch stays
    for s in shards:
        s.set_epoch(1)
    if shuffle and n > 3 and world == 1:
        assert [list(s) for s in shards] != got


def test_sampler_refuses_bad_arguments():
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(range(4), 0, 0)
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="seed"):
        DistributedSampler(range(4), 2, 0, seed=-1)
    with pytest.raises(ValueError, match="epoch"):
        DistributedSampler(range(4), 2, 0).set_epoch(-1)


def test_without_a_process_group():
    from tinygrad_cnn import distributed as dist
    from tinygrad_cnn import nn
    from tinygrad_cnn.nn.parallel import DistributedDataParallel

    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(4))
    with pytest.raises(ValueError, match="backend 'gloo' is not supported"):
        dist.init_process_group("gloo")


def test_a_single_process_is_a_world_of_one():
    script = (
        "import numpy as np; from tinygrad_cnn import distributed as dist, nn;"
        "from tinygrad_cnn.nn.parallel import DistributedDataParallel as DDP;"
        "dist.init_process_group('mpi'); a = np.ones(3, np.float32); dist.all_reduce(a, dist.ReduceOp.AVG);"
        "m = DDP(nn.Linear(2, 2)); print(dist.get_rank(), dist.get_world_size(), a.tolist(), list(m.state_dict()))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0 1 [1.0, 1.0, 1.0] ['module.weight', 'module.bias']", out.stderr


def test_without_mpi4py_the_import_error_says_what_to_install():
    script = "import sys; sys.modules['mpi4py'] = None; import tinygrad_cnn.distributed"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "pip install 'tinygrad_cnn[mpi]'" in out.stderr


@needs_mpiexec
def test_the_training_guides_script_runs_on_two_ranks(tmp_path):
    """docs/training.md's data-parallel script (a ```py block: pytest's doc runner does not run it in-process)."""
    text = (CASES.parent.parent / "docs" / "training.md").read_text()
    script = text.split("<!-- mpi script -->\n```py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "train.py").write_text(script)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "train.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "rank 0 of 2 done" in out.stdout and "rank 1 of 2 done" in out.stdout
    assert (tmp_path / "model.h5").exists()
