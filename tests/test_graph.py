"""The tape viewer (tinygrad_cnn.graph): the table, execution order, shapes, bytes saved for
backward, gradient norms recorded during backward, second-order graphs, and the DOT export."""

from __future__ import annotations

import gc
import os
import re
import shutil
import sys

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import autograd, graph, nn
from tinygrad_cnn import functional as F
from tinygrad_cnn.graph import GraphvizNotFoundError, tape


def leaf(*shape, dtype=np.float64, seed=0):
    return tg.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


# --------------------------------------------------------------------------- structure and order


def test_execution_order_not_just_a_topological_order():
    x = leaf(3)
    b = x + 1.0  # recorded first, but it is the *second* input of the product below
    a = x * 2.0
    y = (a * b).sum()
    t = y.tape(names={"x": x})
    assert t.ops == ["Add", "Mul", "Mul", "Sum"]
    assert [n.name for n in t] == ["%0", "%1", "%2", "%3"]
    assert t[2].inputs == ("%1", "%0")  # a * b: a is %1, b is %0
    assert t[0].inputs == ("x", "c0") and t[1].inputs == ("x", "c1")
    assert [(lf.name, lf.requires_grad) for lf in t.leaves] == [("x", True), ("c0", False), ("c1", False)]
    assert t.roots == ["%3"]
    assert tape(y).ops == t.ops  # Tensor.tape is graph.tape


def test_table_columns_shapes_and_dtype():
    a, b = leaf(2, 3, dtype=np.float32), leaf(3, 4, dtype=np.float32, seed=1)
    y = (a @ b).relu().sum(axis=1)
    text = str(y.tape(names={"a": a, "b": b}))
    lines = text.splitlines()
    assert lines[0].split() == [
        "call",
        "at",
        "node",
        "op",
        "inputs",
        "input",
        "shapes",
        "args",
        "shape",
        "dtype",
        "saved",
        "extra",
        "|grad|",
    ]
    rows = {re.search(r"(%\d+|\b[ab])\s", line).group(1): line for line in lines[1:-1]}
    assert set(rows) == {"a", "b", "%0", "%1", "%2"}
    assert rows["%0"].split()[0] == "matmul" and rows["%1"].split()[0] == "relu" and rows["%2"].split()[0] == "sum"
    assert re.search(r"%0\s+MatMul\s+a, b\s+\(2, 3\), \(3, 4\)\s+\(2, 4\)\s+float32", rows["%0"])
    assert re.search(r"%1\s+ReLU\s+%0\s+\(2, 4\)\s+\(2, 4\)\s+float32", rows["%1"])
    assert re.search(r"%2\s+Sum\s+%1\s+\(2, 4\)\s+\(1,\), False\s+\(2,\)\s+float32", rows["%2"])
    assert rows["a"].split()[:2] == ["a", "leaf"]
    assert lines[-1].startswith("3 ops; ")
    assert repr(y.tape()) == "<Tape of 3 ops, 2 leaves, roots %2>"


def test_views_are_marked():
    x = leaf(2, 3)
    y = x.reshape(3, 2).T.sum()
    nodes = y.tape().nodes
    assert [n.op for n in nodes] == ["Reshape", "Permute", "Sum"]
    assert nodes[0].output_is_view and nodes[1].output_is_view and not nodes[2].output_is_view
    assert "(3, 2) view" in str(y.tape())


def test_leaf_root_and_multiple_roots():
    x = leaf(2)
    assert len(x.tape()) == 0 and [lf.name for lf in x.tape().leaves] == ["x0"]
    y, z = x.exp(), x.tanh()
    t = tape([z, y])
    assert t.ops == ["Exp", "Tanh"] and t.roots == ["%1", "%0"]
    with pytest.raises(TypeError, match="expected Tensors"):
        tape([y, np.ones(2)])


def test_parameter_names_from_a_module():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    loss = F.cross_entropy(model(tg.Tensor(np.ones((5, 4), np.float32))), np.array([0, 1, 0, 1, 1]))
    t = loss.tape(names=model.named_parameters())
    names = [lf.name for lf in t.leaves if lf.requires_grad]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_deep_graph_has_no_recursion_limit():
    x = leaf(1)
    y = x
    for _ in range(5000):
        y = y * 1.0
    t = y.tape()
    assert len(t) == 5000 and t[-1].inputs == ("%4998", "c4999")


