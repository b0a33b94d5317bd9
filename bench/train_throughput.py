"""P1/M1: `genai train` vs a plain HF Trainer + PEFT baseline with padding.

Same tiny model, same tokenized samples (genai's preprocessing feeds both), same LoRA config,
seed, learning rate and schedule, one epoch each, one thread each, in separate processes.
Reports non-padding tokens/s, peak RSS, held-out loss after the epoch, and the training loss curves
side by side: each engine logs a windowed mean every 10 steps; the windows are averaged per quarter of
the epoch (steps differ: genai packs), so the curves can be compared where both have seen the same
share of the data. Usage: python bench/train_throughput.py [--samples 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = (
    "the model reads text and learns which words come next so that a question gets a good answer "
    "river mountain valley storm boat town sea morning evening children weather fishers nets sun"
).split()


def make_data(path: Path, n: int, seed: int = 0) -> None:
    """Length-skewed instructions: most short, one in five long (like real SFT mixes)."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for _ in range(n):
            long = rng.random() < 0.2
            q = " ".join(rng.choices(WORDS, k=rng.randint(40, 120) if long else rng.randint(3, 12)))
            a = " ".join(rng.choices(WORDS, k=rng.randint(40, 160) if long else rng.randint(2, 10)))
            fh.write(json.dumps({"instruction": q, "output": a}) + "\n")


def recipe_text(data: Path, heldout: Path, out: Path, cache: Path, mbs: int) -> str:
    return f"""\
name: bench
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {data}, format: alpaca}}]
  eval: [{{path: {heldout}, format: alpaca}}]
  max_length: 1024
  cache_dir: {cache}
lora: {{r: 16, alpha: 32, dropout: 0.0}}
train:
  output_dir: {out}
  epochs: 1
  micro_batch_size: {mbs}
  learning_rate: 1.0e-3
  lr_scheduler: cosine
  warmup_steps: 10
  num_threads: 1
  logging_steps: 10
  exact_match: {{limit: 0}}
"""


def heldout_loss(model, data, tokenizer) -> float:
    import torch

    from genai.data.pack import collate, make_rows
    from genai.training.trainer import _loss_sum

    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for row in make_rows(data, False, 0):
            b = {k: torch.from_numpy(v) for k, v in collate(data, [row], tokenizer.pad_token_id, False).items()}
            total += float(_loss_sum(model, b))
            count += int((b["labels"][:, 1:] != -100).sum())
    return total / count


def run_genai(recipe_path: Path) -> dict:
    from genai.recipe import load_recipe
    from genai.training.launch import start_training

    recipe = load_recipe(recipe_path)
    result = start_training(recipe, verbose=False)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    logged = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "seconds": manifest["train_seconds"],
        "tokens": manifest["data"]["train"]["tokens"],
        "eval_loss": result.eval_loss,
        "steps": manifest["steps"],
        "curve": [(m["step"] / manifest["steps"], m["loss"]) for m in logged if "loss" in m],
    }


def run_hf(recipe_path: Path, batch: int) -> dict:
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from genai.data.prepare import prepare
    from genai.models import load_model, load_tokenizer, lora_config, resolve_model_path
    from genai.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    path = resolve_model_path(recipe.model)
    tok = load_tokenizer(recipe.model, path)
    data = prepare(recipe, tok, tok.chat_template)  # same tokens and masks as genai trains on
    rows = []
    for i in range(len(data.train)):
        ids, tr = data.train.sample(i)
        rows.append(
            {"input_ids": ids.tolist(), "labels": [int(t) if m else -100 for t, m in zip(ids, tr, strict=False)]}
        )
    model = get_peft_model(load_model(recipe.model, path), lora_config(recipe.lora))
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=batch,
        num_train_epochs=1,
        learning_rate=recipe.train.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=recipe.train.seed,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100),
    )
    start = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "tokens": int(data.stats["train"]["tokens"]),
        "steps": out.global_step,
        "eval_loss": heldout_loss(model, data.eval, tok),
        "curve": [(m["step"] / out.global_step, m["loss"]) for m in trainer.state.log_history if "loss" in m],
    }


