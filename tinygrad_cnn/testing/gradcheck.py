"""Numerical gradient checking: compare autograd's gradients with central finite differences.

:func:`gradcheck` checks first derivatives, :func:`gradgradcheck` second derivatives (that a
``backward`` rule is itself differentiated correctly, which ``create_graph=True`` relies on).
Neither needs Hypothesis; see :mod:`tinygrad_cnn.testing.strategies` for generating inputs.

How the check works
-------------------
``fn`` maps some tensors to one tensor (or a tuple of tensors). Let ``out_k = fn(x)`` and pick
a fixed random ``u_k`` shaped like each output (1 for a scalar output). The check compares two
ways of computing the gradient of the scalar ``f(x) = sum_k <u_k, out_k(x)>``:

* analytic: ``tinygrad_cnn.grad(outs, inputs, grad_outputs=u)``, run in the inputs' own dtype;
* numeric: ``(f(x + eps e_j) - f(x - eps e_j)) / (2 eps)`` for every element ``j`` of every
  checked input, with ``fn`` run on float64 copies of all floating inputs.

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
truncation error of about ``eps**2 / 6 * f'''``. Keep inputs at least ``eps`` away from kinks
(relu and abs at 0, clip bounds, ties of max): at a kink the finite difference averages the two
one-sided slopes and no gradient convention can match it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._tensor import Tensor
from ..autograd import enable_grad, grad

__all__ = ["GradcheckError", "default_tolerances", "gradcheck", "gradgradcheck"]

# dtype -> (eps, atol, rtol)
_TOLERANCES: dict[np.dtype, tuple[float, float, float]] = {
    np.dtype(np.float64): (1e-6, 1e-5, 1e-4),
    np.dtype(np.float32): (1e-3, 1e-3, 1e-2),
    np.dtype(np.float16): (1e-2, 5e-2, 5e-2),
}


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with the numeric one (or could not be computed).

    A subclass of ``AssertionError``, so pytest reports it as a test failure.
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
            args.append(Tensor(data, requires_grad=check))
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


def _numeric(
    fn: Callable[..., Any],
    fn_name: str,
    args: list[Any],
    checked: list[int],
    us: list[np.ndarray],
    eps: float,
) -> list[np.ndarray]:
    """Central differences of sum_k <u_k, out_k> with fn run on float64 copies."""
    base = [np.array(a.array, dtype=np.float64) if _is_float(a) else a for a in args]

    def f() -> float:
        call = [Tensor(b) if isinstance(b, np.ndarray) else b for b in base]
        outs = _as_outputs(fn_name, fn(*call))
        # Project immediately: an output may be a view of an input array that is perturbed next.
        total = 0.0
        for u, o in zip(us, outs, strict=True):
            total += float(np.sum(u * np.asarray(o.array, dtype=np.float64)))
        return total

    grads = []
    for i in checked:
        x = base[i]
        flat = x.reshape(-1)  # a view: perturbing flat perturbs x
        g = np.empty(x.size)
        for j in range(x.size):
            orig = flat[j]
            flat[j] = orig + eps
            f_plus = f()
            flat[j] = orig - eps
            f_minus = f()
            flat[j] = orig
            g[j] = (f_plus - f_minus) / (2 * eps)
        grads.append(g.reshape(x.shape))
    return grads


def _compare(
    fn_name: str,
    args: list[Any],
    checked: list[int],
    analytic: list[np.ndarray | None],
    numeric: list[np.ndarray],
    atol: float,
    rtol: float,
    what: str,
) -> None:
    for i, a, n in zip(checked, analytic, numeric, strict=True):
        x = args[i]
        label = f"input {i} (shape {x.shape}, dtype {x.dtype})"
        if a is None:
            if np.any(n != 0):
                j = np.unravel_index(int(np.argmax(np.abs(n))), n.shape) if n.ndim else ()
                raise GradcheckError(
                    f"{fn_name}: {what} mismatch for {label}: autograd gives no gradient (the input looks "
                    f"unused, or a backward returned None for it) but the numeric {what} is nonzero, "
                    f"e.g. {float(n[j])!r} at index {tuple(int(k) for k in j)}"
                )
            continue
        bad = ~np.isclose(a, n, atol=atol, rtol=rtol) | ~np.isfinite(a) | ~np.isfinite(n)
        if not bad.any():
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            excess = np.abs(a - n) - (atol + rtol * np.abs(n))
        excess = np.where(np.isnan(excess), np.inf, excess)
        j = np.unravel_index(int(np.argmax(excess)), a.shape) if a.ndim else ()
        av, nv = float(a[j]), float(n[j])
        abs_err = abs(av - nv)
        rel_err = abs_err / abs(nv) if nv != 0 else float("inf") if abs_err else 0.0
        hint = ""
        if not np.isfinite(nv):
            hint = " (the numeric value is not finite: is an input on a singularity or outside the domain?)"
        elif not np.isfinite(av):
            hint = " (the analytic value is not finite)"
        raise GradcheckError(
            f"{fn_name}: {what} mismatch for {label} at index {tuple(int(k) for k in j)}: "
            f"analytic {av!r}, numeric {nv!r}, abs error {abs_err:.3g}, rel error {rel_err:.3g} "
            f"(atol {atol:g}, rtol {rtol:g}); {int(bad.sum())} of {bad.size} elements exceed "
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
) -> bool:
    args, checked = _prepare(inputs)
    outs = _as_outputs(fn_name, fn(*args))
    us = _projections(outs, grad_output, seed)
    analytic = _analytic(fn_name, outs, args, checked, us)
    dt = _least_precise([args[i].dtype for i in checked] + [o.dtype for o in outs])
    d_eps, d_atol, d_rtol = default_tolerances(dt)
    eps = d_eps if eps is None else eps
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    numeric = _numeric(fn, fn_name, args, checked, us, eps)
    _compare(fn_name, args, checked, analytic, numeric, atol, rtol, what)
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

    Returns:
        True when every checked input's gradient matches.

    Raises:
        GradcheckError: on a mismatch (naming the input, the worst element, both values, the
            errors and the tolerances), an analytic gradient of the wrong shape, an input that
            gets no gradient although the numeric gradient is nonzero, or a failing backward.

    Example::

        >>> import numpy as np
        >>> from tinygrad_cnn import Tensor
        >>> from tinygrad_cnn.testing import gradcheck
        >>> x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
        >>> gradcheck(lambda t: (t * t).tanh(), x)
        True
    """
    return _check(fn, "gradcheck", inputs, eps, atol, rtol, grad_output, seed, "gradient")


def gradgradcheck(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    grad_output: Any = None,
    seed: int = 0,
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
    args, checked = _prepare(inputs)

    def first_order(*xs: Any) -> tuple[Tensor, ...]:
        xs_list = list(xs)
        with enable_grad():
            for i in checked:
                if not xs_list[i].requires_grad:  # the numeric side passes plain float64 copies
                    xs_list[i] = Tensor(xs_list[i].array, requires_grad=True)
            outs = _as_outputs("gradgradcheck", fn(*xs_list))
            vs = _projections(outs, grad_output, seed)
            live = [k for k, o in enumerate(outs) if o.requires_grad]
            ins = [xs_list[i] for i in checked]
            if not live:
                return tuple(Tensor(np.zeros_like(x.array)) for x in ins)
            seeds = [Tensor(vs[k].astype(outs[k].dtype)) for k in live]
            live_outs = [outs[k] for k in live]
            return grad(live_outs, ins, grad_outputs=seeds, create_graph=True, allow_unused=True)

    return _check(first_order, "gradgradcheck", args, eps, atol, rtol, None, seed + 1, "second-order gradient")
