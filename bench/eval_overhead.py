"""P3: `genai eval` wall time vs the raw `lm_eval` CLI on the same task and model, and the
vllm / endpoint backends vs hf on the 200-item generate_until suite (quickstart_addition).

Every figure is one whole process, start to exit, on the quickstart run (trained if missing). The
vllm backend runs once more with vLLM's own CPU default (engine and worker in separate processes) to
show what genai's in-process engine setting saves; the whole quickstart eval (base + fine-tuned, three
suites) is timed for hf and vllm as well.
Usage: python bench/eval_overhead.py [--run runs/quickstart/<id>]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.serve_throughput import quickstart_run  # noqa: E402

GENAI = str(Path(sys.executable).with_name("genai"))
TASK = "quickstart_addition"


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    secs = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    args = ap.parse_args()
    run = quickstart_run(args.run)
    from genai.evaluation import suites

    include = suites.materialize(suites.suite_dirs([]))
    adapter = run / "adapter"
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    common = ["eval.baseline=false", f"eval.tasks=[{TASK}]", "eval.gate=[]", "eval.batch_size=32"]
    raw = timed(
        [
            str(Path(sys.executable).with_name("lm_eval")),
            "--model",
            "hf",
            "--model_args",
            f"pretrained={base},peft={adapter},tokenizer={adapter},dtype=float32",
            "--tasks",
            TASK,
            "--include_path",
            str(include),
            "--apply_chat_template",
            "--batch_size",
            "32",
            "--device",
            "cpu",
            "--seed",
            "1234",
        ]
    )
    ours = {b: timed([GENAI, "eval", str(run), *common, "--backend", b]) for b in ("hf", "vllm", "endpoint")}
    vllm_default = timed(
        [GENAI, "eval", str(run), *common, "--backend", "vllm"], env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    )
    full = ["eval.baseline=true", "eval.tasks=[quickstart_addition, addition_mc, tiny_perplexity]", "eval.gate=[]"]
    whole = {b: timed([GENAI, "eval", str(run), *full, "--backend", b]) for b in ("hf", "vllm")}
    print(f"raw lm_eval (hf)   {raw:7.1f} s")
    for b, s in ours.items():
        print(f"genai eval {b:8}{s:7.1f} s")
    print(f"genai eval vllm with vLLM's default CPU executor {vllm_default:.1f} s")
    print(f"whole quickstart eval (base + tuned, 3 suites): hf {whole['hf']:.1f} s, vllm {whole['vllm']:.1f} s")
    overhead = ours["hf"] / raw - 1
    print(
        f"genai eval overhead vs raw lm_eval: {100 * overhead:+.1f}% (target <= 10%); "
        f"hf/vllm {ours['hf'] / ours['vllm']:.2f}x, hf/endpoint {ours['hf'] / ours['endpoint']:.2f}x (target >= 1.5x)"
    )
    from bench.common import record

    record(
        "P3 eval wall time (quickstart_addition, 200 items)",
        f"genai eval hf {ours['hf']:.1f} s vs raw lm_eval {raw:.1f} s = **{100 * overhead:+.1f}%**; vllm "
        f"{ours['vllm']:.1f} s ({ours['hf'] / ours['vllm']:.2f}x vs hf; with vLLM's default CPU executor "
        f"{vllm_default:.1f} s), endpoint {ours['endpoint']:.1f} s ({ours['hf'] / ours['endpoint']:.2f}x vs hf; "
        f"includes server start); whole quickstart eval (base + tuned, 3 suites) hf {whole['hf']:.1f} s, "
        f"vllm {whole['vllm']:.1f} s",
    )


if __name__ == "__main__":
    main()
