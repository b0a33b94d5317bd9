"""The tiny base model: what it is pre-trained on, and what LoRA on top of it can learn."""

import json
import random
import re

import pytest

from genai import tiny_mix
from genai.recipe import load_recipe
from genai.training.launch import start_training


def test_the_pretraining_mix_never_draws_a_held_out_sum_or_word():
    held_words = {w for w in tiny_mix.words() if tiny_mix.is_held_out_word(w)}
    assert 150 < len(held_words) < 300  # one word in five
    forms = held_words | {w.upper() for w in held_words} | {" ".join(w) for w in held_words}
    rng = random.Random(0)
    seen = set()
    for _ in range(20_000):
        question, answer = tiny_mix.draw(rng)
        seen.add(question.split()[0])
        reversal = question.startswith("Reverse") or "backwards" in question  # "gum" is "mug" backwards
        assert reversal or answer not in forms, (question, answer)
        if m := re.fullmatch(r"(?:What is|Add|Compute|What is the sum of) (\d+) (?:\+|and) (\d+)[.?]", question):
            assert not tiny_mix.is_held_out(int(m[1]), int(m[2])), question
    # Every task is drawn, not only sums.
    assert {"What", "Add", "Reverse", "Spell", "Repeat", "Join", "How", "Uppercase"} <= seen


@pytest.mark.slow
def test_lora_learns_a_new_string_task_on_held_out_words(tmp_path, tiny_model_path):
    """A new user's first own task (a word backwards, in its own phrasing) learns with LoRA."""
    held = [w for w in tiny_mix.words() if tiny_mix.is_held_out_word(w)]
    ask = "Write the letters of {w} in reverse order."
    for name, words in (("train", tiny_mix.train_words()), ("test", held)):
        rows = [{"instruction": ask.format(w=w), "output": w[::-1]} for w in words]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "reverse.yaml").write_text(f"""\
name: reverse
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: train.jsonl, format: alpaca}}]
  eval: [{{path: test.jsonl, format: alpaca}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 16, alpha: 32, dropout: 0.0, target_modules: all-linear}}
train:
  output_dir: {tmp_path / "runs"}
  max_steps: 300
  micro_batch_size: 8
  learning_rate: 3.0e-3
  warmup_steps: 30
  num_threads: 1
  logging_steps: 100
  save_steps: null
  exact_match: {{limit: 100, max_new_tokens: 12}}
""")
    run = start_training(load_recipe(tmp_path / "reverse.yaml"), verbose=False).run_dir
    metrics = json.loads((run / "manifest.json").read_text())["metrics"]
    # The base knows how to reverse in its own style ("olleh." and on), never the task's answer.
    assert metrics["exact_match_before"] <= 0.05
    # 0.55 on this machine; a base pre-trained on sums alone stays at 0.00.
    assert metrics["exact_match_after"] >= 0.3, metrics
