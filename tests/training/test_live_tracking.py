"""`genai train` writes to MLflow and TensorBoard while it trains; resume and eval land in the same MLflow run."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

from tests.conftest import genai_cli
from tests.training.conftest import train_then_kill

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (importlib.util.find_spec("mlflow") and importlib.util.find_spec("tensorboard")),
        reason="needs genai[tracking]",
    ),
]

ARGS = [
    "train.max_steps=30",
    "train.save_steps=10",
    "train.logging_steps=1",
    "train.eval_steps=null",
    "train.exact_match.limit=0",
    "tracking.mlflow=true",
    "tracking.tensorboard=true",
]


def mlflow_client(tmp_path: Path):
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").resolve().as_uri())


def test_metrics_reach_mlflow_during_training_and_resume_continues_the_run(small_recipe, tmp_path):
    run = tmp_path / "run"
    train_then_kill(small_recipe, run, ARGS, at_step=15)

    # Killed mid-run, nothing was replayed at the end: what MLflow has was logged live.
    client = mlflow_client(tmp_path)
    run_id = json.loads((run / "tracking.json").read_text())["mlflow_run_id"]
    steps = {m.step for m in client.get_metric_history(run_id, "loss")}
    # (step 15 itself may be lost: SIGKILL can land between metrics.jsonl and MLflow's write)
    assert {1, 5, 10} <= steps and 30 not in steps
    assert client.get_run(run_id).data.params["lora.r"] == "8"

    out = genai_cli("train", small_recipe, "--resume", "--run-dir", run, *ARGS)
    assert out.returncode == 0, out.stderr[-2000:]
    exp = client.get_experiment_by_name("small")
    (only,) = client.search_runs([exp.experiment_id])
    assert only.info.run_id == run_id and only.info.status == "FINISHED"
    assert set(range(1, 31)) <= {m.step for m in client.get_metric_history(run_id, "loss")}
    assert only.data.tags["artifact_path"].endswith("adapter")

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert {e.step for e in acc.Scalars("train/loss")} >= set(range(1, 31))

    # genai eval adds its before/after scores to the same MLflow run.
    ev = genai_cli("eval", run, "eval.tasks=[quickstart_addition]", "eval.limit=4", "eval.gate=[]")
    assert ev.returncode == 0, ev.stderr[-2000:]
    metrics = client.get_run(run_id).data.metrics
    assert "eval.quickstart_addition.exact_match_strip.tuned" in metrics
    assert len(client.search_runs([exp.experiment_id])) == 1
