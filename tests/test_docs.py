"""Every Python code block in README.md and docs/*.md runs, so the docs never rot.

Blocks of one file run in order in one namespace (later blocks may use earlier names), in a
temporary working directory (some write files).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(path.read_text())
    if not blocks:
        pytest.skip(f"{path.name} has no Python blocks")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{path.name} block {i + 1}", "exec"), namespace)


def test_quickstart_is_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- quickstart -->")[1].split("<!-- /quickstart -->")[0]
    commands = [line for line in section.splitlines() if line.strip() and not line.startswith("```")]
    assert len(commands) == 2
    assert "examples/mnist_cnn.py" in commands[0]
    assert "pytest" in commands[1]
