"""serve.capture on a real vLLM server (the quickstart artifact, started through `genai serve` as a user
would): non-streaming and streaming requests recorded, a redaction rule applied, no Authorization (or
cookie, or key) header stored, unauthorized requests and other routes left out, rotation at max_bytes
keeping max_files, and the captured prompts replayed into an eval file. Sampling and the SSE rebuild
are unit tests; a capture folder that cannot be written is one clear error, exit 2, before vLLM starts."""

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

from genai.serving.capture import CaptureConfig, RotatingWriter, read_records, sampled, stream_message
from tests.conftest import genai_serving

KEY = "capture-key-42"
EMAIL = "jane.doe@example.com"
XKEY = "xapikey-value-77"
MAX_BYTES, MAX_FILES = 4096, 3


@pytest.fixture(scope="module")
def captured(quickstart_run, tmp_path_factory):
    from genai.serving.server import free_port

    folder = tmp_path_factory.mktemp("capture") / "cap"
    port = free_port()
    settings = [
        f"serve.port={port}",
        "serve.capture.enabled=true",
        f"serve.capture.folder={folder}",
        f"serve.capture.max_bytes={MAX_BYTES}",
        f"serve.capture.max_files={MAX_FILES}",
        r"serve.capture.redact=['[a-z0-9.]+@example\.com']",
    ]
    with genai_serving(quickstart_run, *settings, env={"GENAI_API_KEY": KEY}):
        yield {"root": f"http://127.0.0.1:{port}", "folder": folder, "run": quickstart_run}


def post(root, path, body, rid, key=KEY, **extra_headers):
    headers = {"Authorization": f"Bearer {key}", "X-Request-Id": rid, **extra_headers}
    return httpx.post(root + path, json=body, headers=headers, timeout=120)


def record(folder: Path, rid: str, timeout: float = 20) -> dict:
    """The record of request `rid` (the writer thread writes it just after the response)."""
    end = time.time() + timeout
    while time.time() < end:
        found = [r for r in read_records(folder) if r["id"] == rid] if folder.exists() else []
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no record {rid} in {folder}")


def all_text(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted(folder.glob("capture-*.jsonl")))


def test_a_chat_request_is_recorded_redacted_and_without_credentials(captured):
    body = {
        "model": "quickstart",
        "messages": [{"role": "user", "content": f"What is 12 + 30? Mail {EMAIL}"}],
        "max_tokens": 6,
        "temperature": 0,
    }
    resp = post(captured["root"], "/v1/chat/completions", body, "r-plain", Cookie="session=abc", **{"X-Api-Key": XKEY})
    assert resp.status_code == 200
    answer = resp.json()["choices"][0]["message"]["content"]
    rec = record(captured["folder"], "r-plain")
    assert rec["status"] == 200 and rec["stream"] is False and rec["complete"] is True
    assert rec["endpoint"] == "/v1/chat/completions" and rec["model"] == "quickstart"
    assert rec["request"]["messages"][0]["content"] == "What is 12 + 30? Mail [REDACTED]"
    assert rec["response"]["choices"][0]["message"]["content"] == answer
    assert rec["headers"]["x-request-id"] == "r-plain" and "authorization" not in rec["headers"]
    assert 0 < rec["ttfb_s"] <= rec["latency_s"]
    text = all_text(captured["folder"])
    for secret in (KEY, "Bearer", "session=abc", XKEY, EMAIL):
        assert secret not in text


