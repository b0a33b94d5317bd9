"""S1: what `genai sweep` adds per trial, against running the same trials by hand with `genai train`.

The sweep runs N trials of a tiny quickstart recipe (learning rate swept, objective the held-out loss,
no pruning, one at a time, one thread each). By hand, each trial's values are run as a user would without
genai sweep: `genai train RECIPE train.learning_rate=X`, one process after the other (the values are
Optuna's seeded draws, the same the sweep makes). The overhead is the sweep's whole wall time (its
checks, study, trial processes, polling, each trial's `genai run` stages and tagging) over the hand
runs' total. Target: at most 5% per trial.

Two designs (--design):
- side-by-side (the default): the sweep and the hand runs at the same time, each on one of the two
  cores (every process trains with one thread). This VM has slow spells of a minute or two in which the
  same run takes 20-40% longer; side by side both arms live through the same spells.
- alternating: the sweep, then the hand runs (or the other way round, alternating by round); each arm
  has the machine to itself, and the spells fall where they fall.
Usage: python bench/sweep_overhead.py [--design side-by-side|alternating] [--trials 8] [--steps 600]
       [--rounds 3] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own usage: the other arm may run beside it
        secs = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read()[-3000:]}")
    return secs, usage.ru_utime + usage.ru_stime


def one_round(trials: int, steps: int, order: str) -> dict:
    """A fresh sweep and its trials by hand: side by side, or one after the other (`order`: "sweep first",
    "hand runs first" or "side by side")."""
    with tempfile.TemporaryDirectory(prefix="genai-sweep-bench-") as d:
        tmp = Path(d)
        recipe = write_recipe(tmp, trials, steps)
        # The data cache is built once first, so neither side pays for tokenizing (both would reuse it).
        timed([GENAI, "preprocess", str(recipe)])
        sweeps = tmp / "runs" / "sweep-bench" / "sweeps"
        lrs = drawn(recipe, trials)
        hand: list[tuple[float, float]] = []
        sweep: list[tuple[float, float]] = []

        def by_hand() -> None:
            hand.extend(timed([GENAI, "train", str(recipe), f"train.learning_rate={lr}"]) for lr in lrs)

        def swept() -> None:
            sweep.append(timed([GENAI, "sweep", str(recipe)]))

        arms = [swept, by_hand] if order != "hand runs first" else [by_hand, swept]
        if order == "side by side":
            other = threading.Thread(target=arms[1])
            other.start()
            arms[0]()
            other.join()
        else:
            for arm in arms:
                arm()
        if len(hand) != trials or not sweep:
            raise SystemExit("an arm failed (its error is above)")
        manifests = sorted(sweeps.glob("*/trials/*/sweep-bench/*/manifest.json"))
        ran = [json.loads(m.read_text())["sweep"]["params"]["train.learning_rate"] for m in manifests]
        if ran != lrs:
            raise SystemExit(f"expected the {trials} drawn learning rates {lrs}, the sweep ran {ran}")
        hand_runs = (tmp / "runs").glob("sweep-bench/*/manifest.json")
        loops = {  # the training loops alone (the manifests' train_seconds): what is not process overhead
            "sweep": sum(json.loads(m.read_text())["train_seconds"] for m in manifests),
            "hand": sum(json.loads(m.read_text())["train_seconds"] for m in hand_runs),
        }
        inside = sum(trial_seconds(sweeps))
    return {
        "loops": loops,
        "sweep": sweep[0][0],
        "sweep_cpu": sweep[0][1],
        "hand": [h for h, _ in hand],
        "hand_cpu": sum(c for _, c in hand),
        "inside": inside,
    }


def drawn(recipe: Path, trials: int) -> list[float]:
    """The learning rates the sweep will try: Optuna's seeded TPE draws them without running anything."""
    import optuna

    from genai.recipe import load_recipe
    from genai.sweeps.space import draw
    from genai.sweeps.study import sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = load_recipe(recipe).sweep
    study = optuna.create_study(direction=sweep.goal, sampler=sampler(sweep))  # the sweep's own sampler
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
    ap.add_argument("--design", choices=("side-by-side", "alternating"), default="side-by-side")
    ap.add_argument("--trials", type=int, default=8, help="the sweep section's default")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of sweep and hand runs; the median ratio counts")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    rounds, outside, cpu, loops = [], [], [], []
    for r in range(args.rounds):
        order = "side by side" if args.design == "side-by-side" else ("hand runs first" if r % 2 else "sweep first")
        res = one_round(args.trials, args.steps, order)
        hand = res["hand"]
        rounds.append((res["sweep"], sum(hand)))
        outside.append(res["sweep"] - res["inside"])
        cpu.append(res["sweep_cpu"] / res["hand_cpu"] - 1)
        loops.append(res["loops"]["sweep"] / res["loops"]["hand"] - 1)
        print(
            f"round {r + 1} ({order}): sweep {res['sweep']:.1f} s (its trials {res['inside']:.1f} s, the rest "
            f"{outside[-1]:.1f} s); by hand {' + '.join(f'{h:.1f}' for h in hand)} = {sum(hand):.1f} s; CPU "
            f"{res['sweep_cpu']:.1f} vs {res['hand_cpu']:.1f} s; training loops {res['loops']['sweep']:.1f} vs "
            f"{res['loops']['hand']:.1f} s",
            flush=True,
        )
    ratios = sorted(s / h - 1 for s, h in rounds)
    overhead = statistics.median(ratios)
    pooled = sum(s for s, _ in rounds) / sum(h for _, h in rounds) - 1
    per_trial = statistics.median((s - h) / args.trials for s, h in rounds)
    own, cpu_overhead, loop_diff = statistics.median(outside), statistics.median(cpu), statistics.median(loops)
    print(f"overhead, median of {args.rounds}: {100 * overhead:+.1f}% ({per_trial:+.1f} s a trial; target <= 5%)")
    print(
        f"all rounds pooled: {100 * pooled:+.1f}%; CPU seconds: {100 * cpu_overhead:+.1f}%; training loops alone: "
        f"{100 * loop_diff:+.1f}% (medians)"
    )
    print(f"the sweep's own time outside its trials (checks, study, summary): {own:.1f} s a sweep")
    if args.record:
        from bench.common import record

        each = "; ".join(f"{s:.1f} vs {h:.1f} s" for s, h in rounds)
        how = (
            "the sweep and the hand runs side by side, a core each"
            if args.design == "side-by-side"
            else "the sweep and the hand runs one after the other, which goes first alternating by round"
        )
        record(
            "S1 sweep overhead per trial vs the same trials by hand (genai train)",
            f"{args.trials} trials of the tiny quickstart ({args.steps} steps, held-out loss twice, lr swept "
            f"log-uniform 3e-4..1e-2, seed 0), one at a time, one thread each; {args.rounds} rounds of a fresh "
            f"`genai sweep` (its checks, study, `genai run --no-serve` per trial, tagging) and the same values by "
            f"hand with `genai train`, {how}: {each}; overhead **{100 * overhead:+.1f}%** (median; "
            f"{per_trial:+.1f} s a trial; rounds {', '.join(f'{100 * x:+.1f}%' for x in ratios)}; target <= 5%); "
            f"all rounds pooled {100 * pooled:+.1f}%; CPU seconds {100 * cpu_overhead:+.1f}%; the training loops "
            f"alone {100 * loop_diff:+.1f}%; the sweep's own time outside its trials (checks, study, summary) "
            f"{own:.1f} s a sweep",
        )


if __name__ == "__main__":
    main()
