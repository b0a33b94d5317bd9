"""Checks through the served endpoint (vLLM's OpenAI server), and the tool parser on what training
taught: the server must see the prompt training saw, answer as transformers does, stop at the
family's stop token, keep to a JSON schema, and read the family's tool calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from genai.errors import GenaiError
from genai.smoke.checklist import Checklist

# Bounded values only: a tiny model may write digits or letters forever inside an open number or string.
SCHEMA = {
    "type": "object",
    "properties": {"unit": {"type": "string", "enum": ["cm", "kg"]}, "ok": {"type": "boolean"}},
    "required": ["unit", "ok"],
    "additionalProperties": False,
}


def post(server, path: str, body: dict) -> dict:
    """POST JSON to the server (`path` under its root: /v1/..., or vLLM's own /tokenize)."""
    try:
        return server.post_json(path, body)
    except urllib.error.HTTPError as e:  # the server's own message says what went wrong
        raise GenaiError(f"POST {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}") from None


def openai_messages(messages: list[dict]) -> list[dict]:
    """Messages as an OpenAI client sends them: tool-call arguments as JSON strings."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = [
                {**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"])}}
                for c in m["tool_calls"]
            ]
            m = {**m, "tool_calls": calls}
        out.append(m)
    return out


def prompt_parity(server, messages: list[dict], trained_ids: list[int], tools, checklist: Checklist, what: str) -> None:
    """The server renders the conversation to the very tokens training put before the answer."""
    body = {"model": server.target.default_name, "messages": openai_messages(messages), "add_generation_prompt": True}
    if tools:
        body["tools"] = tools
    served = post(server, "/tokenize", body)["tokens"]
    if served == trained_ids:
        checklist.check(f"served prompt = trained prompt ({what})", True, f"{len(served)} tokens, identical")
        return
    at = next(
        (i for i, (a, b) in enumerate(zip(served, trained_ids, strict=False)) if a != b),
        min(len(served), len(trained_ids)),
    )
    checklist.check(
        f"served prompt = trained prompt ({what})",
        False,
        f"differs at token {at}: served {served[at : at + 4]} vs trained {trained_ids[at : at + 4]} "
        f"({len(served)} vs {len(trained_ids)} tokens; a doubled BOS or a template switch such as thinking?)",
    )


def thinking_switch(server, tokenizer, template: str, switch: str, question: list[dict], checklist: Checklist) -> None:
    """The thinking switch (Qwen3: enable_thinking) is in the same position at serve time as at train time:
    the served prompt, with no per-request override, is the rendering with the trained value."""
    from genai.data.tokenize import render_chat

    def state(ids: list[int]) -> bool | None:
        for value in (True, False):
            text = tokenizer.apply_chat_template(
                question, chat_template=template, tokenize=False, add_generation_prompt=True, **{switch: value}
            )
            if tokenizer(text, add_special_tokens=False)["input_ids"] == ids:
                return value
        return None

    trained = state(tokenizer(render_chat(tokenizer, template, question, True), add_special_tokens=False)["input_ids"])
    body = {"model": server.target.default_name, "messages": question, "add_generation_prompt": True}
    served = state(post(server, "/tokenize", body)["tokens"])
    checklist.check(
        f"thinking switch the same at train and serve ({switch})",
        trained is not None and trained == served,
        f"trained {switch}={trained}, served {switch}={served}"
        + ("" if trained == served else " (None: neither rendering; is the artifact's template the trained one?)"),
    )


def greedy_and_stop(
    server, messages: list[dict], tools, expected: str, stop_tokens, checklist: Checklist, what: str
) -> None:
    """Greedy answer equals transformers' in fp32, and ends at a stop token (finish_reason 'stop')."""
    body = {
        "model": server.target.default_name,
        "messages": openai_messages(messages),
        "max_tokens": 48,
        "temperature": 0,
    } | ({"tools": tools} if tools else {})
    choice = post(server, "/v1/chat/completions", body)["choices"][0]
    answer = choice["message"].get("content") or ""
    checklist.check(
        f"greedy answer equals transformers fp32 ({what})",
        answer.strip() == expected.strip(),
        f"both {answer!r}" if answer.strip() == expected.strip() else f"vLLM {answer!r} vs transformers {expected!r}",
    )
    checklist.check(
        f"generation stops at the stop token ({what})",
        choice["finish_reason"] == "stop",
        f"finish_reason 'stop' ({' / '.join(stop_tokens)})"
        if choice["finish_reason"] == "stop"
        else f"finish_reason {choice['finish_reason']!r} after 48 tokens: never stopped at {' / '.join(stop_tokens)}",
    )


def json_schema(server, checklist: Checklist) -> None:
    """A response_format json_schema request returns JSON valid for the schema."""
    body = {
        "model": server.target.default_name,
        "messages": [{"role": "user", "content": "Give a measurement as JSON."}],
        "max_tokens": 40,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "measurement", "schema": SCHEMA}},
    }
    content = post(server, "/v1/chat/completions", body)["choices"][0]["message"].get("content") or ""
    try:
        obj = json.loads(content)
        ok = (
            isinstance(obj, dict)
            and set(obj) == {"unit", "ok"}
            and obj["unit"] in ("cm", "kg")
            and isinstance(obj["ok"], bool)
        )
    except json.JSONDecodeError:
        ok = False
    checklist.check(
        "response_format json_schema", ok, f"valid: {content}" if ok else f"not valid for the schema: {content[:80]!r}"
    )


