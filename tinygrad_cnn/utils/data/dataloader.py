"""DataLoader and default_collate, as ``torch.utils.data``.

``DataLoader(dataset, batch_size=1, shuffle=False, ...)`` draws indices from a sampler, fetches
the samples (``dataset[i]``, or ``dataset.__getitems__(indices)`` if defined), and merges each
batch with ``collate_fn``. Everything runs in the calling process: ``num_workers`` and
``pin_memory`` are accepted for compatibility and ignored (NumPy batches of in-memory data do
not gain from worker processes here, and there is no device memory to pin).
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..._tensor import Tensor
from ...random import Generator
from ...storage import array_of
from .dataset import Dataset, IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler


def default_collate(batch: Sequence[Any]) -> Any:
    """Merge a list of samples into a batch, as PyTorch: tensors and arrays are stacked into a
    Tensor (a new first dim), Python ints become an int64 Tensor and floats a float64 Tensor,
    strings stay a list, and dicts, tuples and lists are collated field by field."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor.wrap(np.stack([array_of(b) for b in batch]))
    if isinstance(elem, np.ndarray) and elem.dtype.kind in "biufc":
        return Tensor.wrap(np.stack(batch))
    if isinstance(elem, np.generic) and elem.dtype.kind in "biufc":
        return Tensor.wrap(np.array(batch))
    if isinstance(elem, bool):
        return Tensor.wrap(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor.wrap(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor.wrap(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([b[key] for b in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple keeps its type
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        return [default_collate(list(samples)) for samples in zip(*batch)]
    raise TypeError(
        "default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
        f"found {type(elem).__name__}"
    )


def default_convert(data: Any) -> Any:
    """What a DataLoader with ``batch_size=None`` does to each sample: arrays become Tensors."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "biufc":
        return Tensor.wrap(data)
    if isinstance(data, Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (list, tuple)):
        return [default_convert(d) for d in data]
    return data


class DataLoader:
    """Iterate over ``dataset`` in batches, as ``torch.utils.data.DataLoader``.

    Args:
        dataset: a map-style :class:`Dataset` (``__getitem__`` and ``__len__``) or an
            :class:`IterableDataset`.
        batch_size: samples per batch (None: yield samples one by one, not collated).
        shuffle: a new random order every epoch (a :class:`RandomSampler`).
        sampler: the order of indices (excludes ``shuffle``); batch_sampler: yields lists of
            indices (excludes batch_size, shuffle, sampler, drop_last).
        collate_fn: merges a list of samples (default :func:`default_collate`).
        drop_last: drop the last, smaller batch.
        generator: the random stream of ``shuffle`` (a :class:`tinygrad_cnn.Generator` or
            ``numpy.random.Generator``; default the library's, see :func:`tinygrad_cnn.manual_seed`).
        num_workers, pin_memory, timeout, worker_init_fn, prefetch_factor, persistent_workers:
            accepted and ignored (see the module docstring).
    """

    def __init__(
        self,
        dataset: Dataset[Any] | Sequence[Any],
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler[Any] | Iterable[int] | None = None,
        batch_sampler: Sampler[list[int]] | Iterable[list[int]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Generator | np.random.Generator | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
    ) -> None:
        if not hasattr(dataset, "__getitem__") and not hasattr(dataset, "__iter__"):
            raise TypeError(f"DataLoader: dataset must be a Dataset (or indexable), got {type(dataset).__name__}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative, got {num_workers!r}")
        self.dataset, self.num_workers, self.pin_memory, self.timeout = dataset, num_workers, pin_memory, timeout
        self.generator, self.drop_last = generator, drop_last
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified shuffle, sampler and batch_sampler"
                )
        elif batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                    "and drop_last"
                )
            batch_size = None
        elif batch_size is None and drop_last:
            raise ValueError(
                "DataLoader: batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
            )
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0
        ):
            raise ValueError(f"DataLoader: batch_size should be a positive integer value, got {batch_size!r}")
        if sampler is None and not self._iterable:
            sized: Any = dataset
            sampler = RandomSampler(sized, generator=generator) if shuffle else SequentialSampler(sized)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)  # type: ignore[arg-type]
        self.batch_size, self.sampler, self.batch_sampler = batch_size, sampler, batch_sampler
        auto = batch_size is not None or batch_sampler is not None
        self.collate_fn = collate_fn if collate_fn is not None else (default_collate if auto else default_convert)

    def _fetch(self, indices: list[int]) -> list[Any]:
        many = getattr(self.dataset, "__getitems__", None)
        return list(many(indices)) if many is not None else [self.dataset[i] for i in indices]

    def __iter__(self) -> Iterator[Any]:
        if self._iterable:
            return self._iter_stream()
        if self.batch_sampler is not None:
            return (self.collate_fn(self._fetch(list(b))) for b in self.batch_sampler)
        return (self.collate_fn(self.dataset[i]) for i in self.sampler)  # type: ignore[union-attr]

    def _iter_stream(self) -> Iterator[Any]:
        stream = iter(self.dataset)
        if self.batch_size is None:
            yield from (self.collate_fn(s) for s in stream)
            return
        batch: list[Any] = []
        for sample in stream:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # type: ignore[arg-type]
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)  # type: ignore[arg-type]


__all__ = ["DataLoader", "default_collate", "default_convert"]
