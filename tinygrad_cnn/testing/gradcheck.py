"""Numerical gradient checking: compare autograd's gradients with finite differences, kinks included.

:func:`gradcheck` checks first derivatives, :func:`gradgradcheck` second derivatives (that a
``backward`` rule is itself differentiated correctly, which ``create_graph=True`` relies on).
Neither needs Hypothesis; see :mod:`tinygrad_cnn.testing.strategies` for generating inputs.

How the check works
-------------------
``fn`` maps some tensors to one tensor (or a tuple of tensors). Let ``out_k = fn(x)`` and pick
a fixed random ``u_k`` shaped like each output (1 for a scalar output). The check compares two
ways of computing the gradient of the scalar ``f(x) = sum_k <u_k, out_k(x)>``:

* analytic: ``tinygrad_cnn.grad(outs, inputs, grad_outputs=u)``, run in the inputs' own dtype;
* numeric: for every element ``j`` of every checked input, the left and right slopes
  ``(f(x) - f(x - eps e_j)) / eps`` and ``(f(x + eps e_j) - f(x)) / eps``, with ``fn`` run on
  float64 copies of all floating inputs.

Where the two slopes agree, the analytic value must match their mean (the central difference).
Where they differ (measured again with ``eps / 100``, so that a kink a hair away from ``x`` is
not taken for one on it, and, for elements that fail, per output element, so that a projection
cannot hide one), unless they differ only by curvature (the finer slopes are what ``f''`` predicts,
within float64's rounding of ``f``: the central difference stays), ``x`` is a kink and the
analytic value must be what the op's declared
convention says (:mod:`tinygrad_cnn.testing.conventions`); with none declared, the check fails
and asks for one. Where the slopes grow like ``1 / eps`` (a jump, e.g. the steps of a
piecewise-linear op's gradient in ``gradgradcheck``) there is no derivative, and nothing is
compared.

A random projection ``u`` catches more than a vector of ones (with ones, errors that cancel
across output elements, such as a transposed gradient of a symmetric-looking op, go unseen).

Tolerances
----------
An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|`` (``numpy.isclose``).
Defaults come from the least precise floating dtype among the checked inputs and the outputs,
because the analytic gradient is computed in that dtype:

=========  ========  ========  ========
dtype      eps       atol      rtol
=========  ========  ========  ========
float64    1e-6      1e-5      1e-4
float32    1e-3      1e-3      1e-2
float16    1e-2      5e-2      5e-2
=========  ========  ========  ========

The numeric side always runs in float64, so for float32 inputs it is accurate; the larger
``eps`` only protects against ``fn`` casting to float32 internally, at the price of a
truncation error of about ``eps**2 / 6 * f'''``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .._tensor import Tensor
from ..autograd import Function, enable_grad, grad
from ..custom_function import forward_takes_ctx
from .conventions import Convention, Kink, any_subgradient, as_conventions

__all__ = ["GradcheckError", "declared_convention", "default_tolerances", "gradcheck", "gradgradcheck", "op_name"]

# dtype -> (eps, atol, rtol)
_TOLERANCES: dict[np.dtype, tuple[float, float, float]] = {
    np.dtype(np.float64): (1e-6, 1e-5, 1e-4),
    np.dtype(np.float32): (1e-3, 1e-3, 1e-2),
    np.dtype(np.float16): (1e-2, 5e-2, 5e-2),
}


class GradcheckError(AssertionError, RuntimeError):
    """The analytic gradient disagrees with the numeric one (or could not be computed).

    A subclass of ``AssertionError``, so pytest reports it as a test failure, and of
    ``RuntimeError``, as PyTorch's ``GradcheckError``.
    """


def default_tolerances(dtype: Any) -> tuple[float, float, float]:
    """``(eps, atol, rtol)`` used by :func:`gradcheck` for ``dtype`` (see the module docstring)."""
    dt = np.dtype(dtype)
    if dt in _TOLERANCES:
        return _TOLERANCES[dt]
    if dt.kind == "f" and dt.itemsize > 8:  # longdouble: at least as precise as float64
        return _TOLERANCES[np.dtype(np.float64)]
    raise TypeError(f"gradcheck: no default tolerances for dtype {dt}; pass eps, atol and rtol")


# --------------------------------------------------------------------------- input handling


def _is_float(x: Any) -> bool:
    return isinstance(x, (Tensor, np.ndarray)) and x.dtype.kind == "f"


def _prepare(inputs: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """Fresh leaf tensors for the analytic side, and the positions of the checked inputs.

    Checked: the Tensors with ``requires_grad=True`` if there are any, otherwise every floating
    input (Tensor or ndarray). Arrays become Tensors; other arguments pass through unchanged.
    """
    any_requires = any(isinstance(x, Tensor) and x.requires_grad for x in inputs)
    checked: list[int] = []
    args: list[Any] = []
    for i, x in enumerate(inputs):
        if isinstance(x, (Tensor, np.ndarray)):
            data = np.array(x.array if isinstance(x, Tensor) else x)  # a copy: fn cannot alter the user's data
            check = (x.requires_grad if isinstance(x, Tensor) else False) if any_requires else _is_float(x)
            if check:
                checked.append(i)
            args.append(Tensor.wrap(data).requires_grad_(check))
        else:
            args.append(x)
    if not checked:
        raise ValueError("gradcheck: no floating-point input to check (pass Tensors or float arrays)")
    return args, checked


def _as_outputs(fn_name: str, result: Any) -> list[Tensor]:
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not outs:
        raise GradcheckError(f"{fn_name}: fn returned no outputs")
    for k, out in enumerate(outs):
        if not isinstance(out, Tensor):
            raise GradcheckError(
                f"{fn_name}: fn must return a Tensor or a tuple of Tensors; output {k} is a {type(out).__name__}"
            )
        if out.dtype.kind != "f":
            raise GradcheckError(
                f"{fn_name}: output {k} has dtype {out.dtype}; only floating outputs can be differentiated"
            )
    return outs


def _projections(outs: Sequence[Tensor], grad_output: Any, seed: int) -> list[np.ndarray]:
    """The vectors ``u_k`` (float64) that project each output to a scalar."""
    if grad_output is None:
        rng = np.random.default_rng(seed)
        # Rounded to float32 so that the float32 analytic side and the float64 numeric side use
        # exactly the same values.
        return [
            np.ones(o.shape) if o.numel() == 1 else rng.standard_normal(o.shape).astype(np.float32).astype(np.float64)
            for o in outs
        ]
    single = isinstance(grad_output, (Tensor, np.ndarray)) or len(outs) == 1
    given = [grad_output] if single else list(grad_output)
    if len(given) != len(outs):
        raise ValueError(f"gradcheck: {len(given)} grad_outputs given for {len(outs)} outputs")
    result = []
    for k, (g, o) in enumerate(zip(given, outs, strict=True)):
        arr = np.asarray(g.array if isinstance(g, Tensor) else g, dtype=np.float64)
        if arr.shape != o.shape:
            raise ValueError(f"gradcheck: grad_output {k} has shape {arr.shape}, output {k} has shape {o.shape}")
        result.append(arr)
    return result


def _least_precise(dtypes: Sequence[np.dtype]) -> np.dtype:
    floats = [np.dtype(d) for d in dtypes if np.dtype(d).kind == "f"]
    return max(floats, key=lambda d: np.finfo(d).eps)


# --------------------------------------------------------------------------- the two sides


def _analytic(
    fn_name: str, outs: list[Tensor], args: list[Any], checked: list[int], us: list[np.ndarray]
) -> list[np.ndarray | None]:
    """Autograd's gradient of sum_k <u_k, out_k> for each checked input; None where unused."""
    ins = [args[i] for i in checked]
    live = [k for k, o in enumerate(outs) if o.requires_grad]
    if not live:
        return [None] * len(ins)
    louts = [outs[k] for k in live]
    seeds = [Tensor(us[k].astype(outs[k].dtype)) for k in live]
    try:
        try:
            gs: list[Tensor | None] = list(grad(louts, ins, grad_outputs=seeds, retain_graph=True))
        except ValueError as e:
            if "was not used" not in str(e):
                raise
            # Some input got no gradient at all: find which, one input at a time.
            gs = []
            for x in ins:
                try:
                    gs.append(grad(louts, [x], grad_outputs=seeds, retain_graph=True)[0])
                except ValueError as e2:
                    if "was not used" not in str(e2):
                        raise
                    gs.append(None)
    except (RuntimeError, ValueError, TypeError) as e:
        raise GradcheckError(f"{fn_name}: computing the analytic gradient failed: {type(e).__name__}: {e}") from e
    result: list[np.ndarray | None] = []
    for i, x, g in zip(checked, ins, gs, strict=True):
        if g is None:
            result.append(None)
            continue
        if g.shape != x.shape:
            raise GradcheckError(
                f"{fn_name}: the analytic gradient of input {i} has shape {g.shape}, but the input has shape {x.shape}"
            )
        result.append(np.asarray(g.array, dtype=np.float64))
    return result


