"""`genai monitor URL`: live metrics of a running vLLM server, read from its Prometheus /metrics.

Two scrapes make a window: token rates are counter deltas over the time between them, and latency
percentiles come from the histograms' bucket deltas, interpolated within a bucket as Prometheus's
histogram_quantile does. A histogram with no new observations in the window is reported over
everything since the server started, and the output says which ("interval" or "cumulative").
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from genai.errors import GenaiError, require

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
# The names vLLM has used for each figure (newest first); the first one the server exposes wins.
RUNNING = ("vllm:num_requests_running",)
WAITING = ("vllm:num_requests_waiting",)
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
FINISHED = ("vllm:request_success_total",)
PROMPT_TOKENS = ("vllm:prompt_tokens_total",)
GENERATION_TOKENS = ("vllm:generation_tokens_total",)
HISTOGRAMS = {
    "ttft": ("vllm:time_to_first_token_seconds",),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "e2e": ("vllm:e2e_request_latency_seconds",),
}
HOST_PORT = re.compile(r"^[\w.-]+:\d+(/.*)?$")
URL_HINT = "give the server's URL, e.g. http://127.0.0.1:8000 (what `genai serve` prints)"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scrape:
    """One read of /metrics: when (monotonic seconds) and every sample, (name, labels) -> value."""

    at: float
    samples: dict[tuple[str, Labels], float]

    def series(self, names: tuple[str, ...], model: str | None = None) -> list[tuple[dict, float]]:
        """(labels, value) of the first of `names` the server exposes, of one model or all."""
        for name in names:
            found = [(dict(lab), v) for (n, lab), v in self.samples.items() if n == name]
            if found:
                return [(lab, v) for lab, v in found if model is None or lab.get("model_name") == model]
        return []

    def models(self) -> list[str]:
        """The model_name label values of vLLM's samples."""
        return sorted({dict(lab)["model_name"] for _, lab in self.samples if "model_name" in dict(lab)})


def metrics_url(target: str) -> str:
    """http(s)://host:port/metrics from the server's URL given as host:port, its root, .../v1 or .../metrics."""
    text = target.strip()
    if "://" not in text:
        if not HOST_PORT.match(text):
            raise GenaiError(f"monitor: '{target}' is not a server URL", hint=URL_HINT)
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GenaiError(f"monitor: '{target}' is not an http(s) URL", hint=URL_HINT)
    path = parts.path.rstrip("/")
    for tail in ("/metrics", "/v1"):
        path = path.removesuffix(tail)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + "/metrics", "", ""))


def fetch(url: str, api_key: str | None = None, timeout: float = 10.0) -> str:
    """The body of GET url; an unreachable server or an HTTP error is one clear GenaiError."""
    headers = {"Accept": "text/plain"}
    if api_key:  # vLLM's /metrics is not behind the key, but a proxy in front of it may be
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            return resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        raise GenaiError(f"monitor: {url} answered HTTP {exc.code} {exc.reason}", hint=URL_HINT) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise GenaiError(f"monitor: cannot reach {url} ({reason})", hint="is the server running? " + URL_HINT) from None


def parse(text: str, url: str = "/metrics") -> dict[tuple[str, Labels], float]:
    """Every sample of a Prometheus text exposition, parsed with prometheus_client; it must hold vLLM's."""
    parser = require("prometheus_client.parser", "ops", "genai monitor")
    samples: dict[tuple[str, Labels], float] = {}
    try:
        for family in parser.text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise GenaiError(f"monitor: {url} does not serve Prometheus metrics ({exc})", hint=URL_HINT) from None
    if not any(name.startswith("vllm:") for name, _ in samples):
        raise GenaiError(
            f"monitor: {url} serves no vLLM metrics (no vllm:* samples)",
            hint="point it at a vLLM server (genai serve); other servers' metrics are not read",
        )
    return samples


