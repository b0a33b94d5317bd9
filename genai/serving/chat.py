"""`genai chat`: a streaming terminal chat against any OpenAI-compatible endpoint."""

from __future__ import annotations

import os
import sys

from genai.errors import GenaiError, require


def chat_loop(
    target: str,
    overrides: list[str],
    *,
    model: str | None,
    system: str | None,
    max_tokens: int,
    latest: bool = False,
    stdin=None,
    stdout=None,
) -> None:
    """Read lines, stream each answer, keep the conversation; serve the target first when it is not a URL."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    openai = require("openai", "dev", "genai chat")
    server = None
    if target.startswith(("http://", "https://")):
        base_url, key = (
            target.rstrip("/"),
            os.environ.get("GENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none",
        )
    else:
        from genai.serving.serve import start_server
        from genai.serving.server import api_key

        server = start_server(target, overrides, latest=latest)
        base_url, key = server.base_url, api_key(server.serve) or "none"
        model = model or server.target.default_name
    try:
        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
        try:
            model = model or client.models.list().data[0].id
        except openai.APIConnectionError:
            raise GenaiError(f"{base_url}: endpoint unreachable", hint="start it with `genai serve RECIPE`") from None
        except openai.AuthenticationError:
            raise GenaiError(f"{base_url}: API key rejected", hint="set GENAI_API_KEY") from None
        history = [{"role": "system", "content": system}] if system else []
        stdout.write(f"chatting with {model} at {base_url} (empty line or Ctrl-D to quit)\n")
        while True:
            stdout.write("> ")
            stdout.flush()
            line = stdin.readline()
            if not line.strip():
                break
            history.append({"role": "user", "content": line.rstrip("\n")})
            reply = []
            stream = client.chat.completions.create(model=model, messages=history, stream=True, max_tokens=max_tokens)
            for chunk in stream:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    reply.append(piece)
                    stdout.write(piece)
                    stdout.flush()
            stdout.write("\n")
            history.append({"role": "assistant", "content": "".join(reply)})
    finally:
        if server is not None:
            server.stop()
