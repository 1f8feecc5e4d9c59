"""Tests for tinygrad_cnn.serialization: round trips, errors, atomic writes."""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import serialization
from tinygrad_cnn.serialization import FORMAT_ATTR, CheckpointError, load, save


def assert_same(got, want, where="root"):
    """Exact structural equality, including types and array dtypes/shapes; tuples load as lists."""
    if isinstance(want, dict):
        assert type(got) is dict, where
        assert list(got) == list(want), where  # insertion order is kept
        for k in want:
            assert_same(got[k], want[k], f"{where}/{k}")
    elif isinstance(want, (list, tuple)):
        assert type(got) is list and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}/{i}")
    elif isinstance(want, np.ndarray):
        assert type(got) is np.ndarray, where
        assert got.dtype == want.dtype and got.shape == want.shape, where
        np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, np.generic):
        assert type(got) is type(want) and got.dtype == want.dtype, where
        assert got == want or (np.isnan(got) and np.isnan(want)), where
    elif isinstance(want, float):
        assert type(got) is float, where
        assert got == want or (math.isnan(got) and math.isnan(want)), where
        if want == 0.0:
            assert math.copysign(1, got) == math.copysign(1, want), where
    else:
        assert type(got) is type(want) and got == want, where


def roundtrip(obj, tmp_path):
    path = tmp_path / "ckpt.h5"
    save(obj, path)
    return load(path)


DTYPES = [
    np.float32,
    np.float64,
    np.float16,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
    np.complex128,
]


def test_nested_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    obj = {
        "model": {
            "conv1.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
            "conv1.bias": np.zeros(4, np.float32),
            "fc.weight": rng.standard_normal((10, 16)),
        },
        "arrays": [np.arange(6).astype(dt).reshape(2, 3) for dt in DTYPES],
        "zero_d": np.array(3.5, np.float32),
        "zero_d_bool": np.array(True),
        "zero_size": [np.zeros((0,), np.int64), np.zeros((3, 0, 2), np.float32), np.zeros((0,), bool)],
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "strided": np.arange(20)[::3],
        "scalars": [
            np.float32(1.25),
            np.int64(-3),
            np.uint8(200),
            np.bool_(False),
            np.float16(0.5),
            np.float64(2.5),
            np.complex128(1j),
        ],
        "py": {
            "int": 7,
            "neg": -(2**63),
            "float": 0.1,
            "nan": float("nan"),
            "negzero": -0.0,
            "inf": float("inf"),
            "true": True,
            "false": False,
            "none": None,
            "str": "héllo ✓",
            "empty_str": "",
            "nul_str": "a\x00b",
            "empty_list": [],
            "empty_dict": {},
        },
        "tuple": (1, (2.0, "three"), None),
        "step": 12345,
    }
    got = roundtrip(obj, tmp_path)
    assert_same(got, obj)
    assert isinstance(got["tuple"], list) and isinstance(got["tuple"][1], list)


@pytest.mark.parametrize(
    "value",
    [2**63 - 1, 2**63, -(2**63) - 1, 2**64, 2**127 + 12345, -(2**200), 10**50, 0],
)
def test_big_ints(tmp_path, value):
    assert_same(roundtrip({"v": value, "l": [value]}, tmp_path), {"v": value, "l": [value]})


@pytest.mark.parametrize("bitgen", ["PCG64", "MT19937", "Philox", "SFC64"])
def test_rng_state_restores_stream(tmp_path, bitgen):
    rng = np.random.Generator(getattr(np.random, bitgen)(1))
    rng.standard_normal(17)
    rng.integers(0, 10, 3)  # leaves has_uint32/uinteger in a non-trivial state for some generators
    state = rng.bit_generator.state
    loaded = roundtrip({"rng": state}, tmp_path)["rng"]
    assert_same(loaded, state)
    restored = np.random.Generator(getattr(np.random, bitgen)(999))
    restored.bit_generator.state = loaded
    np.testing.assert_array_equal(restored.random(50), rng.random(50))
    np.testing.assert_array_equal(restored.integers(0, 2**40, 20), rng.integers(0, 2**40, 20))


def test_default_rng_state(tmp_path):
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    assert state["state"]["state"] > 2**64  # really a big int
    loaded = roundtrip(state, tmp_path)
    assert loaded == state
    r2 = np.random.default_rng(2)
    r2.bit_generator.state = loaded
    assert r2.random(10).tolist() == rng.random(10).tolist()


