"""`genai generate`: offline batch generation with vLLM's LLM API on the artifact."""

from __future__ import annotations

import json
from pathlib import Path

from genai.errors import GenaiError
from genai.runs import atomic_write_text
from genai.serving.artifact import resolve
from genai.serving.server import has_cuda, require_vllm, resolve_dtype, set_offline_engine_env


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
) -> int:
    rows = read_prompts(input)
    require_vllm()
    tgt, serve, _ = resolve(target, overrides)
    set_offline_engine_env(serve, gpu=has_cuda())
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    gen_dir = tgt.artifact_dir if (tgt.artifact_dir / "generation_config.json").exists() else "auto"
    kwargs = dict(
        model=tgt.model,
        generation_config=str(gen_dir),
        dtype=resolve_dtype(tgt, serve, gpu=has_cuda()),
        trust_remote_code=tgt.trust_remote_code,
        seed=seed,
        enforce_eager=serve.enforce_eager if serve.enforce_eager is not None else not has_cuda(),
    )
    if serve.max_model_len:
        kwargs["max_model_len"] = serve.max_model_len
    if tgt.adapter is not None:
        kwargs.update(enable_lora=True, max_lora_rank=tgt.lora_rank, max_loras=1)
    llm = LLM(**kwargs)
    lora = LoRARequest(tgt.adapter_name, 1, str(tgt.adapter)) if tgt.adapter is not None else None
    template_file = tgt.artifact_dir / "chat_template.jinja"
    template = template_file.read_text() if template_file.exists() else None

    def params(row):
        return SamplingParams(
            max_tokens=int(row.get("max_tokens", max_tokens)),
            temperature=float(row.get("temperature", temperature)),
            top_p=top_p,
            seed=seed,
        )

    results: dict[int, str] = {}
    chats = [(i, r) for i, r in enumerate(rows) if "messages" in r]
    plain = [(i, r) for i, r in enumerate(rows) if "messages" not in r]
    if plain:
        outs = llm.generate(
            [r["prompt"] for _, r in plain], [params(r) for _, r in plain], lora_request=lora, use_tqdm=True
        )
        results.update({i: o.outputs[0].text for (i, _), o in zip(plain, outs, strict=False)})
    if chats:
        outs = llm.chat(
            [r["messages"] for _, r in chats],
            [params(r) for _, r in chats],
            lora_request=lora,
            chat_template=template,
            use_tqdm=True,
        )
        results.update({i: o.outputs[0].text for (i, _), o in zip(chats, outs, strict=False)})
    text = "".join(
        json.dumps({**row, "completion": results[i], "model": tgt.default_name}) + "\n" for i, row in enumerate(rows)
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, text)
    return len(rows)
