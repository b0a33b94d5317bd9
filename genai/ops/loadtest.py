"""`genai loadtest TARGET`: load an OpenAI-compatible server and report its latency and throughput.

TARGET is a URL (prompts from --prompts FILE.jsonl) or anything `genai serve` takes (a recipe, a run
folder): then it is served for the test, prompts come from the recipe's eval data, and the server is
stopped at the end. Levels are a concurrency sweep (each level sends --requests requests with at most
N in flight) or Poisson arrivals at one or more rates. Every level reports time to first token,
inter-token and end-to-end latency (p50/p90/p99), output tokens/s, requests/s and errors; --slo
thresholds are checked at every level (exit 3 when one is violated).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from genai.errors import GenaiError, require
from genai.ops.load_client import (
    Prompt,
    level_stats,
    pick_model,
    probe,
    run_level,
    send,
    session_for,
)
from genai.ops.load_slo import Term, check_slo, describe_violation, parse_slo

DEFAULT_CONCURRENCY = "1,4,8"
KEY_FALLBACK = "OPENAI_API_KEY"  # read when the default $GENAI_API_KEY is unset, as `genai chat` does


@dataclass
class LoadOptions:
    """The load test's settings (the CLI's options)."""

    prompts: Path | None = None
    concurrency: str | None = None
    rate: str | None = None
    requests: int = 32
    max_tokens: int = 128
    model: str | None = None
    api_key_env: str = "GENAI_API_KEY"
    slo: str | None = None
    out: Path | None = None
    seed: int = 0
    ignore_eos: bool = False
    latest: bool = False
    timeout_s: float = 300.0


@dataclass
class Endpoint:
    """Where the load goes: the OpenAI base URL, its key, and where the key came from (for errors)."""

    url: str
    key: str | None
    key_source: str
    model: str | None = None  # known when genai serves the target itself


def is_url(target: str) -> bool:
    """Whether TARGET is an endpoint rather than something to serve."""
    return target.startswith(("http://", "https://"))


def base_url_of(target: str) -> str:
    """The OpenAI base URL: a bare http://host:port gets /v1, a URL with a path is taken as it is."""
    url = target.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def _numbers(option: str, text: str, kind: type) -> list:
    """A comma-separated list of positive numbers, or an error naming the option."""
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        what = "whole numbers" if kind is int else "numbers (requests per second)"
        raise GenaiError(f"{option} '{text}': expected positive {what} separated by commas, e.g. 1,4,8")
    return values


def plan_levels(opts: LoadOptions) -> list[dict]:
    """The load levels: {label, concurrency, rate} each, from --concurrency or --rate (not both)."""
    if opts.concurrency is not None and opts.rate is not None:
        raise GenaiError(
            "--concurrency and --rate: choose one", hint="a concurrency sweep (1,4,8), or Poisson arrivals at rates"
        )
    if opts.requests < 1 or opts.max_tokens < 1:
        raise GenaiError("--requests and --max-tokens must be at least 1")
    if opts.rate is not None:
        return [{"label": f"r={r:g}/s", "concurrency": None, "rate": r} for r in _numbers("--rate", opts.rate, float)]
    levels = _numbers("--concurrency", opts.concurrency or DEFAULT_CONCURRENCY, int)
    return [{"label": f"c={c}", "concurrency": c, "rate": None} for c in levels]


def read_prompt_file(path: Path) -> list[Prompt]:
    """--prompts: JSONL, {"prompt": text} (sent to /completions) or {"messages": [...]} (to /chat/completions)
    per line, as `genai generate` reads them; a bad line is an error naming file:line."""
    from genai.data.sources import read_jsonl

    if not path.is_file():
        raise GenaiError(f"--prompts {path}: file not found")
    prompts = []
    for rec in read_jsonl(path):
        row = rec.data
        messages = row.get("messages")
        if messages is not None:
            if not (isinstance(messages, list) and messages and all(_is_message(m) for m in messages)):
                raise GenaiError(f"{rec.origin}: 'messages' must be a non-empty list of {{role, content}} objects")
            prompts.append(Prompt(messages=messages))
        elif isinstance(row.get("prompt"), str) and row["prompt"].strip():
            prompts.append(Prompt(prompt=row["prompt"]))
        else:
            raise GenaiError(f"{rec.origin}: each line needs 'prompt' (text) or 'messages' (a chat)")
    if not prompts:
        raise GenaiError(f"--prompts {path}: no prompts in the file")
    return prompts


