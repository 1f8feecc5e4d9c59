"""Checkpoints: save and load nested Python/NumPy structures as HDF5 files (via h5py).

:func:`save` writes ``obj`` to ``path`` atomically: the whole HDF5 file is built in memory (libhdf5 never
writes to disk, so a full disk is a plain :class:`OSError`, not a failure inside libhdf5), then written to
a temporary file in the same directory with ``os.write``, fsync'ed and renamed over ``path`` with
:func:`os.replace`. A crash (or any exception) during a save therefore never damages an existing checkpoint
at ``path``; no temporary file is left behind on an exception, and those of a killed save are deleted by
the next save to the same path.

Supported values (nested up to :data:`MAX_DEPTH` levels):

* ``dict`` with ``str`` keys -> HDF5 group (insertion order is preserved). Keys may contain any
  character, including ``'/'`` and ``'.'``; they are escaped in the file and restored exactly.
* ``dict`` with ``int`` keys (an optimizer's ``state``, as PyTorch keys it) -> a group whose members are
  the keys' decimal text; loads back with ``int`` keys.
* ``list`` and ``tuple`` -> group with members ``"0"``, ``"1"``, ...; **both load back as list**.
* ``np.ndarray`` of a bool, integer, float or complex dtype -> dataset; dtype and shape are restored
  exactly, including 0-d and zero-size arrays.
* NumPy scalars (``np.float32(1)``, ``np.int64(3)``, ``np.bool_(True)``, ...) -> restored with their dtype.
* ``int`` (of any size: values outside int64, such as the 128-bit state of ``np.random.PCG64``, are
  stored as decimal text), ``float``, ``bool``, ``str``, ``None``.
* :class:`~tinygrad_cnn.Tensor` (a ``state_dict`` value) -> dataset; loads back as a Tensor with the
  same dtype, shape, values and ``requires_grad`` (a Parameter loads as a Tensor that requires grad).
* Any other object with ``__array__`` (or a ``numpy()`` method returning an array), e.g. a PyTorch
  tensor, is stored as the array ``np.asarray(obj)`` and loads back as an ``np.ndarray``.

Everything else raises :class:`TypeError` naming the key path, e.g.
``save: unsupported type set at 'optimizer/state/3'``.

File layout: the root group carries the attribute ``tinygrad_cnn_format`` (currently 2: version 1 had no
Tensors and no int keys; both load) and every node an attribute ``tgc_type`` saying what it holds. The
file starts with a 512-byte HDF5 *user block* (which HDF5 itself ignores) holding a one-line header,
``tinygrad_cnn checkpoint crc32=<hex> size=<bytes>``: the CRC-32 and length of the rest of the file.
:func:`load` checks them before HDF5 parses anything, so a truncated or damaged file (a flipped bit, a
block of zeros) is reported as such instead of returning wrong numbers, or hanging inside libhdf5, which
some damaged files make it do. Files without the header (written before it existed) load without the
check. :func:`load` raises :class:`CheckpointError` for files that are missing, not HDF5 (text,
truncated, ...), lack the marker, come from a newer format, or fail the check.

The checksum proves integrity, not safety (anyone can recompute it), so :func:`load` also treats every file
as hostile: it accepts only the structure :func:`save` writes and refuses the rest before reading any data
(see :func:`load` and docs/troubleshooting.md#security). Loading never runs code from the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import tempfile
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._device import require_cpu
from ._tensor import Tensor
from .safe_io import (
    UnsafeFileError,
    check_dataset,
    file_size,
    hard_child,
    object_address,
    open_regular,
    read_string_attr,
)

__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION", "FORMAT_ATTR", "MAX_DEPTH"]

#: Root attribute identifying a checkpoint written by this module, and its value.
FORMAT_ATTR = "tinygrad_cnn_format"
FORMAT_VERSION = 2
#: How deeply containers may nest: :func:`save` refuses deeper structures, :func:`load` deeper files.
MAX_DEPTH = 1000

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
    if isinstance(getattr(obj, "array", None), np.ndarray):  # a Tensor (one that requires grad too)
        return obj.array
    if hasattr(obj, "__array__"):
        return np.asarray(obj)
    numpy_method = getattr(obj, "numpy", None)
    if callable(numpy_method):
        arr = numpy_method()
        if isinstance(arr, np.ndarray):
            return arr
    return None


def _new_group(parent: h5py.Group, name: str | None, tag: str) -> h5py.Group:
    g = parent if name is None else parent.create_group(name, track_order=True)
    g.attrs[_TYPE_ATTR] = tag
    return g


def _leaf(obj: Any, path: str) -> tuple[str, Any]:
    """(tag, array) for a value stored as one dataset; TypeError naming ``path`` for anything unsupported."""
    if isinstance(obj, Tensor):
        if obj.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"save: unsupported tensor dtype {obj.dtype} at {_fmt_path(path)}")
        return ("tensor_requires_grad" if obj.requires_grad else "tensor"), obj.array
    if isinstance(obj, np.generic):  # before the Python scalars: np.float64 is a float subclass
        if obj.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"save: unsupported numpy scalar dtype {obj.dtype} at {_fmt_path(path)}")
        return "npscalar", obj
    if isinstance(obj, bool):
        return "bool", np.bool_(obj)
    if isinstance(obj, int):
        if _INT64_MIN <= obj <= _INT64_MAX:
            return "int", np.int64(obj)
        return "bigint", np.frombuffer(str(obj).encode("ascii"), dtype=np.uint8)
    if isinstance(obj, float):
        return "float", np.float64(obj)
    if isinstance(obj, str):
        # Stored as UTF-8 bytes (not an HDF5 string) so that NULs and lone surrogates round-trip.
        return "str", np.frombuffer(obj.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    arr = obj if isinstance(obj, np.ndarray) else _as_array(obj)
    if arr is None:
        raise TypeError(f"save: unsupported type {type(obj).__name__} at {_fmt_path(path)}")
    if arr.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(f"save: unsupported array dtype {arr.dtype} at {_fmt_path(path)}")
    return "ndarray", arr


def _has_int_keys(obj: dict) -> bool:
    """Whether a non-empty dict's keys are all ints (bools are not: they would not load back as such)."""
    return bool(obj) and all(isinstance(key, int) and not isinstance(key, bool) for key in obj)


