"""The tape and the reverse-mode engine: Tensor construction, backward, grad, grad modes,
higher-order gradients, custom Functions, memory release and anomaly detection."""

from __future__ import annotations

import gc
import os
import sys
import weakref

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import autograd
from tinygrad_cnn import functional as F
from tinygrad_cnn.testing import gradcheck, gradgradcheck

THIS_FILE = os.path.basename(__file__)


def leaf(values, dtype=np.float64):
    return tg.Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def walk(root: tg.Tensor):
    """Every tensor reachable from ``root`` through the tape (root included)."""
    seen, stack, out = set(), [root], []
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        out.append(t)
        if t.grad_fn is not None:
            stack.extend(i for i in t.grad_fn.inputs if isinstance(i, tg.Tensor))
    return out


# =========================================================================== construction


class TestConstruction:
    def test_numpy_array_keeps_dtype_and_shares_memory(self):
        a = np.arange(6.0).reshape(2, 3)
        t = tg.Tensor(a)
        assert t.dtype == np.float64
        assert t.array is a
        a[0, 0] = 42.0
        assert t.data[0, 0] == 42.0

    @pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])
    def test_numpy_dtypes_are_kept_by_tensor_and_floats_by_Tensor(self, dtype):
        assert tg.tensor(np.zeros(3, dtype=dtype)).dtype == dtype
        assert tg.Tensor(np.zeros(3, dtype=dtype)).dtype == (dtype if np.dtype(dtype).kind == "f" else np.float32)

    def test_python_floats_and_lists_become_float32(self):
        assert tg.Tensor(1.5).dtype == np.float32
        assert tg.Tensor([1.0, 2.0]).dtype == np.float32
        assert tg.Tensor([[1, 2.5], [3, 4]]).dtype == np.float32

    def test_legacy_constructor_as_pytorch(self):
        # torch.Tensor: data becomes float32, ints are sizes; torch.tensor infers int64
        assert tg.Tensor([1, 2, 3]).dtype == np.float32 and tg.Tensor([True]).dtype == np.float32
        assert tg.Tensor(3).shape == (3,) and tg.Tensor(2, 3).shape == (2, 3) and tg.Tensor().shape == (0,)
        assert tg.Tensor(2, 3).dtype == np.float32 and not tg.Tensor(2, 3).array.any()
        assert tg.tensor(3).dtype == np.int64 and tg.tensor([1, 2, 3]).dtype == np.int64
        assert tg.LongTensor([1, 2]).dtype == np.int64 and tg.FloatTensor(2, 2).shape == (2, 2)
        assert tg.zeros(2, 3).size() == tg.Size([2, 3]) and tg.zeros(2, 3).size().numel() == 6
        with pytest.raises(TypeError, match="Tensor: expected one data argument or sizes"):
            tg.Tensor([1.0], True)

    def test_explicit_dtype(self):
        assert tg.Tensor([1, 2], dtype=np.float64).dtype == np.float64
        assert tg.Tensor(np.arange(3), dtype=np.float32).dtype == np.float32

    @pytest.mark.parametrize(
        "data",
        [[1, 2], np.arange(3), 5, np.array([True, False]), [True]],
        ids=["list", "ndarray", "int", "bool", "bools"],
    )
    def test_integer_and_bool_tensors_cannot_require_grad(self, data):
        with pytest.raises(TypeError, match="floating-point"):
            tg.tensor(data, requires_grad=True)
        t = tg.tensor(data)
        with pytest.raises(TypeError, match="floating-point"):
            t.requires_grad_()

    @pytest.mark.parametrize("data", ["abc", ["a", "b"], [object()], {"a": 1}], ids=["str", "strs", "obj", "dict"])
    def test_strings_and_objects_are_rejected(self, data):
        with pytest.raises(TypeError, match="cannot hold"):
            tg.Tensor(data)

    @pytest.mark.parametrize("arr", [np.array(["a", "b"]), np.array([object()])], ids=["str", "object"])
    def test_string_and_object_ndarrays_are_rejected(self, arr):
        with pytest.raises(TypeError):
            tg.Tensor(arr)

    def test_requires_grad_off_only_on_leaves(self):
        x = leaf([1.0, 2.0])
        y = x * 2
        with pytest.raises(ValueError, match="leaf"):
            y.requires_grad_(False)
        assert x.requires_grad_(False) is x and not x.requires_grad


