"""The library's random number generator: parameter initialisation, dropout, shuffling.

``manual_seed(n)`` makes a run reproducible: the same seed gives the same model and the same
training run. The generator's state can be saved in a checkpoint and restored exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Re-seed the global generator (as ``torch.manual_seed``); returns it."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The global generator used for initialisation and dropout."""
    return _generator


def get_rng_state() -> dict[str, Any]:
    """The generator's state, a nested dict that :func:`tinygrad_cnn.save` can store."""
    return dict(_generator.bit_generator.state)


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
