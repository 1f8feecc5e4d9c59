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
an attribute ``tgc_type`` saying what it holds. The file starts with a 512-byte HDF5 *user block* (which
HDF5 itself ignores) holding a one-line header, ``tinygrad_cnn checkpoint crc32=<hex> size=<bytes>``: the
CRC-32 and length of the rest of the file. :func:`load` checks them before HDF5 parses anything, so a
truncated or damaged file (a flipped bit, a block of zeros) is reported as such instead of returning wrong
numbers, or hanging inside libhdf5, which some damaged files make it do. Files without the header (written
before it existed) load without the check. :func:`load` raises :class:`CheckpointError` for files that are
missing, not HDF5 (text, truncated, ...), lack the marker, come from a newer format, or fail the check.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION", "FORMAT_ATTR"]

#: Root attribute identifying a checkpoint written by this module, and its value.
FORMAT_ATTR = "tinygrad_cnn_format"
FORMAT_VERSION = 1

_TYPE_ATTR = "tgc_type"
_USERBLOCK = 512  # bytes before the HDF5 superblock: our header
_HEADER_PREFIX = b"tinygrad_cnn checkpoint "
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
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
        with h5py.File(tmp, "w", track_order=True, userblock_size=_USERBLOCK) as f:
            f.attrs[FORMAT_ATTR] = FORMAT_VERSION
            _write(f, None, obj, "", set())
            f.flush()
        _stamp(tmp)
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


def _names_in_creation_order(group: h5py.Group) -> list[str]:
    """The group's member names in the order they were written (groups are created with track_order).

    h5py 3.8 iterates a file's root group by name even when it tracks creation order, so the order
    comes from each link's creation index; a group without one (a file from elsewhere) keeps h5py's.
    """
    names = list(group)
    links = [group.id.links.get_info(name.encode()) for name in names]
    if all(link.corder_valid for link in links):
        names = [name for _, name in sorted(zip([link.corder for link in links], names))]
    return names


def _read(node: h5py.Group | h5py.Dataset, where: str) -> Any:
    tag = node.attrs.get(_TYPE_ATTR)
    if isinstance(tag, bytes):
        tag = tag.decode()
    if isinstance(node, h5py.Group):
        if tag == "dict":
            return {_unescape_key(k): _read(node[k], where) for k in _names_in_creation_order(node)}
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


def _crc_after_userblock(fh: Any) -> tuple[int, int]:
    """CRC-32 and length of everything after the user block of an open binary file."""
    fh.seek(_USERBLOCK)
    crc, size = 0, 0
    while chunk := fh.read(1 << 20):
        crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    return crc, size


def _stamp(path: str | os.PathLike[str]) -> None:
    """Write the header (CRC-32 and size of the HDF5 data) into the user block of a saved file.

    :func:`save` does it; call it yourself only after editing a checkpoint with h5py on purpose.
    """
    with open(path, "r+b") as fh:
        crc, size = _crc_after_userblock(fh)
        header = _HEADER_PREFIX + f"crc32={crc:08x} size={size}\n".encode()
        fh.seek(0)
        fh.write(header.ljust(_USERBLOCK, b"\0"))


def _check_file(path: Path) -> None:
    """Verify the header written by :func:`save` before HDF5 parses the file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_USERBLOCK + len(_HDF5_SIGNATURE))
            if not head.startswith(_HEADER_PREFIX):
                if head[_USERBLOCK:] == _HDF5_SIGNATURE and not head.startswith(_HDF5_SIGNATURE):
                    raise CheckpointError(f"{path}: corrupt checkpoint: its header is damaged")
                return  # no header: a file from before the check existed, or not a checkpoint at all
            line = head[len(_HEADER_PREFIX) : head.find(b"\n")].decode("ascii", "replace")
            try:
                fields = dict(item.split("=", 1) for item in line.split())
                crc, size = int(fields["crc32"], 16), int(fields["size"])
            except (KeyError, ValueError):
                raise CheckpointError(f"{path}: corrupt checkpoint: its header is damaged") from None
            actual_crc, actual_size = _crc_after_userblock(fh)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e}") from e
    if actual_size != size:
        what = "truncated" if actual_size < size else "longer than written"
        raise CheckpointError(
            f"{path}: not a valid HDF5 file: {what} ({actual_size + _USERBLOCK} bytes, "
            f"written as {size + _USERBLOCK}); was the write interrupted or the file copied "
            "incompletely?"
        )
    if actual_crc != crc:
        raise CheckpointError(
            f"{path}: corrupt checkpoint: its content does not match its checksum "
            "(the file was damaged after it was written)"
        )


def load(path: str | os.PathLike[str]) -> Any:
    """Load a checkpoint written by :func:`save`.

    Returns the saved structure; tuples come back as lists, tensor-like objects as ``np.ndarray``.

    Raises:
        CheckpointError: the file is missing, is not a valid HDF5 file (truncated or foreign), is not a
            tinygrad_cnn checkpoint, was written by a newer format version, or is damaged (checksum
            mismatch, unreadable members). The message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    _check_file(path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # h5py raises OSError, but a damaged file can surface as other errors too
        raise CheckpointError(f"{path}: not a valid HDF5 file (truncated or foreign?): {e}") from e
    with f:
        try:
            return _load_checked(f, path)
        except CheckpointError:
            raise
        except Exception as e:  # whatever a damaged file makes h5py or the reader raise
            raise CheckpointError(f"{path}: corrupt checkpoint (truncated or damaged?): {type(e).__name__}: {e}") from e


def _load_checked(f: h5py.File, path: Path) -> Any:
    """Validate the marker, version and checksum of an open checkpoint, then read it."""
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
    return _read(f, str(path))
