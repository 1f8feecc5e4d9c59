"""Tests of the kink- and tie-aware checking (tinygrad_cnn.testing.conventions, gradcheck's
``conventions``), of ``check_op`` and of the kink-seeking strategies."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.testing import GradcheckError, check_op, gradcheck, kink_values, kinky_arrays, shapes
from tinygrad_cnn.testing.conventions import (
    any_subgradient,
    first_max,
    first_min,
    from_above,
    from_below,
    mean_of_sides,
    split_max,
    split_min,
    toward,
)


def t(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


class Step(tg.Function):
    """relu with a configurable derivative at 0 (the planted convention bug when it is 1)."""

    at_zero = 0.0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        d = np.where(x.data > 0, 1.0, np.where(x.data == 0, Step.at_zero, 0.0))
        return g * Tensor(d.astype(x.dtype))


# --------------------------------------------------------------------------- conventions at kinks


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_convention_from_below(dtype):
    x = t([0.0, 1.5, -1.0, 0.0], dtype)
    assert gradcheck(lambda a: a.relu(), x, conventions=from_below(at=0.0))
    with pytest.raises(GradcheckError, match=r"a\[0\] = 0\.0 is a kink of output\[0\]: left slope 0, right slope 1, "):
        gradcheck(lambda a: a.relu(), x, conventions=from_above(at=0.0), name="relu")


def test_kink_message_names_the_op_the_element_and_both_values():
    Step.at_zero = 1.0
    try:
        with pytest.raises(GradcheckError) as info:
            gradcheck(Step.apply, t([2.0, 0.0, -1.0]), conventions=from_below(at=0.0))
    finally:
        Step.at_zero = 0.0
    assert str(info.value).startswith(
        "Step: gradient at a kink: x[1] = 0.0 is a kink of output[1]: left slope 0, right slope 1, "
        "your backward gave 1, your declared convention (the slope from below at 0) says 0"
    )


def test_declared_convention_is_read_from_the_function_class():
    class DeclaredStep(Step):
        convention = from_below(at=0.0)

    assert gradcheck(DeclaredStep.apply, t([0.0, 1.0]))
    with pytest.raises(GradcheckError, match="no convention is declared"):
        gradcheck(Step.apply, t([0.0, 1.0]))


def test_near_a_declared_kink_either_side_passes():
    """1e-300 is not 0: relu'(1e-300) = 1, but finite differences straddle 0 there."""
    assert gradcheck(lambda a: a.relu(), t([1e-300, -1e-300, 2.0]), conventions=from_below(at=0.0))


def test_abs_clip_and_maximum_follow_pytorch():
    assert gradcheck(lambda a: a.abs(), t([0.0, 1.0, -2.0]), conventions=mean_of_sides(at=0.0))
    assert gradcheck(lambda a: a.clip(-1, 1), t([-1.0, 1.0, 0.5, 3.0]), conventions=toward(0.0, at=(-1.0, 1.0)))
    assert gradcheck(F.maximum, t([1.0, 2.0, 0.0]), t([1.0, 1.0, 0.0]), conventions=mean_of_sides())
    with pytest.raises(GradcheckError, match="says 0.5"):  # the whole gradient to a is not PyTorch's
        gradcheck(lambda a, b: F.where(a.data >= b.data, a, b), t([1.0]), t([1.0]), conventions=mean_of_sides())


