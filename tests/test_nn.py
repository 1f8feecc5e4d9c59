"""Tests for tinygrad_cnn.nn: module registration, train/eval, containers, printing, state dicts,
layer shapes and initialisation, seeding, and (with PyTorch installed) equivalence with torch.nn."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F
from tinygrad_cnn import nn

# ----------------------------------------------------------------------------------------------------
# Helpers


class Net(nn.Module):
    """Sub-modules and a direct Parameter, interleaved: (N, 1, 8, 8) -> (N, 5)."""

    def __init__(self) -> None:
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        x = F.flatten(self.features(x), 1) * self.scale
        return self.head(self.dropout(x))


# PyTorch's order: a module's own parameters first, then each child's, depth first.
NET_NAMES = [
    "scale",
    "features.0.weight",
    "features.0.bias",
    "features.1.weight",
    "features.1.bias",
    "head.weight",
    "head.bias",
]
NET_SHAPES = [(1,), (4, 1, 3, 3), (4,), (4, 4, 3, 3), (4,), (5, 36), (5,)]


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_state_equal(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ----------------------------------------------------------------------------------------------------
# Registration


def test_named_parameters_in_pytorch_order_with_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == NET_NAMES
    assert [p.shape for _, p in net.named_parameters()] == NET_SHAPES
    # The very objects assigned as attributes, not copies.
    params = dict(net.named_parameters())
    assert params["features.1.bias"] is net.features[1].bias
    assert params["scale"] is net.scale
    assert params["head.weight"] is net.head.weight
    assert net.parameters() == [p for _, p in net.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())


def test_num_parameters():
    net = Net()
    expected = (4 * 9 + 4) + (4 * 4 * 9 + 4) + 1 + (36 * 5 + 5)
    assert net.num_parameters() == expected == sum(p.numel() for p in net.parameters()) == 374
    assert nn.ReLU().num_parameters() == 0 and nn.ReLU().parameters() == []


def test_sequential_names_are_indices():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight"]


def test_modules_and_children():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["features", "dropout", "head"]
    assert list(net.children()) == [net.features, net.dropout, net.head]
    names = [n for n, _ in net.named_modules()]
    assert names == ["", "features", "features.0", "features.1", "features.2", "features.3", "dropout", "head"]
    assert next(iter(net.modules())) is net


def test_only_parameters_and_modules_are_registered():
    class M(nn.Module):
        def __init__(self):
            self.plain = tg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)  # not a Parameter
            self.array = np.ones(3)
            self.layers = [nn.Linear(2, 2)]  # a plain list is not registered (use ModuleList)
            self.weight = nn.Parameter(np.zeros(2, dtype=np.float32))
            self.none = None

    m = M()
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert list(m.children()) == []


def test_reassigning_an_attribute_replaces_the_parameter_in_place():
    lin = nn.Linear(3, 2)
    new = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    lin.weight = new
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    assert lin.parameters()[0] is new


def test_linear_without_bias_has_no_bias_parameter():
    lin = nn.Linear(3, 2, bias=False)
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    x = tg.Tensor(rand(4, 3))
    np.testing.assert_allclose(lin(x).data, x.data @ lin.weight.data.T, rtol=1e-6)
    conv = nn.Conv2d(2, 3, 3, bias=False)
    assert [n for n, _ in conv.named_parameters()] == ["weight"]


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(model.parameters()) == 2
    assert model.num_parameters() == 6


def test_zero_grad_clears_every_gradient():
    net = Net()
    net(tg.Tensor(rand(2, 1, 8, 8))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# ----------------------------------------------------------------------------------------------------
# train() / eval() and Dropout


def test_train_eval_propagate_to_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not any(m.training for m in net.modules())
    # A sub-module can be switched alone.
    net.train()
    net.dropout.eval()
    assert not net.dropout.training and net.head.training and net.training


def test_dropout_is_identity_in_eval_mode():
    drop = nn.Dropout(0.7).eval()
    x = tg.Tensor(rand(50, 40), requires_grad=True)
    y = drop(x)
    np.testing.assert_array_equal(y.data, x.data)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones_like(x.data))
    # Inside a model switched to eval: deterministic.
    net = Net().eval()
    inp = tg.Tensor(rand(3, 1, 8, 8))
    np.testing.assert_array_equal(net(inp).data, net(inp).data)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_dropout_in_train_mode_keeps_the_right_fraction_and_scales(p):
    tg.manual_seed(123)
    drop = nn.Dropout(p)
    n = 200_000
    x = tg.Tensor(np.abs(rand(n)) + 0.5, requires_grad=True)
    y = drop(x)
    kept = y.array != 0
    # Binomial(n, 1-p): 5 standard deviations.
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y.array[kept], x.array[kept] / (1 - p), rtol=1e-6)
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / (1 - p), rtol=1e-6)
    # The mean is preserved in expectation.
    assert abs(y.data.mean() / x.data.mean() - 1) < 0.02
    # A fresh mask each call.
    assert (drop(x).data != 0).tolist() != kept.tolist()


def test_dropout_edge_probabilities_and_validation():
    x = tg.Tensor(rand(10, 10))
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).data, x.data)
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).data, np.zeros((10, 10), np.float32))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p must be in"):
            nn.Dropout(p)


@pytest.mark.parametrize(
    "layer, shape, channel_axes",
    [(nn.Dropout2d, (40, 50, 3, 4), 2), (nn.Dropout1d, (40, 50, 6), 2), (nn.Dropout1d, (500, 7), 1)],
)
def test_channel_dropout_zeroes_whole_channels(layer, shape, channel_axes):
    """Dropout1d/Dropout2d (PyTorch's): one draw per channel, the same for every position in it."""
    tg.manual_seed(7)
    p = 0.3
    x = tg.Tensor(np.abs(rand(*shape)) + 0.5, requires_grad=True)
    y = layer(p)(x)
    kept = y.array != 0
    per_channel = kept.reshape(*shape[:channel_axes], -1)
    assert (per_channel.all(-1) == per_channel.any(-1)).all()  # a channel is all kept or all dropped
    channels = per_channel.all(-1)
    assert abs(channels.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / channels.size)
    np.testing.assert_allclose(y.array[kept], x.array[kept] / (1 - p), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / (1 - p), rtol=1e-6)
    drop = layer(0.9).eval()
    assert drop(x) is x and repr(drop) == f"{layer.__name__}(p=0.9, inplace=False)"


def test_channel_dropout_inputs_as_pytorch_reads_them():
    with pytest.warns(UserWarning, match=r"interpreted as shape \(N, C, L\)"):
        y = tg.nn.functional.dropout2d(tg.ones(30, 40, 5), 0.5)
    assert ((y.array == 0).all(-1) | (y.array != 0).all(-1)).all()
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
        nn.Dropout1d()(tg.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout2d(1.5)


# ----------------------------------------------------------------------------------------------------
# Containers


def test_sequential_indexing_len_iter_and_forward():
    layers = [nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3
    assert seq[0] is layers[0] and seq[2] is layers[2] and seq[-1] is layers[2]
    assert list(seq) == layers
    with pytest.raises(IndexError):
        seq[3]
    x = tg.Tensor(rand(5, 3))
    want = layers[2](layers[1](layers[0](x)))
    np.testing.assert_array_equal(seq(x).data, want.data)
    assert len(nn.Sequential()) == 0
    assert nn.Sequential()(x) is x


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="argument 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_module_list():
    blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 3)])
    assert blocks.append(nn.Linear(3, 1)) is blocks
    assert len(blocks) == 3
    assert blocks[1].out_features == 3 and blocks[-1].out_features == 1
    assert [b.in_features for b in blocks] == [2, 3, 3]
    assert len(nn.ModuleList()) == 0

    class M(nn.Module):
        def __init__(self):
            self.blocks = blocks

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return x

    m = M()
    want = [f"blocks.{i}.{w}" for i in range(3) for w in ("weight", "bias")]
    assert [n for n, _ in m.named_parameters()] == want
    assert m(tg.Tensor(rand(4, 2))).shape == (4, 1)
    with pytest.raises(NotImplementedError):
        blocks(tg.Tensor(rand(4, 2)))


