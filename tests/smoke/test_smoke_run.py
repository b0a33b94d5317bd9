"""`--smoke` from the command line, and failures that stop it before training (every shipped hub
recipe passing its whole smoke is tests/smoke/test_recipes_smoke.py)."""

import json
import shutil

from genai.smoke.flow import run_smoke
from genai.smoke.shrink import bundled_sample


def recipe(tmp_path, model: str, extra: str = "") -> str:
    shutil.copy(bundled_sample("messages", tools=True), tmp_path / "tools.jsonl")
    (tmp_path / "r.yaml").write_text(
        f"""\
name: tools
model: {{name_or_path: {model}}}
data:
  train: [{{path: tools.jsonl, format: messages}}]
  max_length: 4096
lora: {{r: 16, alpha: 32, target_modules: all-linear}}
train: {{output_dir: {tmp_path / "runs"}, learning_rate: 2.0e-4, max_steps: 3000}}
eval: {{tasks: [addition_mc]}}
{extra}"""
    )
    return str(tmp_path / "r.yaml")


def test_tools_for_a_family_without_a_tool_parser_fail_before_training(tmp_path):
    result = run_smoke(recipe(tmp_path, "google/gemma-3-1b-it"), [])
    failed = [i for i in result.checklist.items if i.status == "fail"]
    assert not result.checklist.passed and result.run_dir is None  # nothing trained, nothing written
    assert any("vLLM has no tool-call parser for Gemma 3" in i.reason or "tool" in i.reason for i in failed), failed
    assert not (tmp_path / "runs" / "tools-smoke").exists()


def test_genai_run_smoke_prints_the_checklist_and_exits_2_on_a_failed_item(tmp_path, genai_main):
    code, _, err = genai_main("run", recipe(tmp_path, "google/gemma-3-1b-it"), "--smoke")
    assert code == 2 and "FAIL tool calling" in err and "smoke: FAILED" in err and "Traceback" not in err


def test_genai_train_smoke_trains_the_recipe_on_its_familys_tiny_build(tmp_path, genai_main):
    code, out, err = genai_main("train", recipe(tmp_path, "Qwen/Qwen3-0.6B"), "--smoke")
    assert code == 0, err[-2000:]
    run = tmp_path / "runs" / "tools-smoke"
    (finished,) = run.iterdir()
    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["steps"] < 20 and manifest["data"]["tool_calls"] > 0
    base = json.loads((finished / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert "/models/tiny-qwen3-v" in base
