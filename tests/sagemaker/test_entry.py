"""The in-container entry point on the tiny model against an emulated /opt/ml tree."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from genai.recipe import load_recipe
from genai.sagemaker import submit
from tests.conftest import GUARD, ROOT

pytestmark = pytest.mark.sagemaker

QS = ROOT / "recipes" / "data" / "quickstart"


def job_tree(tmp_path: Path, name: str, method: str = "sft", steps: int = 40) -> tuple[Path, Path]:
    """(/opt/ml stand-in, source dir) exactly as submit.py packages a job."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    recipe_file = tmp_path / "job.yaml"
    train, held, fmt = QS / "train.jsonl", QS / "test.jsonl", "alpaca"
    if method in ("dpo", "orpo"):
        train, held, fmt = QS / "pairs_train.jsonl", QS / "pairs_test.jsonl", "preference"
    grpo = "grpo: {num_generations: 2, max_completion_length: 4}," if method == "grpo" else ""
    recipe_file.write_text(f"""\
name: smjob
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {train}, format: {fmt}, limit: 1500}}]
  eval: [{{path: {held}, format: {fmt}, limit: 20}}]
  max_length: 64
lora: {{r: 8, alpha: 16, dropout: 0.1}}
train: {{method: {method}, {grpo} max_steps: {steps}, micro_batch_size: 4, learning_rate: 3.0e-3, num_threads: 1,
        logging_steps: 1, save_steps: 10, exact_match: {{limit: 0}}}}
sagemaker: {{role: "arn:aws:iam::123456789012:role/R", bucket: b}}
""")
    recipe = load_recipe(recipe_file)
    plan = submit.plan(recipe, "job")
    src = submit.source_dir(recipe, plan, tmp_path / f"{name}-src")
    opt = tmp_path / name
    for c in plan.channels:  # what SageMaker downloads into each channel
        (opt / "input" / "data" / c.name).mkdir(parents=True)
        shutil.copy(c.local, opt / "input" / "data" / c.name / c.local.name)
    return opt, src


def entry(opt: Path, src: Path, **kw) -> subprocess.Popen:
    env = {
        **os.environ,
        "GENAI_OPT_ML": str(opt),
        "SM_SOURCE_DIR": str(src),
        "PYTHONPATH": os.pathsep.join([str(src), str(GUARD)]),
        "SM_HPS": "{}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "genai.sagemaker.entry"],
        cwd=src,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def last_step(opt: Path) -> int:
    try:
        lines = (opt / "model" / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return max((json.loads(x)["step"] for x in lines if x.endswith("}")), default=0)


@pytest.mark.slow
def test_entry_trains_from_channels_into_opt_ml_model(tmp_path):
    opt, src = job_tree(tmp_path, "opt_ml")
    proc = entry(opt, src)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    manifest = json.loads((opt / "model" / "manifest.json").read_text())
    assert manifest["steps"] == 40 and (opt / "model" / "adapter" / "adapter_model.safetensors").exists()
    assert all(str(opt / "input" / "data") in p for p in manifest["data_files"])  # read from the channels
    assert sorted(p.name for p in (opt / "checkpoints").iterdir()) == ["step-0000030", "step-0000040"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "orpo", "grpo"])
def test_entry_runs_every_training_method(tmp_path, method):
    opt, src = job_tree(tmp_path, "opt_ml", method, steps=3)
    proc = entry(opt, src)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    manifest = json.loads((opt / "model" / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["steps"] == 3
    assert (opt / "model" / "adapter" / "adapter_model.safetensors").exists()
    logged = [json.loads(x) for x in (opt / "model" / "metrics.jsonl").read_text().splitlines()]
    signal = {"dpo": "rewards/margins", "orpo": "log_odds_ratio", "grpo": "rewards/exact_match"}[method]
    assert any(signal in m for m in logged)


@pytest.mark.slow
def test_spot_interruption_then_restart_gives_the_same_adapter(tmp_path):
    opt_a, src = job_tree(tmp_path, "uninterrupted")
    proc = entry(opt_a, src)
    assert proc.wait(timeout=600) == 0
    opt_b, src_b = job_tree(tmp_path / "b", "interrupted")
    proc = entry(opt_b, src_b)
    deadline = time.time() + 300
    while last_step(opt_b) < 23 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before the interruption"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (opt_b / "model" / "manifest.json").exists()
    # SageMaker restarts the job with /opt/ml/checkpoints restored and a fresh /opt/ml/model.
    shutil.rmtree(opt_b / "model")
    again = entry(opt_b, src_b)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "resuming from" in out
    a = load_file(str(opt_a / "model" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(opt_b / "model" / "adapter" / "adapter_model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


def test_failure_is_written_to_opt_ml_output_failure(tmp_path):
    opt, src = job_tree(tmp_path, "opt_ml")
    shutil.rmtree(opt / "input" / "data" / "train0")  # the channel did not arrive
    proc = entry(opt, src)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    failure = (opt / "output" / "failure").read_text()
    assert "data.train.0.path" in failure and "file not found" in failure