def _members(obj: dict | list | tuple, path: str) -> list[tuple[str, Any, str]]:
    """(link name, value, key path) of each member of a container, in order."""
    if isinstance(obj, dict):
        if _has_int_keys(obj):
            return [(str(key), value, _join(path, str(key))) for key, value in obj.items()]
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(
                    f"save: dict key {key!r} ({type(key).__name__}) at {_fmt_path(path)} is not a str "
                    "(a dict's keys must be all str or all int)"
                )
        return [(_escape_key(key), value, _join(path, key)) for key, value in obj.items()]
    return [(str(i), value, _join(path, str(i))) for i, value in enumerate(obj)]


def _write(root: h5py.Group, obj: Any) -> None:
    """Write ``obj`` into the root group: depth first with an explicit stack, so any depth up to
    :data:`MAX_DEPTH` works whatever the recursion limit."""
    open_containers: set[int] = set()  # ids of the containers on the current path: a cycle check
    # (group, member name or None for the root itself, value, key path, depth); None pops a container
    stack: list[tuple[h5py.Group, str | None, Any, str, int] | int] = [(root, None, obj, "", 0)]
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            open_containers.discard(item)
            continue
        group, name, value, path, depth = item
        if isinstance(value, (dict, list, tuple)):
            if id(value) in open_containers:
                raise ValueError(f"save: circular reference at {_fmt_path(path)}")
            if depth >= MAX_DEPTH:
                where = path if len(path) <= 60 else "..." + path[-60:]
                raise ValueError(f"save: nested more than {MAX_DEPTH} levels deep at {_fmt_path(where)}")
            members = _members(value, path)
            kind = "list" if not isinstance(value, dict) else "intdict" if _has_int_keys(value) else "dict"
            g = _new_group(group, name, kind)
            open_containers.add(id(value))
            stack.append(id(value))
            stack.extend((g, m, v, p, depth + 1) for m, v, p in reversed(members))
        elif value is None:
            _new_group(group, name, "none")
        else:
            tag, data = _leaf(value, path)
            if name is None:  # a leaf at the root: wrap it
                group = _new_group(group, None, "wrapped")
                name = _ROOT_VALUE
            group.create_dataset(name, data=data).attrs[_TYPE_ATTR] = tag


