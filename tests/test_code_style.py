"""House rules that a review would otherwise have to catch: lint and format, short functions,
one name per module, and layers that import only downward."""

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "genai"
MAX_FUNCTION_LINES = 80


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(args):
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run([str(ruff), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_functions_are_short():
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines >= MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_two_modules_share_a_name():
    names = Counter(p.stem for p in modules() if p.stem != "__init__")
    assert [n for n, c in names.items() if c > 1] == []
    # A top-level module or subpackage would shadow the Python API's function of its name once imported.
    import genai

    top_level = {p.stem if p.suffix == ".py" else p.name for p in PACKAGE.iterdir()}
    assert set(genai.__all__) & top_level == set()


def imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize(
    "layer,forbidden",
    [
        ("data", ("genai.training", "genai.evaluation", "genai.serving", "genai.sagemaker", "genai.pipeline")),
        ("training", ("genai.evaluation", "genai.serving", "genai.sagemaker", "genai.pipeline")),
        ("serving", ("genai.training.trainer", "genai.evaluation", "genai.sagemaker", "genai.pipeline")),
    ],
)
def test_layers_import_downward(layer, forbidden):
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for p in sorted((PACKAGE / layer).glob("*.py"))
        for m in imported(p)
        if m.startswith(forbidden)
    ]
    assert not bad, bad
