"""Datasets: an IDX reader, MNIST loading (bundled, IDX directory, HDF5, npz) and a batch iterator.

Everything here depends only on NumPy (and h5py for ``.h5``/``.hdf5`` files).

* :func:`read_idx` reads one IDX file (gzipped or not) into an array, validating the header strictly.
* :func:`load_mnist` returns ``((x_train, y_train), (x_test, y_test))`` with images as ``uint8`` arrays
  of shape ``(N, 28, 28)`` and labels as ``int64`` arrays of shape ``(N,)``. With no path it loads the
  copy of the official MNIST files bundled with the package and checks their MD5 hashes.
* :class:`DataLoader` iterates over aligned arrays in (optionally shuffled) mini-batches; the order of
  every epoch is a pure function of ``(seed, epoch)``, so training can be resumed exactly. (PyTorch's
  DataLoader over a Dataset is :class:`tinygrad_cnn.utils.data.DataLoader`.)
* :class:`MNIST` is ``torchvision.datasets.MNIST``: a Dataset of ``(image, label)`` samples.

Every problem with a data file raises :class:`DatasetError` (a :class:`ValueError`) whose message names
the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from ._tensor import Tensor
from .safe_io import MAX_INFLATION, UnsafeFileError, check_dataset, file_size, hard_child, open_regular
from .utils.data.dataset import Dataset

__all__ = ["DatasetError", "read_idx", "load_mnist", "DataLoader", "MNIST", "MNIST_MD5"]

# Directory holding the bundled, gzipped official IDX files (see data/mnist/README.md).
_BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "mnist"

_TRAIN_IMAGES = "train-images-idx3-ubyte"
_TRAIN_LABELS = "train-labels-idx1-ubyte"
_TEST_IMAGES = "t10k-images-idx3-ubyte"
_TEST_LABELS = "t10k-labels-idx1-ubyte"
_IDX_NAMES = (_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS)

#: MD5 hex digests of the *uncompressed* official MNIST IDX files.
MNIST_MD5: dict[str, str] = {
    _TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
    _TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
    _TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
    _TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
}

_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801
_MAGIC_NAMES = {_IMAGES_MAGIC: "images", _LABELS_MAGIC: "labels"}

# IDX type code -> (big-endian dtype, name).
_IDX_TYPES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype(">u1"), "unsigned byte"),
    0x09: (np.dtype(">i1"), "signed byte"),
    0x0B: (np.dtype(">i2"), "int16"),
    0x0C: (np.dtype(">i4"), "int32"),
    0x0D: (np.dtype(">f4"), "float32"),
    0x0E: (np.dtype(">f8"), "float64"),
}
_GZIP_MAGIC = b"\x1f\x8b"

_H5_SUFFIXES = (".h5", ".hdf5")
_NPZ_SUFFIXES = (".npz",)
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
_NUM_CLASSES = 10
_SIDE = 28
#: The largest array an .h5 data file may declare (4 GiB, the limit Keras uses too).
MAX_ARRAY_BYTES = 4 << 30


class DatasetError(ValueError):
    """A data file is missing, malformed or damaged. The message names the file and the problem."""


# ----------------------------------------------------------------------------------------------------
# IDX


def _describe_magic(magic: int) -> str:
    if magic in _MAGIC_NAMES:
        return _MAGIC_NAMES[magic]
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    tname = _IDX_TYPES[code][1] if code in _IDX_TYPES else f"type 0x{code:02X}"
    return f"{tname}, {ndim}-D"


def _idx_header(head: bytes, name: str, expected_magic: int | None) -> tuple[int, tuple[int, ...], np.dtype, str]:
    """Validate the start of an IDX file; return (header length, dims, dtype, type name).

    ``head`` is the file's first bytes; when it is too short for a header that needs more, the header
    length alone is returned (with empty dims) so that the caller can read that much and call again.
    """
    if len(head) < 4:
        raise DatasetError(f"{name}: too short for an IDX header: {len(head)} bytes, need at least 4")
    magic = int.from_bytes(head[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(
            f"{name}: bad magic 0x{magic:08X}, expected 0x{expected_magic:08X} ({_describe_magic(expected_magic)})"
        )
    if head[0] != 0 or head[1] != 0:
        raise DatasetError(f"{name}: bad magic 0x{magic:08X}: the first two bytes must be zero (not an IDX file?)")
    code, ndim = head[2], head[3]
    if code not in _IDX_TYPES:
        raise DatasetError(
            f"{name}: bad magic 0x{magic:08X}: unsupported IDX data type code 0x{code:02X} "
            f"(supported: {', '.join(f'0x{c:02X}' for c in _IDX_TYPES)})"
        )
    if ndim == 0:
        raise DatasetError(f"{name}: bad magic 0x{magic:08X}: zero dimensions")
    dtype, tname = _IDX_TYPES[code]
    header = 4 + 4 * ndim
    if len(head) < header:
        return header, (), dtype, tname
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return header, dims, dtype, tname


def _size_error(name: str, actual: int, expected: int, dims: tuple[int, ...], tname: str) -> DatasetError:
    what = "truncated" if actual < expected else f"{actual - expected} trailing bytes"
    return DatasetError(
        f"{name}: {what}: header says {'x'.join(map(str, dims))} ({tname}) = {expected} bytes "
        f"of data, file has {actual}"
    )


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[IO[bytes]]:
    """Open a data file (regular files only); what goes wrong while it is read becomes a
    :class:`DatasetError` naming it (a refusal, a missing file, an I/O error)."""
    try:
        with open_regular(path) as fh:
            yield fh
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except UnsafeFileError as e:
        raise DatasetError(f"{path}: refused: {e}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DatasetError(f"{path}: corrupt or truncated gzip data: {e}") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read file: {e}") from e


def _read_idx_data(path: Path, expected_magic: int | None = None) -> bytes:
    """The uncompressed bytes of an IDX file (gzipped or not), read only after its header was checked
    against the file's real size: a lying header is refused before anything is inflated or allocated."""
    name = str(path)
    with _reading(path) as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        size = file_size(fh)
        stream: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=fh, mode="rb") if compressed else fh
        head = stream.read(8)
        header, dims, dtype, tname = _idx_header(head, name, expected_magic)
        head += stream.read(header - len(head))
        if len(head) < header:
            ndim = head[3]
            raise DatasetError(
                f"{name}: too short for the header: a {ndim}-D IDX header needs {header} bytes, file has {len(head)}"
            )
        header, dims, dtype, tname = _idx_header(head, name, expected_magic)
        expected = math.prod(dims) * dtype.itemsize
        if not compressed:
            if size - header != expected:
                raise _size_error(name, size - header, expected, dims, tname)
        # Read no more than one byte past what the header declares, nor past MAX_INFLATION times the
        # file's size: a lying header or a decompression bomb stops here, before it costs memory.
        cap = MAX_INFLATION * size - header
        body = stream.read(min(expected, cap) + 1)
        if compressed and len(body) > expected:
            more = stream.read(1 << 20)  # count up to 1 MiB of trailing bytes for the message
            if len(more) < 1 << 20:
                raise _size_error(name, len(body) + len(more), expected, dims, tname)
            raise DatasetError(
                f"{name}: over 1 MiB of trailing bytes: header says {'x'.join(map(str, dims))} ({tname}) "
                f"= {expected} bytes of data"
            )
        if len(body) > cap:
            raise DatasetError(
                f"{name}: refused: its gzip data inflates to more than {MAX_INFLATION}x the file's "
                f"{size} bytes (a decompression bomb?); gunzip the file first if it is genuine"
            )
        return head + body


