"""SIGKILL at a random step, resume, and end with the same adapter as an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import genai_cli

ARGS = [
    "train.max_steps=60",
    "train.save_steps=10",
    "train.logging_steps=1",
    "train.eval_steps=null",
    "train.exact_match.limit=0",
    "lora.dropout=0.1",
]


def last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(x)["step"] for x in lines if x.strip().endswith("}")]
    return max(steps, default=0)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_adapter(small_recipe, tmp_path):
    full = tmp_path / "full"
    out = genai_cli("train", small_recipe, "--run-dir", full, *ARGS)
    assert out.returncode == 0, out.stderr[-2000:]

    killed = tmp_path / "killed"
    kill_at = random.Random().randint(12, 45)
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "train", str(small_recipe), "--run-dir", str(killed), *ARGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    deadline = time.time() + 300
    while last_step(killed) < kill_at and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
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
    assert out.returncode == 2 and "no earlier run of recipe 'small'" in out.stderr
