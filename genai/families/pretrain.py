"""Brief deterministic pre-training that makes a tiny family build behave like a tiny *instruct*
model: chat prompts rendered with the family's template, answers that end with its end-of-turn
token (the loss covers the answer and that token), so generation stops where the real one does."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from genai.families.family import Family
from genai.tiny import answer_step
from genai.tiny_mix import draw

THREADS = 1  # fixed, not the machine's: the same weights wherever it is built (same CPU kind)
_Q, _A = "\x01QUESTION\x01", "\x01ANSWER\x01"  # sentinels: the template is rendered once


@dataclass(frozen=True)
class Pretrain:
    """The pre-training recipe."""

    steps: int = 120
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 20
    seed: int = 0
    answer_logits: bool = False  # the output layer on answer positions only (large real vocabularies)


def turn_pieces(tokenizer, family: Family) -> tuple[str, str, str, str]:
    """The template around one user question and its answer: (before q, after q, before a, after a);
    `after a` stops at the end-of-turn token (what follows it, e.g. a newline, is not trained)."""
    kwargs = dict(family.template_kwargs)
    user = [{"role": "user", "content": _Q}]
    prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False, **kwargs)
    full = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": _A}], add_generation_prompt=False, tokenize=False, **kwargs
    )
    if not full.startswith(prompt):  # the generation prompt must be what a trained turn starts with
        raise RuntimeError(f"{family.name}: the generation prompt is not a prefix of the rendered turn")
    head, tail = prompt.split(_Q)
    before, after = full[len(prompt) :].split(_A)
    eot = family.end_of_turn
    return head, tail, before, after[: after.index(eot) + len(eot)]


def pretrain(model, tokenizer, family: Family, plan: Pretrain = Pretrain()) -> None:
    """Train `model` in place on the tiny_mix questions in `family`'s chat format."""
    import torch

    rng = random.Random(plan.seed)
    head, tail, before, after = turn_pieces(tokenizer, family)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # padded labels are masked
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        torch.manual_seed(plan.seed)
        opt = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: min(1.0, (s + 1) / plan.warmup) * 0.5 * (1 + math.cos(math.pi * s / plan.steps)),
        )
        model.train()
        for _ in range(plan.steps):
            drawn = [draw(rng) for _ in range(plan.batch)]
            prompts = tokenizer([head + q + tail for q, _ in drawn], add_special_tokens=False)["input_ids"]
            answers = tokenizer([before + a + after for _, a in drawn], add_special_tokens=False)["input_ids"]
            answer_step(model, opt, sched, prompts, answers, pad, answer_logits=plan.answer_logits)
        model.eval()
    finally:
        torch.set_num_threads(threads)


def stop_rate(model, tokenizer, family: Family, *, prompts: int = 16, max_new_tokens: int = 12, seed: int = 1) -> float:
    """The share of greedy answers to fresh chat prompts that end with a stop token in time."""
    import torch

    rng = random.Random(seed)
    stops = set(family.stop_ids(tokenizer))
    stopped = 0
    with torch.no_grad():
        for _ in range(prompts):
            question, _ = draw(rng)
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": question}],
                add_generation_prompt=True,
                return_dict=True,
                return_tensors="pt",
                **dict(family.template_kwargs),
            )["input_ids"]
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False
            )
            stopped += any(t in stops for t in out[0, ids.shape[1] :].tolist())
    return stopped / prompts
