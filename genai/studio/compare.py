"""What the run and compare pages chart and diff: a run's metric series, and the settings in which the
resolved recipes of several runs differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genai.runs import Run

SERIES = ("loss", "eval_loss", "lr", "grad_norm", "tokens_per_s", "reward", "rewards/accuracy", "exact_match")


def series(run: Run) -> dict[str, list[list[float]]]:
    """Per metric, its [step, value] points from metrics.jsonl (the charted ones, where logged)."""
    out: dict[str, list[list[float]]] = {}
    for m in run.metrics():
        step = m.get("step")
        if not isinstance(step, (int, float)):
            continue
        for key in SERIES:
            value = m.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, []).append([step, value])
    return out


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A nested recipe as dotted keys (lists of sections by index)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): obj}


def resolved_recipe(run_dir: Path) -> dict:
    """The run's resolved recipe as a dict ({} when unreadable)."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def recipe_diff(run_dirs: list[Path]) -> list[dict]:
    """Every setting of the runs' recipes: key, one value per run, and whether they differ (differing first)."""
    flat = [flatten(resolved_recipe(d)) for d in run_dirs]
    keys = sorted(set().union(*flat))
    rows = [{"key": k, "values": [f.get(k, "(unset)") for f in flat]} for k in keys]
    for r in rows:
        r["differs"] = any(v != r["values"][0] for v in r["values"][1:])
    return sorted(rows, key=lambda r: not r["differs"])
