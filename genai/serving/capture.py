"""Request capture: vLLM's own server records its OpenAI traffic to JSONL (`serve.capture`).

No proxy: `genai serve` passes `--middleware genai.serving.capture.CaptureMiddleware` to vLLM, which
loads this pure ASGI middleware in its API process; its settings come in the GENAI_CAPTURE
environment variable (JSON). The middleware only copies what passes through: each response chunk
goes to the client as it comes (streams are not held back); the record is built, redacted and
written by a background thread after the response ended.

A record (one JSON line of capture-<n>.jsonl):
  id, time (UTC, ISO), endpoint, model, stream, status, complete (false: the client left early),
  latency_s (request start to last byte), ttfb_s (to the first response byte), headers (only the
  allowlisted ones; Authorization, cookies and keys never), request (the JSON body), response.
For a streamed (SSE) answer, `response` is the final message rebuilt from the events, in the shape of
the non-streamed answer (choices[i].message.content, or .text for /v1/completions; tool calls and
reasoning joined too; finish_reason, usage), plus `events`: how many were received. The raw events
are not kept: they repeat the same fields per token and would multiply the size of each record.
Redaction rules apply to every string of `request` and `response` before anything is written.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genai.atomic import write_probe
from genai.errors import GenaiError

if TYPE_CHECKING:
    from genai.recipe import CaptureSection

ENV = "GENAI_CAPTURE"
MIDDLEWARE = "genai.serving.capture.CaptureMiddleware"
CAPTURED_PATHS = ("/v1/chat/completions", "/v1/completions")
REDACTED = "[REDACTED]"
FILE = re.compile(r"^capture-(\d+)\.jsonl$")
# Defence in depth: never written even if a settings file lists it (the recipe refuses these names too).
SECRET_HEADER = re.compile(r"(authorization|cookie|api[-_]?key|token|secret|password|credential)", re.I)


# ----------------------------------------------------------------------------- settings (genai's side)


@dataclass
class CaptureConfig:
    """What the middleware needs, as it travels in $GENAI_CAPTURE."""

    folder: str
    rate: float = 1.0
    max_bytes: int = 64 * 2**20
    max_files: int = 10
    redact: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=lambda: ["content-type", "user-agent", "x-request-id"])

    @classmethod
    def from_env(cls) -> CaptureConfig:
        """The settings genai's server_env put in $GENAI_CAPTURE."""
        raw = os.environ.get(ENV)
        if not raw:
            raise RuntimeError(f"{MIDDLEWARE} needs ${ENV} (JSON settings); start the server with `genai serve`")
        return cls(**json.loads(raw))


def capture_folder(section: CaptureSection, run_dir: Path | None) -> Path:
    """serve.capture.folder, or RUN/capture when a run is served."""
    if section.folder:
        return Path(section.folder)
    if run_dir is None:
        raise GenaiError(
            "serve.capture.folder: not set, and what is served is not a run folder (the default is RUN/capture)",
            hint="set serve.capture.folder=DIR",
        )
    return Path(run_dir) / "capture"


def check_writable(folder: Path) -> None:
    """Create the folder and write a file in it: a clear error now rather than lost records later."""
    try:
        write_probe(folder)
    except OSError as exc:
        raise GenaiError(
            f"serve.capture.folder: {folder} is not writable ({exc.strerror or exc})",
            hint="choose a folder this user can write to (serve.capture.folder=DIR), or serve.capture.enabled=false",
        ) from None


def capture_env(section: CaptureSection, run_dir: Path | None) -> dict[str, str]:
    """$GENAI_CAPTURE for the server (empty when capture is off); the folder is checked first."""
    if not section.enabled:
        return {}
    folder = capture_folder(section, run_dir)
    check_writable(folder)
    cfg = CaptureConfig(
        folder=str(folder.resolve()),
        rate=section.rate,
        max_bytes=section.max_bytes,
        max_files=section.max_files,
        redact=list(section.redact),
        headers=list(section.headers),
    )
    return {ENV: json.dumps(asdict(cfg))}


# ----------------------------------------------------------------------------- the pieces


