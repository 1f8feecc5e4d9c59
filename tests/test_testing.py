"""Tests of the public gradient-testing toolkit, tinygrad_cnn.testing: gradcheck catches what it
should (and passes what it should), and the strategies generate what they promise."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Function, Tensor
from tinygrad_cnn.testing import (
    Conv2dConfig,
    GradcheckError,
    Pool2dConfig,
    arrays,
    away_from,
    broadcastable_shapes,
    conv2d_configs,
    default_tolerances,
    distinct_values,
    gradcheck,
    gradgradcheck,
    pool2d_configs,
    shapes,
    tensors,
)

# --------------------------------------------------------------------------- custom ops under test


class Cube(Function):
    """A correct op: y = x**3."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


class CubeConstantBackward(Function):
    """First derivative right, but the backward uses a constant copy of x: not differentiable."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        c = Tensor(x.data)  # detached: second derivatives through it are lost
        return g * 3 * c * c


class CubeWrongSecondOrder(Function):
    """First derivative right; the backward is differentiable but its derivative is wrong."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        # 3 x^2 written as 3 x * detach(x): the value is right, d/dx is 3x instead of 6x
        return g * 3 * x * Tensor(x.data)


class ScaledMul(Function):
    """y = a * b whose gradient for b is off by a factor 1.5."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * a * 1.5


class OneWrongElement(Function):
    """y = 2x with the gradient of element (1, 2) wrong."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        bump = np.zeros(g.shape)
        bump[1, 2] = 0.25
        return g * 2 + Tensor(bump)


class WrongShape(Function):
    """Returns a gradient of the wrong shape."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g.sum(axis=0)


class NoGradient(Function):
    """Uses its input but returns None as its gradient."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return None


class TransposedGradient(Function):
    """y = x @ W with W (not W^T) in the backward. W is not symmetric, but its rows and columns
    all sum to 6, so a projection by ones cannot tell W from W^T; a random projection can."""

    W = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [2.0, 3.0, 1.0]])

    @staticmethod
    def forward(ctx, x):
        return x @ TransposedGradient.W

    @staticmethod
    def backward(ctx, g):
        return g @ Tensor(TransposedGradient.W)


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(dtype)


# --------------------------------------------------------------------------- gradcheck passes


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradcheck_passes_on_correct_ops(dtype):
    x = Tensor(rand(3, 4, dtype=dtype), requires_grad=True)
    y = Tensor(rand(4, seed=1, dtype=dtype), requires_grad=True)
    assert gradcheck(lambda a, b: (a * b).tanh() + (a - b).sigmoid(), x, y)
    assert gradcheck(lambda a: a.log_softmax(axis=1), x)
    assert gradcheck(lambda a, b: a @ b, x, y)
    assert gradcheck(Cube.apply, x)
    assert gradcheck(lambda a: (a * a).sum(), x)  # scalar output


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradcheck_accepts_arrays_and_checks_all_floats(dtype):
    a, b = rand(2, 3, dtype=dtype), rand(2, 3, seed=1, dtype=dtype)
    assert gradcheck(lambda u, v: u * v, a, b)
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ScaledMul.apply, a, b)  # arrays: both are checked, b's gradient is wrong


def test_gradcheck_checks_only_inputs_that_require_grad():
    a = Tensor(rand(2, 3), requires_grad=True)
    b = Tensor(rand(2, 3, seed=1))  # no grad: its (wrong) gradient is not checked
    assert gradcheck(ScaledMul.apply, a, b)
    assert gradcheck(ScaledMul.apply, a, b.array.copy())  # an array is a constant when a Tensor requires grad
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ScaledMul.apply, a, Tensor(b.data, requires_grad=True))


def test_gradcheck_passes_other_arguments_through():
    logits = Tensor(rand(4, 3), requires_grad=True)
    target = np.array([0, 2, 1, 2])
    assert gradcheck(lambda z, t, red: F.cross_entropy(z, t, reduction=red), logits, target, "sum")
    assert gradcheck(lambda z, axis: z.logsumexp(axis=axis), logits, (0, 1))