class _Numeric:
    """The scalar ``f(x) = sum_k <u_k, out_k(x)>`` with ``fn`` run on float64 copies, and its
    finite differences: central, left and right, element by element."""

    def __init__(self, fn: Callable[..., Any], fn_name: str, args: list[Any], us: list[np.ndarray]) -> None:
        self.fn, self.fn_name, self.us = fn, fn_name, us
        self.base = [np.array(a.array, dtype=np.float64) if _is_float(a) else a for a in args]

    def outputs(self) -> list[np.ndarray]:
        call = [Tensor(b) if isinstance(b, np.ndarray) else b for b in self.base]
        # Copied at once: an output may be a view of an input array that is perturbed next.
        return [np.array(o.array, dtype=np.float64) for o in _as_outputs(self.fn_name, self.fn(*call))]

    def f(self) -> float:
        return float(sum(np.sum(u * o) for u, o in zip(self.us, self.outputs(), strict=True)))

    def f_and_magnitude(self) -> tuple[float, float]:
        """f, and sum_k <|u_k|, |out_k(x)|>: the size of the terms f adds up (its rounding error
        scales with it, not with f, whose terms may cancel); from one call of ``fn``."""
        terms = [u * o for u, o in zip(self.us, self.outputs(), strict=True)]
        return float(sum(np.sum(t) for t in terms)), float(sum(np.sum(np.abs(t)) for t in terms))

    def at(self, i: int, j: int, step: float) -> float:
        """f with element j (flat) of input i moved by ``step``."""
        x, at = self.base[i], np.unravel_index(j, self.base[i].shape)  # in place, in the input's own layout
        orig = x[at]
        x[at] = orig + step
        try:
            return self.f()
        finally:
            x[at] = orig

    def slopes(self, i: int, js: Iterable[int], eps: float, f0: float) -> tuple[np.ndarray, np.ndarray]:
        """Left and right slopes of f along the elements ``js`` of input i."""
        left, right = [], []
        for j in js:
            right.append((self.at(i, j, eps) - f0) / eps)
            left.append((f0 - self.at(i, j, -eps)) / eps)
        return np.array(left), np.array(right)

    def around(self, i: int, j: int, step: float) -> list[list[np.ndarray]]:
        """The outputs with element j of input i at -step, 0 and +step."""
        x, at = self.base[i], np.unravel_index(j, self.base[i].shape)
        orig = x[at]
        result = []
        for s in (-step, 0.0, step):
            x[at] = orig + s
            try:
                result.append(self.outputs())
            finally:
                x[at] = orig
        return result

    def subgradients(self, i: int, j: int, step: float) -> tuple[float, float]:
        """Bounds of sum_k u_k * (a value between output k's one-sided slopes along element j)."""
        below, mid, above = self.around(i, j, step)
        lo = hi = 0.0
        for u, b, m, a in zip(self.us, below, mid, above, strict=True):
            left, right = u * (m - b) / step, u * (a - m) / step
            lo += float(np.minimum(left, right).sum())
            hi += float(np.maximum(left, right).sum())
        return lo, hi

    def slope_at(self, i: int, j: int, direction: np.ndarray) -> float:
        """Central slope along element j of input i at ``x + delta * direction``, with ``delta``
        far below the spacing of drawn values and a step far below ``delta`` times the smallest
        gap between the entries of ``direction``."""
        x = self.base[i]
        d = np.asarray(direction, dtype=np.float64)
        levels = np.unique(d)
        spacing = float(np.min(np.diff(levels))) if levels.size > 1 else 1.0
        delta = 1e-7 * max(1.0, float(np.max(np.abs(x), initial=0.0)))
        step = delta * spacing / 4
        saved = x.copy()
        x += delta * d
        try:
            return (self.at(i, j, step) - self.at(i, j, -step)) / (2 * step)
        finally:
            x[...] = saved


