"""The expressions of PyTorch's own tutorials, run on tinygrad_cnn as a renamed import would run them.

Each test is written here in our own words, as one function of a module ``lib`` that is
tinygrad_cnn and, when it is installed, torch: the two results must agree (the oracle part), and a
fixed value written below pins them when torch is absent. Each test names the public tutorial of
github.com/pytorch/tutorials it was checked against (its whole script was run with ``torch``
renamed to ``tinygrad_cnn``, and its printed output compared with PyTorch 2.13's). Random
initial values are replaced by fixed ones, since the two libraries' generators differ.
"""

from __future__ import annotations

import math
import random
import types
from typing import Any

import numpy as np
import pytest

import tinygrad_cnn as tg

try:
    import torch
except ImportError:  # the oracle is optional
    torch = None

LIBS = [tg] if torch is None else [tg, torch]


def numbers(value: Any) -> Any:
    """Tensors (also inside tuples and lists) as NumPy arrays, for comparing."""
    if isinstance(value, (tuple, list)):
        return type(value)(numbers(v) for v in value)
    if hasattr(value, "detach"):
        return np.array(value.detach().numpy())
    return value


def agree(case: Any, rtol: float = 1e-5, atol: float = 1e-6) -> Any:
    """``case(lib)`` on tinygrad_cnn and on torch (when installed): equal results; returns ours."""
    ours = numbers(case(tg))
    if torch is not None:
        _same(ours, numbers(case(torch)), rtol, atol)
    return ours


def _same(a: Any, b: Any, rtol: float, atol: float) -> None:
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y, rtol, atol)
    elif isinstance(a, (str, bool, type)) or a is None:
        assert a == b
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def text(t: Any) -> str:
    """``str(t)`` with the two spellings that differ on purpose made equal (docs/pytorch.md)."""
    return str(t).replace("dtype=torch.", "dtype=").replace("Backward0>", "Backward>")


# --------------------------------------------------------------------------- tensors


def test_tensor_basics() -> None:
    """Checked against beginner_source/basics/tensorqs_tutorial.py and blitz/tensor_tutorial.py."""

    def case(lib: types.ModuleType) -> Any:
        from_list = lib.tensor([[1, 2], [3, 4]])
        like = lib.ones_like(from_list)
        floats = lib.rand_like(from_list, dtype=lib.float)
        grid = lib.ones(4, 4)
        rows = (grid[0], grid[:, 0], grid[..., -1])
        grid[:, 1] = 0  # item assignment of a column
        joined = lib.cat([grid, grid, grid], dim=1)
        product = lib.rand_like(grid)
        lib.matmul(grid, grid.T, out=product)
        squares = lib.rand_like(grid)
        returned = lib.mul(grid, grid, out=squares)
        total = grid.sum().item()
        grid.add_(5)
        doubles = lib.tensor([5.5, 3]).new_ones(5, 3, dtype=lib.double)
        added = lib.empty(5, 3)
        lib.add(doubles, 1, out=added)  # a float64 result written into a float32 tensor
        viewed = lib.arange(16.0).reshape(4, 4)
        return (
            str(from_list.dtype).replace("torch.", ""),
            str(like.dtype).replace("torch.", ""),
            str(floats.dtype).replace("torch.", ""),
            tuple(floats.shape),
            rows,
            joined,
            product,
            returned is squares,
            squares,
            type(total),
            total,
            grid,
            doubles,
            added,
            tuple(viewed.view(16).shape),
            tuple(viewed.view(-1, 8).shape),
            str(viewed.device),
            viewed.device.type,
        )

    result = agree(case)
    assert result[0:4] == ("int64", "int64", "float32", (2, 2))
    np.testing.assert_array_equal(result[6], np.full((4, 4), 3.0))
    assert result[7] is True and result[9] is float and result[10] == 12.0
    np.testing.assert_array_equal(result[11][0], [6.0, 5.0, 6.0, 6.0])
    assert result[14:] == ((16,), (2, 8), "cpu", "cpu")


def test_numpy_bridge_shares_memory_both_ways() -> None:
    """Checked against the "Bridge with NumPy" part of beginner_source/basics/tensorqs_tutorial.py."""

    def case(lib: types.ModuleType) -> Any:
        t = lib.ones(5)
        n = t.numpy()
        t.add_(1)  # seen through n
        a = np.ones(5)
        from_a = lib.from_numpy(a)
        np.add(a, 1, out=a)  # seen through from_a
        return n.copy(), from_a, str(from_a.dtype).replace("torch.", "")

    n, from_a, dtype = agree(case)
    np.testing.assert_array_equal(n, [2.0] * 5)
    np.testing.assert_array_equal(from_a, [2.0] * 5)
    assert dtype == "float64"


