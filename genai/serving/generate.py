"""`genai generate`: offline batch generation with vLLM's LLM API on the artifact."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from genai.atomic import atomic_write_text
from genai.errors import GenaiError
from genai.serving.artifact import resolve
from genai.serving.engine import EngineOptions
from genai.serving.server import has_cuda, require_vllm
from genai.vllm_env import set_in_process_engine_env, werkzeug_proxies_hidden


def read_prompts(path: Path) -> list[dict]:
    """JSONL prompts: {"prompt": text} or {"messages": [...]} per line (errors name file:line)."""
    from genai.data.sources import read_jsonl

    if not path.is_file():
        raise GenaiError(f"--input {path}: file not found")
    rows = []
    for rec in read_jsonl(path):
        row = rec.data
        if not (isinstance(row.get("prompt"), str) or isinstance(row.get("messages"), list)):
            raise GenaiError(f"{rec.origin}: each line needs 'prompt' (text) or 'messages' (chat)")
        rows.append(row)
    if not rows:
        raise GenaiError(f"--input {path}: no prompts")
    return rows


def _generate(llm, rows: list[dict], params, lora, template: str | None) -> dict[int, str]:
    """Completions by row index: plain prompts through generate, chats through chat (the artifact's template)."""
    results: dict[int, str] = {}
    chats = [(i, r) for i, r in enumerate(rows) if "messages" in r]
    plain = [(i, r) for i, r in enumerate(rows) if "messages" not in r]
    if plain:
        outs = llm.generate(
            [r["prompt"] for _, r in plain], [params(r) for _, r in plain], lora_request=lora, use_tqdm=True
        )
        results.update({i: o.outputs[0].text for (i, _), o in zip(plain, outs, strict=True)})
    if chats:
        outs = llm.chat(
            [r["messages"] for _, r in chats],
            [params(r) for _, r in chats],
            lora_request=lora,
            chat_template=template,
            use_tqdm=True,
        )
        results.update({i: o.outputs[0].text for (i, _), o in zip(chats, outs, strict=True)})
    return results


def generate_file(
    target: str,
    overrides: list[str],
    input: Path,
    output: Path,
    *,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    latest: bool = False,
) -> int:
    """Generate a completion for every JSONL prompt with vLLM's LLM class; write them (atomically) to `output`."""
    rows = read_prompts(input)
    require_vllm()
    tgt, serve, _ = resolve(target, overrides, latest=latest)
    if tgt.chosen:
        print(f"generating with {tgt.chosen}", file=sys.stderr)
    gpu = has_cuda()
    set_in_process_engine_env(serve.kv_cache_gib, gpu=gpu)
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    opts = EngineOptions.build(tgt, serve, gpu=gpu, seed=seed)
    with werkzeug_proxies_hidden():
        llm = LLM(**opts.llm_kwargs())
    lora = LoRARequest(opts.lora.name, 1, opts.lora.path) if opts.lora is not None else None
    template = Path(opts.chat_template).read_text() if opts.chat_template else None

    def params(row):
        return SamplingParams(
            max_tokens=int(row.get("max_tokens", max_tokens)),
            temperature=float(row.get("temperature", temperature)),
            top_p=top_p,
            seed=seed,
        )

    results = _generate(llm, rows, params, lora, template)
    text = "".join(
        json.dumps({**row, "completion": results[i], "model": tgt.default_name}) + "\n" for i, row in enumerate(rows)
    )
    atomic_write_text(output, text)
    return len(rows)
