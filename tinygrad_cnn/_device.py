"""Devices, PyTorch-style: tinygrad_cnn computes on the CPU only.

``tinygrad_cnn.device("cpu")`` exists so that ``model.to(device)`` and ``x.to(device)`` in PyTorch
scripts run unchanged; ``accelerator.is_available()`` and ``cuda.is_available()`` are False, so the
usual ``"cuda" if torch.cuda.is_available() else "cpu"`` picks the CPU. Asking for any other device
is an error that says so.
"""

from __future__ import annotations

from typing import Any


class device:
    """A device: only ``device("cpu")`` (or ``"cpu:0"``) exists."""

    __slots__ = ("type", "index")
    type: str
    index: int | None

    def __init__(self, spec: Any = "cpu", index: int | None = None) -> None:
        if isinstance(spec, device):
            spec, index = spec.type, spec.index
        name = str(spec)
        kind, _, number = name.partition(":")
        if kind != "cpu" or (number not in ("", "0")) or index not in (None, 0):
            raise RuntimeError(
                f"device {name!r}" + (f" index {index}" if index is not None else "") + ": tinygrad_cnn computes "
                "on the CPU only (NumPy); use device('cpu'), or test torch.cuda.is_available() / "
                "torch.accelerator.is_available(), which are False here"
            )
        self.type, self.index = "cpu", None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (device, str)) and str(other).partition(":")[0] == "cpu"

    def __hash__(self) -> int:
        return hash("cpu")

    def __repr__(self) -> str:
        return "device(type='cpu')"

    def __str__(self) -> str:
        return "cpu"


class _NoAccelerator:
    """``tinygrad_cnn.accelerator`` and ``tinygrad_cnn.cuda``: nothing but the CPU is available."""

    def __init__(self, name: str) -> None:
        self._name = name

    def is_available(self) -> bool:
        return False

    def device_count(self) -> int:
        return 0

    def current_accelerator(self) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        """Nothing to seed (as ``torch.cuda.manual_seed`` without a GPU)."""

    manual_seed_all = manual_seed

    def __repr__(self) -> str:
        return f"<tinygrad_cnn.{self._name}: not available (CPU only)>"


accelerator = _NoAccelerator("accelerator")
cuda = _NoAccelerator("cuda")