# --------------------------------------------------------------------------- bytes saved for backward


class SavesCopy(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x * 2)  # a new array: costs memory beyond inputs and output
        ctx.mask = np.broadcast_to(np.ones(1), (1000,))  # a view: its base (8 bytes) is what it keeps
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_saved_bytes_and_extra_bytes():
    x = leaf(4)  # float64: 32 bytes
    m = x * x  # saves its two inputs, which are the same array: 32 bytes, none extra
    e = x.exp()  # saves its output
    s = SavesCopy.apply(x)
    t = tape([m, e, s])
    mul, exp, own = t.nodes
    assert (mul.saved_bytes, mul.extra_bytes) == (32, 0)
    assert (exp.saved_bytes, exp.extra_bytes) == (32, 0)
    assert own.saved_bytes == 32 + 8000 and own.extra_bytes == 32 + 8
    assert t.saved_bytes == 32 + 32 + 8032 and t.extra_bytes == 40

    a, b = leaf(2, 3), leaf(2, 3, seed=1)
    (mm := (a * b)).sum().backward()
    assert mm.tape().nodes[0].freed and "freed" in str(mm.tape())


# --------------------------------------------------------------------------- gradient norms


def test_gradient_norms_after_backward():
    x = tg.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    loss = (x * x).sum()
    t = loss.tape(names={"x": x})
    assert all(n.grad_norm is None for n in t) and t.leaves[0].grad_norm is None
    loss.backward()
    mul, total = t.nodes
    assert total.grad_norm == pytest.approx(1.0)
    assert mul.grad_norm == pytest.approx(2.0)  # ones((2, 2))
    assert t.leaves[0].grad_norm == pytest.approx(np.linalg.norm(2 * x.data))
    row = [line for line in str(t).splitlines() if "%0" in line.split()][0]
    assert row.split()[-1] == "2"


def test_norms_of_a_cnn_loss_are_all_recorded():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    x = tg.Tensor(np.random.default_rng(0).random((2, 1, 4, 4), dtype=np.float32), requires_grad=True)
    loss = F.cross_entropy(model(x), np.array([0, 2]))  # x requires grad: the padded convolution has its gradient
    t = loss.tape(names=model.named_parameters())
    loss.backward()
    assert {"Unfold", "Convolution", "MatMulAdd", "Max", "LogSoftmax"} <= set(t.ops)
    assert all(n.grad_norm is not None and np.isfinite(n.grad_norm) for n in t)
    assert all(lf.grad_norm is not None for lf in t.leaves if lf.requires_grad)


def test_recording_is_opt_out_and_stops_with_the_tape():
    def observing():
        return bool(autograd.backward_hooks())

    x = leaf(3)
    y = (x * x).sum()
    quiet = y.tape(record_grads=False)
    del quiet
    gc.collect()
    assert not observing()
    t = y.tape()
    assert observing()
    t.stop()
    assert not observing()
    y.backward(retain_graph=True)
    assert all(n.grad_norm is None for n in t)
    t2 = y.tape()
    assert observing()
    del t2
    gc.collect()
    assert not observing()


def test_second_order_graph():
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = (x**3).sum()
    (g,) = tg.grad(y, x, create_graph=True)  # 3 x^2, recorded by the backward rules
    t = g.tape(names={"x": x})
    assert t.ops == ["Pow", "Mul"]  # x ** 2 from Pow's backward, times the constant 3 * upstream ones
    assert t[0].inputs == ("x",) and t[0].args == (2.0,)
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.data, 6 * x.data)
    assert t[1].grad_norm == pytest.approx(np.sqrt(3))
    assert t[0].grad_norm == pytest.approx(np.linalg.norm(np.full(3, 3.0)))
    # a tape over both the forward and the gradient graph
    both = tape([y, g], names={"x": x})
    assert both.ops[0] == "Pow" and both.ops.count("Pow") == 2 and both.roots[0] != both.roots[1]


# --------------------------------------------------------------------------- Graphviz


def _cnn_tape():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 3))
    loss = F.cross_entropy(model(tg.Tensor(np.ones((2, 1, 4, 4), np.float32))), np.array([0, 2]))
    t = loss.tape(names=model.named_parameters())
    loss.backward()
    return t


