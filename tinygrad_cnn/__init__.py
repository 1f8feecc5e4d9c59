"""tinygrad_cnn: a small, fast, correct autograd framework on NumPy.

>>> import tinygrad_cnn as tg
>>> x = tg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
array([[2., 4.],
       [6., 8.]], dtype=float32)
"""

from . import datasets, functional, graph, nn, optim, testing, transforms, utils
from .autograd import (
    AnomalyError,
    Context,
    Function,
    GraphFreedError,
    InPlaceError,
    detect_anomaly,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .functional import concatenate, stack, where
from .random import Generator, get_rng_state, manual_seed, set_rng_state
from .serialization import CheckpointError, load, save
from .tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "AnomalyError",
    "CheckpointError",
    "Context",
    "Function",
    "Generator",
    "GraphFreedError",
    "InPlaceError",
    "Tensor",
    "concatenate",
    "datasets",
    "detect_anomaly",
    "enable_grad",
    "functional",
    "get_rng_state",
    "grad",
    "graph",
    "is_grad_enabled",
    "load",
    "manual_seed",
    "nn",
    "no_grad",
    "optim",
    "save",
    "set_grad_enabled",
    "set_rng_state",
    "stack",
    "testing",
    "transforms",
    "utils",
    "where",
]
