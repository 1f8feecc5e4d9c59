"""Reading untrusted files: regular files only, HDF5 objects inspected before they are read, capped inflation.

A checkpoint or data set may come from anywhere, so the readers in :mod:`tinygrad_cnn.serialization` and
:mod:`tinygrad_cnn.datasets` never trust what a file declares. This module holds what they share:

* :func:`open_regular` opens a path without blocking and refuses anything but a regular file (a FIFO would
  block a reader forever, a device such as ``/dev/zero`` never ends). The opened descriptor is the one read
  from, so the file cannot be swapped between the check and the read.
* :func:`hard_child` and :func:`check_dataset` inspect HDF5 links and datasets through their metadata,
  without following a link or reading data: only hard links, only numeric datasets whose bytes are stored
  in the file itself (no external raw storage, no virtual datasets) and whose declared size is backed by
  stored bytes (no fill-value or compression bombs). Objects are opened one path component at a time, by
  the names just checked, so an intermediate soft or external link cannot slip through (h5py's
  ``visititems`` and ``group[path]`` follow links; neither is used on untrusted files).
* :data:`MAX_INFLATION` caps how much compressed data may inflate; the IDX and ``.npz`` readers check the
  sizes a header declares against the file's real size before they inflate or allocate anything.

Every check raises :class:`UnsafeFileError` with a message saying what was refused; the caller adds the
file's name and turns it into its own error class.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import IO

import h5py
import numpy as np

__all__ = [
    "UnsafeFileError",
    "open_regular",
    "hard_child",
    "check_dataset",
    "file_size",
    "object_address",
    "read_string_attr",
    "MAX_INFLATION",
]

#: The most bytes a compressed array may inflate to per stored byte (gzip in IDX files, deflate in .npz
#: members, compressed HDF5 chunks). The real MNIST files inflate 2-5x (20x as float64); deflate itself reaches 1032x.
MAX_INFLATION = 100

# HDF5 filters a data set may use: deflate (gzip), shuffle, fletcher32 checksums, LZF (built into h5py).
# Any other filter would make libhdf5 look for a plugin library to load.
_SAFE_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32, 32000}
_LAYOUT_NAMES = {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked"}
_LINK_NAMES = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}


class UnsafeFileError(ValueError):
    """A file, or an object in it, was refused; the message says what and why (the caller names the file)."""


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary reading if it is a regular file (symlinks to one are followed).

    Raises :class:`FileNotFoundError` / other :class:`OSError` as :func:`os.open` does, and
    :class:`UnsafeFileError` for a directory, FIFO, socket or device. Never blocks.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(f"not a regular file (it is {_file_kind(mode)}); only regular files are read")
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1  # owned by fh now
            yield fh
    finally:
        if fd >= 0:
            os.close(fd)


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def file_size(fh: IO[bytes]) -> int:
    """Size in bytes of an open file."""
    return os.fstat(fh.fileno()).st_size


# ----------------------------------------------------------------------------------------------------
# HDF5


def hard_child(group: h5py.Group, name: str, where: str) -> h5py.Group | h5py.Dataset:
    """Open member ``name`` of ``group`` if it is a hard link; refuse soft, external and user-defined links.

    ``name`` must be one path component (a name from ``group.keys()``); ``where`` names it in messages.
    """
    if "/" in name or name in ("", ".", ".."):
        raise UnsafeFileError(f"member {where!r}: not a plain member name")
    try:
        link = group.id.links.get_info(name.encode("utf-8", "surrogateescape"))
    except KeyError:
        raise UnsafeFileError(f"member {where!r} is missing") from None
    if link.type != h5py.h5l.TYPE_HARD:
        what = _LINK_NAMES.get(link.type, f"a link of type {link.type}")
        raise UnsafeFileError(f"member {where!r} is {what}; only hard links are followed")
    obj = group[name]
    if not isinstance(obj, (h5py.Group, h5py.Dataset)):
        raise UnsafeFileError(f"member {where!r} is a {type(obj).__name__}, not a group or dataset")
    return obj


def object_address(obj: h5py.HLObject) -> tuple[int, int]:
    """(number of hard links to ``obj``, its address in the file): a tree has one link per object."""
    info = h5py.h5o.get_info(obj.id)
    return info.rc, info.addr


def check_dataset(ds: h5py.Dataset, where: str, size_of_file: int, allow_compression: bool, max_bytes: int) -> int:
    """Refuse a dataset that is not a numeric array stored in the file; return its size in bytes.

    Refused: non-numeric types (strings, objects, references, vlen, compound other than complex,
    subarrays, opaque), external raw storage, virtual datasets, filters other than deflate, shuffle,
    fletcher32 and LZF (or any filter unless ``allow_compression``), chunked layouts unless
    ``allow_compression``, a declared size over ``max_bytes``, and declared bytes not backed by stored
    bytes: more than the stored bytes (uncompressed) or more than :data:`MAX_INFLATION` times them
    (compressed), so that neither a fill value nor a compression bomb can make a small file allocate much.
    """
    dtype = ds.dtype
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafeFileError(f"dataset {where!r} has type {_describe_h5_type(ds)}; only arrays of numbers are read")
    plist = ds.id.get_create_plist()
    if plist.get_external_count():
        raise UnsafeFileError(f"dataset {where!r} keeps its data in external files")
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise UnsafeFileError(f"dataset {where!r} is a virtual dataset (it maps other files)")
    if layout not in _LAYOUT_NAMES or (layout == h5py.h5d.CHUNKED and not allow_compression):
        raise UnsafeFileError(
            f"dataset {where!r} has a {_LAYOUT_NAMES.get(layout, f'type {layout}')} layout; "
            "only contiguous and compact datasets are read"
        )
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if filters and not allow_compression:
        raise UnsafeFileError(f"dataset {where!r} uses HDF5 filters {filters}, which save never writes")
    unknown = [f for f in filters if f not in _SAFE_FILTERS]
    if unknown:
        raise UnsafeFileError(
            f"dataset {where!r} uses HDF5 filter(s) {unknown}; only deflate, shuffle, fletcher32 and LZF are read"
        )
    declared = int(np.prod(ds.shape, dtype=object)) * dtype.itemsize if ds.shape is not None else 0
    if declared == 0:
        return 0
    shape = "x".join(map(str, ds.shape))
    if declared > max_bytes:
        raise UnsafeFileError(
            f"dataset {where!r} declares {declared} bytes ({shape} {dtype}), over the limit of {max_bytes} bytes"
        )
    stored = ds.id.get_storage_size()
    if stored > size_of_file:
        raise UnsafeFileError(f"dataset {where!r} claims {stored} stored bytes in a file of {size_of_file} bytes")
    if filters:
        if declared > MAX_INFLATION * stored:
            raise UnsafeFileError(
                f"dataset {where!r} declares {declared} bytes ({shape} {dtype}) but stores {stored} compressed "
                f"bytes: over {MAX_INFLATION}x inflation (a compression or fill-value bomb?)"
            )
    elif declared > stored:
        raise UnsafeFileError(
            f"dataset {where!r} declares {declared} bytes ({shape} {dtype}) but stores {stored}: the rest "
            "would be made up from a fill value (a fill-value bomb?)"
        )
    if layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if offset is None or offset + declared > size_of_file:
            raise UnsafeFileError(f"dataset {where!r}: its data lies outside the file")
    return declared


def _describe_h5_type(ds: h5py.Dataset) -> str:
    names = {
        h5py.h5t.STRING: "string",
        h5py.h5t.VLEN: "variable-length",
        h5py.h5t.COMPOUND: "compound",
        h5py.h5t.REFERENCE: "reference",
        h5py.h5t.OPAQUE: "opaque",
        h5py.h5t.ARRAY: "array",
        h5py.h5t.ENUM: "enum",
        h5py.h5t.BITFIELD: "bitfield",
        h5py.h5t.TIME: "time",
    }
    try:
        cls = ds.id.get_type().get_class()
    except Exception:  # an unreadable type: describe it by the NumPy dtype h5py made of it
        return str(ds.dtype)
    return f"{names.get(cls, f'class {cls}')} ({ds.dtype})"


def read_string_attr(obj: h5py.HLObject, name: str, limit: int = 64) -> str | None:
    """A short string (or integer, as text) attribute of ``obj``, None if absent; refuse anything else."""
    if name not in obj.attrs:
        return None
    attr = obj.attrs.get_id(name)
    dtype, shape = attr.dtype, attr.shape
    is_string = h5py.check_string_dtype(dtype) is not None
    if shape not in ((), (1,)) or not (is_string or dtype.kind in "iu") or attr.get_storage_size() > limit:
        raise UnsafeFileError(f"attribute {name!r} of {obj.name!r} is not a short string or integer")
    value = obj.attrs[name]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and len(value) > limit:
        raise UnsafeFileError(f"attribute {name!r} of {obj.name!r} is too long")
    return str(value) if not isinstance(value, str) else value
