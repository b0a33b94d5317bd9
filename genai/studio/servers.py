"""The playground's endpoints: at most one `genai serve` of a run at a time (started on request, in the
background, stopped on request or when the studio stops), plus any OpenAI-compatible URL a user adds.
Chats are proxied to the chosen endpoint and streamed back as server-sent events, so the browser never
holds an API key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genai.errors import GenaiError


@dataclass(frozen=True)
class Target:
    """Somewhere to send a chat: an OpenAI base URL and the model name to ask for there."""

    id: str
    label: str
    base_url: str
    model: str
    api_key: str | None = None  # sent upstream, never shown

    def public(self) -> dict:
        """What the page may see (no key)."""
        return {"id": self.id, "label": self.label, "base_url": self.base_url, "model": self.model}


class Playground:
    """The one served run and the added URLs (thread-safe: requests come from several workers)."""

    def __init__(self, runs_root: Path):
        self.runs_root = runs_root
        self.lock = threading.Lock()
        self.server = None  # genai.serving.server.Server once ready
        self.run_id: str | None = None
        self.state = "idle"  # idle | starting | ready | failed
        self.error: str | None = None
        self.external: dict[str, Target] = {}

    # ------------------------------------------------------------------ the served run
    def start(self, run_id: str, run_dir: Path) -> None:
        """Serve a run in the background (the previous one stops first: one engine at a time on CPU)."""
        with self.lock:
            if self.run_id == run_id and self.state in ("starting", "ready"):
                return
            old, self.server = self.server, None
            self.run_id, self.state, self.error = run_id, "starting", None
        if old is not None:
            old.stop()
        threading.Thread(target=self._serve, args=(run_id, run_dir), daemon=True).start()

    def _serve(self, run_id: str, run_dir: Path) -> None:
        from rich.console import Console

        from genai.serving.serve import start_server

        try:
            server = start_server(
                str(run_dir), ["serve.host=127.0.0.1", "serve.port=0"], Console(stderr=True, quiet=True)
            )
        except Exception as e:  # noqa: BLE001 - shown in the page, not as a trace
            why = (
                e.message + (f" ({e.hint})" if e.hint else "")
                if isinstance(e, GenaiError)
                else f"{type(e).__name__}: {e}"
            )
            with self.lock:
                if self.run_id == run_id:
                    self.state, self.error = "failed", why
            return
        with self.lock:
            if self.run_id != run_id:  # another run was asked for meanwhile
                stale = server
            else:
                stale, self.server, self.state = None, server, "ready"
        if stale is not None:
            stale.stop()

    def stop(self) -> None:
        """Stop the served run, if any."""
        with self.lock:
            server, self.server = self.server, None
            self.run_id, self.state, self.error = None, "idle", None
        if server is not None:
            server.stop()

    def status(self) -> dict:
        """The served run's state and the targets a chat can go to."""
        with self.lock:
            return {
                "run": self.run_id,
                "state": self.state,
                "error": self.error,
                "targets": [t.public() for t in self.targets()],
            }

    # ------------------------------------------------------------------ targets
    def add_url(self, base_url: str, model: str, api_key: str | None = None) -> Target:
        """Add an OpenAI-compatible endpoint (its base URL, ending in /v1) as a target."""
        base_url = base_url.strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")) or not model.strip():
            raise GenaiError("give the endpoint's base URL (http://host:port/v1) and a model name")
        target = Target(
            f"url:{base_url}|{model.strip()}", f"{model.strip()} @ {base_url}", base_url, model.strip(), api_key
        )
        self.external[target.id] = target
        return target

    def targets(self) -> list[Target]:
        """The served run's models (fine-tuned first, then its base) and the added URLs."""
        out = []
        if self.server is not None and self.state == "ready":
            from genai.serving.server import api_key

            key, tgt = api_key(self.server.serve), self.server.target
            for name in tgt.names:
                kind = "fine-tuned" if name == tgt.default_name and tgt.adapter_name else "model"
                if tgt.adapter_name and name == tgt.model_name:
                    kind = "base"
                out.append(Target(f"run:{name}", f"{self.run_id}: {name} ({kind})", self.server.base_url, name, key))
        return out + list(self.external.values())

    def target(self, target_id: str) -> Target:
        """A target by id; a clear error when it is gone (server stopped, URL removed)."""
        for t in self.targets():
            if t.id == target_id:
                return t
        raise GenaiError(f"no chat target '{target_id}' (is its server still running?)")

    # ------------------------------------------------------------------ chat
    def stream_chat(self, target_id: str, body: dict) -> Iterator[str]:
        """Server-sent events: {"delta": text} per streamed piece, then {"done": true} or {"error": text}."""
        import httpx

        try:
            target = self.target(target_id)
        except GenaiError as e:
            yield _event({"error": e.message})
            return
        request = {
            "model": target.model,
            "messages": body.get("messages") or [],
            "stream": True,
            "temperature": float(body.get("temperature", 0.7)),
            "max_tokens": int(body.get("max_tokens", 256)),
        }
        headers = {"Authorization": f"Bearer {target.api_key or 'none'}"}
        try:
            with httpx.stream(
                "POST", f"{target.base_url}/chat/completions", json=request, headers=headers, timeout=300
            ) as resp:
                if resp.status_code != 200:
                    resp.read()
                    yield _event({"error": f"{target.label}: HTTP {resp.status_code}: {resp.text[:300]}"})
                    return
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield _event({"delta": piece})
        except (httpx.HTTPError, ValueError) as e:
            yield _event({"error": f"{target.label}: {type(e).__name__}: {e}"})
            return
        yield _event({"done": True})


def _event(obj: dict) -> str:
    return f"data: {json.dumps(obj)}\n\n"