def scrape(url: str, api_key: str | None = None) -> Scrape:
    """Read and parse the server's /metrics now."""
    return Scrape(time.monotonic(), parse(fetch(url, api_key), url))


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative (upper bound, count) buckets, +Inf last, interpolated linearly
    within its bucket as Prometheus does; None without observations. A rank in the +Inf bucket gives
    the highest finite bound (nothing is known above it); the first bucket starts at 0."""
    if len(buckets) < 2 or buckets[-1][0] != float("inf") or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    b = next((i for i, (_, count) in enumerate(buckets[:-1]) if count >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    end, count = buckets[b]
    if b == 0 and end <= 0:
        return end
    start, below = buckets[b - 1] if b > 0 else (0.0, 0.0)
    if count - below <= 0:
        return end
    return start + (end - start) * (rank - below) / (count - below)


def buckets(scrape: Scrape, names: tuple[str, ...], model: str | None) -> dict[float, float]:
    """A histogram's cumulative bucket counts by upper bound, summed over engines (and models)."""
    out: dict[float, float] = {}
    for labels, value in scrape.series(tuple(n + "_bucket" for n in names), model):
        le = float(labels["le"])
        out[le] = out.get(le, 0.0) + value
    return out


def latency(prev: Scrape | None, cur: Scrape, names: tuple[str, ...], model: str | None) -> dict:
    """Percentiles of one histogram: over the window when it saw observations, else since the start."""
    now = buckets(cur, names, model)
    before = buckets(prev, names, model) if prev is not None else {}
    delta = {le: now[le] - before.get(le, 0.0) for le in now}
    reset = any(v < 0 for v in delta.values()) or bool(set(before) - set(now))  # a restarted server counts anew
    window = "interval" if prev is not None and not reset and delta.get(float("inf"), 0) > 0 else "cumulative"
    chosen = sorted((delta if window == "interval" else now).items())
    row = {"window": window, "count": int(chosen[-1][1]) if chosen else 0}
    return row | {k: histogram_quantile(q, chosen) for k, q in QUANTILES.items()}


def _total(scrape: Scrape, names: tuple[str, ...], model: str | None) -> float | None:
    values = [v for _, v in scrape.series(names, model)]
    return sum(values) if values else None


def _rate(prev: Scrape | None, cur: Scrape, names: tuple[str, ...], model: str | None) -> float | None:
    """Counter increase per second over the window (a counter that went down restarted from 0)."""
    now = _total(cur, names, model)
    if prev is None or now is None or cur.at <= prev.at:
        return None
    before = _total(prev, names, model) or 0.0
    return (now - before if now >= before else now) / (cur.at - prev.at)


def summary(prev: Scrape | None, cur: Scrape, model: str | None = None) -> dict:
    """The dashboard's figures for one model (None: all models summed)."""
    kv = [v for _, v in cur.series(KV_CACHE, model)]
    finished = _total(cur, FINISHED, model)
    finished_before = _total(prev, FINISHED, model) if prev is not None else None
    return {
        "requests": {
            "running": _total(cur, RUNNING, model),
            "waiting": _total(cur, WAITING, model),
            "finished": finished,
            "finished_in_window": None if finished is None or finished_before is None else finished - finished_before,
        },
        "kv_cache_usage": sum(kv) / len(kv) if kv else None,  # a fraction, averaged over engines
        "tokens": {
            "prompt": _total(cur, PROMPT_TOKENS, model),
            "generation": _total(cur, GENERATION_TOKENS, model),
            "prompt_per_s": _rate(prev, cur, PROMPT_TOKENS, model),
            "generation_per_s": _rate(prev, cur, GENERATION_TOKENS, model),
        },
        "latency_s": {key: latency(prev, cur, names, model) for key, names in HISTOGRAMS.items()},
    }


def report(prev: Scrape | None, cur: Scrape, url: str) -> dict:
    """Everything `genai monitor --json` prints: all models summed, then each model."""
    models = cur.models()
    return {
        "url": url,
        "window_s": None if prev is None else round(cur.at - prev.at, 3),
        "models": models,
        "total": summary(prev, cur),
        "by_model": {m: summary(prev, cur, m) for m in models},
    }


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.1f} ms"


