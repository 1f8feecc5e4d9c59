"""Helpers for the tests that hold a fast conv2d path (Winograd's) to the im2col path and to
PyTorch: the kernels run as conv2d runs them, inputs in any memory layout, results compared
relative to their largest value."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, kernels

LAYOUTS = {"nchw": [0, 1, 2, 3], "batch-inner": [2, 3, 0, 1], "nhwc": [0, 2, 3, 1], "chwn": [1, 2, 3, 0]}


def laid_out(a: np.ndarray, order: list[int]) -> np.ndarray:
    """a (N, C, H, W) copied into memory laid out in ``order`` (its axes, the outermost first)."""
    return np.ascontiguousarray(a.transpose(order)).transpose(kernels.inverse(order))


def conv_path(x, w, b, g, padding, needs, threads=1, keeps_cols=True) -> tuple[Any, ...]:
    """(y, dx, dw, db) of ``kernels.conv_forward`` and ``kernels.conv_grads`` at stride 1 on
    ``threads`` threads, g laid out as y is (as conv2d's backward gets it); ``keeps_cols=False``
    asserts that the forward kept no im2col matrix (a Winograd path)."""
    with tg.threads.exactly(threads):
        y, cols = kernels.conv_forward(x, w, b, (1, 1), (1, 1), padding)
        assert keeps_cols or cols is None
        return (y, *kernels.conv_grads(x, w, kernels.laid_out_like(g, y), (1, 1), (1, 1), padding, cols, needs))


def assert_close(got: Sequence[Any], want: Sequence[Any], dtype: Any, f32_tolerance: float) -> None:
    """Same shapes and dtypes (None where None), values within 1e-12 (float64) or ``f32_tolerance``
    of the largest magnitude of ``want``'s array (at least 1)."""
    for a, b in zip(got, want, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape and a.dtype == b.dtype
            scale = max(1.0, float(np.abs(b).max(initial=0)))
            np.testing.assert_allclose(a, b, rtol=0, atol=(1e-12 if dtype == np.float64 else f32_tolerance) * scale)


def assert_thread_free_and_batch_inner(got: Sequence[Any], on_three: Sequence[Any], dx_batch_inner: bool) -> None:
    """(y, dx, dw, db) on three threads bit for bit those on one; y laid out (OH, OW, N, C_out) in
    memory, and dx (H, W, N, C) where ``dx_batch_inner``."""
    for a, a3 in zip(got, on_three):
        assert (a is None and a3 is None) or np.array_equal(a, a3)
    y, gx = got[0], got[1]
    assert y.transpose(1, 2, 0, 3).flags.c_contiguous
    if gx is not None and dx_batch_inner:
        assert gx.transpose(2, 3, 0, 1).flags.c_contiguous


def against_pytorch(ours: Callable[..., Tensor], theirs: Callable[..., Any], arrays: Sequence[np.ndarray]) -> tuple:
    """(ours, PyTorch's) [y, and the gradients of every array] of ``ours(*tensors)`` and
    ``theirs(*torch_tensors)`` for the loss sum(y * g), g random of y's shape."""
    import torch

    mine = [Tensor(a, requires_grad=True) for a in arrays]
    torchs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, y_t = ours(*mine), theirs(*torchs)
    g = np.random.default_rng(len(arrays)).standard_normal(tuple(y_t.shape)).astype(arrays[0].dtype)
    (y * Tensor(g)).sum().backward()
    (y_t * torch.tensor(g)).sum().backward()
    return (
        [y.detach().numpy(), *(t.grad.numpy() for t in mine)],
        [y_t.detach().numpy(), *(t.grad.numpy() for t in torchs)],
    )
