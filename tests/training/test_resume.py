"""SIGKILL at a random step, resume, and end with the same adapter as an uninterrupted run."""

import random

import pytest
from safetensors.torch import load_file

from tests.conftest import genai_cli
from tests.training.conftest import train_then_kill

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
    assert out.returncode == 2 and "no earlier run of recipe 'small'" in out.stderr
