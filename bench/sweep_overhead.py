"""S1: what `genai sweep` adds per trial, against running the same trials by hand with `genai train`.

The sweep runs N trials of a tiny quickstart recipe (learning rate swept, objective the held-out loss,
no pruning, one at a time). Then each trial's values are run by hand, `genai train RECIPE
train.learning_rate=X`, one process each, as a user would without genai sweep. The overhead is the
sweep's whole wall time (its checks, study, trial processes, polling, each trial's `genai run` stages
and tagging) over the sum of the hand runs. Target: at most 5% per trial.
Usage: python bench/sweep_overhead.py [--trials 3] [--steps 600] [--rounds 3] [--record]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GENAI = str(Path(sys.executable).with_name("genai"))
QS = ROOT / "recipes" / "data" / "quickstart"


def write_recipe(tmp: Path, trials: int, steps: int) -> Path:
    path = tmp / "sweep-bench.yaml"
    path.write_text(f"""\
name: sweep-bench
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {QS / "train.jsonl"}, format: alpaca}}]
  eval: [{{path: {QS / "test.jsonl"}, format: alpaca, limit: 64}}]
  max_length: 64
  packing: true
  cache_dir: {tmp / "cache"}
lora: {{r: 16, alpha: 32, dropout: 0.0, target_modules: all-linear}}
train:
  output_dir: {tmp / "runs"}
  max_steps: {steps}
  micro_batch_size: 8
  learning_rate: 3.0e-5
  num_threads: 1
  logging_steps: 20
  eval_steps: {steps // 2}
  save_steps: null
  exact_match: {{limit: 0}}
sweep:
  parameters:
    train.learning_rate: {{distribution: log_uniform, low: 3.0e-4, high: 1.0e-2}}
  objective: eval_loss
  trials: {trials}
  prune: false
  seed: 0
""")
    return path


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and all it waited for: its trials, for a sweep)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return secs, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def one_round(trials: int, steps: int, hand_first: bool) -> dict:
    """A fresh sweep and its trials by hand (the hand runs first when `hand_first`: they need the sweep's
    values, so a first sweep of the same recipe and seed draws them; its time is not counted)."""
    with tempfile.TemporaryDirectory(prefix="genai-sweep-bench-") as d:
        tmp = Path(d)
        recipe = write_recipe(tmp, trials, steps)
        # The data cache is built once first, so neither side pays for tokenizing (both would reuse it).
        timed([GENAI, "preprocess", str(recipe)])
        sweeps = tmp / "runs" / "sweep-bench" / "sweeps"
        lrs = drawn(recipe, trials) if hand_first else None
        hand = [timed([GENAI, "train", str(recipe), f"train.learning_rate={lr}"]) for lr in lrs] if lrs else []
        sweep_s, sweep_cpu = timed([GENAI, "sweep", str(recipe)])
        manifests = sorted(sweeps.glob("*/trials/*/sweep-bench/*/manifest.json"))
        swept = [json.loads(m.read_text())["sweep"]["params"]["train.learning_rate"] for m in manifests]
        if len(swept) != trials or (lrs and swept != lrs):
            raise SystemExit(f"expected the {trials} drawn learning rates {lrs}, the sweep ran {swept}")
        if not hand:
            hand = [timed([GENAI, "train", str(recipe), f"train.learning_rate={lr}"]) for lr in swept]
        inside = sum(trial_seconds(sweeps))
    return {
        "sweep": sweep_s,
        "sweep_cpu": sweep_cpu,
        "hand": [h for h, _ in hand],
        "hand_cpu": sum(c for _, c in hand),
        "inside": inside,
    }


def drawn(recipe: Path, trials: int) -> list[float]:
    """The learning rates the sweep will try: Optuna's seeded TPE draws them without running anything."""
    import optuna

    from genai.recipe import load_recipe
    from genai.sweeps.space import draw

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = load_recipe(recipe).sweep
    study = optuna.create_study(direction=sweep.goal, sampler=optuna.samplers.TPESampler(seed=sweep.seed))
    out = []
    for _ in range(trials):  # TPE's first draws (its startup trials) are random and do not depend on values
        trial = study.ask()
        out.append(draw(trial, sweep)["train.learning_rate"])
        study.tell(trial, 0.0)
    return out


def trial_seconds(sweeps: Path) -> list[float]:
    """Each trial's wall time as the study recorded it (start to complete): the rest is the sweep's own."""
    import optuna

    (db,) = sweeps.glob("*/study.db")
    study = optuna.load_study(study_name=db.parent.name, storage=f"sqlite:///{db}")
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3, help="sweep-then-by-hand rounds; the median ratio counts")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    rounds, outside, cpu = [], [], []
    for r in range(args.rounds):
        res = one_round(args.trials, args.steps, hand_first=r % 2 == 1)
        hand = res["hand"]
        rounds.append((res["sweep"], sum(hand)))
        outside.append(res["sweep"] - res["inside"])
        cpu.append(res["sweep_cpu"] / res["hand_cpu"] - 1)
        by_hand = " + ".join(f"{h:.1f}" for h in hand)
        print(
            f"round {r + 1} ({'hand runs first' if r % 2 else 'sweep first'}): sweep {res['sweep']:.1f} s (its "
            f"trials {res['inside']:.1f} s, the rest {outside[-1]:.1f} s); by hand {by_hand} = {sum(hand):.1f} s; "
            f"CPU {res['sweep_cpu']:.1f} vs {res['hand_cpu']:.1f} s",
            flush=True,
        )
    ratios = sorted(s / h - 1 for s, h in rounds)
    overhead = statistics.median(ratios)
    pooled = sum(s for s, _ in rounds) / sum(h for _, h in rounds) - 1
    per_trial = statistics.median((s - h) / args.trials for s, h in rounds)
    own = statistics.median(outside)
    cpu_overhead = statistics.median(cpu)
    print(f"overhead, median of {args.rounds}: {100 * overhead:+.1f}% ({per_trial:+.1f} s a trial; target <= 5%)")
    print(f"overhead, all rounds pooled: {100 * pooled:+.1f}%; CPU time, median: {100 * cpu_overhead:+.1f}%")
    print(f"the sweep's own time outside its trials (checks, study, summary): {own:.1f} s a sweep")
    if args.record:
        from bench.common import record

        each = "; ".join(f"{s:.1f} vs {h:.1f} s" for s, h in rounds)
        record(
            "S1 sweep overhead per trial vs the same trials by hand (genai train)",
            f"{args.trials} trials of the tiny quickstart ({args.steps} steps, held-out loss twice, lr swept "
            f"log-uniform 3e-4..1e-2, seed 0), one at a time; {args.rounds} rounds of a fresh `genai sweep` (its "
            f"checks, study, `genai run --no-serve` per trial, tagging) and the same values by hand with "
            f"`genai train` (which goes first alternating by round): {each}; overhead "
            f"**{100 * overhead:+.1f}%** (median; {per_trial:+.1f} s a trial; "
            f"rounds {', '.join(f'{100 * x:+.1f}%' for x in ratios)}; target <= 5%); the sweep's own time outside "
            f"its trials (checks, study, summary) {own:.1f} s a sweep; all rounds pooled {100 * pooled:+.1f}%; CPU "
            f"seconds (the sweep and its trials vs the hand runs) {100 * cpu_overhead:+.1f}% (median)",
        )


if __name__ == "__main__":
    main()