def test_awkward_keys(tmp_path):
    keys = [
        "a/b",
        "/lead",
        "trail/",
        "//",
        "conv1.weight",
        ".",
        "..",
        "...",
        ".hidden",
        "",
        "%",
        "%2F",
        "%%41",
        "a\x00b",
        " ",
        "ключ",
        "x" * 300,
    ]
    obj = {k: i for i, k in enumerate(keys)}
    obj["nested/dict"] = {"a/b": {"c.d": np.ones(2)}}
    got = roundtrip(obj, tmp_path)
    assert_same(got, obj)
    with h5py.File(tmp_path / "ckpt.h5", "r") as f:  # '.' stays readable in the file
        assert "conv1.weight" in f


def test_root_values(tmp_path):
    for obj in [None, 3, 2**100, "s", 1.5, True, np.arange(3), np.float32(2), [1, 2], (), {}]:
        assert_same(roundtrip(obj, tmp_path), obj)


class FakeTensor:
    def __init__(self, data):
        self.data = np.asarray(data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)


class NumpyOnly:
    def __init__(self, data):
        self.data = np.asarray(data)

    def numpy(self):
        return self.data


def test_tensor_like_saved_as_array(tmp_path):
    obj = {"w": FakeTensor(np.ones((2, 2), np.float32)), "b": NumpyOnly(np.arange(3))}
    got = roundtrip(obj, tmp_path)
    assert_same(got, {"w": np.ones((2, 2), np.float32), "b": np.arange(3)})


def test_tensors_load_back_as_tensors(tmp_path):
    """A Tensor (a state_dict value) loads back as a Tensor, as torch.load gives tensors; its dtype, shape,
    values and requires_grad survive. Plain arrays stay arrays."""
    weight = tg.nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    obj = {
        "w": weight,
        "sd": tg.nn.BatchNorm1d(2).state_dict(),
        "mask": tg.tensor([True, False]),
        "scalar": tg.tensor(2.5, dtype=tg.float64),
        "array": np.ones(2),
    }
    got = roundtrip(obj, tmp_path)
    assert type(got["w"]) is tg.Tensor and got["w"].requires_grad and got["w"].dtype == np.float32
    np.testing.assert_array_equal(got["w"].detach().numpy(), weight.detach().numpy())
    assert list(got["sd"]) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert all(type(v) is tg.Tensor and not v.requires_grad for v in got["sd"].values())
    assert got["sd"]["num_batches_tracked"].dtype == np.int64 and got["sd"]["num_batches_tracked"].shape == ()
    assert got["mask"].dtype == np.bool_ and got["mask"].tolist() == [True, False]
    assert got["scalar"].dtype == np.float64 and got["scalar"].item() == 2.5
    assert_same(got["array"], np.ones(2))


def test_int_keyed_dicts_round_trip(tmp_path):
    """An optimizer's state is keyed by parameter index (PyTorch's layout): int keys load back as ints."""
    obj = {"state": {0: {"step": 3}, 7: {}, -2: [1]}, "empty": {}, "names": {"0": "str key"}}
    assert_same(roundtrip(obj, tmp_path), obj)


