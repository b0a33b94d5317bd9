"""`genai monitor RUN --replay URL --out FILE [CAPTURE]`: send captured prompts to an endpoint again and
write its answers as an eval file.

Each line of FILE is {"instruction", "output", "messages", "captured", "id"}: `instruction` is the last
user turn and `output` the endpoint's answer, which is what a custom eval suite reads
(eval/README.md: doc_to_text "{{instruction}}", doc_to_target "{{output}}"); `messages` is the
whole conversation with the answer last (genai's `messages` data format), `captured` the answer
recorded at capture time. Greedy (temperature 0), each request's own max_tokens.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from genai.errors import GenaiError


def chat_url(url: str) -> str:
    """The chat completions URL of an OpenAI base URL (http://host:port, .../v1 or the full path)."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def replay_items(capture: Path, limit: int | None = None) -> list[dict]:
    """What to send: each answered request's conversation, its model, max_tokens and captured answer."""
    from genai.serving.capture import answer_of, prompts_of, read_records

    items = []
    for rec in read_records(capture):
        if rec.get("status") != 200:
            continue
        req = rec.get("request") or {}
        for messages in prompts_of(rec):
            if any(m["role"] == "user" for m in messages):
                items.append(
                    {
                        "id": rec.get("id"),
                        "messages": messages,
                        "model": rec.get("model"),
                        "max_tokens": req.get("max_tokens") or req.get("max_completion_tokens"),
                        "captured": answer_of(rec),
                    }
                )
    if not items:
        raise GenaiError(
            f"{capture}: the capture is empty (no answered request with a user turn to replay)",
            hint="serve with serve.capture.enabled=true and send some traffic first",
        )
    return items[:limit] if limit else items


def _ask(url: str, key: str | None, item: dict, model: str | None, timeout: float) -> str:
    body = {"model": model or item["model"], "messages": item["messages"], "temperature": 0}
    if item["max_tokens"]:
        body["max_tokens"] = item["max_tokens"]
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())["choices"][0]["message"]["content"] or ""
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise GenaiError(
            f"--replay {url}: HTTP {exc.code}: {detail}", hint="check the URL, --model and the key"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise GenaiError(f"--replay {url}: cannot reach the endpoint ({exc})") from None


def replay(
    capture: Path,
    url: str,
    out: Path,
    *,
    model: str | None = None,
    api_key_env: str = "GENAI_API_KEY",
    concurrency: int = 4,
    limit: int | None = None,
    timeout: float = 300,
) -> dict:
    """Send the captured conversations to `url` and write the eval JSONL; a summary."""
    items = replay_items(capture, limit)
    endpoint, key = chat_url(url), os.environ.get(api_key_env) or None
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        answers = list(pool.map(lambda it: _ask(endpoint, key, it, model, timeout), items))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for item, answer in zip(items, answers, strict=True):
            last_user = next(m["content"] for m in reversed(item["messages"]) if m["role"] == "user")
            row = {
                "instruction": last_user,
                "output": answer,
                "messages": [*item["messages"], {"role": "assistant", "content": answer}],
                "captured": item["captured"],
                "id": item["id"],
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    same = sum(a == it["captured"] for a, it in zip(answers, items, strict=True))
    return {"replayed": len(items), "out": str(out), "endpoint": endpoint, "same_as_captured": same}
