import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

QS = ROOT / "recipes" / "data" / "quickstart"


@pytest.fixture()
def small_recipe(tmp_path) -> Path:
    """The quickstart task, cut down to seconds."""
    p = tmp_path / "small.yaml"
    p.write_text(f"""\
name: small
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {QS / "train.jsonl"}, format: alpaca, limit: 1500}}]
  eval: [{{path: {QS / "test.jsonl"}, format: alpaca, limit: 40}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 8, alpha: 16, dropout: 0.1}}
train:
  output_dir: {tmp_path / "runs"}
  max_steps: 40
  micro_batch_size: 4
  learning_rate: 3.0e-3
  warmup_steps: 5
  num_threads: 1
  logging_steps: 5
  eval_steps: 20
  save_steps: 10
  save_total_limit: 2
  exact_match: {{limit: 8, max_new_tokens: 4}}
""")
    return p


def last_step(run: Path) -> int:
    """The last step in a run's metrics.jsonl (0 before the first line)."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(x)["step"] for x in lines if x.strip().endswith("}")]
    return max(steps, default=0)


def train_then_kill(recipe: Path, run: Path, args: list[str], at_step: int) -> None:
    """`genai train` in its own process, SIGKILLed once its metrics reach `at_step`."""
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "train", str(recipe), "--run-dir", str(run), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    deadline = time.time() + 300
    while last_step(run) < at_step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def resume_matches_uninterrupted(recipe: Path, tmp_path: Path, args: list[str], kill_between: tuple[int, int]):
    """Train `recipe` uninterrupted (tmp_path/full) and again SIGKILLed at a random step in `kill_between`,
    then resumed (tmp_path/killed); the two adapters must agree within 1e-6. Returns (full, killed)."""
    from safetensors.torch import load_file

    from tests.conftest import genai_cli

    full, killed = tmp_path / "full", tmp_path / "killed"
    out = genai_cli("train", recipe, "--run-dir", full, *args)
    assert out.returncode == 0, out.stderr[-3000:]
    train_then_kill(recipe, killed, args, at_step=random.Random().randint(*kill_between))
    out = genai_cli("train", recipe, "--resume", "--run-dir", killed, *args)
    assert out.returncode == 0, out.stderr[-3000:]
    a = load_file(str(full / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(killed / "adapter" / "adapter_model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    return full, killed