def test_version_1_files_still_load(tmp_path):
    path = tmp_path / "v1.h5"
    save({"a": np.arange(3), "b": [1, "x"]}, path)
    with h5py.File(path, "a") as f:
        f.attrs[FORMAT_ATTR] = 1
    serialization._stamp(path)  # an edit on purpose: re-stamp the header's checksum
    assert_same(load(path), {"a": np.arange(3), "b": [1, "x"]})


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=json_like)
def test_hypothesis_roundtrip(tmp_path, obj):
    assert_same(roundtrip(obj, tmp_path), obj)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 4), max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_arrays(tmp_path, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    values = np.clip(rng.standard_normal(shape) * 50, -120, 120)
    if np.dtype(dtype).kind == "u":
        values = np.abs(values)
    arr = np.asarray(values).astype(dtype)
    assert_same(roundtrip({"a": arr, "l": [arr]}, tmp_path), {"a": arr, "l": [arr]})


# ----------------------------------------------------------------------------------------------------
# Unsupported values


@pytest.mark.parametrize(
    "obj, pattern",
    [
        ({"optimizer": {"state": [0, 1, 2, {1, 2}]}}, r"save: unsupported type set at 'optimizer/state/3'"),
        ({"a": {"b": object()}}, r"unsupported type object at 'a/b'"),
        ({"a": b"bytes"}, r"unsupported type bytes at 'a'"),
        ({"a": np.array(["x", "y"])}, r"unsupported array dtype <U1 at 'a'"),
        ({"a": np.array([None], dtype=object)}, r"unsupported array dtype object at 'a'"),
        ({"a": [np.datetime64("2020-01-01")]}, r"unsupported numpy scalar dtype .* at 'a/0'"),
        ({"x": {3: 1, "a": 2}}, r"dict key 3 \(int\) at 'x' is not a str \(a dict's keys must be all str or all int\)"),
        ({"x": {True: 1}}, r"dict key True \(bool\) at 'x' is not a str"),
        ({1.5: 1}, r"dict key 1.5 \(float\) at the root is not a str"),
        (frozenset(), r"unsupported type frozenset at the root"),
    ],
)
def test_unsupported(tmp_path, obj, pattern):
    path = tmp_path / "ckpt.h5"
    save({"old": 1}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=pattern):
        save(obj, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.h5"]


def test_circular_reference(tmp_path):
    a: list = [1]
    a.append(a)
    with pytest.raises(ValueError, match="circular reference at '1'"):
        save(a, tmp_path / "c.h5")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------------------
# Atomic writes


@pytest.mark.parametrize("fail_on_call", [1, 3, 6])
def test_crash_during_save_keeps_old_checkpoint(tmp_path, monkeypatch, fail_on_call):
    path = tmp_path / "model.h5"
    old = {"w": np.arange(5.0), "step": 1}
    save(old, path)
    before = path.read_bytes()

    real = h5py.Group.create_dataset
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_on_call:
            raise RuntimeError("simulated crash")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    new = {"w": np.ones(1000), "step": 2, "more": [np.zeros(3), 4, 5.0, "x"]}
    with pytest.raises(RuntimeError, match="simulated crash"):
        save(new, path)
    assert calls["n"] == fail_on_call
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.h5"]
    assert_same(load(path), old)

    monkeypatch.setattr(h5py.Group, "create_dataset", real)
    save(new, path)
    assert_same(load(path), new)
    assert sorted(os.listdir(tmp_path)) == ["model.h5"]


def test_crash_at_replace(tmp_path, monkeypatch):
    path = tmp_path / "model.h5"
    save({"v": 1}, path)
    before = path.read_bytes()

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save({"v": 2}, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.h5"]


def test_crash_on_first_save_leaves_nothing(tmp_path, monkeypatch):
    def flaky(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    with pytest.raises(OSError, match="disk full"):
        save({"a": 1}, tmp_path / "new.h5")
    assert os.listdir(tmp_path) == []


def test_save_overwrites_and_keeps_mode(tmp_path):
    path = tmp_path / "m.h5"
    save({"a": 1}, path)
    os.chmod(path, 0o640)
    save({"a": 2}, str(path))
    assert load(path) == {"a": 2}
    assert os.stat(path).st_mode & 0o777 == 0o640


# ----------------------------------------------------------------------------------------------------
# Load errors


def test_load_missing(tmp_path):
    with pytest.raises(CheckpointError, match="nope.h5"):
        load(tmp_path / "nope.h5")


def test_load_text_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5\n" * 100)
    with pytest.raises(CheckpointError, match=r"notes\.h5: not a valid HDF5 file \(truncated or foreign\?\)"):
        load(path)


def test_load_truncated(tmp_path):
    path = tmp_path / "cut.h5"
    save({"w": np.arange(10000.0), "b": [np.ones(100)] * 3}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.h5: not a valid HDF5 file"):
        load(path)


def test_load_foreign_hdf5(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.ones(3))
    with pytest.raises(CheckpointError, match=r"foreign\.h5: not a tinygrad_cnn checkpoint"):
        load(path)


def test_load_newer_format(tmp_path):
    path = tmp_path / "future.h5"
    save({"a": 1}, path)
    with h5py.File(path, "a") as f:
        f.attrs[FORMAT_ATTR] = serialization.FORMAT_VERSION + 1
    serialization._stamp(path)  # an edit on purpose: re-stamp the header's checksum
    with pytest.raises(
        CheckpointError, match=rf"future\.h5: checkpoint format {serialization.FORMAT_VERSION + 1} is newer"
    ):
        load(path)


def test_load_corrupt_type_tag(tmp_path):
    path = tmp_path / "odd.h5"
    save({"a": 1}, path)
    with h5py.File(path, "a") as f:
        f["a"].attrs["tgc_type"] = "mystery"
    serialization._stamp(path)  # an edit on purpose: re-stamp the header's checksum
    with pytest.raises(CheckpointError, match=r"odd\.h5.*unknown type 'mystery'"):
        load(path)


def test_checkpoint_error_is_value_error():
    assert issubclass(CheckpointError, ValueError)


# ----------------------------------------------------------------------------------------------------
# A full disk

FULL_DISK = r"""
import errno, os, sys
import numpy as np
import tinygrad_cnn as tg
directory = sys.argv[1]
if sys.argv[2] == "fsize":  # no tmpfs: a file-size limit makes writes fail the same way (EFBIG)
    import resource
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
path = os.path.join(directory, "ckpt.h5")
tg.save({"step": 1, "w": np.ones(1000)}, path)
try:
    # 3.3 MB in 800 arrays, like a model's state: the disk fills while HDF5 writes metadata (before
    # the in-memory build, that crashed the process with SIGSEGV after "Slist already enabled?" errors)
    tg.save({"step": 2, "layers": [{"w": np.ones(1000), "b": np.ones(10)} for _ in range(400)]}, path)
except OSError as e:
    print("OSError", e.errno in (errno.ENOSPC, errno.EFBIG), path in str(e), e)
print("old", tg.load(path)["step"], sorted(os.listdir(directory)))
"""


def _can_mount_tmpfs() -> bool:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


def test_full_disk_raises_oserror_and_keeps_the_old_checkpoint(tmp_path):
    """On a 1 MiB tmpfs (in a private mount namespace) where possible, else under RLIMIT_FSIZE: save
    raises OSError naming the path, the old checkpoint survives, no temporary file is left, and the
    process exits cleanly (no crash at exit, no 'Exception ignored' noise from libhdf5)."""
    import subprocess
    import sys

    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    disk = tmp_path / "disk"
    disk.mkdir()
    if _can_mount_tmpfs():
        mount = f"mount -t tmpfs -o size=1m tmpfs {disk} && exec {sys.executable} {script} {disk} tmpfs"
        cmd = ["unshare", "-rm", "sh", "-c", mount]
    else:
        cmd = [sys.executable, str(script), str(disk), "fsize"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("OSError True True"), proc.stdout
    assert lines[1] == "old 1 ['ckpt.h5']", proc.stdout
    assert "Exception ignored" not in proc.stderr and "HDF5-DIAG" not in proc.stderr, proc.stderr[-3000:]


def test_write_error_is_an_oserror_naming_the_path(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "model.h5"
    save({"v": 1}, path)
    real_write = os.write

    def full(fd, data):
        real_write(fd, bytes(data)[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(serialization.os, "write", full)
    with pytest.raises(OSError, match="No space left on device") as info:
        save({"v": np.zeros(10_000)}, path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    monkeypatch.undo()
    assert load(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["model.h5"]


def test_stale_temporaries_of_killed_saves_are_removed(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "model.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = serialization._HOST
    stale = tmp_path / f"model.h5.{dead_pid}@{host}.abc123.tmp"  # its writer is gone
    live = tmp_path / f"model.h5.{os.getppid()}@{host}.def456.tmp"  # a writer that is still running
    other_host = tmp_path / f"model.h5.{dead_pid}@elsewhere{host}.ghi789.tmp"  # may be alive on its host
    unrelated = tmp_path / "notes.h5.1.tmp"
    for p in (stale, live, other_host, unrelated):
        p.write_bytes(b"partial")
    save({"v": 1}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(["model.h5", live.name, other_host.name, unrelated.name])


def test_deep_structures_round_trip_up_to_the_limit(tmp_path):
    deep: list = []
    for _ in range(serialization.MAX_DEPTH - 2):
        deep = [deep]
    save({"d": deep}, tmp_path / "deep.h5")  # MAX_DEPTH containers in all, the dict included
    got = load(tmp_path / "deep.h5")["d"]
    depth = 0
    while got:
        (got,) = got
        depth += 1
    assert depth == serialization.MAX_DEPTH - 2
    with pytest.raises(ValueError, match="nested more than 1000 levels"):
        save({"d": [deep]}, tmp_path / "deeper.h5")
