"""`genai monitor URL`: the figures read from a real vLLM server's /metrics (served from the
quickstart run, as a user would, with traffic sent through the openai client), the percentile
arithmetic on crafted Prometheus expositions, the live dashboard's frames, and the bad inputs
(unreachable URL, a server that is not vLLM): one clear error, exit 2."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from genai.errors import GenaiError
from genai.ops import monitor as mon
from tests.conftest import ROOT, genai_cli, genai_serving, sigint_default, vllm_pids

KEY = "monitor-key-1"
QS_TEST = ROOT / "recipes" / "data" / "quickstart" / "test.jsonl"

# ---------------------------------------------------------------------------- crafted expositions


def expo(e2e: dict[str, list[float]], gen: dict[str, float], running=1.0, waiting=2.0, kv=(0.25, 0.75)) -> str:
    """A vLLM-style exposition: per model, e2e buckets at le 0.1, 0.5, 1.0, +Inf (cumulative counts),
    generation tokens; two engines' KV-cache gauges of model m1."""
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        f'vllm:num_requests_running{{engine="0",model_name="m1"}} {running}',
        "# TYPE vllm:num_requests_waiting gauge",
        f'vllm:num_requests_waiting{{engine="0",model_name="m1"}} {waiting}',
        "# TYPE vllm:kv_cache_usage_perc gauge",
        *(f'vllm:kv_cache_usage_perc{{engine="{i}",model_name="m1"}} {v}' for i, v in enumerate(kv)),
        "# TYPE vllm:generation_tokens_total counter",
        *(f'vllm:generation_tokens_total{{engine="0",model_name="{m}"}} {v}' for m, v in gen.items()),
        "# TYPE vllm:e2e_request_latency_seconds histogram",
    ]
    for model, counts in e2e.items():
        for le, c in zip(("0.1", "0.5", "1.0", "+Inf"), counts, strict=True):
            lines.append(f'vllm:e2e_request_latency_seconds_bucket{{engine="0",le="{le}",model_name="{model}"}} {c}')
        lines.append(f'vllm:e2e_request_latency_seconds_count{{engine="0",model_name="{model}"}} {counts[-1]}')
        lines.append(f'vllm:e2e_request_latency_seconds_sum{{engine="0",model_name="{model}"}} 1.0')
    return "\n".join(lines) + "\n"


def scrape_of(text: str, at: float) -> mon.Scrape:
    return mon.Scrape(at, mon.parse(text))


INF = float("inf")


