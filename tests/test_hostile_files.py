"""Hostile files: crafted checkpoints and data sets must be refused with a clear error naming the file,
within bounded memory and time.

Every file is crafted here (h5py, gzip, zipfile, numpy); nothing binary is committed. The loads run in one
child process under an address-space limit (``RLIMIT_AS``: what the interpreter uses after its imports plus
512 MiB, while the bombs below would take 1-1.6 GB) and a time limit, so a loader that allocates what a file
declares dies with MemoryError and one that blocks (a FIFO) or loops is killed, failing the test that
started it rather than hanging the suite.
"""

from __future__ import annotations

import gzip
import json
import os
import select
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import serialization
from tinygrad_cnn.safe_io import MAX_INFLATION
from tinygrad_cnn.serialization import FORMAT_ATTR

MIB = 1 << 20
HEADROOM = 512 * MIB  # address space the child may add to what it has after importing everything
BOMB = 1 << 30  # what each bomb declares or inflates to

# ----------------------------------------------------------------------------------------------------
# Crafting


def checkpoint(path: Path, build) -> Path:
    """A file that looks like a tinygrad_cnn checkpoint (marker, types, a valid header: anyone can
    recompute the checksum), whose content ``build(root)`` makes hostile."""
    with h5py.File(path, "w", track_order=True, userblock_size=512) as f:
        f.attrs[FORMAT_ATTR] = serialization.FORMAT_VERSION
        f.attrs["tgc_type"] = "dict"
        build(f)
    serialization._stamp(path)
    return path


def ndarray(group, name, **kwargs):
    ds = group.create_dataset(name, **kwargs)
    ds.attrs["tgc_type"] = "ndarray"
    return ds


def zero_deflate(n_mib: int) -> bytes:
    """A deflate stream of ``n_mib`` MiB of zeros, made without compressing them all: one flushed MiB,
    repeated (each copy only refers back to zeros), then an empty final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = c.compress(bytes(MIB)) + c.flush(zlib.Z_SYNC_FLUSH)
    return segment * n_mib + b"\x03\x00"


def gzip_of_zeros(prefix: bytes, n_mib: int) -> bytes:
    """gzip member whose data is ``prefix`` then ``n_mib`` MiB of zeros (trailer CRC not checked by a
    reader that stops early, which is what a careful reader does)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_SYNC_FLUSH)
    return (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        + head
        + zero_deflate(n_mib)
        + struct.pack("<II", 0, (len(prefix) + n_mib * MIB) & 0xFFFFFFFF)
    )


def idx_header(dims, code=0x08) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def npy_header(shape, dtype="<f8") -> bytes:
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    text = repr(header).encode("latin1")
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def npz(path: Path, members: dict[str, bytes], bomb: tuple[str, bytes, int] | None = None) -> Path:
    """An .npz archive (a zip of .npy members) written byte by byte: ``members`` stored as given, and
    ``bomb`` = (name, deflate stream, inflated size) with that stream as is (zipfile cannot write one)."""
    entries = [(name, 0, data, len(data), zlib.crc32(data)) for name, data in members.items()]
    if bomb is not None:
        entries.append((bomb[0], 8, bomb[1], bomb[2], 0))
    out, central = bytearray(), bytearray()
    for name, method, data, size, crc in entries:
        fname = (name + ".npy").encode()
        fields = (20, 0, method, 0, 0, crc, len(data), size, len(fname), 0)
        central += struct.pack("<IH", 0x02014B50, 20) + struct.pack("<HHHHHIIIHH", *fields)
        central += struct.pack("<HHHII", 0, 0, 0, 0, len(out)) + fname
        out += struct.pack("<I", 0x04034B50) + struct.pack("<HHHHHIIIHH", *fields) + fname + data
    n = len(entries)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


def mnist_h5(path: Path, hostile_key: str, make) -> Path:
    """An .h5 MNIST file whose ``hostile_key`` is made by ``make(f, key)``; the other keys are fine."""
    with h5py.File(path, "w") as f:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            if key == hostile_key:
                make(f, key)
            elif key.startswith("x"):
                f[key] = np.zeros((2, 28, 28), np.uint8)
            else:
                f[key] = np.zeros(2, np.int64)
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# ----------------------------------------------------------------------------------------------------
# The cases: (id, loader, path, what the message must say). Built once per module in a temporary dir.


