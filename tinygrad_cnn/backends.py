"""``tinygrad_cnn.backends``, for the lines of PyTorch scripts that ask about or tune GPU backends:
``backends.mps.is_available()`` and ``backends.cuda.is_built()`` are False, and the
``backends.cudnn`` switches (``deterministic``, ``benchmark``, ``enabled``) can be set and read
but change nothing: the CPU code here is deterministic and has no algorithm to pick."""

from __future__ import annotations

from types import SimpleNamespace


def _false() -> bool:
    return False


mps = SimpleNamespace(is_available=_false, is_built=_false)
cuda = SimpleNamespace(is_built=_false)
cudnn = SimpleNamespace(is_available=_false, enabled=True, benchmark=False, deterministic=False, allow_tf32=True)

__all__ = ["cuda", "cudnn", "mps"]
