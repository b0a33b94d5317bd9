"""What each training method (train.method) needs of its data: the record formats it trains on, and
whether its samples come in pairs. Free of torch, so the preflight and `genai validate` can check it."""

from __future__ import annotations

# The record formats a method can train on (data.*.format), and whether its samples come in pairs.
FORMATS: dict[str, tuple[str, ...] | None] = {  # None: any format
    "sft": None,
    "dpo": ("preference",),
    "orpo": ("preference",),
    "kto": ("unpaired",),
    "grpo": ("alpaca", "messages", "sharegpt", "completion"),  # the final answer is the reference
}
# How a method's samples are laid out: "turns" (SFT: every assistant turn), "pairs" (chosen at 2i, rejected
# at 2i+1, only the final answer trained), "final" (one sample per record, only the final answer trained:
# the prompt and its reference answer), "kto" (the answer at 2i, and at 2i+1 the same prompt with the next
# record's answer: a mismatched pair for KTO's KL estimate).
LAYOUTS = {"sft": "turns", "dpo": "pairs", "orpo": "pairs", "kto": "kto", "grpo": "final"}


def format_problems(method: str, sources: dict[str, list]) -> list[str]:
    """'data.<split>.<i>.format: ...' for every source whose format the method cannot train on."""
    allowed = FORMATS[method]
    if allowed is None:
        return []
    return [
        f"data.{split}.{i}.format: train.method '{method}' trains on {' or '.join(allowed)} records, not '{src.format}'"
        for split, items in sources.items()
        for i, src in enumerate(items)
        if src.format not in allowed
    ]