def _is_message(m) -> bool:
    return isinstance(m, dict) and isinstance(m.get("role"), str) and ("content" in m or "tool_calls" in m)


def recipe_prompts(recipe) -> tuple[list[Prompt], str]:
    """Prompts from the recipe's eval data (data.eval, else the held-out share of data.train): each
    conversation up to its last answer, or a plain example's prompt."""
    from genai.data.prepare import load_examples, split_examples

    examples, source = load_examples(recipe.data.eval), "data.eval"
    if not examples:
        train, held = split_examples(recipe)
        examples, source = held or train, "data.train (held-out share)" if held else "data.train"
    prompts = []
    for ex in examples:
        if ex.messages:
            last = max((i for i, m in enumerate(ex.messages) if m["role"] == "assistant"), default=0)
            if last > 0:
                prompts.append(Prompt(messages=ex.messages[:last]))
        elif ex.prompt:
            prompts.append(Prompt(prompt=ex.prompt))
    if not prompts:
        raise GenaiError(f"{source}: no prompts in the recipe's data", hint="give --prompts FILE.jsonl")
    return prompts, f"{source} of recipe {recipe.name}"


def endpoint_key(env_name: str) -> tuple[str | None, str]:
    """The API key from $env_name (for the default name, $OPENAI_API_KEY too), and where it came from."""
    key = os.environ.get(env_name) or None
    if key is None and env_name == LoadOptions.api_key_env:
        fallback = os.environ.get(KEY_FALLBACK) or None
        if fallback:
            return fallback, f"${KEY_FALLBACK}"
    state = "set" if key else "unset"
    return key, f"${env_name} ({state}; --api-key-env names another variable)"


def run_loadtest(target: str, overrides: list[str], opts: LoadOptions) -> dict:
    """Validate everything first (levels, SLO, prompts, the endpoint), then load each level; print the
    table, write loadtest.json and loadtest.png under --out, and return the report."""
    levels = plan_levels(opts)
    terms = parse_slo(opts.slo)
    if is_url(target):
        if overrides:
            raise GenaiError(f"{overrides[0]}: overrides go with a recipe or run target, not a URL")
        if opts.prompts is None:
            raise GenaiError(f"{target}: a URL target needs --prompts FILE.jsonl", hint='{"prompt": "..."} a line')
        prompts, source = read_prompt_file(opts.prompts), str(opts.prompts)
        key, key_source = endpoint_key(opts.api_key_env)
        return measure(Endpoint(base_url_of(target), key, key_source), target, (prompts, source), levels, terms, opts)
    return _serve_and_measure(target, overrides, levels, terms, opts)


def _serve_and_measure(target: str, overrides: list[str], levels: list[dict], terms: list[Term], opts) -> dict:
    """A recipe or run target: its prompts first (a bad file fails before vLLM starts), then serve it,
    load it and stop it. Results go to RUN/loadtest unless --out says otherwise."""
    from genai.serving.artifact import resolve
    from genai.serving.serve import start_server
    from genai.serving.server import api_key

    tgt, _, recipe = resolve(target, overrides, latest=opts.latest)
    if opts.prompts is not None:
        prompts = (read_prompt_file(opts.prompts), str(opts.prompts))
    elif recipe is not None:
        prompts = recipe_prompts(recipe)
    else:
        raise GenaiError(f"{target}: a model folder has no recipe data to take prompts from", hint="give --prompts")
    if opts.out is None and tgt.run_dir is not None:
        opts = replace(opts, out=tgt.run_dir / "loadtest")
    # Synthetic load is not traffic: off unless an override turns capture on for this test.
    server = start_server(target, ["serve.capture.enabled=false", *overrides], latest=opts.latest)
    try:
        key = api_key(server.serve)
        endpoint = Endpoint(server.base_url, key, "serve.api_key_env", model=server.target.default_name)
        return measure(endpoint, target, prompts, levels, terms, opts)
    finally:
        server.stop()


