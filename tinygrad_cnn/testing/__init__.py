"""Gradient-testing toolkit: check autograd against finite differences, and generate test inputs.

* :func:`gradcheck`, :func:`gradgradcheck`, :class:`GradcheckError`, :func:`default_tolerances`
  (from :mod:`tinygrad_cnn.testing.gradcheck`): NumPy only.
* :func:`shapes`, :func:`broadcastable_shapes`, :func:`arrays`, :func:`tensors`,
  :func:`distinct_values`, :func:`away_from`, :func:`conv2d_configs`, :func:`pool2d_configs`,
  :class:`Conv2dConfig`, :class:`Pool2dConfig` (from :mod:`tinygrad_cnn.testing.strategies`):
  Hypothesis strategies. They are loaded on first access, so ``import tinygrad_cnn.testing``
  works without Hypothesis installed; touching one of them then raises ImportError.

Testing your own op::

    import numpy as np
    from hypothesis import given
    from tinygrad_cnn import Function
    from tinygrad_cnn.testing import gradcheck, shapes, tensors

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x

    @given(tensors(shape=shapes(max_dims=3, max_side=4)))
    def test_cube(x):
        assert gradcheck(Cube.apply, x)

See :mod:`tinygrad_cnn.testing.strategies` for a longer example with kink avoidance.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from .gradcheck import GradcheckError, default_tolerances, gradcheck, gradgradcheck

_STRATEGIES = (
    "check_op",
    "Conv2dConfig",
    "Pool2dConfig",
    "arrays",
    "away_from",
    "broadcastable_shapes",
    "conv2d_configs",
    "distinct_values",
    "kink_values",
    "kinky_arrays",
    "pool2d_configs",
    "shapes",
    "tensors",
)

__all__ = ["GradcheckError", "default_tolerances", "gradcheck", "gradgradcheck"]
if importlib.util.find_spec("hypothesis") is not None:
    __all__ += list(_STRATEGIES)


def __getattr__(name: str) -> Any:
    if name == "check_op":
        return importlib.import_module(".check", __name__).check_op
    if name in _STRATEGIES or name == "strategies":
        module = importlib.import_module(".strategies", __name__)
        return module if name == "strategies" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_STRATEGIES))
