"""Every Python code block in README.md and docs/*.md runs, so the docs never rot.

A page's blocks run as one file, as a user would paste them, in a temporary working directory
(some write files); a block whose first line is a comment naming a ``.py`` file is written to that
file instead, and the test files among those run under pytest as copied. A block followed by ``<!-- output -->`` and a
```` ```text ```` block must print exactly that text. The images the docs show must exist and be
made by docs/make_images.py, relative links must resolve, and docs/ops.md must cover every op.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import functional as F

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```\n(?:\s*<!-- output -->\n```text\n(.*?)^```)?", re.S | re.M)
# (an output block right after a Python block holds exactly what that block prints)
# Pages other engineers are writing; links to them are checked once they exist.
PENDING = {"docs/performance.md", "docs/seeds.md", "docs/troubleshooting.md"}


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


FILE_BLOCK = re.compile(r"# ([\w.-]+\.py)\n")  # a block whose first line names a file: a file to write


# A failing example that Hypothesis found and shrank: which one differs between Hypothesis versions
# (its shrinker changes), so a shown gradcheck report is compared with its example values blanked.
SHRUNK_VALUES = [
    (re.compile(r"e\.g\. \S+ at (\w+) = \S+;"), r"e.g. ... at \1 = ...;"),
    (re.compile(r"Failing input \(shrunk\): .*", re.S), "Failing input (shrunk): ..."),
]


def _without_shrunk_values(text: str) -> str:
    if "Failing input (shrunk)" not in text:
        return text
    for pattern, blank in SHRUNK_VALUES:
        text = pattern.sub(blank, text)
    return text


@pytest.mark.parametrize("path", DOCS, ids=doc_id)
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's blocks run as ONE file, as a user pastes them; blocks naming a file are written
    to disk first, and the test files among them run under pytest as copied."""
    blocks = [(m.group(1), m.group(2)) for m in BLOCK.finditer(path.read_text())]
    if not blocks:
        pytest.skip(f"{doc_id(path)} has no Python blocks")
    monkeypatch.chdir(tmp_path)
    files = {m.group(1): block for block, _ in blocks if (m := FILE_BLOCK.match(block))}
    for name, block in files.items():
        (tmp_path / name).write_text(block)
    script = [(block, expected) for block, expected in blocks if not FILE_BLOCK.match(block)]
    # One file (compiled whole, so it must be valid as one), run block by block to tell each
    # block's output apart, with the file's name and line numbers.
    filename = f"{path.stem}.py"
    whole = "".join(block for block, _ in script)
    compile(whole, filename, "exec")
    (tmp_path / filename).write_text(whole)  # tracebacks and anomaly reports quote its lines
    namespace: dict = {"__name__": "__main__"}
    line = 0
    for k, (block, expected) in enumerate(script):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile("\n" * line + block, filename, "exec"), namespace)
        line += block.count("\n")
        if expected is not None:
            got, want = _without_shrunk_values(out.getvalue()), _without_shrunk_values(expected)
            assert got == want, f"{doc_id(path)} block {k + 1} prints other text than the doc shows"
    tests = [name for name in files if name.startswith("test_")]
    if tests:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, f"{doc_id(path)}: its test files fail under pytest:\n{proc.stdout}{proc.stderr}"


def _links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # not inside code blocks
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", DOCS, ids=doc_id)
def test_relative_links_resolve(path: Path) -> None:
    for link in _links(path):
        if re.match(r"[a-z]+:", link) or link.startswith("#"):
            continue
        target = (path.parent / link.split("#")[0]).resolve()
        rel = target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else str(target)
        if rel in PENDING and not target.exists():
            continue
        assert target.exists(), f"{doc_id(path)} links to {link}, which does not exist"


def test_images_exist_are_small_and_generated_by_the_script() -> None:
    spec = importlib.util.spec_from_file_location("make_images", ROOT / "docs" / "make_images.py")
    make_images = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_images)
    shown = {link.split("/")[-1] for path in DOCS for link in _links(path) if link.endswith((".png", ".svg"))}
    assert shown, "the docs show no images"
    assert shown <= set(make_images.IMAGES), f"not made by docs/make_images.py: {shown - set(make_images.IMAGES)}"
    for name in make_images.IMAGES:
        image = ROOT / "docs" / "images" / name
        assert image.exists(), f"{image} is missing: run docs/make_images.py"
        assert image.stat().st_size < 200 * 1024, f"{image} is over 200 KiB"


def test_ops_reference_covers_every_op_and_tensor_method() -> None:
    text = (ROOT / "docs" / "ops.md").read_text()
    code = " ".join(re.findall(r"`([^`]+)`", text))
    words = set(re.findall(r"[A-Za-z_]\w*", code))
    ops = {
        name
        for name, fn in vars(F).items()
        if inspect.isfunction(fn) and fn.__module__ == F.__name__ and not name.startswith("_")
    }
    methods = {name for name in dir(tg.Tensor) if not name.startswith("_")}
    assert not ops - words, f"docs/ops.md does not mention these functional ops: {sorted(ops - words)}"
    assert not methods - words, f"docs/ops.md does not mention these Tensor methods: {sorted(methods - words)}"


def test_every_primitive_has_a_row_in_the_table_and_the_count_is_right() -> None:
    """docs/ops.md's table of primitives and docs/autograd.md's count follow primitives.py."""
    primitives = {
        name
        for name, cls in vars(tg.primitives).items()
        if isinstance(cls, type) and issubclass(cls, tg.autograd.Primitive) and cls.__module__ == tg.primitives.__name__
    }
    rows = set(re.findall(r"^\| `(\w+)` \|", (ROOT / "docs" / "ops.md").read_text(), re.M))
    assert primitives <= rows, f"docs/ops.md has no row for these primitives: {sorted(primitives - rows)}"
    stated = re.search(r"exactly\s+(\d+) of them", (ROOT / "docs" / "autograd.md").read_text())
    assert stated and int(stated[1]) == len(primitives), f"docs/autograd.md should say exactly {len(primitives)}"


def test_quickstart_is_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- quickstart -->")[1].split("<!-- /quickstart -->")[0]
    commands = [line for line in section.splitlines() if line.strip() and not line.startswith("```")]
    assert len(commands) == 2
    assert "examples/mnist_cnn.py" in commands[0]
    assert "pytest" in commands[1]