def _parse_idx(data: bytes, name: str, expected_magic: int | None = None) -> np.ndarray:
    """Parse the (already decompressed) bytes of an IDX file; ``name`` is used in error messages."""
    header, dims, dtype, tname = _idx_header(data, name, expected_magic)
    if not dims:
        raise DatasetError(
            f"{name}: too short for the header: a {data[3]}-D IDX header needs {header} bytes, file has {len(data)}"
        )
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        raise _size_error(name, actual, expected, dims, tname)
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)
    # astype copies: the result is writable, native-endian and does not pin ``data``.
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file into an array.

    The file may be gzipped or not; that is detected from its first two bytes (``1f 8b``), not its name.
    Supported element types: unsigned byte (0x08), signed byte (0x09), int16 (0x0B), int32 (0x0C),
    float32 (0x0D) and float64 (0x0E), all big-endian in the file.

    Args:
        path: the file.
        expected_magic: if given, the full 32-bit magic number the file must have
            (``0x00000803`` for MNIST images, ``0x00000801`` for labels).

    Returns:
        A writable, native-endian array whose shape is the dimensions in the header,
        e.g. ``(N, 28, 28)`` ``uint8`` for an MNIST image file.

    Raises:
        DatasetError: unreadable file, corrupt gzip stream, bad or unexpected magic, unsupported type
            code, or a data size that does not match the header exactly (truncated or trailing bytes).
    """
    path = Path(path)
    return _parse_idx(_read_idx_data(path, expected_magic), str(path), expected_magic)


# ----------------------------------------------------------------------------------------------------
# Validation / conversion shared by all MNIST sources


def _to_images(arr: Any, where: str) -> np.ndarray:
    """Validate/convert images to ``uint8`` ``(N, 28, 28)``."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "uif":
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise DatasetError(f"{where}: images must be an integer or float array, got {kind}")
    if arr.ndim == 2 and arr.shape[1] == _SIDE * _SIDE:
        arr = arr.reshape(arr.shape[0], _SIDE, _SIDE)
    elif not (arr.ndim == 3 and arr.shape[1:] == (_SIDE, _SIDE)):
        raise DatasetError(f"{where}: images must have shape (N, 784) or (N, 28, 28), got {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.size == 0:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "ui":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DatasetError(f"{where}: integer pixel values must lie in [0, 255], got [{lo}, {hi}]")
        return arr.astype(np.uint8)
    if not np.isfinite(arr).all():
        raise DatasetError(f"{where}: pixel values contain NaN or infinity")
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 255.0:
        raise DatasetError(f"{where}: float pixel values must lie in [0, 1] or [0, 255], got [{low:g}, {high:g}]")
    if high <= 1.0:  # [0, 1] scaled data
        arr = arr * 255.0
    return np.rint(arr).astype(np.uint8)


def _to_labels(arr: Any, where: str) -> np.ndarray:
    """Validate/convert labels to ``int64`` ``(N,)`` with values in 0..9."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "uif":
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise DatasetError(f"{where}: labels must be an integer or float array, got {kind}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim != 1:
        raise DatasetError(f"{where}: labels must have shape (N,) or (N, 1), got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DatasetError(f"{where}: labels contain NaN or infinity")
        if (arr != np.round(arr)).any():
            raise DatasetError(f"{where}: labels must be integers, found non-integer float values")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > _NUM_CLASSES - 1:
            raise DatasetError(f"{where}: labels must lie in 0..{_NUM_CLASSES - 1}, got values in [{lo:g}, {hi:g}]")
    return arr.astype(np.int64)


def _split(x: np.ndarray, y: np.ndarray, xwhere: str, ywhere: str) -> tuple[np.ndarray, np.ndarray]:
    x = _to_images(x, xwhere)
    y = _to_labels(y, ywhere)
    if x.shape[0] != y.shape[0]:
        raise DatasetError(f"{xwhere} has {x.shape[0]} images but {ywhere} has {y.shape[0]} labels")
    return x, y


# ----------------------------------------------------------------------------------------------------
# Sources


def _load_idx_files(files: dict[str, Path], verify_md5: bool) -> dict[str, np.ndarray]:
    out = {}
    for name, path in files.items():
        magic = _IMAGES_MAGIC if "images" in name else _LABELS_MAGIC
        data = _read_idx_data(path, magic)
        if verify_md5:
            digest = hashlib.md5(data).hexdigest()
            if digest != MNIST_MD5[name]:
                raise DatasetError(
                    f"{path}: MD5 mismatch of the uncompressed data: got {digest}, expected "
                    f"{MNIST_MD5[name]}; the bundled file is damaged; reinstall tinygrad_cnn"
                )
        out[name] = _parse_idx(data, str(path), magic)
        del data
    return out


def _idx_splits(files: dict[str, Path], verify_md5: bool):
    arrays = _load_idx_files(files, verify_md5)
    train = _split(arrays[_TRAIN_IMAGES], arrays[_TRAIN_LABELS], str(files[_TRAIN_IMAGES]), str(files[_TRAIN_LABELS]))
    test = _split(arrays[_TEST_IMAGES], arrays[_TEST_LABELS], str(files[_TEST_IMAGES]), str(files[_TEST_LABELS]))
    return train, test


def _find_idx_files(directory: Path) -> dict[str, Path]:
    files, missing = {}, []
    for name in _IDX_NAMES:
        for candidate in (directory / name, directory / (name + ".gz")):
            if candidate.exists():  # a FIFO or device is refused, naming it, when it is opened
                files[name] = candidate
                break
        else:
            missing.append(f"{name}[.gz]")
    if missing:
        raise DatasetError(f"{directory}: missing MNIST IDX file(s): {', '.join(missing)}")
    return files


def _arrays_splits(arrays: dict[str, Any], path: Path):
    def where(key: str) -> str:
        return f"{path}: key '{key}'"

    train = _split(arrays["x_train"], arrays["y_train"], where("x_train"), where("y_train"))
    test = _split(arrays["x_test"], arrays["y_test"], where("x_test"), where("y_test"))
    return train, test


def _read_h5(path: Path) -> dict[str, Any]:
    """The four arrays of an HDF5 file, each checked (link, type, layout, sizes) before it is read."""
    with _reading(path) as fh:
        try:
            f = h5py.File(fh, "r")
        except Exception as e:  # OSError mostly; a damaged file can surface as other errors too
            raise DatasetError(f"{path}: not a valid HDF5 file (truncated or foreign?): {e}") from e
        with f:
            return {key: _read_h5_array(f, key, path, file_size(fh)) for key in _ARRAY_KEYS}


def _read_h5_array(f: h5py.File, key: str, path: Path, size: int) -> np.ndarray:
    names = list(f.keys())  # link names only: nothing is followed
    if key not in names:
        raise DatasetError(f"{path}: missing key '{key}' (has: {', '.join(sorted(names))})")
    obj = hard_child(f, key, key)
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(f"{path}: key '{key}' is not a dataset")
    check_dataset(obj, key, size, allow_compression=True, max_bytes=MAX_ARRAY_BYTES)
    try:
        return obj[()]
    except (OSError, TypeError, ValueError) as e:
        raise DatasetError(f"{path}: key '{key}': cannot read: {e}") from e


# what a damaged archive raises: zipfile reports flipped flag bits as encryption (RuntimeError) or an
# unsupported method (NotImplementedError), a corrupt stream as zlib.error
_ZIP_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error)


def _read_npz(path: Path) -> dict[str, Any]:
    """The four arrays of an .npz archive, each member's header checked against its real size first."""
    with _reading(path) as fh:
        try:
            archive = zipfile.ZipFile(fh)
        except _ZIP_ERRORS as e:
            raise DatasetError(f"{path}: not a valid .npz archive: {e}") from e
        with archive:
            return {key: _read_npz_array(archive, key, path) for key in _ARRAY_KEYS}


def _read_npz_array(archive: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    members = {name[: -len(".npy")]: name for name in archive.namelist() if name.endswith(".npy")}
    if key not in members:
        raise DatasetError(f"{path}: missing key '{key}' (has: {', '.join(sorted(members))})")
    info = archive.getinfo(members[key])
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
            header = member.tell()
    except _ZIP_ERRORS as e:
        raise DatasetError(f"{path}: key '{key}': cannot read: {e}") from e
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise DatasetError(f"{path}: key '{key}': refused: dtype {dtype}; only arrays of numbers are read")
    declared = math.prod(shape) * dtype.itemsize
    if declared != info.file_size - header:
        raise DatasetError(
            f"{path}: key '{key}': its header declares {'x'.join(map(str, shape))} {dtype} = {declared} bytes, "
            f"the archive member holds {info.file_size - header}; refused"
        )
    if info.file_size > MAX_INFLATION * max(info.compress_size, 1):
        raise DatasetError(
            f"{path}: key '{key}': refused: {info.compress_size} compressed bytes inflate to {info.file_size}, "
            f"over {MAX_INFLATION}x (a decompression bomb?)"
        )
    try:
        with archive.open(info) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except _ZIP_ERRORS as e:
        raise DatasetError(f"{path}: key '{key}': cannot read: {e}") from e


Split = tuple[np.ndarray, np.ndarray]


def load_mnist(path: str | os.PathLike[str] | None = None, verify: bool = True) -> tuple[Split, Split]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``.

    Images are ``uint8`` arrays of shape ``(N, 28, 28)`` (0 = background, 255 = ink); labels are ``int64``
    arrays of shape ``(N,)`` with values 0..9. Nothing is cached: every call reads the files.

    Args:
        path: where to load from:

            * ``None``: the official files bundled with the package (60000 train, 10000 test images).
            * a directory: the four standard IDX files ``train-images-idx3-ubyte``,
              ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
              either plain or with a ``.gz`` suffix. They may be any subset of MNIST (no MD5 check), but
              are fully validated.
            * a ``.h5``/``.hdf5`` file with datasets ``x_train``, ``y_train``, ``x_test``, ``y_test``:
              images ``(N, 784)`` or ``(N, 28, 28)``, either ``uint8``/integers in [0, 255], floats in
              [0, 1] (scaled by 255 and rounded; data whose maximum is <= 1 is taken to be in this
              range) or floats in [0, 255] (rounded); labels ``(N,)`` or ``(N, 1)``, integers or
              integer-valued floats in 0..9.
            * a ``.npz`` file with the same keys (the layout of Keras' ``mnist.npz``), same rules.
        verify: for the bundled files, check the MD5 of the uncompressed data against the official
            hashes. Ignored for other sources.

    Raises:
        DatasetError: missing/unknown path, missing files or keys, malformed data, wrong shapes,
            labels out of range, image/label count mismatch, or (bundled files) an MD5 mismatch.
    """
    if path is None:
        files = {name: _BUNDLED_DIR / (name + ".gz") for name in _IDX_NAMES}
        for p in files.values():
            if not p.is_file():
                raise DatasetError(f"{p}: bundled MNIST file is missing; reinstall tinygrad_cnn")
        return _idx_splits(files, verify_md5=verify)
    path = Path(path)
    if path.is_dir():
        return _idx_splits(_find_idx_files(path), verify_md5=False)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix in _H5_SUFFIXES:
        return _arrays_splits(_read_h5(path), path)
    if suffix in _NPZ_SUFFIXES:
        return _arrays_splits(_read_npz(path), path)
    raise DatasetError(
        f"{path}: unsupported MNIST source (expected a directory of IDX files, or a "
        f"{'/'.join(_H5_SUFFIXES + _NPZ_SUFFIXES)} file)"
    )


# ----------------------------------------------------------------------------------------------------
# DataLoader


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


class DataLoader:
    """Iterate over aligned arrays in mini-batches.

    ``DataLoader(x, y, batch_size=64, shuffle=True)`` yields tuples ``(x_batch, y_batch)`` where each
    batch has shape ``(B, *a.shape[1:])`` for its array ``a`` and ``B <= batch_size`` (the last batch may
    be smaller unless ``drop_last``). Tuples are yielded even for a single array: ``for (xb,) in ...``.
    Without shuffling the batches are slices (views) of the arrays; with shuffling they are copies made
    by fancy indexing.

    Order is deterministic: epoch ``e`` uses the permutation ``np.random.default_rng([seed, e])
    .permutation(n)``. :attr:`epoch` is the epoch the *next* iteration will use; it is incremented each
    time an iteration starts (so the first ``for`` loop uses epoch 0, the second epoch 1, ...).
    ``state_dict()``/``load_state_dict()`` (or ``set_epoch``) restore it, so a resumed run sees exactly
    the same order of epochs as an uninterrupted one.
    """

    def __init__(
        self,
        *arrays: Any,
        batch_size: int = 64,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if not arrays:
            raise ValueError("DataLoader needs at least one array")
        arrs = tuple(a if isinstance(a, np.ndarray) else np.asarray(a) for a in arrays)
        for a in arrs:
            if a.ndim == 0:
                raise ValueError("DataLoader arrays must have at least one dimension, got a 0-d array")
        if len({a.shape[0] for a in arrs}) != 1:
            shapes = ", ".join(str(a.shape) for a in arrs)
            raise ValueError(f"DataLoader arrays must have the same first dimension, got shapes {shapes}")
        if not _is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.arrays: tuple[np.ndarray, ...] = arrs
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        """Number of samples ``n`` (the common first dimension)."""
        return int(self.arrays[0].shape[0])

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order (``int64`` array of shape ``(n,)``) used by ``epoch``."""
        n = self.num_samples
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        epoch = self.epoch
        self.epoch += 1
        # Computed eagerly (not in a generator body) so that ``iter(loader)`` itself starts the epoch.
        perm = self.order(epoch) if self.shuffle else None
        return self._batches(perm)

    def _batches(self, perm: np.ndarray | None) -> Iterator[tuple[np.ndarray, ...]]:
        b = self.batch_size
        for i in range(len(self)):
            if perm is None:
                yield tuple(a[i * b : (i + 1) * b] for a in self.arrays)
            else:
                idx = perm[i * b : (i + 1) * b]
                yield tuple(a[idx] for a in self.arrays)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use ``epoch``."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        """``{"epoch": next epoch, "seed": seed}``."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the state returned by :meth:`state_dict`."""
        try:
            epoch, seed = state["epoch"], state["seed"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"DataLoader state must be a dict with 'epoch' and 'seed', got {state!r}") from e
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.set_epoch(epoch)
        self.seed = int(seed)

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return (
            f"DataLoader({shapes}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})"
        )


# ----------------------------------------------------------------------------------------------------
# MNIST as a torchvision-style Dataset


class MNIST(Dataset):
    """MNIST as ``torchvision.datasets.MNIST``: ``dataset[i]`` is ``(image, target)``.

    ``image`` is the ``(28, 28)`` uint8 array (torchvision gives a PIL image; ``transforms.ToTensor``
    turns either into a ``(1, 28, 28)`` float tensor in [0, 1]) after ``transform``; ``target`` an
    int after ``target_transform``. ``data`` (uint8, ``(N, 28, 28)``) and ``targets`` (int64) are
    Tensors of the whole split.

    The files come from ``root/MNIST/raw``, ``root/MNIST`` or ``root`` if one holds the four IDX
    files (plain or gzipped); otherwise from the copy bundled with the package, so nothing is ever
    downloaded: ``download=True`` is accepted and does nothing.
    """

    classes = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool = True,
        transform: Any = None,
        target_transform: Any = None,
        download: bool = False,
    ) -> None:
        self.root, self.train = str(root), train
        self.transform, self.target_transform = transform, target_transform
        base = Path(os.path.expanduser(str(root)))
        source = None
        for candidate in (base / "MNIST" / "raw", base / "MNIST", base):
            if candidate.is_dir():
                try:
                    _find_idx_files(candidate)
                except DatasetError:
                    continue
                source = candidate
                break
        (x_train, y_train), (x_test, y_test) = load_mnist(source)
        images, labels = (x_train, y_train) if train else (x_test, y_test)
        self.data, self.targets = Tensor.wrap(images), Tensor.wrap(labels)
        self._images, self._labels = images, labels

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image: Any = self._images[index]
        target: Any = int(self._labels[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        lines = [
            f"Dataset {type(self).__name__}",
            f"    Number of datapoints: {len(self)}",
            f"    Root location: {self.root}",
        ]
        lines.append(f"    Split: {'Train' if self.train else 'Test'}")
        if self.transform is not None:
            lines.append(f"    StandardTransform\nTransform: {self.transform!r}".replace("\n", "\n    "))
        return "\n".join(lines)
