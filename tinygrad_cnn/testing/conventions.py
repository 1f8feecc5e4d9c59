"""Gradient conventions: what an op's backward returns where the op is not differentiable.

At a kink (relu at 0, abs at 0, clip at its bounds) or a tie (two maxima of a window) the
derivative does not exist: the slope from the left and the slope from the right differ, and a
finite difference measures their average, which no backward rule returns. Every framework picks a
value there, a *convention*, and a convention is part of an op's contract just like its formula:
PyTorch's ``relu'(0)`` is 0, ``max(dim)`` and ``max_pool2d`` send the gradient to the first
maximum, ``max()`` and ``amax`` split it evenly among tied maxima.

:func:`~tinygrad_cnn.testing.gradcheck` and :func:`~tinygrad_cnn.testing.check_op` measure both
one-sided slopes of every element; where they differ, the analytic gradient must equal what the
op's declared convention says, one of:

=====================================  ===========================================================
``from_below(at=...)``                 the slope from below (``relu'(0) = 0``, ``leaky_relu'(0)``)
``from_above(at=...)``                 the slope from above
``mean_of_sides(at=...)``              the mean of the two (``abs'(0) = 0``, ``maximum`` at a tie)
``toward(target, at=...)``             the slope on the side of ``target``
``passes_through(at=...)``             the sloped side's slope where the other is flat (``clamp``)
``first_max()`` / ``first_min()``      all of it to the first tied extremum in row-major order
                                       (``max(dim)``, ``max_pool2d``)
``split_max()`` / ``split_min()``      divided evenly among tied extrema (``max()``, ``amax``)
``any_subgradient()``                  anything between the two one-sided slopes (weakest)
=====================================  ===========================================================

``at`` lists the kink points of an elementwise op (``at=0.0`` for relu): the strategies of
:mod:`tinygrad_cnn.testing.strategies` draw them on purpose, and an element measured as a kink
that is not exactly at one of them (a value within a finite-difference step of 0, say) is only
held to lie between the one-sided slopes, since finite differences cannot tell which side of a
kink that close the input lies on. Tie conventions treat elements with an exactly equal value
as tied in the same way.

This module needs only NumPy, so an op's rule can declare its convention next to itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "Convention",
    "Kink",
    "any_subgradient",
    "first_max",
    "first_min",
    "from_above",
    "from_below",
    "declare",
    "mean_of_sides",
    "passes_through",
    "split_max",
    "split_min",
    "toward",
]


@dataclass(frozen=True)
class Kink:
    """What the gradient check measured at one element whose one-sided slopes differ.

    Slopes are those of the checked scalar ``sum(u * fn(x))`` (see ``gradcheck``) along this
    element. ``x``, ``lefts``, ``rights`` and ``kinks`` describe the whole input (float64, the
    input's shape). ``slope_at(d)`` measures the slope along this element at ``x + delta * d``
    for a tiny ``delta``: the limit of the gradient when the input approaches from direction
    ``d``. ``subgradients()`` bounds every convex combination of the one-sided slopes of each
    output element (the projected slopes alone are too narrow when this element feeds several
    outputs, as an element of overlapping pooling windows does).
    """

    index: tuple[int, ...]
    value: float
    left: float
    right: float
    x: np.ndarray
    lefts: np.ndarray
    rights: np.ndarray
    kinks: np.ndarray
    tolerance: Callable[[float], float]
    slope_at: Callable[[np.ndarray], float]
    subgradients: Callable[[], tuple[float, float]]


class Convention:
    """How an op's gradient is defined at its kinks and ties.

    Subclasses implement :meth:`expected`. ``kink_points`` (values where the op has kinks) and
    ``ties`` (whether tied values make kinks) tell the strategies what inputs to seek.
    """

    description: str = "a convention"
    kink_points: tuple[float, ...] = ()
    ties: bool = False

    def expected(self, kink: Kink) -> tuple[float, float]:
        """The interval ``(lo, hi)`` the analytic gradient must lie in at ``kink``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.description


def _between(kink: Kink) -> tuple[float, float]:
    return kink.subgradients()


class _AnySubgradient(Convention):
    def __init__(self) -> None:
        self.description = "any subgradient (between the one-sided slopes)"

    def expected(self, kink: Kink) -> tuple[float, float]:
        return _between(kink)


def any_subgradient() -> Convention:
    """Any value between the left and the right slope. The weakest convention: it does not pin
    down what the op returns, only that it is a subgradient-like choice."""
    return _AnySubgradient()


def _points(at: float | Iterable[float] | None) -> tuple[float, ...] | None:
    if at is None:
        return None
    if isinstance(at, (int, float, np.number)):
        return (float(at),)
    return tuple(float(p) for p in at)


class _Sided(Convention):
    def __init__(
        self, side: Callable[[np.ndarray], np.ndarray], at: float | Iterable[float] | None, description: str
    ) -> None:
        self.side = side
        self.at = _points(at)
        self.kink_points = self.at or ()
        where = "" if self.at is None else f" at {', '.join(f'{p:g}' for p in self.at)}"
        self.description = description + where

    def expected(self, kink: Kink) -> tuple[float, float]:
        if self.at is not None and kink.value not in self.at:
            return _between(kink)  # within a step of a kink, not on it: either side may be right
        s = float(np.asarray(self.side(kink.x))[kink.index] if kink.x.ndim else np.asarray(self.side(kink.x)))
        value = kink.left if s < 0 else kink.right if s > 0 else 0.5 * (kink.left + kink.right)
        return (value, value)


def from_below(at: float | Iterable[float] | None = None) -> Convention:
    """At a kink the gradient is the slope from below (``relu'(0) = 0``: relu's slope left of 0).

    ``at``: the op's kink points (``0.0`` for relu); ``None`` applies it at every kink found.
    """
    return _Sided(lambda x: -np.ones_like(x), at, "the slope from below")


def from_above(at: float | Iterable[float] | None = None) -> Convention:
    """At a kink the gradient is the slope from above (e.g. a step-like op whose ``f'(0)`` is the
    right-hand one)."""
    return _Sided(np.ones_like, at, "the slope from above")


def mean_of_sides(at: float | Iterable[float] | None = None) -> Convention:
    """At a kink the gradient is the mean of the two one-sided slopes: ``abs'(0) = 0``, and
    PyTorch's ``maximum(a, b)`` at ``a == b`` (half the gradient to each)."""
    return _Sided(np.zeros_like, at, "the mean of the one-sided slopes")


class _Passing(Convention):
    def __init__(self, at: float | Iterable[float] | None) -> None:
        self.at = _points(at)
        self.kink_points = self.at or ()
        where = "" if self.at is None else f" at {', '.join(f'{p:g}' for p in self.at)}"
        self.description = "the slope of the side where the gradient passes" + where

    def expected(self, kink: Kink) -> tuple[float, float]:
        if self.at is not None and kink.value not in self.at:
            return _between(kink)
        value = kink.left if abs(kink.left) >= abs(kink.right) else kink.right
        return (value, value)


def passes_through(at: float | Iterable[float] | None = None) -> Convention:
    """At a kink between a flat side and a sloped one, the slope of the sloped side: PyTorch's
    ``clamp`` passes the gradient at both of its bounds, whatever they are."""
    return _Passing(at)


def toward(target: float, at: float | Iterable[float] | None = None) -> Convention:
    """At a kink the gradient is the slope on the side of ``target``: PyTorch's ``clamp(x, lo, hi)``
    passes the gradient at both bounds, i.e. ``toward((lo + hi) / 2, at=(lo, hi))``."""
    return _Sided(lambda x: np.sign(target - x), at, f"the slope on the side of {target:g}")


def away_from(target: float, at: float | Iterable[float] | None = None) -> Convention:
    """At a kink the gradient is the slope on the side away from ``target``: PyTorch's
    ``hardtanh(x, lo, hi)`` and ``relu6`` take the flat side's slope (0) at both bounds, i.e.
    ``away_from((lo + hi) / 2, at=(lo, hi))``."""
    return _Sided(lambda x: np.sign(x - target), at, f"the slope on the side away from {target:g}")


class _Tie(Convention):
    """Ties of a max (``sign=1``) or min (``sign=-1``) reduction or pooling window."""

    ties = True

    def __init__(self, sign: int, split: bool) -> None:
        self.sign, self.split = sign, split
        extremum, extrema = ("maximum", "maxima") if sign > 0 else ("minimum", "minima")
        self.description = (
            f"the gradient divided evenly among tied {extrema}"
            if split
            else f"the whole gradient to the first {extremum} in row-major order"
        )

    def expected(self, kink: Kink) -> tuple[float, float]:
        if np.count_nonzero(kink.x == kink.value) < 2:
            return _between(kink)  # no exact tie: a near-tie within a step, unresolvable
        if not self.split:
            others = kink.x[kink.x != kink.value]
            gap = float(np.min(np.abs(others - kink.value))) if others.size else np.inf
            if gap < 1e-6 * max(1.0, float(np.max(np.abs(kink.x)))):
                return _between(kink)  # another value within a step of the tie: unresolvable
            # The limit from the direction in which the earlier of the tied elements are a hair
            # larger (max) or smaller (min): each window's first extremum wins, whatever the
            # windows are; the other elements stay where they are.
            tied = kink.x == kink.value
            order = np.cumsum(tied.reshape(-1)).reshape(kink.x.shape) * tied / np.count_nonzero(tied)
            value = kink.slope_at(-self.sign * order)
            return (value, value)
        # The elements tied with this one in the same window: equal value, and the same jump
        # between the slope that makes them win and the one that makes them lose.
        win, lose = (kink.rights, kink.lefts) if self.sign > 0 else (kink.lefts, kink.rights)
        jump = win - lose
        j = jump[kink.index]
        group = kink.kinks & (kink.x == kink.value) & (np.abs(jump - j) <= kink.tolerance(abs(j)))
        value = float(lose[kink.index] + j / max(int(np.count_nonzero(group)), 1))
        return (value, value)


def first_max() -> Convention:
    """Tied maxima: the whole gradient goes to the first one in row-major order (PyTorch's
    ``max(dim)``, ``argmax`` and ``max_pool2d``)."""
    return _Tie(1, split=False)


def first_min() -> Convention:
    """Tied minima: the whole gradient goes to the first one in row-major order (``min(dim)``)."""
    return _Tie(-1, split=False)


def split_max() -> Convention:
    """Tied maxima share the gradient evenly (PyTorch's ``max()`` without ``dim``, ``amax``)."""
    return _Tie(1, split=True)


def split_min() -> Convention:
    """Tied minima share the gradient evenly (PyTorch's ``min()`` without ``dim``, ``amin``)."""
    return _Tie(-1, split=True)


Op = TypeVar("Op", bound=Callable[..., Any])


def declare(convention: Convention) -> Callable[[Op], Op]:
    """Decorator declaring a composite op's convention next to its definition (a Function
    declares it as the class attribute ``convention``)::

        @declare(mean_of_sides(at=0.0))
        def abs(x): ...
    """

    def mark(op: Op) -> Op:
        op.convention = convention  # type: ignore[attr-defined]
        return op

    return mark


def as_conventions(conventions: Any, n_inputs: int) -> list[Convention | None]:
    """One convention (or None) per input from a Convention, a sequence, or a dict by position."""
    if conventions is None or isinstance(conventions, Convention):
        return [conventions] * n_inputs
    if isinstance(conventions, dict):
        bad = [k for k in conventions if not isinstance(k, int) or not 0 <= k < n_inputs]
        if bad:
            raise ValueError(f"conventions: keys must be input positions 0..{n_inputs - 1}, got {bad}")
        return [conventions.get(i) for i in range(n_inputs)]
    result = list(conventions)
    if len(result) != n_inputs:
        raise ValueError(f"conventions: {len(result)} given for {n_inputs} inputs")
    for c in result:
        if c is not None and not isinstance(c, Convention):
            raise TypeError(f"conventions: expected Convention objects or None, got {c!r}")
    return result
