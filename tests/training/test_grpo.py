"""GRPO (train.method: grpo): answers sampled from the model as it trains, scored by reward functions,
advantages relative to each prompt's group; a run from an under-trained parent that learns the sums, an
exact resume after SIGKILL (sampling included), its signals in metrics.jsonl, and wrong data refused."""

import json
from pathlib import Path

import pytest

from tests.conftest import genai_cli
from tests.training.conftest import QS, resume_matches_uninterrupted


@pytest.fixture()
def parent(short_parent) -> Path:
    """The under-trained SFT parent (tests/conftest.py)."""
    return short_parent


@pytest.fixture()
def grpo_recipe(parent, tmp_path) -> Path:
    p = tmp_path / "grpo.yaml"
    p.write_text(f"""\
name: grpo
model: {{name_or_path: {parent}}}
data:
  train: [{{path: {QS / "train.jsonl"}, format: alpaca, limit: 400}}]
  eval: [{{path: {QS / "test.jsonl"}, format: alpaca, limit: 64}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 8, alpha: 16, dropout: 0.1}}
train:
  method: grpo
  grpo:
    num_generations: 4
    max_completion_length: 6
    beta: 0.04
    rewards: [{{name: exact_match}}, {{name: length, weight: 0.1, args: {{max_chars: 2}}}}]
  output_dir: {tmp_path / "runs"}
  max_steps: 12
  micro_batch_size: 4
  learning_rate: 1.0e-3
  num_threads: 1
  logging_steps: 1
  exact_match: {{limit: 0}}
""")
    return p


@pytest.mark.slow
def test_grpo_resumes_exactly_after_sigkill_and_logs_its_signals(grpo_recipe, tmp_path):
    args = ["train.save_steps=3", "train.eval_steps=null"]
    full, killed = resume_matches_uninterrupted(grpo_recipe, tmp_path, args, kill_between=(4, 9))
    steps = [m for m in map(json.loads, (full / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    assert len(steps) == 12
    for m in steps:
        for key in ("reward", "reward_std", "rewards/exact_match", "rewards/length", "kl", "completion_length"):
            assert key in m, (key, m)
        assert 1 <= m["completion_length"] <= 6 and m["kl"] >= 0
        assert m["reward"] == pytest.approx(m["rewards/exact_match"] + 0.1 * m["rewards/length"], abs=1e-5)
    assert steps[0]["kl"] < 1e-6  # the first answers come from the reference itself
    assert json.loads((full / "manifest.json").read_text())["method"] == "grpo"
    # The same answers were sampled after the resume: the logged rewards agree step by step.
    resumed = {
        m["step"]: m for m in map(json.loads, (killed / "metrics.jsonl").read_text().splitlines()) if "loss" in m
    }
    for m in steps:
        assert resumed[m["step"]]["reward"] == pytest.approx(m["reward"], abs=1e-9), m["step"]


@pytest.mark.slow
def test_grpo_learns_from_an_under_trained_parent(grpo_recipe, tmp_path):
    run = tmp_path / "run"
    out = genai_cli(
        "train",
        grpo_recipe,
        "--run-dir",
        run,
        "train.max_steps=40",
        "train.logging_steps=10",
        "train.eval_steps=40",
        "train.exact_match.limit=64",
        "lora.dropout=0.0",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((run / "manifest.json").read_text())
    met = m["metrics"]
    assert met["exact_match_after"] - met["exact_match_before"] >= 0.15, met
    assert met["eval_rewards/exact_match"] == pytest.approx(met["exact_match_after"], abs=1e-9)
    steps = [x for x in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in x]
    assert steps[-1]["reward"] > steps[0]["reward"]


def test_grpo_on_preference_data_stops_before_training(grpo_recipe, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "1 + 1?", "chosen": "2", "rejected": "3"}\n')
    out = genai_cli("validate", grpo_recipe, f"data.train=[{{path: {pairs}, format: preference}}]")
    assert out.returncode == 2
    assert (
        "data.train.0.format: train.method 'grpo' trains on alpaca or messages or sharegpt or completion" in out.stderr
    )