def _image(obj: Any) -> memoryview:
    """The complete checkpoint file for ``obj``, built in memory (our header in the user block)."""
    # In memory, HDF5 never touches the disk, so a full disk cannot fail inside libhdf5 (where it
    # surfaces as "Slist already enabled?" errors and a crash at exit). A BytesIO is about twice as
    # fast here as h5py's "core" driver.
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", track_order=True, userblock_size=_USERBLOCK) as f:
        f.attrs[FORMAT_ATTR] = FORMAT_VERSION
        _write(f, obj)
    image = buffer.getbuffer()
    body = image[_USERBLOCK:]
    header = _HEADER_PREFIX + f"crc32={zlib.crc32(body):08x} size={len(body)}\n".encode()
    image[:_USERBLOCK] = header.ljust(_USERBLOCK, b"\0")
    return image


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_path(p: str | Path, directory: bool = False) -> None:
    flags = os.O_RDONLY if directory else os.O_RDWR
    fd = os.open(p, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Temporary files are named <name>.<pid>@<host>.<random>.tmp, so that a later save can tell a file
# left by a killed writer (its process is gone) from one another process is writing right now.
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that killed saves to ``path`` on this host left behind."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)@([A-Za-z0-9]*)\.[A-Za-z0-9_]+\.tmp")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or match[2] != _HOST or int(match[1]) == os.getpid():
            continue
        try:
            os.kill(int(match[1]), 0)
            continue  # its writer is alive
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        with contextlib.suppress(OSError):
            os.unlink(path.parent / name)


def save(obj: Any, path: str | os.PathLike[str], pickle_module: Any = None, pickle_protocol: int = 2,
         _use_new_zipfile_serialization: bool = True) -> None:  # fmt: skip
    """Save ``obj`` (see the module docstring for what it may contain) to the HDF5 file ``path``.
    PyTorch's other arguments are accepted and have no effect (nothing is pickled).

    The write is atomic: ``path`` is either left untouched (on any error, including a crash or a full
    disk) or replaced by the complete new checkpoint. The file gets the mode of the file it replaces,
    or 0o644. Temporary files left by saves to ``path`` that were killed are deleted.

    Raises:
        TypeError: an unsupported value or a non-``str`` dict key; the message names the key path.
        ValueError: a circular reference, or nesting deeper than :data:`MAX_DEPTH`.
        OSError: the file cannot be written (a full disk, no permission); the message names ``path``.
    """
    path = Path(path)
    image = _image(obj)  # every error about the content comes before anything touches the disk
    directory = path.parent
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o644
    tmp = None
    try:
        _remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp")
        try:
            _write_all(fd, image)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:
            raise OSError(e.errno, f"save: cannot write the checkpoint ({e.strerror})", str(path)) from e
        raise
    if os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            _fsync_path(directory, directory=True)


# ----------------------------------------------------------------------------------------------------
# Reading. Nothing in the file is trusted: every link is checked before it is followed, every dataset
# before it is read (see tinygrad_cnn.safe_io), and the structure must be one that save() writes.

_GROUP_TAGS = ("dict", "intdict", "list", "none", "wrapped")
_TENSOR_TAGS = ("tensor", "tensor_requires_grad")
_INT_KEY = re.compile(r"-?[1-9][0-9]{0,30}|0")
_SCALAR_TAGS = ("npscalar", "int", "float", "bool")
_BYTES_TAGS = ("bigint", "str")


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