def test_gradcheck_leaves_inputs_alone():
    x = Tensor(rand(2, 3), requires_grad=True)
    before = x.array.copy()
    assert gradcheck(lambda a: a * 3, x)
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None and x.is_leaf


def test_gradcheck_output_that_views_its_input():
    """Outputs sharing memory with the perturbed input are projected before the next step."""
    x = Tensor(rand(2, 3), requires_grad=True)
    assert gradcheck(lambda a: a.reshape(-1), x)
    assert gradcheck(lambda a: a[:, ::-1], x)
    assert gradcheck(lambda a: a.T, x)


def test_gradcheck_multiple_outputs():
    x = Tensor(rand(3), requires_grad=True)
    assert gradcheck(lambda a: (a.exp(), a.sum() * 2, a[:2]), x)
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda a: (a.exp(), ScaledMul.apply(a, a)), x)


def test_gradcheck_explicit_grad_output():
    x = Tensor(rand(2, 2), requires_grad=True)
    assert gradcheck(lambda a: a * a, x, grad_output=np.ones((2, 2)))
    assert gradcheck(lambda a: (a * a, a.exp()), x, grad_output=[np.ones((2, 2)), Tensor(rand(2, 2, seed=5))])
    with pytest.raises(ValueError, match="shape"):
        gradcheck(lambda a: a * a, x, grad_output=np.ones(3))


def test_gradcheck_unused_input_with_zero_numeric_gradient_passes():
    x, y = Tensor(rand(3), requires_grad=True), Tensor(rand(3, seed=1), requires_grad=True)
    assert gradcheck(lambda a, b: a * 2, x, y)
    assert gradcheck(lambda a: Tensor(np.ones(3)), x)  # output does not depend on anything


def test_gradcheck_float16_and_explicit_tolerances():
    x = Tensor(rand(3, dtype=np.float16), requires_grad=True)
    assert gradcheck(lambda a: a * a, x)
    y = Tensor(rand(2, 3), requires_grad=True)
    z = Tensor(rand(2, 3, seed=1), requires_grad=True)
    with pytest.raises(GradcheckError, match="rtol 0.1"):
        gradcheck(ScaledMul.apply, y, z, rtol=0.1)
    assert gradcheck(ScaledMul.apply, y, z, atol=0.0, rtol=0.6)  # a 1.5 factor is within 60%


def test_default_tolerances():
    assert default_tolerances(np.float64) == (1e-6, 1e-5, 1e-4)
    eps32, atol32, rtol32 = default_tolerances(np.float32)
    assert eps32 > 1e-6 and atol32 > 1e-5 and rtol32 > 1e-4
    with pytest.raises(TypeError):
        default_tolerances(np.int64)


# --------------------------------------------------------------------------- gradcheck fails


def test_gradcheck_names_input_index_values_and_tolerances():
    a = Tensor(np.array([[0.5, -1.0, 0.25], [1.0, 0.5, -3.0]]), requires_grad=True)
    b = Tensor(rand(2, 3, seed=1), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda u, v: ScaledMul.apply(u, v).sum(), a, b)  # scalar: grad_output 1
    msg = str(info.value)
    assert isinstance(info.value, AssertionError)
    assert "v (input 1, shape (2, 3)" in msg
    # the worst element is where |numeric| = |a| is largest: a[1, 2] = -3, analytic -4.5
    assert "at v[1, 2] = " in msg
    assert "analytic -4.5, numeric -3," in msg
    assert "abs error 1.5" in msg and "rel error 0.5" in msg
    assert "atol 1e-05" in msg and "rtol 0.0001" in msg


