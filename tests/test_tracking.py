"""Experiment tracking: what we log to MLflow and TensorBoard reads back with their own readers."""

import importlib.util
import json
from pathlib import Path

import pytest

from genai.recipe import load_recipe
from genai.tracking import Tracker, mlflow_uri, replay_metrics

# find_spec, not importorskip: importing mlflow here would start its telemetry client before the Tracker
# switches it off.
pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("mlflow") and importlib.util.find_spec("tensorboard")), reason="needs genai[tracking]"
)

GOOD = """\
name: t
model:
  name_or_path: genai/tiny-llama
data:
  train:
    - path: d.jsonl
lora:
  r: 8
"""

EVAL_ROWS = [
    {"task": "arith", "metric": "exact_match,strict-match", "base": 0.1, "tuned": 0.6, "delta": 0.5, "stderr": 0.05},
    {"task": "copy", "metric": "acc,none", "base": None, "tuned": 0.9, "delta": None, "stderr": None},
]


def recipe(tmp_path: Path, *overrides: str):
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (tmp_path / "r.yaml").write_text(GOOD)
    return load_recipe(tmp_path / "r.yaml", [f"train.output_dir={tmp_path / 'runs'}", *overrides])


def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "t" / "20250101-000000-abcd"
    d.mkdir(parents=True)
    return d


def test_mlflow_round_trip(tmp_path):
    from mlflow.tracking import MlflowClient

    r = recipe(tmp_path, "tracking.mlflow=true", "serve.api_key=sekrit")
    rd = run_dir(tmp_path)
    with Tracker.for_run(r, rd) as tr:
        assert tr.enabled
        tr.log_params(r.public_dump())
        for step, loss in enumerate([3.0, 2.0, 1.0], start=1):
            tr.log_metrics({"loss": loss, "lr": 1e-3, "grad_norm": None, "note": "x", "flag": True}, step)
        tr.log_eval(EVAL_ROWS)
        tr.log_artifact_path(rd / "adapter")
        run_id = tr.run_id

    uri = (tmp_path / "runs" / "mlruns").resolve().as_uri()
    assert mlflow_uri(r) == uri
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.run_name == rd.name
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "t"
    params = run.data.params
    assert params["lora.r"] == "8" and params["train.learning_rate"] == "0.0002"
    assert "sekrit" not in json.dumps(params) and params["serve.api_key"] == "null"
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [3.0, 2.0, 1.0]
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3]
    assert "grad_norm" not in run.data.metrics and "note" not in run.data.metrics and "flag" not in run.data.metrics
    assert run.data.metrics["eval.arith.exact_match_strict-match.tuned"] == 0.6
    assert run.data.metrics["eval.arith.exact_match_strict-match.base"] == 0.1
    assert run.data.metrics["eval.copy.acc_none.tuned"] == 0.9 and "eval.copy.acc_none.base" not in run.data.metrics
    assert run.data.tags["artifact_path"] == str(rd / "adapter")
    assert not (rd / "tensorboard").exists()


def test_mlflow_marks_failed_runs_and_long_params_are_cut(tmp_path):
    from mlflow.tracking import MlflowClient

    r = recipe(tmp_path, "tracking.mlflow=true", "tracking.experiment=exp-x")
    with pytest.raises(RuntimeError):
        with Tracker.for_run(r, run_dir(tmp_path)) as tr:
            tr.log_params({"long": "y" * 2000, "uri": "http://user:pw@host:5000/x"})
            raise RuntimeError("boom")
    tr.close()  # idempotent
    run = MlflowClient(tracking_uri=mlflow_uri(r)).get_run(tr.run_id)
    assert run.info.status == "FAILED"
    assert len(run.data.params["long"]) == 500
    assert run.data.params["uri"] == "http://***@host:5000/x"


def test_tensorboard_round_trip(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = recipe(tmp_path, "tracking.tensorboard=true")
    rd = run_dir(tmp_path)
    with Tracker.for_run(r, rd) as tr:
        tr.log_params(r.public_dump())
        for step in (1, 2, 3):
            tr.log_metrics({"loss": 3.0 - step, "eval_loss": 4.0 - step if step == 3 else None}, step)
        tr.log_eval(EVAL_ROWS)
        tr.log_artifact_path(rd / "adapter")
    assert tr.run_id is None and not (tmp_path / "runs" / "mlruns").exists()

    acc = EventAccumulator(str(rd / "tensorboard"))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert [e.value for e in acc.Scalars("train/loss")] == [2.0, 1.0, 0.0]
    assert [e.step for e in acc.Scalars("eval/loss")] == [3]
    assert "eval/arith/exact_match_strict-match/tuned" in scalars
    assert acc.Scalars("eval/copy/acc_none/tuned")[0].value == pytest.approx(0.9)
    assert "eval/copy/acc_none/base" not in scalars


def test_disabled_tracker_is_a_no_op(tmp_path):
    r = recipe(tmp_path)
    rd = run_dir(tmp_path)
    with Tracker.for_run(r, rd) as tr:
        assert not tr.enabled
        tr.log_params(r.public_dump())
        tr.log_metrics({"loss": 1.0}, 1)
        tr.log_eval(EVAL_ROWS)
        tr.log_artifact_path(rd)
    assert tr.run_id is None
    assert list(rd.iterdir()) == [] and sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["t"]


def test_replay_metrics(tmp_path):
    from mlflow.tracking import MlflowClient

    r = recipe(tmp_path, "tracking.mlflow=true")
    rd = run_dir(tmp_path)
    lines = [
        {"step": 1, "loss": 2.5, "lr": 1e-3, "grad_norm": 0.7, "tokens_per_s": 900.0},
        {"step": 2, "loss": 2.0, "lr": 9e-4, "eval_loss": 2.2, "exact_match": 0.25},
        {"step": 3, "loss": 1.5, "lr": None},
    ]
    (rd / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 4, "lo')
    with Tracker.for_run(r, rd) as tr:
        replay_metrics(tr, rd / "metrics.jsonl")
    client = MlflowClient(tracking_uri=mlflow_uri(r))
    assert [(m.step, m.value) for m in client.get_metric_history(tr.run_id, "loss")] == [(1, 2.5), (2, 2.0), (3, 1.5)]
    assert [m.step for m in client.get_metric_history(tr.run_id, "lr")] == [1, 2]
    metrics = client.get_run(tr.run_id).data.metrics
    assert metrics["eval_loss"] == 2.2 and metrics["exact_match"] == 0.25 and "step" not in metrics
