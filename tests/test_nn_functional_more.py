"""nn.functional's padding, resizing, distance, one-hot, KL divergence and the extra activations,
against PyTorch when it is installed (values and input gradients) and against fixed values always.
Their gradients are property-tested against finite differences in tests/test_ops_check.py."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import nn

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the oracle is optional
    torch = None

rng = np.random.default_rng(0)
IMAGE = rng.standard_normal((2, 3, 4, 5))
SEQ = rng.standard_normal((2, 3, 6))
ROWS = rng.standard_normal((4, 5))
EDGES = np.array([-7.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 8.0])

# (name, f(F, x), input)
CASES = [
    ("pad constant", lambda F, x: F.pad(x, (1, 2, 0, 1), value=0.5), IMAGE),
    ("pad crop", lambda F, x: F.pad(x, (-1, 2, 1, -2)), IMAGE),
    ("pad reflect", lambda F, x: F.pad(x, (2, 3), mode="reflect"), SEQ),
    ("pad reflect 2d", lambda F, x: F.pad(x, (1, 1, 2, 1), mode="reflect"), IMAGE),
    ("pad replicate", lambda F, x: F.pad(x, (2, 1, 1, 3), mode="replicate"), IMAGE),
    ("pad circular", lambda F, x: F.pad(x, (1, 2), mode="circular"), SEQ),
    ("nearest x2", lambda F, x: F.interpolate(x, scale_factor=2), IMAGE),
    ("nearest 1.5", lambda F, x: F.interpolate(x, scale_factor=1.5, mode="nearest"), IMAGE),
    ("nearest size", lambda F, x: F.interpolate(x, size=(3, 7)), IMAGE),
    ("nearest repeats", lambda F, x: F.interpolate(x, size=(8, 15)), IMAGE),  # each entry 2 and 3 times
    ("nearest every 2nd", lambda F, x: F.interpolate(x, scale_factor=0.5), IMAGE),  # strided views
    ("nearest 3d x2", lambda F, x: F.interpolate(x, scale_factor=2), SEQ),
    ("conv2d unbatched", lambda F, x: F.conv2d(x, x.new_ones((2, 3, 3, 3)) * 0.1, padding=1), IMAGE[0]),
    ("max_pool2d unbatched", lambda F, x: F.max_pool2d(x, 2, padding=1), IMAGE[0]),
    ("avg_pool2d unbatched", lambda F, x: F.avg_pool2d(x, 2), IMAGE[0]),
    (
        "adaptive pools unbatched",
        lambda F, x: F.adaptive_max_pool2d(x, (2, 3)) + F.adaptive_avg_pool2d(x, (2, 3)),
        IMAGE[0],
    ),
    ("bilinear", lambda F, x: F.interpolate(x, size=(7, 3), mode="bilinear", align_corners=False), IMAGE),
    ("bilinear x2", lambda F, x: F.interpolate(x, scale_factor=2, mode="bilinear"), IMAGE),
    ("bilinear corners", lambda F, x: F.interpolate(x, size=(6, 9), mode="bilinear", align_corners=True), IMAGE),
    ("linear", lambda F, x: F.interpolate(x, size=4, mode="linear"), SEQ),
    ("unfold", lambda F, x: F.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)), IMAGE),
    ("fold of unfold", lambda F, x: F.fold(F.unfold(x, 2, padding=1), (4, 5), 2, padding=1), IMAGE),
    (
        "fold strided",
        lambda F, x: F.fold(x.reshape(-1)[:72].reshape(1, 12, 6), (5, 6), (2, 3), stride=(1, 2), dilation=(2, 1)),
        IMAGE,
    ),
    ("normalize", lambda F, x: F.normalize(x, dim=1), ROWS),
    ("normalize p1", lambda F, x: F.normalize(x, p=1, dim=0), ROWS),
    ("cosine_similarity", lambda F, x: F.cosine_similarity(x, x.flip(0) * 2 + 1), ROWS),
    ("pairwise_distance", lambda F, x: F.pairwise_distance(x, x * 0.5 - 1), ROWS),
    ("kl_div", lambda F, x: F.kl_div(F.log_softmax(x, 1), F.softmax(x.flip(0), 1), reduction="batchmean"), ROWS),
    ("kl_div sum", lambda F, x: F.kl_div(x, x.detach().abs(), reduction="sum"), ROWS),
    ("kl_div log_target", lambda F, x: F.kl_div(x, x.detach() * 0.5, reduction="mean", log_target=True), ROWS),
    ("hardtanh", lambda F, x: F.hardtanh(x), EDGES),
    ("hardtanh bounds", lambda F, x: F.hardtanh(x, -0.5, 3.0), EDGES),
    ("relu6", lambda F, x: F.relu6(x), EDGES),
    ("logsigmoid", lambda F, x: F.logsigmoid(x), EDGES * 20),
    ("mish", lambda F, x: F.mish(x), EDGES),
    ("softsign", lambda F, x: F.softsign(x), EDGES),
]


def _run(lib, F, fn, x: np.ndarray):
    t = lib.tensor(x, requires_grad=True)
    y = fn(F, t)
    y.backward(lib.tensor(np.linspace(-1, 1, int(np.prod(y.shape))).reshape(tuple(y.shape))))
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here")
@pytest.mark.parametrize("name, fn, x", CASES, ids=[c[0] for c in CASES])
def test_matches_pytorch(name: str, fn, x: np.ndarray) -> None:
    ours, our_grad = _run(tg, F, fn, x)
    theirs, their_grad = _run(torch, TF, fn, x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(our_grad, their_grad, rtol=1e-6, atol=1e-12)


def test_fixed_values() -> None:
    x = tg.arange(6.0).view(1, 1, 2, 3)
    np.testing.assert_allclose(
        F.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False).numpy()[0, 0],
        [[0, 0.625, 1.375, 2], [1.5, 2.125, 2.875, 3.5], [3, 3.625, 4.375, 5]],
    )
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=1.5).numpy()[0, 0], [[0, 0, 1, 2]] * 2 + [[3, 3, 4, 5]])
    np.testing.assert_array_equal(
        F.pad(tg.arange(6.0).view(1, 2, 3), (2, 1), mode="reflect").numpy()[0], [[2, 1, 0, 1, 2, 1], [5, 4, 3, 4, 5, 4]]
    )
    np.testing.assert_array_equal(
        F.pad(tg.arange(6.0).view(1, 2, 3), (1, -1, 0, 1)).numpy()[0], [[0, 0, 1], [0, 3, 4], [0, 0, 0]]
    )
    np.testing.assert_array_equal(F.one_hot(tg.tensor([0, 2, 1])).numpy(), np.eye(3, dtype=np.int64)[[0, 2, 1]])
    assert F.one_hot(tg.tensor([1]), num_classes=4).dtype == tg.int64
    assert F.kl_div(tg.tensor([[-1.0, -2.0]]), tg.tensor([[0.0, 1.0]]), reduction="sum").item() == 2.0
    np.testing.assert_allclose(
        F.cosine_similarity(tg.tensor([[1.0, 2.0]]), tg.tensor([[3.0, -1.0]])).numpy(), [0.1414214], rtol=1e-6
    )
    np.testing.assert_array_equal(F.normalize(tg.zeros(1, 2)).numpy(), [[0.0, 0.0]])
    x = tg.tensor([-1.0, 0.0, 3.0, 6.0, 7.0], requires_grad=True)
    F.relu6(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 1, 0, 0])  # 0 at both bounds, as PyTorch


def test_layers() -> None:
    x = tg.tensor(IMAGE, dtype=tg.float32)
    assert nn.Upsample(scale_factor=2, mode="nearest")(x).shape == (2, 3, 8, 10)
    assert nn.ZeroPad2d(1)(x).shape == (2, 3, 6, 7)
    assert nn.ConstantPad2d((1, 0, 2, 0), 3.0)(x).shape == (2, 3, 6, 6)
    assert nn.ReflectionPad2d(2)(x).shape == (2, 3, 8, 9)
    assert nn.ReplicationPad2d((0, 1, 0, 1))(x).shape == (2, 3, 5, 6)
    assert nn.ConstantPad1d(2, 0.0)(tg.ones(1, 3)).shape == (1, 7)
    assert nn.CosineSimilarity(dim=1)(tg.ones(2, 3), tg.ones(2, 3)).shape == (2,)
    assert nn.PairwiseDistance()(tg.ones(2, 3), tg.zeros(2, 3)).shape == (2,)
    assert repr(nn.ReLU6()) == "ReLU6()"
    assert repr(nn.Hardtanh(-2.0, 2.0)) == "Hardtanh(min_val=-2.0, max_val=2.0)"
    for layer in (nn.Mish(), nn.LogSigmoid(), nn.Softsign(), nn.ReLU6(), nn.Hardtanh()):
        assert layer(tg.zeros(3)).shape == (3,)
    loss = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(tg.zeros(2, 3), 1), tg.full((2, 3), 1 / 3))
    assert abs(loss.item()) < 1e-7


def test_bad_input_names_the_op() -> None:
    with pytest.raises(ValueError, match="pad: padding length must be even"):
        F.pad(tg.ones(2, 2), (1, 2, 3))
    with pytest.raises(ValueError, match="reflect padding"):
        F.pad(tg.ones(1, 1, 2), (2, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="interpolate: mode 'bicubic' is not supported"):
        F.interpolate(tg.ones(1, 1, 2, 2), scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="interpolate: give exactly one of size and scale_factor"):
        F.interpolate(tg.ones(1, 1, 2, 2))
    with pytest.raises(RuntimeError, match="one_hot: class values must be smaller than num_classes"):
        F.one_hot(tg.tensor([3]), 2)
