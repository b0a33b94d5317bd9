"""C1: what request capture costs a server: throughput with serve.capture at 100% against capture off.

The workload (the same against each arm): N chat requests x NEW output tokens (EOS ignored, greedy),
CONCURRENCY at a time, streamed by default (the middleware's worst case: it copies every chunk) and, with
--no-stream, as whole answers; the tiny quickstart model, where a request is almost all API-process Python,
so whatever the capture adds there shows most.

Two designs (--design):
- paired (the default): ONE `genai serve` with capture on at rate 0.5, and the request ids chosen (the
  x-request-id header, which the middleware samples by) so that a whole round is recorded or none of it.
  Rounds alternate recorded / not recorded, so both arms share the server, its warm state and the
  machine's drift; the figure is the median of the per-pair ratios. The not-recorded arm still passes
  the middleware (one hash of the id per request): what it costs is capture's too, and the servers design
  measures it.
- servers: one server with capture off, then one with capture at 100% (--pairs times, alternated);
  the medians of --repeats rounds against each. On this 2-core VM the rounds of one server vary by
  +-20%, so this design needs many pairs to see 5%.
Target: capture at most 5% below capture off. The capture files are checked to hold exactly the
recorded requests. Usage: python bench/capture_overhead.py [--design paired|servers] [--run RUN] [--record]
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
RATE = 0.5  # paired design: half of all ids are recorded, so rounds of either kind are easy to draw


async def _one(http, url: str, body: dict, stream: bool, rid: str | None = None) -> int:
    """One request (with x-request-id `rid` when given); its output tokens (from usage)."""
    headers = {"x-request-id": rid} if rid else None
    if not stream:
        resp = await http.post(url, json=body, headers=headers)
        resp.raise_for_status()
        return resp.json()["usage"]["completion_tokens"]
    tokens = 0
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with http.stream("POST", url, json=streamed, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"usage"' in line:
                usage = json.loads(line[6:]).get("usage")
                tokens = usage["completion_tokens"] if usage else tokens
    return tokens


async def _round(base: str, prompts: list[str], args, ids: list[str] | None = None) -> tuple[float, float]:
    """All prompts, `concurrency` at a time (request i with x-request-id ids[i]): (output tok/s, req/s)."""
    import httpx

    sem = asyncio.Semaphore(args.concurrency)
    url = f"{base}/v1/chat/completions"

    async def go(i: int, p: str) -> int:
        body = {
            "model": "quickstart",
            "messages": [{"role": "user", "content": p}],
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        async with sem:
            return await _one(http, url, body, args.stream, ids[i] if ids else None)

    async with httpx.AsyncClient(timeout=600) as http:
        start = time.perf_counter()
        tokens = await asyncio.gather(*(go(i, p) for i, p in enumerate(prompts)))
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


def ids_for(count: int, recorded: bool, rate: float) -> list[str]:
    """`count` fresh request ids that the middleware records (or passes by) at `rate`."""
    import uuid

    from genai.serving.capture import sampled

    out: list[str] = []
    while len(out) < count:
        rid = f"c1-{uuid.uuid4().hex}"
        if sampled(rid, rate) == recorded:
            out.append(rid)
    return out


def api_cpu_seconds(port: int) -> float:
    """CPU seconds (user + system, all threads: the capture's writer too) of the vLLM API server on `port`."""
    mine = f"vllm.entrypoints.openai.api_server --host 127.0.0.1 --port {port} "
    (pid,) = subprocess.run(["pgrep", "-f", mine], capture_output=True, text=True).stdout.split()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (stat fields 14, 15)


def measure_paired(run: Path, capture: Path, prompts: list[str], args) -> tuple[list, list, set[str], dict]:
    """One server, capture at rate 0.5; rounds alternate all-recorded / none-recorded (which goes first
    alternates by pair). Returns (recorded rounds, passed-by rounds, the ids that were to be recorded, the
    API server's CPU milliseconds per request in each kind of round)."""
    settings = ["serve.capture.enabled=true", f"serve.capture.folder={capture}", f"serve.capture.rate={RATE}"]
    on, by, wanted, cpu = [], [], set(), {True: [], False: []}
    with serving(run, settings) as root:
        port = int(root.rsplit(":", 1)[1])
        warm = ids_for(len(prompts), False, RATE)
        asyncio.run(_round(root, prompts[: 2 * args.concurrency], args, warm))  # warm-up, not recorded
        for i in range(args.repeats):
            rec, skip = ids_for(len(prompts), True, RATE), ids_for(len(prompts), False, RATE)
            wanted.update(rec)
            for recorded in (True, False) if i % 2 == 0 else (False, True):
                before = api_cpu_seconds(port)
                figures = asyncio.run(_round(root, prompts, args, rec if recorded else skip))
                time.sleep(0.2)  # the writer thread's records of this round are built by now
                cpu[recorded].append(1000 * (api_cpu_seconds(port) - before) / len(prompts))
                (on if recorded else by).append(figures)
                kind = "recorded" if recorded else "passed by"
                print(
                    f"pair {i + 1} {kind}: {figures[0]:.0f} tok/s, API CPU {cpu[recorded][-1]:.2f} ms/request",
                    flush=True,
                )
    return on, by, wanted, {k: statistics.median(v) for k, v in cpu.items()}


def captured_ids(folder: Path) -> list[str]:
    """The ids of the records written (after the server stopped: its writer drains at exit)."""
    from genai.serving.capture import read_records

    return [r["id"] for r in read_records(folder)]


def main() -> None:
    from bench.serve_throughput import quickstart_run

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--design", choices=("paired", "servers"), default="paired")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5, help="rounds per server (servers) or round pairs (paired)")
    ap.add_argument("--pairs", type=int, default=1, help="servers: off/on server pairs, alternated")
    ap.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    args = ap.parse_args()
    run = quickstart_run(args.run)
    rows = [json.loads(x) for x in (ROOT / "recipes/data/quickstart/test.jsonl").read_text().splitlines()]
    prompts = [rows[i % len(rows)]["instruction"] for i in range(args.requests)]
    work = Path(tempfile.mkdtemp(prefix="genai-capture-bench-"))
    try:
        if args.design == "paired":
            on, off, wanted, cpu = measure_paired(run, work / "cap", prompts, args)
            got = captured_ids(work / "cap")
            assert len(got) == len(wanted) and set(got) == wanted, f"{len(got)} records for {len(wanted)} requests"
        else:
            off, on, cpu = [], [], None
            for i in range(args.pairs):
                off += measure(run, None, prompts, args)
                on += measure(run, work / f"cap{i}", prompts, args)
            sent = args.pairs * (args.concurrency + args.repeats * len(prompts))
            got = [x for i in range(args.pairs) for x in captured_ids(work / f"cap{i}")]
            assert len(got) == sent, f"capture wrote {len(got)} records for {sent} requests"
        size = sum(p.stat().st_size for p in work.rglob("capture-*.jsonl"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(off, on, len(got), size, args, cpu)


def report(off, on, written: int, size: int, args, cpu: dict | None = None) -> None:
    tok_off, tok_on = (statistics.median(t for t, _ in xs) for xs in (off, on))
    req_off, req_on = (statistics.median(r for _, r in xs) for xs in (off, on))
    ratio = tok_on / tok_off
    paired = statistics.median(a[0] / b[0] for a, b in zip(on, off, strict=True)) if args.design == "paired" else None
    mode = "streamed" if args.stream else "whole answers"
    base = "passed by" if paired is not None else "off"
    print(f"{'capture':10} {'out tok/s':>10} {'req/s':>8}")
    print(f"{base:10} {tok_off:>10.0f} {req_off:>8.2f}\n{'recorded':10} {tok_on:>10.0f} {req_on:>8.2f}")
    print(f"capture on / off: {ratio:.3f} ({100 * (1 - ratio):+.1f}% slower; target <= 5%)")
    if paired is not None:
        print(f"median of the {len(on)} paired ratios: {paired:.3f}")
    if cpu:
        print(f"API server CPU per request (median): passed by {cpu[False]:.2f} ms, recorded {cpu[True]:.2f} ms")
    print(f"{written} records, {size / 2**20:.1f} MiB written")
    if args.record:
        from bench.common import record

        if paired is not None:
            how = (
                f"one server, capture at rate 0.5 with request ids chosen so a round is all recorded or none; "
                f"{len(on)} round pairs alternated: passed by {tok_off:.0f} tok/s {req_off:.2f} req/s, recorded "
                f"{tok_on:.0f} tok/s {req_on:.2f} req/s = {ratio:.3f} (medians); median of the paired ratios "
                f"**{paired:.3f}** (target >= 0.95); the API server's CPU per request (all its threads, the "
                f"capture's writer too): passed by {cpu[False]:.2f} ms, recorded {cpu[True]:.2f} ms"
            )
        else:
            how = (
                f"median of {args.repeats * args.pairs} rounds over {args.pairs} server pairs: capture off "
                f"{tok_off:.0f} tok/s {req_off:.2f} req/s; capture 100% {tok_on:.0f} tok/s {req_on:.2f} req/s = "
                f"**{ratio:.3f}** ({100 * (1 - ratio):+.1f}% slower, target <= 5%)"
            )
        record(
            "C1 request capture overhead",
            f"tiny-llama (374k), CPU, genai serve, {args.requests} chat requests x {args.max_tokens} tokens, "
            f"{mode}, concurrency {args.concurrency}; {how}; {written} records ({size / 2**20:.1f} MiB) written, "
            f"exactly the recorded requests",
        )


if __name__ == "__main__":
    main()
