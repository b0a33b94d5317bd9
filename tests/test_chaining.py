"""Chained runs (genai.parents): a recipe whose model names an earlier run starts from that run's artifact,
continuing its adapter or training a new one on its merge; its manifest names the parent; a recipe file as
parent is trained first by `genai run`; a missing or unfinished parent stops before training."""

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import ROOT, genai_cli


def first_exact_match(run: Path) -> float:
    return next(m["exact_match"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()))


@pytest.fixture()
def parent(short_parent) -> Path:
    """The under-trained SFT parent (tests/conftest.py)."""
    return short_parent


def child(tmp_path: Path, model: str, *extra: str) -> Path:
    p = tmp_path / "child.yaml"
    qs = ROOT / "recipes" / "data" / "quickstart"
    p.write_text(f"""\
name: child
model: {{name_or_path: {model}}}
data:
  train: [{{path: {qs / "train.jsonl"}, format: alpaca, limit: 400}}]
  eval: [{{path: {qs / "test.jsonl"}, format: alpaca}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 4, alpha: 8, dropout: 0.0}}
train:
  output_dir: {tmp_path / "runs"}
  max_steps: 2
  micro_batch_size: 4
  learning_rate: 1.0e-5
  num_threads: 1
  exact_match: {{limit: 40, max_new_tokens: 6}}
""")
    return p


def test_a_child_continues_its_parents_adapter_and_names_the_parent(parent, tmp_path):
    out = genai_cli("train", child(tmp_path, parent), "--run-dir", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    p = json.loads((parent / "manifest.json").read_text())
    assert m["parent"] == {
        "run": str(parent.resolve()),
        "run_id": parent.name,
        "recipe": "quickstart-short",
        "method": "sft",
        "artifact": "adapter",
        "how": "continue",
    }
    assert m["base_model"]["name_or_path"] == "genai/tiny-llama"
    assert m["base_model"]["resolved"] == p["base_model"]["resolved"]
    # It started as the parent ended: the parent's exact match, and its adapter (rank 16, not the child's 4).
    assert first_exact_match(tmp_path / "run") == p["metrics"]["exact_match_after"] > 0
    cfg = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 16
    before = load_file(str(parent / "adapter" / "adapter_model.safetensors"))
    after = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    assert before.keys() == after.keys()
    assert 0 < max(float((before[k] - after[k]).abs().max()) for k in before) < 1e-2  # trained a little further
    assert genai_cli("report", tmp_path / "run").returncode == 0
    card = (tmp_path / "run" / "adapter" / "README.md").read_text()
    assert f"**Parent run:** run {parent.name} of recipe quickstart-short (sft; its adapter trained further)" in card
    assert "base_model: genai/tiny-llama" in card


def test_merge_trains_a_new_adapter_on_the_merged_parent(parent, tmp_path):
    latest = parent.parent.parent / "quickstart-short" / "latest"  # <output_dir>/<recipe>/latest
    out = genai_cli("train", child(tmp_path, latest, ""), "model.parent_adapter=merge", "--run-dir", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["parent"]["how"] == "merge" and m["parent"]["run_id"] == parent.name
    merged = parent / "merged"
    assert m["base_model"]["resolved"] == str(merged)
    cfg = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["base_model_name_or_path"] == str(merged)
    assert json.loads((parent / "manifest.json").read_text())["artifact"]["merged"] == "merged"
    p = json.loads((parent / "manifest.json").read_text())
    assert first_exact_match(tmp_path / "run") == p["metrics"]["exact_match_after"]


def test_a_missing_or_unfinished_parent_stops_before_training(parent, tmp_path):
    out = genai_cli("train", child(tmp_path, tmp_path / "nowhere.yaml"))
    assert out.returncode == 2 and "model.name_or_path: parent recipe not found" in out.stderr
    other = tmp_path / "other.yaml"
    other.write_text((tmp_path / "child.yaml").read_text().replace("name: child", "name: other"))
    out = genai_cli("validate", child(tmp_path, other))
    assert out.returncode == 2, out.stderr
    assert (
        "the parent recipe other.yaml has no finished run" in out.stderr and "genai run trains it for you" in out.stderr
    )
    unfinished = tmp_path / "unfinished"
    shutil.copytree(parent, unfinished, ignore=shutil.ignore_patterns("manifest.json", "merged"))
    out = genai_cli("train", child(tmp_path, unfinished))
    assert out.returncode == 2 and "has not finished training" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_recipes_naming_each_other_as_parents_is_an_error(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    child(tmp_path, b).rename(a)
    child(tmp_path, a).rename(b)
    out = genai_cli("run", a, "--no-serve")
    assert out.returncode == 2 and "the recipes name each other as parents" in out.stderr


def test_init_copies_a_chained_recipe_with_its_parent_and_their_data(tmp_path):
    out = genai_cli("init", "quickstart-dpo", tmp_path / "proj")
    assert out.returncode == 0, out.stderr
    names = {p.relative_to(tmp_path / "proj").as_posix() for p in (tmp_path / "proj").rglob("*") if p.is_file()}
    assert {"quickstart-dpo.yaml", "quickstart-short.yaml", "data/quickstart/pairs_train.jsonl"} <= names
    assert "data/quickstart/train.jsonl" in names  # the parent's data
    out = genai_cli("validate", tmp_path / "proj" / "quickstart-short.yaml")
    assert out.returncode == 0, out.stderr