def test_printed_tensors_read_as_pytorchs() -> None:
    """The tutorials print tensors: the same text, but for the spelling of dtypes and grad_fn names."""
    shown = [
        ([5.5, 3], "tensor([5.5000, 3.0000])"),
        ([[1.0, 0.0], [1.0, 1.0]], "tensor([[1., 0.],\n        [1., 1.]])"),
        ([1e-5, 1.0], "tensor([1.0000e-05, 1.0000e+00])"),
        ([102.4, 1024.0, 0.1024], "tensor([1.0240e+02, 1.0240e+03, 1.0240e-01])"),
        ([[1.5, -2.25], [3.0, 4.125]], "tensor([[ 1.5000, -2.2500],\n        [ 3.0000,  4.1250]])"),
        ([float("inf"), 1.5, float("nan")], "tensor([   inf, 1.5000,    nan])"),
        ([[1, -20], [300, 4]], "tensor([[  1, -20],\n        [300,   4]])"),
    ]
    for values, expected in shown:
        for lib in LIBS:
            assert text(lib.tensor(values)) == expected
    for lib in LIBS:
        x = lib.ones(2, 2, requires_grad=True)
        assert text(x) == "tensor([[1., 1.],\n        [1., 1.]], requires_grad=True)"
        assert text(x + 2) == "tensor([[3., 3.],\n        [3., 3.]], grad_fn=<AddBackward>)"
        assert text(lib.ones(2, dtype=lib.float64) / 3) == "tensor([0.3333, 0.3333], dtype=float64)"
        assert text(lib.linspace(0, 1, 12)).count("\n") == 1  # wrapped at 80 characters


def test_devices_can_be_named() -> None:
    """Checked against beginner_source/basics/tensorqs_tutorial.py, which builds torch.device('cuda')
    to read its index before testing torch.cuda.is_available()."""
    for lib in LIBS:
        cuda, cuda1, cpu = lib.device("cuda"), lib.device("cuda:1"), lib.device("cpu")
        assert (cuda.type, cuda.index, cuda1.index, str(cuda1), cpu.type, cpu.index) == (
            "cuda",
            None,
            1,
            "cuda:1",
            "cpu",
            None,
        )
        assert repr(cuda1) == "device(type='cuda', index=1)" and lib.device("cuda", 1) == cuda1 != cuda
        assert lib.ones(1).device == cpu and lib.ones(1).device.type == "cpu"
    assert not tg.cuda.is_available()
    with pytest.raises(RuntimeError, match="CPU only"):
        tg.ones(1).to(tg.device("cuda"))


