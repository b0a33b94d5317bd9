"""`genai register RUN` and `genai run`'s register stage: a trained, evaluated run into the registries.

The run must be a finished run with eval results (one clear error otherwise). MLflow comes first, so
the SageMaker package's metadata can name the MLflow version. The preflight's "registry" check asks for
the SageMaker settings before `genai run` trains anything.
"""

from __future__ import annotations

from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import Recipe
from genai.registry.champion import Evaluation, evaluation
from genai.runs import Run, open_run

MAX_DATA_FILES = 8  # lineage entries per data file: 2; SageMaker keeps at most 50 metadata entries


def lineage(run: Run) -> dict[str, str]:
    """The manifest's lineage as flat text: run, recipe hash, base model and its hash, parent run, data
    files and their hashes, git commit, SageMaker job."""
    m = run.manifest()
    base, parent, art = m.get("base_model") or {}, m.get("parent") or {}, run.artifact()
    out = {
        "genai.run": run.name,
        "genai.run_dir": str(run.path.resolve()),
        "genai.recipe": m.get("recipe"),
        "genai.recipe_sha256": m.get("recipe_sha256"),
        "genai.method": m.get("method"),
        "genai.artifact": art.get("kind"),
        "genai.merged": art.get("merged"),
        "genai.base_model": base.get("name_or_path"),
        "genai.base_model_revision": base.get("revision"),
        "genai.base_model_sha256": base.get("sha256"),
        "genai.parent_run": parent.get("run"),
        "genai.parent_recipe": parent.get("recipe"),
        "genai.git_commit": m.get("git_commit"),
        "genai.sagemaker_job": (m.get("sagemaker") or {}).get("job"),
    }
    files = sorted((m.get("data_files") or {}).items())
    for i, (path, digest) in enumerate(files[:MAX_DATA_FILES]):
        out[f"genai.data.{i}.path"] = path
        out[f"genai.data.{i}.sha256"] = digest
    if len(files) > MAX_DATA_FILES:
        out["genai.data.more"] = f"{len(files) - MAX_DATA_FILES} more files: see the run's manifest.json"
    return {k: str(v) for k, v in out.items() if v not in (None, "")}


def registrable(path: Path) -> Run:
    """A run folder whose training finished; a clear error for anything else."""
    run = open_run(path)
    run.manifest()  # "not a finished run" when training has not completed
    return run


def register_run(
    run: Run,
    recipe: Recipe,
    *,
    name: str | None = None,
    mlflow: bool = True,
    sagemaker: bool = False,
    dry_run: bool = False,
) -> dict:
    """Register the run in MLflow and/or SageMaker; what was registered, as printed."""
    if not (mlflow or sagemaker):
        raise GenaiError("nothing to register: neither MLflow nor SageMaker was asked for")
    if dry_run and not sagemaker:
        raise GenaiError("--dry-run shows the SageMaker requests", hint="add --sagemaker")
    ev: Evaluation = evaluation(run, recipe)
    name = name or recipe.registry.model_name or recipe.name
    props = lineage(run)
    out: dict = {"run": str(run.path), "gate": ev.verdict, "eval_backend": ev.backend}
    if mlflow and not dry_run:  # a dry run registers nothing anywhere
        from genai.registry.mlflow_registry import register_mlflow

        out.update(register_mlflow(run, recipe, ev, name, props))
        props = {**props, "mlflow.model_version": f"{name}/{out['version']}"}
    if sagemaker:
        from genai.registry.sm_registry import register_sagemaker

        props = {**props, "genai.gate": ev.verdict, "genai.eval_backend": ev.backend}
        out["sagemaker"] = register_sagemaker(run, recipe, ev, name, props, dry_run=dry_run)
    return out


def register_command(
    target: Path,
    overrides: list[str],
    *,
    name: str | None = None,
    mlflow: bool = True,
    sagemaker: bool = False,
    dry_run: bool = False,
) -> dict:
    """`genai register RUN [overrides]`: the run's own recipe (with overrides) gives every setting."""
    run = registrable(target)
    recipe = run.recipe(overrides)
    return register_run(run, recipe, name=name, mlflow=mlflow, sagemaker=sagemaker, dry_run=dry_run)
