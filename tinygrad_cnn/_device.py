"""Devices, PyTorch-style: tinygrad_cnn computes on the CPU only.

``tinygrad_cnn.device("cpu")`` exists so that ``model.to(device)`` and ``x.to(device)`` in PyTorch
scripts run unchanged; ``accelerator.is_available()`` and ``cuda.is_available()`` are False, so the
usual ``"cuda" if torch.cuda.is_available() else "cpu"`` picks the CPU. Asking for any other device
is an error that says so.
"""

from __future__ import annotations

from typing import Any

_TYPES = ("cpu", "cuda", "mps", "xpu", "xla", "meta", "hpu", "mtia", "privateuseone")


class device:
    """A device, as ``torch.device``: ``device("cpu")``, ``device("cuda:0")``, ``device("cuda", 1)``.

    Any of PyTorch's device types can be named (``torch.device("cuda")`` in a script that then
    checks ``torch.cuda.is_available()`` works); only the CPU computes here, and putting a tensor
    or a module on another device is an error that says so (:func:`require_cpu`)."""

    __slots__ = ("type", "index")
    type: str
    index: int | None

    def __init__(self, spec: Any = "cpu", index: int | None = None) -> None:
        if isinstance(spec, device):
            spec, index = spec.type, spec.index if index is None else index
        name = str(spec)
        kind, _, number = name.partition(":")
        if kind not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of device string: {name}")
        if number:
            if not number.isdigit() or index is not None:
                raise RuntimeError(f"Invalid device string: '{name}'")
            index = int(number)
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index}")
        self.type = kind
        self.index = None if kind == "cpu" else index  # the CPU is one device, with or without ":0"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except RuntimeError:
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __repr__(self) -> str:
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def require_cpu(spec: Any) -> device:
    """``spec`` as a device, which must be the CPU: anything else is a clear error."""
    dev = spec if isinstance(spec, device) else device(spec)
    if dev.type != "cpu":
        raise RuntimeError(
            f"device {str(dev)!r}: tinygrad_cnn computes on the CPU only (NumPy); use device('cpu'), or test "
            "torch.cuda.is_available() / torch.accelerator.is_available(), which are False here"
        )
    return dev


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
