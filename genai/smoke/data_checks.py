"""Checks on the training data as the family's tokenizer and template see it, before training."""

from __future__ import annotations

from itertools import groupby

from genai.data.formats import Example
from genai.data.tokenize import Tokenized, tokenize_turns
from genai.errors import GenaiError
from genai.families.family import Family
from genai.smoke.checklist import Checklist


def _spans(tok: Tokenized) -> list[list[int]]:
    """The runs of trained token ids."""
    pairs = zip(tok.input_ids, tok.trained, strict=True)
    return [[token for token, _ in run] for trained, run in groupby(pairs, key=lambda p: p[1]) if trained]


def _ends_with_stop(span: list[int], stop_ids: set[int], tokenizer) -> bool:
    """The span's last non-whitespace token is a stop token."""
    for token in reversed(span):
        if token in stop_ids:
            return True
        if tokenizer.decode([token]).strip():
            return False
    return False


def _mislabelled(ex: Example, samples: list[Tokenized], tokenizer) -> str | None:
    """What is trained that should not be, or not trained that should (a chat, over its samples)."""
    trained = "\n".join(
        tokenizer.decode([t for t, m in zip(tok.input_ids, tok.trained, strict=True) if m]) for tok in samples
    )
    for m in ex.messages or []:
        content = (m.get("content") or "").strip()
        if m["role"] == "assistant":
            if content and content not in trained:
                return f"assistant turn {content[:30]!r} is not trained"
        elif len(content) >= 8 and content in trained:
            return f"{m['role']} turn {content[:30]!r} is trained"
    return None


def check_data(
    examples: list[Example], tokenizer, template: str | None, loss_on: str, family: Family, checklist: Checklist
) -> None:
    """Template renders every sample; labels on assistant turns only; stop token ends each trained
    turn; one BOS at most."""
    toks: list[tuple[Example, Tokenized]] = []
    for ex in examples:
        try:
            toks.extend((ex, t) for t in tokenize_turns(tokenizer, template, ex, loss_on))
        except GenaiError as e:
            checklist.check("template renders every sample", False, str(e))
            return
    checklist.check("template renders every sample", True, f"{len(toks)} samples rendered")
    empty = [ex.origin for ex, t in toks if not any(t.trained)]
    by_example: dict[int, tuple[Example, list[Tokenized]]] = {}
    for ex, t in toks:
        by_example.setdefault(id(ex), (ex, []))[1].append(t)
    wrong = next(((ex.origin, why) for ex, ts in by_example.values() if (why := _mislabelled(ex, ts, tokenizer))), None)
    if empty:
        checklist.check(
            "labels cover only assistant turns",
            False,
            f"{empty[0]}: no trained token at all (the template renders no assistant turn)",
        )
    elif wrong and loss_on == "completion":
        checklist.check("labels cover only assistant turns", False, f"{wrong[0]}: {wrong[1]}")
    else:
        trained = sum(sum(t.trained) for _, t in toks)
        checklist.check(
            "labels cover only assistant turns",
            True,
            f"{trained} trained tokens, all in assistant turns"
            if loss_on == "completion"
            else f"data.loss_on=all: {trained} trained tokens",
        )
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in family.stop_tokens}
    absent = [s for s, i in ids.items() if i is None or tokenizer.decode([i]) != s]
    checklist.check(
        "stop tokens are single tokens of the tokenizer",
        not absent,
        f"{', '.join(absent)} not in the tokenizer: generation could never stop there" if absent else ", ".join(ids),
    )
    stop_ids = {i for s, i in ids.items() if s not in absent}
    unstopped = next(
        (ex.origin for ex, t in toks for span in _spans(t) if not _ends_with_stop(span, stop_ids, tokenizer)), None
    )
    checklist.check(
        "every trained turn ends with a stop token",
        unstopped is None,
        f"{unstopped}: a trained turn ends without {' / '.join(family.stop_tokens)}: the model would never stop"
        if unstopped
        else f"each ends with one of {', '.join(family.stop_tokens)}",
    )
    bos = tokenizer.bos_token_id if family.bos_token else None
    if bos is None:
        checklist.check(
            "no doubled BOS",
            all(t.input_ids.count(tokenizer.bos_token_id) == 0 for _, t in toks)
            if tokenizer.bos_token_id is not None
            else True,
            f"{family.title} writes no BOS",
        )
        return
    doubled = next((ex.origin for ex, t in toks if t.input_ids[:2] == [bos, bos] or t.input_ids.count(bos) > 1), None)
    missing = next((ex.origin for ex, t in toks if t.input_ids[:1] != [bos]), None)
    checklist.check(
        "no doubled BOS",
        doubled is None and missing is None,
        f"{doubled}: BOS appears twice"
        if doubled
        else f"{missing}: no BOS at the start"
        if missing
        else f"one {family.bos_token} at the start of each sample",
    )