def test_gradcheck_reports_the_wrong_element():
    x = Tensor(rand(3, 4), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0, shape \(3, 4\).*x\[1, 2\].*1 of 12 elements"):
        gradcheck(OneWrongElement.apply, x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradcheck_catches_a_factor_in_float32_too(dtype):
    a = Tensor(rand(3, dtype=dtype), requires_grad=True)
    b = Tensor(rand(3, seed=1, dtype=dtype), requires_grad=True)
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ScaledMul.apply, a, b)


def test_gradcheck_random_projection_catches_a_transposed_gradient():
    x = Tensor(rand(2, 3), requires_grad=True)
    assert gradcheck(TransposedGradient.apply, x, grad_output=np.ones((2, 3)))  # ones miss the bug
    with pytest.raises(GradcheckError):
        gradcheck(TransposedGradient.apply, x)  # the default random projection catches it


def test_gradcheck_wrong_shape_gradient():
    x = Tensor(rand(3, 4), requires_grad=True)
    with pytest.raises(GradcheckError, match="shape"):
        gradcheck(WrongShape.apply, x)


def test_gradcheck_missing_gradient():
    x = Tensor(rand(3), requires_grad=True)
    with pytest.raises(GradcheckError, match="input 0.*no gradient.*numeric gradient is nonzero"):
        gradcheck(NoGradient.apply, x)
    y = Tensor(rand(3, seed=1), requires_grad=True)
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(lambda a, b: a * 2 + NoGradient.apply(b), x, y)


def test_gradcheck_gradient_of_a_detached_path():
    """The output depends on x only through a constant copy: autograd sees no gradient."""
    x = Tensor(rand(3), requires_grad=True)
    with pytest.raises(GradcheckError, match="no gradient"):
        gradcheck(lambda a: Tensor(a.data) * 2, x)


def test_gradcheck_kink_gives_a_clear_error_and_non_finite_is_flagged():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"a\[0\] = 0\.0 is a kink.*left slope 0, right slope 1.*no convention"):
        gradcheck(lambda a: a.relu().sum(), x)  # a kink, and no convention declared for it
    y = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with np.errstate(all="ignore"), pytest.raises(GradcheckError, match="not finite"):
        gradcheck(lambda a: a.sqrt(), y)  # sqrt(-eps) is NaN


def test_gradcheck_rejects_bad_fn_and_inputs():
    with pytest.raises(ValueError, match="no floating-point input"):
        gradcheck(lambda a: a, np.arange(3))
    with pytest.raises(GradcheckError, match="must return a Tensor"):
        gradcheck(lambda a: a.detach().numpy(), rand(3))
    with pytest.raises(GradcheckError, match="dtype"):
        gradcheck(lambda a: a > 0, rand(3))


# --------------------------------------------------------------------------- gradgradcheck


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x**3,
        lambda x: x.tanh(),
        lambda x: x.sigmoid() * x,
        lambda x: (x * x).exp().sum(),
        lambda x: x.log_softmax(axis=-1),
        lambda x: Cube.apply(x),
        lambda x: x * 2,  # a constant gradient: the second derivative is 0
        lambda x: (x @ x.T).relu(),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradgradcheck_passes(fn, dtype):
    x = Tensor(rand(2, 3, dtype=dtype), requires_grad=True)
    assert gradgradcheck(fn, x)


def test_gradgradcheck_two_inputs():
    a, b = Tensor(rand(2, 3), requires_grad=True), Tensor(rand(3, 2, seed=1), requires_grad=True)
    assert gradgradcheck(lambda u, v: (u @ v).tanh(), a, b)
    assert gradgradcheck(lambda u, v: u * 2 + v, a, b.T.detach().requires_grad_())


def test_gradgradcheck_catches_a_constant_in_the_backward():
    x = Tensor(rand(2, 3), requires_grad=True)
    assert gradcheck(CubeConstantBackward.apply, x)  # first order is right...
    with pytest.raises(GradcheckError, match=r"CubeConstantBackward: second-order.*input 0.*no second-order.*\.data"):
        gradgradcheck(CubeConstantBackward.apply, x)  # ...second order is not


