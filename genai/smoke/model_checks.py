"""Checks on the trained artifact: LoRA targets matched, vLLM can take the adapter, and greedy
answers of the adapter (PEFT) and the merged model (transformers) in fp32."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from genai.serving.lora_check import vllm_lora_problems, vllm_rank
from genai.smoke.checklist import Checklist


def lora_targets(adapter: Path, wanted: str | list[str], checklist: Checklist) -> None:
    """Modules that got LoRA weights, counted per module type; each named target matched."""
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
        modules = {k.split(".lora_")[0] for k in f.keys() if ".lora_A" in k}  # noqa: SIM118 - safe_open has no iterator
    counts = Counter(m.rsplit(".", 1)[-1] for m in modules)
    named = (
        [wanted] if isinstance(wanted, str) and wanted != "all-linear" else wanted if isinstance(wanted, list) else []
    )
    unmatched = [t for t in named if t not in counts]
    described = ", ".join(f"{name} x{n}" for name, n in sorted(counts.items()))
    checklist.check(
        "LoRA target modules matched",
        bool(counts) and not unmatched,
        f"{described}; no module matched {unmatched}" if unmatched else described or "no module got LoRA weights",
    )


def vllm_lora(adapter: Path, checklist: Checklist) -> bool:
    """Whether vLLM can load the adapter by name; when not, the run is served merged (and said)."""
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    problems = vllm_lora_problems(cfg)
    if problems:
        checklist.check(
            "vLLM LoRA preflight", True, f"not loadable as LoRA ({'; '.join(problems)}): serving the merged model"
        )
        return False
    checklist.check(
        "vLLM LoRA preflight", True, f"loadable as LoRA (rank {cfg.get('r')} -> --max-lora-rank {vllm_rank(cfg)})"
    )
    return True


def greedy(model_dir: Path, prompts: list[str], max_new_tokens: int, *, adapter: Path | None = None) -> list[str]:
    """Greedy continuations in fp32 with transformers (PEFT on top for an adapter)."""
    import torch
    from transformers import AutoTokenizer

    from genai.serving.parity import load_fp32

    tok = AutoTokenizer.from_pretrained(adapter or model_dir)
    model = load_fp32(model_dir, adapter)
    out = []
    for prompt in prompts:
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        out.append(tok.decode(gen[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return out
