"""Eval backends, in a registry: how lm-eval reaches the base model and the fine-tuned artifact.

Each backend is a context manager factory: given what to score it yields (lm-eval model name,
model_args), keeping whatever it started (a server) alive while lm-eval runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Literal

from genai.errors import GenaiError
from genai.evaluation.targets import base_target, tuned_target
from genai.recipe import CaptureSection, EvalSection, ServeSection
from genai.serving.artifact import ServeTarget

Which = Literal["base", "tuned"]
Backend = Callable[[ServeTarget, Which, EvalSection, ServeSection], contextlib.AbstractContextManager]
BACKENDS: dict[str, Backend] = {}


def register(name: str):
    """Add a backend to the registry under `name` (eval.backend)."""

    def deco(fn):
        BACKENDS[name] = contextlib.contextmanager(fn)
        return fn

    return deco


@register("hf")
def hf(target: ServeTarget, which: Which, cfg: EvalSection, serve: ServeSection) -> Iterator[tuple[str, dict]]:
    """transformers in this process: the adapter through PEFT, or the full model."""
    import torch

    from genai.models import soft_capping_attention
    from genai.serving.engine import resolve_dtype

    gpu = torch.cuda.is_available()
    if which == "base":
        target = base_target(target)
    args = {
        "pretrained": target.model,
        "tokenizer": str(target.artifact_dir),
        "dtype": resolve_dtype(target, serve, gpu=gpu),
        "device": "cuda" if gpu else "cpu",
        "trust_remote_code": target.trust_remote_code,
    }
    if which == "tuned" and target.adapter is not None:
        args["peft"] = str(target.adapter)
    if attention := soft_capping_attention(target.model, trust_remote_code=target.trust_remote_code):
        args["attn_implementation"] = attention  # scored as trained and served (genai.models)
    yield "hf", args


@register("vllm")
def vllm(target: ServeTarget, which: Which, cfg: EvalSection, serve: ServeSection) -> Iterator[tuple[str, dict]]:
    """vLLM's engine in this process, with the same engine options as `genai serve`."""
    from genai.evaluation.vllm_compat import ensure_vllm_metadata
    from genai.serving.engine import EngineOptions
    from genai.serving.server import has_cuda, require_vllm
    from genai.vllm_env import set_in_process_engine_env

    require_vllm()
    ensure_vllm_metadata()
    gpu = has_cuda()
    set_in_process_engine_env(serve.kv_cache_gib, gpu=gpu)
    target = tuned_target(target, gpu=gpu) if which == "tuned" else base_target(target)
    yield "vllm", EngineOptions.build(target, serve, gpu=gpu, seed=cfg.seed).lm_eval_args()


@contextlib.contextmanager
def _api_key(key: str | None):
    """lm-eval's API models read OPENAI_API_KEY; set it only while they run (never in model_args,
    which lm-eval writes into its results)."""
    old = os.environ.get("OPENAI_API_KEY")
    if key:
        os.environ["OPENAI_API_KEY"] = key
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = old


@register("endpoint")
def endpoint(target: ServeTarget, which: Which, cfg: EvalSection, serve: ServeSection) -> Iterator[tuple[str, dict]]:
    """An OpenAI-compatible endpoint: eval.endpoint.url, or `genai serve` started here for the run."""
    from genai.serving.server import Server, api_key, has_cuda

    ep = cfg.endpoint
    server = None
    if ep.url:
        base_url, key = ep.url.rstrip("/"), os.environ.get(ep.api_key_env)
        name = (
            ep.model
            if (ep.model and which == "tuned")
            else (target.default_name if which == "tuned" else target.model_name)
        )
    else:  # score the served model itself: start `genai serve` for it
        target = tuned_target(target, gpu=has_cuda()) if which == "tuned" else base_target(target)
        # The eval's own traffic is not the endpoint's: it is never captured (it would skew drift).
        server = Server(target, serve.model_copy(update={"port": 0, "capture": CaptureSection()})).start()
        base_url, key, name = server.base_url, api_key(serve), target.default_name
    try:
        _check_reachable(base_url, key)
        common = {
            "model": name,
            "tokenizer": str(target.artifact_dir),
            "tokenizer_backend": "huggingface",
            "num_concurrent": ep.num_concurrent,
            "max_retries": 1,
            "timeout": int(ep.timeout_s),
            "seed": cfg.seed,
            "trust_remote_code": target.trust_remote_code,
        }
        with _api_key(key):
            if ep.chat:
                yield "local-chat-completions", {**common, "base_url": f"{base_url}/chat/completions"}
            else:
                # Token-id prompts: the server scores exactly the tokens lm-eval built.
                yield (
                    "local-completions",
                    {
                        **common,
                        "base_url": f"{base_url}/completions",
                        "tokenized_requests": True,
                        "max_length": serve.max_model_len or 2048,
                    },
                )
    finally:
        if server is not None:
            server.stop()


def _check_reachable(base_url: str, key: str | None) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {key or 'none'}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise GenaiError(
                f"endpoint {base_url}: API key rejected (401)",
                hint="set the key in the environment variable eval.endpoint.api_key_env names",
            ) from None
        raise GenaiError(f"endpoint {base_url}: /models answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise GenaiError(
            f"endpoint {base_url} is unreachable: {getattr(exc, 'reason', exc)}",
            hint="start it with `genai serve RUN`, or leave eval.endpoint.url empty",
        ) from None
