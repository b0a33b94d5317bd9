"""P2: `genai serve` output tokens/s vs transformers `generate` (batched) and vs a raw vLLM server.

64 chat prompts x 64 new tokens (EOS ignored so every request makes exactly 64), greedy, on the
same quickstart artifact (base + LoRA adapter). Also reports server start time.
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
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
N, NEW = 64, 64


def quickstart_run(arg: Path | None) -> Path:
    if arg:
        return arg
    runs = sorted((ROOT / "runs" / "quickstart").glob("*/manifest.json"))
    if runs:
        return runs[-1].parent
    subprocess.run([sys.executable, "-m", "genai.cli", "train", str(ROOT / "recipes" / "quickstart.yaml")],
                   check=True, cwd=ROOT)
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
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                      num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=2048,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(base)
    tok.save_pretrained(base)
    model = LlamaForCausalLM.from_pretrained(base)  # so the adapter records this folder as its base
    adapter = work / "medium" / "adapter"
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
    peft.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    return adapter.parent


def prompts() -> list[list[dict]]:
    rows = [json.loads(x) for x in (ROOT / "recipes/data/quickstart/test.jsonl").read_text().splitlines()]
    return [[{"role": "user", "content": r["instruction"]}] for r in rows[:N]]


def bench_transformers(run: Path) -> float:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = run / "adapter"
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    tok = AutoTokenizer.from_pretrained(adapter, padding_side="left")
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts()]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    secs = time.perf_counter() - start
    assert out.shape[1] - enc["input_ids"].shape[1] == NEW
    return N * NEW / secs


async def _load(url: str, model: str) -> float:
    import httpx

    async with httpx.AsyncClient(timeout=600) as http:
        start = time.perf_counter()
        rs = await asyncio.gather(*[http.post(f"{url}/chat/completions", json={
            "model": model, "messages": p, "max_tokens": NEW, "temperature": 0, "ignore_eos": True})
            for p in prompts()])
        secs = time.perf_counter() - start
    toks = sum(r.json()["usage"]["completion_tokens"] for r in rs)
    assert toks == N * NEW, toks
    return toks / secs


def bench_genai(run: Path) -> tuple[float, float]:
    from genai.serving.artifact import resolve
    from genai.serving.server import Server

    target = run if (run / "manifest.json").exists() else run / "adapter"
    tgt, serve, _ = resolve(str(target), ["serve.port=0", "serve.served_name=quickstart"])
    start = time.perf_counter()
    with Server(tgt, serve) as server:
        ready = time.perf_counter() - start
        asyncio.run(_load(server.base_url, "quickstart"))  # warm-up
        return asyncio.run(_load(server.base_url, "quickstart")), ready


def bench_raw_vllm(run: Path) -> tuple[float, float]:
    """The same engine started by hand, the way a vLLM user would, without genai."""
    import httpx

    from genai.serving.server import free_port

    adapter = run / "adapter"
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", base,
                             "--port", str(port), "--host", "127.0.0.1", "--dtype", "float32", "--enforce-eager",
                             "--enable-lora", "--lora-modules", f"quickstart={adapter}", "--max-lora-rank", "16",
                             "--chat-template", str(adapter / "chat_template.jinja")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            if proc.poll() is not None:
                raise SystemExit("raw vLLM server failed to start")
        ready = time.perf_counter() - start
        url = f"http://127.0.0.1:{port}/v1"
        asyncio.run(_load(url, "quickstart"))
        return asyncio.run(_load(url, "quickstart")), ready
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--size", choices=["tiny", "medium"], default="tiny")
    args = ap.parse_args()
    if args.size == "medium":
        import tempfile

        run = medium_adapter(Path(tempfile.mkdtemp(prefix="genai-bench-")))
    else:
        run = quickstart_run(args.run)
    hf = bench_transformers(run)
    raw, raw_start = bench_raw_vllm(run)
    ours, our_start = bench_genai(run)
    print(f"{'engine':22} {'out tok/s':>10} {'start s':>8}")
    print(f"{'transformers generate':22} {hf:>10.0f} {'-':>8}")
    print(f"{'raw vLLM server':22} {raw:>10.0f} {raw_start:>8.1f}")
    print(f"{'genai serve':22} {ours:>10.0f} {our_start:>8.1f}")
    print(f"genai serve / transformers: {ours / hf:.2f}x (target >= 2x); genai / raw vLLM: {ours / raw:.3f} "
          f"(overhead {100 * (1 - ours / raw):+.1f}%, target <= 5%)")
    from bench.common import record

    record("P2 serve output tok/s (64 prompts x 64 tokens)",
           f"{'tiny-llama (374k)' if args.size == 'tiny' else 'medium Llama (~85M)'} + LoRA r16, CPU: genai serve {ours:.0f} tok/s vs transformers generate {hf:.0f} = "
           f"**{ours / hf:.2f}x**; vs raw vLLM {raw:.0f} tok/s = {ours / raw:.3f}; start {our_start:.1f} s "
           f"(raw {raw_start:.1f} s)")


if __name__ == "__main__":
    main()