def test_out_argument() -> None:
    """torch.matmul(a, b, out=c) and torch.add(x, y, out=r), as the two tensor tutorials write them."""

    def case(lib: types.ModuleType) -> Any:
        a = lib.arange(6.0).reshape(2, 3)
        into = lib.zeros(2, 2)
        kept = lib.matmul(a, a.T, out=into)
        ints = lib.zeros(3, dtype=lib.float64)
        lib.add(lib.tensor([1, 2, 3]), 1, out=ints)  # int result, float out: cast
        values, indices = lib.max(a, 1, out=(lib.empty(2), lib.empty(2, dtype=lib.long)))
        return kept is into, into, ints, values, indices

    same, into, ints, values, indices = agree(case)
    assert same
    np.testing.assert_array_equal(into, [[5.0, 14.0], [14.0, 50.0]])
    np.testing.assert_array_equal(ints, [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(values, [2.0, 5.0])
    np.testing.assert_array_equal(indices, [2, 2])
    for lib in LIBS:
        w = lib.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
            lib.mul(w, 2, out=lib.zeros(2))
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            lib.mul(lib.ones(2), 0.5, out=lib.zeros(2, dtype=lib.long))
        with pytest.warns(UserWarning, match="resized"):
            resized = lib.add(lib.ones(3), 1, out=lib.zeros(2))
        assert tuple(resized.shape) == (3,)


# --------------------------------------------------------------------------- autograd


def test_autograd_basics() -> None:
    """Checked against beginner_source/basics/autogradqs_tutorial.py."""

    def case(lib: types.ModuleType) -> Any:
        x = lib.ones(5)
        y = lib.zeros(3)
        w = lib.tensor(np.linspace(-1, 1, 15).reshape(5, 3).astype(np.float32), requires_grad=True)
        b = lib.tensor([0.1, -0.2, 0.3], requires_grad=True)
        z = lib.matmul(x, w) + b
        loss = lib.nn.functional.binary_cross_entropy_with_logits(z, y)
        loss.backward()
        with lib.no_grad():
            unrecorded = lib.matmul(x, w) + b
        flags = (z.requires_grad, unrecorded.requires_grad, z.detach().requires_grad)
        inp = lib.eye(4, 5, requires_grad=True)
        out = (inp + 1).pow(2).t()
        out.backward(lib.ones_like(out), retain_graph=True)
        first = inp.grad.clone()
        out.backward(lib.ones_like(out), retain_graph=True)
        second = inp.grad.clone()
        inp.grad.zero_()
        out.backward(lib.ones_like(out), retain_graph=True)
        return loss, w.grad, b.grad, flags, first, second, inp.grad

    loss, gw, gb, flags, first, second, zeroed = agree(case)
    assert flags == (True, False, False)
    np.testing.assert_allclose(loss, 0.78477, atol=1e-5)
    np.testing.assert_allclose(gb, [0.11703, 0.15006, 0.24462], atol=1e-5)
    np.testing.assert_allclose(gw, np.tile(gb, (5, 1)), rtol=1e-6)  # x is all ones
    np.testing.assert_array_equal(first, 2 * (np.eye(4, 5) + 1))
    np.testing.assert_array_equal(second, 2 * first)
    np.testing.assert_array_equal(zeroed, first)


def test_blitz_autograd() -> None:
    """Checked against beginner_source/blitz/autograd_tutorial.py."""

    def case(lib: types.ModuleType) -> Any:
        x = lib.ones(2, 2, requires_grad=True)
        y = x + 2
        z = y * y * 3
        out = z.mean()
        a = lib.tensor([[0.5, -2.0], [3.0, 0.25]])
        a = (a * 3) / (a - 1)
        before = a.requires_grad
        a.requires_grad_(True)
        out.backward()
        v = lib.tensor([0.3, -1.2, 0.7], requires_grad=True)
        doubled = v * 2
        while doubled.data.norm() < 1000:
            doubled = doubled * 2
        doubled.backward(lib.tensor([0.1, 1.0, 0.0001], dtype=lib.float))
        with lib.no_grad():
            inside = (v**2).requires_grad
        return z, out, x.grad, before, a.requires_grad, (a * a).sum().grad_fn is not None, doubled, v.grad, inside

    z, out, gx, before, after, recorded, doubled, gv, inside = agree(case)
    assert float(out) == 27.0 and (before, after, recorded, inside) == (False, True, True, False)
    np.testing.assert_array_equal(gx, np.full((2, 2), 4.5))
    np.testing.assert_allclose(doubled, [307.2, -1228.8, 716.8], rtol=1e-6)
    np.testing.assert_allclose(gv, [102.4, 1024.0, 0.1024], rtol=1e-6)


# --------------------------------------------------------------------------- "Learning PyTorch with examples"


def _sine_data(lib: types.ModuleType) -> tuple[Any, Any]:
    x = lib.linspace(-math.pi, math.pi, 2000)
    return x, lib.sin(x)


def test_polynomial_with_manual_gradients() -> None:
    """Checked against beginner_source/examples_tensor/polynomial_tensor.py (and polynomial_numpy.py)."""

    def case(lib: types.ModuleType) -> Any:
        x, y = _sine_data(lib)
        a, b, c, d = (lib.full((), v) for v in (0.1, -0.2, 0.3, -0.4))
        for _ in range(300):
            y_pred = a + b * x + c * x**2 + d * x**3
            grad_y_pred = 2.0 * (y_pred - y)
            grads = (grad_y_pred.sum(), (grad_y_pred * x).sum(), (grad_y_pred * x**2).sum(), (grad_y_pred * x**3).sum())
            for p, g in zip((a, b, c, d), grads):
                p -= 1e-6 * g
        return (y_pred - y).pow(2).sum().item(), a, b, c, d

    loss, *coefficients = agree(case, rtol=1e-4)
    np.testing.assert_allclose(loss, 311.24, atol=0.01)
    np.testing.assert_allclose(coefficients, [0.02789, 0.32278, -0.00481, -0.01738], atol=1e-5)


def test_polynomial_with_autograd_and_a_custom_function() -> None:
    """Checked against beginner_source/examples_autograd/polynomial_autograd.py and
    polynomial_custom_function.py (whose Legendre P3 Function tests/test_custom_function.py covers)."""

    def case(lib: types.ModuleType) -> Any:
        class Legendre3(lib.autograd.Function):
            @staticmethod
            def forward(ctx, t):
                ctx.save_for_backward(t)
                return 0.5 * (5 * t**3 - 3 * t)

            @staticmethod
            def backward(ctx, grad_out):
                (t,) = ctx.saved_tensors
                return grad_out * 1.5 * (5 * t**2 - 1)

        x, y = _sine_data(lib)
        results = []
        for model in ("plain", "legendre"):
            start = (0.0, -1.0, 0.0, 0.3) if model == "legendre" else (0.1, -0.2, 0.3, -0.4)
            a, b, c, d = (lib.full((), v, dtype=lib.float, requires_grad=True) for v in start)
            for _ in range(300):
                if model == "plain":
                    y_pred = a + b * x + c * x**2 + d * x**3
                else:
                    y_pred = a + b * Legendre3.apply(c + d * x)
                loss = (y_pred - y).pow(2).sum()
                loss.backward()
                with lib.no_grad():
                    for p in (a, b, c, d):
                        p -= 5e-6 * p.grad if model == "legendre" else 1e-6 * p.grad
                        p.grad = None
            results.append((loss.item(), a.item(), b.item(), c.item(), d.item()))
        return results

    plain, legendre = agree(case, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(plain, [311.24, 0.02789, 0.32278, -0.00481, -0.01738], atol=1e-2)
    np.testing.assert_allclose(legendre, [100.70, 0.0, -1.54712, 0.0, 0.24979], atol=1e-2)


def test_polynomial_with_nn_optim_and_modules() -> None:
    """Checked against beginner_source/examples_nn/polynomial_nn.py, polynomial_optim.py,
    polynomial_module.py and dynamic_net.py."""

    def case(lib: types.ModuleType) -> Any:
        x, y = _sine_data(lib)
        xx = x.unsqueeze(-1).pow(lib.tensor([1, 2, 3]))
        loss_fn = lib.nn.MSELoss(reduction="sum")
        losses = []

        def layered() -> Any:
            model = lib.nn.Sequential(lib.nn.Linear(3, 1), lib.nn.Flatten(0, 1))
            with lib.no_grad():
                model[0].weight.copy_(lib.tensor([[0.1, -0.2, 0.05]]))
                model[0].bias.fill_(0.3)
            return model

        model = layered()
        for _ in range(200):  # plain gradient descent on the parameters
            loss = loss_fn(model(xx), y)
            model.zero_grad()
            loss.backward()
            with lib.no_grad():
                for param in model.parameters():
                    param -= 1e-6 * param.grad
        losses.append(loss.item())
        weights = model[0].weight[:, 0].item(), model[0].bias.item()
        model = layered()
        optimizer = lib.optim.RMSprop(model.parameters(), lr=1e-3)
        for _ in range(200):  # (later steps oscillate by lr around the optimum: not comparable)
            loss = loss_fn(model(xx), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses.append(loss.item())

        class Cubic(lib.nn.Module):
            def __init__(self, extra_orders: bool) -> None:
                super().__init__()
                self.a, self.b, self.c, self.d = (lib.nn.Parameter(lib.full((), 0.1 * k)) for k in range(1, 5))
                if extra_orders:
                    self.e = lib.nn.Parameter(lib.full((), 0.01))
                self.extra_orders = extra_orders

            def forward(self, t: Any) -> Any:
                out = self.a + self.b * t + self.c * t**2 + self.d * t**3
                if self.extra_orders:  # dynamic_net.py: control flow and a shared weight
                    for exp in range(4, random.randint(4, 6)):
                        out = out + self.e * t**exp
                return out

        random.seed(0)
        for extra_orders, optimizer_args in ((False, {"lr": 1e-6}), (True, {"lr": 1e-8, "momentum": 0.9})):
            model = Cubic(extra_orders)
            optimizer = lib.optim.SGD(model.parameters(), **optimizer_args)
            for _ in range(200):
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            losses.append(loss.item())
        names = [name for name, _ in model.named_parameters()]
        return losses, weights, names

    losses, weights, names = agree(case, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses, [324.458, 279.233, 244.701, 867.560], rtol=1e-4)
    np.testing.assert_allclose(weights, [0.35306, 0.22987], atol=1e-5)
    assert names == ["a", "b", "c", "d", "e"]
