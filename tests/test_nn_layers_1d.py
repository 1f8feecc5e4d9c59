"""The 1-D layers (conv1d, conv_transpose1d, the 1-D, adaptive 1-D and Lp pools) and the other
layers composed from the 2-D ops: float64 gradients against finite differences, Hypothesis over
shapes, strides, paddings and dilations against PyTorch (values, gradients, indices) when it is
installed, and bad arguments refused where PyTorch refuses them. The modules' training steps,
repr and state_dict against PyTorch's are rows of ``MODULES`` in test_nn_torch.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import nn
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the oracle is optional: the gradchecks below still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")
SEEDS = st.integers(0, 2**16)


def t64(shape: tuple[int, ...], seed: int = 0) -> tg.Tensor:
    return tg.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def distinct(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values without ties (max-pooling's gradient is a kink at a tie)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / 7.0 - n / 14.0


def against_torch(ours: Callable[..., Any], theirs: Callable[..., Any], *arrays: np.ndarray) -> None:
    """The same call in both libraries on float64 copies of ``arrays``: equal values (and indices,
    for a tuple), and equal gradients of every input for a random cotangent."""
    mine = [tg.Tensor(a.copy(), requires_grad=True) for a in arrays]
    refs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*mine), theirs(*refs)
    if isinstance(expected, tuple):
        np.testing.assert_array_equal(out[1].numpy(), expected[1].numpy())
        out, expected = out[0], expected[0]
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    cot = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(cot)
    expected.backward(torch.tensor(cot))
    for m, r in zip(mine, refs):
        np.testing.assert_allclose(m.grad.numpy(), r.grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- gradients (float64 finite differences)


@settings(max_examples=8)
@given(k=st.integers(1, 3), s=st.integers(1, 2), p=st.integers(0, 2), d=st.integers(1, 2), seed=SEEDS)
def test_conv1d_and_transposed_gradcheck(k, s, p, d, seed):
    x, w, b = t64((1, 4, 5), seed), t64((4, 2, k), seed + 1), t64((4,), seed + 2)
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b, s, p, d, 2), x, w, b)
    extra = s - 1  # the largest output_padding the stride allows
    assert gradcheck(lambda x, w, b: F.conv_transpose1d(x, w, b, s, 0, extra, 2, d), x, t64((4, 1, k), seed + 3), b[:2])
    assert gradcheck(lambda x, w: F.conv_transpose1d(x, w, None, s, 1, extra, 1, d), x[0], t64((4, 2, k), seed + 4))


@settings(max_examples=10)
@given(
    n=st.integers(3, 7),
    k=st.integers(1, 3),
    s=st.integers(1, 3),
    p=st.integers(0, 1),
    ceil=st.booleans(),
    include_pad=st.booleans(),
    seed=SEEDS,
)
def test_pool1d_gradcheck(n, k, s, p, ceil, include_pad, seed):
    p = min(p, k // 2)
    x = tg.Tensor(distinct((1, 2, n), seed), requires_grad=True)
    assert gradcheck(lambda v: F.max_pool1d(v, k, s, p, 1, ceil), x)
    assert gradcheck(lambda v: F.avg_pool1d(v, k, s, p, ceil, include_pad), x)
    assert gradcheck(lambda v: F.adaptive_max_pool1d(v, k + s), x)
    assert gradcheck(lambda v: F.adaptive_avg_pool1d(v, k + s), x)
    positive = tg.Tensor(np.abs(x.detach().numpy()) + 0.5, requires_grad=True)
    assert gradcheck(lambda v: F.lp_pool1d(v, 2, k, s, ceil), positive)
    assert gradcheck(lambda v: F.lp_pool2d(v, 1.5, (1, k), s, ceil), positive[None])


# --------------------------------------------------------------------------- against PyTorch


@needs_torch
@given(
    length=st.integers(1, 9),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    p=st.sampled_from([0, 1, 2, "same", "valid"]),
    d=st.integers(1, 3),
    groups=st.sampled_from([1, 2]),
    batched=st.booleans(),
    bias=st.booleans(),
    seed=SEEDS,
)
def test_conv1d_matches_torch(length, k, s, p, d, groups, batched, bias, seed):
    if p == "same":
        s = 1
    pad = 0 if isinstance(p, str) else p
    if d * (k - 1) + 1 > length + 2 * pad and p != "same":
        with pytest.raises(ValueError, match="conv1d"):
            F.conv1d(t64((2, 2, length)), t64((2, 2 // groups, k)), None, s, p, d, groups)
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 2 * groups, length) if batched else (2 * groups, length))
    arrays = [x, rng.standard_normal((2 * groups, 2, k))] + ([rng.standard_normal(2 * groups)] if bias else [])
    against_torch(
        lambda x, w, *b: F.conv1d(x, w, *(b or [None]), s, p, d, groups),
        lambda x, w, *b: TF.conv1d(x, w, *(b or [None]), s, p, d, groups),
        *arrays,
    )


@needs_torch
@given(
    length=st.integers(1, 6),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
    extra=st.integers(0, 2),
    d=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    batched=st.booleans(),
    seed=SEEDS,
)
def test_conv_transpose1d_matches_torch(length, k, s, p, extra, d, groups, batched, seed):
    extra = min(extra, max(s, d) - 1)
    if (length - 1) * s - 2 * p + d * (k - 1) + extra + 1 < 1:
        with pytest.raises(ValueError, match="conv_transpose1d"):
            F.conv_transpose1d(t64((2, 2, length)), t64((2, 1, k)), None, s, p, extra, 1, d)
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2 * groups, length) if batched else (2 * groups, length))
    w, b = rng.standard_normal((2 * groups, 3, k)), rng.standard_normal(3 * groups)
    against_torch(
        lambda x, w, b: F.conv_transpose1d(x, w, b, s, p, extra, groups, d),
        lambda x, w, b: TF.conv_transpose1d(x, w, b, s, p, extra, groups, d),
        x,
        w,
        b,
    )


@needs_torch
@settings(max_examples=20)
@given(
    length=st.integers(1, 10),
    k=st.integers(1, 4),
    s=st.sampled_from([None, 1, 2, 3]),
    p=st.integers(0, 2),
    d=st.integers(1, 2),
    ceil=st.booleans(),
    include_pad=st.booleans(),
    batched=st.booleans(),
    seed=SEEDS,
)
def test_pool1d_matches_torch(length, k, s, p, d, ceil, include_pad, batched, seed):
    p = min(p, k // 2)
    shape = (2, 3, length) if batched else (3, length)
    x = distinct(shape, seed)
    if d * (k - 1) + 1 > length + 2 * p:
        with pytest.raises(ValueError, match="max_pool1d"):
            F.max_pool1d(tg.Tensor(x), k, s, p, d, ceil)
        return
    # a window wholly in the padding (possible with dilation) has the maximum -inf; PyTorch's index for it
    # is past the window's first position, sometimes past the input (and its backward then aborts the
    # process), ours the window's first: there only the values are compared
    starts = np.arange(F.max_pool1d(tg.Tensor(x), k, s, p, d, ceil).shape[-1]) * (s or k) - p
    inside = (starts[:, None] + d * np.arange(k) >= 0) & (starts[:, None] + d * np.arange(k) < length)
    if inside.any(axis=1).all():
        against_torch(
            lambda v: F.max_pool1d(v, k, s, p, d, ceil, True), lambda v: TF.max_pool1d(v, k, s, p, d, ceil, True), x
        )
    else:
        expected = TF.max_pool1d(torch.tensor(x), k, s, p, d, ceil).numpy()
        np.testing.assert_array_equal(F.max_pool1d(tg.Tensor(x), k, s, p, d, ceil).numpy(), expected)
    if k <= length + 2 * p:
        against_torch(
            lambda v: F.avg_pool1d(v, k, s, p, ceil, include_pad),
            lambda v: TF.avg_pool1d(v, k, s, p, ceil, include_pad),
            x,
        )
    if k <= length:
        positive = np.abs(x) + 0.25
        against_torch(lambda v: F.lp_pool1d(v, 2, k, s, ceil), lambda v: TF.lp_pool1d(v, 2, k, s, ceil), positive)
        against_torch(lambda v: F.lp_pool1d(v, 3, k, s, ceil), lambda v: TF.lp_pool1d(v, 3, k, s, ceil), x)
        inf = float("inf")
        against_torch(lambda v: F.lp_pool1d(v, inf, k, s), lambda v: TF.lp_pool1d(v, inf, k, s), x)
        against_torch(lambda v: F.lp_pool1d(v, -inf, k, s), lambda v: TF.lp_pool1d(v, -inf, k, s), x)


@needs_torch
@given(length=st.integers(1, 12), out=st.integers(1, 12), batched=st.booleans(), seed=SEEDS)
def test_adaptive_pool1d_matches_torch(length, out, batched, seed):
    x = distinct((2, 3, length) if batched else (3, length), seed)
    against_torch(lambda v: F.adaptive_avg_pool1d(v, out), lambda v: TF.adaptive_avg_pool1d(v, out), x)
    against_torch(
        lambda v: F.adaptive_max_pool1d(v, (out,), True), lambda v: TF.adaptive_max_pool1d(v, (out,), True), x
    )


@needs_torch
def test_lp_pool2d_and_modules_with_indices_match_torch():
    x = distinct((2, 3, 7, 8), 0)
    for args in ((2, 3), (1.5, (2, 3), 2, True), (float("inf"), 2, 1)):
        against_torch(
            lambda v, a=args: F.lp_pool2d(v.abs() + 0.1, *a), lambda v, a=args: TF.lp_pool2d(v.abs() + 0.1, *a), x
        )
    against_torch(lambda v: F.lp_pool2d(v.abs() + 0.1, 2, 2), lambda v: TF.lp_pool2d(v.abs() + 0.1, 2, 2), x[0])
    signal = distinct((2, 3, 11), 1)
    for build in (
        lambda m: m.MaxPool1d(3, 2, 1, return_indices=True, ceil_mode=True),
        lambda m: m.AdaptiveMaxPool1d(4, return_indices=True),
    ):
        against_torch(build(nn), build(torch.nn), signal)
    image = distinct((2, 3, 7, 5), 2)
    against_torch(nn.AdaptiveMaxPool2d((3, None), True), torch.nn.AdaptiveMaxPool2d((3, None), True), image)


@needs_torch
def test_conv_transpose1d_output_size_and_conv_padding_modes_match_torch():
    torch.manual_seed(0)
    theirs, ours = torch.nn.ConvTranspose1d(4, 2, 3, stride=3, padding=1), nn.ConvTranspose1d(4, 2, 3, 3, 1)
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    for size in ([13], [15], (2, 2, 14), (15,)):
        expected = theirs(torch.from_numpy(x), output_size=size).detach().numpy()
        np.testing.assert_allclose(ours(tg.Tensor(x), size).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    for size in ([12], [16]):
        with pytest.raises(ValueError, match="ConvTranspose1d: requested an output size"):
            ours(tg.Tensor(x), size)
    for mode in ("reflect", "replicate", "circular"):
        for padding in (1, 2, "same", "valid"):
            for cls, shape in ((nn.Conv1d, (4, 9)), (nn.Conv2d, (4, 6, 7))):
                theirs = getattr(torch.nn, cls.__name__)(4, 3, 3, padding=padding, dilation=2, padding_mode=mode)
                ours = cls(4, 3, 3, padding=padding, dilation=2, padding_mode=mode)
                ours.load_state_dict(theirs.state_dict())
                assert repr(ours) == repr(theirs)
                x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
                expected = theirs(torch.from_numpy(x)).detach().numpy()
                np.testing.assert_allclose(ours(tg.Tensor(x)).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_1d_layers_follow_module_to_and_double():
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding="same", padding_mode="circular"),
        nn.MaxPool1d(2),
        nn.ConvTranspose1d(4, 2, 2, 2),
        nn.AvgPool1d(2),
        nn.AdaptiveAvgPool1d(3),
        nn.LPPool1d(2, 2, 1),
    ).double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    out = model(tg.Tensor(np.ones((1, 2, 8))))
    assert out.dtype == np.float64 and out.shape == (1, 2, 2)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


# --------------------------------------------------------------------------- instance norm, shuffles, padding


@settings(max_examples=10)
@given(n=st.integers(1, 2), c=st.integers(1, 3), spatial=st.sampled_from([(3,), (2, 2), (1, 3)]), seed=SEEDS)
def test_instance_norm_and_shuffles_gradcheck(n, c, spatial, seed):
    x, w, b = t64((n, c, *spatial), seed), t64((c,), seed + 1), t64((c,), seed + 2)
    assert gradcheck(lambda x, w, b: F.instance_norm(x, None, None, w, b), x, w, b)
    rm, rv = tg.Tensor(np.linspace(-1, 1, c)), tg.Tensor(np.linspace(0.5, 2, c))
    assert gradcheck(lambda x, w: F.instance_norm(x, rm, rv, w, None, False), x, w)
    image = t64((n, 4 * c, 2, 2), seed + 3)
    assert gradcheck(lambda v: F.pixel_shuffle(v, 2) * F.pixel_shuffle(v, 2), image)
    assert gradcheck(lambda v: F.pixel_unshuffle(v, 2) ** 2, image)
    assert gradcheck(lambda v: F.channel_shuffle(v, 2) ** 2, image)


@needs_torch
@settings(max_examples=20)
@given(
    batch=st.sampled_from([(), (2,), (1, 2)]),
    c=st.integers(1, 2),
    r=st.integers(1, 3),
    h=st.integers(1, 3),
    w=st.integers(1, 3),
    groups=st.integers(1, 3),
    seed=SEEDS,
)
def test_shuffles_match_torch(batch, c, r, h, w, groups, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*batch, c * r * r, h, w))
    against_torch(lambda v: F.pixel_shuffle(v, r), lambda v: TF.pixel_shuffle(v, r), x)
    against_torch(
        lambda v: F.pixel_unshuffle(v, r),
        lambda v: TF.pixel_unshuffle(v, r),
        rng.standard_normal((*batch, c, h * r, w * r)),
    )
    shuffled = rng.standard_normal((2, c * groups, h, w, 2)[: 3 + len(batch)])
    against_torch(lambda v: F.channel_shuffle(v, groups), lambda v: TF.channel_shuffle(v, groups), shuffled)


@needs_torch
@given(
    mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
    ndim=st.integers(1, 5),
    pads=st.lists(st.integers(-3, 5), min_size=2, max_size=6).filter(lambda p: len(p) % 2 == 0),
    value=st.sampled_from([None, 0.0, 2.5]),
    seed=SEEDS,
)
def test_pad_matches_torch_or_both_refuse(mode, ndim, pads, value, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(rng.integers(1, 5, ndim)))
    value = value if mode == "constant" else None
    if mode == "circular" and len(pads) // 2 <= ndim:
        sizes = [x.shape[-1 - k] for k in range(len(pads) // 2)]
        kept = [n + min(pads[2 * k], 0) + min(pads[2 * k + 1], 0) for k, n in enumerate(sizes)]
        if any(0 < k < max(pads[2 * i], pads[2 * i + 1]) <= n or k < 1 for i, (k, n) in enumerate(zip(kept, sizes))):
            return  # PyTorch wraps a cropped dim by more than what is left (overlapping copies); ours refuses
    try:
        expected = TF.pad(torch.tensor(x, requires_grad=True), tuple(pads), mode, value)
    except (RuntimeError, ValueError, NotImplementedError, IndexError):
        with pytest.raises((ValueError, NotImplementedError)):
            F.pad(tg.Tensor(x), pads, mode, value)
        return
    if expected.numel() == 0:
        return
    against_torch(lambda v: F.pad(v, pads, mode, value), lambda v: TF.pad(v, tuple(pads), mode, value), x)


@needs_torch
def test_instance_norm_modules_match_torch_unbatched_and_warn_as_torch():
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    with pytest.warns(UserWarning, match="num_features"):
        out = nn.InstanceNorm1d(4)(tg.Tensor(x))
    with pytest.warns(UserWarning):
        expected = torch.nn.InstanceNorm1d(4)(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="InstanceNorm1d: input"):
        nn.InstanceNorm1d(4, affine=True)(tg.Tensor(x))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        nn.InstanceNorm2d(3)(tg.ones(2, 3, 1, 1))
    tracked = nn.InstanceNorm2d(3, track_running_stats=True).double()
    tracked(tg.Tensor(np.random.default_rng(1).standard_normal((2, 3, 4, 4))))
    assert tracked.running_mean.dtype == np.float64 and tracked.num_batches_tracked.item() == 0  # as PyTorch's
    assert list(tracked.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.InstanceNorm1d(3).state_dict()) == []


# --------------------------------------------------------------------------- bad arguments

_x3, _w3 = np.ones((1, 2, 5), np.float32), np.ones((2, 2, 3), np.float32)

# each row: a call of lib (tinygrad_cnn or torch) that PyTorch refuses; ours must refuse it with an error naming the op
BAD_CALLS: dict[str, Callable[[Any], Any]] = {
    "conv1d of a 4-D input": lambda lib: lib.nn.functional.conv1d(lib.ones(1, 2, 3, 5), lib.tensor(_w3)),
    "conv1d of a 1-D input": lambda lib: lib.nn.functional.conv1d(lib.ones(5), lib.tensor(_w3)),
    "conv1d with a 4-D weight": lambda lib: lib.nn.functional.conv1d(lib.tensor(_x3), lib.ones(2, 2, 1, 3)),
    "conv1d with a pair stride": lambda lib: lib.nn.functional.conv1d(lib.tensor(_x3), lib.tensor(_w3), stride=(1, 1)),
    "conv1d channels": lambda lib: lib.nn.functional.conv1d(lib.ones(1, 3, 5), lib.tensor(_w3)),
    "conv1d kernel longer than input": lambda lib: lib.nn.functional.conv1d(lib.ones(1, 2, 2), lib.tensor(_w3)),
    "conv1d groups": lambda lib: lib.nn.functional.conv1d(lib.tensor(_x3), lib.tensor(_w3), groups=2),
    "conv1d same strided": lambda lib: lib.nn.functional.conv1d(lib.tensor(_x3), lib.tensor(_w3), None, 2, "same"),
    "conv1d bias shape": lambda lib: lib.nn.functional.conv1d(lib.tensor(_x3), lib.tensor(_w3), lib.ones(3)),
    "conv_transpose1d channels": lambda lib: lib.nn.functional.conv_transpose1d(lib.ones(1, 3, 5), lib.tensor(_w3)),
    "conv_transpose1d output_padding": lambda lib: lib.nn.functional.conv_transpose1d(
        lib.tensor(_x3), lib.tensor(_w3), None, 2, 0, 2
    ),
    "Conv1d padding_mode": lambda lib: lib.nn.Conv1d(2, 2, 3, padding_mode="mirror"),
    "Conv1d same strided": lambda lib: lib.nn.Conv1d(2, 2, 3, 2, "same"),
    "ConvTranspose1d padding_mode": lambda lib: lib.nn.ConvTranspose1d(2, 2, 3, padding_mode="reflect"),
    "Conv1d groups": lambda lib: lib.nn.Conv1d(3, 2, 3, groups=2),
    "max_pool1d of a 4-D input": lambda lib: lib.nn.functional.max_pool1d(lib.ones(1, 2, 3, 5), 2),
    "max_pool1d padding over half": lambda lib: lib.nn.functional.max_pool1d(lib.tensor(_x3), 2, 1, 2),
    "max_pool1d kernel longer than input": lambda lib: lib.nn.functional.max_pool1d(lib.tensor(_x3), 6),
    "avg_pool1d pair kernel": lambda lib: lib.nn.functional.avg_pool1d(lib.tensor(_x3), (2, 2)),
    "avg_pool1d of a 1-D input": lambda lib: lib.nn.functional.avg_pool1d(lib.ones(5), 2),
    "adaptive_avg_pool1d of a 4-D input": lambda lib: lib.nn.functional.adaptive_avg_pool1d(lib.ones(1, 1, 2, 5), 2),
    "adaptive_max_pool1d None": lambda lib: lib.nn.functional.adaptive_max_pool1d(lib.tensor(_x3), None),
    "adaptive_max_pool1d pair": lambda lib: lib.nn.functional.adaptive_max_pool1d(lib.tensor(_x3), (2, 2)),
    "lp_pool1d kernel longer than input": lambda lib: lib.nn.functional.lp_pool1d(lib.tensor(_x3), 2, 6),
    "lp_pool2d kernel larger than input": lambda lib: lib.nn.functional.lp_pool2d(lib.ones(1, 1, 3, 5), 2, 4),
    "lp_pool2d of a 2-D input": lambda lib: lib.nn.functional.lp_pool2d(lib.ones(3, 5), 2, 2),
    "pixel_shuffle of a 2-D input": lambda lib: lib.nn.functional.pixel_shuffle(lib.ones(4, 2), 2),
    "pixel_shuffle channels": lambda lib: lib.nn.functional.pixel_shuffle(lib.ones(1, 6, 2, 2), 2),
    "pixel_shuffle factor 0": lambda lib: lib.nn.functional.pixel_shuffle(lib.ones(1, 4, 2, 2), 0),
    "pixel_unshuffle height": lambda lib: lib.nn.functional.pixel_unshuffle(lib.ones(1, 1, 3, 4), 2),
    "channel_shuffle of a 2-D input": lambda lib: lib.nn.functional.channel_shuffle(lib.ones(4, 6), 2),
    "channel_shuffle channels": lambda lib: lib.nn.functional.channel_shuffle(lib.ones(2, 5, 3), 2),
    "channel_shuffle groups 0": lambda lib: lib.nn.functional.channel_shuffle(lib.ones(2, 4, 3), 0),
    "CircularPad1d of a 4-D input": lambda lib: lib.nn.CircularPad1d(1)(lib.ones(1, 2, 3, 4)),
    "CircularPad2d of a 2-D input": lambda lib: lib.nn.CircularPad2d(1)(lib.ones(3, 4)),
    "pad reflect of a 4-D input by ReflectionPad1d": lambda lib: lib.nn.ReflectionPad1d(1)(lib.ones(1, 2, 3, 4)),
    "pad replicate of a 1-D input": lambda lib: lib.nn.ReplicationPad1d(1)(lib.ones(4)),
    "pad reflect wider than the input": lambda lib: lib.nn.ReflectionPad1d(4)(lib.ones(1, 2, 4)),
    "pad circular wrapping twice": lambda lib: lib.nn.CircularPad1d((5, 0))(lib.ones(1, 2, 4)),
    "InstanceNorm1d of a 4-D input": lambda lib: lib.nn.InstanceNorm1d(2)(lib.ones(1, 2, 3, 4)),
    "InstanceNorm2d channels": lambda lib: lib.nn.InstanceNorm2d(3, affine=True)(lib.ones(2, 4, 3, 3)),
    "instance_norm one spatial element": lambda lib: lib.nn.functional.instance_norm(lib.ones(2, 3, 1)),
    "unfold of a 2-D input": lambda lib: lib.nn.functional.unfold(lib.ones(4, 4), 2),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_arguments_are_refused_as_pytorch_refuses_them(name):
    call = BAD_CALLS[name]
    if torch is not None:
        with pytest.raises(Exception):  # noqa: B017  (PyTorch's errors are of several types)
            call(torch)
    with pytest.raises((ValueError, TypeError, NotImplementedError)) as error:
        call(tg)
    op = name.split()[0]
    assert op in str(error.value), str(error.value)
