"""Metric sinks behind one interface: the training loop writes to them live.

A `Tracker` fans each call out to its sinks: metrics.jsonl (always, for training), MLflow and
TensorBoard (the recipe's `tracking` section). Both libraries are imported only when enabled
(`pip install 'genai[tracking]'`). MLflow is used through an explicit MlflowClient rather than the
fluent API, so no process-global active run or tracking URI is touched; the MLflow run id is kept in
RUN/tracking.json, so a resumed training and later eval results land in the same MLflow run.
Params come from `recipe.public_dump()`, which leaves the API key out.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Protocol

from genai.errors import MissingExtraError
from genai.textfmt import is_number

TRACKING_FILE = "tracking.json"
_PARAM_MAX = 500
_BATCH = 100  # MLflow's log_batch takes at most 100 params per call
_BAD_KEY = re.compile(r"[^\w\-. /:]")  # MLflow rejects other characters (e.g. lm-eval's "acc,none")
_USERINFO = re.compile(r"(://)[^/@\s]+@")  # user:password@ in a URI, e.g. an http tracking server


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _as_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return _USERINFO.sub(r"\1***@", text)


def _numbers(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if is_number(v)}


def eval_metrics(rows: list[dict]) -> dict[tuple[str, str, str], float]:
    """Before/after scores as (task, metric, side) -> value, with names MLflow accepts."""
    values = {}
    for row in rows:
        for side in ("tuned", "base"):
            if is_number(row.get(side)):
                key = (_BAD_KEY.sub("_", str(row["task"])), _BAD_KEY.sub("_", str(row["metric"])), side)
                values[key] = float(row[side])
    return values


class MetricSink(Protocol):
    """Where metrics go. Every method may be a no-op for a sink that has no use for it."""

    def log_params(self, params: dict[str, str]) -> None:
        """Params, flattened to dotted names and text."""

    def log_metrics(self, metrics: dict, step: int) -> None:
        """One step's metrics."""

    def log_eval(self, values: dict[tuple[str, str, str], float], step: int) -> None:
        """Before/after eval scores by (task, metric, side)."""

    def log_text(self, name: str, text: str) -> None:
        """A named piece of text (the artifact path)."""

    def close(self, status: str) -> None:
        """End the sink's run with a status (FINISHED, FAILED, KILLED)."""


class JsonlSink:
    """metrics.jsonl: one JSON object per call, flushed at once (reports, plots and benches read it)."""

    def __init__(self, path: Path):
        self.path = path

    def log_params(self, params: dict[str, str]) -> None:
        """Params live in recipe.yaml, not here."""

    def log_metrics(self, metrics: dict, step: int) -> None:
        """Append {"step": step, **metrics}."""
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, **metrics}) + "\n")
            fh.flush()

    def log_eval(self, values: dict[tuple[str, str, str], float], step: int) -> None:
        """Eval tables live in eval/<backend>/table.json."""

    def log_text(self, name: str, text: str) -> None:
        """Nothing to write."""

    def close(self, status: str) -> None:
        """Every line is already on disk."""


class MlflowSink:
    """One MLflow run per genai run; its id is kept in RUN/tracking.json and reopened later."""

    def __init__(self, uri: str, experiment: str, run_dir: Path, tags: dict[str, str]):
        # Telemetry is decided when mlflow is first imported, so set this before the import.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if uri.startswith("file:"):
            # MLflow 3.x refuses the file store ("maintenance mode") unless this is set.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            import mlflow.telemetry
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise MissingExtraError("mlflow", "tracking", "MLflow tracking") from exc
        if os.environ["MLFLOW_DISABLE_TELEMETRY"].lower() in ("true", "1") and mlflow.telemetry.get_telemetry_client():
            mlflow.telemetry.set_telemetry_client()  # imported earlier with telemetry on: drop the client
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = self._reopen(run_dir) or self._create(experiment, run_dir, tags)

    def _reopen(self, run_dir: Path) -> str | None:
        saved = run_dir / TRACKING_FILE
        if not saved.exists():
            return None
        info = json.loads(saved.read_text())
        if info.get("mlflow_uri") != self.uri or not info.get("mlflow_run_id"):
            return None
        self.client.update_run(info["mlflow_run_id"], status="RUNNING")
        return info["mlflow_run_id"]

    def _create(self, experiment: str, run_dir: Path, tags: dict[str, str]) -> str:
        from mlflow.exceptions import MlflowException

        from genai.atomic import atomic_write_json

        exp = self.client.get_experiment_by_name(experiment)
        if exp is not None:
            exp_id = exp.experiment_id
        else:
            try:
                exp_id = self.client.create_experiment(experiment)
            except MlflowException:  # another process created it first
                exp_id = self.client.get_experiment_by_name(experiment).experiment_id
        run = self.client.create_run(exp_id, run_name=run_dir.name, tags=tags)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / TRACKING_FILE, {"mlflow_uri": self.uri, "mlflow_run_id": run.info.run_id})
        return run.info.run_id

    def log_params(self, params: dict[str, str]) -> None:
        """Params in batches of 100, values cut to MLflow's 500 characters."""
        from mlflow.entities import Param

        items = [Param(_BAD_KEY.sub("_", k), v[:_PARAM_MAX]) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for k, v in values.items()]
        for i in range(0, len(items), 1000):  # log_batch's metric limit
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def log_metrics(self, metrics: dict, step: int) -> None:
        """Numeric values only."""
        self._metrics({_BAD_KEY.sub("_", k): v for k, v in _numbers(metrics).items()}, step)

    def log_eval(self, values: dict[tuple[str, str, str], float], step: int) -> None:
        """eval.<task>.<metric>.<tuned|base>."""
        self._metrics({"eval." + ".".join(k): v for k, v in values.items()}, step)

    def log_text(self, name: str, text: str) -> None:
        """A run tag."""
        self.client.set_tag(self.run_id, name, text)

    def close(self, status: str) -> None:
        """Mark the MLflow run FINISHED, FAILED or KILLED."""
        self.client.set_terminated(self.run_id, status=status)


