"""P2: `genai serve` output tokens/s vs transformers `generate` (batched) and vs a raw vLLM server.

64 chat prompts x 64 new tokens (EOS ignored so every request makes exactly 64), greedy, on the
same quickstart artifact; each figure is the median of repeated timed runs after a warm-up. Rows:
- transformers generate on the merged model, fp32 (the artifact's dtype) and bf16: the baseline;
- genai serve with its defaults (base + LoRA adapter by name, fp32 on CPU: exact, parity-tested);
- genai serve set for throughput (serve.artifact=merged, serve.dtype=bfloat16);
- a raw vLLM server with the same model, flags and environment as genai's default (overhead), and
  once more with vLLM's own CPU executor default (what genai's engine setting changes).
The tiny model (374k parameters) measures per-token engine overhead, where transformers wins;
`--size medium` builds an ~85M-parameter Llama with the same tokenizer and a random LoRA adapter
(weights don't matter for throughput), where the engines' real work dominates.
Usage: python bench/serve_throughput.py [--size tiny|medium] [--run runs/quickstart/<id>]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
N, NEW = 64, 64
MIN_SECONDS = 5.0


def quickstart_run(arg: Path | None) -> Path:
    if arg:
        return arg
    runs = sorted((ROOT / "runs" / "quickstart").glob("*/manifest.json"))
    if runs:
        return runs[-1].parent
    subprocess.run(
        [sys.executable, "-m", "genai.cli", "train", str(ROOT / "recipes" / "quickstart.yaml")], check=True, cwd=ROOT
    )
    return sorted((ROOT / "runs" / "quickstart").glob("*/manifest.json"))[-1].parent


def medium_adapter(work: Path) -> Path:
    """A ~85M-parameter Llama (tiny tokenizer, random weights) plus a random LoRA r16 adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from genai.tiny import ensure_tiny_model

    tiny = ensure_tiny_model()
    tok = AutoTokenizer.from_pretrained(tiny)
    base = work / "medium-base"
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(base)
    tok.save_pretrained(base)
    model = LlamaForCausalLM.from_pretrained(base)  # so the adapter records this folder as its base
    adapter = work / "medium" / "adapter"
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
    peft.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    model.generation_config.save_pretrained(adapter)  # as genai's artifacts carry it (merging reads it)
    return adapter.parent


def prompts() -> list[list[dict]]:
    rows = [json.loads(x) for x in (ROOT / "recipes/data/quickstart/test.jsonl").read_text().splitlines()]
    return [[{"role": "user", "content": r["instruction"]}] for r in rows[:N]]


def merged_model(run: Path) -> Path:
    from genai.training.export import merge_adapter

    merged = run / "merged"
    if not (merged / "config.json").exists():
        merge_adapter(run / "adapter", merged)
    return merged


def bench_transformers(model_dir: Path, dtype: str, device: str = "cpu") -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts()]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)

    def once() -> float:
        start = time.perf_counter()
        out = model.generate(
            **enc, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=tok.pad_token_id
        )
        if device == "cuda":
            torch.cuda.synchronize()
        assert out.shape[1] - enc["input_ids"].shape[1] == NEW
        return N * NEW / (time.perf_counter() - start)

    with torch.no_grad():
        model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)  # warm-up
        return steady(once)


def steady(measure) -> float:
    """Median tokens/s of at least 3 timed runs and at least MIN_SECONDS of them (the tiny model's
    run takes well under a second, where one run is noise)."""
    rates: list[float] = []
    spent = 0.0
    while len(rates) < 3 or (spent < MIN_SECONDS and len(rates) < 25):
        rates.append(measure())
        spent += N * NEW / rates[-1]
    return statistics.median(rates)


async def _load(url: str, model: str) -> float:
    import httpx

    async with httpx.AsyncClient(timeout=600) as http:
        start = time.perf_counter()
        rs = await asyncio.gather(
            *[
                http.post(
                    f"{url}/chat/completions",
                    json={"model": model, "messages": p, "max_tokens": NEW, "temperature": 0, "ignore_eos": True},
                )
                for p in prompts()
            ]
        )
        secs = time.perf_counter() - start
    toks = sum(r.json()["usage"]["completion_tokens"] for r in rs)
    assert toks == N * NEW, toks
    return toks / secs


def _serve_and_load(cmd: list[str], env: dict, port: int, model: str) -> tuple[float, float]:
    """Start a server command in its own process group, wait for /health, then time the load.
    The load client runs here, in a process of its own, as any client of a server would."""
    import httpx

    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=ROOT
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            if proc.poll() is not None:
                raise SystemExit(f"server failed to start: {' '.join(cmd)}")
        ready = time.perf_counter() - start
        url = f"http://127.0.0.1:{port}/v1"
        asyncio.run(_load(url, model))  # warm-up
        return steady(lambda: asyncio.run(_load(url, model))), ready
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()