def quarter_windows(curve: list[tuple[float, float]]) -> list[list[float]]:
    """The logged (windowed) training losses falling in each quarter of the epoch."""
    return [[loss for frac, loss in curve if q / 4 < frac <= (q + 1) / 4] for q in range(4)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16, help="baseline samples per step")
    ap.add_argument("--engine", choices=["genai", "hf"])
    ap.add_argument("--recipe", type=Path)
    args = ap.parse_args()
    if args.engine:  # child process: one engine, report JSON
        import torch

        torch.set_num_threads(1)
        res = run_genai(args.recipe) if args.engine == "genai" else run_hf(args.recipe, args.batch)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(res))
        return
    work = Path(tempfile.mkdtemp(prefix="genai-bench-"))
    make_data(work / "train.jsonl", args.samples)
    make_data(work / "heldout.jsonl", 200, seed=1)
    # genai packs rows of 1024 tokens; 2 rows per step hold about as many samples as the baseline's 16.
    recipe = work / "bench.yaml"
    recipe.write_text(recipe_text(work / "train.jsonl", work / "heldout.jsonl", work / "runs", work / "cache", 2))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = {}
    for engine in ("hf", "genai"):
        proc = subprocess.run(
            [sys.executable, __file__, "--engine", engine, "--recipe", str(recipe), "--batch", str(args.batch)],
            capture_output=True,
            text=True,
            env=env,
        )
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            sys.exit(f"{engine} failed:\n{proc.stderr[-3000:]}")
        results[engine] = json.loads(line[0][len("RESULT ") :])
    hf, g = results["hf"], results["genai"]
    tps = {k: v["tokens"] / v["seconds"] for k, v in results.items()}
    print(f"{'engine':8} {'steps':>6} {'seconds':>8} {'tok/s':>9} {'peak MB':>8} {'held-out loss':>13}")
    for k in ("hf", "genai"):
        v = results[k]
        print(
            f"{k:8} {v['steps']:>6} {v['seconds']:>8.1f} {tps[k]:>9.0f} {v['peak_rss_mb']:>8.0f} "
            f"{v['eval_loss']:>13.4f}"
        )
    import statistics

    windows = {k: quarter_windows(results[k]["curve"]) for k in ("hf", "genai")}
    curves = {k: [statistics.mean(w) for w in ws] for k, ws in windows.items()}
    # Noise: how much the logged windows of one engine scatter within a quarter.
    noise = [statistics.stdev(w) for w in windows["hf"]]
    print(
        "training loss by quarter of the epoch (hf / genai / hf's window-to-window spread): "
        + "; ".join(
            f"Q{i + 1} {a:.3f} / {b:.3f} / ±{n:.3f}"
            for i, (a, b, n) in enumerate(zip(curves["hf"], curves["genai"], noise, strict=False))
        )
    )
    ratio = tps["genai"] / tps["hf"]
    print(
        f"speed-up genai/hf: {ratio:.2f}x  (target >= 2x); memory genai/hf: "
        f"{g['peak_rss_mb'] / hf['peak_rss_mb']:.2f}; loss genai-hf: {g['eval_loss'] - hf['eval_loss']:+.4f}"
    )
    from bench.common import record

    record(
        "P1/M1 train tokens/s vs HF Trainer+PEFT (padding)",
        f"{args.samples} length-skewed samples, 1 epoch, tiny-llama LoRA r16, 1 thread: genai {tps['genai']:.0f} "
        f"tok/s vs {tps['hf']:.0f} tok/s = **{ratio:.2f}x**; peak RSS {g['peak_rss_mb']:.0f} vs "
        f"{hf['peak_rss_mb']:.0f} MB; held-out loss {g['eval_loss']:.4f} vs {hf['eval_loss']:.4f}; training loss "
        f"by quarter genai {' / '.join(f'{x:.3f}' for x in curves['genai'])} vs hf "
        f"{' / '.join(f'{x:.3f}' for x in curves['hf'])} (hf window spread ±{' / '.join(f'{x:.3f}' for x in noise)})",
    )


if __name__ == "__main__":
    main()
