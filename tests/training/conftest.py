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
