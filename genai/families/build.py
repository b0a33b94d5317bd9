"""Build a family's tiny model: its real transformers architecture, shrunk, with a local
tokenizer, the family's generation config, seeded weights and a brief pre-training."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from genai.families.family import Family
from genai.families.pretrain import Pretrain, pretrain, stop_rate

BUILDER_VERSION = 2  # 2: head sizes of 32 (vLLM's CPU attention)
MIN_STOP_RATE = 0.75  # a build that does not end most turns would hide the bugs it exists to show


def tiny_config(family: Family, tokenizer):
    """The transformers config of `family`'s tiny build, token ids from `tokenizer`."""
    import transformers

    shape = family.tiny
    ids = tokenizer.convert_tokens_to_ids
    kwargs = copy.deepcopy({k: (dict(v) if hasattr(v, "keys") else v) for k, v in shape.config.items()})
    return getattr(transformers, shape.config_class)(
        vocab_size=len(tokenizer),
        bos_token_id=ids(family.bos_token) if family.bos_token else None,
        eos_token_id=ids(family.eos_token),
        pad_token_id=ids(family.pad_token) if family.pad_token else None,
        architectures=[shape.architecture],
        **kwargs,
    )


def build_tiny_family_model(family: Family, out_dir: Path, plan: Pretrain = Pretrain()) -> Path:
    """Write the tiny build of `family` into out_dir (see build_model), with its local tokenizer."""
    from genai.families.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(family)
    return build_model(family, out_dir, tokenizer, tiny_config(family, tokenizer), plan)


def build_model(
    family: Family, out_dir: Path, tokenizer, config, plan: Pretrain = Pretrain(), source: str = ""
) -> Path:
    """Write a seeded, briefly pre-trained `family` model of `config` beside `tokenizer` into out_dir
    (safetensors weights, tokenizer, template, generation config with the family's stop token ids);
    raise if it does not end its turns."""
    import torch
    import transformers
    from transformers import GenerationConfig

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(plan.seed)
        model = getattr(transformers, family.tiny.architecture)(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=family.stop_ids(tokenizer),
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    pretrain(model, tokenizer, family, plan)
    rate = stop_rate(model, tokenizer, family)
    if rate < MIN_STOP_RATE:
        raise RuntimeError(f"tiny {family.name} build ends only {rate:.0%} of its turns (< {MIN_STOP_RATE:.0%})")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    meta = {"builder_version": BUILDER_VERSION, "family": family.name, "stop_rate": rate, "pretrain": vars(plan)}
    if source:
        meta["shrunk_from"] = source
    (out_dir / "genai_tiny.json").write_text(json.dumps(meta))
    return out_dir
