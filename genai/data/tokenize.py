"""Example -> token ids + a trained-token mask.

Chat examples are rendered with the template turn by turn: the text each assistant turn adds
is the trained span, everything else is masked. Segments are tokenized separately, so the
prompt tokens are exactly those the server will see at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

from genai.data.formats import Example
from genai.errors import GenaiError


@dataclass
class Tokenized:
    """Token ids and, per token, whether it is trained."""

    input_ids: list[int]
    trained: list[bool]


def render_chat(
    tokenizer, template: str, messages, generation_prompt: bool, tools: list[dict] | None = None, origin: str = ""
) -> str:
    """A conversation rendered with the template (tools offered where the data has them); a template
    that refuses it (raise_exception: no system role, no tools...) is one clear error."""
    from jinja2.exceptions import TemplateError

    try:
        return tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt, tools=tools
        )
    except TemplateError as e:
        raise GenaiError(
            f"{origin or 'chat data'}: the chat template cannot render this record: {type(e).__name__}: {e}",
            hint="fix the record, or choose another template (model.chat_template)",
        ) from None


class NotIncremental(GenaiError):
    """The template renders an earlier turn differently once a later turn exists."""


def _turn(tokenizer, template: str, ex: Example, i: int) -> tuple[str, str]:
    """The prompt before assistant message i (as the server renders it) and the turn's own text."""
    msgs = ex.messages or []
    prompt = render_chat(tokenizer, template, msgs[:i], True, ex.tools, ex.origin)
    full = render_chat(tokenizer, template, msgs[: i + 1], False, ex.tools, ex.origin)
    if not full.startswith(prompt):
        raise NotIncremental(
            f"{ex.origin}: the chat template renders an assistant turn that does not follow its own generation "
            "prompt, so the turn cannot be located for completion-only loss",
            hint="set data.loss_on: all, or choose another model.chat_template",
        )
    turn = full[len(prompt) :]
    missing = [c["function"]["name"] for c in msgs[i].get("tool_calls", []) if c["function"]["name"] not in turn]
    if missing:
        raise GenaiError(
            f"{ex.origin}: the chat template drops tool_calls: the assistant turn trains without {missing[0]!r}",
            hint="use a template that renders tools (the model family's own; see `genai families`)",
        )
    return prompt, turn


def chat_segments(tokenizer, template: str, ex: Example) -> list[tuple[str, bool]]:
    """Split a rendered conversation into (text, trained) segments."""
    msgs = ex.messages or []
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, msg in enumerate(msgs):
        if msg["role"] != "assistant":
            continue
        prompt, turn = _turn(tokenizer, template, ex, i)
        if not prompt.startswith(done):
            raise NotIncremental(
                f"{ex.origin}: the chat template does not render conversations incrementally, so the "
                "assistant turns cannot be located for completion-only loss",
                hint="set data.loss_on: all, or choose another model.chat_template",
            )
        segments.append((prompt[len(done) :], False))
        segments.append((turn, True))
        done = prompt + turn
    rest = render_chat(tokenizer, template, msgs, False, ex.tools, ex.origin)[len(done) :]
    if rest:
        segments.append((rest, False))
    return [s for s in segments if s[0]]


def plain_segments(tokenizer, ex: Example) -> list[tuple[str, bool]]:
    """(prompt, masked) and (completion + EOS, trained) of a plain example."""
    bos = tokenizer.bos_token or ""
    prompt = ex.prompt if not bos or ex.prompt.startswith(bos) else bos + ex.prompt
    return [s for s in ((prompt, False), (ex.completion + (tokenizer.eos_token or ""), True)) if s[0]]


def ensure_eos(tokenizer, segments: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """A trained turn must end in a stop token, or the model never learns to stop."""
    specials = set(tokenizer.all_special_tokens)
    out = []
    for text, trained in segments:
        if trained and tokenizer.eos_token and not any(text.rstrip().endswith(s) for s in specials):
            text = text + tokenizer.eos_token
        out.append((text, trained))
    return out


def _ids(tokenizer, segments: list[tuple[str, bool]], loss_on: str) -> Tokenized:
    ids: list[int] = []
    trained: list[bool] = []
    for text, is_trained in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        trained.extend([is_trained or loss_on == "all"] * len(piece))
    if trained:
        trained[0] = False  # nothing predicts the first token (and packing must not link samples)
    return Tokenized(ids, trained)


def tokenize_example(tokenizer, template: str | None, ex: Example, loss_on: str) -> Tokenized:
    """Token ids and trained mask of one example (loss_on: completion or all)."""
    if ex.messages is not None:
        if template is None:
            raise GenaiError(f"{ex.origin}: chat data needs a chat template")
        segments = ensure_eos(tokenizer, chat_segments(tokenizer, template, ex))
    else:
        segments = plain_segments(tokenizer, ex)
    return _ids(tokenizer, segments, loss_on)


def tokenize_turns(tokenizer, template: str | None, ex: Example, loss_on: str) -> list[Tokenized]:
    """One sample per conversation, or, for a template that re-renders earlier turns once a later
    one exists (Qwen3 drops past thinking blocks), one per assistant turn, each after exactly the
    prompt the server renders for it: what is trained is what is served."""
    try:
        return [tokenize_example(tokenizer, template, ex, loss_on)]
    except NotIncremental:
        if loss_on == "all":
            return [_ids(tokenizer, [(render_chat(tokenizer, template, ex.messages, False, ex.tools), True)], loss_on)]
        out = []
        for i, msg in enumerate(ex.messages or []):
            if msg["role"] == "assistant":
                prompt, turn = _turn(tokenizer, template, ex, i)
                out.append(_ids(tokenizer, ensure_eos(tokenizer, [(prompt, False), (turn, True)]), loss_on))
        return out


def tokenize_final_turn(tokenizer, template: str | None, ex: Example, messages: list[dict]) -> Tokenized:
    """`messages` (one side of a preference pair of `ex`) with only the final assistant turn trained, after
    exactly the prompt the server renders for it: what preference methods compare."""
    if template is None:
        raise GenaiError(f"{ex.origin}: preference data needs a chat template", hint="set model.chat_template")
    if not messages or messages[-1].get("role") != "assistant":
        raise GenaiError(f"{ex.origin}: a side of the preference pair does not end with an assistant answer")
    final = Example(ex.origin, messages=messages, tools=ex.tools)
    prompt, turn = _turn(tokenizer, template, final, len(messages) - 1)
    return _ids(tokenizer, ensure_eos(tokenizer, [(prompt, False), (turn, True)]), "completion")


def turn_stop_tokens(tokenizer, tok: Tokenized) -> set[int]:
    """The last special token of each trained span: the EOS ids the artifact's generation config needs."""
    special = set(tokenizer.all_special_ids)
    stops: set[int] = set()
    last = None
    for token, trained in zip(tok.input_ids + [None], tok.trained + [False], strict=False):
        if trained:
            if token in special:
                last = token
        elif last is not None:
            stops.add(last)
            last = None
    return stops
