"""Issue 14 on one GPU: genai train vs TRL packed SFT and TRL + Liger on a Qwen2.5-0.5B-shaped model, bf16.

The same engines as bench/train_throughput.py (each in its own process, same tokens, masks, LoRA r16,
schedule), on a model with Qwen2.5-0.5B's exact shape (896 hidden, 24 layers, 14 heads / 2 KV heads,
4864 intermediate, 151,936-row tied vocabulary) and random weights, so nothing is downloaded (the GPU
machine reaches no hub); --model uses a real folder instead. Reports tokens/s, MFU (4·N·tokens/s over
the GPU's dense bf16 peak: LoRA's backward computes activation gradients only) and peak GPU memory
(torch.cuda.max_memory_allocated), for genai (Liger when installed), genai without Liger, TRL packed
(bfd, padding-free, completion-only) and TRL + Liger (when installed).
Usage: python bench/gpu/train_kernels_gpu.py [--samples 3000] [--runs 1] [--model PATH] [--allow-cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

QWEN25_05B = {
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
}


def main() -> None:
    import torch

    from bench import train_throughput as tt
    from bench.gpu.train_serve_gpu import peak_flops

    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--model", help="a local model folder (default: Qwen2.5-0.5B's shape, random weights)")
    ap.add_argument("--row", type=int, default=2048, help="packed row length")
    ap.add_argument("--mbs", type=int, default=4, help="packed rows a step")
    ap.add_argument("--allow-cpu", action="store_true", help="a smoke run of the script on CPU (nothing recorded)")
    args = ap.parse_args()
    from bench.common import gpu_or_exit

    gpu = gpu_or_exit(args.allow_cpu)
    work = Path(tempfile.mkdtemp(prefix="genai-gpu-kernels-"))
    tt.make_data(work / "train.jsonl", args.samples)
    tt.make_data(work / "heldout.jsonl", 100, seed=1)
    small = {"num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2}
    shape = QWEN25_05B if gpu else {**QWEN25_05B, **small, "num_key_value_heads": 1}
    model = args.model or str(tt.build_model(shape, work / "model"))
    recipe = work / "bench.yaml"
    dtype = "bfloat16" if gpu else "float32"
    recipe.write_text(tt.recipe_text(model, work, args.mbs, 5, row=args.row, dtype=dtype))
    liger = importlib.util.find_spec("liger_kernel") is not None
    engines = ["genai", "trl"] + (["genai-noliger", "trl-liger"] if liger else [])
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    for _ in range(args.runs):
        for engine in engines:
            r = tt.run_child(engine, recipe, args.mbs)
            runs[engine].append(r)
            print(f"{engine:14} {r['tok_s']:>9.0f} tok/s  peak GPU {r.get('peak_gpu_mb', 0):>7.0f} MB", flush=True)
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model)
    n_params = _params(cfg)
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    peak = peak_flops(name)
    lines = []
    for engine, rs in runs.items():
        tps = statistics.median(r["tok_s"] for r in rs)
        mem = statistics.median(r.get("peak_gpu_mb", r["peak_rss_mb"]) for r in rs)
        loss = statistics.median(r["eval_loss"] for r in rs)
        mfu = f", MFU {4 * n_params * tps / peak:.1%}" if peak else ""
        lines.append(f"{engine} {tps:,.0f} tok/s{mfu}, peak {mem:,.0f} MB, held-out {loss:.4f}")
    print("\n".join(lines))
    if not gpu:
        return
    g, t = statistics.median(r["tok_s"] for r in runs["genai"]), statistics.median(r["tok_s"] for r in runs["trl"])
    from bench.common import record

    record(
        "GPU P1 kernels: genai vs TRL packed / TRL + Liger",
        f"Qwen2.5-0.5B shape ({n_params / 1e6:.0f}M), bf16, LoRA r16, {args.mbs} rows of {args.row}, "
        f"{args.samples} samples, median of {args.runs} on {name}: genai/TRL **{g / t:.2f}x**; " + "; ".join(lines),
    )


def _params(cfg) -> int:
    """Parameters of a decoder-only config (tied embeddings counted once)."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * i
    return n * per_layer + cfg.vocab_size * h * (1 if cfg.tie_word_embeddings else 2)


if __name__ == "__main__":
    main()
