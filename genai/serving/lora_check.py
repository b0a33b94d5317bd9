"""Can vLLM load this LoRA adapter by name? The same rules vLLM's PEFTHelper applies, read from
adapter_config.json without importing vLLM, so `genai serve` can decide before the engine starts
(and the smoke can say why): an adapter vLLM refuses is served merged instead.
"""

from __future__ import annotations

# The ranks vLLM's --max-lora-rank accepts; an adapter is served under the smallest one that fits.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

# init_lora_weights values that only set the initial adapter weights (vLLM accepts them).
_PLAIN_INITS = ("gaussian", "eva", "orthogonal", "mica", "lora_ga")


def _max_rank(cfg: dict) -> int:
    ranks = [int(cfg.get("r", 16)), *(int(r) for r in (cfg.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_lora_problems(cfg: dict) -> list[str]:
    """Why vLLM would refuse this adapter config (empty: it loads by name)."""
    problems = []
    saved = [m for m in cfg.get("modules_to_save") or [] if m not in ("classifier", "score")]
    if saved:
        problems.append(f"modules_to_save {saved} (vLLM takes full weights only for classifier heads)")
    if cfg.get("use_dora"):
        problems.append("DoRA (vLLM serves plain LoRA only)")
    if cfg.get("bias", "none") != "none":
        problems.append(f"bias={cfg['bias']!r} (trained bias terms)")
    if cfg.get("lora_bias"):
        problems.append("LoRA bias (lora_bias)")
    init = cfg.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in _PLAIN_INITS:
        problems.append(f"init_lora_weights={init!r} changes the base weights")
    for key, what in (("layer_replication", "layer_replication"), ("alora_invocation_tokens", "Activated LoRA")):
        if cfg.get(key):
            problems.append(what)
    if _max_rank(cfg) > VLLM_LORA_RANKS[-1]:
        problems.append(f"rank {_max_rank(cfg)} above vLLM's maximum {VLLM_LORA_RANKS[-1]}")
    return problems


def vllm_rank(cfg: dict) -> int:
    """The --max-lora-rank to serve this adapter with (the smallest vLLM rank that fits)."""
    rank = _max_rank(cfg)
    return next(r for r in VLLM_LORA_RANKS if r >= rank)