def bench_genai(target: Path, overrides: list[str]) -> tuple[float, float]:
    """`genai serve` exactly as a user runs it (the CLI, in its own process)."""
    from genai.serving.artifact import resolve
    from genai.serving.server import free_port

    port = free_port()
    settings = [f"serve.port={port}", "serve.served_name=quickstart", *overrides]
    tgt, _, _ = resolve(str(target), settings)
    cmd = [str(Path(sys.executable).with_name("genai")), "serve", str(target), *settings]
    return _serve_and_load(cmd, dict(os.environ), port, tgt.default_name)


def bench_raw_vllm(run: Path, *, vllm_executor_default: bool) -> tuple[float, float]:
    """The same engine started by hand, the way a vLLM user would, without genai (the flags such a
    user would write for this artifact), either with genai's CPU engine setting or with vLLM's default."""
    from genai.serving.server import free_port
    from genai.vllm_env import CPU_ENGINE_MULTIPROCESSING

    adapter = run / "adapter"
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
    if not vllm_executor_default:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = CPU_ENGINE_MULTIPROCESSING
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        base,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--dtype",
        "float32",
        "--enforce-eager",
        "--enable-lora",
        "--lora-modules",
        f"quickstart={adapter}",
        "--max-lora-rank",
        "16",
        "--chat-template",
        str(adapter / "chat_template.jinja"),
    ]
    return _serve_and_load(cmd, env, port, "quickstart")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--size", choices=["tiny", "medium"], default="tiny")
    args = ap.parse_args()
    if args.size == "medium":
        import shutil
        import tempfile

        work = Path(tempfile.mkdtemp(prefix="genai-bench-"))
        try:
            measure(medium_adapter(work), args.size)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # ~0.7 GB of random weights
    else:
        measure(quickstart_run(args.run), args.size)


def measure(run: Path, size: str) -> None:
    merged = merged_model(run)
    adapter_target = run if (run / "manifest.json").exists() else run / "adapter"
    rows = {  # name: (out tok/s, start s)
        "transformers generate fp32": (bench_transformers(merged, "float32"), None),
        "transformers generate bf16": (bench_transformers(merged, "bfloat16"), None),
        "raw vLLM, vLLM's CPU default": bench_raw_vllm(run, vllm_executor_default=True),
        "raw vLLM, genai's settings": bench_raw_vllm(run, vllm_executor_default=False),
        "genai serve (default)": bench_genai(adapter_target, []),
        "genai serve (throughput)": bench_genai(merged, ["serve.dtype=bfloat16"]),
    }
    print(f"{'engine':30} {'out tok/s':>10} {'start s':>8}")
    for name, (tps, ready) in rows.items():
        print(f"{name:30} {tps:>10.0f} {'-' if ready is None else f'{ready:.1f}':>8}")
    hf32, hf16 = rows["transformers generate fp32"][0], rows["transformers generate bf16"][0]
    exact, fast = rows["genai serve (default)"][0], rows["genai serve (throughput)"][0]
    raw, raw_default = rows["raw vLLM, genai's settings"][0], rows["raw vLLM, vLLM's CPU default"][0]
    print(
        f"genai serve (throughput) / transformers fp32: {fast / hf32:.2f}x (target >= 2x); "
        f"/ transformers bf16: {fast / hf16:.2f}x; genai serve (default) / transformers fp32: {exact / hf32:.2f}x"
    )
    print(
        f"genai / raw vLLM with the same settings: {exact / raw:.3f} (overhead {100 * (1 - exact / raw):+.1f}%, "
        f"target <= 5%); genai's CPU engine setting vs vLLM's default: {raw / raw_default:.2f}x"
    )
    from bench.common import record

    model = "tiny-llama (374k)" if size == "tiny" else "medium Llama (~85M)"
    starts = [
        rows[k][1] for k in ("genai serve (default)", "raw vLLM, genai's settings", "raw vLLM, vLLM's CPU default")
    ]
    record(
        "P2 serve output tok/s (64 prompts x 64 tokens)",
        f"{model}, CPU: genai serve throughput (merged, bf16) {fast:.0f} tok/s vs transformers generate fp32 "
        f"{hf32:.0f} = **{fast / hf32:.2f}x** (vs transformers bf16 {hf16:.0f}: {fast / hf16:.2f}x); genai serve "
        f"default (LoRA by name, fp32) {exact:.0f} tok/s = {exact / hf32:.2f}x; vs raw vLLM same settings "
        f"{raw:.0f} tok/s = {exact / raw:.3f}; raw vLLM with its CPU default executor {raw_default:.0f} tok/s "
        f"(genai's setting {raw / raw_default:.2f}x); start genai {starts[0]:.1f} s, raw same settings "
        f"{starts[1]:.1f} s, raw default {starts[2]:.1f} s",
    )


if __name__ == "__main__":
    main()
