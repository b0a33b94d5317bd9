"""P7 (DPO) and P8 (GRPO): genai's own preference and RL training loop against TRL's trainers run directly.

Every engine runs in its own process, one thread (torch.set_num_threads(1), OMP_NUM_THREADS=1), fp32 on
CPU, with the same model, data, LoRA (r16, alpha 32, dropout 0, all linear layers, the same initialisation:
transformers.set_seed(seed) before PEFT wraps the model), learning rate (constant, no warmup), grad-norm
clip 1.0 and seed. Round i trains every engine with seed 42 + i (engines interleaved); medians over rounds.

--method dpo (P7): tokens/s and peak RSS. Model: `medium` (train_throughput's ~30M Llama, random weights,
the tiny tokenizer) or `tiny` (the built-in tiny-llama). Data: steps x pairs-per-step synthetic preference
pairs (a question of 5-30 WORDS; chosen and rejected answers of 20-200 tokens each, drawn independently, so
a padded batch has much padding), every engine trains on each pair exactly once, beta 0.1, sigmoid loss.
  genai         train.method dpo, packed rows (genai's default: no padding), one row a step; the row length
                is the smallest for which best-fit packing makes exactly --steps rows, so genai takes the same
                steps over the same pairs as TRL (pairs per step equal on average, not step by step)
  genai-padded  (optional) packing off: exactly --pairs pairs a step, padded like TRL
  trl           trl.DPOTrainer defaults: the reference forward (LoRA adapter disabled) every step, padded
                batches of --pairs pairs
  trl-fast      trl.DPOTrainer with precompute_ref_log_probs=True. padding_free is not used: TRL 1.16's
                DPOTrainer warns that it is "temporarily unavailable after a refactor" and falls back to
                padding (and it needs FlashAttention, which CPUs lack)
Time: genai = its one-off reference pass (DPO.prepare, timed in the child) + metrics.jsonl elapsed_s at the
last step; TRL = its reference precompute (DPOTrainer._precompute_ref_logps, run in the constructor, timed in
the child) + the wall time of trainer.train(). Tokenization, model loading and the final export are outside.
Tokens: counted once, genai's way, for every engine: len(prompt + chosen) + len(prompt + rejected) of every
pair, rendered with the tokenizer's chat template (genai's prepared data); each engine trains on all pairs
once. Also: the training loss and the reward accuracy (chosen reward > rejected) as means over the last
quarter of the steps (logged every step).

--method grpo (P8): wall time per optimizer step. Model: the tiny-llama base with the adapter of an
under-trained SFT run (recipes/quickstart-short.yaml, trained once first), trained further by every engine,
as recipes/quickstart-grpo.yaml does (from the bare base every answer runs past 6 tokens: all masked, no
reward to learn from). Prompts: the quickstart addition questions (recipes/data/quickstart/train.jsonl)
with the tokenizer's chat template (TRL gets the conversational prompt and applies it itself); 8 prompts x
8 answers a step, max 6 answer tokens, temperature 1, top_p 1, top_k off, beta 0.04 (one reference forward
a step for both: TRL's is the base with the adapter off, genai's the starting adapter), group-scaled
advantages, truncated answers masked, one update per generation, DAPO's token-level loss, reward = exact
match of the stripped answer with the reference answer, lr 1e-3 constant.
  genai         train.method grpo, generator transformers (generate on the training model), micro_batch 8
  trl           trl.GRPOTrainer, use_vllm=False (transformers generate), per_device_train_batch_size 64 with
                num_generations 8, loss_type dapo, mask_truncated_completions, scale_rewards group
  genai-vllm    genai with generator vllm (vLLM's CPU engine in process, vllm_kv_cache_gib 1), when vllm
                imports; its engine start-up is outside the per-step figure (genai's elapsed_s starts after
                it) and is reported apart
Seconds per step: genai = elapsed_s at the last step / steps; TRL = wall time of trainer.train() / steps.
Also the mean reward in the first and last quarter of the steps (sanity: both learn comparably).

Usage: python bench/preference_throughput.py --method dpo|grpo [--size medium|tiny] [--runs 3] [--steps N]
       [--pairs 8] [--engines ...] [--record]
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

from bench.train_throughput import MEDIUM, WORDS, _hf_args, _peft_model, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "data" / "quickstart" / "train.jsonl"
DPO_ENGINES = ("genai", "genai-padded", "trl", "trl-fast")
GRPO_ENGINES = ("genai", "trl", "genai-vllm")
DPO_LR = 5.0e-4
GRPO_LR = 1.0e-3
BIG = 65536  # data.max_length while measuring the pairs: nothing truncated


# ---------------------------------------------------------------------------------------------- data and recipes
def make_pairs(path: Path, n: int, tokenizer, seed: int = 0) -> None:
    """`n` preference pairs: a question of WORDS, chosen and rejected answers of 20-200 tokens each."""
    rng = random.Random(seed)

    def answer(target: int) -> str:
        words: list[str] = []
        while len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) < target:
            words.append(rng.choice(WORDS))
        return " ".join(words)

    with path.open("w") as fh:
        for _ in range(n):
            prompt = " ".join(rng.choices(WORDS, k=rng.randint(5, 30))) + "?"
            pair = {"prompt": prompt, "chosen": answer(rng.randint(20, 200)), "rejected": answer(rng.randint(20, 200))}
            fh.write(json.dumps(pair) + "\n")


def dpo_recipe(model: str, work: Path, *, max_length: int, packing: bool, mbs: int, seed: int) -> str:
    """genai's DPO recipe (the TRL engines take their shared settings from it too)."""
    return f"""\
name: bench-dpo
model: {{name_or_path: {model}, dtype: float32}}
data:
  train: [{{path: {work / "pairs.jsonl"}, format: preference}}]
  max_length: {max_length}
  packing: {"true" if packing else "false"}
  cache_dir: {work / "cache"}
lora: {{r: 16, alpha: 32, dropout: 0.0}}
train:
  method: dpo
  dpo: {{beta: 0.1, loss_type: sigmoid}}
  output_dir: {work / "runs"}
  epochs: 1
  micro_batch_size: {mbs}
  learning_rate: {DPO_LR}
  lr_scheduler: constant
  warmup_steps: 0
  num_threads: 1
  seed: {seed}
  logging_steps: 1
  save_steps: null
  exact_match: {{limit: 0}}
"""


