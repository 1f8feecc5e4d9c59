"""Every name tinygrad_cnn shares with PyTorch means what it means in PyTorch.

One row per expression: it runs with ``lib`` bound to ``tinygrad_cnn`` and must give the fixed
expected value written here; where PyTorch is installed, the same expression with ``lib`` bound
to ``torch`` must give it too (so the expected values are PyTorch's, not ours). Values are
compared as arrays with their dtype's kind, shapes exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tinygrad_cnn as tg

try:
    import torch
except ImportError:  # the oracle is optional: the fixed values still pin the meaning
    torch = None


def _m(lib: Any) -> Any:
    return lib.tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])


def _grad_of(lib: Any, fn: Callable[[Any], Any], values: list[Any]) -> Any:
    x = lib.tensor(values, requires_grad=True)
    fn(x).sum().backward()
    return x.grad


def _sgd_step(lib: Any) -> Any:
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    w.data -= 0.5 * w.grad.data
    w.grad.zero_()
    return lib.stack([w.detach(), w.grad])


def _inplace_no_grad(lib: Any) -> Any:
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    (3 * w).sum().backward()
    with lib.no_grad():
        w -= 0.1 * w.grad
        w *= 2
    return w.detach()


def _inplace_on_intermediate(lib: Any) -> Any:
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 2
    y += 1
    y.relu_()
    y.sum().backward()
    return x.grad


# name: (expression of lib, expected value)
ROWS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "transpose(0, 1) swaps": (lambda lib: _m(lib).transpose(0, 1), [[1, 4], [5, 2], [3, 6]]),
    "transpose(1, 2) on 3-D": (lambda lib: lib.arange(6).reshape(1, 2, 3).transpose(1, 2).shape, (1, 3, 2)),
    "permute": (lambda lib: lib.zeros(2, 3, 4).permute(2, 0, 1).shape, (4, 2, 3)),
    "T of a matrix": (lambda lib: _m(lib).T, [[1, 4], [5, 2], [3, 6]]),
    "flatten() flattens all": (lambda lib: lib.zeros(2, 3, 4).flatten().shape, (24,)),
    "flatten(1)": (lambda lib: lib.zeros(2, 3, 4).flatten(1).shape, (2, 12)),
    "nn.Flatten keeps the batch dim": (lambda lib: lib.nn.Flatten()(lib.zeros(2, 3, 4)).shape, (2, 12)),
    "max(dim).values": (lambda lib: _m(lib).max(1).values, [5, 6]),
    "max(dim).indices": (lambda lib: _m(lib).max(1).indices, [1, 2]),
    "max(dim) unpacks": (lambda lib: list(_m(lib).max(0))[1], [1, 0, 1]),
    "max() is a 0-d tensor": (lambda lib: _m(lib).max(), 6.0),
    "torch.max(x, 1)[1]": (lambda lib: lib.max(_m(lib), 1)[1], [1, 2]),
    "torch.max(a, b) elementwise": (lambda lib: lib.max(_m(lib), lib.ones(2, 3) * 3), [[3, 5, 3], [4, 3, 6]]),
    "min(dim, keepdim)": (lambda lib: _m(lib).min(1, keepdim=True).values, [[1], [2]]),
    "argmax(dim)": (lambda lib: _m(lib).argmax(dim=1), [1, 2]),
    "argmax() flat": (lambda lib: _m(lib).argmax(), 5),
    "argmax ties: first": (lambda lib: lib.tensor([2.0, 7.0, 7.0]).argmax(), 1),
    "amax(dim)": (lambda lib: _m(lib).amax(0), [4, 5, 6]),
    "var() unbiased": (lambda lib: lib.tensor([1.0, 2.0, 3.0, 4.0]).var(), 5 / 3),
    "var(unbiased=False)": (lambda lib: lib.tensor([1.0, 2.0, 3.0, 4.0]).var(unbiased=False), 1.25),
    "var(correction=0)": (lambda lib: lib.tensor([1.0, 2.0, 3.0, 4.0]).var(correction=0), 1.25),
    "std(dim)": (lambda lib: lib.tensor([[1.0, 3.0], [2.0, 2.0]]).std(1), [np.sqrt(2), 0.0]),
    "sum(dim, keepdim)": (lambda lib: _m(lib).sum(dim=0, keepdim=True), [[5, 7, 9]]),
    "sum(axis=) alias": (lambda lib: _m(lib).sum(axis=1), [9, 12]),
    "mean(dim)": (lambda lib: _m(lib).mean(1), [3, 4]),
    "int + float32 is float32": (lambda lib: (lib.tensor([1, 2]) + lib.tensor([0.5, 0.5])).dtype == lib.float32, True),
    "int + 2.5 is float32": (lambda lib: (lib.tensor([1, 2]) + 2.5).dtype == lib.float32, True),
    "float32 + python float stays": (lambda lib: (lib.ones(2) * 2.0).dtype == lib.float32, True),
    "int / int is float": (lambda lib: lib.tensor([3, 4]) / lib.tensor([2, 2]), [1.5, 2.0]),
    "int // int": (lambda lib: lib.tensor([7, -7]) // 2, [3, -4]),
    "sum of ints is int64": (lambda lib: lib.tensor([1, 2], dtype=lib.int32).sum().dtype == lib.int64, True),
    ".grad is a Tensor": (lambda lib: isinstance(_grad_of(lib, lambda x: x * x, [1.0, 2.0]), lib.Tensor), True),
    ".data is a detached Tensor": (lambda lib: isinstance(lib.ones(2, requires_grad=True).data, lib.Tensor), True),
    ".data requires no grad": (lambda lib: lib.ones(2, requires_grad=True).data.requires_grad, False),
    "w.data -= lr * w.grad.data; w.grad.zero_()": (_sgd_step, [[0.0, 0.0], [0.0, 0.0]]),
    "in-place under no_grad": (_inplace_no_grad, [1.4, 3.4]),
    "in-place on an intermediate": (_inplace_on_intermediate, [2.0, 0.0, 2.0]),
    "size()": (lambda lib: tuple(lib.zeros(2, 3).size()), (2, 3)),
    "size(1)": (lambda lib: lib.zeros(2, 3).size(1), 3),
    "numel()": (lambda lib: lib.zeros(2, 3).numel(), 6),
    "dim()": (lambda lib: lib.zeros(2, 3).dim(), 2),
    "view(-1, 2)": (lambda lib: lib.arange(6).view(-1, 2).shape, (3, 2)),
    "unsqueeze(0)": (lambda lib: lib.zeros(3).unsqueeze(0).shape, (1, 3)),
    "squeeze()": (lambda lib: lib.zeros(1, 3, 1).squeeze().shape, (3,)),
    "squeeze(0) on a dim of 3 keeps it": (lambda lib: lib.zeros(3, 1).squeeze(0).shape, (3, 1)),
    "expand(-1, 4)": (lambda lib: lib.zeros(3, 1).expand(-1, 4).shape, (3, 4)),
    "repeat(2, 1)": (lambda lib: lib.tensor([[1, 2]]).repeat(2, 2), [[1, 2, 1, 2], [1, 2, 1, 2]]),
    "cat(dim=1)": (lambda lib: lib.cat([lib.zeros(2, 1), lib.ones(2, 2)], dim=1), [[0, 1, 1], [0, 1, 1]]),
    "stack": (lambda lib: lib.stack([lib.zeros(2), lib.ones(2)], 1), [[0, 1], [0, 1]]),
    "split(2)": (lambda lib: [t.shape[0] for t in lib.arange(5).split(2)], [2, 2, 1]),
    "chunk(3)": (lambda lib: [t.shape[0] for t in lib.arange(5).chunk(3)], [2, 2, 1]),
    "gather": (lambda lib: lib.gather(_m(lib), 1, lib.tensor([[2], [0]])), [[3], [4]]),
    "where": (lambda lib: lib.where(_m(lib) > 3, _m(lib), lib.zeros(2, 3)), [[0, 5, 0], [4, 0, 6]]),
    "clamp(min=2, max=4)": (lambda lib: _m(lib).clamp(min=2, max=4), [[2, 4, 3], [4, 2, 4]]),
    "eq": (lambda lib: lib.tensor([1, 2]).eq(lib.tensor([1, 3])), [True, False]),
    "float()": (lambda lib: lib.tensor([1, 2]).float().dtype == lib.float32, True),
    "long()": (lambda lib: lib.tensor([1.7, -1.7]).long(), [1, -1]),
    "item()": (lambda lib: lib.tensor([[2.5]]).item(), 2.5),
    "tolist()": (lambda lib: lib.tensor([[1, 2]]).tolist(), [[1, 2]]),
    "zeros_like dtype": (lambda lib: lib.zeros_like(lib.tensor([1, 2])).dtype == lib.int64, True),
    "arange float": (lambda lib: lib.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75]),
    "linspace": (lambda lib: lib.linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1]),
    "eye": (lambda lib: lib.eye(2), [[1, 0], [0, 1]]),
    "full dtype follows the value": (lambda lib: lib.full((2,), 7).dtype == lib.int64, True),
    "softmax(dim)": (lambda lib: lib.softmax(lib.tensor([[0.0, 0.0]]), dim=1), [[0.5, 0.5]]),
    "logsumexp(dim)": (lambda lib: lib.logsumexp(lib.zeros(2, 2), dim=1), [np.log(2)] * 2),
    "norm()": (lambda lib: lib.tensor([3.0, 4.0]).norm(), 5.0),
    "prod(dim)": (lambda lib: _m(lib).prod(1), [15, 48]),
    "einsum": (lambda lib: lib.einsum("ij->j", _m(lib)), [5, 7, 9]),
    "bmm": (lambda lib: lib.bmm(lib.ones(2, 1, 3), lib.ones(2, 3, 1)).shape, (2, 1, 1)),
    "matmul": (lambda lib: _m(lib) @ lib.ones(3), [9, 12]),
    "all() / any()": (lambda lib: [bool((_m(lib) > 0).all()), bool((_m(lib) > 5).any())], [True, True]),
    "max gradient (dim): first": (lambda lib: _grad_of(lib, lambda x: x.max(0).values, [2.0, 2.0]), [1.0, 0.0]),
    "max gradient (no dim): split": (lambda lib: _grad_of(lib, lambda x: x.max(), [2.0, 2.0]), [0.5, 0.5]),
    "relu gradient at 0": (lambda lib: _grad_of(lib, lambda x: x.relu(), [0.0]), [0.0]),
    "clamp gradient at the bound": (lambda lib: _grad_of(lib, lambda x: x.clamp(min=1.0), [1.0]), [1.0]),
    "is_leaf / grad_fn": (
        lambda lib: [lib.ones(1).is_leaf, (lib.ones(1, requires_grad=True) * 2).grad_fn is None],
        [True, False],
    ),
    "device('cpu')": (lambda lib: str(lib.zeros(1).to(lib.device("cpu")).device), "cpu"),
    "cuda.is_available()": (lambda lib: lib.cuda.is_available(), False),
    "Conv1d weight (out, in // groups, k)": (lambda lib: lib.nn.Conv1d(4, 6, 3, groups=2).weight.shape, (6, 2, 3)),
    "max_pool1d indices are positions along L": (
        lambda lib: lib.nn.functional.max_pool1d(lib.tensor([[[1.0, 3.0, 2.0, 5.0]]]), 2, return_indices=True)[1],
        [[[1, 3]]],
    ),
    "AvgPool1d repr holds 1-tuples": (
        lambda lib: repr(lib.nn.AvgPool1d(3)) == "AvgPool1d(kernel_size=(3,), stride=(3,), padding=(0,))", True
    ),
    "InstanceNorm2d has no parameters by default": (lambda lib: len(list(lib.nn.InstanceNorm2d(3).parameters())), 0),
    "UpsamplingBilinear2d aligns corners": (
        lambda lib: lib.nn.UpsamplingBilinear2d(size=(1, 3))(lib.tensor([[[[0.0, 2.0]]]])), [[[[0.0, 1.0, 2.0]]]]
    ),
    "pixel_shuffle order": (
        lambda lib: lib.nn.functional.pixel_shuffle(lib.arange(4.0).reshape(1, 4, 1, 1), 2), [[[[0, 1], [2, 3]]]]
    ),
    "channel_shuffle order": (
        lambda lib: lib.nn.functional.channel_shuffle(lib.arange(6.0).reshape(1, 6, 1), 2).flatten(), [0, 3, 1, 4, 2, 5]
    ),
    "circular pad crops, then wraps": (
        lambda lib: lib.nn.functional.pad(lib.arange(5.0).reshape(1, 5), (-1, 2), mode="circular"), [[1, 2, 3, 4, 1, 2]]
    ),
}  # fmt: skip


def _as_value(v: Any) -> Any:
    if isinstance(v, tg.Tensor) or (torch is not None and isinstance(v, torch.Tensor)):
        return np.asarray(v.detach().numpy())
    return v


def _same(got: Any, want: Any, what: str) -> None:
    got = _as_value(got)
    if isinstance(want, (bool, str, tuple)) or want is None:
        assert (tuple(got) if isinstance(want, tuple) else got) == want, f"{what}: {got!r} != {want!r}"
        return
    got_arr, want_arr = np.asarray(got), np.asarray(want)
    assert got_arr.shape == want_arr.shape, f"{what}: shape {got_arr.shape} != {want_arr.shape}"
    np.testing.assert_allclose(got_arr.astype(np.float64), want_arr.astype(np.float64), rtol=1e-6, err_msg=what)


@pytest.mark.parametrize("name", list(ROWS))
def test_shared_name_means_what_pytorch_means(name: str) -> None:
    expr, want = ROWS[name]
    _same(expr(tg), want, f"tinygrad_cnn: {name}")
    if torch is not None:
        _same(expr(torch), want, f"torch: {name}")


def test_numpy_refuses_a_tensor_that_requires_grad() -> None:
    x = tg.ones(2, requires_grad=True)
    message = "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
    for call in (x.numpy, lambda: np.asarray(x), lambda: np.exp(x)):
        with pytest.raises(RuntimeError) as e:
            call()
        assert str(e.value) == message
    np.testing.assert_array_equal(x.detach().numpy(), [1, 1])


def test_inplace_on_a_leaf_that_requires_grad_is_refused() -> None:
    w = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        w += 1
    with tg.no_grad():
        w += 1
    np.testing.assert_array_equal(w.detach().numpy(), [2, 2])


def test_other_devices_are_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="CPU only"):
        tg.zeros(1).to("cuda")
    for factory in (lambda: tg.zeros(1, device="mps"), lambda: tg.tensor([1.0], device=tg.device("cuda", 0))):
        with pytest.raises(RuntimeError, match="CPU only"):
            factory()
    with pytest.raises(RuntimeError, match="device type at start of device string: gpu"):
        tg.device("gpu")


def test_the_losses_in_functional_are_nn_functionals() -> None:
    """One implementation, PyTorch's arguments: the third positional argument is ``weight``, not ``reduction``."""
    import tinygrad_cnn.functional as F
    import tinygrad_cnn.nn.functional as NF

    for name in ("cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"):
        assert getattr(F, name) is getattr(NF, name), name
        assert name in dir(F), name  # found by tab completion too
    logits, labels = tg.Tensor(np.array([[2.0, 0.0], [0.0, 1.0]])), np.array([0, 0])
    weighted = F.cross_entropy(logits, labels, tg.Tensor(np.array([3.0, 1.0])), reduction="sum")
    assert weighted.item() == pytest.approx(3 * F.cross_entropy(logits, labels, reduction="sum").item())
