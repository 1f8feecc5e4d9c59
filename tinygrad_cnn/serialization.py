"""Checkpoints: save and load nested Python/NumPy structures as HDF5 files (via h5py).

:func:`save` writes ``obj`` to ``path`` atomically: the data goes to a temporary file in the same
directory, which is flushed, fsync'ed and then renamed over ``path`` with :func:`os.replace`. A crash
(or any exception) during a save therefore never damages an existing checkpoint at ``path``, and no
temporary file is left behind on an exception.

Supported values (arbitrarily nested):

* ``dict`` with ``str`` keys -> HDF5 group (insertion order is preserved). Keys may contain any
  character, including ``'/'`` and ``'.'``; they are escaped in the file and restored exactly.
* ``list`` and ``tuple`` -> group with members ``"0"``, ``"1"``, ...; **both load back as list**.
* ``np.ndarray`` of a bool, integer, float or complex dtype -> dataset; dtype and shape are restored
  exactly, including 0-d and zero-size arrays.
* NumPy scalars (``np.float32(1)``, ``np.int64(3)``, ``np.bool_(True)``, ...) -> restored with their dtype.
* ``int`` (of any size: values outside int64, such as the 128-bit state of ``np.random.PCG64``, are
  stored as decimal text), ``float``, ``bool``, ``str``, ``None``.
* Any other object with ``__array__`` (or a ``numpy()`` method returning an array), e.g. a tensor, is
  stored as the array ``np.asarray(obj)`` and loads back as an ``np.ndarray``.

Everything else raises :class:`TypeError` naming the key path, e.g.
``save: unsupported type set at 'optimizer/state/3'``.

File layout: the root group carries the attribute ``tinygrad_cnn_format`` (currently 1) and every node
an attribute ``tgc_type`` saying what it holds. :func:`load` raises :class:`CheckpointError` for files
that are missing, not HDF5 (text, truncated, ...), lack the marker, or come from a newer format.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION", "FORMAT_ATTR"]

#: Root attribute identifying a checkpoint written by this module, and its value.
FORMAT_ATTR = "tinygrad_cnn_format"
FORMAT_VERSION = 1

_TYPE_ATTR = "tgc_type"
_ROOT_VALUE = "value"  # name of the single member when the saved object is not a dict/list/None
_ARRAY_KINDS = "biufc"  # bool, signed/unsigned int, float, complex
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, not HDF5, not a tinygrad_cnn checkpoint, or from a newer version."""


# ----------------------------------------------------------------------------------------------------
# Key escaping. HDF5 link names cannot contain '/' or NUL, and cannot be '', '.' or '..'.


def _escape_key(key: str) -> str:
    if key == "":
        return "%"  # never produced otherwise: every other '%' is followed by two hex digits
    if key.strip(".") == "":  # '.', '..', '...': names that HDF5 treats (or could treat) as paths
        return "%2E" * len(key)
    out = []
    for ch in key:
        out.append(f"%{ord(ch):02X}" if ch in "%/\x00" else ch)
    return "".join(out)