def _read_leaf(ds: h5py.Dataset, tag: str | None) -> Any:
    if tag in _SCALAR_TAGS and ds.shape != ():
        raise UnsafeFileError(f"member {ds.name!r} of type {tag!r} has shape {ds.shape}, not a scalar")
    if tag in _BYTES_TAGS and (ds.dtype != np.uint8 or ds.ndim != 1):
        raise UnsafeFileError(f"member {ds.name!r} of type {tag!r} is not a 1-D uint8 array")
    if tag not in _SCALAR_TAGS + _BYTES_TAGS + _TENSOR_TAGS + ("ndarray",):
        raise UnsafeFileError(f"member {ds.name!r} has unknown type {tag!r}")
    value = ds[()]
    if tag == "ndarray":
        return value if isinstance(value, np.ndarray) else np.asarray(value)
    if tag in _TENSOR_TAGS:
        array = np.asarray(value)
        if tag == "tensor_requires_grad" and array.dtype.kind != "f":
            raise UnsafeFileError(f"member {ds.name!r} requires grad but holds {array.dtype} data")
        return Tensor.wrap(array).requires_grad_(tag == "tensor_requires_grad")
    if tag == "npscalar":
        return value
    if tag == "int":
        return int(value)
    if tag == "float":
        return float(value)
    if tag == "bool":
        return bool(value)
    data = np.asarray(value, dtype=np.uint8).tobytes()
    if tag == "bigint":
        return int(data.decode("ascii"))
    return data.decode("utf-8", "surrogatepass")


def _group_members(group: h5py.Group, tag: str | None) -> tuple[Any, list[tuple[str, Any]]]:
    """The empty container a group of type ``tag`` loads as, and (link name, key in it) of its members."""
    names = _names_in_creation_order(group)  # link names only: nothing is followed here
    if tag == "dict":
        keys = [_unescape_key(n) for n in names]
        container: Any = dict.fromkeys(keys)  # keeps the saved order; values filled in below
        if len(container) != len(names):
            raise UnsafeFileError(f"group {group.name!r} has two members with the same key")
        return container, list(zip(names, keys))
    if tag == "intdict":
        if not all(_INT_KEY.fullmatch(n) for n in names):
            raise UnsafeFileError(f"group {group.name!r} of int keys has a member that is not an integer")
        return dict.fromkeys(int(n) for n in names), [(n, int(n)) for n in names]
    if tag == "list":
        if sorted(names, key=lambda n: (len(n), n)) != [str(i) for i in range(len(names))]:
            raise UnsafeFileError(f"list {group.name!r} has members other than 0..{len(names) - 1}")
        return [None] * len(names), [(n, int(n)) for n in names]
    if tag == "none":
        if names:
            raise UnsafeFileError(f"group {group.name!r} stands for None but has members")
        return None, []
    if tag == "wrapped":
        if names != [_ROOT_VALUE]:
            raise UnsafeFileError(f"group {group.name!r} must hold exactly one member {_ROOT_VALUE!r}")
        return None, [(_ROOT_VALUE, None)]
    raise UnsafeFileError(f"group {group.name!r} has unknown type {tag!r}")