class _Tolerance:
    def __init__(self, atol: float, rtol: float) -> None:
        self.atol, self.rtol = atol, rtol

    def __call__(self, magnitude: float) -> float:
        return self.atol + self.rtol * abs(magnitude)


def _names(fn: Callable[..., Any], n: int) -> list[str]:
    """The names of fn's positional parameters (forward's, minus ctx, for Function.apply)."""
    target = getattr(fn, "__self__", None)
    func = getattr(target, "forward", fn) if isinstance(target, type) else fn
    try:
        params = [
            p
            for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    takes_ctx = isinstance(target, type) and (not issubclass(target, Function) or forward_takes_ctx(target))
    if func is not fn and params and takes_ctx:
        params = params[1:]  # ctx
    names = [p.name for p in params[:n]]
    return names + [f"input {k}" for k in range(len(names), n)]


def op_name(fn: Callable[..., Any]) -> str:
    """A readable name of fn: the Function's class for ``SomeFunction.apply``, else its qualname."""
    target = getattr(fn, "__self__", None)
    if isinstance(target, type):
        return target.__name__
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(name).rsplit("<locals>.", 1)[-1]


def _where(name: str, shape: tuple[int, ...], index: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(str(k) for k in index)}]" if shape else name


def _fmt(v: float) -> str:
    return f"{v + 0.0:.6g}"  # + 0.0: no "-0"


