"""What each training method (train.method) needs of its data: the record formats it trains on, and
whether its samples come in pairs. Free of torch, so the preflight and `genai validate` can check it."""

from __future__ import annotations

# The record formats a method can train on (data.*.format), and whether its samples come in pairs.
FORMATS: dict[str, tuple[str, ...] | None] = {  # None: any format
    "sft": None,
    "dpo": ("preference",),
    "orpo": ("preference",),
}
PAIRED = {"dpo", "orpo"}


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