# ----------------------------------------------------------------------------------------------------
# Printing


def test_repr_is_readable():
    assert repr(nn.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"
    conv = repr(nn.Conv2d(1, 4, 3, stride=2, padding=1))
    assert conv == "Conv2d(1, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"  # PyTorch's text
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25, inplace=False)"
    assert "kernel_size=2" in repr(nn.MaxPool2d(2))
    text = repr(Net())
    lines = text.splitlines()
    assert lines[0] == "Net("
    assert lines[1] == "  (features): Sequential("
    assert lines[2].startswith("    (0): Conv2d(1, 4, kernel_size=(3, 3)")
    assert "    (2): ReLU()" in lines
    assert "  (dropout): Dropout(p=0.5, inplace=False)" in lines
    assert "  (head): Linear(in_features=36, out_features=5, bias=True)" in lines
    assert lines[-1] == ")"


def test_parameter_repr():
    assert repr(nn.Parameter(np.zeros(2, dtype=np.float32))).startswith("Parameter containing:\n")


def test_summary_lists_layers_shapes_params_and_total():
    net = Net()
    text = net.summary((2, 1, 8, 8))
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+) \((\w+)\)\s+(\(.*?\)|-)\s+([\d,]+)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), int(m.group(4).replace(",", "")))
    assert rows == {
        "features.0": ("Conv2d", "(2, 4, 6, 6)", 40),
        "features.1": ("Conv2d", "(2, 4, 6, 6)", 148),
        "features.2": ("ReLU", "(2, 4, 6, 6)", 0),
        "features.3": ("MaxPool2d", "(2, 4, 3, 3)", 0),
        "dropout": ("Dropout", "(2, 36)", 0),
        "head": ("Linear", "(2, 5)", 185),
    }
    # In call order, containers left out.
    order = [line.split()[0] for line in text.splitlines() if line.split() and line.split()[0] in rows]
    assert order == ["features.0", "features.1", "features.2", "features.3", "dropout", "head"]
    assert re.search(r"total parameters\s+374$", text)
    big = nn.Sequential(nn.Linear(100, 100))
    assert re.search(r"total parameters\s+10,100$", big.summary((1, 100)))
    # No side effects: no gradients, and later calls are not recorded.
    assert all(p.grad is None for p in net.parameters())
    assert net.summary((1, 1, 8, 8)).count("\n") == text.count("\n")


