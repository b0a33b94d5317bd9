"""`genai run`: the whole path, resumable by stage, gated, with lineage in the manifest."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, genai_cli

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

QS = ROOT / "recipes" / "quickstart.yaml"


def args(tmp_path, *more):
    # The quickstart, shorter: still learns enough to pass a 0.5 gate on 16 held-out items.
    return [
        f"train.output_dir={tmp_path / 'runs'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "train.max_steps=300",
        "train.save_steps=100",
        "train.exact_match.limit=0",
        "eval.limit=16",
        "eval.tasks=[quickstart_addition]",
        "eval.gate=[{task: quickstart_addition, metric: exact_match, min: 0.5}]",
        "serve.port=0",
        *more,
    ]


def only_run(tmp_path) -> Path:
    runs = list((tmp_path / "runs" / "quickstart").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_quickstart_through_genai_run_is_served_and_shut_down(tmp_path):
    proc = genai_cli("run", QS, *args(tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run(tmp_path)
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert [stages[s]["status"] for s in ("train", "eval", "gate", "serve")] == ["done", "done", "passed", "done"]
    assert all(stages[s]["seconds"] >= 0 for s in stages)
    sample = stages["serve"]["sample"]
    q = sample["request"][-1]["content"]  # e.g. "What is 15 + 5?" -> "20"
    nums = [int(t) for t in q.replace("?", " ").replace(".", " ").split() if t.isdigit()]
    assert sample["answer"].strip() == str(sum(nums))
    out = proc.stdout
    assert "final loss:" in out and "quickstart_addition exact_match,strip" in out and "gate:       passed" in out
    assert "endpoint:   http://127.0.0.1:" in out
    left = subprocess.run(["pgrep", "-f", f"lora-modules quickstart={run}"], capture_output=True, text=True).stdout
    assert not left.strip(), "the endpoint outlived `genai run`"

    # Tracking, read back by the tools' own readers; plots, report and model card.
    import os

    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("quickstart")
    (mrun,) = client.search_runs([exp.experiment_id])
    assert mrun.info.run_name == run.name and mrun.data.params["lora.r"] == "16"
    assert len(client.get_metric_history(mrun.info.run_id, "loss")) >= 5
    assert any(k.startswith("eval.quickstart_addition") for k in mrun.data.metrics)
    assert mrun.data.tags["artifact_path"].endswith("adapter")
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert len(acc.Scalars("train/loss")) >= 5
    for png in ("loss.png", "eval.png"):
        assert (run / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "quickstart_addition" in page
    card = (run / "adapter" / "README.md").read_text()
    assert card.startswith("---") and "license: apache-2.0" in card and "quickstart_addition" in card


def test_failing_gate_stops_before_serve(tmp_path):
    proc = genai_cli(
        "run",
        QS,
        # No model reaches 1.01: a few steps of training will do.
        *args(
            tmp_path, "train.max_steps=20", "eval.gate=[{task: quickstart_addition, metric: exact_match, min: 1.01}]"
        ),
        timeout=900,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    stages = json.loads((only_run(tmp_path) / "manifest.json").read_text())["stages"]
    assert stages["gate"]["status"] == "failed" and "serve" not in stages
    assert "not serving" in proc.stderr and "gate:       FAILED" in proc.stdout


def test_resume_after_a_failure_in_the_eval_stage(tmp_path):
    suites = tmp_path / "suites"
    shutil.copytree(ROOT / "eval", suites)
    data = suites / "quickstart" / "quickstart_addition.yaml"
    data.write_text(data.read_text().replace("../../recipes/data/quickstart/test.jsonl", "held_out.jsonl"))
    env = {"GENAI_EVAL_DIR": str(suites)}
    # What is resumed is the stage, not the learning: a few steps, and a gate any model passes.
    short = args(tmp_path, "train.max_steps=20", "eval.gate=[{task: quickstart_addition, metric: exact_match, min: 0}]")
    first = genai_cli("run", QS, *short, "--no-serve", env=env, timeout=900)
    assert first.returncode == 2 and "file not found: held_out.jsonl" in first.stderr
    run = only_run(tmp_path)
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["train"]["status"] == "done" and "eval" not in stages
    metrics_before = (run / "metrics.jsonl").read_text()

    shutil.copy(ROOT / "recipes" / "data" / "quickstart" / "test.jsonl", suites / "quickstart" / "held_out.jsonl")
    second = genai_cli("run", QS, *short, "--no-serve", env=env, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert only_run(tmp_path) == run  # the same run continued
    assert (run / "metrics.jsonl").read_text() == metrics_before  # training was not repeated
    assert "continuing" in second.stderr and "1/4 train" not in second.stderr
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["eval"]["status"] == "done" and stages["serve"]["status"] == "skipped"


def test_same_seed_twice_gives_the_same_eval_numbers_and_lineage(tmp_path):
    # Half the steps: the model learns (exact match rises), and any nondeterminism would show in the numbers.
    half = args(tmp_path, "train.max_steps=150", "eval.gate=[{task: quickstart_addition, metric: exact_match, min: 0}]")
    for _ in range(2):
        assert genai_cli("run", QS, *half, "--no-serve", timeout=900).returncode == 0
    runs = sorted((tmp_path / "runs" / "quickstart").iterdir())
    assert len(runs) == 2  # a finished run is not continued: the second command starts a new one
    tables = [json.loads((r / "eval" / "hf" / "table.json").read_text())["rows"] for r in runs]
    assert tables[0] == tables[1]
    (match,) = [r for r in tables[0] if r["metric"] == "exact_match,strip"]
    assert match["tuned"] > match["base"]  # a trained model's numbers were compared, not the base's alone

    m = json.loads((runs[0] / "manifest.json").read_text())
    for path, digest in m["data_files"].items():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
    assert str(ROOT / "recipes" / "data" / "quickstart" / "train.jsonl") in m["data_files"]
    from genai.recipe import load_recipe

    assert m["recipe_sha256"] == load_recipe(runs[0] / "recipe.yaml").content_hash()
    assert m["base_model"]["name_or_path"] == "genai/tiny-llama" and len(m["base_model"]["sha256"]) == 64
    assert {"torch", "transformers", "peft"} <= set(m["environment"]["packages"])
    assert m["environment"]["hardware"]["cpus"] >= 1 and "git_commit" in m

    out = genai_cli("runs", "compare", runs[0], runs[1], "--json")
    rows = {r["what"]: r for r in json.loads(out.stdout)}
    assert rows["quickstart_addition exact_match,strip"]["a"] == rows["quickstart_addition exact_match,strip"]["b"]
    listing = json.loads(genai_cli("runs", "list", tmp_path / "runs", "--json").stdout)
    assert [r["gate"] for r in listing] == ["passed", "passed"]
    shown = json.loads(genai_cli("runs", "show", runs[0], "--json").stdout)
    assert shown["manifest"]["stages"]["serve"]["status"] == "skipped"
