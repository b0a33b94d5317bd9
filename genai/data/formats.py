"""Record formats, in a registry: each turns one raw record into an Example.

An Example is either a chat (`messages`, rendered with the chat template) or a plain
prompt/completion pair (tokenized as is, EOS appended).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genai.data.sources import Record
from genai.errors import GenaiError
from genai.recipe import DataSource

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
}


@dataclass
class Example:
    """One training example: a chat (messages) or a plain prompt/completion pair."""

    origin: str
    messages: list[dict[str, str]] | None = None  # chat examples
    prompt: str = ""  # plain examples: masked unless loss_on=all
    completion: str = ""  # plain examples: trained
    rejected: list[dict[str, str]] | None = field(default=None, repr=False)  # preference data (DPO)
    label: bool | None = None  # unpaired preference data (KTO): whether the answer is a good one
    tools: list[dict] | None = None  # OpenAI-style tool schemas the conversation may call

    @property
    def calls_tools(self) -> bool:
        """Whether the conversation offers tools or has an assistant turn that calls one."""
        return bool(self.tools) or any(m.get("tool_calls") for m in self.messages or [])


FormatFn = Callable[[Record, DataSource], Example]
FORMATS: dict[str, FormatFn] = {}

# Fields each format reads (for error messages and `genai formats`).
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {}


def register(name: str, fields: tuple[str, ...]):
    """Add a record format to the registry under `name`, with the fields it reads."""

    def deco(fn: FormatFn) -> FormatFn:
        FORMATS[name] = fn
        FORMAT_FIELDS[name] = fields
        return fn

    return deco


def _get(rec: Record, src: DataSource, name: str, *, required: bool = True, kind: type | tuple = str) -> Any:
    column = src.columns.get(name, name)
    value = rec.data.get(column)
    if value is None or (required and value == ""):
        if not required:
            return None
        mapped = f" (mapped from '{name}')" if column != name else ""
        raise GenaiError(
            f"{rec.origin}: missing field '{column}'{mapped} required by format '{src.format}'",
            hint=f"format '{src.format}' reads {', '.join(FORMAT_FIELDS[src.format])}; "
            f"map your columns with data.*.columns, e.g. columns: {{{name}: your_column}}",
        )
    if not isinstance(value, kind):
        raise GenaiError(
            f"{rec.origin}: field '{column}' must be {getattr(kind, '__name__', kind)}, "
            f"got {type(value).__name__} (format '{src.format}')"
        )
    return value


def _with_system(messages: list[dict[str, str]], src: DataSource) -> list[dict[str, str]]:
    if src.system_prompt and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": src.system_prompt}] + messages
    return messages


def _check_chat(messages: list[dict[str, str]], rec: Record, src: DataSource) -> list[dict[str, str]]:
    if not messages:
        raise GenaiError(f"{rec.origin}: empty conversation (format '{src.format}')")
    for i, m in enumerate(messages):
        if m.get("role") not in ROLES:
            raise GenaiError(
                f"{rec.origin}: message {i}: unknown role {m.get('role')!r}; "
                f"expected one of {', '.join(ROLES)} (format '{src.format}')"
            )
        if not isinstance(m.get("content"), str) and not (m.get("tool_calls") and m.get("content") is None):
            raise GenaiError(f"{rec.origin}: message {i}: 'content' must be a string (format '{src.format}')")
    if not any(m["role"] == "assistant" for m in messages):
        raise GenaiError(f"{rec.origin}: conversation has no assistant message to train on (format '{src.format}')")
    return _with_system(messages, src)


@register("alpaca", ("instruction", "input (optional)", "output"))
def alpaca(rec: Record, src: DataSource) -> Example:
    """instruction (+ input) -> user turn, output -> assistant turn."""
    instruction = _get(rec, src, "instruction")
    extra = _get(rec, src, "input", required=False)
    output = _get(rec, src, "output")
    user = f"{instruction}\n\n{extra}" if extra else instruction
    msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return Example(rec.origin, messages=_with_system(msgs, src))


def _tool_calls(value: Any, where: str) -> list[dict]:
    """OpenAI tool_calls, with JSON-string arguments parsed: chat templates render them as objects."""
    if not isinstance(value, list):
        raise GenaiError(f"{where}: 'tool_calls' must be a list of {{type, function: {{name, arguments}}}}")
    calls = []
    for j, call in enumerate(value):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise GenaiError(f"{where}: tool_calls[{j}] needs function.name (OpenAI format)")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except json.JSONDecodeError as e:
                raise GenaiError(f"{where}: tool_calls[{j}].function.arguments is not valid JSON: {e}") from None
        if not isinstance(args, dict):
            raise GenaiError(f"{where}: tool_calls[{j}].function.arguments must be a JSON object")
        function = {"name": fn["name"], "arguments": args}
        calls.append({**call, "type": call.get("type", "function"), "function": function})
    return calls


def _tools(value: Any, origin: str) -> list[dict] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)
        for t in value
    )
    if not ok:
        raise GenaiError(f"{origin}: 'tools' must be a list of OpenAI tool schemas {{type, function: {{name, ...}}}}")
    return value


@register("messages", ("messages: [{role, content, tool_calls?}]", "tools (optional)"))
def messages(rec: Record, src: DataSource) -> Example:
    """OpenAI-style messages: [{role, content}, ...], with optional `tools` and assistant `tool_calls`."""
    raw = _get(rec, src, "messages", kind=list)
    msgs = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise GenaiError(f"{rec.origin}: message {i} must be an object with 'role' and 'content'")
        msg = {"role": m.get("role"), "content": m.get("content")}
        if m.get("tool_calls"):
            msg["tool_calls"] = _tool_calls(m["tool_calls"], f"{rec.origin}: message {i}")
            msg["content"] = m.get("content") or ""
        for key in ("tool_call_id", "name"):  # a tool result names the call it answers
            if m.get(key) is not None:
                msg[key] = m[key]
        msgs.append(msg)
    tools = _tools(rec.data.get(src.columns.get("tools", "tools")), rec.origin)
    return Example(rec.origin, messages=_check_chat(msgs, rec, src), tools=tools)


@register("sharegpt", ("conversations: [{from, value}]",))
def sharegpt(rec: Record, src: DataSource) -> Example:
    """ShareGPT conversations: [{from, value}, ...], speakers mapped to roles."""
    raw = _get(rec, src, "conversations", kind=list)
    msgs = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or "from" not in m or "value" not in m:
            raise GenaiError(f"{rec.origin}: turn {i} must have 'from' and 'value' (format 'sharegpt')")
        role = SHAREGPT_ROLES.get(str(m["from"]).lower())
        if role is None:
            raise GenaiError(
                f"{rec.origin}: turn {i}: unknown speaker {m['from']!r}; expected one of {', '.join(SHAREGPT_ROLES)}"
            )
        msgs.append({"role": role, "content": m["value"]})
    return Example(rec.origin, messages=_check_chat(msgs, rec, src))


@register("completion", ("text", "or prompt + completion"))
def completion(rec: Record, src: DataSource) -> Example:
    """Plain text (`text`), or a masked `prompt` followed by a trained `completion`."""
    if src.columns.get("text", "text") in rec.data:
        return Example(rec.origin, completion=_get(rec, src, "text"))
    return Example(rec.origin, prompt=_get(rec, src, "prompt"), completion=_get(rec, src, "completion"))


def _turns(value: Any, role: str, rec: Record, src: DataSource, name: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return [{"role": m.get("role"), "content": m.get("content")} for m in value if isinstance(m, dict)]
    raise GenaiError(f"{rec.origin}: field '{name}' must be a string or a list of messages (format '{src.format}')")


def _shared_prompt(chosen: list[dict], rejected: list[dict], rec: Record, src: DataSource) -> int:
    """Where the answers start in two whole conversations with no separate prompt (as Anthropic's HH-RLHF
    writes them): every turn before the final assistant turns, which both must share."""
    n = len(chosen) - 1
    if n < 1 or len(rejected) != n + 1 or chosen[:n] != rejected[:n]:
        raise GenaiError(
            f"{rec.origin}: without a 'prompt' field, 'chosen' and 'rejected' must be conversations that differ "
            "only in their final assistant turn (format 'preference')",
            hint="give the shared turns as 'prompt' and the answers as 'chosen' and 'rejected'",
        )
    return n


@register("preference", ("prompt (optional with conversations)", "chosen", "rejected"))
def preference(rec: Record, src: DataSource) -> Example:
    """prompt + chosen (trained by supervised fine-tuning), rejected kept for preference training."""
    raw = _get(rec, src, "prompt", required=False, kind=(str, list))
    chosen = _turns(_get(rec, src, "chosen", kind=(str, list)), "assistant", rec, src, "chosen")
    rejected = _turns(_get(rec, src, "rejected", kind=(str, list)), "assistant", rec, src, "rejected")
    if raw is None:  # whole conversations: the prompt is what they share
        n = _shared_prompt(chosen, rejected, rec, src)
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    else:
        prompt = _turns(raw, "user", rec, src, "prompt")
    # Supervised fine-tuning trains on prompt + chosen; `rejected` is kept for preference training.
    return Example(
        rec.origin, messages=_check_chat(prompt + chosen, rec, src), rejected=_with_system(prompt + rejected, src)
    )


@register("unpaired", ("prompt", "completion", "label"))
def unpaired(rec: Record, src: DataSource) -> Example:
    """prompt + completion, and a label saying whether the completion is a good answer (KTO)."""
    prompt = _turns(_get(rec, src, "prompt", kind=(str, list)), "user", rec, src, "prompt")
    completion = _turns(_get(rec, src, "completion", kind=(str, list)), "assistant", rec, src, "completion")
    label = _get(rec, src, "label", kind=bool)
    return Example(rec.origin, messages=_check_chat(prompt + completion, rec, src), label=label)


def to_example(rec: Record, src: DataSource) -> Example:
    """A record as an Example, through its source's format."""
    return FORMATS[src.format](rec, src)