def _read_tree(root: h5py.File, size_of_file: int) -> Any:
    """Read what :func:`save` wrote, checking every link and dataset first. The file must be a tree of
    hard links (each object linked once), at most :data:`MAX_DEPTH` deep, whose datasets are numeric,
    stored contiguously in the file, and together declare no more bytes than the file has."""
    budget = size_of_file
    seen: set[int] = set()
    result: list[Any] = [None]
    # (object, depth, container to put its value in, key in that container); None as key: the root slot
    stack: list[tuple[h5py.Group | h5py.Dataset, int, Any, Any]] = [(root, 0, result, 0)]
    while stack:
        node, depth, parent, key = stack.pop()
        links, address = object_address(node)
        if links != 1 or address in seen:
            raise UnsafeFileError(f"object {node.name!r} is linked more than once (save writes a tree)")
        seen.add(address)
        tag = read_string_attr(node, _TYPE_ATTR)
        if isinstance(node, h5py.Dataset):
            budget -= check_dataset(node, node.name, size_of_file, allow_compression=False, max_bytes=budget)
            parent[key] = _read_leaf(node, tag)
            continue
        if depth > MAX_DEPTH:
            raise UnsafeFileError(f"group {node.name!r} is nested more than {MAX_DEPTH} levels deep")
        container, members = _group_members(node, tag)
        if tag == "wrapped":  # its one member's value goes where the group's would
            stack.append((hard_child(node, _ROOT_VALUE, node.name), depth + 1, parent, key))
            continue
        parent[key] = container
        for name, member_key in reversed(members):
            where = f"{node.name.rstrip('/')}/{name}"
            stack.append((hard_child(node, name, where), depth + 1, container, member_key))
    return result[0]


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


def _check_header(fh: Any, path: Path) -> None:
    """Verify the header written by :func:`save` before HDF5 parses the file."""
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


def load(path: str | os.PathLike[str], map_location: Any = None, pickle_module: Any = None, *,
         weights_only: bool | None = None, mmap: bool | None = None, **pickle_load_args: Any) -> Any:  # fmt: skip
    """Load a checkpoint written by :func:`save`. Loading never runs code from the file.

    PyTorch's other arguments are accepted: nothing is ever unpickled, so every load is as safe as
    ``weights_only=True``; ``map_location`` may only name the CPU.

    Returns the saved structure; tuples come back as lists, Tensors as Tensors, other tensor-like
    objects (a PyTorch tensor) as ``np.ndarray``.
    Only what :func:`save` writes is accepted: a tree of plain groups and numeric datasets stored in the
    file itself. Links to other objects or files, external storage, virtual datasets, compression,
    fill values, non-numeric types and sizes the file cannot back are refused before anything is read,
    so a crafted file can neither read other files nor make the loader allocate much more than its size.

    Raises:
        CheckpointError: the file is missing, not a regular file, not a valid HDF5 file (truncated or
            foreign), not a tinygrad_cnn checkpoint, from a newer format version, damaged (checksum
            mismatch, unreadable members) or refused as unsafe. The message names the path.
    """
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        require_cpu(map_location)  # a clear error for anything but the CPU
    path = Path(path)
    try:
        with open_regular(path) as fh:
            _check_header(fh, path)
            fh.seek(0)
            try:
                f = h5py.File(fh, "r")
            except Exception as e:  # h5py raises OSError, but a damaged file can surface as other errors too
                raise CheckpointError(f"{path}: not a valid HDF5 file (truncated or foreign?): {e}") from e
            with f:
                return _load_checked(f, path, file_size(fh))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except UnsafeFileError as e:
        raise CheckpointError(f"{path}: refused: {e}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e}") from e


def _load_checked(f: h5py.File, path: Path, size_of_file: int) -> Any:
    """Validate the marker and version of an open checkpoint, then read it."""
    try:
        version = read_string_attr(f, FORMAT_ATTR)
    except UnsafeFileError:
        version = "unreadable"
    if version is None:
        raise CheckpointError(f"{path}: not a tinygrad_cnn checkpoint (no '{FORMAT_ATTR}' attribute)")
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: bad '{FORMAT_ATTR}' attribute {version!r}") from None
    if number > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {number} is newer than this version of tinygrad_cnn "
            f"supports ({FORMAT_VERSION}); upgrade tinygrad_cnn"
        )
    if number < 1:
        raise CheckpointError(f"{path}: bad '{FORMAT_ATTR}' attribute {version!r}")
    try:
        return _read_tree(f, size_of_file)
    except (CheckpointError, UnsafeFileError):
        raise
    except Exception as e:  # whatever a damaged file makes h5py or the reader raise
        raise CheckpointError(f"{path}: corrupt checkpoint (truncated or damaged?): {type(e).__name__}: {e}") from e
