"""P1/M1 and issue 14: `genai train` against TRL's packed SFT and a plain HF Trainer with padding.

Sizes: `tiny` (the built-in 374k-parameter tiny-llama), `medium` (a ~30M Llama: hidden 512, 8 layers,
8 heads / 4 KV heads, tied embeddings, random weights, the tiny tokenizer) and `large-vocab` (the same
model with a 128,256-row vocabulary, Llama 3's size: the output layer dominates). Engines, each in its
own process, one thread, same tokens and masks (genai's preprocessing feeds all three), same LoRA r16,
seed, learning rate and cosine schedule, one epoch:
  genai  packed rows of 1024 tokens, 2 rows a step
  trl    TRL SFTTrainer: packing (bfd), padding-free, completion-only loss, 2 packed rows a step
  hf     transformers Trainer + PEFT, padded batches of 16 samples
Tokens are counted the same way for all: every non-padding token of the samples an engine trained on,
and of those the trained (answer) tokens. Training time excludes model loading and the final eval.
Reports medians over --runs rounds (engines interleaved): tokens/s, peak RSS, held-out loss (one
function for all: the mean next-token loss over the held-out answers), and the training loss by
quarter of the epoch. Round i trains every engine with seed 42 + i, so the spread of the held-out losses
over rounds is the seed-to-seed noise the engines are compared against.
Usage: python bench/train_throughput.py [--size medium] [--runs 3] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
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

# Model shapes: a transformers config (model_type + fields); vocab_size None = the tiny tokenizer's size.
MEDIUM = {
    "model_type": "llama",
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "vocab_size": None,
    "tie_word_embeddings": True,
}
# size -> (default samples, logging steps, model shape or None for the built-in tiny-llama)
SIZES = {
    "tiny": (3000, 10, None),
    "medium": (400, 2, MEDIUM),
    "large-vocab": (300, 2, {**MEDIUM, "vocab_size": 128256}),
}
ROW = 1024  # packed row length (genai, trl); 2 rows a step


def make_data(path: Path, n: int, seed: int = 0) -> None:
    """Length-skewed instructions: most short, one in five long (like real SFT mixes)."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for _ in range(n):
            long = rng.random() < 0.2
            q = " ".join(rng.choices(WORDS, k=rng.randint(40, 120) if long else rng.randint(3, 12)))
            a = " ".join(rng.choices(WORDS, k=rng.randint(40, 160) if long else rng.randint(2, 10)))
            fh.write(json.dumps({"instruction": q, "output": a}) + "\n")


def build_model(shape: dict, out: Path) -> Path:
    """A seeded random model of `shape` beside the tiny tokenizer (vocabulary rows beyond the tokenizer's
    are never seen as inputs, but every one of them is scored by the output layer, as in a real model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from genai.tiny import ensure_tiny_model

    tok = AutoTokenizer.from_pretrained(ensure_tiny_model())
    fields = {k: v for k, v in shape.items() if k != "model_type"}
    fields["vocab_size"] = fields["vocab_size"] or len(tok)
    cfg = AutoConfig.for_model(
        shape["model_type"],
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **fields,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def recipe_text(
    model: str, work: Path, mbs: int, logging: int, row: int = ROW, dtype: str = "float32", seed: int = 42
) -> str:
    """The recipe every engine reads its settings from (the baselines take theirs from it too)."""
    return f"""\
name: bench
model: {{name_or_path: {model}, dtype: {dtype}}}
data:
  train: [{{path: {work / "train.jsonl"}, format: alpaca}}]
  eval: [{{path: {work / "heldout.jsonl"}, format: alpaca}}]
  max_length: {row}
  cache_dir: {work / "cache"}
lora: {{r: 16, alpha: 32, dropout: 0.0}}
train:
  output_dir: {work / "runs"}
  epochs: 1
  micro_batch_size: {mbs}
  learning_rate: 1.0e-3
  lr_scheduler: cosine
  warmup_steps: 10
  num_threads: 1
  seed: {seed}
  logging_steps: {logging}
  exact_match: {{limit: 0}}
"""


def heldout_loss(model, data, tokenizer) -> float:
    """Mean next-token loss over the held-out answers, one sample at a time, full logits (any engine)."""
    import torch

    from genai.data.pack import IGNORE, collate, make_rows
    from genai.training.objectives import loss_sum as _loss_sum

    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for row in make_rows(data, False, 0):
            b = {k: torch.from_numpy(v) for k, v in collate(data, [row], tokenizer.pad_token_id, False).items()}
            total += float(_loss_sum(model, b))
            count += int((b["labels"][:, 1:] != IGNORE).sum())
    return total / count


def _prepared(recipe_path: Path, overrides: tuple[str, ...] = ()):
    """The recipe, its tokenizer and genai's tokenized data (what every engine trains on)."""
    from genai.data.prepare import prepare
    from genai.data.templates import template_for
    from genai.models import load_tokenizer, resolve_model_path
    from genai.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    path = resolve_model_path(recipe.model)
    tok = load_tokenizer(recipe.model, path)
    return recipe, path, tok, prepare(recipe, tok, template_for(recipe, tok))


