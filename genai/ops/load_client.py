"""The load test's client: streaming requests to an OpenAI-compatible server, timed per chunk, and their statistics.

Each request streams (`stream_options.include_usage`), so output tokens are the server's own count and
the timings are the client's: time to first token (the first chunk with text), inter-token latency
(the gaps between chunks with text) and end-to-end latency (until the stream ends).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from genai.errors import GenaiError

PROBE_TIMEOUT_S = 5.0
ERROR_SAMPLES = 3  # distinct error messages kept per level


@dataclass
class Prompt:
    """One request's input: a chat (`messages`, to /chat/completions) or plain text (`prompt`, to /completions)."""

    messages: list[dict] | None = None
    prompt: str | None = None

    def body(self, model: str, max_tokens: int, ignore_eos: bool) -> dict:
        """The streaming request body: greedy, the server's usage in the last chunk."""
        body: dict = {
            "model": model,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.messages is not None:
            body["messages"] = self.messages
        else:
            body["prompt"] = self.prompt
        if ignore_eos:  # vLLM's extension: every answer runs to max_tokens (comparable lengths across runs)
            body["ignore_eos"] = True
        return body

    @property
    def path(self) -> str:
        """The endpoint under the base URL."""
        return "/chat/completions" if self.messages is not None else "/completions"


@dataclass
class Outcome:
    """One request as the client saw it (seconds); `error` set when it failed."""

    error: str | None = None
    ttft: float | None = None  # None: the answer had no text (the model stopped at once)
    itl: list[float] = field(default_factory=list)
    e2e: float | None = None
    output_tokens: int = 0
    prompt_tokens: int = 0
    usage: bool = False  # output_tokens from the server's usage (else counted chunks)


def headers(api_key: str | None) -> dict[str, str]:
    """Request headers, with the bearer key when there is one."""
    out = {"Content-Type": "application/json"}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def probe(base_url: str, api_key: str | None, key_source: str) -> list[dict]:
    """GET /models with a short timeout, before any load: an unreachable server, a rejected key or a
    server that is not OpenAI-compatible is one clear error (exit 2). Returns the listed models."""
    req = urllib.request.Request(f"{base_url}/models", headers=headers(api_key))
    try:
        with urllib.request.urlopen(req, timeout=PROBE_TIMEOUT_S) as resp:
            listed = json.loads(resp.read()).get("data")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise GenaiError(
                f"{base_url}: the API key was rejected (HTTP {exc.code})", hint=f"the key is read from {key_source}"
            ) from None
        raise GenaiError(
            f"{base_url}: GET /models answered HTTP {exc.code}: not an OpenAI-compatible endpoint here",
            hint="give the server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1",
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GenaiError(
            f"{base_url}: unreachable ({reason}); nothing was sent",
            hint="check the URL and that the server is up (`genai serve RUN` prints its URL)",
        ) from None
    except (json.JSONDecodeError, AttributeError):
        raise GenaiError(f"{base_url}: GET /models did not answer an OpenAI model list") from None
    if not isinstance(listed, list) or not listed:
        raise GenaiError(f"{base_url}: the server lists no models (GET /models)")
    return listed


def pick_model(models: list[dict], asked: str | None, base_url: str) -> str:
    """The model asked for (it must be listed), else the first fine-tuned adapter (a model with a
    parent: vLLM's LoRA modules), else the first listed."""
    ids = [m.get("id") for m in models]
    if asked is not None:
        if asked not in ids:
            raise GenaiError(f"--model {asked}: not served at {base_url}", hint="served: " + ", ".join(map(str, ids)))
        return asked
    adapters = [m["id"] for m in models if m.get("parent")]
    return adapters[0] if adapters else ids[0]


async def send(session, base_url: str, body: dict, path: str) -> Outcome:
    """One streaming request, timed chunk by chunk; failures are recorded, never raised."""
    import aiohttp

    out = Outcome()
    start = last = time.perf_counter()
    chunks = 0
    try:
        async with session.post(base_url + path, json=body) as resp:
            if resp.status != 200:
                out.error = f"HTTP {resp.status}: {(await resp.text())[:200].strip()}"
                return out
            async for raw in resp.content:  # server-sent events, one line each
                line = raw.strip()
                if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                    continue
                event = json.loads(line[5:])
                if "error" in event:
                    out.error = f"stream error: {str(event['error'])[:200]}"
                    return out
                if event.get("usage"):
                    out.usage = True
                    out.output_tokens = int(event["usage"].get("completion_tokens") or 0)
                    out.prompt_tokens = int(event["usage"].get("prompt_tokens") or 0)
                if _text(event):
                    now = time.perf_counter()
                    if out.ttft is None:
                        out.ttft = now - start
                    else:
                        out.itl.append(now - last)
                    last, chunks = now, chunks + 1
    except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return out
    out.e2e = time.perf_counter() - start
    if not out.usage:  # a server without usage in streams: one chunk is about one token
        out.output_tokens = chunks
    return out


def _text(event: dict) -> str:
    """The text a chunk carries (chat delta or completion text)."""
    choices = event.get("choices") or []
    if not choices:
        return ""
    first = choices[0]
    return (first.get("delta") or {}).get("content") or first.get("text") or ""


def session_for(api_key: str | None, timeout_s: float):
    """An aiohttp session without a connection cap (the load shape is ours to set)."""
    import aiohttp

    return aiohttp.ClientSession(
        headers=headers(api_key),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        connector=aiohttp.TCPConnector(limit=0),
    )


async def run_level(
    session,
    base_url: str,
    work: list[tuple[dict, str]],
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    seed: int = 0,
    on_done=None,
) -> tuple[list[Outcome], float]:
    """Send every (body, path): at most `concurrency` in flight, or arriving as a Poisson process of
    `rate` requests/s (seeded gaps, no cap). Returns the outcomes and the wall time, first send to last end."""
    gate = asyncio.Semaphore(concurrency) if concurrency else None
    arrivals, t = [], 0.0
    rng = random.Random(seed)
    for _ in work:
        arrivals.append(t)
        if rate:
            t += rng.expovariate(rate)
    start = time.perf_counter()

    async def one(at: float, body: dict, path: str) -> Outcome:
        if rate:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        if gate is not None:
            async with gate:
                result = await send(session, base_url, body, path)
        else:
            result = await send(session, base_url, body, path)
        if on_done:
            on_done(result)
        return result

    outcomes = await asyncio.gather(*(one(at, b, p) for at, (b, p) in zip(arrivals, work, strict=True)))
    return list(outcomes), time.perf_counter() - start


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread(values: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and mean of a latency (seconds)."""
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "mean": sum(values) / len(values) if values else None,
    }


def level_stats(outcomes: list[Outcome], duration: float) -> dict:
    """A level's figures: counts, throughput (completed requests and output tokens over the wall time),
    and the latency spreads (successful requests only; ITL pools every gap, as vLLM's benchmark does)."""
    ok = [o for o in outcomes if o.error is None]
    errors = [o.error for o in outcomes if o.error is not None]
    out_tokens = sum(o.output_tokens for o in ok)
    return {
        "requests": len(outcomes),
        "completed": len(ok),
        "errors": len(errors),
        "error_rate": len(errors) / len(outcomes) if outcomes else 0.0,
        "error_samples": list(dict.fromkeys(errors))[:ERROR_SAMPLES],
        "empty_answers": sum(1 for o in ok if o.ttft is None),
        "duration_s": duration,
        "requests_per_s": len(ok) / duration if duration > 0 else 0.0,
        "output_tokens": out_tokens,
        "output_tokens_per_s": out_tokens / duration if duration > 0 else 0.0,
        "input_tokens": sum(o.prompt_tokens for o in ok),
        "tokens_counted_by": "server usage" if ok and all(o.usage for o in ok) else "chunks",
        "ttft_s": spread([o.ttft for o in ok if o.ttft is not None]),
        "itl_s": spread([gap for o in ok for gap in o.itl]),
        "e2e_s": spread([o.e2e for o in ok if o.e2e is not None]),
    }