def train_parent(work: Path) -> Path:
    """The under-trained SFT run of recipes/quickstart-short.yaml that every GRPO engine starts from (its
    adapter trained further), as recipes/quickstart-grpo.yaml does: from the bare base, the tiny model's
    answers never end within 6 tokens, so every answer is truncated and masked and no reward moves."""
    exe = Path(sys.executable).with_name("genai")
    cmd = [str(exe), "train", str(ROOT / "recipes" / "quickstart-short.yaml"), f"train.output_dir={work / 'parent'}"]
    proc = subprocess.run(
        [*cmd, f"data.cache_dir={work / 'cache'}", "train.save_steps=null"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"the parent run failed:\n{proc.stderr[-3000:]}")
    (run,) = [p for p in (work / "parent" / "quickstart-short").iterdir() if (p / "manifest.json").exists()]
    return run


def grpo_recipe(work: Path, *, steps: int, seed: int, parent: Path, generator: str = "transformers") -> str:
    """genai's GRPO recipe (the TRL engine takes its shared settings from it too)."""
    return f"""\
name: bench-grpo
model: {{name_or_path: {parent}, parent_adapter: continue}}
data:
  train: [{{path: {QUICKSTART}, format: alpaca}}]
  max_length: 64
  cache_dir: {work / "cache"}
lora: {{r: 16, alpha: 32, dropout: 0.0}}
train:
  method: grpo
  grpo:
    num_generations: 8
    max_completion_length: 6
    temperature: 1.0
    top_p: 1.0
    beta: 0.04
    scale_rewards: true
    mask_truncated: true
    rewards: [{{name: exact_match, weight: 1.0}}]
    generator: {generator}
    vllm_kv_cache_gib: 1
  output_dir: {work / "runs"}
  max_steps: {steps}
  micro_batch_size: 8
  learning_rate: {GRPO_LR}
  lr_scheduler: constant
  warmup_steps: 0
  num_threads: 1
  seed: {seed}
  logging_steps: 1
  save_steps: null
  exact_match: {{limit: 0}}
"""


def _prepared(recipe_path: Path):
    """The recipe, its model path, tokenizer and genai's tokenized data."""
    from bench.train_throughput import _prepared as prepared

    return prepared(recipe_path)


def packed_row_length(pair_lengths, steps: int) -> int:
    """The smallest row length for which genai's best-fit packing of the pairs makes at most `steps` rows."""
    from genai.data.pack import pack_rows

    lo, hi = int(max(pair_lengths)), int(sum(pair_lengths))
    while lo < hi:
        mid = (lo + hi) // 2
        if len(pack_rows(pair_lengths, mid)) <= steps:
            hi = mid
        else:
            lo = mid + 1
    return lo


# ---------------------------------------------------------------------------------------------- engines (children)
def _genai_run(recipe_path: Path) -> tuple[object, list[dict], dict]:
    from genai.recipe import load_recipe
    from genai.training.launch import start_training

    result = start_training(load_recipe(recipe_path), verbose=False)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    logged = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    return result, [m for m in logged if "loss" in m], manifest


def _last_quarter(values: list[float]) -> float:
    return statistics.mean(values[-max(1, len(values) // 4) :]) if values else float("nan")


def time_method(cls, name: str) -> dict:
    """Wrap cls.name so that the seconds spent in it add up in the returned dict's "seconds"."""
    spent = {"seconds": 0.0}
    method = getattr(cls, name)

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - start

    setattr(cls, name, timed)
    return spent


def genai_dpo(recipe_path: Path) -> dict:
    """genai DPO; its one-off reference pass (DPO.prepare) is timed and added to the training time."""
    from genai.training import objectives

    spent = time_method(objectives.DPO, "prepare")
    _, losses, manifest = _genai_run(recipe_path)
    return {
        "seconds": losses[-1]["elapsed_s"] + spent["seconds"],
        "ref_seconds": spent["seconds"],
        "steps": manifest["steps"],
        "pairs": manifest["data"]["train"]["pairs"],
        "engine_tokens": manifest["tokens"],  # genai's own count of what it trained on: a check
        "loss": _last_quarter([m["loss"] for m in losses]),
        "accuracy": _last_quarter([m["rewards/accuracy"] for m in losses if "rewards/accuracy" in m]),
    }


def trl_dpo(recipe_path: Path, steps: int, pairs: int, fast: bool) -> dict:
    """TRL's DPOTrainer on the same pairs; its reference precompute (in the constructor) is timed and added."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    recipe, path, tok, _ = _prepared(recipe_path)
    rows = [json.loads(x) for x in Path(recipe.data.train[0].path).read_text().splitlines()]
    dataset = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": r["prompt"]}] for r in rows],
            "chosen": [[{"role": "assistant", "content": r["chosen"]}] for r in rows],
            "rejected": [[{"role": "assistant", "content": r["rejected"]}] for r in rows],
        }
    )
    model = _peft_model(recipe, path)
    args = DPOConfig(
        **_hf_args(
            recipe,
            per_device_train_batch_size=pairs,
            max_steps=steps,
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_steps=1,
        ),
        beta=recipe.train.dpo.beta,
        loss_type=["sigmoid"],
        max_length=None,  # no truncation (genai truncates nothing either)
        # padding_free=True is not passed: TRL 1.16 warns and falls back to padding (see the module docstring).
        precompute_ref_log_probs=fast,
    )
    spent = time_method(DPOTrainer, "_precompute_ref_logps")  # TRL runs it in the constructor, not in train()
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [m for m in trainer.state.log_history if "loss" in m]
    return {
        "seconds": seconds + spent["seconds"],
        "ref_seconds": spent["seconds"],
        "steps": trainer.state.global_step,
        "pairs": len(dataset),
        "loss": _last_quarter([m["loss"] for m in logs]),
        "accuracy": _last_quarter([m["rewards/accuracies"] for m in logs if "rewards/accuracies" in m]),
    }


def genai_grpo(recipe_path: Path) -> dict:
    """genai GRPO; a vLLM engine's start-up (VllmSampler's constructor) is timed apart."""
    from genai.training import sampling

    spent = time_method(sampling.VllmSampler, "__init__")
    _, losses, manifest = _genai_run(recipe_path)
    return {
        "seconds": losses[-1]["elapsed_s"],
        "steps": manifest["steps"],
        "startup_seconds": spent["seconds"],
        "rewards": [m["reward"] for m in losses],
        "clipped": statistics.mean(m["clipped_ratio"] for m in losses),
    }


def exact_match_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 where the answer's stripped text equals the reference answer (genai's exact_match reward)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(t.strip() == a.strip()) for t, a in zip(texts, answer, strict=True)]


def trl_grpo(recipe_path: Path) -> dict:
    """TRL's GRPOTrainer with transformers generate, the recipe's settings."""
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import GRPOConfig, GRPOTrainer

    from genai.recipe import load_recipe
    from genai.tiny import ensure_tiny_model

    recipe = load_recipe(recipe_path)
    adapter = Path(recipe.model.name_or_path) / "adapter"  # the parent run's, trained further as genai does
    tok = AutoTokenizer.from_pretrained(adapter)
    g = recipe.train.grpo
    rows = [json.loads(x) for x in QUICKSTART.read_text().splitlines()]
    dataset = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": r["instruction"]}] for r in rows],
            "answer": [r["output"] for r in rows],
        }
    )
    set_seed(recipe.train.seed)
    base = AutoModelForCausalLM.from_pretrained(ensure_tiny_model(), dtype="float32")
    model = PeftModel.from_pretrained(base, adapter, is_trainable=True)
    args = GRPOConfig(
        **_hf_args(
            recipe,
            per_device_train_batch_size=recipe.train.micro_batch_size * g.num_generations,
            max_steps=recipe.train.max_steps,
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_steps=1,
        ),
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        top_k=0,
        beta=g.beta,
        loss_type="dapo",
        mask_truncated_completions=g.mask_truncated,
        scale_rewards="group",
        num_iterations=1,
        use_vllm=False,
        log_completions=False,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[exact_match_reward], args=args, train_dataset=dataset, processing_class=tok
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "steps": trainer.state.global_step,
        "rewards": [m["reward"] for m in trainer.state.log_history if "reward" in m],
        "clipped": statistics.mean(
            m["completions/clipped_ratio"] for m in trainer.state.log_history if "completions/clipped_ratio" in m
        ),
    }


def child(method: str, engine: str, recipe: Path, steps: int, pairs: int) -> None:
    """One engine, one run, in this process: a RESULT {json} line on stdout."""
    import torch

    torch.set_num_threads(1)
    if method == "dpo":
        res = genai_dpo(recipe) if engine.startswith("genai") else trl_dpo(recipe, steps, pairs, engine == "trl-fast")
    else:
        res = trl_grpo(recipe) if engine == "trl" else genai_grpo(recipe)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res))


def run_child(method: str, engine: str, recipe: Path, steps: int, pairs: int) -> dict:
    """Run one engine in a fresh process and read its RESULT line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--method", method, "--engine", engine, "--recipe", str(recipe)]
    cmd += ["--steps", str(steps), "--pairs", str(pairs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        sys.exit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[0][len("RESULT ") :])


# ---------------------------------------------------------------------------------------------- parents
def bench_dpo(args) -> None:
    """P7: rounds of every DPO engine, then the table (and the RESULTS.md line with --record)."""
    from transformers import AutoTokenizer

    from genai.tiny import ensure_tiny_model

    work = Path(tempfile.mkdtemp(prefix="genai-bench-dpo-"))
    n_pairs = args.steps * args.pairs
    make_pairs(work / "pairs.jsonl", n_pairs, AutoTokenizer.from_pretrained(ensure_tiny_model()))
    model = "genai/tiny-llama" if args.size == "tiny" else str(build_model(MEDIUM, work / "model"))
    probe = work / "probe.yaml"
    probe.write_text(dpo_recipe(model, work, max_length=BIG, packing=True, mbs=1, seed=42))
    _, _, _, data = _prepared(probe)
    stats = data.stats["train"]
    if stats["pairs"] != n_pairs or stats["truncated"]:
        sys.exit(f"expected {n_pairs} whole pairs, prepared {stats}")
    tokens = int(stats["tokens"])
    lengths = data.train.lengths().reshape(-1, 2)
    row = packed_row_length(lengths.sum(1), args.steps)
    longest = int(lengths.max())
    print(
        f"{n_pairs} pairs, {tokens} tokens (sample lengths {int(lengths.min())}-{longest}); genai packed rows of "
        f"{row} tokens",
        flush=True,
    )
    runs: dict[str, list[dict]] = {e: [] for e in args.engines}
    for i in range(args.runs):
        for engine in args.engines:
            recipe = work / f"{engine}-{i}.yaml"
            packed = engine == "genai"
            recipe.write_text(
                dpo_recipe(
                    model,
                    work,
                    max_length=row if packed else max(longest, 8),
                    packing=packed,
                    mbs=1 if packed else args.pairs,
                    seed=42 + i,
                )
            )
            r = run_child("dpo", engine, recipe, args.steps, args.pairs)
            r["tok_s"] = tokens / r["seconds"]
            runs[engine].append(r)
            print(
                f"round {i + 1} {engine:12} {r['steps']:>4} steps {r['seconds']:>7.1f} s "
                f"(reference {r['ref_seconds']:.1f} s) {r['tok_s']:>7.0f} tok/s peak {r['peak_rss_mb']:>6.0f} MB "
                f"loss {r['loss']:.4f} acc {r['accuracy']:.3f}",
                flush=True,
            )
            if "engine_tokens" in r and r["engine_tokens"] != tokens:
                print(f"  note: {engine} counted {r['engine_tokens']} tokens itself, the bench counts {tokens}")
    med = {
        e: {k: statistics.median(r[k] for r in rs) for k in ("tok_s", "peak_rss_mb", "loss", "accuracy", "ref_seconds")}
        for e, rs in runs.items()
    }
    print("\n| engine | tok/s | peak RSS MB | reference pass s | loss (last quarter) | reward acc (last quarter) |")
    print("|---|---|---|---|---|---|")
    for e, m in med.items():
        print(
            f"| {e} | {m['tok_s']:.0f} | {m['peak_rss_mb']:.0f} | {m['ref_seconds']:.1f} | {m['loss']:.4f} | "
            f"{m['accuracy']:.3f} |"
        )
    parts = []
    if "genai" in med:
        g = med["genai"]
        for base in ("trl", "trl-fast"):
            if base in med:
                b = med[base]
                parts.append(
                    f"genai/{base}: tok/s **{g['tok_s'] / b['tok_s']:.2f}x** (target >= 1.0), peak RSS "
                    f"**{g['peak_rss_mb'] / b['peak_rss_mb']:.2f}x** (target <= 1.0)"
                )
    print("\n" + "\n".join(parts))
    if args.record:
        from bench.common import record

        speeds = "; ".join(f"{e} " + " ".join(f"{r['tok_s']:.0f}" for r in rs) for e, rs in runs.items())
        table = ", ".join(
            f"{e} {m['tok_s']:.0f} tok/s {m['peak_rss_mb']:.0f} MB loss {m['loss']:.3f} acc {m['accuracy']:.2f}"
            for e, m in med.items()
        )
        record(
            f"P7 dpo tokens/s, {args.size}: genai vs TRL DPOTrainer (default; precompute_ref_log_probs)",
            f"{n_pairs} synthetic pairs ({tokens} tokens, answers 20-200 tokens), {args.steps} steps of "
            f"{args.pairs} pairs, LoRA r16, beta 0.1 sigmoid, 1 thread, median of {args.runs}: {table}; "
            + "; ".join(parts)
            + f" (runs: {speeds})",
        )


def bench_grpo(args) -> None:
    """P8: rounds of every GRPO engine, then the table (and the RESULTS.md line with --record)."""
    engines = list(args.engines)
    if "genai-vllm" in engines:
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            print(f"genai-vllm skipped: vllm does not import ({e})")
            engines.remove("genai-vllm")
    work = Path(tempfile.mkdtemp(prefix="genai-bench-grpo-"))
    parent = train_parent(work)
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    for i in range(args.runs):
        for engine in engines:
            recipe = work / f"{engine}-{i}.yaml"
            generator = "vllm" if engine == "genai-vllm" else "transformers"
            recipe.write_text(grpo_recipe(work, steps=args.steps, seed=42 + i, parent=parent, generator=generator))
            r = run_child("grpo", engine, recipe, args.steps, 0)
            r["s_step"] = r["seconds"] / r["steps"]
            q = max(1, len(r["rewards"]) // 4)
            r["reward_first"], r["reward_last"] = statistics.mean(r["rewards"][:q]), statistics.mean(r["rewards"][-q:])
            runs[engine].append(r)
            extra = f" (engine start-up {r['startup_seconds']:.1f} s, outside)" if r.get("startup_seconds") else ""
            print(
                f"round {i + 1} {engine:10} {r['steps']:>4} steps {r['seconds']:>7.1f} s = {r['s_step']:.3f} s/step"
                f"{extra} peak {r['peak_rss_mb']:>6.0f} MB reward {r['reward_first']:.3f} -> {r['reward_last']:.3f} "
                f"truncated {r['clipped']:.0%}",
                flush=True,
            )
    keys = ("s_step", "peak_rss_mb", "reward_first", "reward_last", "clipped", "startup_seconds")
    med = {e: {k: statistics.median(r.get(k, 0.0) for r in rs) for k in keys} for e, rs in runs.items()}
    print(
        "\n| engine | s/step | peak RSS MB | reward, first quarter | reward, last quarter | answers truncated "
        "| start-up s (outside) |"
    )
    print("|---|---|---|---|---|---|---|")
    for e, m in med.items():
        startup = f"{m['startup_seconds']:.1f}" if e == "genai-vllm" else "-"
        print(
            f"| {e} | {m['s_step']:.3f} | {m['peak_rss_mb']:.0f} | {m['reward_first']:.3f} | {m['reward_last']:.3f} | "
            f"{m['clipped']:.0%} | {startup} |"
        )
    parts = []
    if "genai" in med and "trl" in med:
        parts.append(f"genai/trl s/step **{med['genai']['s_step'] / med['trl']['s_step']:.2f}x** (target <= 1.1)")
    if "genai-vllm" in med and "trl" in med:
        parts.append(f"genai-vllm/trl s/step {med['genai-vllm']['s_step'] / med['trl']['s_step']:.2f}x")
    print("\n" + "\n".join(parts))
    if args.record:
        from bench.common import record

        table = ", ".join(
            f"{e} {m['s_step']:.3f} s/step, reward {m['reward_first']:.3f} -> {m['reward_last']:.3f}"
            for e, m in med.items()
        )
        record(
            "P8 grpo s/step, tiny-llama: genai vs TRL GRPOTrainer (transformers generate)",
            f"{args.steps} steps of 8 quickstart prompts x 8 answers (max 6 tokens), LoRA r16, beta 0.04, exact-match "
            f"reward, 1 thread, median of {args.runs}: {table}; " + "; ".join(parts),
        )


def main() -> None:
    """Parse the arguments; run one engine (child) or the whole bench (parent)."""
    ap = argparse.ArgumentParser(description="P7/P8: genai DPO and GRPO against TRL's trainers.")
    ap.add_argument("--method", choices=("dpo", "grpo"), required=True)
    ap.add_argument("--size", choices=("medium", "tiny"), default="medium", help="dpo: the model (grpo: tiny)")
    ap.add_argument("--runs", type=int, default=3, help="rounds; medians are reported")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per engine")
    ap.add_argument("--pairs", type=int, default=8, help="dpo: pairs per step")
    ap.add_argument(
        "--engines",
        help=f"dpo: from {','.join(DPO_ENGINES)} (default genai,trl,trl-fast); "
        f"grpo: from {','.join(GRPO_ENGINES)} (default all)",
    )
    ap.add_argument("--record", action="store_true", help="append a line to bench/RESULTS.md")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--recipe", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:  # child process
        child(args.method, args.engine, args.recipe, args.steps, args.pairs)
        return
    known = DPO_ENGINES if args.method == "dpo" else GRPO_ENGINES
    default = "genai,trl,trl-fast" if args.method == "dpo" else ",".join(GRPO_ENGINES)
    args.engines = [e for e in (args.engines or default).split(",") if e]
    if unknown := [e for e in args.engines if e not in known]:
        ap.error(f"--engines: unknown for {args.method}: {', '.join(unknown)}")
    (bench_dpo if args.method == "dpo" else bench_grpo)(args)


if __name__ == "__main__":
    main()