def sampled(request_id: str, rate: float) -> bool:
    """Whether to record this request: a hash of its id against the rate (the same id, the same answer)."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")
    return h / 2**64 < rate


class Redactor:
    """Replace every match of the rules in every string of a JSON value."""

    def __init__(self, patterns: list[str]):
        self.rules = [re.compile(p) for p in patterns]

    def __call__(self, value: Any) -> Any:
        """`value` with every string redacted."""
        if not self.rules:
            return value
        if isinstance(value, str):
            for rule in self.rules:
                value = rule.sub(REDACTED, value)
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value


def file_number(path: Path) -> int:
    """n of capture-<n>.jsonl (-1 for any other name)."""
    m = FILE.match(path.name)
    return int(m.group(1)) if m else -1


class RotatingWriter:
    """Append lines to capture-<n>.jsonl; past max_bytes the next n starts, and only the newest max_files
    stay. A file lock makes this safe with several API server processes writing one folder."""

    def __init__(self, folder: Path, max_bytes: int, max_files: int):
        self.folder, self.max_bytes, self.max_files = Path(folder), max_bytes, max_files
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def files(self) -> list[Path]:
        """The capture files, oldest first."""
        return sorted((p for p in self.folder.iterdir() if file_number(p) >= 0), key=file_number)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        with self._lock, open(self.folder / ".capture.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def write(self, line: str) -> Path:
        """Append one line (rotating first when it would pass max_bytes); returns the file written."""
        return self.write_many([line])[-1]

    def write_many(self, lines: list[str]) -> list[Path]:
        """Append lines under one lock, each rotating first when it would pass max_bytes; the files written."""
        written: list[Path] = []
        if not lines:
            return written
        with self._locked():
            files = self.files()
            path = files[-1] if files else self.folder / "capture-1.jsonl"
            size = path.stat().st_size if path.exists() else 0
            fh = open(path, "ab")
            try:
                for line in lines:
                    data = line.encode() + b"\n"
                    if size and size + len(data) > self.max_bytes:
                        fh.close()
                        path = self.folder / f"capture-{file_number(path) + 1}.jsonl"
                        files.append(path)
                        fh, size = open(path, "ab"), 0
                    fh.write(data)
                    size += len(data)
                    written.append(path)
            finally:
                fh.close()
            for old in files[: max(0, len(files) - self.max_files)]:
                old.unlink(missing_ok=True)
        return written


def _json(raw: bytes) -> Any:
    """A JSON body, or its text when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw": raw.decode("utf-8", "replace")}


def _merge_delta(choice: dict, delta: dict) -> None:
    """Fold one chat delta into the message being rebuilt."""
    msg = choice.setdefault("message", {"role": "assistant", "content": ""})
    for key in ("content", "reasoning_content", "reasoning"):
        if delta.get(key):
            msg[key] = (msg.get(key) or "") + delta[key]
    for call in delta.get("tool_calls") or []:
        calls = msg.setdefault("tool_calls", [])
        i = call.get("index", len(calls))
        while len(calls) <= i:
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        calls[i]["id"] = call.get("id") or calls[i]["id"]
        fn = call.get("function") or {}
        calls[i]["function"]["name"] += fn.get("name") or ""
        calls[i]["function"]["arguments"] += fn.get("arguments") or ""


def _events(body: bytes) -> list:
    """The JSON payloads of an SSE body ([DONE] left out; one that is not JSON kept as None)."""
    datas = [line[5:].strip() for line in body.splitlines() if line.startswith(b"data:")]
    datas = [d for d in datas if d != b"[DONE]"]
    try:  # one parse of them all: a third faster than one per event
        return json.loads(b"[" + b",".join(datas) + b"]")
    except ValueError:
        out = []
        for d in datas:
            try:
                out.append(json.loads(d))
            except ValueError:
                out.append(None)
        return out


def stream_message(body: bytes) -> dict:
    """A streamed (SSE) answer rebuilt as one message: the shape of the non-streamed answer, plus `events`."""
    events = _events(body)
    out: dict[str, Any] = {"id": None, "model": None, "choices": [], "usage": None, "events": len(events)}
    choices: dict[int, dict] = {}
    for chunk in events:
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            out["error"] = chunk["error"]
            continue
        out["id"], out["model"] = out["id"] or chunk.get("id"), out["model"] or chunk.get("model")
        out["usage"] = chunk.get("usage") or out["usage"]
        for ch in chunk.get("choices") or []:
            choice = choices.setdefault(ch.get("index", 0), {"index": ch.get("index", 0), "finish_reason": None})
            if "delta" in ch:
                _merge_delta(choice, ch["delta"] or {})
            elif "text" in ch:
                choice["text"] = choice.get("text", "") + (ch["text"] or "")
            choice["finish_reason"] = ch.get("finish_reason") or choice["finish_reason"]
    out["choices"] = [choices[i] for i in sorted(choices)]
    return out


# ----------------------------------------------------------------------------- the middleware


@dataclass
class Exchange:
    """One request and its response as they pass (raw bytes; parsed later, off the event loop)."""

    id: str
    path: str
    headers: dict[str, str]
    wall: float = field(default_factory=time.time)
    start: float = field(default_factory=time.perf_counter)
    request: list[bytes] = field(default_factory=list)
    response: list[bytes] = field(default_factory=list)
    status: int | None = None
    content_type: str = ""
    first_byte: float | None = None
    end: float | None = None

    def record(self, redact: Redactor) -> dict:
        """The JSON record (redacted)."""
        request = _json(b"".join(self.request))
        body = b"".join(self.response)
        stream = self.content_type.startswith("text/event-stream")
        response = stream_message(body) if stream else (_json(body) if body else None)
        end = self.end if self.end is not None else time.perf_counter()
        return {
            "id": self.id,
            "time": datetime.fromtimestamp(self.wall, UTC).isoformat(timespec="milliseconds"),
            "endpoint": self.path,
            "model": request.get("model") if isinstance(request, dict) else None,
            "stream": stream,
            "status": self.status,
            "complete": self.end is not None,
            "latency_s": round(end - self.start, 4),
            "ttfb_s": None if self.first_byte is None else round(self.first_byte - self.start, 4),
            "headers": self.headers,
            "request": redact(request),
            "response": redact(response),
        }


