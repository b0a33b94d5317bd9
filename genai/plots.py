"""Plots of a run: loss by step, and base vs fine-tuned eval scores (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import os
from pathlib import Path

from genai.errors import MissingExtraError
from genai.runs import Run
from genai.textfmt import is_number

BASE_COLOR, TUNED_COLOR, EVAL_COLOR = "#9e9e9e", "#1f77b4", "#d62728"


def _figure(width: float, height: float):
    try:
        import matplotlib  # noqa: F401  (explicit, so a missing package fails here)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError("matplotlib", "tracking", "Plots") from exc
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)  # Agg on this figure only: no pyplot state, no global backend switch
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder, so os.replace is atomic
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _series(lines: list[dict], key: str) -> tuple[list, list]:
    points = {}
    for m in lines:
        if is_number(m.get(key)) and is_number(m.get("step")):
            points[m["step"]] = m[key]  # a resumed run logs some steps twice: keep the latest
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def plot_loss(run: Path) -> Path | None:
    """RUN/plots/loss.png: train and eval loss by step (None when nothing was logged)."""
    run = Path(run)
    lines = Run(run).metrics()
    train, ev = _series(lines, "loss"), _series(lines, "eval_loss")
    if not train[0] and not ev[0]:
        return None
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    if train[0]:
        ax.plot(*train, color=TUNED_COLOR, marker="." if len(train[0]) <= 60 else None, label="train loss")
    if ev[0]:
        ax.plot(*ev, color=EVAL_COLOR, marker="o", label="eval loss")
    ax.set(xlabel="step", ylabel="loss", title=f"loss: {run.parent.name}/{run.name}")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, run / "plots" / "loss.png")


# The training methods' own signals (genai.training.objectives, grpo), plotted by step beside the loss.
SIGNALS = (
    "reward",
    "rewards/margins",
    "rewards/accuracy",
    "rewards/chosen",
    "rewards/rejected",
    "log_odds_ratio",
    "kl",
    "completion_length",
)


def plot_signals(run: Path) -> Path | None:
    """RUN/plots/signals.png: the method's own signals by step, train and held out (None for SFT runs)."""
    run = Path(run)
    lines = Run(run).metrics()
    shown = [k for k in SIGNALS if _series(lines, k)[0] or _series(lines, f"eval_{k}")[0]]
    if not shown:
        return None
    fig = _figure(3.2 * min(len(shown), 4), 2.6 * ((len(shown) + 3) // 4))
    for i, key in enumerate(shown):
        ax = fig.add_subplot((len(shown) + 3) // 4, min(len(shown), 4), i + 1)
        train, held = _series(lines, key), _series(lines, f"eval_{key}")
        if train[0]:
            ax.plot(*train, color=TUNED_COLOR, label="train")
        if held[0]:
            ax.plot(*held, color=EVAL_COLOR, marker="o", label="eval")
        ax.set(xlabel="step", title=key)
        ax.grid(alpha=0.3)
    fig.axes[0].legend()
    fig.suptitle(f"{Run(run).manifest().get('method', 'method')} signals: {run.parent.name}/{run.name}")
    return _save(fig, run / "plots" / "signals.png")


def _other_scale(row: dict) -> bool:
    """Perplexity-like rows (values outside [0, 1]) would flatten accuracy bars, so they get their own axis."""
    vals = [v for v in (row.get("base"), row.get("tuned")) if is_number(v)]
    return "perplexity" in str(row.get("metric", "")) or any(v > 1 or v < 0 for v in vals)


def _bars(ax, group: list[dict], scores: bool) -> None:
    xs, w = range(len(group)), 0.38
    for off, key, label, color in ((-w / 2, "base", "base", BASE_COLOR), (w / 2, "tuned", "fine-tuned", TUNED_COLOR)):
        vals = [r.get(key) if is_number(r.get(key)) else float("nan") for r in group]
        bars = ax.bar([x + off for x in xs], vals, w, label=label, color=color)
        ax.bar_label(bars, [format(v, ",.0f" if abs(v) >= 1000 else ".3g") if v == v else "" for v in vals], fontsize=8)
        for x, v in zip(xs, vals, strict=False):  # say a baseline is missing rather than leave a silent gap
            if v != v:
                ax.text(x + off, 0.01, "n/a", transform=ax.get_xaxis_transform(), ha="center", fontsize=7, color="#666")
    ax.set_xlim(-0.6, len(group) - 0.4)  # NaN (missing base) bars do not count in autoscaling
    rotate = len(group) > 3
    ax.set_xticks(
        list(xs),
        [f"{r.get('task')}\n{r.get('metric')}" for r in group],
        fontsize=8,
        rotation=20 if rotate else 0,
        ha="right" if rotate else "center",
    )
    if scores:
        ax.set_ylim(0, 1.12)  # headroom for the value labels
        ax.set(ylabel="score (higher is better)", title="scores")
    else:
        vals = [v for r in group for v in (r.get("base"), r.get("tuned")) if is_number(v)]
        if min(vals) > 0 and max(vals) / min(vals) >= 100:
            ax.set_yscale("log")
        ax.margins(y=0.15)
        ax.set(ylabel="value", title="other scales\n(perplexity: lower is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def plot_eval(run: Path) -> Path | None:
    """RUN/plots/eval.png: base vs fine-tuned bars of the first eval table (None without one)."""
    run = Path(run)
    tables = Run(run).eval_tables()
    backend, table = tables[0] if tables else (None, {})
    rows = [
        r
        for r in table.get("rows") or []
        if isinstance(r, dict) and (is_number(r.get("base")) or is_number(r.get("tuned")))
    ]
    if not rows:
        return None
    groups = [g for g in ([r for r in rows if not _other_scale(r)], [r for r in rows if _other_scale(r)]) if g]
    fig = _figure(max(6.5, 1.4 * len(rows) + 2.5), 4.8)
    axes = fig.subplots(1, len(groups), squeeze=False, width_ratios=[len(g) + 1 for g in groups])[0]
    for ax, group in zip(axes, groups, strict=False):
        _bars(ax, group, scores=not _other_scale(group[0]))
    fig.suptitle(f"eval ({backend}): base vs fine-tuned")
    return _save(fig, run / "plots" / "eval.png")


def make_plots(run: Path) -> list[Path]:
    """Every plot the run has data for."""
    return [p for p in (plot_loss(run), plot_signals(run), plot_eval(run)) if p is not None]