def test_dot_text_is_well_formed():
    t = _cnn_tape()
    dot = t.to_dot(title='a "quoted" title')
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    declared = set(re.findall(r"^\s+(\w+) \[", dot, re.M)) - {"node", "edge"}
    edges = re.findall(r"^\s+(\w+) -> (\w+);", dot, re.M)
    assert declared == {f"op{i}" for i in range(len(t))} | {f"leaf{i}" for i in range(len(t.leaves))}
    assert edges and all(a in declared and b in declared for a, b in edges)
    assert len(edges) == sum(len(n.inputs) for n in t)
    assert 'a \\"quoted\\" title' in dot and "0.weight" in dot and "|grad|" in dot
    for label in re.findall(r'label="((?:[^"\\]|\\.)*)"', dot):
        assert "\n" not in label
    no_constants = t.to_dot(constants=False)
    assert "c0" not in no_constants and 'fillcolor="#eeeeee"' not in no_constants


def test_render_without_graphviz_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizNotFoundError, match="Graphviz' 'dot' program was not found"):
        _cnn_tape().render(tmp_path / "g.png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz' dot is not installed")
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_render_with_graphviz(tmp_path, suffix, magic):
    path = _cnn_tape().render(tmp_path / f"g{suffix}", dpi=50)
    assert path.read_bytes().startswith(magic)


# ------------------------------------------------------------------ the user's calls


def test_the_tape_names_the_users_calls_with_their_lines_and_the_primitives_under_them():
    x = tg.Tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    w = tg.Tensor(np.ones((3, 1, 3, 3), dtype=np.float32), requires_grad=True)
    line = sys._getframe().f_lineno + 1
    h = F.conv2d(x, w, padding=1)
    h = F.relu(h)
    h = F.max_pool2d(h, 2)
    loss = h.sum()
    t = loss.tape(names={"x": x, "w": w})
    here = os.path.basename(__file__)
    calls = [(g.name, g.where, [n.op for n in g.nodes]) for g in t.groups()]
    assert calls == [
        ("conv2d", f"{here}:{line}", ["Permute", "Convolution", "Permute"]),
        ("relu", f"{here}:{line + 1}", ["ReLU"]),
        ("max_pool2d", f"{here}:{line + 2}", ["Unfold", "Max", "Permute"]),
        ("sum", f"{here}:{line + 3}", ["Sum"]),
    ]
    text = str(t).splitlines()
    row = {r.split()[2] if r.split()[0] in ("conv2d", "max_pool2d", "relu", "sum") else r.split()[0]: r for r in text}
    assert row["%0"].split()[:4] == ["conv2d", f"{here}:{line}", "%0", "Permute"]
    assert row["%1"].split()[:2] == ["%1", "Convolution"]  # under conv2d: no call of its own
    assert row["%4"].split()[:4] == ["max_pool2d", f"{here}:{line + 2}", "%4", "Unfold"]
    assert row["%5"].split()[:2] == ["%5", "Max"]
    summary = t.summary().splitlines()  # collapsed: one row per call
    assert [r.split()[0] for r in summary] == ["call", "conv2d", "relu", "max_pool2d", "sum"]
    assert "Permute, Convolution, Permute" in summary[1] and f"{here}:{line}" in summary[1]
    dot = t.to_dot()
    assert f'label="conv2d  {here}:{line}"' in dot and dot.count("subgraph cluster") == 4


def test_a_models_ops_are_grouped_by_module_then_by_the_function_it_calls():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 10), nn.Linear(10, 3))
    x = tg.Tensor(np.ones((2, 1, 8, 8), dtype=np.float32))
    loss = F.cross_entropy(model(x), np.array([1, 2]))
    t = loss.tape(names=model.named_parameters())
    assert [g.name for g in t.groups()] == ["Sequential", "cross_entropy"]
    layers = [g.name for g in t.groups(depth=2)]
    assert layers == [
        "Sequential > Conv2d",
        "Sequential > ReLU",
        "Sequential > Flatten",
        "Sequential > Linear",
        "Sequential > Linear",  # two layers of one class, one after the other: two calls
        "cross_entropy > log_softmax",
        "cross_entropy",  # its NLLLoss, recorded by cross_entropy itself
    ]
    assert "Sequential > Conv2d > conv2d" in str(t)
