"""``check_op``: everything a differentiable op must satisfy, checked in one call.

::

    from tinygrad_cnn.testing import check_op

    def test_softsign():
        check_op(Softsign.apply)

Hypothesis draws the inputs (shapes, broadcasting, values that sit on the op's kinks and ties
beside smooth ones, float64 and float32, contiguous or not) and, for each example, checks:

1. the forward returns floating tensors of the inputs' floating dtype (no silent float64);
2. the forward does not modify its inputs, and the backward gives every input a gradient of the
   input's shape and dtype;
3. the gradient, against one-sided finite differences: two-sided away from kinks, the op's
   declared convention at them (:mod:`tinygrad_cnn.testing.conventions`);
4. the float32 gradient against the float64 gradient at the same point (a cast in the backward
   that loses precision shows up here);
5. the second-order gradient (``gradgradcheck``, float64), unless ``second_order=False``;
6. the forward against ``reference`` (a NumPy function or PyTorch), when one is given;

and, once, that a zero-size input either works (with gradients of the right shape) or raises a
clear error. On a failure Hypothesis shrinks the input, and the error names the op, the shrunk
input and the likely cause.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .._tensor import Tensor
from ..autograd import grad
from .conventions import Convention
from .gradcheck import GradcheckError, _as_outputs, _names, declared_convention, gradcheck, gradgradcheck, op_name
from .strategies import kinky_arrays, shapes

__all__ = ["check_op"]

_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
# NumPy 1.x promotes 0-d float32 arithmetic with Python numbers to float64 (value-based casting;
# NumPy 2 keeps float32, NEP 50): on NumPy 1.x a 0-d float64 output is NumPy's doing, not the op's.
_VALUE_BASED_CASTING = int(np.__version__.split(".")[0]) < 2


class _Case:
    """One drawn example: float64 values of every input, and how to present them."""

    def __init__(
        self, names: list[str], values: list[np.ndarray], non_contiguous: bool, seed: int, second_order: bool
    ) -> None:
        self.names, self.values, self.non_contiguous = names, values, non_contiguous
        self.seed, self.second_order = seed, second_order
        self.dtype = np.dtype(np.float64)  # the dtype being checked, for the report

    def __repr__(self) -> str:
        arrays = ", ".join(
            f"{n}={np.array2string(v.astype(self.dtype), separator=', ', floatmode='unique', threshold=200)}"
            for n, v in zip(self.names, self.values, strict=True)
        )
        layout = ", non-contiguous" if self.non_contiguous else ""
        return f"{arrays} ({self.dtype}{layout})"


def _non_contiguous(a: np.ndarray) -> np.ndarray:
    """The same values in a strided view (every other element of a twice-as-large buffer)."""
    if a.ndim == 0:
        return a
    buffer = np.zeros(a.shape + (2,), dtype=a.dtype)
    buffer[..., 0] = a
    return buffer[..., 0]


def _cases(
    fn: Callable[..., Any],
    inputs: int | Sequence[Any] | st.SearchStrategy[Any],
    broadcast: bool,
    kink_points: tuple[float, ...],
    min_value: float,
    max_value: float,
    non_contiguous: bool,
    rounded: bool,
) -> st.SearchStrategy[_Case]:
    """The strategy of examples for ``inputs`` (see check_op); ``rounded``: float32-representable values."""

    def values(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
        return kinky_arrays(shape, np.float64, kink_points, min_value, max_value)

    if isinstance(inputs, bool) or not isinstance(inputs, (int, Sequence, st.SearchStrategy)):
        raise TypeError(f"check_op: inputs must be an int, a sequence or a strategy, got {inputs!r}")
    if isinstance(inputs, int) and inputs < 1:
        raise ValueError(f"check_op: inputs must be at least 1, got {inputs}")
    specs: list[st.SearchStrategy[Any]] = []
    if isinstance(inputs, Sequence):
        for spec in inputs:
            if isinstance(spec, st.SearchStrategy):
                specs.append(spec)
            elif isinstance(spec, tuple) and all(isinstance(n, int) for n in spec):
                specs.append(st.just(spec))
            else:
                raise TypeError(
                    f"check_op: each entry of inputs must be a shape tuple or a Hypothesis strategy (of shapes "
                    f"or arrays), got {spec!r}"
                )

    @st.composite
    def cases(draw: Callable[..., Any]) -> _Case:
        drawn: list[Any]
        if isinstance(inputs, st.SearchStrategy):
            got = draw(inputs)
            drawn = list(got) if isinstance(got, (tuple, list)) else [got]
        elif isinstance(inputs, int) and inputs > 1 and broadcast:
            drawn = list(
                draw(hnp.mutually_broadcastable_shapes(num_shapes=inputs, max_dims=3, max_side=4)).input_shapes
            )
        elif isinstance(inputs, int):
            drawn = [draw(shapes(max_dims=3, max_side=4)) for _ in range(inputs)]
        else:
            drawn = [draw(spec) for spec in specs]
        arrays = [
            np.array(d, dtype=np.float64) if isinstance(d, (np.ndarray, Tensor)) else draw(values(tuple(d)))
            for d in drawn
        ]
        if rounded:  # the float64 check sees the very values the float32 check does
            arrays = [a.astype(np.float32).astype(np.float64) for a in arrays]
        strided = draw(st.booleans()) if non_contiguous else False
        # Second order in about half the examples: it costs as much as the rest together.
        return _Case(_input_names(fn, len(arrays)), arrays, strided, draw(st.integers(0, 2**16)), draw(st.booleans()))

    return cases()


def check_op(
    fn: Callable[..., Any],
    inputs: int | Sequence[Any] | st.SearchStrategy[Any] = 1,
    *,
    conventions: Convention | Sequence[Convention | None] | dict[int, Convention] | None = None,
    reference: Callable[..., Any] | None = None,
    kinks: Sequence[float] | None = None,
    dtypes: Sequence[Any] = (np.float64, np.float32),
    second_order: bool = True,
    broadcast: bool = True,
    non_contiguous: bool = True,
    zero_size: bool = True,
    min_value: float = -3.0,
    max_value: float = 3.0,
    max_examples: int | None = None,
    seed: int | None = None,
    name: str | None = None,
) -> None:
    """Check a differentiable op over Hypothesis-drawn inputs; raise ``GradcheckError`` if wrong.

    Args:
        fn: the op, called as ``fn(*tensors)``; returns a Tensor or a tuple of Tensors. Close
            over non-tensor arguments: ``lambda x: F.max_pool2d(x, 2)``.
        inputs: the tensor inputs. An int: that many inputs whose shapes broadcast together
            (up to 3 axes of up to 4). A sequence with one entry per input: a shape tuple, or a
            strategy of shapes or of arrays. Or one strategy drawing a tuple of arrays (for
            inputs whose shapes depend on each other, like an image and a kernel).
        conventions: what the backward returns at kinks and ties, one for all inputs or one per
            input (a sequence or a dict by position); default: the ``convention`` the op
            declares (see :mod:`tinygrad_cnn.testing.conventions`).
        reference: computes the same forward from NumPy arrays (a plain loop, or PyTorch);
            its result is compared with ``fn``'s.
        kinks: the values where the op has kinks, drawn on purpose; default: the conventions'
            ``kink_points``. Ties (values from a small set) are always drawn too.
        dtypes: the float dtypes to check the op in.
        second_order: also check the gradient of the gradient (float64).
        broadcast: with ``inputs`` an int, draw shapes that broadcast rather than equal ones.
        non_contiguous: also pass strided (non-contiguous) input arrays.
        zero_size: check once that inputs with a zero-size axis work or raise a clear error.
        min_value, max_value: the range of smooth draws.
        max_examples: the number of Hypothesis examples; default: the current Hypothesis
            settings' (100, or what the active profile says).
        seed: a Hypothesis seed, for a reproducible run.
        name: the op's name in messages; default: the Function's class name or the function's.

    Raises:
        GradcheckError: naming the op, the failing (shrunk) input and the likely cause. It
            carries ``examples_to_first_failure``: how many examples ran before the first one
            that failed.
    """
    __tracebackhide__ = True
    label = name or op_name(fn)
    declared = conventions if conventions is not None else declared_convention(fn)
    dts = [np.dtype(d) for d in dtypes]
    if not dts or any(d not in _FLOATS for d in dts):
        raise ValueError(f"check_op: dtypes must be float64 and/or float32, got {list(dtypes)}")
    kink_points = tuple(kinks) if kinks is not None else _kink_points(declared)
    rounded = np.dtype(np.float32) in dts
    cases = _cases(fn, inputs, broadcast, kink_points, min_value, max_value, non_contiguous, rounded)

    counter = {"run": 0, "first_failure": 0}  # first_failure: 0 until an example fails
    last: dict[str, Any] = {}

    def run_case(case: _Case) -> None:
        counter["run"] += 1
        last["case"] = case
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # non-finite values are checked
                _check_case(fn, label, case, declared, reference, dts, second_order, last)
        except Exception:
            counter["first_failure"] = counter["first_failure"] or counter["run"]
            raise

    # Tells this op's examples apart from other ops' in Hypothesis' database of failures.
    run_case._hypothesis_internal_add_digest = f"check_op:{label}:{inputs!r}".encode()  # type: ignore[attr-defined]
    test = given(case=cases)(run_case)
    current = settings.default
    assert current is not None  # a profile is always loaded
    test = settings(
        parent=current,
        max_examples=max_examples if max_examples is not None else current.max_examples,
        deadline=None,
        # The explain phase's lines would point into this module, not at the user's op.
        phases=[p for p in current.phases if p.name != "explain"],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=False,
        report_multiple_bugs=False,
    )(test)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    if zero_size and isinstance(inputs, int):
        _check_zero_size(fn, label, inputs, dts)
    try:
        test()
    except Exception as e:
        case = last.get("case")
        if case is not None:
            case.dtype = last.get("dtype", case.dtype)
        what = (
            str(e)
            if isinstance(e, GradcheckError)
            else f"{label} raised {type(e).__name__}: {e} (if the op does not take such inputs, narrow "
            "`inputs`, e.g. inputs=[shapes(min_dims=1)] or a range with min_value/max_value)"
        )
        error = GradcheckError(f"check_op({label}) failed.\n{what}\nFailing input (shrunk): {case!r}")
        error.examples_to_first_failure = counter["first_failure"]  # type: ignore[attr-defined]
        error.examples_run = counter["run"]  # type: ignore[attr-defined]
        # A check's own failure says all; an exception from the op keeps its traceback.
        raise error from (None if isinstance(e, GradcheckError) else e)


def _input_names(fn: Callable[..., Any], n: int) -> list[str]:
    return [nm if " " not in nm else f"input{k}" for k, nm in enumerate(_names(fn, n))]


def _kink_points(declared: Any) -> tuple[float, ...]:
    listed = (
        declared
        if isinstance(declared, (list, tuple))
        else list(declared.values())
        if isinstance(declared, dict)
        else [declared]
    )
    points = {p for c in listed if isinstance(c, Convention) for p in c.kink_points}
    return tuple(sorted(points)) or (0.0,)


def _tensors(case: _Case, dtype: np.dtype) -> list[Tensor]:
    result = []
    for v in case.values:
        a = v.astype(dtype)
        result.append(Tensor(_non_contiguous(a) if case.non_contiguous else a, requires_grad=True))
    return result


def _analytic(label: str, outs: list[Tensor], xs: list[Tensor], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    live = [o for o in outs if o.requires_grad and o.dtype.kind == "f"]
    if not live:
        return [np.zeros(x.shape) for x in xs]
    us = [Tensor(rng.standard_normal(o.shape).astype(np.float32).astype(o.dtype)) for o in live]
    try:
        gs = grad(live, xs, grad_outputs=us, allow_unused=True)
    except (RuntimeError, ValueError, TypeError) as e:
        hint = ""
        if "shape" in str(e):
            hint = (
                "; likely cause: an input that broadcasts needs its gradient summed back to its own shape "
                "(tinygrad_cnn.primitives.sum_to)"
            )
        raise GradcheckError(f"{label}: the backward failed: {type(e).__name__}: {e}{hint}") from None
    result = []
    for x, g in zip(xs, gs, strict=True):
        if g.shape != x.shape or g.dtype != x.dtype:
            raise GradcheckError(
                f"{label}: the gradient of an input of shape {x.shape} and dtype {x.dtype} has shape {g.shape} "
                f"and dtype {g.dtype}"
            )
        result.append(np.array(g.detach().numpy(), dtype=np.float64))
    return result


def _check_case(
    fn: Callable[..., Any],
    label: str,
    case: _Case,
    conventions: Any,
    reference: Callable[..., Any] | None,
    dtypes: list[np.dtype],
    second_order: bool,
    last: dict[str, Any],
) -> None:
    __tracebackhide__ = True
    grads: dict[np.dtype, list[np.ndarray]] = {}
    for dtype in dtypes:
        last["dtype"] = dtype
        xs = _tensors(case, dtype)
        before = [x.detach().numpy().copy() for x in xs]
        outs = _as_outputs(label, fn(*xs))
        for k, o in enumerate(outs):
            if o.dtype.kind == "f" and o.dtype != dtype and not (_VALUE_BASED_CASTING and o.ndim == 0):
                raise GradcheckError(
                    f"{label}: output {k} has dtype {o.dtype} for {dtype} inputs; likely cause: NumPy promoted "
                    "the result (a float64 array or constant mixed in the forward?): cast it back with "
                    ".astype(x.dtype)"
                )
        grads[dtype] = _analytic(label, outs, xs, case.seed)
        for name, x, b in zip(case.names, xs, before, strict=True):
            if not np.array_equal(x.detach().numpy(), b, equal_nan=True):
                raise GradcheckError(f"{label}: modified its input {name} (forward or backward wrote into it)")
        if reference is not None:
            _compare_reference(label, outs, reference, [x.detach().numpy() for x in xs], dtype)
        if dtype == max(dtypes, key=lambda d: d.itemsize):
            # Finite differences run on float64 copies whatever the dtype, so one check in the most
            # precise dtype covers all; the other dtypes' gradients are compared with its gradient
            # (below), which is stricter than float32's finite-difference tolerances. eps=1e-6:
            # the op keeps dtypes (checked above), so its numeric side is pure float64.
            gradcheck(fn, *xs, conventions=conventions, seed=case.seed, name=label, eps=1e-6)
    if len(grads) == 2:
        _compare_dtypes(label, case, grads[np.dtype(np.float64)], grads[np.dtype(np.float32)])
    if second_order and case.second_order:
        last["dtype"] = np.dtype(np.float64)
        xs = _tensors(case, np.dtype(np.float64))
        gradgradcheck(fn, *xs, seed=case.seed, name=label)


def _compare_dtypes(label: str, case: _Case, g64: list[np.ndarray], g32: list[np.ndarray]) -> None:
    """The float32 gradient must be the float64 one up to float32 rounding (the point is the same:
    the values are drawn in float64 and rounded to float32 for both)."""
    for name, a, b in zip(case.names, g64, g32, strict=True):
        scale = float(np.max(np.abs(a), initial=0.0))
        bad = ~np.isclose(b, a, rtol=1e-3, atol=1e-4 * max(scale, 1.0)) & np.isfinite(a)
        bad |= np.isfinite(a) & ~np.isfinite(b)
        if bad.any():
            j = tuple(int(k) for k in np.argwhere(bad)[0])
            where = f"{name}[{', '.join(map(str, j))}]" if j else name
            raise GradcheckError(
                f"{label}: the float32 gradient differs from the float64 gradient at {where}: {float(b[j])!r} vs "
                f"{float(a[j])!r} ({int(bad.sum())} of {bad.size} elements); likely cause: a cast that loses "
                "precision in float32 (float16, a float32 constant, an integer), or cancellation in the formula"
            )


def _compare_reference(
    label: str, outs: list[Tensor], reference: Callable[..., Any], arrays: list[np.ndarray], dtype: np.dtype
) -> None:
    expected = reference(*[a.copy() for a in arrays])
    expected_list = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    if len(expected_list) != len(outs):
        raise GradcheckError(f"{label}: the reference returned {len(expected_list)} outputs, the op {len(outs)}")
    rtol, atol = (1e-7, 1e-9) if dtype == np.float64 else (1e-4, 1e-5)
    for k, (o, e) in enumerate(zip(outs, expected_list, strict=True)):
        e = np.asarray(e.detach().numpy() if hasattr(e, "detach") else e, dtype=np.float64)
        got = np.asarray(o.detach().numpy(), dtype=np.float64)
        if got.shape != e.shape:
            raise GradcheckError(f"{label}: output {k} has shape {got.shape}, the reference's {e.shape}")
        bad = ~np.isclose(
            got, e, rtol=rtol, atol=atol * max(1.0, float(np.max(np.abs(e), initial=0.0))), equal_nan=True
        )
        if bad.any():
            j = tuple(int(t) for t in np.argwhere(bad)[0])
            raise GradcheckError(
                f"{label}: output {k} differs from the reference at {j}: {float(got[j])!r} vs {float(e[j])!r} "
                f"({int(bad.sum())} of {bad.size} elements, {dtype})"
            )


def _check_zero_size(fn: Callable[..., Any], label: str, n: int, dtypes: list[np.dtype]) -> None:
    """Inputs with a zero-size axis: the op works (gradients of the right shape) or raises a clear error."""
    __tracebackhide__ = True
    for shape in ((0,), (2, 0)):
        for dtype in dtypes:
            xs = [Tensor(np.zeros(shape, dtype=dtype), requires_grad=True) for _ in range(n)]
            try:
                outs = _as_outputs(label, fn(*xs))
            except (ValueError, TypeError, IndexError) as e:
                if not str(e):
                    raise GradcheckError(
                        f"{label}: zero-size input {shape} raised {type(e).__name__} with no message"
                    ) from e
                continue  # a clear error is an acceptable answer to an empty input
            _analytic(label, outs, xs, 0)
