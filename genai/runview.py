"""`genai runs list|show|compare`: read run manifests (tables for people, --json for scripts)."""

from __future__ import annotations

import json
from pathlib import Path

from genai.errors import GenaiError
from genai.runs import MANIFEST, RECIPE_FILE


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.4g}"
    return str(x)


def find_runs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise GenaiError(f"{root}: no such folder", hint="runs live under train.output_dir (default: runs/)")
    return sorted((p.parent for p in root.rglob(RECIPE_FILE)), key=lambda p: p.stat().st_mtime)


def load(run: Path) -> dict:
    if not (run / RECIPE_FILE).exists():
        raise GenaiError(f"{run}: not a run folder (no {RECIPE_FILE})")
    manifest = json.loads((run / MANIFEST).read_text()) if (run / MANIFEST).exists() else {"run_id": run.name}
    manifest.setdefault("status", "incomplete")
    tables = {}
    for t in sorted((run / "eval").glob("*/table.json")) if (run / "eval").is_dir() else []:
        tables[t.parent.name] = json.loads(t.read_text())
    return {"path": str(run), "manifest": manifest, "eval": tables}


def summary_row(info: dict) -> dict:
    m = info["manifest"]
    stages = m.get("stages", {})
    table = next(iter(info["eval"].values()), None)
    return {
        "run": info["path"],
        "recipe": m.get("recipe"),
        "status": m.get("status"),
        "stages": ",".join(f"{k}:{v.get('status')}" for k, v in stages.items()) or "-",
        "steps": m.get("steps"),
        "train_loss": m.get("metrics", {}).get("train_loss"),
        "gate": None if table is None or not table.get("gate") else ("passed" if table["passed"] else "failed"),
    }


def compare_rows(a: dict, b: dict) -> list[dict]:
    """Scalar metrics and eval rows of two runs side by side."""
    rows = []
    ma, mb = a["manifest"].get("metrics", {}), b["manifest"].get("metrics", {})
    for key in sorted(set(ma) | set(mb)):
        rows.append({"what": key, "a": ma.get(key), "b": mb.get(key)})
    for key in ("steps", "train_seconds", "recipe_sha256"):
        rows.append({"what": key, "a": a["manifest"].get(key), "b": b["manifest"].get(key)})
    ta, tb = (next(iter(x["eval"].values()), {"rows": []}) for x in (a, b))
    index = {(r["task"], r["metric"]): r for r in tb["rows"]}
    for r in ta["rows"]:
        other = index.get((r["task"], r["metric"]), {})
        rows.append({"what": f"{r['task']} {r['metric']}", "a": r["tuned"], "b": other.get("tuned")})
    return rows


def print_table(columns: list[str], rows: list[list]) -> None:
    """A plain rich table, wide enough for run paths."""
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(fmt(x) for x in row))
    Console(width=160).print(table)
