"""P1 and P2 on one GPU with a real model (default Qwen/Qwen2.5-0.5B-Instruct, bf16).

Needs a CUDA GPU, the `vllm` package and the model (hub access or a local folder via --model).
Reports training tokens/s with model FLOPs utilisation (4·N·tokens/s over the GPU's dense bf16
peak: LoRA freezes the base, so backward computes activation gradients only, 2N + 2N per token),
then `genai serve` (adapter by name, and merged) vs transformers `generate` on the GPU, bf16.
`--allow-cpu` runs the same path on CPU (a smoke run of the script; nothing is recorded).
Usage: python bench/gpu/train_serve_gpu.py [--model PATH_OR_ID] [--steps 60] [--allow-cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Dense bf16 peak FLOP/s by GPU name (vendor data sheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="Qwen/Qwen2.5-0.5B-Instruct")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--allow-cpu", action="store_true")
    args = ap.parse_args()
    from bench.common import gpu_or_exit

    gpu_here = gpu_or_exit(args.allow_cpu)
    from bench.common import record
    from bench.train_throughput import make_data
    from genai.recipe import load_recipe
    from genai.training.launch import start_training

    work = Path(tempfile.mkdtemp(prefix="genai-gpu-bench-"))
    make_data(work / "train.jsonl", 4000)
    make_data(work / "heldout.jsonl", 100, seed=1)
    (work / "r.yaml").write_text(f"""\
name: gpu-bench
model: {{name_or_path: {args.model}, dtype: bfloat16}}
data:
  train: [{{path: {work / "train.jsonl"}, format: alpaca}}]
  eval: [{{path: {work / "heldout.jsonl"}, format: alpaca}}]
  max_length: 2048
lora: {{r: 16, alpha: 32, dropout: 0.0}}
train: {{output_dir: {work / "runs"}, max_steps: {args.steps}, micro_batch_size: 4, learning_rate: 2.0e-4,
        mixed_precision: "{"bf16" if gpu_here else "no"}", logging_steps: 10, exact_match: {{limit: 0}}}}
serve: {{max_model_len: 2048}}
""")
    recipe = load_recipe(work / "r.yaml")
    result = start_training(recipe, verbose=True)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    tps = manifest["tokens"] / manifest["train_seconds"]
    from genai.models import resolve_model_path

    n_params = sum(
        p.numel()
        for p in __import__("transformers")
        .AutoModelForCausalLM.from_pretrained(resolve_model_path(recipe.model), dtype=torch.bfloat16)
        .parameters()
    )
    gpu = torch.cuda.get_device_name(0) if gpu_here else "CPU"
    peak = peak_flops(gpu)
    mfu = 4 * n_params * tps / peak if peak else None
    print(f"train: {tps:,.0f} tokens/s on {gpu}; MFU {mfu:.1%}" if mfu else f"train: {tps:,.0f} tokens/s on {gpu}")

    from bench import serve_throughput as st

    device = "cuda" if gpu_here else "cpu"
    merged = st.merged_model(result.run_dir)
    hf = st.bench_transformers(merged, "bfloat16", device=device)
    if gpu_here:  # hand training's and generate's cached GPU memory back before vLLM sizes its share
        import gc

        gc.collect()
        torch.cuda.empty_cache()
    settings = ["serve.dtype=bfloat16", "serve.gpu_memory_utilization=0.5"]
    lora, start = st.bench_genai(result.run_dir, settings)
    fast, _ = st.bench_genai(merged, settings)
    print(
        f"serve: genai (LoRA by name) {lora:,.0f} tok/s, genai (merged) {fast:,.0f} tok/s vs transformers "
        f"{hf:,.0f} tok/s = {lora / hf:.2f}x / {fast / hf:.2f}x; start {start:.1f} s"
    )
    if not gpu_here:
        return  # a smoke run: CPU figures belong to bench/serve_throughput.py
    record(
        "GPU P1/P2",
        f"{args.model} bf16 LoRA r16 on {gpu}: train {tps:,.0f} tok/s"
        + (f", MFU {mfu:.1%}" if mfu else "")
        + f"; serve (64x64) LoRA by name {lora:,.0f}, merged {fast:,.0f} vs "
        f"transformers generate {hf:,.0f} tok/s = **{lora / hf:.2f}x** / {fast / hf:.2f}x (start {start:.1f} s)",
    )


if __name__ == "__main__":
    main()
