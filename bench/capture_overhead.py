"""C1: what request capture costs a server: `genai serve` with serve.capture off vs on at 100%.

The same workload against each (one server after the other, the same quickstart artifact): N chat
requests x NEW output tokens (EOS ignored, greedy), CONCURRENCY at a time, streamed by default (the
middleware's worst case: it copies every chunk) and, with --no-stream, as whole answers. Each figure is
the median of --repeats timed rounds after a warm-up round; --pairs alternates off/on servers more than
once to spread out the machine's own drift. Output tokens/s and requests/s; the target is capture-on
at most 5% below capture-off. The capture files are checked to hold one record per request sent.
Usage: python bench/capture_overhead.py [--run runs/quickstart/<id>] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]


async def _one(http, url: str, body: dict, stream: bool) -> int:
    """One request; its output tokens (from usage)."""
    if not stream:
        resp = await http.post(url, json=body)
        resp.raise_for_status()
        return resp.json()["usage"]["completion_tokens"]
    tokens = 0
    async with http.stream("POST", url, json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"usage"' in line:
                usage = json.loads(line[6:]).get("usage")
                tokens = usage["completion_tokens"] if usage else tokens
    return tokens


async def _round(base: str, prompts: list[str], args) -> tuple[float, float]:
    """All prompts, `concurrency` at a time: (output tok/s, req/s)."""
    import httpx

    sem = asyncio.Semaphore(args.concurrency)
    url = f"{base}/v1/chat/completions"

    async def go(p: str) -> int:
        body = {
            "model": "quickstart",
            "messages": [{"role": "user", "content": p}],
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        async with sem:
            return await _one(http, url, body, args.stream)

    async with httpx.AsyncClient(timeout=600) as http:
        start = time.perf_counter()
        tokens = await asyncio.gather(*(go(p) for p in prompts))
        secs = time.perf_counter() - start
    assert sum(tokens) == len(prompts) * args.max_tokens, sum(tokens)
    return sum(tokens) / secs, len(prompts) / secs


@contextmanager
def serving(run: Path, settings: list[str]):
    """`genai serve RUN` as a user starts it; its root URL once healthy; stopped (process group) after."""
    import httpx

    from genai.serving.server import free_port

    port = free_port()
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "serve", str(run), f"serve.port={port}", "serve.served_name=quickstart", *settings],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
    )
    root = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"genai serve failed to start: {settings}")
            try:
                if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield root
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # like Ctrl-C for genai serve; SIGINT is ignored under nohup &
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(run: Path, capture: Path | None, prompts: list[str], args) -> list[tuple[float, float]]:
    """Warm-up, then --repeats timed rounds against one server (capture into `capture`, or off)."""
    settings = ["serve.capture.enabled=true", f"serve.capture.folder={capture}"] if capture else []
    with serving(run, settings) as root:
        asyncio.run(_round(root, prompts[: args.concurrency], args))  # warm-up
        return [asyncio.run(_round(root, prompts, args)) for _ in range(args.repeats)]


def captured_records(folder: Path) -> int:
    """Records written (after the server stopped: its writer drains at exit)."""
    from genai.serving.capture import read_records

    return sum(1 for _ in read_records(folder))


def main() -> None:
    from bench.serve_throughput import quickstart_run

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=1, help="off/on server pairs, alternated")
    ap.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    args = ap.parse_args()
    run = quickstart_run(args.run)
    rows = [json.loads(x) for x in (ROOT / "recipes/data/quickstart/test.jsonl").read_text().splitlines()]
    prompts = [r["instruction"] for r in rows[: args.requests]]
    work = Path(tempfile.mkdtemp(prefix="genai-capture-bench-"))
    off: list[tuple[float, float]] = []
    on: list[tuple[float, float]] = []
    try:
        for i in range(args.pairs):
            off += measure(run, None, prompts, args)
            on += measure(run, work / f"cap{i}", prompts, args)
        sent = args.pairs * (args.concurrency + args.repeats * len(prompts))
        written = sum(captured_records(work / f"cap{i}") for i in range(args.pairs))
        size = sum(p.stat().st_size for p in work.rglob("capture-*.jsonl"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert written == sent, f"capture wrote {written} records for {sent} requests"
    report(off, on, written, size, args)


def report(off, on, written: int, size: int, args) -> None:
    tok_off, tok_on = (statistics.median(t for t, _ in xs) for xs in (off, on))
    req_off, req_on = (statistics.median(r for _, r in xs) for xs in (off, on))
    ratio = tok_on / tok_off
    mode = "streamed" if args.stream else "whole answers"
    print(f"{'capture':10} {'out tok/s':>10} {'req/s':>8}")
    print(f"{'off':10} {tok_off:>10.0f} {req_off:>8.2f}\n{'100%':10} {tok_on:>10.0f} {req_on:>8.2f}")
    print(f"capture on / off: {ratio:.3f} ({100 * (1 - ratio):+.1f}% slower; target <= 5%)")
    print(f"{written} records, {size / 2**20:.1f} MiB written")
    if args.record:
        from bench.common import record

        record(
            "C1 request capture overhead",
            f"tiny-llama (374k), CPU, genai serve, {args.requests} chat requests x {args.max_tokens} tokens, "
            f"{mode}, concurrency {args.concurrency}, median of {args.repeats * args.pairs} rounds: capture off "
            f"{tok_off:.0f} tok/s {req_off:.2f} req/s; capture 100% {tok_on:.0f} tok/s {req_on:.2f} req/s = "
            f"**{ratio:.3f}** ({100 * (1 - ratio):+.1f}% slower, target <= 5%); {written} records "
            f"({size / 2**20:.1f} MiB) written, one per request",
        )


if __name__ == "__main__":
    main()