def test_a_streamed_chat_is_rebuilt_from_its_events(captured):
    body = {
        "model": "quickstart",
        "messages": [{"role": "user", "content": "What is 40 + 2?"}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {KEY}", "X-Request-Id": "r-stream"}
    pieces, events = [], 0
    with httpx.stream(
        "POST", captured["root"] + "/v1/chat/completions", json=body, headers=headers, timeout=120
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events += 1
                chunk = json.loads(line[6:])
                pieces += [c["delta"].get("content") or "" for c in chunk["choices"]]
    rec = record(captured["folder"], "r-stream")
    assert rec["stream"] is True and rec["status"] == 200 and rec["complete"] is True
    msg = rec["response"]["choices"][0]
    assert msg["message"]["content"] == "".join(pieces) and msg["message"]["content"]
    assert msg["finish_reason"] in ("stop", "length") and rec["response"]["events"] == events
    assert rec["response"]["usage"]["completion_tokens"] >= 1


def test_a_streamed_completion_and_what_is_left_out(captured):
    body = {"model": "quickstart", "prompt": "12 + 30 =", "max_tokens": 4, "temperature": 0, "stream": True}
    text = ""
    with httpx.stream(
        "POST",
        captured["root"] + "/v1/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}", "X-Request-Id": "r-compl"},
        timeout=120,
    ) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                text += "".join(c["text"] for c in json.loads(line[6:])["choices"])
    assert record(captured["folder"], "r-compl")["response"]["choices"][0]["text"] == text
    # Not captured: a request the API key check refused, and any other route.
    assert post(captured["root"], "/v1/chat/completions", body, "r-denied", key="wrong").status_code == 401
    assert httpx.get(captured["root"] + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    chat = {"model": "quickstart", "messages": [{"role": "user", "content": "What is 1 + 1?"}], "max_tokens": 4}
    assert post(captured["root"], "/v1/chat/completions", chat, "r-after").status_code == 200
    record(captured["folder"], "r-after")  # one writer thread, in order: the refused one had its chance
    ids = {r["id"] for r in read_records(captured["folder"])}
    assert "r-denied" not in ids and all(r["endpoint"] != "/v1/models" for r in read_records(captured["folder"]))


def test_rotation_keeps_max_files_each_under_max_bytes(captured):
    folder = captured["folder"]
    for i in range(12):
        body = {"model": "quickstart", "messages": [{"role": "user", "content": f"What is {i} + 7?"}], "max_tokens": 6}
        assert (
            post(captured["root"], "/v1/chat/completions", {**body, "temperature": 0}, f"r-rot{i}").status_code == 200
        )
    record(folder, "r-rot11")
    numbers = sorted(int(p.stem.split("-")[1]) for p in folder.glob("capture-*.jsonl"))
    assert len(numbers) == MAX_FILES and numbers == list(range(numbers[0], numbers[0] + MAX_FILES))
    assert numbers[0] > 1  # the oldest files were deleted
    assert all(p.stat().st_size <= MAX_BYTES for p in folder.glob("capture-*.jsonl"))
    ids = [r["id"] for r in read_records(folder)]
    assert ids[-1] == "r-rot11" and "r-plain" not in ids


def test_replay_of_the_capture_writes_an_eval_file(captured, genai_main, monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_API_KEY", KEY)
    out = tmp_path / "replayed.jsonl"
    code, stdout, err = genai_main(
        "monitor", captured["run"], captured["folder"], "--replay", captured["root"] + "/v1", "--out", out, "--json"
    )
    assert code == 0, err
    summary = json.loads(stdout)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["replayed"] == len(rows) >= 3
    rot = [r for r in rows if r["id"].startswith("r-rot")]
    assert len(rot) >= 3 and rot[-1]["instruction"] == "What is 11 + 7?"
    # Greedy, same model: the endpoint answers as it did when the traffic was captured.
    assert all(r["output"] == r["captured"] and r["output"] for r in rot)
    assert rot[-1]["messages"] == [
        {"role": "user", "content": "What is 11 + 7?"},
        {"role": "assistant", "content": rot[-1]["output"]},
    ]


def test_a_capture_folder_that_cannot_be_written_is_refused_before_vllm_starts(quickstart_run, tmp_path, genai_main):
    if os.geteuid() == 0:  # root writes through chmod: a path under a file cannot be a folder for anyone
        (tmp_path / "a-file").write_text("x")
        folder = tmp_path / "a-file" / "cap"
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
    t0 = time.time()
    code, _, err = genai_main(
        "serve", quickstart_run, "serve.port=0", "serve.capture.enabled=true", f"serve.capture.folder={folder}"
    )
    assert code == 2 and "serve.capture.folder" in err and str(folder) in err and "not writable" in err
    assert "Traceback" not in err and time.time() - t0 < 30


def test_sampling_is_by_request_id():
    ids = [uuid.uuid4().hex for _ in range(4000)]
    share = sum(sampled(i, 0.25) for i in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert [sampled(i, 0.25) for i in ids[:50]] == [sampled(i, 0.25) for i in ids[:50]]
    assert all(sampled(i, 1.0) for i in ids[:50]) and not any(sampled(i, 0.0) for i in ids[:50])


def test_writer_rotation_and_sse_rebuild(tmp_path):
    w = RotatingWriter(tmp_path, max_bytes=100, max_files=2)
    paths = [w.write(json.dumps({"i": i, "pad": "x" * 20})) for i in range(5)]  # 40 bytes a line
    assert [p.name for p in paths] == [f"capture-{n}.jsonl" for n in (1, 1, 2, 2, 3)]
    assert sorted(p.name for p in tmp_path.glob("capture-*.jsonl")) == ["capture-2.jsonl", "capture-3.jsonl"]
    assert [r["i"] for r in read_records(tmp_path)] == [2, 3, 4]
    sse = (
        b"".join(
            b"data: " + json.dumps(c).encode() + b"\n\n"
            for c in [
                {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "4"}}]},
                {"id": "c1", "choices": [{"index": 0, "delta": {"content": "2"}, "finish_reason": "stop"}]},
                {"id": "c1", "choices": [], "usage": {"completion_tokens": 2}},
            ]
        )
        + b"data: [DONE]\n\n"
    )
    msg = stream_message(sse)
    assert msg["choices"] == [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "42"}}]
    assert msg["events"] == 3 and msg["usage"] == {"completion_tokens": 2} and msg["model"] == "m"
    with pytest.raises(RuntimeError, match="GENAI_CAPTURE"):
        os.environ.pop("GENAI_CAPTURE", None)
        CaptureConfig.from_env()