def _unescape_key(name: str) -> str:
    if name == "%":
        return ""
    if "%" not in name:
        return name
    out, i = [], 0
    while i < len(name):
        if name[i] == "%":
            out.append(chr(int(name[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def _fmt_path(path: str) -> str:
    return f"'{path}'" if path else "the root"


def _join(path: str, key: str) -> str:
    return f"{path}/{key}" if path else key


# ----------------------------------------------------------------------------------------------------
# Writing


def _as_array(obj: Any) -> np.ndarray | None:
    """Array view of a tensor-like object, or None if it is not one."""
    if hasattr(obj, "__array__"):
        return np.asarray(obj)
    numpy_method = getattr(obj, "numpy", None)
    if callable(numpy_method):
        arr = numpy_method()
        if isinstance(arr, np.ndarray):
            return arr
    return None


def _write(group: h5py.Group, name: str | None, obj: Any, path: str, stack: set[int]) -> None:
    """Write ``obj`` as member ``name`` of ``group`` (or, for ``name=None``, into ``group`` itself,
    which is only possible for dicts, lists and None)."""

    def new_group(tag: str) -> h5py.Group:
        g = group if name is None else group.create_group(name, track_order=True)
        g.attrs[_TYPE_ATTR] = tag
        return g

    def new_dataset(tag: str, data: Any) -> None:
        if name is None:  # leaf at the root: wrap it
            new_group("wrapped")
            _write(group, _ROOT_VALUE, obj, path, stack)
            return
        ds = group.create_dataset(name, data=data)
        ds.attrs[_TYPE_ATTR] = tag

    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in stack:
            raise ValueError(f"save: circular reference at {_fmt_path(path)}")
        stack.add(id(obj))
        try:
            if isinstance(obj, dict):
                g = new_group("dict")
                for key, value in obj.items():
                    if not isinstance(key, str):
                        raise TypeError(
                            f"save: dict key {key!r} ({type(key).__name__}) at {_fmt_path(path)} is not a str"
                        )
                    _write(g, _escape_key(key), value, _join(path, key), stack)
            else:
                g = new_group("list")
                for i, value in enumerate(obj):
                    _write(g, str(i), value, _join(path, str(i)), stack)
        finally:
            stack.discard(id(obj))
    elif obj is None:
        new_group("none")
    elif isinstance(obj, np.generic):  # before the Python scalars: np.float64 is a float subclass
        if obj.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"save: unsupported numpy scalar dtype {obj.dtype} at {_fmt_path(path)}")
        new_dataset("npscalar", obj)
    elif isinstance(obj, bool):
        new_dataset("bool", np.bool_(obj))
    elif isinstance(obj, int):
        if _INT64_MIN <= obj <= _INT64_MAX:
            new_dataset("int", np.int64(obj))
        else:
            new_dataset("bigint", np.frombuffer(str(obj).encode("ascii"), dtype=np.uint8))
    elif isinstance(obj, float):
        new_dataset("float", np.float64(obj))
    elif isinstance(obj, str):
        # Stored as UTF-8 bytes (not an HDF5 string) so that NULs and lone surrogates round-trip.
        new_dataset("str", np.frombuffer(obj.encode("utf-8", "surrogatepass"), dtype=np.uint8))
    else:
        arr = obj if isinstance(obj, np.ndarray) else _as_array(obj)
        if arr is None:
            raise TypeError(f"save: unsupported type {type(obj).__name__} at {_fmt_path(path)}")
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"save: unsupported array dtype {arr.dtype} at {_fmt_path(path)}")
        new_dataset("ndarray", arr)


def _fsync_path(p: str | Path, directory: bool = False) -> None:
    flags = os.O_RDONLY if directory else os.O_RDWR
    fd = os.open(p, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Save ``obj`` (see the module docstring for what it may contain) to the HDF5 file ``path``.

    The write is atomic: ``path`` is either left untouched (on any error, including a crash) or
    replaced by the complete new checkpoint. The file gets the mode of the file it replaces, or 0o644.

    Raises:
        TypeError: an unsupported value or a non-``str`` dict key; the message names the key path.
        ValueError: a circular reference.
        OSError: the file cannot be written.
    """
    path = Path(path)
    directory = path.parent
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs[FORMAT_ATTR] = FORMAT_VERSION
            _write(f, None, obj, "", set())
            f.flush()
        _fsync_path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            _fsync_path(directory, directory=True)


# ----------------------------------------------------------------------------------------------------
# Reading


def _read(node: h5py.Group | h5py.Dataset, where: str) -> Any:
    tag = node.attrs.get(_TYPE_ATTR)
    if isinstance(tag, bytes):
        tag = tag.decode()
    if isinstance(node, h5py.Group):
        if tag == "dict":
            return {_unescape_key(k): _read(v, where) for k, v in node.items()}
        if tag == "list":
            items = [_read(node[str(i)], where) for i in range(len(node))]
            return items
        if tag == "none":
            return None
        if tag == "wrapped":
            return _read(node[_ROOT_VALUE], where)
    else:
        value = node[()]
        if tag == "ndarray":
            return np.asarray(value) if not isinstance(value, np.ndarray) else value
        if tag == "npscalar":
            return value
        if tag == "int":
            return int(value)
        if tag == "bigint":
            return int(np.asarray(value, dtype=np.uint8).tobytes().decode("ascii"))
        if tag == "float":
            return float(value)
        if tag == "bool":
            return bool(value)
        if tag == "str":
            return np.asarray(value, dtype=np.uint8).tobytes().decode("utf-8", "surrogatepass")
    raise CheckpointError(f"{where}: corrupt checkpoint: member {node.name!r} has unknown type {tag!r}")


def load(path: str | os.PathLike[str]) -> Any:
    """Load a checkpoint written by :func:`save`.

    Returns the saved structure; tuples come back as lists, tensor-like objects as ``np.ndarray``.

    Raises:
        CheckpointError: the file is missing, is not a valid HDF5 file (truncated or foreign), is not a
            tinygrad_cnn checkpoint, or was written by a newer format version. The message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"{path}: not a valid HDF5 file (truncated or foreign?): {e}") from e
    with f:
        version = f.attrs.get(FORMAT_ATTR)
        if version is None:
            raise CheckpointError(f"{path}: not a tinygrad_cnn checkpoint (no '{FORMAT_ATTR}' attribute)")
        try:
            version = int(version)
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: bad '{FORMAT_ATTR}' attribute {version!r}") from None
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format {version} is newer than this version of tinygrad_cnn "
                f"supports ({FORMAT_VERSION}); upgrade tinygrad_cnn"
            )
        if version < 1:
            raise CheckpointError(f"{path}: bad '{FORMAT_ATTR}' attribute {version!r}")
        try:
            return _read(f, str(path))
        except (OSError, KeyError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{path}: corrupt checkpoint (truncated or damaged?): {e}") from e
