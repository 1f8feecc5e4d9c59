"""Every new nn module and loss against PyTorch (the oracle): the same module built by the same
line of code from ``torch.nn`` and from ``tinygrad_cnn.nn``, PyTorch's parameters and buffers
loaded into ours, then several training steps (forward, backward with a random cotangent)
compared output by output, gradient by gradient and buffer by buffer, then eval mode; and the
state_dict moved back into PyTorch gives PyTorch the same outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)


def _randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _const(m, a):
    """An array as the constant argument (class weights, ...) of a module of library ``m``."""
    return torch.from_numpy(a) if m is torch.nn else a


MODULES = {
    "batchnorm1d": (lambda m: m.BatchNorm1d(3), (6, 3)),
    "batchnorm1d-3d-momentum": (lambda m: m.BatchNorm1d(3, momentum=0.3, eps=1e-3), (4, 3, 5)),
    "batchnorm1d-cumulative": (lambda m: m.BatchNorm1d(3, momentum=None), (5, 3)),
    "batchnorm2d": (lambda m: m.BatchNorm2d(4), (3, 4, 5, 5)),
    "batchnorm2d-no-affine": (lambda m: m.BatchNorm2d(4, affine=False), (2, 4, 3, 3)),
    "batchnorm2d-untracked": (lambda m: m.BatchNorm2d(4, track_running_stats=False), (2, 4, 3, 3)),
    "layernorm": (lambda m: m.LayerNorm(5), (2, 3, 5)),
    "layernorm-2d": (lambda m: m.LayerNorm([3, 5], elementwise_affine=True), (2, 3, 5)),
    "groupnorm": (lambda m: m.GroupNorm(2, 4), (2, 4, 3, 3)),
    "adaptive-avg": (lambda m: m.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    "adaptive-avg-global": (lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 4, 4)),
    "adaptive-max": (lambda m: m.AdaptiveMaxPool2d((3, 4)), (2, 3, 7, 9)),
    "maxpool-ceil": (lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 8, 9)),
    "maxpool-dilated": (lambda m: m.MaxPool2d(2, 1, 0, dilation=2), (1, 2, 6, 6)),
    "avgpool-ceil-exclude-pad": (lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 8, 9)),
    "avgpool-divisor": (lambda m: m.AvgPool2d(3, 2, divisor_override=2), (1, 2, 7, 7)),
    "conv-groups": (lambda m: m.Conv2d(4, 6, 3, groups=2), (2, 4, 6, 6)),
    "conv-depthwise": (lambda m: m.Conv2d(3, 6, 3, padding=1, groups=3, bias=False), (2, 3, 5, 5)),
    "conv-same-dilated": (lambda m: m.Conv2d(3, 4, 4, padding="same", dilation=2), (2, 3, 9, 8)),
    "conv-same-even": (lambda m: m.Conv2d(3, 4, (2, 3), padding="same"), (2, 3, 5, 6)),
    "conv-valid": (lambda m: m.Conv2d(3, 4, 3, padding="valid"), (2, 3, 5, 6)),
    "conv-transpose-dcgan": (lambda m: m.ConvTranspose2d(4, 3, 4, 2, 1, bias=False), (2, 4, 5, 5)),
    "conv-transpose-groups": (lambda m: m.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, dilation=(2, 1)), (2, 4, 4, 5)),
    "conv1d": (lambda m: m.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2), (2, 4, 11)),
    "conv1d-same-unbatched": (lambda m: m.Conv1d(3, 4, 4, padding="same", bias=False), (3, 9)),
    "conv1d-reflect": (lambda m: m.Conv1d(3, 4, 3, padding=2, padding_mode="reflect"), (2, 3, 8)),
    "conv2d-circular-same": (lambda m: m.Conv2d(2, 3, (3, 2), padding="same", padding_mode="circular"), (2, 2, 5, 6)),
    "conv-transpose1d": (lambda m: m.ConvTranspose1d(4, 6, 3, 2, 1, 1, groups=2, dilation=2), (2, 4, 5)),
    "maxpool1d": (lambda m: m.MaxPool1d(3, 2, 1, ceil_mode=True), (2, 3, 10)),
    "maxpool1d-unbatched": (lambda m: m.MaxPool1d(2, dilation=2), (3, 9)),
    "avgpool1d": (lambda m: m.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 10)),
    "adaptive-avg1d": (lambda m: m.AdaptiveAvgPool1d(4), (2, 3, 11)),
    "adaptive-max1d": (lambda m: m.AdaptiveMaxPool1d(3), (3, 7)),
    "lppool1d": (lambda m: m.LPPool1d(2, 3, 2), (2, 3, 10)),
    "lppool2d": (lambda m: m.LPPool2d(1, (2, 3), ceil_mode=True), (2, 3, 7, 8)),
    "instancenorm1d": (lambda m: m.InstanceNorm1d(3), (2, 3, 7)),
    "instancenorm1d-unbatched-affine": (lambda m: m.InstanceNorm1d(3, affine=True), (3, 7)),
    "instancenorm2d-tracked": (
        lambda m: m.InstanceNorm2d(4, momentum=0.3, affine=True, track_running_stats=True),
        (2, 4, 3, 5),
    ),
    "instancenorm2d-unbatched-tracked": (lambda m: m.InstanceNorm2d(2, track_running_stats=True), (2, 4, 4)),
    "pixel-shuffle": (lambda m: m.PixelShuffle(2), (2, 8, 3, 4)),
    "pixel-unshuffle": (lambda m: m.PixelUnshuffle(3), (3, 6, 9)),
    "channel-shuffle": (lambda m: m.ChannelShuffle(3), (2, 6, 3, 2)),
    "unfold": (lambda m: m.Unfold((2, 3), dilation=2, padding=1, stride=2), (2, 3, 7, 8)),
    "fold": (lambda m: m.Fold((5, 6), (2, 3), padding=1, stride=(1, 2)), (2, 12, 18)),
    "upsampling-nearest": (lambda m: m.UpsamplingNearest2d(scale_factor=(2, 3)), (2, 3, 4, 5)),
    "upsampling-bilinear": (lambda m: m.UpsamplingBilinear2d(size=(7, 9)), (2, 3, 4, 5)),
    "upsample-recompute": (
        lambda m: m.Upsample(scale_factor=1.7, mode="linear", recompute_scale_factor=True),
        (2, 3, 5),
    ),
    "zeropad1d": (lambda m: m.ZeroPad1d((2, -1)), (2, 3, 5)),
    "reflectionpad1d": (lambda m: m.ReflectionPad1d((3, 1)), (3, 5)),
    "replicationpad1d": (lambda m: m.ReplicationPad1d(2), (2, 3, 4)),
    "circularpad1d": (lambda m: m.CircularPad1d((1, 3)), (2, 3, 4)),
    "circularpad2d": (lambda m: m.CircularPad2d((1, 0, 2, -1)), (3, 4, 5)),
    "constantpad2d": (lambda m: m.ConstantPad2d((1, 0, 2, 1), 1.5), (2, 3, 4, 5)),
    "leaky-relu": (lambda m: m.LeakyReLU(0.2), (3, 7)),
    "elu": (lambda m: m.ELU(0.7), (3, 7)),
    "gelu": (lambda m: m.GELU(), (3, 7)),
    "gelu-tanh": (lambda m: m.GELU("tanh"), (3, 7)),
    "silu": (lambda m: m.SiLU(), (3, 7)),
    "softplus": (lambda m: m.Softplus(2.0, 1.5), (3, 7)),
    "softmax": (lambda m: m.Softmax(dim=1), (3, 4, 2)),
    "log-softmax": (lambda m: m.LogSoftmax(dim=0), (3, 4)),
    "unflatten": (lambda m: m.Unflatten(1, (2, 3)), (4, 6)),
    "flatten": (lambda m: m.Flatten(0, 1), (2, 3, 4)),
    "sequential-bn-cnn": (
        lambda m: m.Sequential(
            m.Conv2d(1, 4, 3, padding=1),
            m.BatchNorm2d(4),
            m.ReLU(),
            m.MaxPool2d(2),
            m.Conv2d(4, 8, 3, groups=2),
            m.BatchNorm2d(8),
            m.GELU(),
            m.AdaptiveAvgPool2d(1),
            m.Flatten(),
            m.Linear(8, 6),
            m.BatchNorm1d(6),
            m.LeakyReLU(),
            m.Linear(6, 3),
        ),
        (4, 1, 10, 10),
    ),
}


def _load_torch_into_ours(theirs, ours):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("name", list(MODULES))
def test_module_matches_torch_over_training_steps(name):
    build, shape = MODULES[name]
    torch.manual_seed(0)
    theirs, ours = build(torch.nn), build(nn)
    _load_torch_into_ours(theirs, ours)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    for step in range(3):
        x = _randn(*shape) * (1 + step) + step
        tx = torch.from_numpy(x).requires_grad_(True)
        gx = tg.Tensor(x.copy(), requires_grad=True)
        out_t, out = theirs(tx), ours(gx)
        np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=2e-5, atol=2e-5)
        cot = _randn(*out.shape)
        out_t.backward(torch.from_numpy(cot))
        out.backward(cot)
        np.testing.assert_allclose(np.asarray(gx.grad), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
        for (n, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(np.asarray(p.grad), tp.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=n)
            p.grad, tp.grad = None, None
        for n, b in ours.named_buffers():
            np.testing.assert_allclose(b.data, dict(theirs.named_buffers())[n].numpy(), rtol=1e-5, atol=1e-6, err_msg=n)
    ours.eval(), theirs.eval()
    x = _randn(*shape)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(tg.Tensor(x)).data, expected, rtol=2e-5, atol=2e-5)
    # and back: our state into a fresh PyTorch module gives PyTorch the same outputs
    fresh = build(torch.nn).eval()
    fresh.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(fresh(torch.from_numpy(x)).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_bn_cnn_state_dicts_move_both_ways_through_checkpoints(tmp_path):
    """PyTorch's trained state_dict (its tensors, as they are) loads into ours; ours, saved with tg.save
    and read back with tg.load (Tensors both times), loads into a fresh PyTorch model: the same eval
    outputs, running statistics and num_batches_tracked every time."""
    build, shape = MODULES["sequential-bn-cnn"]
    torch.manual_seed(1)
    theirs = build(torch.nn)
    for step in range(3):  # running statistics and num_batches_tracked away from their initial values
        theirs(torch.from_numpy(_randn(*shape) + step))
    theirs.eval()
    ours = build(nn)
    assert repr(ours.load_state_dict(theirs.state_dict())) == "<All keys matched successfully>"
    ours.eval()
    x = _randn(*shape)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(tg.Tensor(x)).detach().numpy(), expected, rtol=2e-5, atol=2e-5)

    tg.save({"model_state_dict": ours.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    loaded = tg.load(tmp_path / "ckpt.pt", weights_only=True)["model_state_dict"]
    assert all(type(v) is tg.Tensor for v in loaded.values())
    assert loaded["1.num_batches_tracked"].dtype == np.int64 and loaded["1.num_batches_tracked"].item() == 3
    fresh = build(torch.nn)
    fresh.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in loaded.items()})
    fresh.eval()
    with torch.no_grad():
        np.testing.assert_array_equal(fresh(torch.from_numpy(x)).numpy(), expected)
    for k, v in fresh.state_dict().items():
        assert v.dtype == theirs.state_dict()[k].dtype, k
        np.testing.assert_array_equal(v.numpy(), theirs.state_dict()[k].numpy(), err_msg=k)


# PyTorch's trailing positional arguments that we do not take (yet): the rest must be PyTorch's, in order
_TRAILING_ARGUMENTS_WE_LACK = {"Hardtanh": ["min_value", "max_value"]}


def test_layer_arguments_are_pytorchs_in_pytorchs_order():
    """A positional argument lands where PyTorch puts it: ``nn.Linear(i, o, True, None, None)`` (the
    device and dtype, as pytorch/examples' forward-forward passes them) must not read None as a dtype."""
    import inspect

    def positional(cls):
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]

    for name in nn.__all__:
        ours, theirs = getattr(nn, name), getattr(torch.nn, name, None)
        if not isinstance(ours, type) or not issubclass(ours, nn.Module) or theirs is None:
            continue
        expected = [a for a in positional(theirs) if a not in _TRAILING_ARGUMENTS_WE_LACK.get(name, [])]
        assert positional(ours) == expected, name
    layer = nn.Linear(3, 2, True, None, None)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    assert nn.Conv2d(1, 2, 3, dtype=None).weight.dtype == np.float32