class TestAttributes:
    def test_basic_attributes(self):
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        t = tg.Tensor(a, requires_grad=True)
        assert t.array is a and t.detach().numpy() is a
        assert t.grad is None and t.requires_grad and t.is_leaf
        assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and t.dtype == np.float32
        assert len(t) == 2
        assert np.asarray(t.detach()) is a
        np.testing.assert_array_equal(np.asarray(t.detach(), dtype=np.float64), a)

    def test_item(self):
        assert tg.Tensor(2.5).item() == 2.5 and isinstance(tg.Tensor(2.5).item(), float)
        assert tg.tensor([7]).item() == 7 and isinstance(tg.tensor([7]).item(), int)
        with pytest.raises(ValueError, match="one-element"):
            tg.Tensor([1.0, 2.0]).item()

    def test_len_of_scalar(self):
        with pytest.raises(TypeError):
            len(tg.Tensor(1.0))

    def test_detach_shares_data_and_drops_graph(self):
        x = leaf([1.0, 2.0])
        y = x * 3
        d = y.detach()
        assert d.array is y.array
        assert not d.requires_grad and d.is_leaf and d.grad_fn is None

    def test_repr(self):
        x = tg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        assert repr(x).startswith("tensor([[1., 2.],")
        assert "requires_grad=True" in repr(x)
        assert "grad_fn=<MulBackward>" in repr(x * x)
        assert "dtype=float64" in repr(tg.Tensor(np.zeros(2)))
        assert "dtype" not in repr(tg.Tensor([1.0]))


# =========================================================================== backward basics


