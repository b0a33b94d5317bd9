"""Chained runs: a recipe whose `model.name_or_path` names an earlier run starts from that run's artifact.

The parent is a run folder, `<output_dir>/<recipe>/latest` (the newest finished run there), or a recipe
file (its newest finished run; `genai run` trains it first when it has none). A LoRA parent's adapter is
either trained on (`model.parent_adapter: continue`, on the parent's own base) or merged into its base,
which a new adapter then trains on (`merge`); a fully fine-tuned parent is the new base. Either way the
parent's merged model is what "before" means for eval, and the manifest's lineage names the parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import ModelSection, Recipe
from genai.runs import RECIPE_FILE, Run

RECIPE_SUFFIXES = (".yaml", ".yml")


def parent_recipe_file(model: ModelSection) -> Path | None:
    """The parent recipe file `model.name_or_path` names, if it names one."""
    value = model.name_or_path
    return Path(value) if value.endswith(RECIPE_SUFFIXES) else None


def _newest_finished(root: Path, what: str, hint: str) -> Run:
    runs = sorted(
        (Run(p) for p in root.iterdir() if (p / RECIPE_FILE).exists()) if root.is_dir() else [],
        key=lambda r: r.started,
    )
    done = [r for r in runs if r.is_trained]
    if not done:
        raise GenaiError(f"model.name_or_path: {what} has no finished run under {root}", hint=hint)
    return done[-1]


def parent_run(model: ModelSection) -> Run | None:
    """The run `model.name_or_path` names (None when it names a model); a clear error when that run is
    missing or unfinished."""
    value = model.name_or_path
    recipe_file = parent_recipe_file(model)
    if recipe_file is not None:
        if not recipe_file.exists():
            raise GenaiError(f"model.name_or_path: parent recipe not found: {recipe_file}")
        from genai.recipe import load_recipe
        from genai.runs import recipe_root

        parent = load_recipe(recipe_file)
        return _newest_finished(
            recipe_root(parent),
            f"the parent recipe {recipe_file.name}",
            f"train it first: genai train {recipe_file} (genai run trains it for you)",
        )
    path = Path(value)
    if path.name == "latest" and len(path.parts) >= 3 and not (path / RECIPE_FILE).exists():
        return _newest_finished(path.parent, f"'{value}'", "train that recipe first, or name a run folder")
    if (path / RECIPE_FILE).exists():
        run = Run(path)
        if not run.is_trained:
            raise GenaiError(
                f"model.name_or_path: the run {path} has not finished training (no manifest.json)",
                hint=f"resume it (genai train --resume --run-dir {path}) or name a finished run",
            )
        return run
    return None


@dataclass(frozen=True)
class Parent:
    """The run a chained recipe starts from, and how."""

    run: Run
    kind: str  # the parent's artifact: adapter | model
    base: str  # the model the parent itself trained on (resolved folder or hub id)
    how: str  # continue (train the parent's adapter) | merge (a new adapter or full weights on the merged parent)

    @property
    def adapter(self) -> Path | None:
        """The parent adapter training continues (continue only)."""
        return self.run.path / self.run.artifact()["path"] if self.how == "continue" else None

    def model_dir(self) -> Path:
        """The parent as a standalone model: its full weights, or its adapter merged (made on first use)."""
        if self.kind == "model":
            return self.run.artifact_dir
        merged = self.run.merged_dir
        if not (merged / "config.json").exists():
            from genai.training.export import merge_run

            merge_run(self.run)
        return merged

    def training_base(self) -> str:
        """The model a chained run loads before its adapter: the parent's base to continue its adapter on,
        else the parent as a standalone model."""
        return self.base if self.how == "continue" else str(self.model_dir())

    def root_name(self) -> str:
        """The model the chain began with, as its first recipe named it (what the model card calls the base)."""
        bm = self.run.manifest().get("base_model") or {}
        return bm.get("name_or_path") or self.base

    def lineage(self) -> dict:
        """What the manifest records of the parent."""
        m = self.run.manifest()
        return {
            "run": str(self.run.path.resolve()),
            "run_id": self.run.name,
            "recipe": m.get("recipe"),
            "method": m.get("method", "sft"),
            "artifact": self.kind,
            "how": self.how,
        }


def find_parent(recipe: Recipe) -> Parent | None:
    """The recipe's parent run, if its model names one."""
    run = parent_run(recipe.model)
    if run is None:
        return None
    m = run.manifest()
    kind = run.artifact()["kind"]
    base = (m.get("base_model") or {}).get("resolved") or (m.get("base_model") or {}).get("name_or_path")
    # Only a LoRA parent trained further as LoRA can continue its adapter; otherwise training starts from the merge.
    keep = kind == "adapter" and recipe.lora.enabled and recipe.model.parent_adapter == "continue"
    return Parent(run, kind, base, "continue" if keep else "merge")