def measure(endpoint: Endpoint, target: str, prompts: tuple, levels: list[dict], terms: list[Term], opts) -> dict:
    """Probe, warm up, load every level; the report (also printed and written)."""
    if opts.out is not None:  # before the load, not after it
        require("matplotlib", "tracking", "The load test's plot (loadtest.png)")
    models = probe(endpoint.url, endpoint.key, endpoint.key_source)
    model = pick_model(models, opts.model or endpoint.model, endpoint.url)
    items, source = prompts
    started = datetime.now(UTC).isoformat(timespec="seconds")
    results = asyncio.run(_sweep(endpoint, model, items, levels, opts))
    report = {
        "target": target,
        "url": endpoint.url,
        "model": model,
        "started": started,
        "workload": {
            "mode": "rate" if levels[0]["rate"] else "concurrency",
            "requests_per_level": opts.requests,
            "max_tokens": opts.max_tokens,
            "ignore_eos": opts.ignore_eos,
            "temperature": 0,
            "seed": opts.seed,
            "prompts": source,
            "prompt_count": len(items),
            "warmup_requests": warmup_count(levels, opts),
        },
        "levels": [{**lv, **stats} for lv, stats in zip(levels, results, strict=True)],
    }
    report["slo"] = check_slo(terms, report["levels"])
    _show_and_write(report, opts.out)
    return report


def warmup_count(levels: list[dict], opts: LoadOptions) -> int:
    """Warm-up requests, sent at once before the first level and not counted: as many as the highest
    concurrency (an engine's first batch of a size can be slow: vLLM on CPU prepares it), one for rates."""
    return min(max(lv["concurrency"] or 1 for lv in levels), opts.requests)


async def _sweep(endpoint: Endpoint, model: str, items: list[Prompt], levels: list[dict], opts) -> list[dict]:
    """The warm-up (a cold engine's first answers are not load figures), then each level in turn."""
    console = Console(stderr=True)
    work = [items[i % len(items)] for i in range(opts.requests)]
    bodies = [(p.body(model, opts.max_tokens, opts.ignore_eos), p.path) for p in work]
    out = []
    async with session_for(endpoint.key, opts.timeout_s) as session:
        warm = await asyncio.gather(*(send(session, endpoint.url, *b) for b in bodies[: warmup_count(levels, opts)]))
        failed = [o.error for o in warm if o.error is not None]
        if failed:
            raise GenaiError(
                f"{endpoint.url}: the warm-up request to {model} failed: {failed[0]}",
                hint="check the prompts (chat prompts need a model with a chat template) and --model",
            )
        for level in levels:
            done = []
            with console.status(f"{level['label']}: 0/{len(bodies)} requests") as status:

                def tick(outcome, status=status, done=done, label=level["label"]):
                    done.append(outcome)
                    status.update(f"{label}: {len(done)}/{len(bodies)} requests")

                outcomes, secs = await run_level(
                    session,
                    endpoint.url,
                    bodies,
                    concurrency=level["concurrency"],
                    rate=level["rate"],
                    seed=opts.seed,
                    on_done=tick,
                )
            out.append(level_stats(outcomes, secs))
    return out


def _show_and_write(report: dict, out: Path | None) -> None:
    """The table on stdout; the files under `out`; the SLO verdict."""
    from genai.ops.load_report import plot_levels, print_levels, write_json

    print_levels(report)
    if out is not None:
        report["files"] = {"json": str(out / "loadtest.json"), "png": str(out / "loadtest.png")}
        write_json(report, out)
        print(f"wrote {report['files']['json']} and {plot_levels(report, out)}")
    slo = report["slo"]
    if slo is not None:
        if slo["passed"]:
            print(f"SLO met at every level: {', '.join(slo['terms'])}")
        else:
            print("SLO violated:")
            for v in slo["violations"]:
                print(f"  {describe_violation(v)}")