def test_gradgradcheck_catches_a_wrong_second_derivative():
    x = Tensor(rand(2, 3), requires_grad=True)
    assert gradcheck(CubeWrongSecondOrder.apply, x)
    with pytest.raises(GradcheckError, match=r"second-order gradient mismatch for x \(input 0"):
        gradgradcheck(CubeWrongSecondOrder.apply, x)


def test_gradgradcheck_catches_a_constant_with_a_second_input():
    a, b = Tensor(rand(3), requires_grad=True), Tensor(rand(3, seed=1), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda u, v: CubeConstantBackward.apply(u) * v, a, b)


# --------------------------------------------------------------------------- the documented examples


def test_module_docstring_examples_run():
    """The examples in tinygrad_cnn.testing and .strategies work as written."""
    import tinygrad_cnn.testing as testing
    import tinygrad_cnn.testing.strategies as strategies

    for module, names in [
        (testing, ["test_cube"]),
        (strategies, ["test_softsign_gradient", "test_softsign_second_order"]),
    ]:
        doc = module.__doc__
        start = doc.index("    import numpy as np")
        code = textwrap.dedent(
            "\n".join(line for line in doc[start:].splitlines() if line.startswith("    ") or not line.strip())
        )
        namespace: dict = {}
        exec(compile(code, f"<{module.__name__} docstring>", "exec"), namespace)
        for name in names:
            namespace[name]()


def test_gradcheck_doctest():
    import doctest

    # the package attribute tinygrad_cnn.testing.gradcheck is the function, not the module
    gradcheck_module = importlib.import_module("tinygrad_cnn.testing.gradcheck")
    result = doctest.testmod(gradcheck_module)
    assert result.attempted > 0 and result.failed == 0


