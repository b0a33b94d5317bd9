"""`genai serve` end to end: a real vLLM server on loopback for the quickstart artifact.

One server per module (it takes ~20-40 s to start here), started through the CLI exactly as a
user would, and stopped with SIGINT at the end.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, genai_serving, vllm_pids

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

KEY = "test-key-123"
QS_TEST = ROOT / "recipes" / "data" / "quickstart" / "test.jsonl"


def task_items(n):
    rows = [json.loads(line) for line in QS_TEST.read_text().splitlines()[:n]]
    return [(r["instruction"], r["output"]) for r in rows]


@pytest.fixture(scope="module")
def served(quickstart_run):
    from genai.serving.server import free_port

    port = free_port()
    with genai_serving(quickstart_run, f"serve.port={port}", env={"GENAI_API_KEY": KEY}) as (proc, printed):
        yield {
            "url": f"http://127.0.0.1:{port}/v1",
            "port": port,
            "printed": printed,
            "proc": proc,
            "run": quickstart_run,
        }


def client(url, key=KEY):
    from openai import OpenAI

    return OpenAI(base_url=url, api_key=key, max_retries=0)


def test_prints_url_models_and_snippets_without_the_key(served):
    out = served["printed"]
    assert served["url"] in out and "models: quickstart, genai/tiny-llama" in out
    assert f"(bound to 127.0.0.1:{served['port']}, this address only)" in out
    assert "curl " in out and "from openai import OpenAI" in out
    assert KEY not in out


def test_models_lists_adapter_and_base(served):
    ids = {m.id for m in client(served["url"]).models.list().data}
    assert {"quickstart", "genai/tiny-llama"} <= ids


def test_fine_tuned_model_answers_the_task(served):
    c = client(served["url"])
    items = task_items(40)
    right = 0
    for q, a in items:
        r = c.chat.completions.create(
            model="quickstart", messages=[{"role": "user", "content": q}], temperature=0, max_tokens=8
        )
        right += r.choices[0].message.content.strip() == a
        assert r.choices[0].finish_reason == "stop"  # the artifact's EOS stops generation
    assert right / len(items) >= 0.9


def test_greedy_output_equals_transformers(served):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = served["run"] / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"]), adapter
    ).eval()
    tok = AutoTokenizer.from_pretrained(adapter)
    c = client(served["url"])
    for q, _ in task_items(8):
        msgs = [{"role": "user", "content": q}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(
                **ids, max_new_tokens=8, do_sample=False, eos_token_id=model.generation_config.eos_token_id
            )
        expected = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        got = c.chat.completions.create(model="quickstart", messages=msgs, temperature=0, max_tokens=8)
        assert got.choices[0].message.content == expected


def test_adapter_and_base_answer_differently(served):
    c = client(served["url"])
    q = [{"role": "user", "content": task_items(1)[0][0]}]
    tuned = c.chat.completions.create(model="quickstart", messages=q, temperature=0, max_tokens=8)
    base = c.chat.completions.create(model="genai/tiny-llama", messages=q, temperature=0, max_tokens=8)
    assert tuned.choices[0].message.content != base.choices[0].message.content


def test_base_and_adapter_asked_at_once_answer_as_when_asked_alone(served):
    # One batch holding an adapter request and a base-model request: vLLM's CPU LoRA kernels once applied
    # the adapter to both (a request without an adapter indexes slot -1), which the side-by-side playground
    # of genai studio would show as two identical answers.
    from concurrent.futures import ThreadPoolExecutor

    c = client(served["url"])
    q = [{"role": "user", "content": task_items(1)[0][0]}]

    def ask(model: str) -> str:
        r = c.chat.completions.create(model=model, messages=q, temperature=0, max_tokens=12)
        return r.choices[0].message.content

    alone = {m: ask(m) for m in ("quickstart", "genai/tiny-llama")}
    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            together = dict(zip(alone, pool.map(ask, alone), strict=True))
        assert together == alone


def test_completions_and_streaming(served):
    c = client(served["url"])
    r = c.completions.create(
        model="quickstart",
        prompt="<s><|im_start|>user\nAdd 2 and 3.<|im_end|>\n<|im_start|>assistant\n",
        temperature=0,
        max_tokens=6,
    )
    assert r.choices[0].text.strip() == "5"
    text = "".join(
        ch.choices[0].text
        for ch in c.completions.create(
            model="quickstart",
            prompt="<s><|im_start|>user\nAdd 2 and 3.<|im_end|>\n<|im_start|>assistant\n",
            temperature=0,
            max_tokens=6,
            stream=True,
        )
    )
    assert text.strip() == "5"
    chunks = list(
        c.chat.completions.create(
            model="quickstart",
            stream=True,
            temperature=0,
            max_tokens=6,
            messages=[{"role": "user", "content": "Add 2 and 3."}],
        )
    )
    assert len(chunks) > 1
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices).strip() == "5"


def test_echo_logprobs_as_lm_eval_sends_them(served):
    """lm-eval's local-completions loglikelihood: token-id prompts, echo, logprobs=1, max_tokens=1."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(served["run"] / "adapter")
    ids = tok("<s><|im_start|>user\nAdd 2 and 3.<|im_end|>\n<|im_start|>assistant\n5", add_special_tokens=False)[
        "input_ids"
    ]
    r = httpx.post(
        f"{served['url']}/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
        json={"model": "quickstart", "prompt": ids, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0},
    )
    assert r.status_code == 200, r.text
    lp = r.json()["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == len(ids) + 1 and lp["token_logprobs"][0] is None
    assert lp["token_logprobs"][len(ids) - 1] > -0.5  # the tuned model is confident the answer is 5


def test_auth_unknown_model_and_malformed_body(served):
    url = served["url"]
    body = {"model": "quickstart", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert httpx.post(f"{url}/chat/completions", json=body, timeout=30).status_code == 401
    assert (
        httpx.post(
            f"{url}/chat/completions", json=body, timeout=30, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    auth = {"Authorization": f"Bearer {KEY}"}
    assert (
        httpx.post(f"{url}/chat/completions", json={**body, "model": "nope"}, headers=auth, timeout=30).status_code
        == 404
    )
    assert (
        httpx.post(
            f"{url}/chat/completions",
            content=b"{not json",
            headers={**auth, "Content-Type": "application/json"},
            timeout=30,
        ).status_code
        == 400
    )


def test_64_concurrent_requests_all_succeed(served):
    async def main():
        async with httpx.AsyncClient(timeout=300, headers={"Authorization": f"Bearer {KEY}"}) as http:
            items = (task_items(64) * 2)[:64]
            reqs = [
                http.post(
                    f"{served['url']}/chat/completions",
                    json={
                        "model": "quickstart",
                        "messages": [{"role": "user", "content": q}],
                        "max_tokens": 8,
                        "temperature": 0,
                    },
                )
                for q, _ in items
            ]
            return await asyncio.gather(*reqs, return_exceptions=True)

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, Exception) or r.status_code != 200]
    assert not errors, errors[:3]


def test_chat_cli_streams_answers(served):
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.run(
        [str(exe), "chat", served["url"], "--model", "quickstart"],
        input="Add 2 and 3.\n\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GENAI_API_KEY": KEY},
    )
    assert proc.returncode == 0, proc.stderr
    assert "> 5" in proc.stdout


def test_sigint_shuts_down_cleanly(served):
    """Runs last in this module: stop the CLI and check nothing is left behind."""
    proc = served["proc"]
    children = vllm_pids(served["port"])
    assert children
    tmpdirs = set()
    for pid in children:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        tmpdirs |= {Path(e.split(b"=", 1)[1].decode()) for e in env if e.startswith(b"TMPDIR=")}
    assert tmpdirs and all(d.name.startswith("genai-vllm-") for d in tmpdirs)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 0
    time.sleep(1)
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"vLLM process {pid} outlived `genai serve`"
    assert not [d for d in tmpdirs if d.exists()]  # its IPC sockets and scratch files are gone too
