"""Optional experiment tracking: MLflow and/or TensorBoard, switched on in the recipe's `tracking` section.

Both libraries are imported only when enabled (`pip install 'genai[tracking]'`). MLflow is used
through an explicit MlflowClient rather than the fluent API, so no process-global active run or
tracking URI is touched. Params come from `recipe.public_dump()`, which leaves the API key out.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from genai.errors import MissingExtraError

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


def _number(value: Any) -> float | None:
    # bools are ints in Python but are not metrics
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class Tracker:
    def __init__(self, recipe, run_dir: Path):
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.cfg = recipe.tracking
        self._client = None
        self._run_id: str | None = None
        self._writer = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.mlflow or self.cfg.tensorboard)

    @property
    def mlflow_uri(self) -> str:
        if self.cfg.mlflow_uri:
            return self.cfg.mlflow_uri
        return (Path(self.recipe.train.output_dir).resolve() / "mlruns").as_uri()

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def start(self) -> Tracker:
        if self.cfg.mlflow and self._run_id is None:
            self._start_mlflow()
        if self.cfg.tensorboard and self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise MissingExtraError("tensorboard", "tracking", "TensorBoard logging") from exc
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        return self

    def _start_mlflow(self) -> None:
        # Telemetry is decided when mlflow is first imported, so set this before the import.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        uri = self.mlflow_uri
        if uri.startswith("file:"):
            # MLflow 3.x refuses the file store ("maintenance mode") unless this is set.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            import mlflow.telemetry
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise MissingExtraError("mlflow", "tracking", "MLflow tracking") from exc
        if os.environ["MLFLOW_DISABLE_TELEMETRY"].lower() in ("true", "1") and mlflow.telemetry.get_telemetry_client():
            mlflow.telemetry.set_telemetry_client()  # imported earlier with telemetry on: drop the client
        client = MlflowClient(tracking_uri=uri)
        name = self.cfg.experiment or self.recipe.name
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            exp_id = exp.experiment_id
        else:
            try:
                exp_id = client.create_experiment(name)
            except MlflowException:  # another process created it first
                exp_id = client.get_experiment_by_name(name).experiment_id
        run = client.create_run(
            exp_id,
            run_name=self.run_dir.name,
            tags={"genai.recipe": self.recipe.name, "genai.run_dir": str(self.run_dir.resolve())},
        )
        self._client, self._run_id = client, run.info.run_id

    def log_params(self, params: dict) -> None:
        flat = {k: _as_text(v) for k, v in _flatten(params).items()}
        if self._run_id:
            from mlflow.entities import Param

            items = [Param(_BAD_KEY.sub("_", k), v[:_PARAM_MAX]) for k, v in flat.items()]
            for i in range(0, len(items), _BATCH):
                self._client.log_batch(self._run_id, params=items[i : i + _BATCH])
        if self._writer is not None:
            rows = [f"| {k} | {v.replace('|', '&#124;')} |" for k, v in flat.items()]
            self._writer.add_text("params", "\n".join(["| param | value |", "|---|---|", *rows]))

    def log_recipe(self) -> None:
        """Log the whole recipe (secrets left out) as params."""
        self.log_params(self.recipe.public_dump())

    def log_metrics(self, metrics: dict, step: int) -> None:
        values = {k: v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None}
        if not values:
            return
        self._mlflow_metrics({_BAD_KEY.sub("_", k): v for k, v in values.items()}, step)
        if self._writer is not None:
            for k, v in values.items():
                tag = f"eval/{k[5:]}" if k.startswith("eval_") else f"train/{k}"
                self._writer.add_scalar(tag, v, step)

    def log_eval(self, rows: list[dict], step: int = 0) -> None:
        """Before/after scores: one metric per task, metric and side (tuned, base)."""
        values: dict[tuple[str, str, str], float] = {}
        for row in rows:
            for side in ("tuned", "base"):
                v = _number(row.get(side))
                if v is not None:
                    values[(_BAD_KEY.sub("_", str(row["task"])), _BAD_KEY.sub("_", str(row["metric"])), side)] = v
        self._mlflow_metrics({"eval." + ".".join(k): v for k, v in values.items()}, step)
        if self._writer is not None:
            for k, v in values.items():
                self._writer.add_scalar("eval/" + "/".join(k), v, step)

    def log_artifact_path(self, path: Path) -> None:
        if self._run_id:
            self._client.set_tag(self._run_id, "artifact_path", str(path))
        if self._writer is not None:
            self._writer.add_text("artifact_path", str(path))

    def _mlflow_metrics(self, values: dict[str, float], step: int) -> None:
        if not self._run_id or not values:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for k, v in values.items()]
        for i in range(0, len(items), 1000):  # log_batch's metric limit
            self._client.log_batch(self._run_id, metrics=items[i : i + 1000])

    def close(self, status: str = "FINISHED") -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if self._run_id:
            self._client.set_terminated(self._run_id, status=status)

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("FINISHED")
        else:
            self.close("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")


def replay_metrics(tracker: Tracker, metrics_jsonl: Path) -> None:
    """Log a finished run's metrics.jsonl (one JSON object per line, each with a "step")."""
    for line in Path(metrics_jsonl).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # blank, or a line cut short by a crash
            continue
        if not isinstance(row, dict) or _number(row.get("step")) is None:
            continue
        step = int(row.pop("step"))
        tracker.log_metrics(row, step)
