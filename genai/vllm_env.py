"""The environment genai gives vLLM's engine (in this process or a server's), kept apart from serving so
that training (GRPO's vLLM sampler) sets it the same way without importing the serving layer."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

# On CPU, "0" makes vLLM's engine process run the model itself instead of handing it to one more
# worker process, which vLLM pins to all cores but one: on a 2-core machine that worker computed on
# a single core. Measured (bench P2, medium model without LoRA): start 21 s -> 15 s, fp32 370 -> 649 tok/s.
CPU_ENGINE_MULTIPROCESSING = "0"


def engine_env(kv_cache_gib: int, *, gpu: bool) -> dict[str, str]:
    """Environment settings genai gives vLLM unless the environment already sets them."""
    if gpu:
        return {}
    return {
        "VLLM_CPU_KVCACHE_SPACE": f"{kv_cache_gib:g}",  # else vLLM asks for 92% of RAM
        "VLLM_ENABLE_V1_MULTIPROCESSING": CPU_ENGINE_MULTIPROCESSING,
    }


def set_in_process_engine_env(kv_cache_gib: int, *, gpu: bool) -> None:
    """Environment for vLLM's LLM class in this process (genai generate, eval's vllm backend, GRPO's sampler). On CPU
    the engine then runs here: otherwise vLLM spawns an engine and a worker process, each importing
    torch and vLLM again (bench P3: a quickstart eval 57 s -> 23 s)."""
    # vLLM logs to stdout by default; in this process stdout is the command's output (--json).
    quiet = {"VLLM_NO_USAGE_STATS": "1", "VLLM_LOGGING_STREAM": "ext://sys.stderr"}
    for name, value in {**quiet, **engine_env(kv_cache_gib, gpu=gpu)}.items():
        os.environ.setdefault(name, value)


@contextmanager
def werkzeug_proxies_hidden():
    """Start an in-process engine with werkzeug's LocalProxy objects (flask.current_app, flask.g...) reading as
    plain objects without attributes. On CPU, vLLM scans every loaded module's attributes at engine start with
    hasattr(value, "__dict__"), and a proxy outside its app context raises RuntimeError there, not
    AttributeError: without this, no engine starts in a process that has imported Flask (an app that embeds
    genai, moto's server in the tests)."""
    local = sys.modules.get("werkzeug.local")
    if local is None:
        yield
        return
    proxy = local.LocalProxy
    lookup = proxy.__dict__["__getattr__"]

    def attribute(self, name):
        try:
            obj = self._get_current_object()
        except RuntimeError:  # no app context: the attribute is simply not there
            raise AttributeError(name) from None
        return getattr(obj, name)

    proxy.__getattr__ = attribute
    try:
        yield
    finally:
        proxy.__getattr__ = lookup
