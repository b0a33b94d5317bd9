"""The tool-call and reasoning parser names the installed vLLM registers, read from its source
(importing vLLM's parser managers pulls in torch and ~6,000 modules: ~12 s on 2 cores)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

_REGISTRIES = {
    "tool": ("tool_parsers", "_TOOL_PARSERS_TO_REGISTER"),
    "reasoning": ("reasoning", "_REASONING_PARSERS_TO_REGISTER"),
}


def vllm_root() -> Path | None:
    """The installed vllm package folder (not imported), or None."""
    spec = importlib.util.find_spec("vllm")
    return Path(spec.origin).parent if spec and spec.origin else None


def registered_parsers(kind: str) -> dict[str, str]:
    """{parser name: module file} of the `kind` ("tool" or "reasoning") parsers vLLM registers
    lazily; only names whose module file exists and defines (or re-exports) the registered class.
    Empty without vLLM."""
    root = vllm_root()
    if root is None:
        return {}
    package, variable = _REGISTRIES[kind]
    tree = ast.parse((root / package / "__init__.py").read_text(encoding="utf-8"))
    table: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == variable for t in node.targets):
            table = ast.literal_eval(node.value)
    found = {}
    for name, (module, class_name) in table.items():
        path = root / package / f"{module}.py"
        if path.exists() and re.search(rf"\b{class_name}\b", path.read_text(encoding="utf-8")):
            found[name] = str(path)
    return found
