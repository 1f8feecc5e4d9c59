"""PyTorch's everyday tensor functions beyond the core table: sorting (sort, argsort, topk,
unique, bincount), triangles and diagonals, roll, outer/addmm/lerp, log2/log10/expm1/reciprocal,
``linalg`` norms, and the ``new_*`` constructors. Values are compared with PyTorch when it is
installed and with fixed expected values always; gradients are property-tested in
tests/test_ops_check.py, and sort's here (its gradient is gather's, at distinct values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tg
from tinygrad_cnn.testing import gradcheck

try:
    import torch
except ImportError:  # the oracle is optional
    torch = None

# (expression over a module T, the expected value without PyTorch)
CASES = [
    ("T.tensor([3, 1, 2]).sort().values", [1, 2, 3]),
    ("T.tensor([3, 1, 2]).sort().indices", [1, 2, 0]),
    ("T.tensor([3., float('nan'), 1.]).sort(descending=True).indices", [1, 0, 2]),
    ("T.tensor([2, 1, 2, 1]).sort(descending=True, stable=True).indices", [0, 2, 1, 3]),
    ("T.tensor([[3., 1.], [0., 5.]]).sort(dim=0).values", [[0.0, 1.0], [3.0, 5.0]]),
    ("T.tensor([3, 1, 2]).argsort(descending=True)", [0, 2, 1]),
    ("T.argsort(T.tensor([3, 1, 2]))", [1, 2, 0]),
    ("T.tensor([3., 1., 2.]).topk(2).values", [3.0, 2.0]),
    ("T.tensor([3., 1., 2.]).topk(2, largest=False).indices", [1, 2]),
    ("T.topk(T.tensor([[1., 4.], [3., 2.]]), 1, dim=0).indices", [[1, 0]]),
    ("T.msort(T.tensor([[3., 1.], [0., 5.]]))", [[0.0, 1.0], [3.0, 5.0]]),
    ("T.tensor([3, 1, 3, 2]).unique()", [1, 2, 3]),
    ("T.unique(T.tensor([3, 1, 3, 2]), return_inverse=True)[1]", [2, 0, 2, 1]),
    ("T.unique(T.tensor([3, 1, 3, 2]), return_counts=True)[1]", [1, 1, 2]),
    ("T.unique(T.tensor([[1, 2], [1, 2], [0, 1]]), dim=0)", [[0, 1], [1, 2]]),
    ("T.tensor([1, 1, 3]).bincount()", [0, 2, 0, 1]),
    ("T.bincount(T.tensor([1, 1, 3]), minlength=6)", [0, 2, 0, 1, 0, 0]),
    ("T.bincount(T.tensor([0, 1, 1]), weights=T.tensor([0.5, 1., 2.]))", [0.5, 3.0]),
    ("T.roll(T.arange(5), 2)", [3, 4, 0, 1, 2]),
    ("T.roll(T.arange(6).view(2, 3), 1)", [[5, 0, 1], [2, 3, 4]]),
    ("T.roll(T.arange(6).view(2, 3), (1, -1), (0, 1))", [[4, 5, 3], [1, 2, 0]]),
    ("T.arange(6).view(2, 3).roll(-1, 1)", [[1, 2, 0], [4, 5, 3]]),
    ("T.tril(T.ones(3, 3))", [[1, 0, 0], [1, 1, 0], [1, 1, 1]]),
    ("T.ones(2, 3).triu(1)", [[0, 1, 1], [0, 0, 1]]),
    ("T.tril(T.arange(8).view(2, 2, 2), -1)", [[[0, 0], [2, 0]], [[0, 0], [6, 0]]]),
    ("T.diag(T.tensor([1, 2]))", [[1, 0], [0, 2]]),
    ("T.diag(T.tensor([1, 2]), 1)", [[0, 1, 0], [0, 0, 2], [0, 0, 0]]),
    ("T.diag(T.tensor([1, 2]), -1)", [[0, 0, 0], [1, 0, 0], [0, 2, 0]]),
    ("T.arange(9).view(3, 3).diag()", [0, 4, 8]),
    ("T.arange(12).view(3, 4).diag(1)", [1, 6, 11]),
    ("T.arange(12).view(3, 4).diag(-2)", [8]),
    ("T.outer(T.tensor([1., 2.]), T.tensor([1., 2., 3.]))", [[1, 2, 3], [2, 4, 6]]),
    ("T.addmm(T.zeros(2), T.ones(2, 3), T.ones(3, 2), beta=0.5, alpha=2)", [[6, 6], [6, 6]]),
    ("T.ones(2).addmm(T.ones(2, 3), T.ones(3, 2))", [[4, 4], [4, 4]]),
    ("T.lerp(T.tensor([1., 2.]), T.tensor([3., 4.]), 0.5)", [2.0, 3.0]),
    ("T.tensor([1., 2.]).lerp(T.tensor([3., 4.]), T.tensor([0., 1.]))", [1.0, 4.0]),
    ("T.tensor([1, 2]).reciprocal()", [1.0, 0.5]),
    ("T.tensor([4, 8]).log2()", [2.0, 3.0]),
    ("T.log10(T.tensor([1000.]))", [3.0]),
    ("T.tensor([1e-10], dtype=T.float32).expm1()", [1e-10]),
    ("T.tensor([1., -2., 3.]).clamp_min(0)", [1.0, 0.0, 3.0]),
    ("T.tensor([1., -2., 3.]).clamp_max(T.tensor([0., 0., 5.]))", [0.0, -2.0, 3.0]),
    ("T.argwhere(T.tensor([[0, 1], [1, 0]]))", [[0, 1], [1, 0]]),
    ("T.linalg.norm(T.tensor([3., 4.]))", 5.0),
    ("T.linalg.norm(T.ones(2, 3))", math.sqrt(6)),
    ("T.linalg.norm(T.tensor([[1., -2.], [3., 4.]]), ord=1)", 6.0),
    ("T.linalg.norm(T.tensor([[1., -2.], [3., 4.]]), ord=float('inf'))", 7.0),
    ("T.linalg.norm(T.tensor([[1., -2.], [3., 4.]]), dim=1)", [math.sqrt(5), 5.0]),
    ("T.linalg.vector_norm(T.tensor([[1., -2.], [3., 4.]]), ord=1)", 10.0),
    ("T.linalg.matrix_norm(T.ones(2, 2, 3))", [math.sqrt(6)] * 2),
    ("T.linalg.matrix_norm(T.tensor([[1., -2.], [3., 4.]]), ord=-1)", 4.0),
    ("T.tensor([1., 2.]).new_zeros(3)", [0.0, 0.0, 0.0]),
    ("T.tensor([1, 2]).new_ones((2, 1))", [[1], [1]]),
    ("T.tensor([1., 2.]).new_full((2,), 7)", [7.0, 7.0]),
    ("T.tensor([1., 2.]).new_tensor([5, 6])", [5.0, 6.0]),
    ("T.tensor([1., 2.]).new_empty(2, 3).shape", (2, 3)),
    ("T.nn.functional.relu(T.tensor([-1., 1.]))", [0.0, 1.0]),
    ("T.tensor([0.5, -1.0]).tan()", [0.5463025, -1.5574077]),
    ("T.asin(T.tensor([0.5]))", [0.5235988]),
    ("T.tensor([0.5]).acos()", [1.0471976]),
    ("T.atan(T.tensor([1.0]))", [0.7853982]),
    ("T.tensor([1.0]).sinh()", [1.1752012]),
    ("T.cosh(T.tensor([1.0]))", [1.5430806]),
    ("T.tensor([1.0]).asinh()", [0.8813736]),
    ("T.tensor([2.0]).acosh()", [1.3169579]),
    ("T.atanh(T.tensor([0.5]))", [0.5493061]),
    ("T.tensor([1e5], dtype=T.float32).cos()", [-0.9993608]),
    ("T.erf(T.tensor([0.5]))", [0.5204999]),
    ("T.fmod(T.tensor([-3., 3.]), 2)", [-1.0, 1.0]),
    ("T.tensor([-7, 7]).fmod(3)", [-1, 1]),
    ("T.tensor([-1.5, 2.25]).frac()", [-0.5, 0.25]),
    ("T.floor_divide(T.tensor([-7, 7]), 2)", [-4, 3]),
    ("T.tensor([0.25]).logit()", [-1.0986123]),
    ("T.logit(T.tensor([0.0, 1.0]), eps=1e-6)", [-13.815509, 13.802318]),  # 1 - 1e-6 rounds in float32
    ("T.xlogy(T.tensor([0., 2.]), T.tensor([0., 3.]))", [0.0, 2.1972246]),
    ("T.logaddexp(T.tensor([1000., 1.]), T.tensor([1000., 2.]))", [1000.6931472, 2.3132617]),
    ("T.deg2rad(T.tensor([180.]))", [math.pi]),
    ("T.tensor([math.pi]).rad2deg()", [180.0]),
    ("T.nan_to_num(T.tensor([float('nan'), 1.0]), nan=7.0)", [7.0, 1.0]),
    ("T.tensor([float('nan'), 1.0, 2.0]).nansum()", 3.0),
    ("T.tensor([float('nan'), 1.0, 2.0]).nanmean()", 1.5),
    ("T.tensor([1., 2., 3.]).cumprod(0)", [1.0, 2.0, 6.0]),
    ("T.cumprod(T.tensor([[1, 2], [3, 4]]), dim=1)", [[1, 2], [3, 12]]),
    ("T.tensor([1, 4, 9, 16]).diff()", [3, 5, 7]),
    ("T.diff(T.tensor([1., 4., 9.]), n=2, prepend=T.tensor([0.]))", [2.0, 2.0]),
    ("T.arange(9).view(3, 3).diagonal(1)", [1, 5]),
    ("T.diagonal(T.arange(8).view(2, 2, 2), 0, 1, 2)", [[0, 3], [4, 7]]),
    ("T.arange(9.).view(3, 3).trace()", 12.0),
    ("T.tensor([1, 2]).tile((2,))", [1, 2, 1, 2]),
    ("T.tile(T.tensor([[1, 2]]), (2, 1))", [[1, 2], [1, 2]]),
    ("T.tensor([1, 2]).repeat_interleave(2)", [1, 1, 2, 2]),
    ("T.repeat_interleave(T.tensor([[1, 2], [3, 4]]), T.tensor([1, 2]), dim=0)", [[1, 2], [3, 4], [3, 4]]),
    ("T.take(T.tensor([[4, 3], [5, 7]]), T.tensor([0, 3]))", [4, 7]),
    ("T.take_along_dim(T.tensor([[10., 30., 20.]]), T.tensor([[1, 0]]), dim=1)", [[30.0, 10.0]]),
    ("T.mv(T.ones(2, 3), T.tensor([1., 2., 3.]))", [6.0, 6.0]),
    ("T.inner(T.ones(2, 3), T.tensor([1., 2., 3.]))", [6.0, 6.0]),
    ("T.tensor([1., 2.]).addcmul(T.tensor([2., 2.]), T.tensor([3., 1.]), value=0.5)", [4.0, 3.0]),
    ("T.addcdiv(T.tensor([1., 2.]), T.tensor([2., 2.]), T.tensor([4., 1.]), value=2)", [2.0, 6.0]),
    ("T.dist(T.tensor([1., 2.]), T.tensor([4., 6.]))", 5.0),
    ("T.zeros(3, 2).index_add(0, T.tensor([0, 2, 0]), T.ones(3, 2), alpha=2)", [[4, 4], [0, 0], [2, 2]]),
    ("T.zeros(2, 3).index_fill(1, T.tensor([0, 2]), -1.0)", [[-1, 0, -1], [-1, 0, -1]]),
    ("T.zeros(3, 2).index_copy(0, T.tensor([2, 0]), T.tensor([[1., 2.], [3., 4.]]))", [[3, 4], [0, 0], [1, 2]]),
    ("T.arange(6).view(2, 3).select(1, 2)", [2, 5]),
    ("[t.tolist() for t in T.arange(7).tensor_split(3)]", [[0, 1, 2], [3, 4], [5, 6]]),
    ("[t.tolist() for t in T.tensor_split(T.arange(7), [1, 5])]", [[0], [1, 2, 3, 4], [5, 6]]),
    ("T.arange(4).view(2, 2).fliplr()", [[1, 0], [3, 2]]),
    ("T.flipud(T.arange(4).view(2, 2))", [[2, 3], [0, 1]]),
    ("T.rot90(T.arange(4).view(2, 2))", [[1, 3], [0, 2]]),
    ("T.arange(6).view(2, 3).rot90(2, (0, 1))", [[5, 4, 3], [2, 1, 0]]),
    ("T.arange(4).view(2, 2).rot90(-1)", [[2, 0], [3, 1]]),
    ("T.tensor([3., 1., 2., 5.]).kthvalue(2).values", 2.0),
    ("T.tensor([[3., 1.], [2., 5.]]).kthvalue(1, dim=0).indices", [1, 0]),
    ("T.tensor([3., 1., 2., 5.]).median()", 2.0),
    ("T.median(T.tensor([[3., 1., 4.], [2., 5., 0.]]), dim=1).values", [3.0, 2.0]),
    ("T.tensor([3., 1., 2.]).aminmax().max", 3.0),
    ("T.aminmax(T.tensor([[3., 1.], [2., 5.]]), dim=0).min", [2.0, 1.0]),
    ("T.tensor([[1, 2]]).where(T.tensor([[True, False]]), T.tensor([[0, 0]]))", [[1, 0]]),
    ("T.tensor([1., -2.]).absolute()", [1.0, 2.0]),
    ("T.tensor([1., -2.]).negative()", [-1.0, 2.0]),
    ("T.tensor([3, 4]).divide(2)", [1.5, 2.0]),
    ("T.tensor([3, 4]).true_divide(T.tensor([2, 2]))", [1.5, 2.0]),
    ("T.tensor([3, 4]).greater(3)", [False, True]),
    ("T.zeros(2, 3, 4).moveaxis(0, -1).shape", (3, 4, 2)),
    ("T.tensor([1., 2.]).ger(T.tensor([1., 0.]))", [[1.0, 0.0], [2.0, 0.0]]),
    ("T.zeros(2, 3).ndimension()", 2),
    ("T.zeros(2, 3).stride()", (3, 1)),
    ("T.zeros(2, 3).t().stride(0)", 1),
    ("T.zeros(2).get_device()", -1),
    ("T.zeros(2).is_complex()", False),
    ("T.ones(2).is_pinned()", False),
    ("T.bernoulli(T.tensor([0., 1.]))", [0.0, 1.0]),
    ("T.tensor([0., 0., 1.]).multinomial(2, replacement=True)", [2, 2]),
    ("T.multinomial(T.tensor([[0., 1.], [1., 0.]]), 1)", [[1], [0]]),
]


def _plain(value: object) -> object:
    if hasattr(value, "detach"):
        return (str(value.dtype).split(".")[-1], value.detach().numpy())  # type: ignore[attr-defined]
    return tuple(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("expr, expected", CASES, ids=[c[0] for c in CASES])
def test_value(expr: str, expected: object) -> None:
    got = _plain(eval(expr, {"T": tg, "math": math}))
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], np.ndarray):
        np.testing.assert_allclose(got[1], np.asarray(expected, dtype=float), rtol=1e-6, atol=1e-12)
    else:
        assert got == expected
    if torch is not None:
        want = _plain(eval(expr, {"T": torch, "math": math}))
        if isinstance(want, tuple) and len(want) == 2 and isinstance(want[1], np.ndarray):
            assert got[0] == want[0], f"dtype: ours {got[0]}, PyTorch {want[0]}"  # type: ignore[index]
            np.testing.assert_allclose(got[1], want[1], rtol=1e-6)  # type: ignore[index]
        else:
            assert got == want


def test_sorted_values_are_exact_and_keep_float32() -> None:
    x = tg.tensor([[0.3, -1.0, 2.5], [1.0, 1.0, 0.0]])
    values, indices = x.sort(dim=1, descending=True)
    assert values.dtype == np.float32 and indices.dtype == np.int64
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(x.numpy(), indices.numpy(), 1))


# Values at least 0.01 apart: at equal values the order (and so the gradient) is a choice, as in
# PyTorch, and closer than the finite-difference step the two sides cannot be told apart.
distinct_rows = hnp.arrays(
    np.int64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=st.integers(-1000, 1000), unique=True
).map(lambda a: a * 0.01)


@settings(max_examples=25, deadline=None)
@given(distinct_rows, st.booleans())
def test_sort_and_topk_gradients_match_finite_differences(x: np.ndarray, descending: bool) -> None:
    t = tg.tensor(x, requires_grad=True)
    assert gradcheck(lambda a: tg.sort(a, -1, descending).values, t)
    k = max(1, x.shape[-1] // 2)
    assert gradcheck(lambda a: tg.topk(a, k, largest=descending).values, t)
    if torch is not None:
        ours = tg.sort(t, -1, descending).values
        ours.backward(tg.ones_like(ours) * tg.arange(x.shape[-1], dtype=tg.float64))
        tt = torch.tensor(x, requires_grad=True)
        theirs = torch.sort(tt, -1, descending).values
        theirs.backward(torch.ones_like(theirs) * torch.arange(x.shape[-1], dtype=torch.float64))
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy())


def test_bad_input_names_the_op() -> None:
    with pytest.raises(RuntimeError, match="topk: selected index k=3 out of range"):
        tg.tensor([1.0, 2.0]).topk(3)
    with pytest.raises(RuntimeError, match="bincount only supports 1-d non-negative"):
        tg.tensor([1.0, 2.0]).bincount()
    with pytest.raises(RuntimeError, match="tril: input tensor must have at least 2 dimensions"):
        tg.tril(tg.ones(3))
    with pytest.raises(RuntimeError, match="diag: matrix or a vector expected"):
        tg.diag(tg.ones(2, 2, 2))
    with pytest.raises(RuntimeError, match="roll: shifts and dims must align"):
        tg.roll(tg.ones(2, 2), (1, 1), 0)
    with pytest.raises(NotImplementedError, match="linalg.matrix_norm: ord='nuc' needs singular values"):
        tg.linalg.matrix_norm(tg.ones(2, 2), "nuc")
    with pytest.raises(RuntimeError, match="outer: 1D tensors expected"):
        tg.outer(tg.ones(2, 2), tg.ones(2))


def test_backend_switches_of_pytorch_scripts_are_accepted() -> None:
    assert tg.backends.mps.is_available() is False and tg.backends.cuda.is_built() is False
    tg.backends.cudnn.deterministic, tg.backends.cudnn.benchmark = True, False
    assert tg.backends.cudnn.deterministic is True
    assert tg.are_deterministic_algorithms_enabled() is False
    tg.use_deterministic_algorithms(True)
    assert tg.are_deterministic_algorithms_enabled() is True
    tg.use_deterministic_algorithms(False)


def test_next_functions_walk_the_graph_as_pytorch() -> None:
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    loss = ((x * 2) ** 2).sum()
    ((pow_node, index),) = loss.grad_fn.next_functions
    assert index == 0 and pow_node.name() == "PowBackward"
    ((mul_node, _),) = pow_node.next_functions
    (leaf, _), (constant, _) = mul_node.next_functions
    assert leaf.name() == "AccumulateGrad" and leaf.variable is x and constant is None


def _hook_story(lib) -> list:
    seen = []
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    handle = x.register_hook(lambda g: g * 2)  # a leaf: its summed gradient, doubled, goes into .grad
    ((x * 3).sum() + (x * x).sum()).backward()
    first = x.grad.clone()
    z = x * 1
    z.register_hook(lambda g: seen.append(g.clone()))  # a recorded tensor: observed, not replaced
    w = z * 5
    w.register_hook(lambda g: g + 1)  # replaced before w's rule runs
    w.sum().backward()
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    (g,) = lib.autograd.grad((x * x).sum(), x)
    return [first, seen[0], x.grad, g]


def test_register_hook_as_pytorch() -> None:
    ours = [t.numpy() for t in _hook_story(tg)]
    expected = [[10.0, 14.0], [10.0, 10.0], [3.0, 3.0], [2.0, 4.0]]
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want)
    if torch is not None:
        for got, want in zip(ours, _hook_story(torch)):
            np.testing.assert_allclose(got, want.numpy())
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        tg.ones(2).register_hook(lambda g: g)


def test_xlogy_gradients_at_zero_as_pytorch() -> None:
    x = tg.tensor([0.0, 2.0, 0.0], requires_grad=True)
    y = tg.tensor([3.0, 0.0, 0.0], requires_grad=True)
    out = tg.xlogy(x, y)
    np.testing.assert_array_equal(out.detach().numpy(), [0.0, -np.inf, 0.0])
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [np.log(3.0), -np.inf, 0.0])  # PyTorch's values
    np.testing.assert_array_equal(y.grad.numpy(), [0.0, np.inf, np.nan])