def test_embedding_and_max_pool_indices_match_torch():
    torch.manual_seed(0)
    theirs, ours = torch.nn.Embedding(10, 4, padding_idx=1), nn.Embedding(10, 4, padding_idx=1)
    _load_torch_into_ours(theirs, ours)
    ids = np.array([[1, 2, 3], [9, 1, 2]])
    out_t, out = theirs(torch.from_numpy(ids)), ours(ids)
    np.testing.assert_allclose(out.data, out_t.detach().numpy())
    cot = _randn(2, 3, 4)
    out_t.backward(torch.from_numpy(cot))
    out.backward(cot)
    np.testing.assert_allclose(np.asarray(ours.weight.grad), theirs.weight.grad.numpy(), rtol=1e-6)
    x = _randn(2, 3, 9, 7)
    for kwargs in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}):
        _, idx_t = torch.nn.MaxPool2d(return_indices=True, **kwargs)(torch.from_numpy(x))
        _, idx = nn.MaxPool2d(return_indices=True, **kwargs)(tg.Tensor(x))
        np.testing.assert_array_equal(idx.data, idx_t.numpy())
    _, idx_t = torch.nn.AdaptiveMaxPool2d((4, 3), return_indices=True)(torch.from_numpy(x))
    _, idx = nn.AdaptiveMaxPool2d((4, 3), return_indices=True)(tg.Tensor(x))
    np.testing.assert_array_equal(idx.data, idx_t.numpy())


