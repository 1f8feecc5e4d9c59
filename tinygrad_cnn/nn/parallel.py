"""Data-parallel training across processes, shaped like ``torch.nn.parallel``.

Each rank (a process started by ``mpiexec``) holds a full copy of the model and computes the
gradient of its own part of every batch; :class:`DistributedDataParallel` makes the copies start
equal and stay equal::

    dist.init_process_group(backend="mpi")
    model = DistributedDataParallel(Net())          # rank 0's initial parameters on every rank
    loss = F.cross_entropy(model(images_of_this_rank), labels_of_this_rank)
    loss.backward()                                  # .grad is now the average over the ranks
    optimizer.step()                                 # the same step on every rank

With a mean-reduced loss and equal shards, the averaged gradient is the gradient of the mean
loss over the whole (global) batch, so N ranks with ``batch_size / N`` samples each train as one
process with ``batch_size`` does, up to float rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..tensor import Tensor
from . import Module, Parameter


class _Bucket:
    """Parameters of one dtype whose gradients travel together in one flat, contiguous buffer."""

    def __init__(self, params: list[Parameter]) -> None:
        self.params = params
        sizes = [p.size for p in params]
        self.bounds = np.cumsum([0] + sizes)
        self.flat = np.empty(int(self.bounds[-1]), params[0].dtype)
        self.ready = 0  # parameters whose gradient this backward has delivered so far

    def views(self) -> Iterator[tuple[Parameter, np.ndarray]]:
        """Each parameter with its slice of the flat buffer, shaped like the parameter."""
        for p, lo, hi in zip(self.params, self.bounds[:-1], self.bounds[1:]):
            yield p, self.flat[lo:hi].reshape(p.shape)


def _grad_array(p: Parameter) -> np.ndarray:
    """``p.grad`` as an array (it is one here, a Tensor in PyTorch's API); set by the backward that
    called the hook."""
    g = p.grad
    assert g is not None
    return g.data if isinstance(g, Tensor) else g


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training on the ranks of :mod:`tinygrad_cnn.distributed`.

    At construction, every parameter is broadcast from rank 0 (so all copies start equal). After
    each ``backward()``, the gradients are averaged over the ranks: the parameters, in reverse
    order of ``module.parameters()`` (roughly the order backward produces them), are packed into
    buckets of at most ``bucket_cap_mb`` megabytes of one dtype, and each bucket is averaged with
    one allreduce as soon as all of its parameters have their gradient. Every parameter must get
    a gradient in every backward (as with PyTorch's default ``find_unused_parameters=False``);
    one that did not is reported at the next forward.

    ``state_dict()`` keys start with ``module.`` as in PyTorch; save ``ddp.module.state_dict()``
    to load the checkpoint into an unwrapped model (on any number of ranks).
    """

    def __init__(self, module: Module, device_ids: Any = None, bucket_cap_mb: float = 25.0) -> None:
        from .. import distributed as dist  # needs the mpi extra: imported when a model is wrapped

        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        if device_ids is not None:
            raise ValueError("DistributedDataParallel: device_ids must be None (tinygrad_cnn runs on the CPU)")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        self._dist = dist
        self.world_size = dist.get_world_size()  # raises if init_process_group was not called
        self.module = module
        self._sync = True
        self._buckets = self._make_buckets([p for p in module.parameters() if p.requires_grad], bucket_cap_mb)
        self._bucket_of = {id(p): bucket for bucket in self._buckets for p in bucket.params}
        for bucket in self._buckets:  # rank 0's initial values everywhere
            for p, view in bucket.views():
                view[...] = p.data
            dist.broadcast(bucket.flat, src=0)
            for p, view in bucket.views():
                np.copyto(p.data, view)
        self._handles = [p.register_post_accumulate_grad_hook(self._gradient_ready) for p in self._bucket_of_params()]

    def _bucket_of_params(self) -> Iterator[Parameter]:
        for bucket in self._buckets:
            yield from bucket.params

    @staticmethod
    def _make_buckets(params: list[Parameter], cap_mb: float) -> list[_Bucket]:
        buckets: list[_Bucket] = []
        open_: dict[np.dtype, list[Parameter]] = {}
        for p in reversed(params):
            group = open_.setdefault(p.dtype, [])
            if group and (sum(q.data.nbytes for q in group) + p.data.nbytes) > cap_mb * 2**20:
                buckets.append(_Bucket(group))
                group = open_[p.dtype] = []
            group.append(p)
        buckets.extend(_Bucket(group) for group in open_.values() if group)
        return buckets

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        late = [p for bucket in self._buckets if bucket.ready for p in bucket.params]
        if late:
            names = {id(p): name for name, p in self.module.named_parameters()}
            missing = [names[id(p)] for p in late if id(p) in names]
            for bucket in self._buckets:
                bucket.ready = 0
            raise RuntimeError(
                "DistributedDataParallel: the last backward gave no gradient to some parameters, so their "
                f"buckets were not averaged across ranks (bucket members: {', '.join(missing)}); every "
                "parameter must take part in the loss"
            )
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside this block, backward accumulates gradients locally without averaging them; the
        first backward after it averages everything accumulated (gradient accumulation)."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def _gradient_ready(self, p: Parameter) -> None:
        if not self._sync:
            return
        bucket = self._bucket_of[id(p)]
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            bucket.ready = 0
            self._average(bucket)

    def _average(self, bucket: _Bucket) -> None:
        for p, view in bucket.views():
            view[...] = _grad_array(p)
        self._dist.all_reduce(bucket.flat, op=self._dist.ReduceOp.AVG)
        for p, view in bucket.views():
            g = _grad_array(p)
            if g.flags.writeable:
                g[...] = view
            else:  # saved by a live graph: leave that array alone
                p.grad = view.copy() if not isinstance(p.grad, Tensor) else Tensor(view.copy())