def test_capture_at_its_defaults_leaves_the_recipe_hash_as_it_was():
    from genai.recipe import ServeSection, load_recipe
    from tests.conftest import ROOT

    plain = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    dump = plain.public_dump()
    assert "capture" not in dump["serve"] and set(dump["serve"]) == set(ServeSection.model_fields) - {"capture"}
    on = load_recipe(ROOT / "recipes" / "quickstart.yaml", ["serve.capture.enabled=true", "serve.capture.folder=c"])
    assert on.public_dump()["serve"]["capture"]["folder"] == str(Path.cwd() / "c")
    assert on.content_hash() != plain.content_hash()
    assert load_recipe(ROOT / "recipes" / "quickstart.yaml", ["serve.capture.rate=1.0"]).content_hash() == (
        plain.content_hash()
    )


def test_the_middleware_passes_each_chunk_on_at_once_and_drops_credentials(tmp_path):
    import asyncio

    from genai.serving.capture import CaptureMiddleware

    got = []

    async def app(scope, receive, send):
        before = len(got)
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        chunk = b'data: {"choices": [{"index": 0, "text": "a"}]}\n\n'
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        assert len(got) == before + 2  # the client has the first chunk before the app makes the next: nothing held back
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    # Even a settings file that lists Authorization does not get it stored.
    mw = CaptureMiddleware(app, CaptureConfig(folder=str(tmp_path), headers=["authorization", "x-request-id"]))
    headers = [(b"authorization", b"Bearer s3cr3t"), (b"x-request-id", b"u1")]
    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": headers}

    async def receive():
        return {"type": "http.request", "body": b'{"model": "m", "prompt": "hi"}', "more_body": False}

    async def send(message):
        got.append(message)

    asyncio.run(mw(scope, receive, send))
    asyncio.run(mw({**scope, "path": "/v1/models", "method": "GET"}, receive, send))
    mw.sink.close()
    (rec,) = read_records(tmp_path)
    assert rec["response"]["choices"] == [{"index": 0, "finish_reason": None, "text": "a"}]
    assert rec["headers"] == {"x-request-id": "u1"} and rec["request"]["prompt"] == "hi"
    assert "s3cr3t" not in (tmp_path / "capture-1.jsonl").read_text()