class TensorBoardSink:
    """Event files in RUN/tensorboard (train/* and eval/* scalars)."""

    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise MissingExtraError("tensorboard", "tracking", "TensorBoard logging") from exc
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_params(self, params: dict[str, str]) -> None:
        """One Markdown table of params."""
        rows = [f"| {k} | {v.replace('|', '&#124;')} |" for k, v in params.items()]
        self.writer.add_text("params", "\n".join(["| param | value |", "|---|---|", *rows]))

    def log_metrics(self, metrics: dict, step: int) -> None:
        """eval_* values under eval/, the rest under train/."""
        for k, v in _numbers(metrics).items():
            self.writer.add_scalar(f"eval/{k[5:]}" if k.startswith("eval_") else f"train/{k}", v, step)

    def log_eval(self, values: dict[tuple[str, str, str], float], step: int) -> None:
        """eval/<task>/<metric>/<tuned|base>."""
        for k, v in values.items():
            self.writer.add_scalar("eval/" + "/".join(k), v, step)

    def log_text(self, name: str, text: str) -> None:
        """A text entry."""
        self.writer.add_text(name, text)

    def close(self, status: str) -> None:
        """Flush and close the event file."""
        self.writer.flush()
        self.writer.close()


class Tracker:
    """Fans every call out to its sinks; a context manager that closes them with the right status."""

    def __init__(self, sinks: list[MetricSink]):
        self.sinks = sinks
        self._closed = False

    @classmethod
    def for_run(cls, recipe, run_dir: Path, *, metrics_file: bool = False) -> Tracker:
        """The sinks a recipe asks for (metrics.jsonl too for training)."""
        run_dir = Path(run_dir)
        cfg = recipe.tracking
        sinks: list[MetricSink] = [JsonlSink(run_dir / "metrics.jsonl")] if metrics_file else []
        if cfg.mlflow:
            sinks.append(
                MlflowSink(mlflow_uri(recipe), cfg.experiment or recipe.name, run_dir, tags=_tags(recipe, run_dir))
            )
        if cfg.tensorboard:
            sinks.append(TensorBoardSink(run_dir / "tensorboard"))
        return cls(sinks)

    @property
    def enabled(self) -> bool:
        """Whether any sink is attached."""
        return bool(self.sinks)

    @property
    def run_id(self) -> str | None:
        """The MLflow run id, when MLflow is on."""
        return next((s.run_id for s in self.sinks if isinstance(s, MlflowSink)), None)

    def log_params(self, params: dict) -> None:
        """Nested params, flattened to dotted names; user:password@ in URIs masked."""
        flat = {k: _as_text(v) for k, v in _flatten(params).items()}
        for sink in self.sinks:
            sink.log_params(flat)

    def log_recipe(self, recipe) -> None:
        """The whole recipe (secrets left out) as params."""
        self.log_params(recipe.public_dump())

    def log_metrics(self, metrics: dict, step: int) -> None:
        """One step's metrics."""
        for sink in self.sinks:
            sink.log_metrics(metrics, step)

    def log_eval(self, rows: list[dict], step: int = 0) -> None:
        """Before/after scores of an eval table: one metric per task, metric and side."""
        values = eval_metrics(rows)
        for sink in self.sinks:
            sink.log_eval(values, step)

    def log_artifact_path(self, path: Path) -> None:
        """Where the artifact is."""
        for sink in self.sinks:
            sink.log_text("artifact_path", str(path))

    def close(self, status: str = "FINISHED") -> None:
        """Close every sink once."""
        if self._closed:
            return
        self._closed = True
        for sink in self.sinks:
            sink.close(status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("FINISHED")
        else:
            self.close("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")


def _tags(recipe, run_dir: Path) -> dict[str, str]:
    return {"genai.recipe": recipe.name, "genai.run_dir": str(run_dir.resolve())}


def mlflow_uri(recipe) -> str:
    """tracking.mlflow_uri, or a local file store in <output_dir>/mlruns."""
    if recipe.tracking.mlflow_uri:
        return recipe.tracking.mlflow_uri
    return (Path(recipe.train.output_dir).resolve() / "mlruns").as_uri()


def replay_metrics(tracker: Tracker, metrics_jsonl: Path) -> None:
    """Log a finished run's metrics.jsonl (a run trained where the tracker could not reach)."""
    for line in Path(metrics_jsonl).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # blank, or a line cut short by a crash
            continue
        if not isinstance(row, dict) or not is_number(row.get("step")):
            continue
        step = int(row.pop("step"))
        tracker.log_metrics(row, step)


def adopt_remote_metrics(recipe, run_dir: Path) -> None:
    """A run trained elsewhere (a SageMaker job) into this machine's MLflow, unless the job logged there itself."""
    from genai.runs import Run

    if not recipe.tracking.mlflow:
        return
    saved = Path(run_dir) / TRACKING_FILE
    if saved.exists() and json.loads(saved.read_text()).get("mlflow_uri") == mlflow_uri(recipe):
        return
    saved.unlink(missing_ok=True)
    run_dir = Path(run_dir)
    sink = MlflowSink(mlflow_uri(recipe), recipe.tracking.experiment or recipe.name, run_dir, _tags(recipe, run_dir))
    with Tracker([sink]) as tracker:
        tracker.log_recipe(recipe)
        replay_metrics(tracker, run_dir / "metrics.jsonl")
        tracker.log_artifact_path(Run(run_dir).artifact_dir)