def test_summary_restores_state_after_an_error():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError):
        model.summary((1, 4))
    assert "0 (Linear)" in model.summary((1, 3))


# ----------------------------------------------------------------------------------------------------
# state_dict / load_state_dict


def test_state_dict_holds_detached_tensors_sharing_memory_as_pytorch():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == NET_NAMES
    assert all(type(v) is tg.Tensor and v.dtype == np.float32 and not v.requires_grad for v in sd.values())
    with tg.no_grad():
        net.head.weight.fill_(-1.0)  # an optimizer step, say: the state_dict sees it, as in PyTorch
    assert (sd["head.weight"] == -1.0).all()
    snapshot = copy.deepcopy(net.state_dict())  # PyTorch's idiom for keeping the best weights
    with tg.no_grad():
        net.head.weight.fill_(3.0)
    assert (snapshot["head.weight"] == -1.0).all()
    kept = net.state_dict(keep_vars=True)
    assert kept["head.weight"] is net.head.weight and kept["scale"].requires_grad
    assert list(net.state_dict(prefix="model.")) == ["model." + k for k in NET_NAMES]
    into: dict = {"other": 1}
    assert net.head.state_dict(destination=into, prefix="head.") is into and list(into) == ["other", *NET_NAMES[-2:]]


def test_load_state_dict_round_trip_in_place():
    tg.manual_seed(0)
    a = Net().eval()
    tg.manual_seed(1)
    b = Net().eval()
    x = tg.Tensor(rand(3, 1, 8, 8))
    assert not np.array_equal(a(x).data, b(x).data)
    params_before = b.parameters()
    b.load_state_dict(a.state_dict())
    assert_state_equal(b.state_dict(), a.state_dict())
    np.testing.assert_array_equal(b(x).data, a(x).data)
    # Loaded in place: the Parameter objects (which an optimizer holds) are the same.
    assert all(p is q for p, q in zip(b.parameters(), params_before, strict=True))


def test_load_state_dict_keeps_dtype_and_accepts_tensors():
    lin = nn.Linear(3, 2)
    sd = {"weight": np.full((2, 3), 0.5, dtype=np.float64), "bias": tg.Tensor(np.ones(2, dtype=np.float32))}
    lin.load_state_dict(sd)
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    np.testing.assert_array_equal(lin.weight.data, np.full((2, 3), 0.5, np.float32))
    np.testing.assert_array_equal(lin.bias.data, np.ones(2, np.float32))
    # The loaded arrays are copied, not aliased.
    sd["weight"][...] = 7.0
    assert (lin.weight.data == 0.5).all()


def test_load_state_dict_through_an_h5_checkpoint(tmp_path):
    tg.manual_seed(3)
    a = Net().eval()
    path = tmp_path / "model.h5"
    tg.save(a.state_dict(), path)
    loaded = tg.load(path)
    assert list(loaded) == NET_NAMES
    tg.manual_seed(4)
    b = Net().eval()
    b.load_state_dict(loaded)
    assert_state_equal(b.state_dict(), a.state_dict())
    x = tg.Tensor(rand(2, 1, 8, 8))
    np.testing.assert_array_equal(b(x).data, a(x).data)


