"""Optimizers and learning-rate schedulers, at PyTorch's paths: ``tinygrad_cnn.optim.SGD``,
``tinygrad_cnn.optim.lr_scheduler.StepLR``. See :mod:`.optimizer` for writing your own."""

from . import lr_scheduler
from .lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from .optimizer import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "OneCycleLR",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "lr_scheduler",
]
