"""Before/after means base model vs fine-tuned model for every method, full fine-tuning included."""

import json

import pytest

from tests.conftest import ROOT, genai_cli

QS = ROOT / "recipes" / "data" / "quickstart"


@pytest.mark.slow
def test_full_finetune_scores_the_recipes_base_model_as_base(tmp_path):
    recipe = tmp_path / "full.yaml"
    recipe.write_text(f"""\
name: full
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {QS / "train.jsonl"}, format: alpaca, limit: 2000}}]
  eval: [{{path: {QS / "test.jsonl"}, format: alpaca, limit: 40}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{enabled: false}}
train:
  output_dir: {tmp_path / "runs"}
  max_steps: 80
  micro_batch_size: 8
  learning_rate: 1.0e-3
  warmup_steps: 5
  num_threads: 1
  save_steps: null
  exact_match: {{limit: 0}}
eval:
  tasks: [quickstart_addition]
  limit: 30
  backend: hf
  gate: [{{task: quickstart_addition, metric: "exact_match,strip", max_drop: 0.0}}]
""")
    assert (proc := genai_cli("train", recipe)).returncode == 0, proc.stderr[-2000:]
    assert (proc := genai_cli("eval", recipe, cwd=tmp_path)).returncode == 0, proc.stderr[-2000:]
    assert "fatal: not a git repository" not in proc.stderr  # lm-eval's git lookup, outside a checkout
    run = next((tmp_path / "runs" / "full").iterdir())
    assert (run / "model" / "config.json").exists()
    table = json.loads((run / "eval" / "hf" / "table.json").read_text())
    [row] = table["rows"]
    # The tiny base never ends its turn: 0% before. Scoring the fine-tuned model as "base" read 0.77 -> 0.77.
    assert row["base"] <= 0.05 and row["tuned"] >= 0.5, row
    assert row["delta"] == pytest.approx(row["tuned"] - row["base"])