def _peft_model(recipe, path):
    from peft import get_peft_model
    from transformers import set_seed

    from genai.models import load_model, lora_config

    set_seed(recipe.train.seed)  # the same LoRA initialisation as genai's
    return get_peft_model(load_model(recipe.model, path), lora_config(recipe.lora))


def _hf_args(recipe, **extra) -> dict:
    """TrainingArguments shared by the baselines: genai's recipe settings."""
    import torch

    from genai.training.trainer import mixed_precision

    precision = mixed_precision(recipe.train.mixed_precision)
    return {
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "gradient_checkpointing": recipe.train.gradient_checkpointing,
        "output_dir": tempfile.mkdtemp(),
        "num_train_epochs": 1,
        "learning_rate": recipe.train.learning_rate,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 10,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "seed": recipe.train.seed,
        "logging_steps": recipe.train.logging_steps,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": not torch.cuda.is_available(),
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        **extra,
    }


def _finish(trainer, seconds: float, data, model, tok) -> dict:
    steps = trainer.state.global_step
    return {
        "seconds": seconds,
        "tokens": int(data.stats["train"]["tokens"]),
        "trained_tokens": int(data.stats["train"]["trained_tokens"]),
        "steps": steps,
        "eval_loss": heldout_loss(model, data.eval, tok),
        "curve": [(m["step"] / steps, m["loss"]) for m in trainer.state.log_history if "loss" in m],
    }


def run_genai(recipe_path: Path, overrides: tuple[str, ...] = ()) -> dict:
    from peft import PeftModel

    from genai.models import load_model
    from genai.training.launch import start_training

    recipe, path, tok, data = _prepared(recipe_path, overrides)
    result = start_training(recipe, verbose=False)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    logged = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [m for m in logged if "loss" in m]
    stats = manifest["data"]["train"]
    share = manifest["tokens"] / stats["tokens"]  # a last partial micro-batch is dropped
    return {
        "seconds": losses[-1]["elapsed_s"],  # at the last step: before the final eval and export
        "tokens": manifest["tokens"],
        "trained_tokens": int(stats["trained_tokens"] * share),
        "steps": manifest["steps"],
        "eval_loss": heldout_loss(
            PeftModel.from_pretrained(load_model(recipe.model, path), result.artifact), data.eval, tok
        ),
        "own_eval_loss": result.eval_loss,
        "curve": [(m["step"] / manifest["steps"], m["loss"]) for m in losses],
    }


def run_trl(recipe_path: Path, liger: bool = False) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    recipe, path, tok, data = _prepared(recipe_path)
    rows = {"input_ids": [], "completion_mask": []}
    for i in range(len(data.train)):
        ids, tr = data.train.sample(i)
        rows["input_ids"].append(ids.tolist())
        rows["completion_mask"].append(tr.astype(int).tolist())
    model = _peft_model(recipe, path)
    args = SFTConfig(
        **_hf_args(recipe, per_device_train_batch_size=recipe.train.micro_batch_size, use_liger_kernel=liger),
        packing=True,
        packing_strategy="bfd",
        padding_free=True,
        completion_only_loss=True,
        max_length=recipe.data.max_length,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), processing_class=tok)
    start = time.perf_counter()
    trainer.train()
    return _finish(trainer, time.perf_counter() - start, data, model, tok)


def run_hf(recipe_path: Path, batch: int) -> dict:
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    recipe, path, tok, data = _prepared(recipe_path)
    rows = []
    for i in range(len(data.train)):
        ids, tr = data.train.sample(i)
        labels = [int(t) if m else -100 for t, m in zip(ids, tr, strict=True)]
        rows.append({"input_ids": ids.tolist(), "labels": labels})
    model = _peft_model(recipe, path)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**_hf_args(recipe, per_device_train_batch_size=batch)),
        train_dataset=rows,
        data_collator=DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100),
    )
    start = time.perf_counter()
    trainer.train()
    return _finish(trainer, time.perf_counter() - start, data, model, tok)


def quarter_windows(curve: list[tuple[float, float]]) -> list[list[float]]:
    """The logged (windowed) training losses falling in each quarter of the epoch."""
    return [[loss for frac, loss in curve if q / 4 < frac <= (q + 1) / 4] for q in range(4)]


ENGINES = {
    "hf": lambda recipe, batch: run_hf(recipe, batch),
    "trl": lambda recipe, batch: run_trl(recipe),
    "trl-liger": lambda recipe, batch: run_trl(recipe, liger=True),
    "genai": lambda recipe, batch: run_genai(recipe),
    "genai-noliger": lambda recipe, batch: run_genai(recipe, ("train.liger=false",)),
}


def child(engine: str, recipe: Path, batch: int) -> None:
    import torch

    torch.set_num_threads(1)
    res = ENGINES[engine](recipe, batch)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(res))


