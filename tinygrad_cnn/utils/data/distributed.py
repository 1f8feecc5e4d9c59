"""Each rank's share of a dataset, shaped like ``torch.utils.data.distributed.DistributedSampler``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .sampler import Sampler


class DistributedSampler(Sampler[int]):
    """The indices of ``dataset`` that rank ``rank`` of ``num_replicas`` uses in an epoch.

    Every epoch, the indices ``0..len(dataset)-1`` are put in one order that every rank computes
    alike (``np.random.default_rng([seed, epoch]).permutation``, or ``0, 1, ...`` without
    shuffling), then dealt out round-robin: rank ``r`` gets positions ``r, r + num_replicas, ...``.
    So the shards of one epoch do not overlap and together cover the dataset. Every rank gets the
    same number of indices, ``len(self)``, so that all take the same number of steps: with
    ``drop_last=False`` the order is padded by repeating its first indices (a few samples are
    then seen twice per epoch), with ``drop_last=True`` the tail that does not divide evenly is
    left out. Call :meth:`set_epoch` at the start of every epoch for a new order.

    ``num_replicas`` and ``rank`` default to the process group's (:mod:`tinygrad_cnn.distributed`).
    ``dataset`` is anything with a length (a Dataset, an array). Give it to a
    :class:`~tinygrad_cnn.utils.data.DataLoader` as ``sampler=``, or index arrays with :meth:`indices`.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            from ... import distributed as dist

            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not _is_int(num_replicas) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if not _is_int(rank) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be an int in [0, {num_replicas - 1}], got {rank!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be a non-negative int, got {seed!r}")
        self.dataset = dataset
        self.num_replicas, self.rank, self.seed = int(num_replicas), int(rank), int(seed)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        self.num_samples = n // self.num_replicas if self.drop_last else -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch (``int64``, ``len(self)`` of them)."""
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        if self.total_size > n:  # pad with the order's start (repeated as often as needed)
            order = np.resize(order, self.total_size)
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order next (the same epoch gives the same order on every rank and every run)."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
