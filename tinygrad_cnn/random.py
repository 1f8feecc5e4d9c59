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


class Generator:
    """A random number generator object, as ``torch.Generator``: pass it where PyTorch takes
    ``generator=`` (DataLoader, samplers, random_split, nn.init) for a stream of its own.

    ``Generator().manual_seed(0)`` returns the generator, seeded. It wraps a
    ``numpy.random.Generator``, which those functions also accept directly.
    """

    def __init__(self, device: Any = "cpu") -> None:
        self._seed = int(np.random.SeedSequence().entropy % 2**63)  # type: ignore[operator]
        self.rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> Generator:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"Generator.manual_seed: seed must be a non-negative int, got {seed!r}")
        self._seed = int(seed)
        self.rng = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Re-seed from fresh entropy; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))  # type: ignore[operator]
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict[str, Any]:
        return dict(self.rng.bit_generator.state)

    def set_state(self, state: dict[str, Any]) -> Generator:
        self.rng.bit_generator.state = state
        return self


def as_numpy_generator(generator: Generator | np.random.Generator | None) -> np.random.Generator:
    """The NumPy generator behind ``generator`` (None: the library's global one)."""
    if generator is None:
        return _generator
    if isinstance(generator, Generator):
        return generator.rng
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(
        f"generator must be a tinygrad_cnn.Generator or a numpy.random.Generator, got {type(generator).__name__}"
    )