def test_strict_load_reports_missing_keys():
    net = Net()
    before = copy.deepcopy(net.state_dict())
    sd = Net().state_dict()
    del sd["features.1.bias"], sd["head.weight"]
    with pytest.raises(RuntimeError, match=r"missing.*features\.1\.bias.*head\.weight"):
        net.load_state_dict(sd)
    assert_state_equal(net.state_dict(), before)  # nothing was loaded


def test_strict_load_reports_unexpected_keys():
    net = Net()
    before = copy.deepcopy(net.state_dict())
    sd = Net().state_dict()
    sd["head.extra"] = np.zeros(3, np.float32)
    with pytest.raises(RuntimeError, match=r"unexpected.*head\.extra"):
        net.load_state_dict(sd)
    assert_state_equal(net.state_dict(), before)


def test_strict_load_reports_missing_and_unexpected_together():
    lin = nn.Linear(2, 2)
    with pytest.raises(RuntimeError) as info:  # PyTorch's class
        lin.load_state_dict({"weight": np.zeros((2, 2)), "bais": np.zeros(2)})
    msg = str(info.value)
    assert "missing" in msg and "'bias'" in msg and "unexpected" in msg and "'bais'" in msg


@pytest.mark.parametrize("strict", [True, False])
def test_shape_mismatch_names_the_key_and_both_shapes(strict):
    net = Net()
    before = copy.deepcopy(net.state_dict())
    sd = Net().state_dict()
    sd["head.weight"] = np.zeros((7, 36), np.float32)
    with pytest.raises(RuntimeError) as info:  # PyTorch's class, whatever strict says
        net.load_state_dict(sd, strict=strict)
    msg = str(info.value)
    assert "head.weight" in msg and "(7, 36)" in msg and "(5, 36)" in msg
    assert_state_equal(net.state_dict(), before)  # all-or-nothing


def test_non_strict_load_loads_the_overlap():
    tg.manual_seed(0)
    net = Net()
    before = copy.deepcopy(net.state_dict())
    new_w = np.full((5, 36), 0.25, np.float32)
    result = net.load_state_dict({"head.weight": new_w, "not.a.param": np.zeros(2)}, strict=False)
    assert result.missing_keys == [k for k in NET_NAMES if k != "head.weight"]
    assert result.unexpected_keys == ["not.a.param"]
    after = net.state_dict()
    np.testing.assert_array_equal(after["head.weight"], new_w)
    for k in NET_NAMES:
        if k != "head.weight":
            np.testing.assert_array_equal(after[k], before[k])


# ----------------------------------------------------------------------------------------------------
# Layers: shapes, dtypes, initialisation


def test_linear_shapes_and_dtype():
    lin = nn.Linear(5, 3)
    assert lin.weight.shape == (3, 5) and lin.bias.shape == (3,)
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    x = rand(4, 5)
    y = lin(tg.Tensor(x))
    assert y.shape == (4, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, x @ lin.weight.data.T + lin.bias.data, rtol=1e-5, atol=1e-6)
    assert lin(tg.Tensor(rand(2, 6, 5))).shape == (2, 6, 3)
    lin64 = nn.Linear(5, 3, dtype=np.float64)
    assert lin64.weight.dtype == np.float64 and lin64.bias.dtype == np.float64
    assert lin64(tg.Tensor(rand(4, 5, dtype=np.float64))).dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, in_hw, out_hw",
    [
        (dict(kernel_size=3), (10, 9), (8, 7)),
        (dict(kernel_size=3, stride=2, padding=1), (10, 9), (5, 5)),
        (dict(kernel_size=(3, 5), stride=(1, 2), padding=(1, 2)), (6, 11), (6, 6)),
        (dict(kernel_size=3, dilation=2), (10, 9), (6, 5)),
    ],
)
def test_conv2d_shapes_and_dtype(kwargs, in_hw, out_hw):
    conv = nn.Conv2d(3, 8, **kwargs)
    k = kwargs["kernel_size"]
    kh, kw = (k, k) if isinstance(k, int) else k
    assert conv.weight.shape == (8, 3, kh, kw) and conv.bias.shape == (8,)
    assert conv.weight.dtype == np.float32 and conv.bias.dtype == np.float32
    y = conv(tg.Tensor(rand(2, 3, *in_hw)))
    assert y.shape == (2, 8, *out_hw) and y.dtype == np.float32


