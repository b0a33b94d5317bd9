"""SIGKILL at a random step, resume, and end with the same adapter as an uninterrupted run."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import genai_cli, sigint_default
from tests.training.conftest import last_step, train_then_kill

ARGS = [
    "train.max_steps=60",
    "train.save_steps=10",
    "train.logging_steps=1",
    "train.eval_steps=null",
    "train.exact_match.limit=0",
    "lora.dropout=0.1",
]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_adapter(small_recipe, tmp_path):
    full = tmp_path / "full"
    out = genai_cli("train", small_recipe, "--run-dir", full, *ARGS)
    assert out.returncode == 0, out.stderr[-2000:]

    killed = tmp_path / "killed"
    kill_at = random.Random().randint(12, 45)
    train_then_kill(small_recipe, killed, ARGS, kill_at)
    assert not (killed / "manifest.json").exists()  # a killed run never looks complete
    assert not (killed / "adapter").exists()

    out = genai_cli("train", small_recipe, "--resume", "--run-dir", killed, *ARGS)
    assert out.returncode == 0, out.stderr[-2000:]
    a = load_file(str(full / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(killed / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff <= 1e-6, f"killed at step {kill_at}: max abs diff {diff}"


def test_resume_without_a_run_is_a_clear_error(small_recipe):
    out = genai_cli("train", small_recipe, "--resume")
    assert out.returncode == 2 and "no unfinished run of recipe 'small' with a checkpoint" in out.stderr


@pytest.mark.slow
def test_resume_takes_the_newest_run_with_a_checkpoint_and_keeps_exact_match_before(small_recipe, tmp_path):
    args = [a for a in ARGS if not a.startswith("train.exact_match")]  # score the base before training
    run = tmp_path / "runs" / "small" / "a"
    train_then_kill(small_recipe, run, args, at_step=15)
    leftover = tmp_path / "runs" / "small" / "b"  # newer, and nothing in it to resume
    leftover.mkdir()
    (leftover / "recipe.yaml").write_text((run / "recipe.yaml").read_text())
    out = genai_cli("train", small_recipe, "--resume", *args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resumed from step 10 ({run / 'checkpoints' / 'step-0000010'})" in out.stdout + out.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert manifest["metrics"]["exact_match_before"] == first["exact_match"] is not None
    assert manifest["steps"] == 60 and not (leftover / "manifest.json").exists()


def test_a_failed_start_leaves_no_run_folder(small_recipe, tmp_path):
    out = genai_cli("train", small_recipe, "lora.target_modules=[no_such_proj]")
    assert out.returncode == 2 and "lora.target_modules" in out.stderr and "Traceback" not in out.stderr
    assert list((tmp_path / "runs" / "small").iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(small_recipe, tmp_path):
    run = tmp_path / "runs" / "small" / "a"
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "train", str(small_recipe), "--run-dir", str(run), *ARGS],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    deadline = time.time() + 300
    while last_step(run) < 12 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"resume with: genai train RECIPE --resume --run-dir {run}" in err and "Traceback" not in err
