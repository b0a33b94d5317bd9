"""The MLflow Model Registry: one model version per registration, linked to the run's MLflow run.

The version's source is the artifact folder; its tags are the eval metrics (named as the tracked
metrics are), the lineage and the gate verdict; its alias is `champion` or `challenger` (champion.py).
The MLflow run is the one RUN/tracking.json names (training or eval logged there), else a new one
with the recipe, the training metrics and the eval metrics, so a version always links to a run.

Where the registry lives: MLflow 3's file registry store ('./mlruns') is in maintenance mode (it
refuses to open without MLFLOW_ALLOW_FILE_STORE=true and gets no new features), so with a file
tracking store (the default: <output_dir>/mlruns) the registry is a SQLite file beside it,
<output_dir>/mlflow.db. A tracking server or database URI is its own registry.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from urllib.parse import urlparse

from genai.errors import GenaiError
from genai.recipe import Recipe
from genai.registry.champion import CHAMPION, Evaluation, choose_alias, compared_metric, eval_tags
from genai.runs import Run
from genai.tracking import TRACKING_FILE, mlflow_uri

REGISTRY_DB = "mlflow.db"


def registry_uri(recipe: Recipe) -> str:
    """The tracking URI itself, unless that is a file store: then sqlite:///<output_dir>/mlflow.db."""
    uri = mlflow_uri(recipe)
    if urlparse(uri).scheme not in ("", "file"):
        return uri
    return "sqlite:///" + str(Path(recipe.train.output_dir).resolve() / REGISTRY_DB)


def _logged_to(run: Run, uri: str) -> bool:
    saved = run.path / TRACKING_FILE
    return saved.exists() and json.loads(saved.read_text()).get("mlflow_uri") == uri


def mlflow_run(run: Run, recipe: Recipe, ev: Evaluation):
    """The run's MLflow run (reopened, or created with the recipe and training metrics), with the eval
    metrics on it; returns its id."""
    from mlflow.exceptions import MlflowException

    from genai.tracking import MlflowSink, Tracker, eval_metrics, replay_metrics

    uri = mlflow_uri(recipe)
    known = _logged_to(run, uri)
    tags = {"genai.recipe": recipe.name, "genai.run_dir": str(run.path.resolve())}
    try:
        sink = MlflowSink(uri, recipe.tracking.experiment or recipe.name, run.path, tags)
    except MlflowException as exc:  # tracking.json names a run the store no longer has: start a new one
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST" or not known:
            raise
        (run.path / TRACKING_FILE).unlink()
        known = False
        sink = MlflowSink(uri, recipe.tracking.experiment or recipe.name, run.path, tags)
    with Tracker([sink]) as tracker:
        if not known:
            tracker.log_recipe(recipe)
            if run.metrics_file.exists():
                replay_metrics(tracker, run.metrics_file)
            tracker.log_artifact_path(run.artifact_dir)
        have = sink.client.get_run(sink.run_id).data.metrics
        wanted = {"eval." + ".".join(k): v for k, v in eval_metrics(ev.rows).items()}
        if any(have.get(k) != v for k, v in wanted.items()):  # `genai eval` logs them when tracking is on
            tracker.log_eval(ev.rows)
    return sink.run_id


def _ensure_model(client, name: str, recipe: Recipe) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, tags={"genai.recipe": recipe.name}, description=recipe.description)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def current_champion(client, name: str):
    """The version holding the `champion` alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def registered_version(client, name: str, run_id: str, source: str):
    """The version of `name` this run's artifact already is (same MLflow run, same source), or None."""
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return next((v for v in found if v.source == source), None)


def _masked(uri: str) -> str:
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", uri)  # user:password@ of a tracking server


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def register_mlflow(run: Run, recipe: Recipe, ev: Evaluation, name: str, lineage: dict[str, str]) -> dict:
    """A new version of model `name` for the run (or the one it already is: registering again after a later
    step failed adds no second version), with the alias champion's rule gives it."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # decided when mlflow is first imported
    from mlflow.exceptions import MlflowException

    from genai import console

    if not console.verbose():  # "Creating initial MLflow database tables..." on a new registry file
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    compared = compared_metric(ev)
    uri, reg = mlflow_uri(recipe), registry_uri(recipe)
    try:
        run_id = mlflow_run(run, recipe, ev)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=reg)
        _ensure_model(client, name, recipe)
        previous = current_champion(client, name)
        before = _float(previous.tags.get(compared.tag)) if previous is not None else None
        source = run.artifact_dir.resolve().as_uri()
        again = registered_version(client, name, run_id, source)
        if again is not None and previous is not None and previous.version == again.version:
            alias, why = CHAMPION, f"version {again.version} (this run) is the champion already"
        else:
            alias, why = choose_alias(ev, compared, before, previous is not None)
        tags = {
            **lineage,
            **eval_tags(ev.rows),
            "genai.gate": ev.verdict,
            "genai.eval_backend": ev.backend,
            "genai.compared": compared.tag,
        }
        if again is None:
            description = f"{recipe.name} run {run.name} (gate: {ev.verdict})"
            version = client.create_model_version(name, source, run_id=run_id, tags=tags, description=description)
        else:  # registered before (a rerun after a later step failed): the same version, its tags brought up to date
            version = again
            for key, value in tags.items():
                client.set_model_version_tag(name, version.version, key, value)
        client.set_registered_model_alias(name, alias, version.version)
        client.set_tag(run_id, "genai.registered", f"{name}/{version.version}")
    except MlflowException as exc:
        raise GenaiError(
            f"MLflow (tracking {_masked(uri)}, registry {_masked(reg)}): {exc.message}",
            hint="check tracking.mlflow_uri and the model name (--name / registry.model_name)",
        ) from None
    return {
        "name": name,
        "version": str(version.version),
        "new_version": again is None,
        "alias": alias,
        "why": why,
        "metric": compared.as_dict(),
        "previous_champion": None if previous is None else {"version": str(previous.version), "value": before},
        "mlflow": {"tracking_uri": _masked(uri), "registry_uri": _masked(reg), "run_id": run_id, "source": source},
    }
