"""Gradient-testing toolkit: check an op's gradient, kinks and ties included, in one call.

* :func:`check_op` (from :mod:`tinygrad_cnn.testing.check`): everything a differentiable op must
  satisfy, over Hypothesis-drawn inputs, in one call.
* :mod:`tinygrad_cnn.testing.conventions`: what a backward returns at kinks and ties
  (``from_below``, ``first_max``, ...), declared next to the op.
* :func:`gradcheck`, :func:`gradgradcheck`, :class:`GradcheckError`, :func:`default_tolerances`,
  :func:`declared_convention` (from :mod:`tinygrad_cnn.testing.gradcheck`): one point; NumPy only.
* :func:`kinky_arrays`, :func:`kink_values`, :func:`shapes`, :func:`broadcastable_shapes`,
  :func:`arrays`, :func:`tensors`, :func:`distinct_values`, :func:`away_from`,
  :func:`conv2d_configs`, :func:`pool2d_configs`, :class:`Conv2dConfig`, :class:`Pool2dConfig`
  (from :mod:`tinygrad_cnn.testing.strategies`): Hypothesis strategies.

``check_op`` and the strategies are loaded on first access, so ``import tinygrad_cnn.testing``
works without Hypothesis installed (``pip install "tinygrad_cnn[testing]"`` brings it); touching
one of them then raises ImportError.

Testing your own op::

    import numpy as np
    from tinygrad_cnn import Function
    from tinygrad_cnn.testing import check_op

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x

    def test_cube():
        check_op(Cube.apply)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from . import conventions
from .gradcheck import GradcheckError, declared_convention, default_tolerances, gradcheck, gradgradcheck

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

__all__ = ["GradcheckError", "conventions", "declared_convention", "default_tolerances", "gradcheck", "gradgradcheck"]
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
