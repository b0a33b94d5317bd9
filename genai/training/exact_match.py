"""Quick held-out exact match by greedy generation, so a run shows that the task was learned.

This is feedback during training; `genai eval` (lm-eval) is the scored evaluation.
"""

from __future__ import annotations

from genai.data.formats import Example
from genai.data.tokenize import render_chat


def _prompt_and_target(ex: Example, tokenizer, template: str | None) -> tuple[str, str] | None:
    if ex.messages is not None:
        last = max((i for i, m in enumerate(ex.messages) if m["role"] == "assistant"), default=None)
        if last is None or template is None:
            return None
        prompt = render_chat(tokenizer, template, ex.messages[:last], True, ex.tools)
        return prompt, ex.messages[last]["content"]
    if not ex.prompt:
        return None
    bos = tokenizer.bos_token or ""
    return (ex.prompt if ex.prompt.startswith(bos) else bos + ex.prompt), ex.completion


def exact_match(
    model,
    tokenizer,
    template: str | None,
    examples: list[Example],
    stop_ids: list[int],
    *,
    limit: int,
    max_new_tokens: int,
    batch_size: int = 32,
) -> dict | None:
    """Greedy-decode held-out prompts and count exact answers (with three samples to show)."""
    import torch

    pairs = [p for p in (_prompt_and_target(ex, tokenizer, template) for ex in examples[:limit]) if p]
    if not pairs:
        return None
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    hits, samples = 0, []
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            enc = tokenizer([p for p, _ in chunk], return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stop_ids,
                    pad_token_id=tokenizer.pad_token_id,
                )
            for (_, target), row in zip(chunk, out[:, enc["input_ids"].shape[1] :], strict=False):
                text = tokenizer.decode(row, skip_special_tokens=True).strip()
                hits += text == target.strip()
                if len(samples) < 3:
                    samples.append({"target": target, "output": text})
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return {"exact_match": hits / len(pairs), "n": len(pairs), "samples": samples}