class TestBackward:
    def test_readme_example(self):
        x = tg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        (x * x).sum().backward()
        assert isinstance(x.grad, tg.Tensor) and not x.grad.requires_grad
        assert x.grad.dtype == np.float32
        np.testing.assert_array_equal(x.grad, [[2, 4], [6, 8]])

    def test_tensor_used_several_times_sums_gradients(self):
        x = leaf([1.0, -2.0, 3.0])
        (x * 2 + x * x + x).sum().backward()  # d/dx = 2 + 2x + 1
        np.testing.assert_allclose(x.grad, 3 + 2 * x.data)

    def test_diamond_graph(self):
        x = leaf([0.5, 1.5])
        a = x.exp()
        b = a * 2
        c = a * a
        (b + c).sum().backward()  # 2e^x + 2e^(2x)
        np.testing.assert_allclose(x.grad, 2 * np.exp(x.data) + 2 * np.exp(2 * x.data))

    def test_gradients_accumulate_across_backward_calls(self):
        x = leaf([1.0, 2.0])
        (x * x).sum().backward()
        first = x.grad
        (x * 3).sum().backward()
        np.testing.assert_allclose(x.grad, 2 * x.data + 3)
        assert x.grad is first  # accumulated in place (+=), as PyTorch does
        x.zero_grad()
        assert x.grad is None

    def test_accumulation_never_writes_into_a_users_array(self):
        seed = np.array([1.0, 1.0])
        x = leaf([1.0, 2.0])
        x.backward(seed)  # the seed would be x's gradient as is: it must be copied
        (x * 2).sum().backward()
        np.testing.assert_array_equal(seed, [1.0, 1.0])
        np.testing.assert_array_equal(x.grad, [3.0, 3.0])

    @pytest.mark.parametrize(
        "sa, sb",
        [((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()), ((4,), (2, 4)), ((2, 1, 3), (5, 1)), ((1,), (3, 1))],
    )
    @pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
    def test_broadcast_gradients_summed_back(self, sa, sb, op):
        rng = np.random.default_rng(0)
        a = leaf(rng.uniform(1, 2, sa))
        b = leaf(rng.uniform(1, 2, sb))
        out = getattr(F, op)(a, b)
        weights = rng.standard_normal(out.shape)
        (out * tg.Tensor(weights)).sum().backward()
        assert a.grad.shape == sa and b.grad.shape == sb
        A, B = np.broadcast_arrays(a.data, b.data)
        da, db = {"add": (1, 1), "sub": (1, -1), "mul": (B, A), "div": (1 / B, -A / B**2)}[op]

        def reduce_to(g, shape):
            g = np.broadcast_to(g, out.shape) * weights
            g = g.sum(axis=tuple(range(g.ndim - len(shape))))
            return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)

        np.testing.assert_allclose(a.grad, reduce_to(da, sa), rtol=1e-12)
        np.testing.assert_allclose(b.grad, reduce_to(db, sb), rtol=1e-12)

    @pytest.mark.parametrize(
        "f",
        [
            lambda x: x + 2.5,
            lambda x: 2.5 + x,
            lambda x: x - 1.0,
            lambda x: 1.0 - x,
            lambda x: x * 3.0,
            lambda x: 3.0 * x,
            lambda x: x / 2.0,
            lambda x: 2.0 / x,
            lambda x: x + 1,
            lambda x: 2 * x,
            lambda x: x**2,
            lambda x: x * np.float64(2.0),
            lambda x: -x,
        ],
    )
    def test_python_scalars_keep_float32(self, f):
        x = tg.Tensor([1.0, 2.0], requires_grad=True)
        y = f(x)
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32

    def test_retain_graph_allows_second_backward_and_doubles_grad(self):
        x = leaf([0.3, -0.7])
        loss = (x.exp() * x).sum()
        loss.backward(retain_graph=True)
        once = x.grad.array.copy()
        loss.backward()
        np.testing.assert_allclose(x.grad, 2 * once)

    def test_second_backward_without_retain_graph_raises(self):
        x = leaf([0.3, -0.7])
        loss = (x.exp() * x).sum()
        loss.backward()
        with pytest.raises(tg.GraphFreedError, match=r"Sum.*retain_graph=True"):
            loss.backward()

    def test_graph_freed_error_names_the_op_with_saved_values(self):
        x = leaf([0.3, -0.7])
        y = x.exp()
        y.sum().backward()
        with pytest.raises(tg.GraphFreedError, match="^Exp"):
            (y * 1.0).sum().backward()  # runs into the freed Exp node
        assert isinstance(tg.GraphFreedError("x"), RuntimeError)

    def test_non_scalar_backward_needs_a_gradient(self):
        x = leaf([1.0, 2.0])
        with pytest.raises(ValueError, match="scalar"):
            (x * 2).backward()

    def test_explicit_gradient(self):
        x = leaf([1.0, 2.0, 3.0])
        (x * x).backward(np.array([1.0, 0.0, -1.0]))
        np.testing.assert_allclose(x.grad, [2.0, 0.0, -6.0])
        y = leaf([[1.0, 2.0]])
        (y * 3).backward(tg.Tensor(np.array([[2.0, 1.0]])))
        np.testing.assert_allclose(y.grad, [[6.0, 3.0]])

    @pytest.mark.parametrize("shape", [(2,), (3, 1), (1, 3), ()])
    def test_explicit_gradient_of_wrong_shape(self, shape):
        x = leaf([1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="shape"):
            (x * x).backward(np.ones(shape))

    def test_backward_on_tensor_without_grad(self):
        with pytest.raises(RuntimeError, match="does not require grad"):
            tg.Tensor([1.0, 2.0]).sum().backward()
        x = leaf([1.0])
        with tg.no_grad():
            y = (x * 2).sum()
        with pytest.raises(RuntimeError, match="does not require grad"):
            y.backward()

    def test_detach_cuts_the_graph(self):
        x = leaf([1.0, 2.0])
        y = x * x
        (y.detach() * x).sum().backward()  # only the direct path to x counts
        np.testing.assert_allclose(x.grad, y.data)

    @pytest.mark.parametrize("shape, axis", [((2, 6), 1), ((8, 3), 0), ((3, 4), 1), ((2, 2, 2), (1, 2))])
    def test_max_gradient_goes_to_first_maximum(self, shape, axis):
        # small windows take Max's running-maximum path, larger ones its argmax path
        x = leaf(np.zeros(shape))
        (x.max(axis).values if isinstance(axis, int) else tg.primitives.Max.apply(x, axis, False)).sum().backward()
        first = np.zeros(shape)
        index = [slice(None)] * len(shape)
        for a in (axis,) if isinstance(axis, int) else axis:
            index[a] = 0
        first[tuple(index)] = 1
        np.testing.assert_array_equal(x.grad, first)

    @pytest.mark.parametrize("shape", [(3,), (2, 3)])
    @pytest.mark.parametrize("op", ["max", "min"])
    def test_max_over_all_axes_backward(self, shape, op):
        x = leaf(np.arange(float(np.prod(shape))).reshape(shape))
        getattr(x, op)().backward()
        want = np.zeros(shape)
        want.flat[-1 if op == "max" else 0] = 1
        np.testing.assert_array_equal(x.grad, want)

    def test_comparisons_return_bool_without_grad(self):
        x = leaf([1.0, 2.0, 3.0])
        for r in (x > 2, x >= 2, x < 2, x <= 2, x == 2, x != 2, x > leaf([0.0, 5.0, 3.0])):
            assert r.dtype == np.bool_ and not r.requires_grad and r.is_leaf
        np.testing.assert_array_equal((x > 1.5).data, [False, True, True])

    def test_integer_label_tensors(self):
        labels = tg.tensor([0, 2, 1])
        assert labels.dtype == np.int64 and not labels.requires_grad
        logits = leaf(np.random.default_rng(1).standard_normal((3, 4)), np.float32)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        assert logits.grad.dtype == np.float32 and labels.grad is None
        np.testing.assert_allclose(logits.grad.sum(axis=1), 0, atol=1e-6)
        picked = logits[labels.data, labels.data]
        picked.sum().backward()  # integer tensors as indices


class TestDeepGraphs:
    def test_chain_of_10000_ops(self):
        w = tg.Tensor(np.array(1.0), requires_grad=True)
        h = w
        for _ in range(10_000):
            h = h * 1.0001
        assert sys.getrecursionlimit() < 10_000 * 2
        h.backward()
        np.testing.assert_allclose(w.grad, 1.0001**10_000, rtol=1e-9)

    def test_chain_of_10000_diamonds(self):
        w = tg.Tensor(np.array(2.0), requires_grad=True)
        h = w
        for _ in range(10_000):
            h = h * 0.25 + h * 0.75  # two branches that meet again, every step
        h = h + w
        h.backward()
        np.testing.assert_allclose(w.grad, 2.0, rtol=1e-9)
        np.testing.assert_allclose(h.data, 4.0, rtol=1e-9)


# =========================================================================== grad modes


class TestGradMode:
    def test_no_grad_context(self):
        x = leaf([1.0])
        assert tg.is_grad_enabled()
        with tg.no_grad():
            assert not tg.is_grad_enabled()
            y = x * 2
        assert tg.is_grad_enabled()
        assert not y.requires_grad and y.grad_fn is None

    def test_no_grad_decorator(self):
        @tg.no_grad()
        def f(t):
            assert not tg.is_grad_enabled()
            return t * 2

        x = leaf([1.0])
        assert not f(x).requires_grad
        assert not f(x).requires_grad  # reusable
        assert tg.is_grad_enabled()

    def test_nested_enable_grad(self):
        x = leaf([1.0])
        with tg.no_grad():
            with tg.enable_grad():
                assert tg.is_grad_enabled()
                y = x * 2
            z = x * 2
            with tg.no_grad():
                assert not tg.is_grad_enabled()
            assert not tg.is_grad_enabled()
        assert y.requires_grad and not z.requires_grad

    def test_set_grad_enabled_and_exception_restores(self):
        with tg.set_grad_enabled(False):
            assert not tg.is_grad_enabled()
        with pytest.raises(KeyError):
            with tg.no_grad():
                raise KeyError
        assert tg.is_grad_enabled()


# =========================================================================== memory


class TestMemory:
    def test_saved_values_dropped_after_backward(self):
        x = leaf([0.1, 0.2])
        e = x.exp()
        m = e * x
        loss = m.sum()
        assert e.grad_fn.saved != () and m.grad_fn.saved != ()
        loss.backward()
        assert e.grad_fn.saved == () and m.grad_fn.saved == ()
        assert e.grad_fn.freed and m.grad_fn.freed

    def test_retain_graph_keeps_saved_values(self):
        x = leaf([0.1, 0.2])
        e = x.exp()
        e.sum().backward(retain_graph=True)
        assert e.grad_fn.saved != ()

    def test_context_attributes_released_after_backward(self):
        x = leaf(np.arange(12.0).reshape(3, 4))
        m = x.max(axis=1).values
        stored = [v for v in m.grad_fn.values[2] if isinstance(v, np.ndarray)]
        assert stored  # Max.forward keeps the positions of the maxima in ctx.values
        refs = [weakref.ref(v) for v in stored]
        del stored
        m.sum().backward()
        assert m.grad_fn.values == ()
        gc.collect()
        assert all(r() is None for r in refs)
        assert m.requires_grad  # the graph is still alive, only what it saved is gone

    def test_array_saved_by_exp_is_collected(self):
        x = leaf(np.random.default_rng(0).standard_normal(1000))
        y = x.exp()
        ref = weakref.ref(y.array)
        loss = (y * 2.0).sum()
        del y
        assert ref() is not None  # kept alive by the graph
        loss.backward()
        assert loss.grad_fn.inputs[0].grad_fn.inputs[0].grad_fn.saved == ()  # the Exp node
        del loss
        assert ref() is None  # plain reference counting suffices: no cycles through the tape
        gc.collect()
        assert ref() is None

    def test_a_loss_kept_after_backward_keeps_no_activation(self):
        """history.append(loss) is common: the kept graph must not hold the forward's arrays (PyTorch's
        kept grad_fn holds none either), only its structure."""
        from tinygrad_cnn import nn

        tg.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
        x = tg.Tensor(np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32))
        hidden = model[1](model[0](x))
        activation, batch = weakref.ref(hidden.array), weakref.ref(x.array)
        loss = F.cross_entropy(model[3](model[2](hidden)), np.array([0, 1, 2, 0, 1]))
        del hidden, x
        assert activation() is not None and batch() is not None  # the graph needs them until backward
        loss.backward()
        gc.collect()
        assert activation() is None and batch() is None
        nodes, stack = [], [loss]
        while stack:  # the structure is still there, for the tape viewer and for a second backward's error
            t = stack.pop()
            if t._ctx is not None:
                nodes.append(t._ctx.fn.__name__)
                stack.extend(u for u in t._ctx.inputs if isinstance(u, tg.Tensor))
        assert len(nodes) >= 4
        with pytest.raises(tg.GraphFreedError):
            loss.backward()

    def test_no_grad_builds_nothing(self):
        x = leaf([1.0, 2.0])
        with tg.no_grad():
            y = x.exp().sum()
        assert y.grad_fn is None