def test_pool_and_flatten_shapes():
    x = tg.Tensor(rand(2, 3, 9, 8))
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.MaxPool2d(3, stride=2, padding=1)(x).shape == (2, 3, 5, 4)
    assert nn.AvgPool2d(2, stride=1)(x).shape == (2, 3, 8, 7)
    assert nn.Flatten()(x).shape == (2, 3 * 9 * 8)
    assert nn.Flatten(2)(x).shape == (2, 3, 72)
    assert nn.Identity()(x) is x


def assert_roughly_uniform(values, bound):
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.97 * bound and values.max() > 0.97 * bound  # the whole range is used
    assert abs(values.mean()) < 5 * bound / math.sqrt(3 * n)
    assert abs(values.std() / (bound / math.sqrt(3)) - 1) < 0.05
    counts = np.histogram(values, bins=10, range=(-bound, bound))[0]
    expected = n / 10
    assert (np.abs(counts - expected) < 6 * math.sqrt(expected)).all(), counts


def test_linear_init_uniform_in_pytorch_bound():
    tg.manual_seed(0)
    lin = nn.Linear(100, 300)
    bound = 1 / math.sqrt(100)
    assert_roughly_uniform(lin.weight.data, bound)
    assert np.abs(lin.bias.data).max() <= bound
    small = nn.Linear(3, 2000)  # enough bias values to check their distribution too
    assert_roughly_uniform(small.bias.data, 1 / math.sqrt(3))


def test_conv2d_init_uniform_in_pytorch_bound():
    tg.manual_seed(0)
    conv = nn.Conv2d(4, 256, 3)
    bound = 1 / math.sqrt(4 * 3 * 3)
    assert_roughly_uniform(conv.weight.data, bound)
    assert np.abs(conv.bias.data).max() <= bound
    rect = nn.Conv2d(2, 512, (1, 3))
    assert_roughly_uniform(rect.weight.data, 1 / math.sqrt(6))


def test_manual_seed_gives_identical_models():
    tg.manual_seed(7)
    a = Net()
    tg.manual_seed(7)
    b = Net()
    tg.manual_seed(8)
    c = Net()
    assert_state_equal(a.state_dict(), b.state_dict())
    for k in NET_NAMES:
        if k != "scale":  # initialised to ones, not random
            assert not np.array_equal(a.state_dict()[k], c.state_dict()[k]), k
    d = Net()  # no re-seed: the generator moved on
    assert not np.array_equal(b.state_dict()["head.weight"], d.state_dict()["head.weight"])
    # Dropout masks follow the seed too.
    x = tg.Tensor(rand(4, 1, 8, 8))
    tg.manual_seed(1)
    y1 = a(x).data
    tg.manual_seed(1)
    np.testing.assert_array_equal(a(x).data, y1)


# ----------------------------------------------------------------------------------------------------
# Equivalence with torch.nn


def _torch_models(torch):
    tnn = torch.nn
    return {
        "conv-stride-pad-maxpool-linear": (
            lambda: nn.Sequential(
                nn.Conv2d(2, 4, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(4, 6, 3, padding=1),
                nn.Tanh(),
                nn.AvgPool2d(2, stride=1),
                nn.Flatten(),
                nn.Linear(54, 10),
                nn.Sigmoid(),
                nn.Linear(10, 3),
            ),
            lambda: tnn.Sequential(
                tnn.Conv2d(2, 4, 3, stride=2, padding=1),
                tnn.ReLU(),
                tnn.MaxPool2d(2),
                tnn.Conv2d(4, 6, 3, padding=1),
                tnn.Tanh(),
                tnn.AvgPool2d(2, stride=1),
                tnn.Flatten(),
                tnn.Linear(54, 10),
                tnn.Sigmoid(),
                tnn.Linear(10, 3),
            ),
            (3, 2, 16, 16),
        ),
        "rect-kernels-padded-pools-no-bias": (
            lambda: nn.Sequential(
                nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), bias=False),
                nn.Sigmoid(),
                nn.MaxPool2d(3, stride=2, padding=1),
                nn.Conv2d(5, 4, 2, dilation=2),
                nn.AvgPool2d(3, stride=2, padding=1),
                nn.Flatten(),
                nn.Linear(4 * 2 * 3, 6, bias=False),
                nn.Tanh(),
            ),
            lambda: tnn.Sequential(
                tnn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), bias=False),
                tnn.Sigmoid(),
                tnn.MaxPool2d(3, stride=2, padding=1),
                tnn.Conv2d(5, 4, 2, dilation=2),
                tnn.AvgPool2d(3, stride=2, padding=1),
                tnn.Flatten(),
                tnn.Linear(4 * 2 * 3, 6, bias=False),
                tnn.Tanh(),
            ),
            (2, 3, 21, 17),
        ),
        "mlp": (
            lambda: nn.Sequential(
                nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 7), nn.Tanh(), nn.Linear(7, 2)
            ),
            lambda: tnn.Sequential(
                tnn.Flatten(), tnn.Linear(12, 7), tnn.ReLU(), tnn.Linear(7, 7), tnn.Tanh(), tnn.Linear(7, 2)
            ),
            (4, 3, 2, 2),
        ),
    }