def _kink_report(
    numeric: _Numeric,
    i: int,
    j: int,
    eps: float,
    label: str,
    value: float,
    left: float,
    right: float,
    got: float,
    lo: float,
    hi: float,
    convention: Convention | None,
) -> str:
    """The sentence for a failure at a kink, in the output's own slopes when only one output
    element moves with this input element (elementwise ops), else in the projected scalar's."""
    outs = numeric.around(i, j, eps)
    moved = [
        (k, idx[: mid_o.ndim])
        for k, (lo_o, mid_o, hi_o) in enumerate(zip(*outs, strict=True))
        for idx in zip(*np.nonzero(np.atleast_1d((lo_o != mid_o) | (hi_o != mid_o))), strict=True)
    ]
    scale, of = 1.0, " (slopes of sum(u * output), a fixed random projection)"
    if len(moved) == 1:
        k, idx = moved[0]
        u = float(numeric.us[k][idx])
        if u != 0:
            scale = u
            out_name = "output" if len(numeric.us) == 1 else f"output {k}"
            of = f" of {_where(out_name, numeric.us[k].shape, tuple(int(t) for t in idx))}"
    if convention is None:
        says = "no convention is declared for it (pass conventions=..., e.g. from_below(at=0.0) or first_max())"
    elif lo == hi:
        says = f"your declared convention ({convention.description}) says {_fmt(lo / scale)}"
    else:
        a, b = sorted((lo / scale, hi / scale))
        says = f"your declared convention ({convention.description}) allows [{_fmt(a)}, {_fmt(b)}]"
    return (
        f"{label} = {value!r} is a kink{of}: left slope {_fmt(left / scale)}, right slope {_fmt(right / scale)}, "
        f"your backward gave {_fmt(got / scale)}, {says}"
    )


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` (NumPy's rules)."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:  # shapes that do not broadcast at all
        return False


def _hint(
    x: np.ndarray, a: np.ndarray, n: np.ndarray, bad: np.ndarray, label: str, out_shapes: list[tuple[int, ...]]
) -> str:
    """A likely cause for a two-sided mismatch, from the pattern of the failing elements."""
    ab, nb = a[bad], n[bad]
    hints = []
    for shape in out_shapes:
        if x.shape != shape and x.size < math.prod(shape) and _broadcasts_to(x.shape, shape):
            hints.append(
                f"{label} {x.shape} is broadcast to the output's shape {shape}: its gradient must be summed "
                "over the broadcast axes (sum_to)"
            )
            break
    if np.all(ab == 0) and np.any(nb != 0):
        hints.append("the gradient is zero where it should not be (a mask or a branch that drops it?)")
    elif np.allclose(ab, -nb, rtol=1e-2, atol=1e-6):
        hints.append("the gradient has the wrong sign")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = ab / nb
        if ratio.size > 1 and np.all(np.isfinite(ratio)) and np.ptp(ratio) <= 1e-3 * np.abs(ratio).max():
            hints.append(f"the gradient is off by a factor {float(ratio[0]):.4g}")
    if x.shape == a.shape and bad.any() and not bad.all():
        xb, xg = x[bad], x[~bad]
        if np.all(xb < 0) and np.all(xg >= 0):
            hints.append(f"it is wrong exactly where {label} < 0 (a case for negative values?)")
        elif np.all(xb > 0) and np.all(xg <= 0):
            hints.append(f"it is wrong exactly where {label} > 0 (a case for positive values?)")
    return "; likely cause: " + " and ".join(hints) if hints else ""


class _Slopes:
    """Finite differences of f along every element of one input: central ``n``, ``left`` and
    ``right`` slopes, which elements are kinks (the one-sided slopes differ) and which are jumps
    (the slopes grow like 1 / step: no derivative there, e.g. the second-order check of a
    piecewise-linear op meeting its gradient's steps). Flat arrays."""

    def __init__(self, numeric: _Numeric, i: int, eps: float, tol: _Tolerance, f0: float, magnitude: float) -> None:
        self.numeric, self.i, self.tol, self.f0, self.eps = numeric, i, tol, f0, eps
        self.fine = eps / 100  # a step that tells a kink on the point from one nearby
        # What float64 rounding in f (of terms adding up to ``magnitude``) may add to a slope over
        # the fine step: on a function of large magnitude it outgrows the tolerances.
        self.fine_noise = 8 * np.finfo(np.float64).eps * magnitude / self.fine
        size = numeric.base[i].size
        self.left, self.right = numeric.slopes(i, range(size), eps, f0)
        self.n = 0.5 * (self.left + self.right)
        self.kinks = np.zeros(size, dtype=bool)
        self.jumps = np.zeros(size, dtype=bool)
        self.near = np.zeros(size, dtype=bool)
        jump = np.abs(self.right - self.left)
        for j in np.flatnonzero(jump > tol.atol + tol.rtol * np.maximum(np.abs(self.left), np.abs(self.right))):
            self.refine(int(j))

    def refine(self, j: int) -> None:
        """Measure element j again with the fine step, and classify it. Where f is smooth along
        j (its one-sided slopes differ only by curvature: by the step times f''), the coarse
        central difference stays: it is the more accurate one (the fine step's rounding error
        is 100 times larger)."""
        lj, rj = self.numeric.slopes(self.i, [j], self.fine, self.f0)
        half_bend = 0.5 * self.fine * (self.right[j] - self.left[j]) / self.eps  # fine/2 * f''
        if (
            abs(lj[0] - (self.n[j] - half_bend)) <= self.tol(lj[0]) + self.fine_noise
            and abs(rj[0] - (self.n[j] + half_bend)) <= self.tol(rj[0]) + self.fine_noise
        ):
            return
        coarse = max(abs(self.left[j]), abs(self.right[j]), abs(self.n[j]), self.tol.atol)
        # On a kink the one-sided slopes do not depend on the step; a kink within a step of x
        # (not on it) mixes its two sides in proportions that do.
        self.near[j] = abs(lj[0] - self.left[j]) > self.tol(lj[0]) or abs(rj[0] - self.right[j]) > self.tol(rj[0])
        self.left[j], self.right[j], self.n[j] = lj[0], rj[0], 0.5 * (lj[0] + rj[0])
        self.jumps[j] = max(abs(lj[0]), abs(rj[0])) > 30 * coarse
        self.kinks[j] = not self.jumps[j] and abs(rj[0] - lj[0]) > self.tol(max(abs(lj[0]), abs(rj[0])))

    def kink_in_some_output(self, j: int) -> bool:
        """Whether some output element has a kink along element j (the projection onto a
        scalar can all but cancel one: an element of several pooling windows)."""
        below, mid, above = self.numeric.around(self.i, j, self.fine)
        for b, m, a in zip(below, mid, above, strict=True):
            left, right = (m - b) / self.fine, (a - m) / self.fine
            if np.any(np.abs(right - left) > self.tol.atol + self.tol.rtol * np.maximum(np.abs(left), np.abs(right))):
                return True
        return False


def _compare(
    numeric: _Numeric,
    args: list[Any],
    checked: list[int],
    names: list[str],
    analytic: list[np.ndarray | None],
    conventions: list[Convention | None],
    eps: float,
    tol: _Tolerance,
    what: str,
) -> None:
    f0, magnitude = numeric.f_and_magnitude()
    for pos, (i, a) in enumerate(zip(checked, analytic, strict=True)):
        x = numeric.base[i]
        missing = a is None
        flat_a = np.zeros(x.size) if a is None else a.reshape(-1)  # no gradient: zero, checked like any other
        m = _Slopes(numeric, i, eps, tol, f0, magnitude)
        for j in np.flatnonzero(_mismatch(flat_a, m.n, tol) & ~m.kinks & ~m.jumps):
            m.refine(int(j))
            if not m.kinks[j] and not m.jumps[j] and m.kink_in_some_output(int(j)):
                m.kinks[j] = True
        where = _Where(numeric, i, names[i], f"{names[i]} (input {i}, shape {x.shape}, dtype {args[i].dtype})")
        for j in np.flatnonzero(m.kinks):
            _check_kink(where, m, int(j), float(flat_a[j]), conventions[pos], what)
        bad = _mismatch(flat_a, m.n, tol) & ~m.kinks & ~m.jumps
        if bad.any():
            _report_mismatch(where, m, flat_a, bad, missing, what)


def _mismatch(a: np.ndarray, n: np.ndarray, tol: _Tolerance) -> np.ndarray:
    return ~np.isclose(a, n, atol=tol.atol, rtol=tol.rtol) | ~np.isfinite(a) | ~np.isfinite(n)


class _Where:
    """The op, the input and how to name its elements in messages."""

    def __init__(self, numeric: _Numeric, i: int, name: str, label: str) -> None:
        self.numeric, self.i, self.name, self.label = numeric, i, name, label
        self.x = numeric.base[i]

    def element(self, j: int) -> str:
        return _where(self.name, self.x.shape, tuple(int(k) for k in np.unravel_index(j, self.x.shape)))


def _check_kink(where: _Where, m: _Slopes, j: int, got: float, convention: Convention | None, what: str) -> None:
    x, shape = where.x, where.x.shape
    idx = tuple(int(k) for k in np.unravel_index(j, shape))
    if convention is None:
        lo = hi = float("nan")
    else:
        kink = Kink(
            index=idx,
            value=float(x[idx]),
            left=float(m.left[j]),
            right=float(m.right[j]),
            x=x.copy(),
            lefts=m.left.reshape(shape),
            rights=m.right.reshape(shape),
            kinks=m.kinks.reshape(shape),
            tolerance=m.tol,
            slope_at=lambda d: where.numeric.slope_at(where.i, j, d),
            subgradients=lambda: where.numeric.subgradients(where.i, j, m.fine),
        )
        # A kink a hair away from x: finite differences cannot tell which side x is on.
        lo, hi = kink.subgradients() if m.near[j] else convention.expected(kink)
        if lo - m.tol(lo) <= got <= hi + m.tol(hi):
            return
    report = _kink_report(
        where.numeric, where.i, j, m.fine, where.element(j), float(x[idx]), m.left[j], m.right[j], got, lo, hi,
        convention,
    )  # fmt: skip
    raise GradcheckError(f"{where.numeric.fn_name}: {what} at a kink: {report} ({where.label})")


def _report_mismatch(where: _Where, m: _Slopes, a: np.ndarray, bad: np.ndarray, missing: bool, what: str) -> None:
    n, tol, x, name = m.n, m.tol, where.x, where.name
    with np.errstate(invalid="ignore", over="ignore"):
        excess = np.where(bad, np.abs(a - n) - (tol.atol + tol.rtol * np.abs(n)), -np.inf)
    j = int(np.argmax(np.where(bad & np.isnan(excess), np.inf, excess)))
    av, nv, xv = float(a[j]), float(n[j]), float(x.reshape(-1)[j])
    at = f"{where.element(j)} = {xv!r}"
    if missing:
        cause = (
            f"the gradient looks constant in {name}: was the backward computed from .data or NumPy "
            "instead of Tensor operations on ctx.saved_tensors?"
            if what != "gradient"
            else "the input looks unused, or a backward returned None for it"
        )
        raise GradcheckError(
            f"{where.numeric.fn_name}: {what} mismatch for {where.label}: autograd gives no {what} but the numeric "
            f"{what} is nonzero, e.g. {_fmt(nv)} at {at}; likely cause: {cause}"
        )
    abs_err = abs(av - nv)
    rel_err = abs_err / abs(nv) if nv != 0 else float("inf") if abs_err else 0.0
    if not np.isfinite(nv):
        hint = " (the numeric value is not finite: is an input on a singularity or outside the domain?)"
    elif not np.isfinite(av):
        hint = " (the analytic value is not finite)"
    else:
        shape = x.shape
        hint = _hint(x, a.reshape(shape), n.reshape(shape), bad.reshape(shape), name, [u.shape for u in m.numeric.us])
    raise GradcheckError(
        f"{where.numeric.fn_name}: {what} mismatch for {where.label} at {at}: "
        f"analytic {_fmt(av)}, numeric {_fmt(nv)}, abs error {abs_err:.3g}, rel error {rel_err:.3g} "
        f"(atol {tol.atol:g}, rtol {tol.rtol:g}); {int(bad.sum())} of {bad.size} elements exceed "
        f"the tolerance{hint}"
    )


def _check(
    fn: Callable[..., Any],
    fn_name: str,
    inputs: Sequence[Any],
    eps: float | None,
    atol: float | None,
    rtol: float | None,
    grad_output: Any,
    seed: int,
    what: str,
    conventions: Any,
    names: list[str] | None = None,
) -> bool:
    args, checked = _prepare(inputs)
    outs = _as_outputs(fn_name, fn(*args))
    us = _projections(outs, grad_output, seed)
    analytic = _analytic(fn_name, outs, args, checked, us)
    dt = _least_precise([args[i].dtype for i in checked] + [o.dtype for o in outs])
    d_eps, d_atol, d_rtol = default_tolerances(dt)
    eps = d_eps if eps is None else eps
    tol = _Tolerance(d_atol if atol is None else atol, d_rtol if rtol is None else rtol)
    per_input = as_conventions(conventions, len(args))
    _compare(
        _Numeric(fn, fn_name, args, us),
        args,
        checked,
        names or _names(fn, len(args)),
        analytic,
        [per_input[i] for i in checked],
        eps,
        tol,
        what,
    )
    return True


# --------------------------------------------------------------------------- public API


def gradcheck(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    grad_output: Any = None,
    seed: int = 0,
    conventions: Any = None,
    name: str | None = None,
) -> bool:
    """Check autograd's gradient of ``fn`` against central finite differences.

    Args:
        fn: called as ``fn(*inputs)`` with Tensors in place of arrays; returns a floating Tensor
            (or a tuple/list of them). It is called many times (twice per checked element), so
            keep inputs small, and it must be deterministic (reseed inside ``fn`` for dropout).
        inputs: Tensors, NumPy arrays (wrapped as Tensors) or anything else (passed through
            unchanged, e.g. ints, tuples, integer labels). Which are checked: the Tensors with
            ``requires_grad=True`` if any input has it, otherwise every floating input. The
            user's tensors are never modified; ``fn`` gets fresh copies.
        eps: finite-difference step (absolute). Default from the dtype (module docstring).
        atol, rtol: an element passes if ``|analytic - numeric| <= atol + rtol * |numeric|``.
        grad_output: the projection ``u`` (one array per output). Default: ones for a scalar
            output, a fixed standard-normal draw (from ``seed``) for a non-scalar output.
        seed: seed of the default ``grad_output``.
        conventions: what the backward returns at kinks and ties (module docstring): one
            :class:`~tinygrad_cnn.testing.conventions.Convention` for all inputs, a sequence, or
            a dict by input position. Default: the ``convention`` the op declares.
        name: the op's name in messages (default: the Function's class name or fn's name).

    Returns:
        True when every checked input's gradient matches.

    Raises:
        GradcheckError: on a mismatch (naming the input, the worst element, both values, the
            errors, the tolerances and a likely cause), at a kink where the gradient is not what
            the convention says (both one-sided slopes, the gradient, the convention's value),
            an analytic gradient of the wrong shape, an input that gets no gradient although the
            numeric gradient is nonzero, or a failing backward.

    Example::

        >>> import numpy as np
        >>> from tinygrad_cnn import Tensor
        >>> from tinygrad_cnn.testing import gradcheck
        >>> x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
        >>> gradcheck(lambda t: (t * t).tanh(), x)
        True
    """
    __tracebackhide__ = True
    if conventions is None:
        conventions = declared_convention(fn)
    return _check(fn, name or op_name(fn), inputs, eps, atol, rtol, grad_output, seed, "gradient", conventions)


def gradgradcheck(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    grad_output: Any = None,
    seed: int = 0,
    conventions: Any = None,
    name: str | None = None,
) -> bool:
    """Check second derivatives: that the first-order gradient of ``fn`` is differentiated correctly.

    With a fixed random ``v`` (``grad_output``, as in :func:`gradcheck`), the first-order
    gradient ``g(x) = grad(fn(x), x, grad_outputs=v, create_graph=True)`` is itself checked with
    :func:`gradcheck`: autograd's gradient of ``sum(u * g(x))`` (for another fixed random ``u``)
    against finite differences of ``g`` computed by autograd in float64. This catches backward
    rules that give correct first derivatives but are not differentiable themselves, e.g. a
    backward that uses ``Tensor(x.array)`` (a constant) instead of the saved input tensor.

    Arguments and the choice of checked inputs are those of :func:`gradcheck`.
    """
    __tracebackhide__ = True
    args, checked = _prepare(inputs)
    label = name or op_name(fn)

    def first_order(*xs: Any) -> tuple[Tensor, ...]:
        xs_list = list(xs)
        with enable_grad():
            for i in checked:
                if not xs_list[i].requires_grad:  # the numeric side passes plain float64 copies
                    xs_list[i] = Tensor(xs_list[i].array, requires_grad=True)
            outs = _as_outputs(label, fn(*xs_list))
            vs = _projections(outs, grad_output, seed)
            live = [k for k, o in enumerate(outs) if o.requires_grad]
            ins = [xs_list[i] for i in checked]
            if not live:
                return tuple(Tensor(np.zeros_like(x.array)) for x in ins)
            seeds = [Tensor(vs[k].astype(outs[k].dtype)) for k in live]
            live_outs = [outs[k] for k in live]
            return grad(live_outs, ins, grad_outputs=seeds, create_graph=True, allow_unused=True)

    return _check(
        first_order,
        label,
        args,
        eps,
        atol,
        rtol,
        None,
        seed + 1,
        "second-order gradient",
        any_subgradient() if conventions is None else conventions,
        _names(fn, len(args)),
    )


def declared_convention(fn: Callable[..., Any]) -> Convention | None:
    """The convention an op declares: ``convention`` of the Function class behind
    ``SomeFunction.apply``, or a ``convention`` attribute of ``fn`` itself; None if none."""
    target = getattr(fn, "__self__", None)
    found = getattr(target, "convention", None) if isinstance(target, type) else None
    found = getattr(fn, "convention", found)
    return found if isinstance(found, Convention) else None