def tool_parser_reads_training(
    parser: str, tokenizer, rendered_turn: str, calls: list[dict], tools: list[dict], checklist: Checklist
) -> None:
    """vLLM's tool parser, given the assistant turn exactly as training rendered it, returns its calls."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.tool_parsers import ToolParserManager

    request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], tools=tools)
    found = ToolParserManager.get_tool_parser(parser)(tokenizer, tools=request.tools).extract_tool_calls(
        rendered_turn, request
    )
    got = [(c.function.name, json.loads(c.function.arguments)) for c in found.tool_calls] if found.tools_called else []
    want = [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
    checklist.check(
        f"tool parser '{parser}' reads the trained tool calls",
        got == want,
        f"{len(got)} call(s) parsed back: {got}"
        if got == want
        else f"parsed {got} from {rendered_turn[:80]!r}, trained {want}",
    )


def tool_call_request(server, messages: list[dict], tools: list[dict], checklist: Checklist) -> None:
    """A tool-call request comes back as parsed tool_calls: by the family's parser when the model
    writes its call format (tool_choice auto), else through a named tool_choice (the server's
    constrained path), so the endpoint's tool plumbing is proven either way."""
    name = tools[0]["function"]["name"]
    base = {"model": server.target.default_name, "messages": openai_messages(messages), "tools": tools}
    base |= {"max_tokens": 64, "temperature": 0}
    auto = post(server, "/v1/chat/completions", {**base, "tool_choice": "auto"})["choices"][0]["message"]
    if auto.get("tool_calls"):
        call = auto["tool_calls"][0]["function"]
        checklist.check(
            "tool call through the endpoint",
            True,
            f"parsed by the family's parser: {call['name']}({call['arguments']})",
        )
        return
    named = {"type": "function", "function": {"name": name}}
    forced = post(server, "/v1/chat/completions", {**base, "tool_choice": named})["choices"][0]["message"]
    calls = forced.get("tool_calls") or []
    ok = bool(calls) and calls[0]["function"]["name"] == name
    checklist.check(
        "tool call through the endpoint",
        ok,
        f"tool_choice {name!r}: {calls[0]['function']['name']}({calls[0]['function']['arguments']}); "
        f"with auto the smoke model answered in text ({(auto.get('content') or '')[:40]!r})"
        if ok
        else f"no tool_calls returned: {forced}",
    )