MODEL_IDS = ["conv-stride-pad-maxpool-linear", "rect-kernels-padded-pools-no-bias", "mlp"]


def _compare_with_torch(torch, ours, theirs, shape, seed):
    x = rand(*shape, seed=seed)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out_t = theirs(tx)
    w = rand(*out_t.shape, seed=seed + 1)
    (out_t * torch.from_numpy(w)).sum().backward()

    gx = tg.Tensor(x, requires_grad=True)
    out = ours(gx)
    assert out.shape == tuple(out_t.shape) and out.dtype == np.float32
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    (out * tg.Tensor(w)).sum().backward()
    np.testing.assert_allclose(gx.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-6)
    torch_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        want = torch_params[name].grad.numpy()
        np.testing.assert_allclose(p.grad, want, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_torch_to_tinygrad_same_outputs_and_gradients(model_id):
    torch = pytest.importorskip("torch")
    make_ours, make_theirs, shape = _torch_models(torch)[model_id]
    torch.manual_seed(0)
    theirs = make_theirs()
    ours = make_ours()
    assert list(ours.state_dict()) == list(theirs.state_dict())  # names match exactly, in order
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    _compare_with_torch(torch, ours, theirs, shape, seed=10)


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_tinygrad_to_torch_same_outputs_and_gradients(model_id):
    torch = pytest.importorskip("torch")
    make_ours, make_theirs, shape = _torch_models(torch)[model_id]
    tg.manual_seed(5)
    ours = make_ours()
    theirs = make_theirs()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})  # strict in torch
    for k, v in theirs.state_dict().items():
        assert v.dtype == torch.float32
        np.testing.assert_array_equal(v.numpy(), ours.state_dict()[k])
    _compare_with_torch(torch, ours, theirs, shape, seed=20)


def test_nested_names_match_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TorchNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(1, 4, 3), tnn.Conv2d(4, 4, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2)
            )
            self.scale = tnn.Parameter(torch.ones(1))
            self.dropout = tnn.Dropout(0.5)
            self.head = tnn.Linear(36, 5)

        def forward(self, x):
            return self.head(self.dropout(x.flatten(1) * self.scale))

    theirs = TorchNet()
    ours = Net()
    # torch lists a module's own parameters before its children's; we keep assignment order
    # (documented). The names and shapes are the same.
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert ours.state_dict()[k].shape == tuple(v.shape), k
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

    class TorchBlocks(tnn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = tnn.ModuleList([tnn.Linear(2, 3), tnn.Linear(3, 1, bias=False)])

    class Blocks(nn.Module):
        def __init__(self):
            self.blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 1, bias=False)])

    assert list(Blocks().state_dict()) == list(TorchBlocks().state_dict())


def test_load_state_dict_returns_the_incompatible_keys_as_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    state = {"weight": np.zeros((2, 3), np.float32), "extra": np.zeros(1, np.float32)}
    got = ours.load_state_dict(state, strict=False)
    want = theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    assert (got.missing_keys, got.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
    assert tuple(got) == tuple(want)
    full = {k: np.zeros(v.shape, np.float32) for k, v in ours.state_dict().items()}
    assert repr(ours.load_state_dict(full)) == repr(
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in full.items()})
    )
    for strict in (True, False):  # the same class of error for a shape mismatch
        bad = {"weight": np.zeros((5, 3), np.float32), "bias": np.zeros(2, np.float32)}
        with pytest.raises(RuntimeError):
            theirs.load_state_dict({k: torch.from_numpy(v) for k, v in bad.items()}, strict=strict)
        with pytest.raises(RuntimeError, match="shape mismatch"):
            ours.load_state_dict(bad, strict=strict)
