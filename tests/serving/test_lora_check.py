"""Which adapters vLLM serves by name: our reading of adapter_config.json agrees with vLLM's own
PEFTHelper, and an adapter vLLM refuses is served merged, said in the output and the manifest."""

import json

import pytest

from genai.recipe import load_recipe
from genai.serving import artifact
from genai.serving.lora_check import vllm_lora_problems, vllm_rank
from genai.training.launch import start_training
from tests.training.conftest import small_recipe  # noqa: F401  (the fixture)

PLAIN = {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": "b"}
CONFIGS = {
    "plain": {},
    "dora": {"use_dora": True},
    "modules_to_save lm_head": {"modules_to_save": ["lm_head"]},
    "modules_to_save score": {"modules_to_save": ["score"]},
    "lora_bias": {"lora_bias": True},
    "bias all": {"bias": "all"},
    "pissa init": {"init_lora_weights": "pissa"},
    "gaussian init": {"init_lora_weights": "gaussian"},
    "rank 1024": {"r": 1024},
    "rank_pattern 600": {"rank_pattern": {"q_proj": 600}},
    "rank 512": {"r": 512},
    "layer_replication": {"layer_replication": [[0, 1]]},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_our_rules_agree_with_vllms_peft_helper(name):
    from vllm.config.lora import LoRAConfig
    from vllm.lora.peft_helper import PEFTHelper

    cfg = {**PLAIN, **CONFIGS[name]}
    try:
        PEFTHelper.from_dict(cfg).validate_legal(LoRAConfig(max_lora_rank=512))
        vllm_refuses = False
    except ValueError:
        vllm_refuses = True
    assert bool(vllm_lora_problems(cfg)) == vllm_refuses, vllm_lora_problems(cfg)


def test_the_served_rank_rounds_up_to_one_vllm_accepts():
    assert [vllm_rank({"r": r}) for r in (1, 4, 16, 17, 300)] == [1, 8, 16, 32, 320]
    assert vllm_rank({"r": 8, "rank_pattern": {"q_proj": 40}}) == 64


@pytest.mark.slow
def test_a_dora_adapter_is_served_merged_and_the_run_says_why(small_recipe):  # noqa: F811
    run = start_training(
        load_recipe(small_recipe, ["lora.use_dora=true", "train.max_steps=2", "train.exact_match.limit=0"]),
        verbose=False,
    ).run_dir
    target, _, _ = artifact.resolve(str(run))
    assert target.adapter is None and target.model == str(run / "merged")
    assert "vLLM cannot load this adapter by name (DoRA" in target.chosen
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["serve_fallback"]["artifact"] == "merged" and manifest["artifact"]["merged"] == "merged"
    # Asked for by name, it is one clear error instead.
    with pytest.raises(Exception, match="vLLM cannot serve this adapter by name: DoRA"):
        artifact.resolve(str(run), ["serve.artifact=adapter"])
