"""The PyTorch-style layers of tinygrad_cnn.nn (normalisation, activations, pooling options,
grouped convolution, losses, containers, init, utils) and the Module API (buffers, hooks, apply,
to, requires_grad_): gradients property-tested against float64 finite differences, and fixed
expected values. The comparison with PyTorch itself is in test_nn_torch.py.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import nn
from tinygrad_cnn.nn import activation as A
from tinygrad_cnn.nn import conv as C
from tinygrad_cnn.nn import loss as L
from tinygrad_cnn.nn import normalization as N
from tinygrad_cnn.testing import arrays, gradcheck, gradgradcheck, shapes


def t64(shape, seed=0, scale=1.0):
    return tg.Tensor(np.random.default_rng(seed).normal(0, scale, shape), requires_grad=True)


SEEDS = st.integers(0, 2**16)

# --------------------------------------------------------------------------- gradients (float64 finite differences)


@given(x=arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
def test_elementwise_activations_gradcheck(x):
    x = np.where((np.abs(x) < 1e-2) | (np.abs(2 * x - 3) < 1e-2), 0.5, x)  # away from the kinks (and softplus's jump)
    t = tg.Tensor(x, requires_grad=True)
    for fn in (
        lambda v: A.leaky_relu(v, 0.2),
        lambda v: A.elu(v, 1.5),
        A.gelu,
        lambda v: A.gelu(v, "tanh"),
        A.silu,
        lambda v: A.softplus(v, 2.0, 3.0),
        A.erf,
    ):
        assert gradcheck(fn, t)


@given(x=arrays(shapes(min_dims=1, max_dims=2, max_side=3)))
def test_smooth_activations_second_order(x):
    """gelu, silu and erf differentiated twice; their float32 first derivative (the plain backward
    path) against the float64 one recorded with create_graph."""
    t = tg.Tensor(x, requires_grad=True)
    for fn in (A.gelu, A.silu, A.erf):
        assert gradgradcheck(fn, t)
        x32 = tg.Tensor(x.astype(np.float32), requires_grad=True)
        fn(x32).sum().backward()
        with tg.enable_grad():
            x64 = tg.Tensor(x, requires_grad=True)
            (want,) = tg.autograd.grad(fn(x64).sum(), [x64], create_graph=True)  # the tensor-ops derivative
        np.testing.assert_allclose(x32.grad.numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)


@given(shape=shapes(min_dims=2, max_dims=4, min_side=2, max_side=3), seed=SEEDS)
def test_batch_norm_training_gradcheck(shape, seed):
    x, c = t64(shape, seed), shape[1]
    w, b = t64((c,), seed + 1), t64((c,), seed + 2)
    rm, rv = tg.Tensor(np.zeros(c)), tg.Tensor(np.ones(c))
    assert gradcheck(lambda x, w, b: N.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5), x, w, b)


@given(shape=shapes(min_dims=2, max_dims=4, min_side=1, max_side=3), seed=SEEDS)
def test_batch_norm_eval_and_layer_norm_gradcheck(shape, seed):
    x, c = t64(shape, seed), shape[1]
    rm, rv = tg.Tensor(np.linspace(-1, 1, c)), tg.Tensor(np.linspace(0.5, 2, c))
    w, b = t64((c,), seed + 1), t64((c,), seed + 2)
    assert gradcheck(lambda x, w, b: N.batch_norm(x, rm, rv, w, b, False), x, w, b)
    ln_shape = shape[1:]
    lw, lb = t64(ln_shape, seed + 3), t64(ln_shape, seed + 4)
    if math.prod(ln_shape) > 1:
        assert gradcheck(lambda x, w, b: N.layer_norm(x, ln_shape, w, b), x, lw, lb)


@given(n=st.integers(1, 2), groups=st.sampled_from([1, 2]), per=st.integers(1, 2), hw=st.integers(1, 3), seed=SEEDS)
def test_group_norm_gradcheck(n, groups, per, hw, seed):
    if per * hw * hw == 1:
        per = 2
    c = groups * per
    x, w, b = t64((n, c, hw, hw), seed), t64((c,), seed + 1), t64((c,), seed + 2)
    assert gradcheck(lambda x, w, b: N.group_norm(x, groups, w, b), x, w, b)


@given(
    h=st.integers(3, 7),
    w=st.integers(3, 7),
    k=st.integers(1, 3),
    s=st.integers(1, 3),
    p=st.integers(0, 1),
    ceil=st.booleans(),
    include_pad=st.booleans(),
    seed=SEEDS,
)
def test_pooling_options_gradcheck(h, w, k, s, p, ceil, include_pad, seed):
    p = min(p, k // 2)
    x = tg.Tensor(np.random.default_rng(seed).permutation(2 * h * w).reshape(1, 2, h, w) / 7.0, requires_grad=True)
    assert gradcheck(lambda v: C.max_pool2d(v, k, s, p, 1, ceil), x)  # distinct values: no ties
    assert gradcheck(lambda v: C.avg_pool2d(v, k, s, p, ceil, include_pad), x)


@given(h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 4), ow=st.integers(1, 4), seed=SEEDS)
def test_adaptive_pools_gradcheck(h, w, oh, ow, seed):
    x = tg.Tensor(np.random.default_rng(seed).permutation(2 * h * w).reshape(1, 2, h, w) / 5.0, requires_grad=True)
    assert gradcheck(lambda v: C.adaptive_avg_pool2d(v, (oh, ow)), x)
    assert gradcheck(lambda v: C.adaptive_max_pool2d(v, (oh, ow)), x)


@given(groups=st.sampled_from([1, 2, 3]), k=st.integers(1, 3), d=st.integers(1, 2), same=st.booleans(), seed=SEEDS)
def test_grouped_and_same_conv_gradcheck(groups, k, d, same, seed):
    x, w, b = t64((1, 2 * groups, 5, 5), seed), t64((groups, 2, k, k), seed + 1), t64((groups,), seed + 2)
    out = C.conv2d(x, w, b, 1, "same" if same else 0, d, groups)
    if same:
        assert out.shape[2:] == x.shape[2:]
    assert gradcheck(lambda x, w, b: C.conv2d(x, w, b, 1, "same" if same else "valid", d, groups), x, w, b)


@given(seed=SEEDS, smoothing=st.sampled_from([0.0, 0.2]), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_class_losses_gradcheck(seed, smoothing, reduction):
    rng = np.random.default_rng(seed)
    x = t64((4, 3, 2), seed)
    target = rng.integers(0, 3, (4, 2))
    target[0, 0] = -100
    weight = rng.uniform(0.5, 2, 3)
    assert gradcheck(lambda v: L.cross_entropy(v, target, weight, label_smoothing=smoothing, reduction=reduction), x)
    assert gradcheck(lambda v: L.nll_loss(v, target, weight, reduction=reduction), x)
    probs = rng.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1)
    assert gradcheck(lambda v: L.cross_entropy(v, probs, weight, label_smoothing=smoothing, reduction=reduction), x)


@given(seed=SEEDS, reduction=st.sampled_from(["mean", "sum", "none"]))
def test_regression_and_binary_losses_gradcheck(seed, reduction):
    rng = np.random.default_rng(seed)
    x = t64((3, 4), seed)
    y = x.data + np.where(rng.random((3, 4)) < 0.5, 1, -1) * rng.uniform(0.1, 2.0, (3, 4))  # away from the kinks
    for fn in (L.mse_loss, L.l1_loss, L.smooth_l1_loss, L.huber_loss):
        assert gradcheck(lambda v, fn=fn: fn(v, y, reduction=reduction), x)
    assert gradcheck(lambda v: L.smooth_l1_loss(v, y, reduction=reduction, beta=0.5), x)
    assert gradcheck(lambda v: L.huber_loss(v, y, reduction, delta=0.5), x)
    t = rng.random((3, 4))
    w, pw = rng.uniform(0.5, 2, (3, 4)), rng.uniform(0.5, 2, 4)
    assert gradcheck(lambda v: L.binary_cross_entropy_with_logits(v, t, w, reduction=reduction, pos_weight=pw), x)
    p = tg.Tensor(rng.uniform(0.05, 0.95, (3, 4)), requires_grad=True)
    assert gradcheck(lambda v: L.binary_cross_entropy(v, t, w, reduction=reduction), p)


def test_embedding_gradcheck_and_padding_row_gets_no_gradient():
    weight = t64((5, 3))
    ids = np.array([[0, 2, 2], [4, 1, 0]])
    assert gradcheck(lambda w: nn.sparse.embedding(ids, w), weight)
    nn.sparse.embedding(ids, weight, padding_idx=2).sum().backward()
    np.testing.assert_array_equal(weight.grad[2], 0)
    np.testing.assert_array_equal(weight.grad[0], 2)


# --------------------------------------------------------------------------- fixed values


def test_erf_in_float32_is_within_one_ulp_everywhere():
    """The float32 path (a rational function computed in float64) against math.erf on a dense grid,
    tiny values, both infinities and NaN."""
    x = np.concatenate([np.linspace(-6, 6, 200_001, dtype=np.float32), np.geomspace(1e-38, 1, 2000, dtype=np.float32)])
    x = np.concatenate([x, -x[-2000:], np.array([np.inf, -np.inf], dtype=np.float32)])
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    got = A.erf(tg.Tensor(x)).data.numpy()
    assert got.dtype == np.float32
    ulps = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 1.0, x[ulps.argmax()]
    assert np.isnan(A.erf(tg.tensor([np.nan])).item())


def test_erf_values():
    x = np.linspace(-4, 4, 81)
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_array_equal(A.erf(tg.Tensor(x)).data, expected)  # float64: exact
    np.testing.assert_allclose(A.erf(tg.Tensor(x.astype(np.float32))).data, expected, atol=2e-7)


def test_batch_norm_running_statistics_by_hand():
    bn = nn.BatchNorm1d(2, momentum=0.5)
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]], dtype=np.float32)
    y = bn(tg.Tensor(x))
    np.testing.assert_allclose(bn.running_mean.data, [0.5 * 3, 0.5 * 12], rtol=1e-6)
    # unbiased variances 4 and 12, mixed with the initial 1
    np.testing.assert_allclose(bn.running_var.data, [0.5 + 0.5 * 4, 0.5 + 0.5 * 12], rtol=1e-6)
    assert bn.num_batches_tracked.data == 1 and bn.num_batches_tracked.dtype == np.int64
    # the output uses the biased variance 8/3 of the first column
    np.testing.assert_allclose(y.data[:, 0], (x[:, 0] - 3) / np.sqrt(8 / 3 + 1e-5), rtol=1e-5)
    bn.eval()
    np.testing.assert_allclose(bn(tg.Tensor(x)).data[:, 0], (x[:, 0] - 1.5) / np.sqrt(2.5 + 1e-5), rtol=1e-5)
    assert bn.num_batches_tracked.data == 1  # eval does not count


def test_batch_norm_cumulative_average_and_no_tracking():
    bn = nn.BatchNorm1d(1, momentum=None)
    for batch in ([[0.0], [2.0]], [[4.0], [6.0]], [[8.0], [10.0]]):
        bn(tg.Tensor(np.array(batch, dtype=np.float32)))
    np.testing.assert_allclose(bn.running_mean.data, [5.0])  # the plain mean of the batch means 1, 5, 9
    free = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    assert free.running_mean is None and list(free.state_dict()) == [] and free.parameters() == []
    y = free(tg.Tensor(np.random.default_rng(0).normal(3, 2, (4, 3, 2, 2)).astype(np.float32)))
    np.testing.assert_allclose(y.data.mean(axis=(0, 2, 3)), 0, atol=1e-5)  # batch statistics even in eval
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(tg.Tensor(np.ones((1, 3), dtype=np.float32)))


def test_max_pool_indices_and_ceil_mode_shapes():
    x = tg.Tensor(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    out, idx = C.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(out.data[0, 0], [[6, 8], [16, 18]])
    np.testing.assert_array_equal(idx.data[0, 0], [[6, 8], [16, 18]])  # row * 5 + col of each maximum
    out, idx = C.max_pool2d(x, 2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(out.data[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    np.testing.assert_array_equal(idx.data[0, 0], out.data[0, 0])
    avg = C.avg_pool2d(x, 2, ceil_mode=True)
    assert avg.data[0, 0, 2, 2] == 24.0  # the 1x1 corner window averages only its one input
    assert C.adaptive_avg_pool2d(x, 1).data.item() == 12.0
    assert C.adaptive_max_pool2d(x, (2, 3)).shape == (1, 1, 2, 3)


def test_cross_entropy_fixed_values():
    logits = tg.Tensor(np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]))
    target = np.array([0, 2])
    logp = logits.data - np.log(np.exp(logits.data).sum(1, keepdims=True))
    expected = -(logp[0, 0] + logp[1, 2]) / 2
    assert L.cross_entropy(logits, target).item() == pytest.approx(expected)
    w = np.array([1.0, 1.0, 3.0])
    assert L.cross_entropy(logits, target, w).item() == pytest.approx(-(logp[0, 0] + 3 * logp[1, 2]) / 4)
    assert L.cross_entropy(logits, np.array([0, -100])).item() == pytest.approx(-logp[0, 0])
    smooth = 0.3 * -logp.sum(1).mean() / 3 + 0.7 * expected
    assert L.cross_entropy(logits, target, label_smoothing=0.3).item() == pytest.approx(smooth)


# --------------------------------------------------------------------------- Module API


class Block(nn.Module):
    def __init__(self):
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.register_buffer("scratch", tg.Tensor(np.zeros(2, dtype=np.float32)), persistent=False)
        self.head = nn.Linear(2, 3)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).mean((2, 3)))


def test_buffers_and_state_dict_order():
    block = Block()
    assert [n for n, _ in block.named_buffers()] == [
        "scratch",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]
    assert list(block.state_dict()) == [
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
        "head.weight",
        "head.bias",
    ]  # the non-persistent buffer is not saved
    other = Block()
    other.bn.running_mean.data[:] = 7
    block.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(block.bn.running_mean.data, 7)


def test_modules_children_apply_requires_grad_and_to():
    block = Block()
    assert [n for n, _ in block.named_modules()] == ["", "conv", "bn", "head"]
    assert [n for n, _ in block.named_children()] == ["conv", "bn", "head"]
    seen = []
    block.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "BatchNorm2d", "Linear", "Block"]
    block.requires_grad_(False)
    assert not any(p.requires_grad for p in block.parameters())
    weight = block.conv.weight
    assert block.to(np.float64) is block and block.conv.weight is weight
    assert weight.dtype == np.float64 and block.bn.running_var.dtype == np.float64
    assert block.bn.num_batches_tracked.dtype == np.int64  # integer buffers keep their dtype
    block.to("cpu")
    with pytest.raises(RuntimeError, match="CPU only"):
        block.to("cuda")


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    y = lin(tg.Tensor(np.ones((1, 2), dtype=np.float32)))
    np.testing.assert_allclose(y.data, lin.bias.data[None] + 1)
    assert calls == [(1, 2)]
    pre.remove()
    post.remove()
    np.testing.assert_allclose(lin(tg.Tensor(np.zeros((1, 2), dtype=np.float32))).data, lin.bias.data[None])


def test_containers():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"] and isinstance(seq[1], nn.ReLU)
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1
    md = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.Tanh()})
    md["c"] = nn.Linear(1, 2)
    assert list(md.keys()) == ["a", "b", "c"] and len(md) == 3 and "c" in md
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    pl = nn.ParameterList([np.zeros(2, dtype=np.float32), nn.Parameter(np.ones(3, dtype=np.float32))])
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"] and isinstance(pl[0], nn.Parameter)
    pd = nn.ParameterDict({"scale": np.ones(1, dtype=np.float32)})
    assert list(pd.state_dict()) == ["scale"]


def test_init_functions_fill_in_place():
    w = nn.Parameter(np.zeros((64, 32, 3, 3), dtype=np.float32))
    tg.manual_seed(0)
    assert nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu") is w
    assert w.data.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    assert np.abs(w.data).max() <= 1 / math.sqrt(32 * 9) + 1e-7
    nn.init.xavier_uniform_(w)
    assert np.abs(w.data).max() <= math.sqrt(6 / (32 * 9 + 64 * 9)) + 1e-7
    nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.data).max() <= 0.5
    for fn, value in ((nn.init.zeros_, 0), (nn.init.ones_, 1), (lambda t: nn.init.constant_(t, 0.25), 0.25)):
        fn(w)
        assert (w.data == value).all()
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_normal_(nn.Parameter(np.zeros(3, dtype=np.float32)))


def test_clip_grad_and_parameter_vectors():
    a, b = nn.Parameter(np.zeros(2, dtype=np.float32)), nn.Parameter(np.zeros((1, 1), dtype=np.float32))
    a.grad, b.grad = tg.Tensor(np.array([3.0, 0.0], dtype=np.float32)), tg.Tensor(np.array([[4.0]], dtype=np.float32))
    total = nn.utils.clip_grad_norm_([a, b], 1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(np.asarray(a.grad), [0.6, 0.0], rtol=1e-5)
    nn.utils.clip_grad_value_([a, b], 0.5)
    np.testing.assert_allclose(np.asarray(b.grad), [[0.5]])
    vec = nn.utils.parameters_to_vector([a, b])
    np.testing.assert_array_equal(vec.data, [0, 0, 0])
    nn.utils.vector_to_parameters(tg.Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32)), [a, b])
    np.testing.assert_array_equal(b.data, [[3.0]])


def test_unflatten_softmax_dims_and_repr():
    x = tg.Tensor(np.arange(12, dtype=np.float32).reshape(2, 6))
    assert nn.Unflatten(1, (2, 3))(x).shape == (2, 2, 3)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).data.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(np.exp(nn.LogSoftmax(dim=0)(x).data).sum(0), 1, rtol=1e-6)
    assert (
        repr(nn.BatchNorm2d(4))
        == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"
    )
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"


@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 3), st.integers(1, 3)), seed=SEEDS)
def test_batch_norm_of_a_channels_last_layout_gradcheck(shape, seed):
    """conv2d's output is an (N, C, H, W) view of (H, W, N, C) memory; batch_norm computes such an
    input in its memory order (another path): its gradient and values must be the same."""
    h, w, n, c = shape
    memory = t64((h, w, n, c), seed)
    weight, bias = t64((c,), seed + 1), t64((c,), seed + 2)
    rm, rv = tg.Tensor(np.zeros(c)), tg.Tensor(np.ones(c))

    def bn(m, w, b):
        return N.batch_norm(m.permute(2, 3, 0, 1), rm, rv, w, b, True)

    assert gradcheck(bn, memory, weight, bias)
    plain = tg.Tensor(np.ascontiguousarray(memory.array.transpose(2, 3, 0, 1)))
    np.testing.assert_allclose(bn(memory, weight, bias).data, N.batch_norm(plain, rm, rv, weight, bias, True).data)