def run_child(engine: str, recipe: Path, batch: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--engine", engine, "--recipe", str(recipe), "--batch", str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        sys.exit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(line[0][len("RESULT ") :])
    res["tok_s"] = res["tokens"] / res["seconds"]
    res["trained_tok_s"] = res["trained_tokens"] / res["seconds"]
    return res


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per engine: medians over the runs, and the mean training loss by quarter (of the median-speed run)."""
    out = {}
    for engine, rs in runs.items():
        keys = [k for k in ("tok_s", "trained_tok_s", "peak_rss_mb", "peak_gpu_mb", "eval_loss", "steps") if k in rs[0]]
        med = {k: statistics.median(r[k] for r in rs) for k in keys}
        mid = sorted(rs, key=lambda r: r["tok_s"])[len(rs) // 2]
        windows = quarter_windows(mid["curve"])
        med["quarters"] = [statistics.mean(w) if w else float("nan") for w in windows]
        med["spread"] = [statistics.stdev(w) if len(w) > 1 else 0.0 for w in windows]
        med["eval_losses"] = [r["eval_loss"] for r in rs]
        med["tok_s_runs"] = [r["tok_s"] for r in rs]
        med["steps"], med["tokens"] = mid["steps"], mid["tokens"]
        out[engine] = med
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=list(SIZES), default="tiny")
    ap.add_argument("--samples", type=int, help="training samples (default by size)")
    ap.add_argument("--runs", type=int, default=3, help="rounds; medians are reported")
    ap.add_argument("--engines", default="hf,trl,genai", help=f"from {', '.join(ENGINES)}")
    ap.add_argument("--batch", type=int, default=16, help="hf: padded samples per step")
    ap.add_argument("--first-round", type=int, default=0, help="continue an earlier invocation's rounds (seeds)")
    ap.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--recipe", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:  # child process: one engine, one run, JSON on stdout
        child(args.engine, args.recipe, args.batch)
        return
    samples, logging, shape = SIZES[args.size]
    samples = args.samples or samples
    engines = [e for e in args.engines.split(",") if e]
    work = Path(tempfile.mkdtemp(prefix="genai-bench-"))
    make_data(work / "train.jsonl", samples)
    make_data(work / "heldout.jsonl", 200, seed=1)
    model = "genai/tiny-llama" if shape is None else str(build_model(shape, work / "model"))
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    for i in range(args.first_round, args.first_round + args.runs):
        # Each round another seed (LoRA init, row order) for every engine: the spread is the noise.
        recipe = work / f"bench-{i}.yaml"
        recipe.write_text(recipe_text(model, work, 2, logging, seed=42 + i))
        for engine in engines:
            r = run_child(engine, recipe, args.batch)
            runs[engine].append(r)
            print(
                f"run {i + 1} {engine:6} {r['steps']:>5} steps {r['seconds']:>7.1f} s {r['tok_s']:>8.0f} tok/s "
                f"peak {r['peak_rss_mb']:>6.0f} MB held-out {r['eval_loss']:.4f}",
                flush=True,
            )
    report(args.size, samples, args.runs, summarise(runs))


def report(size: str, samples: int, n_runs: int, s: dict[str, dict]) -> None:
    from bench.common import record

    print(f"{'engine':8} {'tok/s':>8} {'trained/s':>9} {'peak MB':>8} {'held-out':>9}  loss by quarter")
    for e, v in s.items():
        q = " / ".join(f"{x:.3f}" for x in v["quarters"])
        print(f"{e:8} {v['tok_s']:>8.0f} {v['trained_tok_s']:>9.0f} {v['peak_rss_mb']:>8.0f} {v['eval_loss']:>9.4f}", q)
    if "genai" not in s:
        return
    g = s["genai"]
    parts = []
    for base in ("trl", "hf"):
        if base in s:
            b = s[base]
            runs = " ".join(f"{x:.4f}" for x in b["eval_losses"])
            mem = g["peak_rss_mb"] / b["peak_rss_mb"]
            parts.append(
                f"vs {base} {b['tok_s']:.0f} tok/s = **{g['tok_s'] / b['tok_s']:.2f}x**, peak RSS "
                f"{g['peak_rss_mb']:.0f} vs {b['peak_rss_mb']:.0f} MB = **{mem:.2f}x**, "
                f"held-out {g['eval_loss']:.4f} vs {b['eval_loss']:.4f} (runs {runs}), "
                f"loss by quarter {' / '.join(f'{x:.3f}' for x in b['quarters'])}"
            )
    speeds = " ".join(f"{x:.0f}" for x in g["tok_s_runs"])
    shape = "tiny-llama (374k)" if SIZES[size][2] is None else f"{size} Llama"
    record(
        f"P1 train tokens/s, {size}: genai vs TRL packed (bfd, padding-free, completion-only) and HF Trainer (padding)",
        f"{samples} length-skewed samples, 1 epoch, {shape} LoRA r16, 1 thread, median of {n_runs}: genai "
        f"{g['tok_s']:.0f} tok/s ({g['trained_tok_s']:.0f} trained; runs {speeds}), "
        f"peak RSS {g['peak_rss_mb']:.0f} MB, held-out {g['eval_loss']:.4f}, loss by quarter "
        f"{' / '.join(f'{x:.3f}' for x in g['quarters'])}; " + "; ".join(parts),
    )


if __name__ == "__main__":
    main()