@pytest.mark.parametrize(
    "q,bkts,expected",
    [
        (0.5, [(0.1, 10), (0.5, 30), (1.0, 40), (INF, 40)], 0.1 + 0.4 * 10 / 20),  # rank 20 in (0.1, 0.5]
        (0.9, [(0.1, 10), (0.5, 30), (1.0, 40), (INF, 40)], 0.5 + 0.5 * 6 / 10),
        (0.99, [(0.1, 10), (0.5, 30), (1.0, 40), (INF, 40)], 0.5 + 0.5 * 9.6 / 10),
        (0.05, [(0.1, 10), (0.5, 30), (1.0, 40), (INF, 40)], 0.1 * 2 / 10),  # the first bucket starts at 0
        (0.9, [(0.1, 10), (0.5, 30), (1.0, 40), (INF, 50)], 1.0),  # rank 45 in +Inf: the highest finite bound
        (0.99, [(0.1, 0), (0.5, 0), (1.0, 0), (INF, 3)], 1.0),  # everything above the last bound
        (0.5, [(0.1, 10), (0.5, 10), (1.0, 10), (INF, 10)], 0.05),
        (0.5, [(-1.0, 4), (0.5, 4), (INF, 4)], -1.0),  # a first bound <= 0 is returned as is
        (0.5, [(0.1, 0), (1.0, 0), (INF, 0)], None),  # no observations
        (0.5, [(INF, 7)], None),  # only +Inf: nothing to interpolate
        (0.5, [(0.1, 3), (1.0, 7)], None),  # no +Inf bucket
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(q, bkts, expected):
    got = mon.histogram_quantile(q, bkts)
    assert got == (None if expected is None else pytest.approx(expected))


def test_percentiles_rates_and_gauges_from_two_scrapes():
    before = scrape_of(expo({"m1": [10, 10, 10, 10], "m2": [0, 4, 4, 4]}, {"m1": 100, "m2": 50}), at=10.0)
    # m1: 10 new requests, all in (0.5, 1.0]; m2: no traffic.
    after = scrape_of(expo({"m1": [10, 10, 20, 20], "m2": [0, 4, 4, 4]}, {"m1": 300, "m2": 50}), at=12.0)
    rep = mon.report(before, after, "http://h:1/metrics")
    assert rep["models"] == ["m1", "m2"] and rep["window_s"] == 2.0
    m1, m2, total = rep["by_model"]["m1"], rep["by_model"]["m2"], rep["total"]
    # Over the window only the new requests count: their median is mid-bucket, not the old 0.1.
    assert m1["latency_s"]["e2e"] == {
        "window": "interval",
        "count": 10,
        "p50": pytest.approx(0.75),
        "p90": pytest.approx(0.95),
        "p99": pytest.approx(0.995),
    }
    # No traffic for m2: cumulative, and said so.
    assert m2["latency_s"]["e2e"]["window"] == "cumulative" and m2["latency_s"]["e2e"]["count"] == 4
    assert m2["latency_s"]["e2e"]["p50"] == pytest.approx(0.1 + 0.4 * 2 / 4)
    # All models summed: 10 new observations over the window (m2 added none).
    assert total["latency_s"]["e2e"]["count"] == 10 and total["latency_s"]["e2e"]["window"] == "interval"
    assert m1["tokens"]["generation_per_s"] == pytest.approx(100.0) and m2["tokens"]["generation_per_s"] == 0
    assert total["tokens"]["generation"] == 350 and total["tokens"]["generation_per_s"] == pytest.approx(100.0)
    assert total["requests"]["running"] == 1 and total["requests"]["waiting"] == 2
    assert total["kv_cache_usage"] == pytest.approx(0.5)  # mean of the two engines
    assert total["tokens"]["prompt"] is None and total["latency_s"]["ttft"]["p50"] is None  # not exposed


def test_first_scrape_and_a_restarted_server_are_cumulative():
    a = scrape_of(expo({"m1": [10, 20, 30, 30]}, {"m1": 900}), at=0.0)
    first = mon.report(None, a, "u")
    assert first["window_s"] is None and first["total"]["tokens"]["generation_per_s"] is None
    assert first["total"]["latency_s"]["e2e"]["window"] == "cumulative"
    restarted = scrape_of(expo({"m1": [1, 2, 2, 2]}, {"m1": 40}), at=4.0)  # counters went down
    rep = mon.report(a, restarted, "u")["total"]
    assert rep["latency_s"]["e2e"] == {"window": "cumulative", "count": 2, "p50": pytest.approx(0.1),
                                       "p90": pytest.approx(0.42), "p99": pytest.approx(0.492)}  # fmt: skip
    assert rep["tokens"]["generation_per_s"] == pytest.approx(10.0)  # 40 new tokens since the restart, over 4 s


def test_older_vllm_metric_names_are_read():
    text = expo({"m1": [1, 1, 1, 1]}, {"m1": 5}).replace("kv_cache_usage_perc", "gpu_cache_usage_perc")
    assert mon.report(None, scrape_of(text, 0.0), "u")["total"]["kv_cache_usage"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "target,url",
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/metrics"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/metrics"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/metrics"),
        ("http://127.0.0.1:8000/metrics", "http://127.0.0.1:8000/metrics"),
        ("https://example.com/llm/v1", "https://example.com/llm/metrics"),
        ("localhost:8000", "http://localhost:8000/metrics"),
    ],
)
def test_urls_are_normalised(target, url):
    assert mon.metrics_url(target) == url


@pytest.mark.parametrize("target", ["ftp://host:21/x", "runs/quickstart", "http://"])
def test_not_a_url(target, genai_main):
    code, out, err = genai_main("monitor", target, "--once")
    assert code == 2 and "is not" in err and "http://127.0.0.1:8000" in err and out == ""


# ---------------------------------------------------------------------------- a fake HTTP server


class Fake:
    """A loopback HTTP server answering GET /metrics with `pages[0]` (then the next one, the last one
    repeated): a stand-in for vLLM, or for a server that is something else."""

    def __init__(self, pages: list[str], status: int = 200, content_type: str = "text/plain"):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = (fake.pages.pop(0) if len(fake.pages) > 1 else fake.pages[0]).encode()
                fake.paths.append((self.path, self.headers.get("Authorization")))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.pages, self.paths = list(pages), []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def fake():
    servers = []

    def start(*args, **kwargs) -> Fake:
        servers.append(Fake(*args, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_unreachable_url_is_one_clear_error(genai_main):
    from genai.serving.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = genai_main("monitor", url, "--once", "--json", "--interval", "0.1")
    assert code == 2 and out == ""
    assert f"error: monitor: cannot reach {url}/metrics" in err and "is the server running?" in err
    assert "Traceback" not in err and err.count("error:") == 1


@pytest.mark.parametrize(
    "page,status,message",
    [
        ("<!doctype html><html><body>a web app</body></html>", 200, "does not serve Prometheus metrics"),
        ('{"object": "list", "data": []}', 200, "does not serve Prometheus metrics"),
        ("# TYPE http_requests_total counter\nhttp_requests_total 3\n", 200, "serves no vLLM metrics"),
        ("not found", 404, "answered HTTP 404"),
    ],
    ids=["html", "json", "other-prometheus", "404"],
)
def test_a_server_that_is_not_vllm(fake, genai_main, page, status, message):
    srv = fake([page], status=status)
    code, out, err = genai_main("monitor", srv.url + "/v1", "--once", "--json", "--interval", "0.1")
    assert code == 2 and out == "" and message in err and "Traceback" not in err
    assert srv.paths[0][0] == "/metrics"  # .../v1 was normalised to the metrics path


def test_once_json_from_a_fake_vllm(fake, genai_main, monkeypatch):
    srv = fake([expo({"m1": [1, 1, 1, 1]}, {"m1": 10}), expo({"m1": [1, 3, 3, 3]}, {"m1": 30})])
    monkeypatch.setenv("MY_TOKEN", "tok-9")
    code, out, err = genai_main("monitor", srv.url, "--json", "--interval", "0.2", "--api-key-env", "MY_TOKEN")
    assert code == 0, err
    rep = json.loads(out)  # --json alone: one report (it implies --once)
    assert 0.2 <= rep["window_s"] < 5 and rep["total"]["tokens"]["generation"] == 30
    assert rep["total"]["latency_s"]["e2e"]["window"] == "interval" and rep["total"]["latency_s"]["e2e"]["count"] == 2
    assert srv.paths == [("/metrics", "Bearer tok-9")] * 2


def test_bad_interval(genai_main):
    code, _, err = genai_main("monitor", "http://127.0.0.1:1", "--once", "--interval", "0")
    assert code == 2 and "--interval must be more than 0" in err


def test_render_shows_every_figure():
    from rich.console import Console

    a = scrape_of(expo({"m1": [10, 10, 10, 10]}, {"m1": 100}), at=0.0)
    b = scrape_of(expo({"m1": [10, 10, 20, 20]}, {"m1": 300}), at=2.0)
    console = Console(record=True, width=160)
    console.print(mon.render(mon.report(a, b, "http://h:1/metrics"), error="boom"))
    text = console.export_text()
    for needed in ("http://h:1/metrics", "models: m1", "window 2.0 s", "gen tok/s", "KV cache", "50.0%", "100.0"):
        assert needed in text, needed
    e2e = next(line for line in text.splitlines() if " e2e " in line)
    assert "interval" in e2e and "750.0 ms" in e2e and "950.0 ms" in e2e and "995.0 ms" in e2e
    assert "last scrape failed: boom" in text


def test_live_dashboard_frames(fake):
    from rich.console import Console

    pages = [expo({"m1": [0, 0, 0, 0]}, {"m1": 0}), expo({"m1": [0, 0, 5, 5]}, {"m1": 50}), "<html>gone</html>"]
    srv = fake(pages)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    shown = mon.watch(srv.url, interval=0.05, frames=2, console=console)
    assert shown == 2 and len(srv.paths) == 2
    assert "e2e" in buf.getvalue() and "interval" in buf.getvalue()
    # A scrape that fails later is shown in the frame; the dashboard carries on.
    srv.pages = [pages[1], "<html>gone</html>", pages[1].replace(" 50", " 90")]
    buf.seek(0), buf.truncate()
    shown = mon.watch(srv.url, interval=0.05, frames=2, console=console)
    assert shown == 2 and "last scrape failed" in buf.getvalue() and len(srv.paths) == 5


def test_unreachable_fails_before_the_dashboard():
    with pytest.raises(GenaiError, match="cannot reach"):
        mon.watch("http://127.0.0.1:9/metrics", interval=0.05, frames=1)


# ---------------------------------------------------------------------------- a real vLLM server


SERVING: dict = {}  # the module's `genai serve` process and port (the last test kills it)


@pytest.fixture(scope="module")
def served(quickstart_run):
    from genai.serving.server import free_port

    port = free_port()
    with genai_serving(quickstart_run, f"serve.port={port}", env={"GENAI_API_KEY": KEY}) as (proc, _):
        SERVING.update(proc=proc, port=port)
        yield f"http://127.0.0.1:{port}/v1"


def ask(url: str, n: int) -> list:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key=KEY, max_retries=0)
    rows = [json.loads(line) for line in QS_TEST.read_text().splitlines()[:n]]
    return [
        client.chat.completions.create(
            model="quickstart", messages=[{"role": "user", "content": r["instruction"]}], max_tokens=8, temperature=0
        ).usage
        for r in rows
    ]


def monitor_json(url: str, interval: float) -> dict:
    out = genai_cli("monitor", url, "--once", "--json", "--interval", str(interval), timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_counts_match_what_the_clients_were_sent(served):
    before = monitor_json(served, 0.2)["total"]
    usage = ask(served, 6)
    after = monitor_json(served, 0.2)["total"]

    def moved(*keys):
        old, new = before, after
        for k in keys:
            old, new = old[k], new[k]
        return new - (old or 0)

    # Token counters moved by exactly what the server answered in `usage`.
    assert moved("tokens", "generation") == sum(u.completion_tokens for u in usage) > 0
    assert moved("tokens", "prompt") == sum(u.prompt_tokens for u in usage) > 0
    assert moved("requests", "finished") == 6
    # No traffic in either window: the histograms are read since the start, and say so.
    assert moved("latency_s", "e2e", "count") == 6
    for key in ("ttft", "itl", "e2e"):
        row = after["latency_s"][key]
        assert row["window"] == before["latency_s"][key]["window"] == "cumulative", (key, row)
        assert 0 < row["p50"] <= row["p90"] <= row["p99"], (key, row)
    assert after["tokens"]["generation_per_s"] == 0  # nothing was sent during its window


def test_window_under_traffic(served):
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            ask(served, 2)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        rep = monitor_json(served.removesuffix("/v1"), 3.0)
    finally:
        stop.set()
        t.join(60)
    total = rep["total"]
    assert rep["models"] and rep["by_model"][rep["models"][0]] == total  # one model: its row is the total
    assert total["tokens"]["generation_per_s"] > 0 and total["tokens"]["prompt_per_s"] > 0
    assert total["requests"]["finished_in_window"] > 0
    assert isinstance(total["requests"]["running"], float) and total["requests"]["running"] >= 0
    assert isinstance(total["requests"]["waiting"], float) and total["requests"]["waiting"] >= 0
    assert 0 <= total["kv_cache_usage"] <= 1
    for key in ("ttft", "itl", "e2e"):
        row = total["latency_s"][key]
        assert row["window"] == "interval" and row["count"] > 0, (key, row)
        assert 0 < row["p50"] <= row["p90"] <= row["p99"], (key, row)
    assert total["latency_s"]["ttft"]["p50"] <= total["latency_s"]["e2e"]["p99"]


def test_live_dashboard_until_ctrl_c(served):
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "monitor", served + "/", "--interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},  # off a terminal rich assumes 80 columns
        preexec_fn=sigint_default,
    )
    time.sleep(2.0)
    ask(served, 2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "gen tok/s" in out and "e2e" in out and "/metrics" in out


def test_a_killed_genai_serve_takes_its_vllm_server_with_it(served):
    """Runs last in this module. SIGKILL gives `genai serve` no chance to stop vLLM (which runs in its own
    session, out of reach of signals to genai's group): the kernel's parent-death signal must."""
    vllm = vllm_pids(SERVING["port"])
    assert vllm, "no vLLM server found for this module's port"
    SERVING["proc"].kill()
    SERVING["proc"].wait(timeout=30)
    deadline = time.time() + 60
    while time.time() < deadline and any(map(alive, vllm)):
        time.sleep(0.5)
    assert not [pid for pid in vllm if alive(pid)], "vLLM outlived a SIGKILLed genai serve"


def alive(pid: str) -> bool:
    """Running (a zombie left for a PID 1 that does not reap is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
