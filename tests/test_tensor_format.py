"""Format specs on tensors, as PyTorch scripts use them in their prints (``f"{loss:.4f}"``,
``"{:+.2f}".format(w)``, pytorch/examples' regression/main.py)."""

from __future__ import annotations

import pytest

import tinygrad_cnn as tg


def test_a_0d_tensor_formats_as_its_value():
    t = tg.tensor(1.23456)
    assert f"{t:.3f}" == "1.235" and format(t, "+.2f") == "+1.23"
    assert f"{tg.tensor(7):>4d}" == "   7"
    assert f"{t}" == format(t, "") == str(tg.tensor(1.23456).item())


def test_other_tensors_take_no_format_spec_as_in_pytorch():
    assert f"{tg.tensor([1, 2])}" == repr(tg.tensor([1, 2]))
    with pytest.raises(TypeError):
        f"{tg.tensor([1.5]):.2f}"


def test_formatting_matches_pytorch():
    torch = pytest.importorskip("torch")
    for spec in ("", ".4f", "+.2e", "10.3g"):
        assert format(tg.tensor(-0.5678), spec) == format(torch.tensor(-0.5678), spec)
