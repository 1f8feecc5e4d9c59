"""Property tests of the indexing ops' gradients and of in-place ops while recording.

Hypothesis draws the shapes, the dimension, the indices (repeated ones included where the op allows
them) and the values; each example is checked with the toolkit's ``gradcheck`` (float64 central
differences, every input that requires grad) and, when PyTorch is installed, against PyTorch's
forward and gradients for one random upstream gradient. Ops: ``gather``, ``scatter`` (src and
value), ``scatter_add``, ``index_select``, ``masked_fill``, ``x[index] = value`` while recording
(``index_put``: basic, integer-array and boolean indices), and chains of in-place ops on a
recorded tensor (``y = x * 1; y.add_(z); y.mul_(2); ...``) differentiated for both ``x`` and ``z``.

The default profile runs 15 examples per property (a few seconds in all);
TINYGRAD_CNN_HYPOTHESIS_PROFILE=thorough runs 200.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn.testing import arrays, gradcheck, shapes
from tinygrad_cnn.testing.conventions import any_subgradient

try:
    import torch
except ImportError:  # the oracle is optional
    torch = None

EXAMPLES = 200 if os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE") == "thorough" else 15
property_test = settings(max_examples=EXAMPLES, deadline=None)


def leaf(a: np.ndarray) -> tg.Tensor:
    return tg.Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def check(
    ours: Callable[..., tg.Tensor], theirs: Callable[..., Any] | None, values: Sequence[np.ndarray], seed: int = 0
) -> None:
    """``ours(*tensors)`` against finite differences, and against ``theirs`` (the same op written
    with torch) on the forward and on the gradients of a random projection of the output.

    A chain of ops can meet a kink by accident (x = 2 clamped to 1.3579, then z = 0 added and
    clamped again sits on the bound): there finite differences accept any subgradient, and which
    one PyTorch gives is checked against torch below."""
    assert gradcheck(ours, *[leaf(v) for v in values], conventions=any_subgradient())
    if torch is None or theirs is None:
        return
    xs = [leaf(v) for v in values]
    out = ours(*xs)
    u = np.random.default_rng(seed).standard_normal(out.shape)
    (out * tg.Tensor(u)).sum().backward()
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    expected = theirs(*ts)
    try:
        (expected * torch.from_numpy(u)).sum().backward()
    except RuntimeError as e:  # PyTorch refuses an op whose saved input changed in place since;
        assert "modified by an inplace operation" in str(e)  # here it keeps the version it used
        return
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    for x, t in zip(xs, ts):  # (None where an input was not used)
        ours_grad = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        np.testing.assert_allclose(ours_grad, np.zeros(x.shape) if t.grad is None else t.grad.numpy(), atol=1e-12)


def as_torch_index(index: Any) -> Any:
    """A NumPy index (arrays, slices, tuples of them) for torch."""
    if isinstance(index, tuple):
        return tuple(as_torch_index(i) for i in index)
    return torch.from_numpy(index) if isinstance(index, np.ndarray) else index


@st.composite
def along_a_dim(draw: Any, max_repeat: int = 4, unique: bool = False) -> tuple[tuple[int, ...], int, np.ndarray]:
    """A shape, a dim of it, and an index for gather/scatter along that dim: each of the index's
    sizes at most the shape's (along ``dim``: up to ``max_repeat``), entries in range; with
    ``unique``, no entry repeats along ``dim`` (scatter writes each position once)."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    d = dim % len(shape)
    sizes = [draw(st.integers(1, n)) for n in shape]
    sizes[d] = draw(st.integers(1, shape[d] if unique else max_repeat))
    if unique:
        keys = draw(arrays((*sizes[:d], shape[d], *sizes[d + 1 :]), unique=True))
        index = np.take(np.argsort(keys, axis=d), np.arange(sizes[d]), axis=d)
    else:
        index = draw(arrays(tuple(sizes), elements=st.integers(0, shape[d] - 1), dtype=np.float64)).astype(np.int64)
    return shape, dim, index


@property_test
@given(along_a_dim(), st.data())
def test_gather(case: Any, data: st.DataObject) -> None:
    shape, dim, index = case
    x = data.draw(arrays(shape))
    check(
        lambda t: F.gather(t, dim, index),
        lambda t: torch.gather(t, dim, torch.from_numpy(index)),
        [x],
    )


@property_test
@given(along_a_dim(unique=True), st.data())
def test_scatter_src_and_value(case: Any, data: st.DataObject) -> None:
    shape, dim, index = case
    x, src = data.draw(arrays(shape)), data.draw(arrays(index.shape))
    check(
        lambda t, s: F.scatter(t, dim, index, s),
        lambda t, s: torch.scatter(t, dim, torch.from_numpy(index), s),
        [x, src],
    )
    check(
        lambda t: F.scatter(t, dim, index, value=0.5),
        lambda t: torch.scatter(t, dim, torch.from_numpy(index), 0.5),
        [x],
    )


@property_test
@given(along_a_dim(), st.data())
def test_scatter_add_with_repeated_indices(case: Any, data: st.DataObject) -> None:
    shape, dim, index = case
    x, src = data.draw(arrays(shape)), data.draw(arrays(index.shape))
    check(
        lambda t, s: F.scatter_add(t, dim, index, s),
        lambda t, s: torch.scatter_add(t, dim, torch.from_numpy(index), s),
        [x, src],
    )


