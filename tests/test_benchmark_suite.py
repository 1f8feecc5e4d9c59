"""The speed suite's code runs (benchmarks/run.py), on tiny settings: no figure is asserted, only that
every row carries its fields and that the frameworks' losses were checked and matched before timing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def suite() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("benchmark_suite", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    torch_threads = module.torch.get_num_threads() if module.torch else None
    if module.torch:  # the code is under test, not the speed: no thread contention with other tests
        module.torch.set_num_threads(1)
    yield module
    if module.torch:
        module.torch.set_num_threads(torch_threads)
    del sys.modules[spec.name]


TINY = {"rounds": 2, "sample": 0.0, "settle": 0.0, "check_steps": 2}


def test_rows_have_ratios_and_checked_losses(suite: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    mlp = suite.WORKLOADS["mlp"]
    tiny_mlp = suite.Workload(mlp.layers, mlp.input, batch=4, inference=16)
    monkeypatch.setitem(suite.WORKLOADS, "tiny_mlp", tiny_mlp)
    rows = suite.run_suite(["lenet_b1", "tiny_mlp"], suite.Settings(**TINY), extras=("hvp",))
    by_name = {r["benchmark"]: r for r in rows}
    assert set(by_name) == {
        "lenet_b1 training (batch 1)",
        "tiny_mlp training (batch 4)",
        "tiny_mlp inference model(x) (batch 16)",
        "tiny_mlp inference predict (batch 16)",
        "lenet hessian-vector product (batch 32)",
    }
    for row in rows:
        assert "error" not in row, row
        assert row["unit"] == "img/s" and row["rounds"] == 2 and row["threads"] >= 1
        assert row["tinygrad_cnn"] > 0 and row["pytorch"] > 0
        assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    for name in ("lenet_b1 training (batch 1)", "tiny_mlp training (batch 4)"):
        check = by_name[name]["loss_check"]
        assert check["equal"] and len(check["ours"]) == len(check["pytorch"]) == 2
    assert by_name["lenet hessian-vector product (batch 32)"]["hvp_check"]["equal"]
    assert by_name["tiny_mlp inference model(x) (batch 16)"]["outputs_match"] is True


def test_a_disagreement_is_an_error_not_a_figure(suite: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    trainer = suite.trainer

    def off_by_one_in_pytorch(fw: ModuleType, *args: object) -> object:
        step = trainer(fw, *args)
        return (lambda: step() + 1.0) if fw is suite.torch else step

    monkeypatch.setattr(suite, "trainer", off_by_one_in_pytorch)
    [row] = suite.run_suite(["lenet_b1"], suite.Settings(**TINY), extras=())
    assert row["error"] == "losses disagree" and not row["loss_check"]["equal"]
    assert "tinygrad_cnn" not in row


def test_without_pytorch_only_our_figures(suite: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "torch", None)
    [row] = suite.run_suite(["lenet_b1"], suite.Settings(**TINY), extras=())
    assert row["tinygrad_cnn"] > 0 and "ratio" not in row and "pytorch" not in row["loss_check"]


def test_command_line_writes_json_and_markdown(
    suite: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    argv = ["run.py", "--quick", "--only", "lenet_b1", "--rounds", "1", "--sample", "0", "--markdown"]
    argv += ["--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    suite.main()
    result = json.loads(out.read_text())
    assert result["environment"]["numpy"] and [r["benchmark"] for r in result["rows"]] == [
        "lenet_b1 training (batch 1)"
    ]
    assert "| lenet_b1 training (batch 1) (img/s) |" in capsys.readouterr().out


def test_threads_rows_compare_each_frameworks_gain_and_restore_the_counts(
    suite: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    import tinygrad_cnn as tg

    mlp = suite.WORKLOADS["mlp"]
    monkeypatch.setitem(suite.WORKLOADS, "tiny_mlp", suite.Workload(mlp.layers, mlp.input, batch=4))
    ours_before, theirs_before = tg.get_num_threads(), torch.get_num_threads()
    (row,) = suite.bench_threads(suite.Settings(**TINY), names=("tiny_mlp",))
    cores = max(1, int(tg.threads.usable_cores().cores))
    assert row["benchmark"] == f"tiny_mlp training, {cores} threads over 1" and row["unit"] == "x"
    assert row["tinygrad_cnn"] > 0 and row["pytorch"] > 0 and row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    assert (tg.get_num_threads(), torch.get_num_threads()) == (ours_before, theirs_before)


def test_layer_benchmark_runs_every_layer_in_both_frameworks() -> None:
    """benchmarks/layers.py: each layer's forward and backward runs here (and in PyTorch when installed)."""
    script = RUN.parent / "layers.py"
    listed = subprocess.run([sys.executable, script, "--list"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in listed.splitlines()]
    assert {"identity", "leaky_relu", "batch_norm2d", "conv3x3"} <= set(names)
    small = ["identity", "leaky_relu", "sigmoid", "layer_norm", "batch_norm1d", "log_softmax"]
    out = subprocess.run(
        [sys.executable, script, *small, "--rounds", "1", "--calls", "1"], capture_output=True, text=True, check=True
    ).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert set(rows) == set(small)
    assert all(float(cells[0]) > 0 for cells in rows.values())