def test_import_without_hypothesis():
    code = textwrap.dedent("""
        import sys
        sys.modules["hypothesis"] = None  # make `import hypothesis` fail
        import numpy as np
        import tinygrad_cnn.testing as T
        from tinygrad_cnn import Tensor
        assert T.gradcheck(lambda a: a * a, np.ones(3))
        assert "tensors" not in T.__all__
        try:
            T.tensors
        except ImportError as e:
            assert "hypothesis" in str(e).lower()
        else:
            raise SystemExit("strategies imported without hypothesis")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- strategies


@given(shape=shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_shapes_respect_bounds(shape):
    assert 1 <= len(shape) <= 3 and all(2 <= n <= 4 for n in shape)


@given(pair=broadcastable_shapes(min_dims=1, max_dims=4, max_side=4))
def test_broadcastable_shapes_broadcast(pair):
    a, b = pair
    assert 1 <= len(a) <= 4 and 1 <= len(b) <= 4
    result = np.broadcast_shapes(a, b)  # raises if they do not broadcast
    assert len(result) == max(len(a), len(b))


def test_broadcastable_shapes_cover_the_interesting_cases():
    seen = {"ones": False, "missing_leading": False, "equal": False}

    @given(pair=broadcastable_shapes(max_dims=3))
    def collect(pair):
        a, b = pair
        seen["missing_leading"] |= len(a) != len(b)
        seen["ones"] |= any(n == 1 for n in a + b) and a != b
        seen["equal"] |= a == b

    collect()
    assert all(seen.values()), seen


@given(x=tensors(shapes(max_dims=3), min_value=-2, max_value=1))
def test_tensors_are_finite_and_in_range(x):
    assert isinstance(x, Tensor) and x.requires_grad and x.dtype == np.float64
    assert np.isfinite(x.data).all() and (x.data >= -2).all() and (x.data <= 1).all()


@given(x=tensors((2, 3), dtype=np.float32, requires_grad=False))
def test_tensors_fixed_shape_and_dtype(x):
    assert x.shape == (2, 3) and x.dtype == np.float32 and not x.requires_grad


@given(x=tensors(st.just((4,)), elements=st.sampled_from([1.0, 2.0])))
def test_tensors_custom_elements(x):
    assert set(np.unique(x.data)) <= {1.0, 2.0}


def assert_margin_apart(values, margin):
    flat = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if flat.size > 1:
        assert np.diff(flat).min() >= margin * (1 - 1e-6)


@given(a=distinct_values(shapes(max_dims=3, max_side=4), margin=0.05, min_value=-4, max_value=4))
def test_distinct_values_are_margin_apart(a):
    assert np.isfinite(a).all() and (a >= -4).all() and (a <= 4).all()
    assert_margin_apart(a, 0.05)


@given(x=tensors((3, 5), unique=True, margin=0.1), y=arrays((6,), dtype=np.float32, unique=True, margin=0.5))
def test_unique_tensors_and_arrays(x, y):
    assert x.shape == (3, 5) and y.dtype == np.float32
    assert_margin_apart(x.data, 0.1)
    assert_margin_apart(y, 0.5)


def test_distinct_values_needs_room():
    with pytest.raises(ValueError, match="cannot be"):
        distinct_values((100,), margin=0.1, min_value=0, max_value=1)


@given(x=arrays(shapes(max_dims=2), min_value=-1.5, max_value=1.5).map(away_from((-1.0, 0.0, 1.0), 0.1)))
def test_away_from_arrays(x):
    for p in (-1.0, 0.0, 1.0):
        assert (np.abs(x - p) >= 0.1 - 1e-12).all()


def test_away_from_types():
    push = away_from((0.0,), margin=0.5)
    assert push(0.2) == 0.5 and push(-0.2) == -0.5 and push(0.0) == 0.5 and push(3.0) == 3.0
    t = push(Tensor(np.array([0.1, -2.0], dtype=np.float32), requires_grad=True))
    assert isinstance(t, Tensor) and t.requires_grad and t.dtype == np.float32
    np.testing.assert_array_equal(t.data, [0.5, -2.0])
    assert push(np.float32(0.1)) == np.float32(0.5) and isinstance(push(np.float32(0.1)), np.float32)
    with pytest.raises(ValueError, match="apart"):
        away_from((0.0, 0.1), margin=0.1)


@given(cfg=conv2d_configs())
def test_conv2d_configs_are_valid(cfg):
    assert isinstance(cfg, Conv2dConfig)
    n, c_in, h, w = cfg.input_shape
    c_out, c_in_w, kh, kw = cfg.weight_shape
    assert c_in == c_in_w
    for size, k, p, d in ((h, kh, cfg.padding[0], cfg.dilation[0]), (w, kw, cfg.padding[1], cfg.dilation[1])):
        assert d * (k - 1) + 1 <= size + 2 * p  # the dilated kernel fits the padded input
    x = Tensor(np.ones(cfg.input_shape))
    wt = Tensor(np.ones(cfg.weight_shape))
    b = Tensor(np.ones(c_out)) if cfg.bias else None
    out = F.conv2d(x, wt, b, cfg.stride, cfg.padding, cfg.dilation)
    assert out.shape == cfg.output_shape


def test_conv2d_configs_cover_the_options():
    seen = set()

    @given(cfg=conv2d_configs())
    def collect(cfg):
        seen.update(
            {
                "stride" if max(cfg.stride) > 1 else None,
                "padding" if max(cfg.padding) > 0 else None,
                "dilation" if max(cfg.dilation) > 1 else None,
                "bias" if cfg.bias else "no bias",
            }
        )

    collect()
    assert {"stride", "padding", "dilation", "bias", "no bias"} <= seen


@given(cfg=pool2d_configs())
def test_pool2d_configs_are_valid(cfg):
    assert isinstance(cfg, Pool2dConfig)
    for k, p in zip(cfg.kernel_size, cfg.padding, strict=True):
        assert p <= k // 2  # PyTorch's rule
    x = Tensor(np.random.default_rng(0).standard_normal(cfg.input_shape))
    out = F.max_pool2d(x, cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation)
    assert out.shape == cfg.output_shape
    assert np.isfinite(out.data).all()  # no window is made only of padding


@given(cfg=pool2d_configs(max_dilation=1, padding=False))
def test_pool2d_configs_options(cfg):
    assert cfg.dilation == (1, 1) and cfg.padding == (0, 0)
    out = F.avg_pool2d(Tensor(np.ones(cfg.input_shape)), cfg.kernel_size, cfg.stride, cfg.padding)
    assert out.shape == cfg.output_shape


@pytest.mark.parametrize(
    "strategy",
    [
        lambda: shapes(min_dims=3, max_dims=2),
        lambda: conv2d_configs(max_kernel=0),
        lambda: pool2d_configs(max_stride=0),
        lambda: arrays((2,), dtype=np.int64),
    ],
)
def test_strategies_reject_bad_arguments(strategy):
    with pytest.raises((ValueError, TypeError)):
        strategy()


def test_distinct_values_fixed_shape():
    @given(a=distinct_values((2, 2, 2), margin=0.5, dtype=np.float32))
    def check(a):
        assert a.shape == (2, 2, 2) and a.dtype == np.float32
        assert_margin_apart(a, 0.5)

    check()


# --------------------------------------------------------------------------- large magnitudes


def test_a_smooth_function_of_large_magnitude_has_no_kinks():
    """1000 x**2 bends by 2000 per unit: its one-sided slopes differ by more than the tolerance,
    so the check measures them again with a 100x finer step, whose rounding error on a function
    of terms near 10**4 is larger than the tolerance on x = 1e-6's small slope. That element once
    came out as a kink of a smooth function (and a second-order check of a convolution failed
    the same way); the coarse central difference is kept where the slopes differ by curvature."""
    a = np.linspace(2.0, 3.0, 12).reshape(3, 4)
    a[1, 2] = 1e-6
    x = Tensor(a, requires_grad=True)
    assert gradcheck(lambda t: t * t * 1000.0, x)
    assert gradgradcheck(lambda t: t * t * t * 100.0, x)


class TransposedTwiceWithAWrongGradient(Function):
    """y[i, j, k] = x[j, i], (2, 3) -> (3, 2, 2), with a backward off by a factor 2."""

    @staticmethod
    def forward(ctx, x):
        return Tensor(np.repeat(x.detach().numpy().T[..., None], 2, axis=2))

    @staticmethod
    def backward(ctx, g):
        return g.sum(2).T * 2.0


def test_a_mismatch_is_reported_when_input_and_output_shapes_do_not_broadcast():
    x = Tensor(np.arange(6.0).reshape(2, 3) + 1, requires_grad=True)
    with pytest.raises(GradcheckError, match="off by a factor 2"):
        gradcheck(TransposedTwiceWithAWrongGradient.apply, x)


@pytest.mark.parametrize("layout", ["fortran", "reversed", "strided"])
def test_gradcheck_perturbs_inputs_in_any_memory_layout(layout):
    """Finite differences move the input's own elements in place: a transposed or strided input
    (whose flattening is a copy) once left f unmoved, a numeric gradient of 0 and a false failure."""
    base = np.arange(1.0, 13.0).reshape(3, 4) / 7
    x = {
        "fortran": np.asfortranarray(base),
        "reversed": base[::-1, ::-1],
        "strided": np.repeat(base, 2, axis=1)[:, ::2],
    }[layout]
    assert not x.flags.c_contiguous
    t = Tensor(x, requires_grad=True)
    assert gradcheck(lambda v: (v * v).exp().sum(0), t)
    assert gradcheck(Cube.apply, t) and gradgradcheck(Cube.apply, t)
    with pytest.raises(GradcheckError):  # and a wrong second derivative is still caught there
        gradgradcheck(CubeWrongSecondOrder.apply, t)