class Sink:
    """A queue and one writer thread: the request path only enqueues."""

    def __init__(self, cfg: CaptureConfig):
        self.writer = RotatingWriter(Path(cfg.folder), cfg.max_bytes, cfg.max_files)
        self.redact = Redactor(cfg.redact)
        self.queue: queue.SimpleQueue[Exchange | None] = queue.SimpleQueue()
        self._warned = False
        self.thread = threading.Thread(target=self._run, name="genai-capture", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def put(self, ex: Exchange) -> None:
        """Hand a finished exchange to the writer thread."""
        self.queue.put(ex)

    def _run(self) -> None:
        done = False
        while not done:
            batch = [self.queue.get()]
            while not self.queue.empty() and len(batch) < 256:  # what piled up meanwhile: one lock, one open
                batch.append(self.queue.get())
            done = any(ex is None for ex in batch)
            try:
                lines = [json.dumps(ex.record(self.redact), ensure_ascii=False) for ex in batch if ex is not None]
                self.writer.write_many(lines)
            except Exception as exc:  # noqa: BLE001 - a full disk must never take serving down: say it once
                if not self._warned:
                    print(f"genai capture: records were not written: {exc}", file=sys.stderr, flush=True)
                    self._warned = True

    def close(self, timeout: float = 10) -> None:
        """Write what is queued, then stop the thread (at exit)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout)


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


class CaptureMiddleware:
    """Pure ASGI middleware: copies POSTs to the OpenAI generation routes as they pass."""

    def __init__(self, app, config: CaptureConfig | None = None):
        self.app = app
        self.config = config or CaptureConfig.from_env()
        self.allowed = [h.lower() for h in self.config.headers if not SECRET_HEADER.search(h)]
        self.sink = Sink(self.config)

    async def __call__(self, scope, receive, send):
        """Pass everything on; copy a sampled generation request and its response into a record."""
        path = scope.get("path", "").removeprefix(scope.get("root_path", "")) if scope["type"] == "http" else ""
        if path not in CAPTURED_PATHS or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        rid = headers.get("x-request-id") or uuid.uuid4().hex
        if not sampled(rid, self.config.rate):
            await self.app(scope, receive, send)
            return
        ex = Exchange(rid, path, {k: headers[k] for k in self.allowed if k in headers})

        async def receive_copy():
            message = await receive()
            if message["type"] == "http.request":
                ex.request.append(message.get("body", b""))
            return message

        async def send_copy(message):
            if message["type"] == "http.response.start":
                ex.status = message["status"]
                ex.content_type = _headers(message).get("content-type", "")
            elif message["type"] == "http.response.body":
                if ex.first_byte is None:
                    ex.first_byte = time.perf_counter()
                ex.response.append(message.get("body", b""))
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                ex.end = time.perf_counter()

        try:
            await self.app(scope, receive_copy, send_copy)
        finally:
            if ex.status != 401:  # refused by the API key check: it never reached the model
                self.sink.put(ex)


# ----------------------------------------------------------------------------- reading captures


def capture_files(path: Path) -> list[Path]:
    """A capture folder's files, oldest first (or the one file given)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise GenaiError(f"{path}: no such capture folder or file", hint="serve with serve.capture.enabled=true")
    return sorted((p for p in path.iterdir() if file_number(p) >= 0), key=file_number)


def read_records(path: Path) -> Iterator[dict]:
    """Every record of a capture folder or file, oldest first (a torn last line is skipped)."""
    for f in capture_files(path):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    yield rec


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def prompts_of(rec: dict) -> list[list[dict]]:
    """The conversations a record asked about, as messages with text content (a completions request:
    each string prompt as one user turn; token-id prompts are left out)."""
    req = rec.get("request")
    if not isinstance(req, dict):
        return []
    if isinstance(req.get("messages"), list):
        msgs = [m for m in req["messages"] if isinstance(m, dict)]
        return [[{"role": str(m.get("role", "user")), "content": _text(m.get("content"))} for m in msgs]]
    prompt = req.get("prompt")
    items = [prompt] if isinstance(prompt, str) else [p for p in prompt or [] if isinstance(p, str)]
    return [[{"role": "user", "content": p}] for p in items]


def answer_of(rec: dict) -> str | None:
    """The first choice's answer text as captured (None when there is none)."""
    resp = rec.get("response")
    choices = resp.get("choices") if isinstance(resp, dict) else None
    if not choices:
        return None
    first = choices[0]
    if "message" in first:
        return _text((first.get("message") or {}).get("content"))
    return first.get("text")
