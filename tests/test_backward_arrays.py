"""Every rule's ``backward_arrays`` (the plain path the engine takes when nothing is recorded)
gives what its differentiable ``backward`` gives, on the same node and the same gradient.

One generic test: graphs that reach every primitive with a ``backward_arrays`` in several shapes,
layouts and argument combinations are built, and both paths are called on each of their nodes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
import tinygrad_cnn.nn.functional as NF
from tinygrad_cnn import primitives as P

WITH_ARRAYS = sorted(
    name
    for name, cls in vars(P).items()
    if isinstance(cls, type)
    and issubclass(cls, tg.autograd.Primitive)
    and getattr(cls, "backward_arrays", None) is not None
)


class Pick:
    """Choices for a graph builder: drawn by Hypothesis, or by a seeded RNG."""

    def __init__(self, data=None, seed: int = 0):
        self.data, self.rng = data, np.random.default_rng(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi)) if self.data else int(self.rng.integers(lo, hi + 1))

    def bool(self) -> bool:
        return self.int(0, 1) == 1

    def leaf(self, shape, requires_grad=None) -> tg.Tensor:
        data = np.random.default_rng(self.int(0, 2**31)).standard_normal(shape)
        if self.bool():  # ties: pooling over flat regions, relu at 0
            data = np.round(data)
        return tg.Tensor(data, requires_grad=self.bool() if requires_grad is None else requires_grad)


def _conv(pick: Pick) -> tg.Tensor:
    """On an NCHW input or one laid out (H, W, N, C) as conv2d's outputs are (1x1 kernels without
    padding take the pointwise path on either)."""
    n, c, c_out, kh, kw = pick.int(0, 3), pick.int(1, 3), pick.int(1, 3), pick.int(1, 3), pick.int(1, 3)
    stride, dilation, padding = pick.int(1, 2), pick.int(1, 2), pick.int(0, 1)
    h, w = dilation * (kh - 1) + pick.int(1, 4), dilation * (kw - 1) + pick.int(1, 4)
    x, weight = _maybe_batch_inner(pick, pick.leaf((n, c, h, w))), pick.leaf((c_out, c, kh, kw), requires_grad=True)
    bias = pick.leaf((c_out,)) if pick.bool() else None
    y = F.conv2d(x, weight, bias, stride, padding, dilation)
    return F.relu(y).reshape(n, int(np.prod(y.shape[1:])))  # relu, and a flatten of a batch-inner array (a copy)


def _grouped_conv(pick: Pick) -> tg.Tensor:
    """Depthwise (one input channel per group, any multiplier) or general groups, on an NCHW input
    or one laid out (H, W, N, C) as conv2d's outputs are."""
    groups, per_in, per_out, n, kh, kw = (
        pick.int(2, 3),
        pick.int(1, 2),
        pick.int(1, 2),
        pick.int(0, 3),
        *(pick.int(1, 3),) * 2,
    )
    stride, dilation, padding = pick.int(1, 2), pick.int(1, 2), pick.int(0, 1)
    h, w = dilation * (kh - 1) + pick.int(1, 4), dilation * (kw - 1) + pick.int(1, 4)
    x = _maybe_batch_inner(pick, pick.leaf((n, groups * per_in, h, w)))
    weight = pick.leaf((groups * per_out, per_in, kh, kw), requires_grad=True)
    bias = pick.leaf((groups * per_out,)) if pick.bool() else None
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return F.relu(y).reshape(n, int(np.prod(y.shape[1:])))


