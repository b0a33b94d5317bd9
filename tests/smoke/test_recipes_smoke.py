"""Every shipped hub recipe passes `genai run RECIPE --smoke` offline, and every family has one."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from genai.families.registry import FAMILIES, detect_family
from genai.recipe import load_recipe
from tests.conftest import ROOT

# Recipes that name a hub model (not a built-in, and not a parent recipe of a chain).
ALL_HUB = [
    p
    for p in sorted((ROOT / "recipes").glob("*.yaml"))
    if not load_recipe(p).model.name_or_path.startswith("genai/")
    and not load_recipe(p).model.name_or_path.endswith(".yaml")
]
# CI runs the full smoke (train, merge, serve, eval; about two minutes of CI a recipe) for the recipes whose
# serving has something of its own: tool calls through the parser, Qwen3's thinking switch, DoRA served
# merged. Every other hub recipe trains its smoke here; its family's serving is proved cell by cell in
# tests/test_family_matrix.py. `pytest -m release tests/smoke` runs the full smoke of every hub recipe.
SPECIAL = ("qwen2.5-1.5b-tools-lora", "qwen3-0.6b-chat-lora", "llama-3.2-1b-chat-lora")
HUB = [p for p in ALL_HUB if p.stem in SPECIAL]
TRAINED = [p for p in ALL_HUB if p.stem not in SPECIAL]
METHODS = [p for p in ALL_HUB if load_recipe(p).train.method != "sft"]


def test_every_family_but_gemma2_has_a_hub_recipe():
    families = {detect_family(load_recipe(p).model.name_or_path).name for p in ALL_HUB}
    assert set(FAMILIES) - families <= {"gemma2"}, sorted(set(FAMILIES) - families)


def smoke(recipe: Path, out: Path) -> tuple[Path, int, str]:
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.run(
        [str(exe), "run", str(recipe), "--smoke", f"train.output_dir={out}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return recipe, proc.returncode, proc.stderr


def full_smokes(recipes: list[Path], tmp_path: Path) -> None:
    # Two at a time: much of a smoke is vLLM starting, which leaves a core idle.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: smoke(p, tmp_path / p.stem), recipes))
    failed = [(p.name, err[-1500:]) for p, code, err in results if code != 0]
    assert not failed, failed
    for p in recipes:
        (saved,) = (tmp_path / p.stem).glob("*-smoke/*/smoke.json")
        checklist = json.loads(saved.read_text())
        assert checklist["passed"] and not [i for i in checklist["items"] if i["status"] == "fail"]
        # The served model answered, greedy as transformers, and stopped at the family's stop token.
        stopped = [i for i in checklist["items"] if i["name"].startswith("generation stops at the stop token")]
        assert stopped and stopped[0]["status"] == "pass", (p.name, checklist["items"])
        special_checks(p, {i["name"]: i for i in checklist["items"]})


def special_checks(p: Path, items: dict) -> None:
    if p.stem == "qwen2.5-1.5b-tools-lora":  # tool use, end to end through the family's parser
        for name in (
            "tool calling",
            "served prompt = trained prompt (LoRA by name)",
            "greedy answer equals transformers fp32 (LoRA by name)",
            "response_format json_schema",
            "tool call through the endpoint",
            "tool parser 'hermes' reads the trained tool calls",
        ):
            assert items[name]["status"] == "pass", (name, items.get(name))
        assert "q_proj x2" in items["LoRA target modules matched"]["reason"]
    if p.stem == "qwen3-0.6b-chat-lora":  # served by name, so the merged model is loaded in vLLM too
        assert items["merged model loads in vLLM (greedy = transformers fp32)"]["status"] == "pass"
        thinking = items["thinking switch the same at train and serve (enable_thinking)"]
        assert thinking["status"] == "pass" and "served enable_thinking=False" in thinking["reason"]
    if p.stem == "llama-3.2-1b-chat-lora":  # DoRA: vLLM cannot take it by name, so it serves merged
        assert "serving the merged model" in items["vLLM LoRA preflight"]["reason"]
        assert items["greedy answer equals transformers fp32 (merged)"]["status"] == "pass"


@pytest.mark.slow
def test_hub_recipes_with_serving_of_their_own_pass_their_smoke(tmp_path):
    assert len(HUB) == len(SPECIAL)
    full_smokes(HUB, tmp_path)


@pytest.mark.release
def test_every_hub_recipe_passes_its_full_smoke(tmp_path):
    full_smokes(ALL_HUB, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", TRAINED, ids=[p.stem for p in TRAINED])
def test_the_other_hub_recipes_train_their_smoke(recipe, tmp_path):
    from tests.conftest import genai_cli

    out = genai_cli("train", recipe, "--smoke", f"train.output_dir={tmp_path}", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (manifest,) = tmp_path.glob("*-smoke/*/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["method"] == load_recipe(recipe).train.method and m["steps"] == 6
    lora = load_recipe(recipe).lora.enabled
    assert list((manifest.parent / ("adapter" if lora else "model")).glob("*.safetensors")), m.get("artifact")


def test_there_is_a_dpo_and_a_grpo_hub_recipe():
    assert {load_recipe(p).train.method for p in METHODS} >= {"dpo", "grpo"}