# =========================================================================== tg.grad and higher order


class TestGradFunction:
    def test_returns_tensors_and_leaves_grad_alone(self):
        x = leaf([1.0, 2.0])
        w = leaf([3.0, -1.0])
        out = (x * w).sum()
        gx, gw = tg.grad(out, [x, w])
        assert isinstance(gx, tg.Tensor) and isinstance(gw, tg.Tensor)
        np.testing.assert_allclose(gx.data, w.data)
        np.testing.assert_allclose(gw.data, x.data)
        assert x.grad is None and w.grad is None
        assert not gx.requires_grad

    def test_single_input(self):
        x = leaf([1.0, 2.0])
        (g,) = tg.grad((x * x).sum(), x)
        np.testing.assert_allclose(g.data, 2 * x.data)

    def test_frees_graph_by_default(self):
        x = leaf([1.0, 2.0])
        out = (x.exp()).sum()
        tg.grad(out, x)
        with pytest.raises(tg.GraphFreedError):
            tg.grad(out, x)
        out = (x.exp()).sum()
        tg.grad(out, x, retain_graph=True)
        tg.grad(out, x)

    def test_allow_unused(self):
        x, u = leaf([1.0, 2.0]), leaf([5.0])
        out = (x * x).sum()
        with pytest.raises(ValueError, match="allow_unused"):
            tg.grad(out, [x, u], retain_graph=True)
        gx, gu = tg.grad(out, [x, u], allow_unused=True)
        np.testing.assert_allclose(gx.data, [2.0, 4.0])
        np.testing.assert_array_equal(gu.data, [0.0])

    def test_input_must_require_grad(self):
        x = leaf([1.0])
        with pytest.raises(ValueError, match="input 1"):
            tg.grad((x * 2).sum(), [x, tg.Tensor([1.0])])

    def test_gradient_with_respect_to_intermediate(self):
        x = leaf([1.0, 2.0])
        h = x * 3
        gh, gx = tg.grad((h * h).sum(), [h, x])
        np.testing.assert_allclose(gh.data, 2 * h.data)
        np.testing.assert_allclose(gx.data, 18 * x.data)

    @pytest.mark.parametrize(
        "f, d2",
        [
            (lambda x: x**3, lambda x: 6 * x),
            (lambda x: x.tanh(), lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
            (lambda x: x.exp(), np.exp),
            (lambda x: x.sigmoid(), lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s)),
            (lambda x: x.log(), lambda x: -1 / x**2),
            (lambda x: x * x.exp(), lambda x: (x + 2) * np.exp(x)),
            (lambda x: 1 / x, lambda x: 2 / x**3),
        ],
        ids=["cube", "tanh", "exp", "sigmoid", "log", "xexp", "recip"],
    )
    def test_second_derivatives(self, f, d2):
        x = leaf([0.5, 1.3, 2.0])
        (g,) = tg.grad(f(x).sum(), x, create_graph=True)
        assert g.requires_grad
        (h,) = tg.grad(g.sum(), x)
        np.testing.assert_allclose(h.data, d2(x.data), rtol=1e-10)

    @pytest.mark.parametrize("name", ["exp", "tanh"])
    def test_second_derivative_of_0d_tensor(self, name):
        x = tg.Tensor(np.array(0.3), requires_grad=True)
        (g,) = tg.grad(getattr(x, name)(), x, create_graph=True)
        assert g.requires_grad
        (h,) = tg.grad(g, x)
        want = np.exp(0.3) if name == "exp" else -2 * np.tanh(0.3) * (1 - np.tanh(0.3) ** 2)
        np.testing.assert_allclose(h.data, want)

    def test_third_derivative(self):
        x = leaf([0.7, -1.1])
        (g1,) = tg.grad((x**4).sum(), x, create_graph=True)
        (g2,) = tg.grad(g1.sum(), x, create_graph=True)
        (g3,) = tg.grad(g2.sum(), x)
        np.testing.assert_allclose(g3.data, 24 * x.data)

    def test_backward_through_create_graph_gradient(self):
        x = leaf([0.5, 2.0])
        (g,) = tg.grad((x**3).sum(), x, create_graph=True)
        (g * g).sum().backward()  # d/dx (3x^2)^2 = 36 x^3
        np.testing.assert_allclose(x.grad, 36 * x.data**3)

    def test_hessian_vector_product_of_mlp(self):
        rng = np.random.default_rng(3)
        X = tg.Tensor(rng.standard_normal((6, 3)))
        labels = rng.integers(0, 2, size=6)
        shapes = [(5, 3), (5,), (2, 5), (2,)]
        params = [leaf(rng.standard_normal(s) * 0.7) for s in shapes]
        vs = [rng.standard_normal(s) for s in shapes]

        def loss_fn(w1, b1, w2, b2):
            return F.cross_entropy(F.linear(F.linear(X, w1, b1).tanh(), w2, b2), labels)

        grads = tg.grad(loss_fn(*params), params, create_graph=True)
        dot = sum((g * tg.Tensor(v)).sum() for g, v in zip(grads, vs, strict=True))
        hvp = tg.grad(dot, params)

        eps = 1e-5

        def grad_at(sign):
            ps = [leaf(p.data + sign * eps * v) for p, v in zip(params, vs, strict=True)]
            return [g.data for g in tg.grad(loss_fn(*ps), ps)]

        fd = [(a - b) / (2 * eps) for a, b in zip(grad_at(1), grad_at(-1), strict=True)]
        for got, want in zip(hvp, fd, strict=True):
            np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-8)
        assert max(np.abs(w).max() for w in fd) > 1e-2  # the check is not vacuous

    @pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
    def test_grad_of_grad_of_conv2d_wrt_weight(self, stride, padding, dilation):
        rng = np.random.default_rng(4)
        X = tg.Tensor(rng.standard_normal((2, 2, 6, 6)))
        W = leaf(rng.standard_normal((3, 2, 3, 3)) * 0.5)
        b = leaf(rng.standard_normal(3))
        R = tg.Tensor(rng.standard_normal(F.conv2d(X, W, b, stride, padding, dilation).shape))
        V = rng.standard_normal(W.shape)

        def grad_w(w, create_graph=False):
            out = F.conv2d(X, w, b, stride, padding, dilation)
            return tg.grad((out.tanh() * R).sum(), w, create_graph=create_graph)[0]

        gw = grad_w(W, create_graph=True)
        (hvp,) = tg.grad((gw * tg.Tensor(V)).sum(), W)
        eps = 1e-5
        fd = (grad_w(leaf(W.data + eps * V)).data - grad_w(leaf(W.data - eps * V)).data) / (2 * eps)
        np.testing.assert_allclose(hvp.data, fd, rtol=1e-5, atol=1e-8)
        assert np.abs(fd).max() > 1e-2