def _conv_transpose(pick: Pick) -> tg.Tensor:
    """conv_transpose2d (``ConvTranspose``), groups, output_padding and padding included, on an
    NCHW input or one laid out (H, W, N, C) as conv2d's outputs are."""
    groups, per_in, per_out, n = pick.int(1, 3), pick.int(1, 2), pick.int(1, 2), pick.int(0, 3)
    kh, kw, stride, dilation, h, w = (
        pick.int(1, 3),
        pick.int(1, 3),
        pick.int(1, 3),
        pick.int(1, 2),
        *(pick.int(1, 4),) * 2,
    )
    extra = pick.int(0, max(stride, dilation) - 1)
    full = min((h - 1) * stride + dilation * (kh - 1) + 1, (w - 1) * stride + dilation * (kw - 1) + 1)
    padding = pick.int(0, min(2, (full + extra - 1) // 2))
    x = _maybe_batch_inner(pick, pick.leaf((n, groups * per_in, h, w)))
    weight = pick.leaf((groups * per_in, per_out, kh, kw), requires_grad=True)
    bias = pick.leaf((groups * per_out,)) if pick.bool() else None
    y = NF.conv_transpose2d(x, weight, bias, stride, padding, extra, groups, dilation)
    return F.relu(y).reshape(n, int(np.prod(y.shape[1:])))


def _maybe_batch_inner(pick: Pick, x: tg.Tensor) -> tg.Tensor:
    """x (N, C, H, W) as it is, or laid out (H, W, N, C) in memory as conv2d's outputs are."""
    if not pick.bool():
        return x
    return tg.Tensor(
        np.ascontiguousarray(x.array.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1), requires_grad=x.requires_grad
    )


def _pool(pick: Pick) -> tg.Tensor:
    """Max pooling of NCHW or batch-inner (H, W, N, C) images, windows overlapping or not, padded or not."""
    n, c = pick.int(1, 3), pick.int(1, 3)
    x = pick.leaf((6, 5, n, c), requires_grad=True).permute(2, 3, 0, 1) if pick.bool() else pick.leaf((n, c, 6, 5))
    k = pick.int(1, 3)
    return F.max_pool2d(x, k, stride=pick.int(1, k), padding=pick.int(0, k // 2))


def _reductions(pick: Pick) -> tg.Tensor:
    x = pick.leaf((pick.int(1, 4), pick.int(1, 4), pick.int(1, 70)), requires_grad=True)
    axis = tuple(a for a in range(3) if pick.bool()) or (pick.int(0, 2),)
    return P.Max.apply(x, axis, pick.bool())  # few elements per output (running max) or many (argmax)


def _log_softmax(pick: Pick) -> tg.Tensor:
    x = pick.leaf((pick.int(1, 4), pick.int(1, 5), pick.int(1, 3)), requires_grad=True)
    y = (F.log_softmax if pick.bool() else F.softmax)(x.permute(2, 0, 1), pick.int(0, 2))
    axis = tuple(a for a in range(3) if pick.bool()) or (pick.int(0, 2),)
    return P.Sum.apply(y, axis, pick.bool())


def _nll(pick: Pick) -> tg.Tensor:
    """nll_loss and cross_entropy: any reduction, class weights, an ignored target, image targets."""
    n, c, d = pick.int(1, 5), pick.int(1, 4), pick.int(1, 3)
    x = pick.leaf((n, c, d) if pick.bool() else (n, c), requires_grad=True)
    target = np.array([pick.int(0, c - 1) for _ in range(n * (d if x.ndim == 3 else 1))]).reshape((n,) + x.shape[2:])
    if pick.bool():
        target.reshape(-1)[0] = -100  # ignored
    weight = pick.leaf((c,)) if pick.bool() else None
    reduction = ["mean", "sum", "none"][pick.int(0, 2)]
    loss = tg.nn.functional.cross_entropy if pick.bool() else tg.nn.functional.nll_loss
    y = loss(x, target, weight=weight, reduction=reduction)
    return y * pick.leaf(y.shape)


def _standardize(pick: Pick) -> tg.Tensor:
    """Standardize over any axes of an array in any layout (a batch-inner conv output's among them)."""
    shape = (pick.int(1, 4), pick.int(1, 3), pick.int(1, 5), pick.int(2, 40))
    order = [pick.int(0, 3 - i) for i in range(4)]
    axes_order = []
    remaining = [0, 1, 2, 3]
    for k in order:
        axes_order.append(remaining.pop(k))
    x = pick.leaf(tuple(shape[a] for a in axes_order), requires_grad=True).permute(*np.argsort(axes_order))
    axes = tuple(a for a in range(4) if pick.bool()) or (3,)
    eps = 1e-5 if pick.bool() else 0.5
    if pick.bool():
        return F.standardize(x, axes, eps) * pick.leaf(shape)
    # with a weight and a bias along some axes: folded into one scale and shift when they are small
    affine = tuple(n if pick.int(0, 2) == 0 else 1 for n in shape)
    weight = pick.leaf(affine, requires_grad=pick.bool()) if pick.bool() else None
    bias = pick.leaf(affine, requires_grad=pick.bool()) if weight is None or pick.bool() else None
    return P.Standardize.apply(x, weight, bias, axes, eps) * pick.leaf(shape)


def _arithmetic(pick: Pick) -> tg.Tensor:
    """Elementwise rules with broadcasting: each input's gradient summed back to its shape."""
    shapes = [(2, 3), (1, 3), (2, 1), (3,), ()]
    x = pick.leaf(shapes[pick.int(0, 4)], requires_grad=True)
    y = pick.leaf(shapes[pick.int(0, 4)])
    mixed = P.Where.apply(np.arange(6).reshape(2, 3) % 2 == 0, x * y, x / (y * y + 1.0))
    return P.Sub.apply(-mixed, x) if pick.bool() else P.Add.apply(x - y, -mixed)


def _linear(pick: Pick) -> tg.Tensor:
    """A linear layer (its weight.T a transposed view) or a product with a plain right operand and
    a broadcast bias, on rows many enough, or not, for the GEMMs to be split."""
    n, f_in, f_out = pick.int(0, 300), pick.int(1, 40), pick.int(1, 30)
    x = pick.leaf((n, f_in))
    if pick.bool():
        return F.linear(x, pick.leaf((f_out, f_in), requires_grad=True), pick.leaf((f_out,)))
    return P.MatMulAdd.apply(x, pick.leaf((f_in, f_out)), pick.leaf((1, f_out) if pick.bool() else (f_out,)))


BUILDERS = [
    _conv,
    _grouped_conv,
    _conv_transpose,
    _pool,
    _reductions,
    _log_softmax,
    _nll,
    _standardize,
    _arithmetic,
    _linear,
]


def _nodes(root: tg.Tensor) -> list:
    """Every tape node of the graph of ``root``."""
    seen, stack, nodes = set(), [root], []
    while stack:
        t = stack.pop()
        if t.grad_fn is None or id(t) in seen:
            continue
        seen.add(id(t))
        nodes.append(t)
        stack.extend(u for u in t.grad_fn.inputs if isinstance(u, tg.Tensor))
    return nodes


def test_every_rule_with_a_plain_path_is_covered():
    reached = set()
    for build in BUILDERS:
        for seed in range(20):
            reached |= _check(build(Pick(seed=seed)))
    assert reached == set(WITH_ARRAYS)


def _check(root: tg.Tensor) -> set[str]:
    """Call both paths on every node of root's graph that has a plain path; the names checked."""
    checked = set()
    rng = np.random.default_rng(0)
    for node in _nodes(root):
        ctx = node.grad_fn
        plain = getattr(ctx.fn, "backward_arrays", None)
        if plain is None:
            continue
        g = rng.standard_normal(node.shape)
        with tg.no_grad():
            want = ctx.fn.backward(ctx, tg.Tensor(g))
        got = plain(ctx, g)
        want, got = (r if isinstance(r, tuple) else (r,) for r in (want, got))
        assert len(got) == len(want), ctx.fn.__name__
        for i, (a, b, need) in enumerate(zip(got, want, ctx.needs_input_grad)):
            if not need:
                continue
            assert isinstance(a, (np.ndarray, np.generic)), (ctx.fn.__name__, i)  # NumPy's scalar for 0-d
            np.testing.assert_allclose(a, b.data, rtol=1e-12, atol=1e-12, err_msg=f"{ctx.fn.__name__} input {i}")
        checked.add(ctx.fn.__name__)
    return checked


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
@given(data=st.data())
def test_plain_path_equals_differentiable_backward(build, data):
    _check(build(Pick(data)))
