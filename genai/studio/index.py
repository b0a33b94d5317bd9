"""The runs table: one row per run folder under the runs root, read from its manifest and eval tables
only (no recipe parsing, no metrics file), so that hundreds of runs list fast; a folder whose manifest or
table is corrupt becomes a row that says so, never an error page."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from genai.runs import MANIFEST, RECIPE_FILE, Run


@dataclass
class RunRow:
    """What the runs page shows of one run."""

    id: str  # the run folder relative to the runs root (the run's address in the studio)
    recipe: str
    run_id: str
    status: str  # complete | incomplete | running | corrupt
    started: str
    method: str = "-"
    base_model: str = "-"
    parent: str | None = None
    steps: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    gate: str = "-"  # passed | failed | -
    headline: str = "-"  # the first eval row: task metric tuned (delta)
    stages: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict:
        """JSON form."""
        return asdict(self)


def _read_json(path: Path) -> tuple[dict | None, str | None]:
    """(the object, None) or (None, what is wrong with the file)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"{path.name}: unreadable ({type(e).__name__}: {str(e)[:120]})"
    if not isinstance(obj, dict):
        return None, f"{path.name}: not a JSON object"
    return obj, None


def _headline(table: dict) -> str:
    rows = table.get("rows") or []
    if not rows or not isinstance(rows[0], dict):
        return "-"
    r = rows[0]
    tuned, delta = r.get("tuned"), r.get("delta")
    text = f"{r.get('task')} {r.get('metric')} {tuned:.3f}" if isinstance(tuned, (int, float)) else str(r.get("task"))
    return text + (f" ({delta:+.3f})" if isinstance(delta, (int, float)) else "")


def read_row(run: Path, root: Path) -> RunRow:
    """The row of one run folder."""
    started = datetime.fromtimestamp((run / RECIPE_FILE).stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M")
    row = RunRow(
        id=run.relative_to(root).as_posix(),
        recipe=run.parent.name,
        run_id=run.name,
        status="incomplete",
        started=started,
    )
    manifest, error = _read_json(run / MANIFEST)
    if error:
        row.status, row.error = "corrupt", error
        return row
    if manifest is None:
        return row
    row.recipe = str(manifest.get("recipe") or row.recipe)
    row.status = str(manifest.get("status") or "complete")
    row.method = str(manifest.get("method") or "sft")
    base = manifest.get("base_model")
    row.base_model = str(base.get("name_or_path") if isinstance(base, dict) else base or "-")
    parent = manifest.get("parent")
    row.parent = str(parent.get("run")) if isinstance(parent, dict) and parent.get("run") else None
    row.steps = manifest.get("steps") if isinstance(manifest.get("steps"), int) else None
    metrics = manifest.get("metrics") if isinstance(manifest.get("metrics"), dict) else {}
    row.train_loss, row.eval_loss = metrics.get("train_loss"), metrics.get("eval_loss")
    stages = manifest.get("stages") if isinstance(manifest.get("stages"), dict) else {}
    row.stages = {k: str(v.get("status")) for k, v in stages.items() if isinstance(v, dict)}
    verdict = Run(run).gate_verdict() if row.stages.get("gate") is None else row.stages["gate"] == "passed"
    row.gate = "-" if verdict is None else "passed" if verdict else "failed"
    for backend, table in Run(run).eval_tables():
        if table.get("rows"):
            row.headline = _headline(table) + ("" if backend == "hf" else f" [{backend}]")
            break
    return row


def scan(root: Path) -> list[RunRow]:
    """Every run under the runs root, newest first."""
    if not root.is_dir():
        return []
    runs = [p.parent for p in root.rglob(RECIPE_FILE) if "checkpoints" not in p.relative_to(root).parts]
    rows = []
    for run in runs:
        try:
            rows.append(read_row(run, root))
        except OSError:  # removed while listing
            continue
    return sorted(rows, key=lambda r: (r.started, r.id), reverse=True)