def test_first_max_and_first_min():
    x = t([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    assert gradcheck(lambda a: a.max(axis=1).values, x, conventions=first_max())
    assert gradcheck(lambda a: a.min(axis=0).values, t([[1.0, 3.0, 3.0], [1.0, 2.0, 3.0]]), conventions=first_min())
    with pytest.raises(GradcheckError, match=r"a\[0, 1\] = 3\.0 is a kink.*says 0\.5"):
        gradcheck(lambda a: a.max(axis=1).values, x, conventions=split_max())


def test_first_max_in_overlapping_pooling_windows():
    """An element in two windows: the first of one, not of the other."""
    x = t(np.ones((1, 1, 3, 3)))
    assert gradcheck(lambda a: F.max_pool2d(a, 2, 1), x, conventions=first_max())
    assert gradcheck(lambda a: F.max_pool2d(a, 2, 1), x, conventions=any_subgradient())


def test_first_max_with_values_close_to_the_tie():
    """A tie next to a value 1e-8 below it: the tie-break must not move the other value past it."""
    x = np.full((1, 1, 4, 4), 1e-8)
    x[0, 0, 0, 0] = 0.0
    assert gradcheck(lambda a: F.max_pool2d(a, 2), t(x), conventions=first_max())


def test_split_max_and_split_min():
    def even_max(a):  # PyTorch's max(): ties share the gradient
        m = a.data.max()
        mask = (a.data == m).astype(a.dtype)
        return (a * Tensor(mask / mask.sum())).sum()

    x = t([1.0, 3.0, 3.0, 3.0])
    assert gradcheck(even_max, x, conventions=split_max())
    with pytest.raises(GradcheckError, match=r"a\[1\] = 3\.0 is a kink.*gave 0\.333333.*says 1"):
        gradcheck(even_max, x, conventions=first_max())
    assert gradcheck(lambda a: -even_max(-a), t([1.0, 1.0, 2.0]), conventions=split_min())


def test_any_subgradient_accepts_between_and_rejects_outside():
    Step.at_zero = 0.5
    try:
        assert gradcheck(Step.apply, t([0.0]), conventions=any_subgradient())
        Step.at_zero = 1.5
        with pytest.raises(GradcheckError, match=r"allows \[0, 1\]"):
            gradcheck(Step.apply, t([0.0]), conventions=any_subgradient())
    finally:
        Step.at_zero = 0.0


def test_conventions_per_input():
    fn = lambda a, b: a.relu() + b.abs()  # noqa: E731
    x, y = t([0.0, 1.0]), t([0.0, -1.0])
    assert gradcheck(fn, x, y, conventions={0: from_below(at=0.0), 1: mean_of_sides(at=0.0)})
    assert gradcheck(fn, x, y, conventions=[from_below(at=0.0), mean_of_sides(at=0.0)])
    with pytest.raises(ValueError, match="2 inputs"):
        gradcheck(fn, x, y, conventions=[from_below()])


def test_gradgradcheck_accepts_the_steps_of_a_piecewise_linear_gradient():
    from tinygrad_cnn.testing import gradgradcheck

    assert gradgradcheck(lambda a: a.abs(), t([0.0, 1.0]))
    assert gradgradcheck(lambda a: a.relu() * a, t([0.0, 1.0]))


# --------------------------------------------------------------------------- check_op


class Softsign(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + x.abs())

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (1 + x.abs()) ** 2


def test_check_op_passes_correct_ops():
    check_op(Softsign.apply, reference=lambda x: x / (1 + np.abs(x)))
    check_op(lambda a, b: a * b + a, 2, name="mul")
    check_op(lambda x: x.relu(), conventions=from_below(at=0.0), name="relu")
    check_op(lambda x: F.max_pool2d(x, 2, 1), [shapes(4, 4, 2, 3)], conventions=first_max(), name="pool")


def test_check_op_reference_mismatch():
    with pytest.raises(GradcheckError, match=r"check_op\(tanh\) failed\.\ntanh: output 0 differs from the reference"):
        check_op(lambda x: x.tanh(), reference=lambda x: np.tanh(x) + (x > 1) * 1e-3, name="tanh")


def test_check_op_catches_a_mutated_input():
    class Doubles(tg.Function):
        @staticmethod
        def forward(ctx, x):
            x *= 2  # writes into the caller's tensor
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g * 2

    with pytest.raises(GradcheckError, match="Doubles: modified its input x"):
        check_op(Doubles.apply)


def test_check_op_catches_dtype_promotion():
    class Promotes(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * tg.ones(x.shape, dtype=tg.float64)  # float32 in, float64 out

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(GradcheckError, match="dtype float64 for float32 inputs.*astype"):
        check_op(Promotes.apply)
    check_op(Promotes.apply, dtypes=[np.float64])


def test_check_op_zero_size_inputs():
    class EmptyBreaks(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.sum() if g.numel() == 0 else g * 2  # a 0-d gradient for an empty input

    with pytest.raises(GradcheckError, match="shape"):
        check_op(EmptyBreaks.apply)
    # A clear error for an empty input is an acceptable answer (a maximum of nothing is undefined).
    check_op(lambda x: x.max(), conventions=any_subgradient(), dtypes=[np.float64], name="max")


def test_check_op_reports_examples_to_first_failure_and_the_shrunk_input():
    Step.at_zero = 1.0
    try:
        with pytest.raises(GradcheckError) as info:
            check_op(Step.apply, conventions=from_below(at=0.0))
    finally:
        Step.at_zero = 0.0
    e = info.value
    assert 1 <= e.examples_to_first_failure <= e.examples_run
    assert str(e).endswith("Failing input (shrunk): x=0. (float64)")
    assert "gradcheck.py" not in str(e) and "Explanation" not in str(e)


def test_check_op_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dtypes"):
        check_op(Softsign.apply, dtypes=[np.int64])
    with pytest.raises(ValueError, match="at least 1"):
        check_op(Softsign.apply, inputs=0)
    with pytest.raises(TypeError, match="shape tuple or a Hypothesis strategy"):
        check_op(Softsign.apply, inputs=["x"])


def test_a_failing_check_shows_no_toolkit_frames(tmp_path):
    test_file = tmp_path / "test_user_op.py"
    test_file.write_text(
        textwrap.dedent("""
        import numpy as np
        import tinygrad_cnn as tg
        from tinygrad_cnn.testing import check_op

        class Bad(tg.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return g * 3 * x

        def test_bad():
            check_op(Bad.apply)
        """)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "check_op(Bad) failed" in proc.stdout and "Failing input (shrunk)" in proc.stdout
    assert "tinygrad_cnn/testing" not in proc.stdout, proc.stdout
    assert "hypothesis" not in proc.stdout.lower(), proc.stdout


# --------------------------------------------------------------------------- strategies


def test_kink_values():
    assert kink_values((0.25,), -1, 1) == [-1.0, -0.5, 0.0, 0.25, 0.5, 1.0]
    assert kink_values((0.0,), 0.5, 3) == [0.5, 1.0, 2.0, 3.0]


def test_kinky_arrays_seek_kinks_ties_and_constant_regions():
    seen = {"kink": False, "tie": False, "smooth": False, "regions": False}

    @settings(max_examples=100, database=None)
    @given(a=kinky_arrays(shapes(min_dims=2, max_dims=3, min_side=2, max_side=4), kinks=(0.3,)))
    def collect(a):
        assert np.isfinite(a).all() and (np.abs(a) <= 3).all()
        seen["kink"] |= bool((a == 0.3).any() or (a == 0).any())
        seen["tie"] |= np.unique(a).size < a.size
        seen["smooth"] |= not np.isin(a, kink_values((0.3,))).all()
        seen["regions"] |= bool((a == a.reshape(-1)[0]).mean() >= 0.5 and np.unique(a).size > 1)

    collect()
    assert all(seen.values()), seen


@given(x=kinky_arrays((3,), dtype=np.float32))
def test_kinky_arrays_dtype(x):
    assert x.dtype == np.float32 and x.shape == (3,)