def _class_case():
    logits = _randn(6, 4, 3)
    target = RNG.integers(0, 4, (6, 3))
    target[0, 1] = target[3, 2] = -100
    probs = RNG.dirichlet(np.ones(4), (6, 3)).transpose(0, 2, 1).astype(np.float32)
    return logits, target, probs


LOGITS, CLASSES, PROBS = _class_case()
WEIGHT = RNG.uniform(0.5, 2, 4).astype(np.float32)
PAIR_INPUT, PAIR_TARGET = _randn(5, 4), _randn(5, 4)
UNIT_INPUT = RNG.uniform(0.02, 0.98, (5, 4)).astype(np.float32)
UNIT_TARGET = RNG.uniform(0, 1, (5, 4)).astype(np.float32)

LOSSES = {
    "ce": (lambda m: m.CrossEntropyLoss(), LOGITS[:, :, 0], CLASSES[:, 0].clip(0)),
    "ce-kdim-weight-ignore": (lambda m: m.CrossEntropyLoss(_const(m, WEIGHT)), LOGITS, CLASSES),
    "ce-smoothing-weight": (
        lambda m: m.CrossEntropyLoss(_const(m, WEIGHT), label_smoothing=0.2),
        LOGITS,
        CLASSES,
    ),
    "ce-smoothing-sum": (lambda m: m.CrossEntropyLoss(reduction="sum", label_smoothing=0.1), LOGITS, CLASSES),
    "ce-smoothing-none": (lambda m: m.CrossEntropyLoss(reduction="none", label_smoothing=0.1), LOGITS, CLASSES),
    "ce-probs": (lambda m: m.CrossEntropyLoss(_const(m, WEIGHT), label_smoothing=0.3), LOGITS, PROBS),
    "ce-unbatched": (lambda m: m.CrossEntropyLoss(), LOGITS[0, :, 0], np.array(2)),
    "nll-weight-ignore": (lambda m: m.NLLLoss(_const(m, WEIGHT), ignore_index=2), LOGITS, CLASSES.clip(0)),
    "nll-none": (lambda m: m.NLLLoss(reduction="none"), LOGITS[:, :, 0], CLASSES[:, 0].clip(0)),
    "mse": (lambda m: m.MSELoss(), PAIR_INPUT, PAIR_TARGET),
    "l1-sum": (lambda m: m.L1Loss(reduction="sum"), PAIR_INPUT, PAIR_TARGET),
    "smooth-l1": (lambda m: m.SmoothL1Loss(beta=0.5), PAIR_INPUT, PAIR_TARGET),
    "huber": (lambda m: m.HuberLoss(delta=0.7, reduction="none"), PAIR_INPUT, PAIR_TARGET),
    "bce-weight": (lambda m: m.BCELoss(_const(m, UNIT_TARGET[0])), UNIT_INPUT, UNIT_TARGET),
    "bce-logits-pos-weight": (
        lambda m: m.BCEWithLogitsLoss(_const(m, UNIT_TARGET), pos_weight=_const(m, WEIGHT)),
        PAIR_INPUT,
        UNIT_TARGET,
    ),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_matches_torch(name):
    build, x, target = LOSSES[name]
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    gx = tg.Tensor(x.copy(), requires_grad=True)
    loss_t = build(torch.nn)(tx, torch.from_numpy(target))
    loss = build(nn)(gx, target)
    np.testing.assert_allclose(loss.data, loss_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    cot = _randn(*loss.shape)
    loss_t.backward(torch.from_numpy(cot))
    loss.backward(cot)
    np.testing.assert_allclose(np.asarray(gx.grad), tx.grad.numpy(), rtol=1e-4, atol=1e-6)
