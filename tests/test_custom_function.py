"""Custom ops the PyTorch way: ``tinygrad_cnn.autograd.Function`` (tinygrad_cnn/custom_function.py).

Every op below is built by a factory from a module ``lib`` (tinygrad_cnn, or torch when installed),
so one source runs on both libraries and the results are compared; without torch the fixed values
written here are the reference. The clamp-based ReLU and the degree-3 Legendre polynomial exercise
what PyTorch's tutorial "Learning PyTorch with examples" (beginner_source/examples_autograd/
polynomial_custom_function.py and two_layer_net_custom_function.py) does with a Function.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
from tinygrad_cnn.autograd.function import once_differentiable

import tinygrad_cnn as tg
from tinygrad_cnn import autograd
from tinygrad_cnn.testing import GradcheckError, check_op

try:
    import torch
except ImportError:  # the oracle is optional
    torch = None

LIBS = [tg] if torch is None else [tg, torch]
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install torch==2.13.0)")


def ops(lib: types.ModuleType) -> types.SimpleNamespace:
    """The custom Functions of these tests, written once against ``lib``'s API; what some of their
    rules receive goes to ``received``."""
    Function = lib.autograd.Function
    received: list = []

    class ClampReLU(Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t.clamp(min=0)

        @staticmethod
        def backward(ctx, grad_out):
            (t,) = ctx.saved_tensors
            grad_in = grad_out.clone()
            grad_in[t < 0] = 0
            return grad_in

    class Cubic(Function):  # P3(x) = (5 x^3 - 3 x) / 2
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return 0.5 * (5 * t**3 - 3 * t)

        @staticmethod
        def backward(ctx, grad_out):
            (t,) = ctx.saved_tensors
            return grad_out * 1.5 * (5 * t**2 - 1)

    class ScaledCubic(Function):  # PyTorch 2's form: forward without ctx, setup_context
        @staticmethod
        def forward(t, scale=2.0):
            return scale * t**3

        @staticmethod
        def setup_context(ctx, inputs, output):
            t, scale = inputs
            ctx.save_for_backward(t, output)
            ctx.scale = scale

        @staticmethod
        def backward(ctx, grad_out):
            t, out = ctx.saved_tensors
            return grad_out * 3 * out / t, None  # 3 scale t^2, through the saved output

    class SumAndArgmax(Function):  # three outputs: a float, a non-differentiable float, an int
        @staticmethod
        def forward(ctx, t):
            total, doubled, index = t.sum(), t * 2, t.argmax()
            ctx.mark_non_differentiable(doubled)
            ctx.shape = t.shape
            return total, doubled, index

        @staticmethod
        def backward(ctx, g_total, g_doubled, g_index):
            received.append((g_total, g_doubled, g_index))
            return g_total.expand(ctx.shape) + 0 * g_doubled

    class Halves(Function):  # two outputs; no zeros materialized for the one not used
        @staticmethod
        def forward(ctx, t):
            ctx.set_materialize_grads(False)
            ctx.n = n = t.shape[0] // 2
            return t[:n] * 1, t[n:] * 3

        @staticmethod
        def backward(ctx, g_low, g_high):
            received.append((g_low, g_high))
            missing = lib.zeros(ctx.n, dtype=lib.float64)
            return lib.cat([missing if g_low is None else g_low, missing if g_high is None else g_high * 3])

    class AddOneInPlace(Function):
        @staticmethod
        def forward(ctx, t):
            t.add_(1)
            ctx.mark_dirty(t)
            return t

        @staticmethod
        def backward(ctx, grad_out):
            return grad_out

    class NumpySquare(Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t * t

        @staticmethod
        @once_differentiable if lib is tg else lib.autograd.function.once_differentiable
        def backward(ctx, grad_out):
            (t,) = ctx.saved_tensors
            return lib.from_numpy(2 * t.detach().numpy() * grad_out.detach().numpy())

    class WrongCube(Function):  # a planted bug: 2 t^2 for 3 t^2
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t**3

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return g * 2 * t * t

    class Weighted(Function):  # a non-tensor argument and needs_input_grad
        @staticmethod
        def forward(ctx, a, b, k):
            ctx.save_for_backward(a, b)
            ctx.k = k
            received.append(ctx.needs_input_grad)
            return k * a * b

        @staticmethod
        def backward(ctx, grad_out):
            a, b = ctx.saved_tensors
            received.append(ctx.needs_input_grad)
            ga = grad_out * b * ctx.k if ctx.needs_input_grad[0] else None
            gb = grad_out * a * ctx.k if ctx.needs_input_grad[1] else None
            return ga, gb, None

    return types.SimpleNamespace(received=received, **{k: v for k, v in locals().items() if isinstance(v, type)})


def leaf(lib, values, dtype="float64"):
    return lib.tensor(values, dtype=getattr(lib, dtype), requires_grad=True)


def as_array(t):
    return None if t is None else np.asarray(t.detach().numpy())


def run_everywhere(case):
    """``case(lib)`` on every library; the results (nested tuples of tensors/numbers) agree."""
    results = [case(lib) for lib in LIBS]
    for other in results[1:]:
        _assert_same(results[0], other)
    return results[0]


def _assert_same(ours, theirs):
    if isinstance(ours, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same(a, b)
    elif ours is None or isinstance(ours, (bool, str)):
        assert ours == theirs
    else:
        a = as_array(ours) if hasattr(ours, "detach") else np.asarray(ours)
        b = as_array(theirs) if hasattr(theirs, "detach") else np.asarray(theirs)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- the tutorial's two Functions


def test_clamp_relu_and_cubic_first_and_second_order():
    def case(lib):
        f = ops(lib)
        x = leaf(lib, [-1.5, 0.25, 2.0])
        y = f.ClampReLU.apply(x)
        (y * lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64)).sum().backward()
        relu_grad = x.grad.clone()
        p3 = f.Cubic.apply
        (g,) = lib.autograd.grad(p3(x).sum(), x, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), x)
        return y, relu_grad, p3(x), g, h, y.grad_fn.name().startswith("ClampReLUBackward")

    y, relu_grad, p3, g, h, named = run_everywhere(case)
    np.testing.assert_allclose(as_array(y), [0.0, 0.25, 2.0])
    np.testing.assert_allclose(as_array(relu_grad), [0.0, 2.0, 3.0])
    x = np.array([-1.5, 0.25, 2.0])
    np.testing.assert_allclose(as_array(p3), 0.5 * (5 * x**3 - 3 * x))
    np.testing.assert_allclose(as_array(g), 1.5 * (5 * x**2 - 1))
    np.testing.assert_allclose(as_array(h), 15 * x)
    assert named


def test_forward_gets_the_tensors_and_records_nothing_inside():
    seen = {}

    class Spy(tg.autograd.Function):
        @staticmethod
        def forward(ctx, t, k):
            seen.update(t=t, k=k, grad_enabled=tg.is_grad_enabled())
            return t * k

        @staticmethod
        def backward(ctx, g):
            return g * 2, None

    x = leaf(tg, [1.0, 2.0])
    y = Spy.apply(x, 2)
    assert seen["t"] is x and seen["k"] == 2 and seen["grad_enabled"] is False
    assert y.grad_fn.inputs == (x, 2) and y.grad_fn.fn is Spy  # one node, nothing recorded inside
    assert tg.is_grad_enabled()


def test_setup_context_form_with_defaults_and_saved_output():
    def case(lib):
        f = ops(lib)
        x = leaf(lib, [0.5, -2.0])
        y = f.ScaledCubic.apply(x)  # scale defaults to 2
        y.sum().backward()
        z = f.ScaledCubic.apply(x.detach().requires_grad_(), 3.0)
        return y, x.grad, z

    y, gx, z = run_everywhere(case)
    np.testing.assert_allclose(as_array(gx), 6 * np.array([0.5, -2.0]) ** 2)
    np.testing.assert_allclose(as_array(z), 3 * np.array([0.5, -2.0]) ** 3)


# --------------------------------------------------------------------------- several outputs


def test_several_outputs_materialized_zeros_and_non_differentiable_ones():
    def case(lib):
        f = ops(lib)
        x = leaf(lib, [1.0, 4.0, 2.0])
        total, doubled, index = f.SumAndArgmax.apply(x)
        (3 * total).backward()
        return total, doubled, index, x.grad, doubled.requires_grad, index.requires_grad, f.received[0]

    total, doubled, index, gx, doubled_rg, index_rg, received = run_everywhere(case)
    assert float(total) == 7.0 and int(index) == 1 and not doubled_rg and not index_rg
    np.testing.assert_allclose(as_array(gx), [3.0, 3.0, 3.0])
    g_total, g_doubled, g_index = received  # zeros for the outputs that got no gradient, as PyTorch
    assert float(g_total) == 3.0 and g_doubled.shape == (3,) and not g_doubled.numpy().any()
    assert g_index.shape == () and g_index.dtype == np.int64


def test_several_outputs_without_materialized_grads():
    f = ops(tg)
    x = leaf(tg, [1.0, 2.0, 3.0, 4.0])
    low, high = f.Halves.apply(x)
    assert low.grad_fn is high.grad_fn
    high.sum().backward()
    [(g_low, g_high)] = f.received
    assert g_low is None and g_high.tolist() == [1.0, 1.0]  # None: set_materialize_grads(False)
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 3.0, 3.0])


def test_outputs_used_by_one_another_and_in_place_afterwards():
    def case(lib):
        f = ops(lib)
        x = leaf(lib, [1.0, 2.0, 3.0, 4.0])
        low, high = f.Halves.apply(x)
        mixed = low * high  # both outputs of one node reach the same consumer
        high = high * 1
        high.mul_(2)  # an in-place op after the node: the node still gets the earlier version's gradient
        (mixed.sum() + high.sum()).backward()
        return x.grad

    gx = run_everywhere(case)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    low, high = x[:2], 3 * x[2:]
    np.testing.assert_allclose(as_array(gx), np.concatenate([high, 3 * (low + 2)]))


# --------------------------------------------------------------------------- ctx methods


def test_mark_dirty_makes_the_input_the_output():
    def case(lib):
        f = ops(lib)
        w = leaf(lib, [1.0, 2.0])
        h = w * 3
        out = f.AddOneInPlace.apply(h)
        (h * w).sum().backward()  # h is now the in-place result: d/dw (3w + 1) w = 6w + 1
        return out is h, h, w.grad

    same, h, gw = run_everywhere(case)
    assert same
    np.testing.assert_allclose(as_array(gw), [7.0, 13.0])


def test_mark_dirty_errors():
    f = ops(tg)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        f.AddOneInPlace.apply(leaf(tg, [1.0]))

    class Forgets(tg.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.mark_dirty(t)
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(RuntimeError, match="marked as dirty.*not returned"):
        Forgets.apply(leaf(tg, [1.0]) * 1)


def test_needs_input_grad_in_forward_and_backward():
    f = ops(tg)
    a, b = leaf(tg, [1.0, 2.0]), tg.tensor([3.0, 4.0], dtype=tg.float64)
    y = f.Weighted.apply(a, b, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1.5, 2.0])
    assert f.received == [(True, False, False), (True, False, False)]
    with tg.no_grad():
        assert not f.Weighted.apply(a, b, 0.5).requires_grad


def test_once_differentiable():
    for lib in LIBS:
        f = ops(lib)
        x = leaf(lib, [1.0, -2.0])
        f.NumpySquare.apply(x).sum().backward()
        np.testing.assert_allclose(as_array(x.grad), [2.0, -4.0])
        y = f.NumpySquare.apply(x)
        seed = lib.ones(2, dtype=lib.float64, requires_grad=True)
        (g,) = lib.autograd.grad(y, x, grad_outputs=seed, create_graph=True)
        with pytest.raises(RuntimeError, match="differentiate twice a function that was marked with @once_diff"):
            g.sum().backward()


def test_saved_tensors_are_freed_and_protected():
    f = ops(tg)
    x = leaf(tg, [1.0, 2.0])
    h = x * 1
    y = f.Cubic.apply(h)
    with pytest.raises(tg.InPlaceError), tg.no_grad():
        h[0] = 5.0  # saved for backward: refused while the graph lives
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 1.5 * (5 * np.array([1.0, 2.0]) ** 2 - 1))
    with pytest.raises(tg.GraphFreedError, match="Cubic"):
        y.sum().backward()


def test_clear_errors():
    class ReturnsArray(tg.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.detach().numpy() * 2

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(TypeError, match=r"ReturnsArray\.forward returned a numpy\.ndarray.*Primitive"):
        ReturnsArray.apply(leaf(tg, [1.0]))

    class SavesInt(tg.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t, 3)
            return t * 1

    with pytest.raises(TypeError, match="save_for_backward can only save variables, but argument 1 is of type int"):
        SavesInt.apply(leaf(tg, [1.0]))

    class TooMany(tg.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 1

        @staticmethod
        def backward(ctx, g):
            return g, g

    with pytest.raises(RuntimeError, match=r"TooMany\.backward returned 2 gradient"):
        TooMany.apply(leaf(tg, [1.0])).sum().backward()

    class ExtraNone(TooMany):
        @staticmethod
        def backward(ctx, g):
            return g, None  # trailing Nones are accepted, as in PyTorch

    x = leaf(tg, [1.0])
    ExtraNone.apply(x).sum().backward()
    assert x.grad.tolist() == [1.0]
    with pytest.raises(RuntimeError, match="static forward method"):
        ExtraNone()(x)


def test_hooks_see_each_output_of_a_node_once_and_its_rule_once():
    events = []

    class Recorder(autograd.BackwardHook):
        def node_reached(self, node, grad):
            events.append(("reached", node.grad_fn.fn.__name__, None if grad is None else grad.shape))

        def rule_returned(self, node, input_grads):
            events.append(("returned", node.grad_fn.fn.__name__))

    f = ops(tg)
    low, high = f.Halves.apply(leaf(tg, [1.0, 2.0, 3.0, 4.0]))
    loss = (low * high).sum()
    hook = Recorder()
    autograd.add_backward_hook(hook)
    try:
        loss.backward()
    finally:
        autograd.remove_backward_hook(hook)
    halves = [e for e in events if e[1] == "Halves"]
    assert halves == [("reached", "Halves", (2,)), ("reached", "Halves", (2,)), ("returned", "Halves")]


# --------------------------------------------------------------------------- gradient checks of Functions


def test_autograd_gradcheck_has_pytorchs_meaning():
    def case(lib):
        f = ops(lib)
        x = leaf(lib, [0.3, -0.7, 1.1])
        return (
            lib.autograd.gradcheck(f.Cubic.apply, (x,), eps=1e-6, atol=1e-5, rtol=1e-3),
            lib.autograd.gradgradcheck(f.Cubic.apply, (x,)),
            lib.autograd.gradcheck(f.Weighted.apply, (x, x.detach() + 1, 0.5)),
        )

    assert run_everywhere(case) == (True, True, True)

    for lib in LIBS:
        Wrong = ops(lib).WrongCube
        x = leaf(lib, [0.5, 1.5])
        with pytest.raises(RuntimeError):  # torch's GradcheckError is a RuntimeError; so is ours
            lib.autograd.gradcheck(Wrong.apply, (x,))
        assert lib.autograd.gradcheck(Wrong.apply, (x,), raise_exception=False) is False
        with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
            lib.autograd.gradcheck(Wrong.apply, (x.detach(),))
    WrongCube = ops(tg).WrongCube
    with pytest.raises(GradcheckError, match="WrongCube: gradient mismatch for t"):
        tg.autograd.gradcheck(WrongCube.apply, leaf(tg, [0.5, 1.5]))
    with pytest.warns(UserWarning, match="not a double precision"):
        tg.autograd.gradcheck(lambda t: t * 2, leaf(tg, [1.0], "float32"), eps=1e-3, atol=1e-3)
    with pytest.raises(NotImplementedError, match="forward-mode"):
        tg.autograd.gradcheck(WrongCube.apply, leaf(tg, [1.0]), check_forward_ad=True)


def test_check_op_tests_users_functions_of_both_forms():
    f = ops(tg)
    check_op(f.Cubic.apply, reference=lambda x: 0.5 * (5 * x**3 - 3 * x), max_examples=15)
    check_op(lambda t: f.ScaledCubic.apply(t), min_value=0.5, max_examples=10, name="ScaledCubic")

    class BadScaled(tg.autograd.Function):  # setup_context form: messages name forward's own argument
        @staticmethod
        def forward(value):
            return value**2

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            (value,) = ctx.saved_tensors
            return g * value

    with pytest.raises(GradcheckError, match="BadScaled: gradient mismatch for value"):
        check_op(BadScaled.apply, max_examples=10)


def test_primitives_keep_the_array_protocol():
    class Twice(autograd.Primitive):
        @staticmethod
        def forward(ctx, a):
            assert isinstance(a, np.ndarray)
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = leaf(tg, [1.0, 2.0])
    Twice.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    assert math.isclose(tg.autograd.gradcheck(Twice.apply, x), True)


def test_ctx_keeps_its_own_plain_attributes_after_backward_and_drops_its_data():
    """As in PyTorch, ``ctx.k = 3`` is still there after backward (``y.grad_fn.k``); arrays and
    Tensors kept as attributes are let go with the saved tensors, so a loss kept after backward
    (``history.append(loss)``) does not keep them alive."""

    class Scale(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.k, ctx.tag, ctx.shape = 3.0, "scaled", tuple(x.shape)
            ctx.big, ctx.inputs_kept, ctx.pair = np.ones(1000), x, (x.detach(), 2)
            return x * 3.0

        @staticmethod
        def backward(ctx, g):
            assert ctx.big.shape == (1000,) and ctx.pair[1] == 2
            return g * ctx.k

    x = tg.ones(2, requires_grad=True)
    y = Scale.apply(x)
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), [3.0, 3.0])
    assert (y.grad_fn.k, y.grad_fn.tag, y.grad_fn.shape) == (3.0, "scaled", (2,))
    for dropped in ("big", "inputs_kept", "pair"):
        assert not hasattr(y.grad_fn, dropped)