# =========================================================================== custom Functions


class Cube(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x * x


class ScaledProduct(tg.Function):
    """y = scale * a * b, with a non-tensor argument and needs_input_grad checks."""

    seen_needs: list = []

    @staticmethod
    def forward(ctx, a, b, scale):
        ctx.save_for_backward(a, b)
        ctx.scale = scale
        return scale * a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ScaledProduct.seen_needs.append(ctx.needs_input_grad)
        ga = grad * b * ctx.scale if ctx.needs_input_grad[0] else None
        gb = grad * a * ctx.scale if ctx.needs_input_grad[1] else None
        return ga, gb, None


class WrongShape(tg.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad.sum()


class NaNGrad(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return np.full(ctx.shape, np.nan)


class PlainCube(autograd.Primitive):
    """Cube as a Primitive with a plain path, as some of the library's hot rules have:
    ``backward_arrays``, NumPy on ctx.saved_arrays, which the engine calls when nothing is recorded."""

    calls: list[str] = []

    @staticmethod
    def forward(ctx, x):  # x: an ndarray
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        PlainCube.calls.append("tensor")
        return Cube.backward(ctx, grad)

    @staticmethod
    def backward_arrays(ctx, grad):
        PlainCube.calls.append("plain")
        (x,) = ctx.saved_arrays
        return grad * 3 * x * x


class TestCustomFunction:
    def test_plain_and_differentiable_backward_paths_agree(self):
        PlainCube.calls.clear()
        x = leaf([1.0, -2.0, 0.5])
        assert gradcheck(PlainCube.apply, x) and gradgradcheck(PlainCube.apply, x)
        assert {"plain", "tensor"} <= set(PlainCube.calls)
        PlainCube.calls.clear()
        y = PlainCube.apply(x)
        y.sum().backward()
        assert PlainCube.calls == ["plain"]
        np.testing.assert_allclose(x.grad, 3 * x.data**2)
        with pytest.raises(tg.GraphFreedError, match="^PlainCube"):
            _ = y.grad_fn.saved_arrays

    def test_cube_in_a_graph(self):
        x = leaf([1.0, -2.0, 0.5])
        y = Cube.apply(x * 2)
        assert y.grad_fn.fn is Cube
        (y.sum() + x.sum()).backward()
        np.testing.assert_allclose(x.grad, 24 * x.data**2 + 1)

    def test_cube_second_order(self):
        x = leaf([1.0, -2.0, 0.5])
        (g,) = tg.grad(Cube.apply(x).sum(), x, create_graph=True)
        np.testing.assert_allclose(g.data, 3 * x.data**2)
        (h,) = tg.grad(g.sum(), x)
        np.testing.assert_allclose(h.data, 6 * x.data)

    def test_needs_input_grad_and_non_tensor_args(self):
        ScaledProduct.seen_needs.clear()
        a = leaf([1.0, 2.0])
        b = tg.Tensor(np.array([3.0, 4.0]))
        ScaledProduct.apply(a, b, 0.5).sum().backward()
        np.testing.assert_allclose(a.grad, 0.5 * b.data)
        assert ScaledProduct.seen_needs == [(True, False, False)]
        assert b.grad is None

    def test_unrecorded_when_no_input_requires_grad(self):
        y = Cube.apply(tg.Tensor(np.array([2.0])))
        assert not y.requires_grad and y.grad_fn is None
        np.testing.assert_allclose(y.data, [8.0])

    def test_wrong_gradient_shape_names_the_rule(self):
        x = leaf([1.0, 2.0])
        with pytest.raises(RuntimeError, match=r"WrongShape\.backward.*shape \(\)"):
            WrongShape.apply(x).sum().backward()


# =========================================================================== dtypes


def test_float32_conv_net_has_no_float64_upcasts():
    rng = np.random.default_rng(5)

    def p(*shape):
        return tg.Tensor((rng.standard_normal(shape) * 0.3).astype(np.float32), requires_grad=True)

    x = tg.Tensor(rng.standard_normal((3, 1, 12, 12)).astype(np.float32))
    labels = tg.tensor(np.array([1, 0, 3]))
    params = [p(4, 1, 3, 3), p(4), p(6, 4, 3, 3), p(6), p(5, 6 * 2 * 2), p(5)]
    w1, b1, w2, b2, w3, b3 = params
    h = F.max_pool2d(F.conv2d(x, w1, b1, padding=1).relu(), 2)
    h = F.avg_pool2d(F.conv2d(h, w2, b2, stride=1).sigmoid(), 2)
    logits = F.linear(h.flatten(1), w3, b3)
    loss = (
        F.cross_entropy(logits, labels)
        + 0.01 * sum((q * q).sum() for q in params)
        + F.mse_loss(logits.softmax(), np.zeros((3, 5), dtype=np.float32))
    )
    assert loss.dtype == np.float32
    for t in walk(loss):
        assert t.dtype in (np.float32, np.bool_, np.int64), (t.dtype, t.grad_fn and t.grad_fn.fn.__name__)
    loss.backward()
    for q in params:
        assert q.grad.dtype == np.float32 and q.grad.shape == q.shape
    assert all(np.isfinite(q.grad).all() for q in params)


# =========================================================================== anomaly detection


class TestAnomaly:
    def test_log_of_zero_forward(self):
        p = tg.Tensor(np.array([0.5, 0.0, 1.0]), requires_grad=True)
        with pytest.raises(tg.AnomalyError) as info:
            with tg.detect_anomaly():
                loss = tg.functional.log(p).sum()  # noqa: F841
        msg = str(info.value)
        assert msg.startswith("Log:") and "Inf" in msg
        assert THIS_FILE in msg
        assert "loss = tg.functional.log(p).sum()" in msg
        assert isinstance(info.value, RuntimeError) and isinstance(
            info.value, FloatingPointError
        )  # PyTorch: RuntimeError

    def test_without_anomaly_mode_inf_passes_silently(self):
        p = tg.Tensor(np.array([0.5, 0.0]), requires_grad=True)
        loss = tg.functional.log(p).sum()
        assert loss.item() == -np.inf

    def test_mode_is_restored(self):
        from tinygrad_cnn import autograd

        with pytest.raises(tg.AnomalyError):
            with tg.detect_anomaly():
                tg.Tensor(np.array([0.0]), requires_grad=True).log()
        assert not autograd.is_anomaly_enabled()

    def test_nan_only_in_backward_sqrt_at_zero(self):
        x = tg.Tensor(np.array([4.0, 0.0]), requires_grad=True)
        with tg.detect_anomaly():
            y = x.sqrt()
            assert np.isfinite(y.data).all()
            loss = y.sum()
            with np.errstate(divide="ignore"), pytest.raises(tg.AnomalyError) as info:
                loss.backward()
        msg = str(info.value)
        assert msg.startswith("Pow.backward:") and "Inf" in msg  # sqrt is Pow(x, 0.5); 0 ** -0.5 = inf
        assert THIS_FILE in msg

    def test_nan_gradient_from_a_backward_rule(self):
        x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
        with tg.detect_anomaly():
            loss = NaNGrad.apply(x).sum()
            with pytest.raises(tg.AnomalyError) as info:
                loss.backward()
        msg = str(info.value)
        assert msg.startswith("NaNGrad:") and "NaN" in msg and "gradient for input 0" in msg
        assert THIS_FILE in msg

    def test_nan_gradient_site_with_retain_graph(self):
        x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
        with tg.detect_anomaly():
            loss = NaNGrad.apply(x).sum()
            with pytest.raises(tg.AnomalyError) as info:
                loss.backward(retain_graph=True)
        assert "loss = NaNGrad.apply(x).sum()" in str(info.value)

    def test_nan_gradient_names_recording_site(self):
        x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
        with tg.detect_anomaly():
            loss = NaNGrad.apply(x).sum()
            with pytest.raises(tg.AnomalyError) as info:
                loss.backward()
        assert "loss = NaNGrad.apply(x).sum()" in str(info.value)


def test_post_accumulate_grad_hooks_run_once_per_backward_after_the_sweep():
    w = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = tg.Tensor(np.array([0.5]), requires_grad=True)
    unused = tg.Tensor(np.array([3.0]), requires_grad=True)
    calls = []
    for t, name in ((w, "w"), (b, "b"), (unused, "unused")):
        t.register_post_accumulate_grad_hook(lambda t, name=name: calls.append((name, np.array(t.grad))))
    ((w * w).sum() + (w * b).sum()).backward()  # w reached twice: its hook runs once, with the total
    assert [c[0] for c in calls] == ["w", "b"] or [c[0] for c in calls] == ["b", "w"]
    np.testing.assert_allclose(dict(calls)["w"], 2 * w.data + b.data)
    calls.clear()
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(("again", None)))
    tg.grad((w * b).sum(), [w, b])  # grad() leaves .grad alone: no hook
    assert calls == []
    (w * b).sum().backward()
    assert sorted(c[0] for c in calls) == ["again", "b", "w"]
    handle.remove()
    calls.clear()
    (w * b).sum().backward()
    assert sorted(c[0] for c in calls) == ["b", "w"]
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)


# =========================================================================== engine hooks and call sites


class Recorder(tg.autograd.BackwardHook):
    def __init__(self):
        self.events = []

    def node_reached(self, node, grad):
        self.events.append(("reached", node.grad_fn.fn.__name__, None if grad is None else grad.shape))

    def rule_returned(self, node, input_grads):
        self.events.append(("returned", node.grad_fn.fn.__name__, [g is not None for g in input_grads]))

    def node_done(self, node):
        self.events.append(("done", node.grad_fn.fn.__name__, node.grad_fn.freed))


class TestHooks:
    def test_a_hook_sees_every_node_in_sweep_order_until_removed(self):
        x, c = leaf([1.0, 2.0]), tg.Tensor(np.array([3.0, 4.0]))
        loss = (x * c).sum()
        hook = Recorder()
        autograd.add_backward_hook(hook)
        try:
            assert autograd.backward_hooks() == (hook,)
            loss.backward()
        finally:
            autograd.remove_backward_hook(hook)
        assert hook.events == [
            ("reached", "Sum", ()),
            ("returned", "Sum", [True, False, False]),  # one per input of apply: x, axis, keepdims
            ("done", "Sum", False),  # user hooks run before the node is freed
            ("reached", "Mul", (2,)),
            ("returned", "Mul", [True, False]),  # c needs no gradient
            ("done", "Mul", False),
        ]
        assert loss.grad_fn.freed and autograd.backward_hooks() == ()
        (x * c).sum().backward()
        assert len(hook.events) == 6  # removed: not called again

    def test_a_hook_that_overrides_one_method_or_sets_one_on_the_instance_is_called(self):
        # the sweep calls each hook only at the points it does something: that must include a
        # subclass overriding one method and a method set on an instance
        class OnlyDone(tg.autograd.BackwardHook):
            def __init__(self):
                self.done = []

            def node_done(self, node):
                self.done.append(node.grad_fn.fn.__name__)

        only_done, on_instance, reached = OnlyDone(), tg.autograd.BackwardHook(), []
        on_instance.node_reached = lambda node, grad: reached.append(node.grad_fn.fn.__name__)
        x = leaf([1.0, 2.0])
        loss = (x * 3.0).sum()
        for hook in (only_done, on_instance):
            autograd.add_backward_hook(hook)
        try:
            loss.backward()
        finally:
            for hook in (only_done, on_instance):
                autograd.remove_backward_hook(hook)
        assert only_done.done == reached == ["Sum", "Mul"]

    def test_a_node_no_gradient_reaches_is_reported_and_freed(self):
        class Blocks(tg.Function):  # passes no gradient back
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, grad):
                return None

        x = leaf([1.0, 2.0])
        doubled = x * 2.0
        loss = Blocks.apply(doubled).sum()
        hook = Recorder()
        autograd.add_backward_hook(hook)
        try:
            loss.backward()
        finally:
            autograd.remove_backward_hook(hook)
        assert hook.events[-2:] == [("reached", "Mul", None), ("done", "Mul", False)]
        assert doubled.grad_fn.freed and x.grad is None

    def test_torch_style_backward_of_several_tensors(self):
        x = leaf([1.0, 2.0])
        y1, y2 = (x * x).sum(), x * 3.0
        autograd.backward([y1, y2], [None, np.array([1.0, 10.0])])
        np.testing.assert_allclose(x.grad, 2 * x.data + [3.0, 30.0])
        with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
            autograd.backward(tg.Tensor(1.0))


