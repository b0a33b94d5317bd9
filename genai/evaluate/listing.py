"""`genai eval --list`: the bundled suites' tasks."""

from __future__ import annotations

from genai.evaluate import suites


def list_tasks() -> str:
    import yaml

    lines = []
    for d in suites.suite_dirs([]):
        for yml in sorted(d.rglob("*.yaml")):
            cfg = yaml.load(yml.read_text(), Loader=suites._Loader) or {}
            if isinstance(cfg, dict) and cfg.get("task"):
                lines.append(f"{cfg['task']:24} {cfg.get('output_type', '?'):22} {yml.relative_to(d.parent)}")
    return "\n".join(lines) + "\n(and every task lm-eval ships, by name)"