def render(rep: dict, error: str | None = None):
    """One frame of the dashboard: a header, load and throughput, then latency percentiles."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    window = "first scrape" if rep["window_s"] is None else f"window {rep['window_s']:.1f} s"
    head = Text(f"{rep['url']}  models: {', '.join(rep['models']) or '-'}  ({window})", style="bold")
    load = Table(title="load and throughput", title_justify="left")
    latency_table = Table(title="latency (percentiles from the histograms)", title_justify="left")
    load.add_column("model")
    for col in ("running", "waiting", "finished", "KV cache", "prompt tok/s", "gen tok/s", "gen tokens"):
        load.add_column(col, justify="right")
    for col in ("model", "metric", "window", "requests", *QUANTILES):
        latency_table.add_column(col, justify="left" if col in ("model", "metric", "window") else "right")
    rows = [("all", rep["total"])] + (list(rep["by_model"].items()) if len(rep["by_model"]) > 1 else [])
    for name, s in rows:
        req, tok = s["requests"], s["tokens"]
        load.add_row(
            name, _num(req["running"]), _num(req["waiting"]), _num(req["finished"]),
            _num(None if s["kv_cache_usage"] is None else s["kv_cache_usage"] * 100, "{:.1f}%"),
            _num(tok["prompt_per_s"], "{:,.1f}"), _num(tok["generation_per_s"], "{:,.1f}"), _num(tok["generation"]),
        )  # fmt: skip
        for metric, row in s["latency_s"].items():
            cells = [_ms(row[k]) for k in QUANTILES]
            latency_table.add_row(name, metric, row["window"], str(row["count"]), *cells)
    parts = [head, load, latency_table]
    if error:
        parts.append(Text(f"last scrape failed: {error} (showing the previous one)", style="red"))
    return Group(*parts)


def watch(url: str, *, interval: float, api_key: str | None = None, frames: int | None = None, console=None) -> int:
    """The live dashboard: a new frame every `interval` s until Ctrl-C (or `frames` frames); the
    number of frames shown. A server that stops answering is reported in the frame, not fatal."""
    from rich.console import Console
    from rich.live import Live

    console = console or Console()
    prev = scrape(url, api_key)  # an unreachable server fails here: exit 2
    last, shown = report(None, prev, url), 0
    try:
        with Live(render(last), console=console, auto_refresh=False) as live:
            shown = 1
            while frames is None or shown < frames:
                time.sleep(interval)
                try:
                    cur = scrape(url, api_key)
                except GenaiError as exc:
                    live.update(render(last, error=exc.message), refresh=True)
                    continue
                last = report(prev, cur, url)
                live.update(render(last), refresh=True)
                prev, shown = cur, shown + 1
    except KeyboardInterrupt:  # Ctrl-C is how the dashboard ends: no traceback, exit 0
        pass
    return shown


def once(url: str, *, interval: float, api_key: str | None = None) -> dict:
    """Two scrapes `interval` s apart: the report of that window."""
    first = scrape(url, api_key)
    time.sleep(interval)
    return report(first, scrape(url, api_key), url)


def monitor_command(
    target: str, *, once_only: bool, as_json: bool, interval: float, api_key_env: str | None = "GENAI_API_KEY"
) -> None:
    """`genai monitor URL`: the live dashboard, or (--once / --json) one report of a window."""
    if not interval > 0:
        raise GenaiError(f"monitor: --interval must be more than 0 seconds, got {interval}")
    url = metrics_url(target)
    key = os.environ.get(api_key_env) if api_key_env else None
    if as_json or once_only:
        rep = once(url, interval=interval, api_key=key)
        if as_json:
            print(json.dumps(rep, indent=2))
        else:
            from rich.console import Console

            Console().print(render(rep))
        return
    watch(url, interval=interval, api_key=key)
