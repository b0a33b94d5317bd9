"""C1, the CPU side: what the capture middleware costs per request, measured in one process, without a server.

A stand-in ASGI app streams a 64-token chat answer (66 SSE events, the shape vLLM sends) and the
middleware wraps it, as vLLM's API process does. The figure is CPU time (all threads: the writer
thread's record building and file writes too) per request, for the app alone, a request the
middleware passes by (not sampled), and one it records. No network, no engine and no other process share
the measurement, but CPU seconds still follow this VM's speed: runs on one afternoon gave 250 to 530 us
for the same recorded request. Compare with the API server's CPU per request that
bench/capture_overhead.py prints, ideally from the same hour.
Usage: python bench/capture_cpu.py [--requests 3000] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capture_overhead import RATE  # noqa: E402  (ids drawn on either side of it: both kinds, one middleware)
from bench.capture_overhead import ids_for as _ids_for  # noqa: E402
from genai.serving.capture import CaptureConfig, CaptureMiddleware  # noqa: E402

ids_for = partial(_ids_for, rate=RATE)


def event(i: int) -> bytes:
    """One SSE chunk of a streamed chat answer."""
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "quickstart",
        "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "logprobs": None, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


CHUNKS = [event(i) for i in range(64)] + [b'data: {"choices": [], "usage": {"completion_tokens": 64}}\n\n']
CHUNKS.append(b"data: [DONE]\n\n")
BODY = json.dumps(
    {"model": "quickstart", "messages": [{"role": "user", "content": "What is 12 plus 30? " * 4}], "stream": True}
).encode()


async def app(scope, receive, send) -> None:
    """The answer, chunk by chunk."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for chunk in CHUNKS:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def drive(target, ids: list[str]) -> None:
    """One request per id through `target`, one after the other."""

    async def receive():
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message):
        pass

    for rid in ids:
        headers = [(b"x-request-id", rid.encode()), (b"content-type", b"application/json")]
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}
        await target(scope, receive, send)


def cpu_us(target, ids: list[str], middleware: CaptureMiddleware | None = None) -> float:
    """CPU microseconds per request (this process, all threads), the writer drained at the end."""
    start = time.process_time()
    asyncio.run(drive(target, ids))
    if middleware is not None:
        middleware.sink.close()  # what is queued is written: its cost is counted
    return (time.process_time() - start) / len(ids) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory(prefix="genai-capture-cpu-") as folder:
        bare = cpu_us(app, ids_for(n, False))
        passed = cpu_us(CaptureMiddleware(app, CaptureConfig(folder=folder, rate=RATE)), ids_for(n, False))
        recording = CaptureMiddleware(app, CaptureConfig(folder=folder, rate=RATE))
        recorded = cpu_us(recording, ids_for(n, True), recording)
        lines = sum(1 for p in Path(folder).glob("capture-*.jsonl") for _ in p.open())
    assert lines == n, f"{lines} records for {n} recorded requests"
    print(f"app alone {bare:.0f} us, passed by {passed:.0f} us, recorded {recorded:.0f} us CPU per request")
    print(f"the capture's own cost: {recorded - bare:.0f} us per recorded request, {passed - bare:.0f} us passed by")
    if args.record:
        from bench.common import record

        record(
            "C1 capture CPU per request (in-process)",
            f"a 64-token streamed chat answer (66 SSE events) through the middleware, {n} requests each way: app "
            f"alone {bare:.0f} us, passed by (not sampled) {passed:.0f} us, recorded {recorded:.0f} us CPU per "
            f"request (all threads, the writer's records and file writes included): the capture costs "
            f"**{recorded - bare:.0f} us** per recorded request",
        )


if __name__ == "__main__":
    main()
