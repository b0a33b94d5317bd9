"""Two CPU processes (DDP over gloo, launched by `genai train`): the same adapter as one process, and a
SIGKILL of the whole launch followed by a resume ends with the same adapter as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import genai_cli

pytestmark = pytest.mark.slow

COMMON = ["train.max_steps=8", "train.exact_match.limit=0", "lora.dropout=0.0", "train.eval_steps=4"]
TWO = [
    "train.micro_batch_size=2",
    "train.distributed.profile=ddp",
    "train.distributed.num_processes=2",
    "train.distributed.main_process_port=29533",
]


def adapter(run: Path) -> dict:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_ddp_two_processes_match_one_process_and_resume_exactly(small_recipe, tmp_path):
    one = genai_cli(
        "train",
        small_recipe,
        "--run-dir",
        tmp_path / "one",
        "train.micro_batch_size=4",
        "train.save_steps=null",
        *COMMON,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = genai_cli("train", small_recipe, "--run-dir", tmp_path / "two", "train.save_steps=null", *TWO, *COMMON)
    assert two.returncode == 0, two.stderr[-2000:]
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["processes"] == 2
    assert max_diff(adapter(tmp_path / "one"), adapter(tmp_path / "two")) < 1e-4

    # Kill every process of a 2-process run once its first checkpoint is complete, then resume it.
    killed = tmp_path / "killed"
    args = ["train.save_steps=4", *TWO, *COMMON]
    kill_launch_after_checkpoint(small_recipe, killed, args, 4)
    out = genai_cli("train", small_recipe, "--resume", "--run-dir", killed, *args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert max_diff(adapter(tmp_path / "two"), adapter(killed)) <= 1e-6


def kill_launch_after_checkpoint(recipe: Path, run: Path, args: list[str], step: int) -> None:
    """Start a 2-process `genai train`, SIGKILL every process of it once the checkpoint of `step` is complete,
    and check that what is left is a resumable run: no manifest, every process's state in each checkpoint."""
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "train", str(recipe), "--run-dir", str(run), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not (run / "checkpoints" / f"step-{step:07d}" / "state.json").exists() and time.time() < deadline:
        assert proc.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.02)
    # torchrun starts its workers in sessions of their own: kill them by their command line, then the launch.
    subprocess.run(["pkill", "-KILL", "-f", f"genai.training.worker {run}"], check=False)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    assert not (run / "manifest.json").exists()
    # A checkpoint counts as complete only with every process's state in it (each rank's RNG).
    for ckpt in (run / "checkpoints").glob("step-*"):
        assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in ckpt.iterdir()}, ckpt


def test_ddp_dpo_matches_one_process(tmp_path):
    from tests.training.conftest import QS
    from tests.training.test_preference import write_pairs

    pairs, held = (
        write_pairs(tmp_path / "p.jsonl", QS / "train.jsonl", 64, 0),
        write_pairs(tmp_path / "h.jsonl", QS / "test.jsonl", 16, 1),
    )
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text(f"""\
name: ddp-dpo
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {pairs}, format: preference}}]
  eval: [{{path: {held}, format: preference}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 8, alpha: 16, dropout: 0.0}}
train: {{method: dpo, max_steps: 6, learning_rate: 3.0e-3, num_threads: 1, logging_steps: 1, eval_steps: 6,
        exact_match: {{limit: 0}}, output_dir: {tmp_path / "runs"}}}
""")
    one = genai_cli("train", recipe, "--run-dir", tmp_path / "one", "train.micro_batch_size=4")
    assert one.returncode == 0, one.stderr[-2000:]
    port = "train.distributed.main_process_port=29541"  # not the other test's: xdist may run both at once
    two = genai_cli("train", recipe, "--run-dir", tmp_path / "two", *TWO[:-1], port)
    assert two.returncode == 0, two.stderr[-2000:]
    # Pairs split across processes, the loss divided by the pairs of the whole step: the same training.
    assert max_diff(adapter(tmp_path / "one"), adapter(tmp_path / "two")) < 1e-4
    m1, m2 = (json.loads((tmp_path / r / "manifest.json").read_text())["metrics"] for r in ("one", "two"))
    assert m2["eval_rewards/margins"] == pytest.approx(m1["eval_rewards/margins"], abs=1e-4)
    assert m2["eval_rewards/margins"] > 0


def test_ddp_grpo_resumes_exactly(tmp_path):
    # Each process samples answers to its own prompts from a generator seeded by (seed, step, micro-batch,
    # process): a killed 2-process GRPO run resumes to the adapter of an uninterrupted one.
    from tests.training.conftest import QS

    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(f"""\
name: ddp-grpo
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {QS / "train.jsonl"}, format: alpaca, limit: 200}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 8, alpha: 16, dropout: 0.0}}
train:
  method: grpo
  grpo: {{num_generations: 4, max_completion_length: 6, rewards: [{{name: exact_match}}]}}
  max_steps: 4
  micro_batch_size: 2
  learning_rate: 1.0e-3
  num_threads: 1
  logging_steps: 1
  exact_match: {{limit: 0}}
  output_dir: {tmp_path / "runs"}
""")
    args = [*TWO[:-1], "train.distributed.main_process_port=29547", "train.save_steps=2"]
    full = genai_cli("train", recipe, "--run-dir", tmp_path / "full", *args)
    assert full.returncode == 0, full.stderr[-2000:]
    assert json.loads((tmp_path / "full" / "manifest.json").read_text())["processes"] == 2
    kill_launch_after_checkpoint(recipe, tmp_path / "killed", args, 2)
    out = genai_cli("train", recipe, "--resume", "--run-dir", tmp_path / "killed", *args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert max_diff(adapter(tmp_path / "full"), adapter(tmp_path / "killed")) <= 1e-6
    logged = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in logged if "reward" in m]
    assert len(steps) == 4
    for m in steps:
        assert 0 <= m["reward"] <= 1 and 1 <= m["completion_length"] <= 6 and m["kl"] >= 0, m