class TestCallSites:
    def test_a_node_knows_the_users_line_and_the_library_calls(self):
        x = tg.Tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
        w = tg.Tensor(np.ones((1, 1, 3, 3)))
        line = sys._getframe().f_lineno + 1
        y = tg.functional.conv2d(x, w)
        site = y.grad_fn.site
        assert (os.path.basename(site.filename), site.lineno) == (THIS_FILE, line)
        assert site.function == "test_a_node_knows_the_users_line_and_the_library_calls"
        assert site.calls[0] == "conv2d" and "y = tg.functional.conv2d(x, w)" in str(site)
        assert (x * 2.0).grad_fn.site.calls == ("mul",)

    def test_a_module_is_named_by_its_class(self):
        model = tg.nn.Sequential(tg.nn.Linear(3, 2), tg.nn.ReLU())
        y = model(tg.Tensor(np.ones((1, 3), dtype=np.float32)))
        assert y.grad_fn.site.calls[:2] == ("Sequential", "ReLU")

    def test_the_site_is_read_while_the_call_runs_and_made_once(self):
        # What a node records of the frames is made a CallSite only when asked for, after the
        # frames are gone: it must still name the user's line, function and calls.
        def layer(t):
            return tg.functional.relu(t)

        x = tg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
        line = sys._getframe().f_lineno - 3
        y = layer(x)
        del layer
        site = y.grad_fn.site
        assert (os.path.basename(site.filename), site.lineno, site.function) == (THIS_FILE, line, "layer")
        assert site.calls == ("relu",) and y.grad_fn.site is site
        assert "return tg.functional.relu(t)" in str(site)
