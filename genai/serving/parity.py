"""Greedy parity between vLLM and transformers on the same token ids, in fp32: the answers and the
log-prob of every answer token. `genai families --check` and the smoke use it to prove that what
vLLM serves computes what training produced."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# fp32 on both sides: the log-prob of each greedy token agrees to about 1e-6; a wrong weight, scale,
# attention or template moves it by far more than this.
LOGPROB_TOLERANCE = 1e-3


@dataclass
class Answer:
    """Greedy token ids and the log-prob of each."""

    ids: list[int]
    logprobs: list[float]


def gap(a: Answer, b: Answer) -> float:
    """The largest log-prob difference over the tokens both answers have."""
    n = min(len(a.logprobs), len(b.logprobs))
    return max((abs(x - y) for x, y in zip(a.logprobs[:n], b.logprobs[:n], strict=True)), default=0.0)


def load_fp32(model_dir: Path, adapter: Path | None = None):
    """A model folder in transformers, fp32, attention as genai trains it; PEFT on top for an adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    from genai.models import soft_capping_attention

    attention = {"attn_implementation": a} if (a := soft_capping_attention(model_dir)) else {}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True, **attention)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.eval()


def hf_greedy(
    model_dir: Path, prompts: list[list[int]], stops: list[int], max_new_tokens: int, *, adapter: Path | None = None
) -> list[Answer]:
    """Greedy answers with transformers in fp32 (PEFT on top for an adapter), as the engine is compared."""
    import torch

    model = load_fp32(model_dir, adapter)
    answers = []
    for ids in prompts:
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stops,
                output_logits=True,
                return_dict_in_generate=True,
            )
        new = out.sequences[0, len(ids) :].tolist()
        logprobs = [float(step[0].log_softmax(-1)[tok]) for step, tok in zip(out.logits, new, strict=True)]
        answers.append(Answer(new, logprobs))
    return answers


@contextmanager
def vllm_engine(model: Path, lora_rank: int | None):
    """A vLLM engine in this process (fp32, eager, LoRA on with a rank) on a model folder; yields
    answer(prompt token ids, stop ids, max tokens, lora request) -> greedy Answers."""
    import gc

    from genai.serving.engine import EngineOptions, LoraModule
    from genai.serving.server import has_cuda
    from genai.vllm_env import set_in_process_engine_env, werkzeug_proxies_hidden

    set_in_process_engine_env(1, gpu=has_cuda())
    from vllm import LLM, SamplingParams

    options = EngineOptions(
        model=str(model),
        tokenizer=str(model),
        served_model_name=model.name,
        dtype="float32",
        max_model_len=512,
        enforce_eager=True,
        seed=0,
        lora=LoraModule("adapter", "", lora_rank) if lora_rank else None,
        max_loras=1 if has_cuda() else 2,  # see EngineOptions.max_loras
    )
    with werkzeug_proxies_hidden():
        llm = LLM(**options.llm_kwargs())

    def answer(prompts: list[list[int]], stops: list[int], max_tokens: int, lora=None) -> list[Answer]:
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop_token_ids=stops, logprobs=0)
        outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, lora_request=lora, use_tqdm=False)
        return [
            Answer(list(c.token_ids), [lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids, strict=True)])
            for c in (o.outputs[0] for o in outs)
        ]

    try:
        yield answer
    finally:
        llm = None  # free the engine before the next one starts
        gc.collect()


def agreement(want: list[Answer], got: list[Answer]) -> tuple[bool, str, float | None]:
    """(equal, why, widest log-prob gap): the same greedy ids for every prompt, log-probs within tolerance."""
    for i, (a, b) in enumerate(zip(want, got, strict=True)):
        if a.ids != b.ids:
            return False, f"prompt {i + 1}: vLLM {b.ids} != transformers {a.ids}", None
    widest = max(gap(a, b) for a, b in zip(want, got, strict=True))
    if widest > LOGPROB_TOLERANCE:
        return False, f"log-probs differ by {widest:.2e}", widest
    return True, f"{len(want)} greedy answers equal (max log-prob gap {widest:.1e})", widest