@property_test
@given(shapes(min_dims=1, max_dims=3, max_side=4), st.data())
def test_index_select(shape: tuple[int, ...], data: st.DataObject) -> None:
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    index = np.array(data.draw(st.lists(st.integers(0, shape[dim] - 1), min_size=1, max_size=5)), dtype=np.int64)
    check(
        lambda t: F.index_select(t, dim, index),
        lambda t: torch.index_select(t, dim, torch.from_numpy(index)),
        [data.draw(arrays(shape))],
    )


@property_test
@given(shapes(min_dims=1, max_dims=3, max_side=4), st.data())
def test_masked_fill(shape: tuple[int, ...], data: st.DataObject) -> None:
    mask_shape = data.draw(st.sampled_from([shape, shape[1:], (1,) * len(shape)]))
    mask = data.draw(arrays(mask_shape, elements=st.booleans(), dtype=np.float64)).astype(bool)
    value = data.draw(st.sampled_from([0.0, -1.5, 2.0]))
    check(
        lambda t: F.masked_fill(t, mask, value),
        lambda t: t.masked_fill(torch.from_numpy(mask), value),
        [data.draw(arrays(shape))],
    )


@st.composite
def setitem_cases(draw: Any) -> tuple[tuple[int, ...], Any, tuple[int, ...]]:
    """A shape, an index into it writing each element at most once, and the shape of what the
    index selects: an int, a slice (with a step), integer arrays without repeats, or a mask."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    kind = draw(st.sampled_from(["int", "slice", "array", "mask", "int and slice"]))
    n = shape[0]
    if kind == "int":
        index: Any = draw(st.integers(-n, n - 1))
    elif kind == "slice":
        start, step = draw(st.integers(0, n - 1)), draw(st.integers(1, 2))
        index = slice(start, None, step)
    elif kind == "array":
        index = np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)), dtype=np.int64)
    elif kind == "mask":
        index = draw(arrays(shape, elements=st.booleans(), dtype=np.float64)).astype(bool)
    else:
        index = (slice(None), draw(st.integers(0, shape[1] - 1))) if len(shape) > 1 else draw(st.integers(0, n - 1))
    selected = np.zeros(shape)[index].shape
    return shape, index, selected


@property_test
@given(setitem_cases(), st.data())
def test_setitem_while_recording(case: Any, data: st.DataObject) -> None:
    """``y = x * 1; y[index] = v``: x's gradient is zero where v was written, v's is the gradient there."""
    shape, index, selected = case
    value_shape = data.draw(st.sampled_from([selected, selected[1:], ()]))  # v broadcasts to the selection

    def ours(x: tg.Tensor, v: tg.Tensor) -> tg.Tensor:
        y = x * 1
        y[index] = v
        return y * y  # a nonlinear use afterwards: the gradient flows through the written values

    def theirs(x: Any, v: Any) -> Any:
        y = x * 1
        y[as_torch_index(index)] = v
        return y * y

    check(ours, theirs, [data.draw(arrays(shape)), data.draw(arrays(value_shape))])


def every_other(y: Any) -> Any:
    """A fixed boolean mask shaped like ``y``, as a tensor of y's library."""
    mask = np.asarray(np.arange(int(np.prod(y.shape))).reshape(tuple(y.shape)) % 2 == 0)
    return tg.tensor(mask) if isinstance(y, tg.Tensor) else torch.from_numpy(mask)


INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "add_": lambda y, z: y.add_(z),
    "add_ alpha": lambda y, z: y.add_(z, alpha=-0.5),
    "sub_": lambda y, z: y.sub_(z),
    "mul_": lambda y, z: y.mul_(z),
    "mul_ 2": lambda y, z: y.mul_(2),
    "div_": lambda y, z: y.div_(z * z + 1),
    "+=": lambda y, z: y.__iadd__(z),
    "*=": lambda y, z: y.__imul__(z),
    "clamp_": lambda y, z: y.clamp_(-1.2345, 1.3579),  # bounds no drawn value is likely to sit on
    "exp_": lambda y, z: y.mul_(0.3).exp_(),
    "copy_": lambda y, z: y.copy_(z * 3),
    "masked_fill_": lambda y, z: y.masked_fill_(every_other(y), 0.25),
    "pow_": lambda y, z: y.pow_(2),
    "neg_": lambda y, z: y.neg_(),
}


@property_test
@given(
    shapes(min_dims=0, max_dims=2, max_side=3),
    st.lists(st.sampled_from(sorted(INPLACE)), min_size=1, max_size=4),
    st.data(),
)
def test_inplace_chain_while_recording(shape: tuple[int, ...], ops: list[str], data: st.DataObject) -> None:
    """``y = x * 1``, then in-place ops on y (some using z), then ``y * x``: the gradients for x
    and z are those of the same chain written out of place, and equal PyTorch's."""

    def chain(x: Any, z: Any) -> Any:
        y = x * 1
        for name in ops:
            INPLACE[name](y, z)
        return y * x  # x used again after the in-place ops: it must keep its own value

    check(chain, chain, [data.draw(arrays(shape)), data.draw(arrays(shape))])