def _cases(d: Path) -> list[tuple[str, str, Path, str]]:
    other = d / "other.h5"
    tg.save({"w": np.arange(4.0)}, other)
    secret = d / "secret.txt"
    secret.write_text("the content of a private file\n")
    pipe = fifo(d / "pipe")
    cases = []

    def ck(name, build, expect):
        cases.append((name, "tg.load", checkpoint(d / f"{name}.h5", build), expect))

    ck(
        "external_storage",
        lambda f: ndarray(f, "w", shape=(30,), dtype="u1", external=[(str(secret), 0, h5py.h5f.UNLIMITED)]),
        "external files",
    )
    ck("soft_link", lambda f: (ndarray(f, "a", data=np.zeros(3)), f.__setitem__("b", h5py.SoftLink("/a"))), "soft link")
    ck("external_link", lambda f: f.__setitem__("w", h5py.ExternalLink(str(other), "/w")), "external link")

    def intermediate(f):  # the last component is a plain dataset, an earlier one an external link
        f["model"] = h5py.ExternalLink(str(other), "/")

    ck("intermediate_external_link", intermediate, "'/model' is an external link")
    ck("external_link_to_fifo", lambda f: f.__setitem__("w", h5py.ExternalLink(str(pipe), "/w")), "external link")

    def virtual(f):
        layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "w", shape=(4,))
        f.create_virtual_dataset("w", layout).attrs["tgc_type"] = "ndarray"

    ck("virtual_dataset", virtual, "virtual dataset")
    ck(
        "fill_value_bomb",
        lambda f: ndarray(f, "w", shape=(BOMB // 8,), dtype="f8", fillvalue=1.0),
        "declares 1073741824 bytes",
    )
    ck("small_fill_value", lambda f: ndarray(f, "w", shape=(100,), dtype="u1", fillvalue=1), "fill value")

    def compression_bomb(f):
        ds = ndarray(f, "w", shape=(BOMB // MIB, MIB), dtype="u1", chunks=(1, MIB), compression="gzip")
        chunk = zlib.compress(bytes(MIB), 9)
        for i in range(BOMB // MIB):
            ds.id.write_direct_chunk((i, 0), chunk)

    ck("compression_bomb", compression_bomb, "chunked layout")
    for kind, dtype in [
        ("string", h5py.string_dtype()),
        ("vlen", h5py.vlen_dtype(np.int64)),
        ("compound", np.dtype([("a", "<i4"), ("b", "<f8")])),
        ("object_reference", h5py.ref_dtype),
        ("fixed_string", np.dtype("S8")),
    ]:
        ck(f"{kind}_dtype", lambda f, dt=dtype: ndarray(f, "w", shape=(3,), dtype=dt), "only arrays of numbers")

    def hard_link_cycle(f):
        g = f.create_group("g")
        g.attrs["tgc_type"] = "dict"
        g["again"] = g

    ck("hard_link_cycle", hard_link_cycle, "linked more than once")

    def too_deep(f):
        g = f
        for _ in range(serialization.MAX_DEPTH + 2):
            g = g.create_group("d")
            g.attrs["tgc_type"] = "dict"

    ck("nested_too_deep", too_deep, "nested more than")

    def int_keys(name):
        def build(f):
            g = f.create_group("state")
            g.attrs["tgc_type"] = "intdict"
            g.create_group(name).attrs["tgc_type"] = "none"

        return build

    for bad in ["01", "x", "1e3", " 1", "-0", "9" * 40]:
        ck(f"int_key_{bad.strip()[:6]}", int_keys(bad), "has a member that is not an integer")

    def int_tensor_that_requires_grad(f):
        f.create_dataset("w", data=np.arange(3)).attrs["tgc_type"] = "tensor_requires_grad"

    ck("int_tensor_requires_grad", int_tensor_that_requires_grad, "requires grad but holds int64 data")
    ck("unknown_type", lambda f: f.create_dataset("w", data=1).attrs.__setitem__("tgc_type", "pickle"), "unknown type")
    ck("huge_attribute", lambda f: f.attrs.__setitem__("tgc_type", "x" * 100_000), "attribute 'tgc_type'")
    cases.append(("fifo", "tg.load", fifo(d / "ckpt_fifo.h5"), "FIFO"))
    dev = d / "dev_zero.h5"
    dev.symlink_to("/dev/zero")
    cases.append(("device", "tg.load", dev, "character device"))

    # ---- data sets: load_mnist on .h5 / .npz / IDX directories, read_idx
    def h5(name, make, expect, key="x_train"):
        cases.append((name, "load_mnist", mnist_h5(d / f"{name}.h5", key, make), expect))

    h5(
        "h5_external_storage",
        lambda f, k: f.create_dataset(k, shape=(30,), dtype="u1", external=[(str(secret), 0, 30)]),
        "external files",
    )
    h5("h5_external_link", lambda f, k: f.__setitem__(k, h5py.ExternalLink(str(other), "/w")), "external link")
    h5("h5_soft_link", lambda f, k: f.__setitem__(k, h5py.SoftLink("/x_test")), "soft link")
    h5(
        "h5_fill_value_bomb",
        lambda f, k: f.create_dataset(k, shape=(BOMB // 784, 28, 28), dtype="u1", fillvalue=7),
        "fill value",
    )

    def h5_chunk_bomb(f, k):
        ds = f.create_dataset(k, shape=(BOMB // 784, 28, 28), dtype="u1", chunks=(1337, 28, 28), compression="gzip")
        chunk = zlib.compress(bytes(1337 * 784), 9)
        for i in range(ds.shape[0] // 1337):
            ds.id.write_direct_chunk((i * 1337, 0, 0), chunk)

    h5("h5_compression_bomb", h5_chunk_bomb, f"over {MAX_INFLATION}x inflation")
    h5(
        "h5_vlen_dtype",
        lambda f, k: f.create_dataset(k, shape=(3,), dtype=h5py.vlen_dtype(np.uint8)),
        "only arrays of numbers",
    )
    h5("h5_string_dtype", lambda f, k: f.create_dataset(k, data=np.array([b"abc"] * 3)), "only arrays of numbers")

    def h5_virtual(f, k):
        layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "w", shape=(4,))
        f.create_virtual_dataset(k, layout)

    h5("h5_virtual_dataset", h5_virtual, "virtual dataset")
    small = {
        "y_train": npy_header((2,), "<i8") + bytes(16),
        "x_test": npy_header((2, 28, 28), "|u1") + bytes(1568),
        "y_test": npy_header((2,), "<i8") + bytes(16),
    }
    cases.append(
        (
            "npz_lying_header",
            "load_mnist",
            npz(d / "lying.npz", {"x_train": npy_header((10**12,), "|u1") + bytes(64), **small}),
            "declares 1000000000000",
        )
    )
    cases.append(
        (
            "npz_object_dtype",
            "load_mnist",
            npz(d / "object.npz", {"x_train": npy_header((3,), "|O") + bytes(24), **small}),
            "only arrays of numbers",
        )
    )
    bomb_stream = npy_header((BOMB,), "|u1")  # the header, then zeros: honest sizes, 1000x inflation
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = c.compress(bomb_stream) + c.flush(zlib.Z_SYNC_FLUSH) + zero_deflate(BOMB // MIB)
    bomb = ("x_train", stream, len(bomb_stream) + BOMB)
    bomb_npz = npz(d / "bomb.npz", small, bomb=bomb)
    cases.append(("npz_deflate_bomb", "load_mnist", bomb_npz, f"over {MAX_INFLATION}x"))

    one_image = idx_header((1, 28, 28))
    idx_dir = d / "idx_bomb"
    idx_dir.mkdir()
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip_of_zeros(one_image, 1500))  # the file
    cases.append(
        ("idx_gzip_bomb_header_says_one_image", "read_idx", idx_dir / "train-images-idx3-ubyte.gz", "trailing bytes")
    )
    honest = d / "honest_bomb-idx3-ubyte.gz"
    honest.write_bytes(gzip_of_zeros(idx_header((BOMB // 784, 28, 28)), BOMB // MIB))
    cases.append(("idx_gzip_bomb_honest_header", "read_idx", honest, f"more than {MAX_INFLATION}x"))
    lying = d / "lying-idx3-ubyte"
    lying.write_bytes(idx_header((10**9, 28, 28)) + bytes(784))
    cases.append(("idx_lying_header", "read_idx", lying, "truncated"))
    lying_gz = d / "lying-idx3-ubyte.gz"
    lying_gz.write_bytes(gzip.compress(idx_header((10**9, 28, 28)) + bytes(784)))
    cases.append(("idx_gzip_lying_header", "read_idx", lying_gz, "truncated"))

    # symlinked data dirs: the IDX files of a directory point at a FIFO, a device, a loop
    for name, target in [("fifo", pipe), ("device", Path("/dev/zero")), ("loop", None)]:
        data_dir = d / f"data_{name}"
        data_dir.mkdir()
        link = data_dir / "train-images-idx3-ubyte"
        link.symlink_to(target if target is not None else link)
        for other_name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            (data_dir / other_name).write_bytes(idx_header((0,) if "labels" in other_name else (0, 28, 28)))
        expect = {"fifo": "FIFO", "device": "character device", "loop": "train-images-idx3-ubyte"}[name]
        cases.append((f"data_dir_symlink_to_{name}", "load_mnist", data_dir, expect))
    return cases


NAMES = [
    "external_storage",
    "soft_link",
    "external_link",
    "intermediate_external_link",
    "external_link_to_fifo",
    "virtual_dataset",
    "fill_value_bomb",
    "small_fill_value",
    "compression_bomb",
    "string_dtype",
    "vlen_dtype",
    "compound_dtype",
    "object_reference_dtype",
    "fixed_string_dtype",
    "hard_link_cycle",
    "nested_too_deep",
    "int_key_01",
    "int_key_x",
    "int_key_1e3",
    "int_key_1",
    "int_key_-0",
    "int_key_999999",
    "int_tensor_requires_grad",
    "unknown_type",
    "huge_attribute",
    "fifo",
    "device",
    "h5_external_storage",
    "h5_external_link",
    "h5_soft_link",
    "h5_fill_value_bomb",
    "h5_compression_bomb",
    "h5_vlen_dtype",
    "h5_string_dtype",
    "h5_virtual_dataset",
    "npz_lying_header",
    "npz_object_dtype",
    "npz_deflate_bomb",
    "idx_gzip_bomb_header_says_one_image",
    "idx_gzip_bomb_honest_header",
    "idx_lying_header",
    "idx_gzip_lying_header",
    "data_dir_symlink_to_fifo",
    "data_dir_symlink_to_device",
    "data_dir_symlink_to_loop",
]

CHILD = r"""
import json, resource, sys
import tinygrad_cnn as tg
from tinygrad_cnn.datasets import load_mnist, read_idx

def vm_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0

limit = vm_bytes() + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
loaders = {"tg.load": tg.load, "load_mnist": load_mnist, "read_idx": read_idx}
for line in sys.stdin:
    name, loader, path = json.loads(line)
    print(json.dumps({"start": name}), flush=True)
    try:
        loaders[loader](path)
        result = {"name": name, "error": None}
    except BaseException as e:
        result = {"name": name, "error": type(e).__name__, "message": str(e)}
    print(json.dumps(result), flush=True)
"""


CASE_TIMEOUT = 15  # seconds per load; each takes well under one here


def _run_cases(todo: list[tuple[str, str, Path, str]], results: dict, failures: dict) -> list:
    """Run cases in one child until it finishes them, hangs or dies; return the cases not yet run."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(HEADROOM)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    proc.stdin.write("".join(json.dumps([name, loader, str(path)]) + "\n" for name, loader, path, _ in todo))
    proc.stdin.close()
    current, deadline = None, time.monotonic() + 60  # the imports may take a while on a loaded machine
    try:
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                failures[current] = f"did not finish within {CASE_TIMEOUT} s (blocked or looping)"
                break
            line = proc.stdout.readline()
            if not line:
                if current is not None:
                    failures[current] = "the loader killed the process: " + proc.stderr.read()[-2000:]
                break
            record = json.loads(line)
            if "start" in record:
                current, deadline = record["start"], time.monotonic() + CASE_TIMEOUT
            else:
                results[record["name"]], current = record, None
    finally:
        proc.kill()
        proc.wait()
    done = set(results) | set(failures)
    return [case for case in todo if case[0] not in done]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    cases = _cases(tmp_path_factory.mktemp("hostile"))
    assert sorted(name for name, *_ in cases) == sorted(NAMES)
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    todo = cases
    while todo:
        left = _run_cases(todo, results, failures)
        if len(left) == len(todo):  # the child died before its first case
            failures.update({name: "the child process failed to start" for name, *_ in left})
            break
        todo = left
    return {case[0]: case for case in cases}, results, failures


@pytest.mark.parametrize("name", NAMES)
def test_hostile_file_is_refused_clearly(outcomes, name):
    cases, results, failures = outcomes
    _, loader, path, expect = cases[name]
    assert name not in failures, f"{name}: {loader} {failures[name]}"
    r = results[name]
    wanted = "CheckpointError" if loader == "tg.load" else "DatasetError"
    assert r["error"] == wanted, f"{name}: {loader} gave {r['error']}: {r.get('message')}"
    assert str(path) in r["message"], f"{name}: the message does not name the file: {r['message']}"
    assert expect in r["message"], f"{name}: {r['message']}"
