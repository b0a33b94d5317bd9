"""The run: one folder per training run, and the one place that knows its layout.

A run folder holds the resolved recipe (written first), metrics, checkpoints, the artifact
(adapter/ or model/, and merged/), eval tables, reports, and manifest.json, written when
training completes: its presence means the artifact is whole. `genai run` records its stages
in the manifest too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genai.atomic import atomic_write_json, atomic_write_text
from genai.errors import GenaiError
from genai.recipe import Recipe

MANIFEST = "manifest.json"
RECIPE_FILE = "recipe.yaml"
EVAL_BACKENDS = ("hf", "vllm", "endpoint")  # the order eval tables are read and shown in


def _loads(text: str):
    try:
        return json.loads(text)
    except ValueError:  # a torn last line (crash mid-write) is skipped, not fatal
        return None


@dataclass(frozen=True)
class Run:
    """A run folder: paths, the manifest, artifacts, metrics and eval tables."""

    path: Path

    # ------------------------------------------------------------------ paths
    @property
    def name(self) -> str:
        """The run id (the folder's name)."""
        return self.path.name

    @property
    def recipe_file(self) -> Path:
        """The fully resolved recipe this run was made with."""
        return self.path / RECIPE_FILE

    @property
    def manifest_file(self) -> Path:
        """manifest.json: lineage, metrics and stages; present once training completed."""
        return self.path / MANIFEST

    @property
    def metrics_file(self) -> Path:
        """metrics.jsonl: one JSON object per logging step."""
        return self.path / "metrics.jsonl"

    @property
    def merged_dir(self) -> Path:
        """Where the standalone merged model goes."""
        return self.path / "merged"

    @property
    def eval_dir(self) -> Path:
        """eval/<backend>/: lm-eval results and the before/after table."""
        return self.path / "eval"

    def checkpoint_root(self, recipe: Recipe) -> Path:
        """Where this run's checkpoints live (train.checkpoint_dir, or RUN/checkpoints)."""
        return Path(recipe.train.checkpoint_dir) if recipe.train.checkpoint_dir else self.path / "checkpoints"

    def artifact_folder(self, kind: str) -> Path:
        """adapter/ for LoRA runs, model/ for full fine-tunes."""
        return self.path / kind

    # ------------------------------------------------------------------ state
    @property
    def is_run(self) -> bool:
        """A run folder has its recipe."""
        return self.recipe_file.exists()

    @property
    def is_trained(self) -> bool:
        """Training completed (the manifest is written last)."""
        return self.manifest_file.exists()

    def recipe(self, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
        """The run's resolved recipe, with overrides applied."""
        from genai.recipe import load_recipe

        return load_recipe(self.recipe_file, overrides)

    def write_recipe(self, recipe: Recipe) -> None:
        """Save the resolved recipe (first thing in a new run; a resume with the same recipe leaves it be)."""
        self.path.mkdir(parents=True, exist_ok=True)
        text = recipe.to_yaml()
        if not self.recipe_file.exists() or self.recipe_file.read_text(encoding="utf-8") != text:
            atomic_write_text(self.recipe_file, text)

    @property
    def started(self) -> float:
        """When the run was started (its recipe's time: the folder's own changes with every file added)."""
        return self.recipe_file.stat().st_mtime

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict:
        """The manifest; a clear error when training has not completed."""
        try:
            return json.loads(self.manifest_file.read_text())
        except FileNotFoundError:
            raise GenaiError(
                f"{self.path}: not a finished run (no {MANIFEST})",
                hint="resume it with `genai train RECIPE --resume --run-dir RUN`",
            ) from None

    def write_manifest(self, recipe: Recipe, **fields: Any) -> dict:
        """Write the manifest when training completes (the last file of a run)."""
        from genai.lineage import environment

        manifest = {
            "run_id": self.name,
            "recipe": recipe.name,
            "recipe_sha256": recipe.content_hash(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "environment": environment(),
            **fields,
        }
        atomic_write_json(self.manifest_file, manifest)
        return manifest

    def update_manifest(self, **fields: Any) -> dict:
        """Merge fields into the manifest (atomic rewrite)."""
        manifest = self.manifest()
        manifest.update(fields)
        atomic_write_json(self.manifest_file, manifest)
        return manifest

    # ------------------------------------------------------------------ artifact
    def artifact(self) -> dict:
        """The manifest's artifact record: kind (adapter | model), path, merged."""
        return self.manifest().get("artifact") or {"kind": "adapter", "path": "adapter", "merged": None}

    @property
    def artifact_dir(self) -> Path:
        """The trained artifact's folder."""
        return self.path / self.artifact()["path"]

    def record_merged(self, folder: Path) -> None:
        """Note a merged model in the manifest (when it lies inside this run)."""
        try:
            rel = folder.resolve().relative_to(self.path.resolve())
        except ValueError:
            return  # merged elsewhere (genai merge --out): the run's own artifact is unchanged
        if self.is_trained:
            self.update_manifest(artifact={**self.artifact(), "merged": str(rel)})

    # ------------------------------------------------------------------ stages of `genai run`
    def stages(self) -> dict:
        """Stage records of `genai run` ({} before training completed)."""
        return self.manifest().get("stages", {}) if self.is_trained else {}

    def mark_stage(self, stage: str, status: str, seconds: float, **extra: Any) -> None:
        """Record one stage's outcome."""
        stages = self.stages()
        stages[stage] = {"status": status, "seconds": round(seconds, 2), **extra}
        self.update_manifest(stages=stages)

    @property
    def pipeline_finished(self) -> bool:
        """`genai run` is over for this run: the gate failed, or serving was done or skipped."""
        stages = self.stages()
        return stages.get("gate", {}).get("status") == "failed" or stages.get("serve", {}).get("status") in (
            "done",
            "skipped",
        )

    def gate_verdict(self) -> bool | None:
        """Whether the run passed its gate: `genai run`'s gate stage, else its newest eval table;
        None when it was never gated (not evaluated)."""
        stage = self.stages().get("gate", {}).get("status")
        if stage in ("passed", "failed"):
            return stage == "passed"
        tables = sorted(self.eval_dir.glob("*/table.json"), key=lambda p: p.stat().st_mtime)
        table = _loads(tables[-1].read_text(encoding="utf-8")) if tables else None
        return bool(table.get("passed", True)) if isinstance(table, dict) else None

    # ------------------------------------------------------------------ results
    def metrics(self) -> list[dict]:
        """Every record of metrics.jsonl (a torn last line is skipped)."""
        lines = self.metrics_file.read_text(encoding="utf-8").splitlines() if self.metrics_file.exists() else []
        return [obj for obj in map(_loads, lines) if isinstance(obj, dict)]

    def eval_table_file(self, backend: str) -> Path:
        """eval/<backend>/table.json."""
        return self.eval_dir / backend / "table.json"

    def eval_tables(self) -> list[tuple[str, dict]]:
        """(backend, table) for every eval table: hf, vllm, endpoint first, then any others."""
        found = {p.parent.name: p for p in self.eval_dir.glob("*/table.json")}
        order = [b for b in EVAL_BACKENDS if b in found] + sorted(set(found) - set(EVAL_BACKENDS))
        tables = [(b, _loads(found[b].read_text(encoding="utf-8"))) for b in order]
        return [(b, t) for b, t in tables if isinstance(t, dict)]

    # ------------------------------------------------------------------ views
    def summary(self) -> dict:
        """One row of `genai runs list` (from `describe`: the first eval table in backend order)."""
        info = self.describe()
        m, stages = info["manifest"], info["manifest"].get("stages", {})
        table = next(iter(info["eval"].values()), None)
        gate = None if table is None or not table.get("gate") else ("passed" if table["passed"] else "failed")
        return {
            "run": info["path"],
            "recipe": m.get("recipe"),
            "status": m["status"],
            "stages": ",".join(f"{k}:{v.get('status')}" for k, v in stages.items()) or "-",
            "steps": m.get("steps"),
            "train_loss": m.get("metrics", {}).get("train_loss"),
            "gate": gate,
        }

    def describe(self) -> dict:
        """`genai runs show`: the manifest (or what is known of an unfinished run) and eval tables."""
        manifest = self.manifest() if self.is_trained else {"run_id": self.name}
        manifest.setdefault("status", "incomplete")
        return {"path": str(self.path), "manifest": manifest, "eval": dict(self.eval_tables())}


def open_run(path: Path) -> Run:
    """A run folder given on the command line; a clear error for anything else."""
    run = Run(Path(path))
    if not run.is_run:
        raise GenaiError(f"{path}: not a run folder (no {RECIPE_FILE})")
    return run


def compare(a: Run, b: Run) -> list[dict]:
    """Scalar metrics, lineage and eval rows of two runs side by side (`genai runs compare`)."""
    da, db = a.describe(), b.describe()
    ma, mb = da["manifest"].get("metrics", {}), db["manifest"].get("metrics", {})
    rows = [{"what": k, "a": ma.get(k), "b": mb.get(k)} for k in sorted(set(ma) | set(mb))]
    rows += [
        {"what": k, "a": da["manifest"].get(k), "b": db["manifest"].get(k)}
        for k in ("steps", "train_seconds", "recipe_sha256")
    ]
    ta, tb = (next(iter(d["eval"].values()), {"rows": []}) for d in (da, db))
    index = {(r["task"], r["metric"]): r for r in tb["rows"]}
    for r in ta["rows"]:
        other = index.get((r["task"], r["metric"]), {})
        rows.append({"what": f"{r['task']} {r['metric']}", "a": r["tuned"], "b": other.get("tuned")})
    return rows


# ---------------------------------------------------------------------- lookups


def recipe_root(recipe: Recipe) -> Path:
    """<output_dir>/<recipe name>: the recipe's runs."""
    return Path(recipe.train.output_dir) / recipe.name


def new_run(recipe: Recipe) -> Run:
    """Create a new, empty run folder named by the time."""
    root = recipe_root(recipe)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        path = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True)
            return Run(path)
        except FileExistsError:
            continue
    raise GenaiError(f"{root}: cannot create a new run directory")


def runs_under(root: Path) -> list[Run]:
    """Every run below a folder (any depth), oldest first."""
    if not root.is_dir():
        return []
    return sorted((Run(p.parent) for p in root.rglob(RECIPE_FILE)), key=lambda r: r.started)


def recipe_runs(recipe: Recipe) -> list[Run]:
    """The recipe's runs, oldest first."""
    root = recipe_root(recipe)
    if not root.is_dir():
        return []
    return sorted((Run(p) for p in root.iterdir() if (p / RECIPE_FILE).exists()), key=lambda r: r.started)


def latest_run(recipe: Recipe) -> Run | None:
    """The recipe's newest run, finished or not."""
    runs = recipe_runs(recipe)
    return runs[-1] if runs else None


def latest_trained_run(recipe: Recipe) -> Run:
    """The recipe's newest run whose training completed; a clear error if there is none."""
    done = [r for r in recipe_runs(recipe) if r.is_trained]
    if not done:
        raise GenaiError(
            f"no finished run of recipe '{recipe.name}' under {recipe_root(recipe)}",
            hint="train it first: genai train RECIPE",
        )
    return done[-1]


_GATE_WORDS = {True: "gate passed", False: "gate FAILED", None: "not evaluated"}


def choose_run(recipe: Recipe, *, latest: bool = False, fallback: bool = False) -> tuple[Run, str]:
    """The run a recipe target means, and why: the newest run that passed its gate, or with `latest`
    the newest finished run. With `fallback` (eval: how a run gets gated), the newest finished run
    when none has passed yet; otherwise that is an error naming the runs there are."""
    done = [r for r in recipe_runs(recipe) if r.is_trained]
    if not done:
        latest_trained_run(recipe)  # raises the "train it first" error
    newest = done[-1]
    if latest:
        return (
            newest,
            f"the newest finished run of recipe '{recipe.name}' (--latest; {_GATE_WORDS[newest.gate_verdict()]})",
        )
    passed = [r for r in done if r.gate_verdict() is True]
    if not passed:
        if fallback:
            return newest, f"no run of recipe '{recipe.name}' has passed its gate yet: the newest finished run"
        states = ", ".join(f"{r.name} ({_GATE_WORDS[r.gate_verdict()]})" for r in done[-3:])
        raise GenaiError(
            f"no run of recipe '{recipe.name}' has passed its gate (runs: {states})",
            hint="evaluate one (genai eval RECIPE --latest), or serve one anyway: --latest, or name its run folder",
        )
    run = passed[-1]
    why = f"the newest run of recipe '{recipe.name}' that passed its gate"
    newer = done[done.index(run) + 1 :]
    if newer:
        skipped = ", ".join(f"{r.name} ({_GATE_WORDS[r.gate_verdict()]})" for r in newer)
        why += f"; newer runs not chosen: {skipped} (--latest takes the newest)"
    return run, why


def resumable_run(recipe: Recipe) -> Run | None:
    """The run `genai run` continues: the newest run, if it has this exact recipe and is not over."""
    run = latest_run(recipe)
    if run is None:
        return None
    try:
        same = run.recipe().content_hash() == recipe.content_hash()
    except GenaiError:
        same = False
    return run if same and not run.pipeline_finished else None
