"""Write the self-describing artifact: weights + tokenizer + exact chat template + generation EOS.

adapter/ (LoRA, PEFT layout) or model/ (full fine-tune), and merged/ on request. transformers,
PEFT and vLLM load these folders directly.
"""

from __future__ import annotations

from pathlib import Path

from genai.atomic import staged_dir
from genai.errors import GenaiError
from genai.runs import Run


def generation_config(base_path: str, tokenizer, stop_ids: list[int]):
    """The base's generation config, with every token that ended a trained turn as EOS."""
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(base_path)
    except (OSError, ValueError):
        gen = GenerationConfig()
    eos = (
        gen.eos_token_id
        if isinstance(gen.eos_token_id, list)
        else ([gen.eos_token_id] if gen.eos_token_id is not None else [])
    )
    # Every token that ended a trained turn must stop generation, or serving runs past the answer.
    ids = [i for i in [tokenizer.eos_token_id, *stop_ids, *eos] if i is not None]
    gen.eos_token_id = list(dict.fromkeys(ids))
    gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id
    return gen


def save_artifact(out: Path, model, tokenizer, template: str | None, gen_config, *, state_dict=None) -> Path:
    """Save a PEFT adapter or a full model, atomically, with its tokenizer, template and generation config.

    `state_dict`: the full weights when they were gathered from shards (FSDP, ZeRO-3); else the model's own.
    """
    with staged_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
        if template:
            tokenizer.chat_template = template
        tokenizer.save_pretrained(tmp)
        gen_config.save_pretrained(tmp)
    return out


def merge_adapter(adapter_dir: Path, out: Path, *, trust_remote_code: bool = False, dtype: str = "auto") -> Path:
    """Fold a LoRA/DoRA adapter into its base and save a standalone model beside tokenizer and EOS."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    if not (adapter_dir / "adapter_config.json").exists():
        raise GenaiError(f"{adapter_dir}: no adapter_config.json (merging needs a LoRA run)")
    cfg = PeftConfig.from_pretrained(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(
        cfg.base_model_name_or_path,
        dtype=torch.float32 if dtype == "auto" else getattr(torch, dtype),
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    gen = GenerationConfig.from_pretrained(adapter_dir)
    merged.generation_config = gen
    return save_artifact(out, merged, tokenizer, tokenizer.chat_template, gen)


def merge_run(run: Run, out: Path | None = None) -> Path:
    """Merge a LoRA run's adapter (into RUN/merged by default) and record it in the run's manifest."""
    recipe = run.recipe()
    if not recipe.lora.enabled:
        raise GenaiError(f"{run.path}: a full fine-tune has nothing to merge", hint=f"serve {run.path / 'model'}")
    merged = merge_adapter(
        run.path / "adapter", out or run.merged_dir, trust_remote_code=recipe.model.trust_remote_code
    )
    run.record_merged(merged)
    return merged
