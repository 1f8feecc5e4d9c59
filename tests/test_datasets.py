"""Tests for tinygrad_cnn.datasets: IDX reading, MNIST loading from every source, DataLoader."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_cnn import datasets
from tinygrad_cnn.datasets import DataLoader, DatasetError, load_mnist, read_idx

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

IDX_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """Encode ``arr`` as an IDX file with the given type code."""
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_CODES[code]).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def small_mnist(n_train: int = 7, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y_tr = rng.integers(0, 10, n_train).astype(np.int64)
    x_te = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_te = rng.integers(0, 10, n_test).astype(np.int64)
    return x_tr, y_tr, x_te, y_te


def write_idx_dir(directory: Path, arrays, gz=(False, True, True, False)) -> None:
    for name, arr, g in zip(NAMES, arrays, gz, strict=True):
        write(directory / (name + (".gz" if g else "")), idx_bytes(arr), gz=g)


def check_result(result, arrays) -> None:
    (x_tr, y_tr), (x_te, y_te) = result
    for got, want in zip((x_tr, y_tr, x_te, y_te), arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    assert x_tr.dtype == np.uint8 and x_te.dtype == np.uint8
    assert y_tr.dtype == np.int64 and y_te.dtype == np.int64
    assert x_tr.shape[1:] == (28, 28) and y_tr.ndim == 1


# ----------------------------------------------------------------------------------------------------
# Bundled MNIST


def test_bundled_mnist():
    (x_tr, y_tr), (x_te, y_te) = load_mnist()
    assert x_tr.shape == (60000, 28, 28) and x_tr.dtype == np.uint8
    assert x_te.shape == (10000, 28, 28) and x_te.dtype == np.uint8
    assert y_tr.shape == (60000,) and y_tr.dtype == np.int64
    assert y_te.shape == (10000,) and y_te.dtype == np.int64
    assert np.bincount(y_tr, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_te, minlength=10).tolist() == TEST_COUNTS
    assert x_tr.max() == 255 and x_tr.min() == 0
    assert x_tr.flags.writeable and x_tr.flags.c_contiguous


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch):
    """A copy of the bundled files in tmp_path, which load_mnist() then uses."""
    d = tmp_path / "mnist"
    d.mkdir()
    for name in NAMES:
        shutil.copy(datasets._BUNDLED_DIR / (name + ".gz"), d / (name + ".gz"))
    monkeypatch.setattr(datasets, "_BUNDLED_DIR", d)
    return d


def test_md5_detects_damaged_copy(bundled_copy):
    target = bundled_copy / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(target.read_bytes()))
    data[100] = (data[100] + 1) % 10  # still a valid label: only the MD5 can notice
    write(target, bytes(data), gz=True)
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz: MD5 mismatch.*damaged"):
        load_mnist()
    # Without verification the (structurally valid) data loads, with the changed label.
    (_, _), (_, y_te) = load_mnist(verify=False)
    assert y_te[100 - 8] == data[100]


def test_bundled_file_missing(bundled_copy):
    (bundled_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz.*missing"):
        load_mnist()


# ----------------------------------------------------------------------------------------------------
# read_idx


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    code=st.sampled_from(sorted(IDX_CODES)),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    gz=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_read_idx_roundtrip(tmp_path, code, shape, gz, seed):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(IDX_CODES[code]).newbyteorder("=")
    if dtype.kind == "f":
        arr = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)
    # Same name whether gzipped or not: compression is detected from the content.
    path = write(tmp_path / "data.idx", idx_bytes(arr, code), gz=gz)
    got = read_idx(path)
    assert got.dtype == dtype and got.dtype.isnative
    assert got.shape == tuple(shape)
    np.testing.assert_array_equal(got, arr)


def test_read_idx_expected_magic_ok(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    path = write(tmp_path / "labels.gz", idx_bytes(labels), gz=True)
    np.testing.assert_array_equal(read_idx(path, expected_magic=0x00000801), labels)


def test_read_idx_wrong_magic(tmp_path):
    path = write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros(3, np.uint8)), gz=True)
    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte\.gz: bad magic 0x00000801, "
        r"expected 0x00000803 \(images\)",
    ):
        read_idx(path, expected_magic=0x00000803)


@pytest.mark.parametrize(
    "data, pattern",
    [
        (b"\x01\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x00", "first two bytes must be zero"),
        (b"\x00\x00\x0a\x01" + (1).to_bytes(4, "big") + b"\x00", "unsupported IDX data type code 0x0A"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00", "too short"),
        (b"", "too short"),
        (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), r"header needs 16 bytes, file has 8"),
    ],
)
def test_read_idx_bad_headers(tmp_path, data, pattern):
    path = write(tmp_path / "bad.idx", data)
    with pytest.raises(DatasetError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated(tmp_path, gz):
    data = idx_bytes(np.zeros((60, 28, 28), np.uint8))
    path = write(tmp_path / "imgs", data[: 1234 + 16], gz=gz)
    with pytest.raises(
        DatasetError,
        match=r"truncated: header says 60x28x28 \(unsigned byte\) = 47040 "
        r"bytes of data, file has 1234",
    ):
        read_idx(path)


def test_read_idx_truncated_multibyte(tmp_path):
    path = write(tmp_path / "ints", idx_bytes(np.arange(6, dtype=np.int32).reshape(2, 3), 0x0C)[:-1])
    with pytest.raises(DatasetError, match=r"truncated: header says 2x3 \(int32\) = 24 bytes"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_trailing_bytes(tmp_path, gz):
    path = write(tmp_path / "labels", idx_bytes(np.arange(5, dtype=np.uint8)) + b"xyz", gz=gz)
    pattern = r"3 trailing bytes: header says 5 .* = 5 bytes of data, file has 8"
    with pytest.raises(DatasetError, match=pattern):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32), 0x0C))
    path = write(tmp_path / "x.gz", blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="gzip"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "nope")


# ----------------------------------------------------------------------------------------------------
# Directory of IDX files


def test_directory_loader_roundtrip(tmp_path):
    arrays = small_mnist()
    write_idx_dir(tmp_path, arrays)
    check_result(load_mnist(tmp_path), arrays)
    check_result(load_mnist(str(tmp_path)), arrays)


def test_directory_loader_missing_file(tmp_path):
    write_idx_dir(tmp_path, small_mnist())
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(
        DatasetError,
        match=r"missing MNIST IDX file\(s\): train-labels-idx1-ubyte\[\.gz\], "
        r"t10k-images-idx3-ubyte\[\.gz\]",
    ):
        load_mnist(tmp_path)


def test_directory_loader_count_mismatch(tmp_path):
    x_tr, y_tr, x_te, y_te = small_mnist()
    write_idx_dir(tmp_path, (x_tr, y_tr[:-1], x_te, y_te))
    with pytest.raises(DatasetError, match="has 7 images but .*train-labels.* has 6 labels"):
        load_mnist(tmp_path)


def test_directory_loader_bad_label_and_shape(tmp_path):
    x_tr, y_tr, x_te, y_te = small_mnist()
    y_bad = y_te.copy()
    y_bad[0] = 10
    write_idx_dir(tmp_path, (x_tr, y_tr, x_te, y_bad))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.*0\.\.9"):
        load_mnist(tmp_path)
    write_idx_dir(tmp_path, (x_tr[:, :27], y_tr, x_te, y_te))
    with pytest.raises(DatasetError, match=r"train-images.*\(7, 27, 28\)"):
        load_mnist(tmp_path)


def test_directory_loader_swapped_files(tmp_path):
    x_tr, y_tr, x_te, y_te = small_mnist()
    write_idx_dir(tmp_path, (y_tr, x_tr, x_te, y_te))
    with pytest.raises(DatasetError, match="bad magic 0x00000801, expected 0x00000803"):
        load_mnist(tmp_path)


# ----------------------------------------------------------------------------------------------------
# HDF5 and npz


def write_h5(path: Path, **arrays) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return path


def test_h5_float_unit_range(tmp_path):
    arrays = small_mnist()
    x_tr, y_tr, x_te, y_te = arrays
    path = write_h5(
        tmp_path / "MNISTdata.hdf5",
        x_train=(x_tr.reshape(-1, 784) / 255.0).astype(np.float32),
        y_train=y_tr.reshape(-1, 1).astype(np.uint8),
        x_test=(x_te.reshape(-1, 784) / 255.0).astype(np.float32),
        y_test=y_te.reshape(-1, 1).astype(np.float64),
    )
    check_result(load_mnist(path), arrays)


def test_h5_float_byte_range_and_uint8(tmp_path):
    arrays = small_mnist()
    x_tr, y_tr, x_te, y_te = arrays
    x_tr = x_tr.copy()
    x_tr[0, 0, 0] = 255  # so max > 1
    arrays = (x_tr, y_tr, x_te, y_te)
    path = write_h5(
        tmp_path / "m.h5",
        x_train=x_tr.reshape(-1, 784) + np.where(x_tr.reshape(-1, 784) < 255, 0.3, -0.3),  # rounds back
        y_train=y_tr,
        x_test=x_te,  # uint8 (N, 28, 28)
        y_test=y_te.astype(np.int32),
    )
    check_result(load_mnist(path), arrays)


def test_npz_keras_layout(tmp_path):
    arrays = small_mnist()
    path = tmp_path / "mnist.npz"
    np.savez(path, **dict(zip(["x_train", "y_train", "x_test", "y_test"], arrays, strict=True)))
    check_result(load_mnist(path), arrays)


def _good(n_train=4, n_test=3):
    x_tr, y_tr, x_te, y_te = small_mnist(n_train, n_test)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
@pytest.mark.parametrize(
    "key, value, pattern",
    [
        (
            "x_train",
            np.zeros((4, 783), np.float32),
            r"'x_train'.*\(N, 784\) or \(N, 28, 28\), got \(4, 783\)",
        ),
        ("x_test", np.zeros((3, 28, 27), np.uint8), r"'x_test'.*got \(3, 28, 27\)"),
        ("y_train", np.array([0, 1, 2, 10]), r"'y_train'.*0\.\.9"),
        ("y_test", np.array([0, -1, 2]), r"'y_test'.*0\.\.9"),
        ("y_test", np.array([0.0, 1.5, 2.0]), r"'y_test'.*non-integer"),
        ("y_test", np.array([0.0, np.nan, 2.0]), r"'y_test'.*NaN"),
        ("y_train", np.zeros((4, 2)), r"'y_train'.*\(N,\) or \(N, 1\), got \(4, 2\)"),
        ("y_train", np.array([0, 1, 2]), r"'x_train' has 4 images but .*'y_train' has 3 labels"),
        ("x_train", np.full((4, 784), np.nan, np.float32), r"'x_train'.*NaN"),
        ("x_train", np.full((4, 784), -0.5), r"'x_train'.*\[0, 1\] or \[0, 255\]"),
        ("x_train", np.full((4, 784), 256.0), r"'x_train'.*\[0, 1\] or \[0, 255\]"),
        ("x_train", np.full((4, 784), 300, np.int64), r"'x_train'.*\[0, 255\]"),
        ("x_train", np.zeros((4, 784), bool), r"'x_train'.*integer or float"),
    ],
)
def test_h5_npz_validation(tmp_path, suffix, key, value, pattern):
    arrays = _good()
    arrays[key] = value
    path = tmp_path / ("data" + suffix)
    if suffix == ".h5":
        write_h5(path, **arrays)
    else:
        np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=pattern) as info:
        load_mnist(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_h5_npz_missing_key(tmp_path, suffix):
    arrays = _good()
    del arrays["y_test"]
    path = tmp_path / ("data" + suffix)
    if suffix == ".h5":
        write_h5(path, **arrays)
    else:
        np.savez(path, **arrays)
    with pytest.raises(DatasetError, match="missing key 'y_test'"):
        load_mnist(path)


@pytest.mark.parametrize("name", ["fake.h5", "fake.hdf5", "fake.npz"])
def test_not_a_container(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello, not data\n")
    with pytest.raises(DatasetError, match=name):
        load_mnist(path)


def test_unknown_suffix_and_missing_path(tmp_path):
    csv = tmp_path / "mnist.csv"
    csv.write_text("1,2,3\n")
    with pytest.raises(DatasetError, match=r"mnist\.csv: unsupported MNIST source"):
        load_mnist(csv)
    with pytest.raises(DatasetError, match=r"nothere\.h5: no such file or directory"):
        load_mnist(tmp_path / "nothere.h5")


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)


# ----------------------------------------------------------------------------------------------------
# DataLoader


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 40),
    batch_size=st.integers(1, 12),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_dataloader_covers_each_index_once(n, batch_size, shuffle, drop_last, seed):
    x = np.arange(n)
    y = np.arange(n) * 10
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        for xb, yb in batches:
            assert 0 < len(xb) <= batch_size
            np.testing.assert_array_equal(yb, xb * 10)  # arrays stay aligned
        seen = np.concatenate([xb for xb, _ in batches]) if batches else np.array([], int)
        if drop_last:
            assert len(loader) == n // batch_size
            assert all(len(xb) == batch_size for xb, _ in batches)
            assert len(seen) == n - n % batch_size and len(set(seen.tolist())) == len(seen)
        else:
            assert len(loader) == -(-n // batch_size)
            assert sorted(seen.tolist()) == list(range(n))
        if not shuffle:
            np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_dataloader_shuffle_determinism():
    x = np.arange(100)
    a = DataLoader(x, batch_size=7, shuffle=True, seed=3)
    b = DataLoader(x, batch_size=7, shuffle=True, seed=3)
    orders_a = [np.concatenate([xb for (xb,) in a]) for _ in range(3)]
    orders_b = [np.concatenate([xb for (xb,) in b]) for _ in range(3)]
    for e, (oa, ob) in enumerate(zip(orders_a, orders_b, strict=True)):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(oa, np.random.default_rng([3, e]).permutation(100))
    assert not np.array_equal(orders_a[0], orders_a[1])
    c = DataLoader(x, batch_size=7, shuffle=True, seed=4)
    assert not np.array_equal(np.concatenate([xb for (xb,) in c]), orders_a[0])


def test_dataloader_epoch_counter_and_resume():
    x = np.arange(50)
    ref = DataLoader(x, batch_size=8, shuffle=True, seed=11)
    assert ref.epoch == 0
    ref_orders = []
    for e in range(4):
        ref_orders.append(np.concatenate([xb for (xb,) in ref]))
        assert ref.epoch == e + 1
    # Interrupted run: two epochs, then "checkpoint".
    run = DataLoader(x, batch_size=8, shuffle=True, seed=11)
    for _ in range(2):
        list(run)
    state = run.state_dict()
    assert state == {"epoch": 2, "seed": 11}
    resumed = DataLoader(x, batch_size=8, shuffle=True, seed=0)
    resumed.load_state_dict(state)
    for e in (2, 3):
        np.testing.assert_array_equal(np.concatenate([xb for (xb,) in resumed]), ref_orders[e])
    resumed.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate([xb for (xb,) in resumed]), ref_orders[1])


def test_dataloader_epoch_starts_on_iter():
    loader = DataLoader(np.arange(10), batch_size=3)
    it = iter(loader)
    assert loader.epoch == 1
    next(it)
    iter(loader)  # abandoned iteration still counts as a started epoch
    assert loader.epoch == 2


def test_dataloader_batches_are_views_or_copies():
    x = np.arange(20.0).reshape(10, 2)
    (xb,) = next(iter(DataLoader(x, batch_size=4)))
    assert np.shares_memory(xb, x) and xb.shape == (4, 2)
    (xb,) = next(iter(DataLoader(x, batch_size=4, shuffle=True)))
    assert not np.shares_memory(xb, x) and xb.shape == (4, 2)


def test_dataloader_errors():
    with pytest.raises(ValueError, match=r"\(5,\), \(4, 2\)"):
        DataLoader(np.zeros(5), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least one"):
        DataLoader()
    for bad in (0, -1, 2.5, True, "8", None):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(np.zeros(5), batch_size=bad)
    assert len(DataLoader(np.zeros(5), batch_size=np.int64(2))) == 3
    with pytest.raises(ValueError, match="seed"):
        DataLoader(np.zeros(5), seed=-1)
    with pytest.raises(ValueError):
        DataLoader(np.zeros(5)).load_state_dict({"epoch": 1})


def test_symlinked_data_directory_and_files_load(tmp_path):
    """Symlinks the user made (a data directory on another disk, files linked into it) are followed;
    only what they point at must be a regular file (tests/test_hostile_files.py: FIFOs, devices, loops)."""
    arrays = small_mnist()
    real = tmp_path / "disk" / "mnist"
    real.mkdir(parents=True)
    write_idx_dir(real, arrays)
    linked_dir = tmp_path / "data"
    linked_dir.symlink_to(real)
    check_result(load_mnist(linked_dir), arrays)
    files = tmp_path / "files"
    files.mkdir()
    for entry in real.iterdir():
        (files / entry.name).symlink_to(entry)
    check_result(load_mnist(files), arrays)
