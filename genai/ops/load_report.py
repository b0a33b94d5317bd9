"""What `genai loadtest` shows and writes: a table per level, loadtest.json and loadtest.png
(latency against throughput, one point per level)."""

from __future__ import annotations

from pathlib import Path

from genai.atomic import atomic_write_json
from genai.textfmt import print_table

COLUMNS = [
    "load",
    "ok",
    "errors",
    "req/s",
    "out tok/s",
    "TTFT ms p50/p90/p99",
    "ITL ms p50/p90/p99",
    "E2E s p50/p90/p99",
]


def _three(spread: dict, scale: float, spec: str) -> str:
    vals = [spread[k] for k in ("p50", "p90", "p99")]
    return "/".join("-" if v is None else format(v * scale, spec) for v in vals)


def print_levels(report: dict, console=None) -> None:
    """The levels as one table (latencies as p50/p90/p99), then any error samples."""
    rows = [
        [
            lv["label"],
            str(lv["completed"]),
            str(lv["errors"]),
            f"{lv['requests_per_s']:.2f}",
            f"{lv['output_tokens_per_s']:.1f}",
            _three(lv["ttft_s"], 1000, ".1f"),
            _three(lv["itl_s"], 1000, ".1f"),
            _three(lv["e2e_s"], 1, ".3f"),
        ]
        for lv in report["levels"]
    ]
    work = report["workload"]
    title = (
        f"{report['model']} at {report['url']}: {work['requests_per_level']} requests a level, "
        f"max_tokens {work['max_tokens']}"
    )
    print_table(COLUMNS, rows, title=title, console=console, right=tuple(COLUMNS[1:]))
    for lv in report["levels"]:
        for sample in lv["error_samples"]:
            (console.print if console else print)(f"{lv['label']}: error: {sample}")


def write_json(report: dict, out: Path) -> Path:
    """OUT/loadtest.json (atomically)."""
    path = out / "loadtest.json"
    atomic_write_json(path, report)
    return path


def plot_levels(report: dict, out: Path) -> Path:
    """OUT/loadtest.png: TTFT and E2E (left), ITL (right) against output tokens/s, a point per level."""
    from genai.plots import BASE_COLOR, EVAL_COLOR, TUNED_COLOR, _figure, _save

    levels = report["levels"]
    xs = [lv["output_tokens_per_s"] for lv in levels]
    fig = _figure(10, 4.2)
    left, right = fig.subplots(1, 2)
    series = (
        (left, "e2e_s", "E2E", TUNED_COLOR, 1),
        (left, "ttft_s", "TTFT", EVAL_COLOR, 1),
        (right, "itl_s", "ITL", BASE_COLOR, 1000),
    )
    for ax, key, name, color, scale in series:
        for stat, style in (("p50", "-o"), ("p99", "--^")):
            ys = [float("nan") if lv[key][stat] is None else lv[key][stat] * scale for lv in levels]
            ax.plot(xs, ys, style, color=color, label=f"{name} {stat}")
    for x, lv in zip(xs, levels, strict=True):  # which load made each point
        if lv["e2e_s"]["p50"] is not None:
            left.annotate(lv["label"], (x, lv["e2e_s"]["p50"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set(xlabel="output tokens/s", ylabel="latency (s)", title="end to end and first token")
    right.set(xlabel="output tokens/s", ylabel="latency (ms)", title="between tokens")
    for ax in (left, right):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"load test: {report['model']} ({report['workload']['mode']} sweep)")
    return _save(fig, out / "loadtest.png")
