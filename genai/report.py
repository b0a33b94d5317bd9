"""Human-facing summary of a finished run: loss/eval plots, a model card, one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import json
import os
import shlex
from pathlib import Path

import yaml

from genai import __version__
from genai.errors import GenaiError, MissingExtraError
from genai.runs import RECIPE_FILE, atomic_write_text, read_manifest

BACKENDS = ("hf", "vllm", "endpoint")  # eval table preference order
BASE_COLOR, TUNED_COLOR, EVAL_COLOR = "#9e9e9e", "#1f77b4", "#d62728"
COLUMNS = ["task", "metric", "base", "fine-tuned", "delta", "stderr"]


def _isnum(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _num(x, fmt: str = ".4f") -> str:
    return format(x, fmt) if _isnum(x) else "-"


def _loads(text: str):
    try:
        return json.loads(text)
    except ValueError:  # a torn last line (crash mid-write) is skipped, not fatal
        return None


def load_metrics(run: Path) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [obj for obj in map(_loads, lines) if isinstance(obj, dict)]


def eval_tables(run: Path) -> list[tuple[str, dict]]:
    """(backend, table) for every eval/<backend>/table.json: hf, vllm, endpoint first, then any others."""
    found = {p.parent.name: p for p in (Path(run) / "eval").glob("*/table.json")}
    order = [b for b in BACKENDS if b in found] + sorted(set(found) - set(BACKENDS))
    tables = [(b, _loads(found[b].read_text(encoding="utf-8"))) for b in order]
    return [(b, t) for b, t in tables if isinstance(t, dict)]


def latest_eval_table(run: Path) -> dict | None:
    return next((t for _, t in eval_tables(run)), None)


def _recipe(run: Path) -> dict:
    path = run / RECIPE_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    except yaml.YAMLError:
        data = None
    return data if isinstance(data, dict) else {}


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
        if _isnum(m.get(key)) and _isnum(m.get("step")):
            points[m["step"]] = m[key]  # a resumed run logs some steps twice: keep the latest
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def plot_loss(run: Path) -> Path | None:
    run = Path(run)
    lines = load_metrics(run)
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


def _other_scale(row: dict) -> bool:
    """Perplexity-like rows (values outside [0, 1]) would flatten accuracy bars, so they get their own axis."""
    vals = [v for v in (row.get("base"), row.get("tuned")) if _isnum(v)]
    return "perplexity" in str(row.get("metric", "")) or any(v > 1 or v < 0 for v in vals)


def _bars(ax, group: list[dict], scores: bool) -> None:
    xs, w = range(len(group)), 0.38
    for off, key, label, color in ((-w / 2, "base", "base", BASE_COLOR), (w / 2, "tuned", "fine-tuned", TUNED_COLOR)):
        vals = [r.get(key) if _isnum(r.get(key)) else float("nan") for r in group]
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
        vals = [v for r in group for v in (r.get("base"), r.get("tuned")) if _isnum(v)]
        if min(vals) > 0 and max(vals) / min(vals) >= 100:
            ax.set_yscale("log")
        ax.margins(y=0.15)
        ax.set(ylabel="value", title="other scales\n(perplexity: lower is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def plot_eval(run: Path) -> Path | None:
    run = Path(run)
    tables = eval_tables(run)
    backend, table = tables[0] if tables else (None, {})
    rows = [
        r for r in table.get("rows") or [] if isinstance(r, dict) and (_isnum(r.get("base")) or _isnum(r.get("tuned")))
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
    return [p for p in (plot_loss(run), plot_eval(run)) if p is not None]


def _facts(run: Path) -> dict:
    m, r = read_manifest(run), _recipe(run)
    art, bm = m.get("artifact") or {}, m.get("base_model") or {}
    kind = art.get("kind") or ("adapter" if (r.get("lora") or {}).get("enabled", True) else "model")
    loss = (m.get("metrics") or {}).get("train_loss")
    if not _isnum(loss):  # older manifests: fall back to the last logged loss
        loss = next((x["loss"] for x in reversed(load_metrics(run)) if _isnum(x.get("loss"))), None)
    return {
        "m": m,
        "r": r,
        "kind": kind,
        "path": art.get("path") or kind,
        "merged": art.get("merged"),
        "loss": loss,
        "base": bm.get("name_or_path") or (r.get("model") or {}).get("name_or_path") or "unknown",
        "revision": bm.get("revision"),
        "name": m.get("recipe") or r.get("name") or "run",
        "met": m.get("metrics") or {},
        "tables": eval_tables(run),
    }


def _source(s: dict) -> str:
    where = (
        f"`{s['path']}`" if s.get("path") else f"hub `{s.get('hub')}`" + (f" ({s['name']})" if s.get("name") else "")
    )
    extra = [
        f"format {s.get('format', '?')}",
        f"split {s.get('split')}" if s.get("hub") and s.get("split") else "",
        f"limit {s['limit']}" if s.get("limit") else "",
    ]
    return f"{where} ({', '.join(x for x in extra if x)})"


def _gate_text(table: dict | None) -> str:
    gate = (table or {}).get("gate") or []
    if table is None or not gate:
        return "not evaluated" if table is None else "no gate rules"
    passed = sum(bool(g.get("passed")) for g in gate)
    return f"{'PASSED' if table.get('passed') else 'FAILED'} ({passed}/{len(gate)} rules)"


def _cells(r: dict) -> list[str]:
    return [
        str(r.get("task")),
        str(r.get("metric")),
        _num(r.get("base")),
        _num(r.get("tuned")),
        _num(r.get("delta"), "+.4f"),
        _num(r.get("stderr")),
    ]


def model_card(run: Path) -> str:
    run = Path(run)
    f = _facts(run)
    m, r, met, base, name = f["m"], f["r"], f["met"], f["base"], f["name"]
    adapter, lora, tr = f["kind"] == "adapter", r.get("lora") or {}, r.get("train") or {}
    dora = adapter and lora.get("use_dora")
    front = {
        "library_name": "peft" if adapter else "transformers",
        "base_model": base,
        "license": m.get("license") or r.get("license") or "other",
        "pipeline_tag": "text-generation",
        "tags": ["genai", "lora" if adapter else "full-finetune"] + (["dora"] if dora else []),
    }
    method = (
        (
            f"{'DoRA' if dora else 'LoRA'} adapter (r={lora.get('r', '?')}, alpha={lora.get('alpha', '?')}, "
            f"target modules: {lora.get('target_modules', '?')})"
        )
        if adapter
        else "full fine-tune (all weights updated)"
    )
    out = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "", f"# {name} ({m['run_id']})", ""]
    out += [r["description"], ""] if r.get("description") else []
    out += [
        "## Model description",
        "",
        f"- **Base model:** `{base}`" + (f" (revision `{f['revision']}`)" if f["revision"] else ""),
        f"- **Method:** {method}",
        f"- **Artifact:** `{f['path']}/`" + (f" (merged: `{f['merged']}/`)" if f["merged"] else ""),
        f"- **Produced by:** genai {__version__}, recipe `{name}`, run `{m['run_id']}`",
        "",
        "## Training data",
        "",
    ]
    sources = [s for s in (r.get("data") or {}).get("train") or [] if isinstance(s, dict)]
    out += [f"- {_source(s)}" for s in sources] or ["- (sources not recorded)"]
    stats = (m.get("data") or {}).get("train")
    out += (
        ["", "Train split after preprocessing: " + ", ".join(f"{k} {v}" for k, v in stats.items()) + "."]
        if isinstance(stats, dict)
        else []
    )
    hp = ", ".join(
        f"{k} {tr[k]}"
        for k in (
            "learning_rate",
            "lr_scheduler",
            "micro_batch_size",
            "gradient_accumulation_steps",
            "max_steps",
            "epochs",
        )
        if tr.get(k) is not None
    )
    out += [
        "",
        "## Training",
        "",
        f"- Steps: {m.get('steps', '-')}",
        f"- Final train loss: {_num(f['loss'])}",
        f"- Final eval loss: {_num(met.get('eval_loss'))}",
        f"- Training time: {_num(m.get('train_seconds'), '.1f')} s",
    ]
    if _isnum(met.get("exact_match_after")):
        out.append(
            f"- Held-out exact match: {_num(met.get('exact_match_before'), '.3f')} -> {met['exact_match_after']:.3f}"
        )
    out += [f"- Hyperparameters: {hp}"] if hp else []
    out += ["", "## Evaluation", ""]
    if f["tables"]:
        backend, t = f["tables"][0]
        meta = t.get("meta") or {}
        out += [
            f"lm-evaluation-harness {meta.get('lm_eval_version', '?')}, {backend} backend, "
            f"seed {meta.get('seed', '?')}.",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|---|---|---:|---:|---:|---:|",
        ]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |" for row in t.get("rows") or []]
        out += (
            [""]
            + [
                f"- Gate {'PASS' if g.get('passed') else 'FAIL'}: {g.get('detail') or g.get('task')}"
                for g in t.get("gate") or []
            ]
            + [f"- Gate overall: {_gate_text(t)}"]
        )
    else:
        out.append(f"Not evaluated yet: run `genai eval {shlex.quote(str(run))}`.")
    out += [
        "",
        "## Intended use and limitations",
        "",
        f"This {'adapter' if adapter else 'model'} was produced automatically by genai from the recipe `{name}`. "
        "It has been checked only on the evaluation above, and it inherits the base model's license, biases "
        "and failure modes. Check that evaluation against your use case, and test on your own data, before "
        "relying on it.",
        "",
        "## How to load",
        "",
        "```python",
    ]
    path, rev = json.dumps(str(run / f["path"])), f", revision={json.dumps(f['revision'])}" if f["revision"] else ""
    if adapter:
        out += [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"base = {json.dumps(base)}",
            f"path = {path}",
            f"model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base{rev}), path)",
        ]
    else:
        out += [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"path = {path}",
            "model = AutoModelForCausalLM.from_pretrained(path)",
        ]
    out += [
        "tokenizer = AutoTokenizer.from_pretrained(path)",
        "```",
        "",
        "Or serve it (OpenAI-compatible API):",
        "",
        "```bash",
        f"genai serve {shlex.quote(str(run))}",
        "```",
        "",
    ]
    return "\n".join(out)


def write_model_card(run: Path) -> Path:
    run = Path(run)
    folder = run / _facts(run)["path"]
    if not folder.is_dir():
        raise GenaiError(
            f"{folder}: artifact folder not found", hint="is the run finished? see manifest.json 'artifact'"
        )
    atomic_write_text(folder / "README.md", model_card(run))  # temp file in the same folder, then os.replace
    return folder / "README.md"


CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.4em 0 1.2em}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}"
    "th{background:#f4f4f4}.ev td:nth-child(n+3){text-align:right;font-variant-numeric:tabular-nums}"
    "pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:13px}img{max-width:100%;display:block;margin:1em 0}"
    ".muted{color:#666}"
)


def _table(head: list | None, rows: list, cls: str = "") -> str:
    out = [f'<table class="{cls}">' if cls else "<table>"]  # head None: a key/value table, no header row
    out += ["<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in head) + "</tr>"] if head else []
    out += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table>"


def write_report(run: Path) -> Path:
    run, h = Path(run), lambda x: html.escape(str(x))
    f = _facts(run)
    m, met, tables = f["m"], f["met"], f["tables"]
    try:
        plots, note = make_plots(run), "nothing to plot"
    except MissingExtraError as exc:  # the page is still useful without plots
        plots, note = [], f"{exc.message} ({exc.hint})"
    summary = [
        ("base model", f["base"]),
        ("steps", m.get("steps", "-")),
        ("final train loss", _num(f["loss"])),
        ("final eval loss", _num(met.get("eval_loss"))),
        (
            "held-out exact match",
            f"{_num(met.get('exact_match_before'), '.3f')} -> {_num(met.get('exact_match_after'), '.3f')}",
        ),
        ("train seconds", _num(m.get("train_seconds"), ".1f")),
        ("artifact", f"{run / f['path']} ({f['kind']})" + (f"; merged: {run / f['merged']}" if f["merged"] else "")),
        ("gate", _gate_text(tables[0][1] if tables else None) + (f" ({tables[0][0]})" if tables else "")),
    ]
    body = [
        f"<h1>{h(f['name'])} <span class=muted>/ run {h(m['run_id'])}</span></h1>",
        f"<p class=muted>{h(f['r'].get('description') or '')} Finished {h(m.get('finished_at', '-'))}.</p>",
        "<h2>Summary</h2>",
        _table(None, summary),
        "<h2>Plots</h2>",
    ]
    body += [
        f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{p.stem} plot">'
        for p in plots
    ] or [f"<p class=muted>{h(note)}</p>"]
    body.append("<h2>Evaluation</h2>" + ("" if tables else f"<p class=muted>not evaluated: genai eval {h(run)}</p>"))
    for backend, t in tables:
        meta = t.get("meta") or {}
        gate = [
            ("PASS" if g.get("passed") else "FAIL", g.get("task"), g.get("metric"), g.get("detail"))
            for g in t.get("gate") or []
        ]
        body += [
            f"<h3>{h(backend)}</h3><p class=muted>lm-eval {h(meta.get('lm_eval_version', '?'))}, seed "
            f"{h(meta.get('seed', '?'))}, limit {h(meta.get('limit') or 'none')}; gate: {h(_gate_text(t))}</p>",
            _table(COLUMNS, [_cells(x) for x in t.get("rows") or []], "ev"),
        ]
        body += [_table(["gate", "task", "metric", "detail"], gate)] if gate else []
    data = m.get("data") or {}
    splits = {k: v for k, v in data.items() if isinstance(v, dict)}
    cols = list(dict.fromkeys(c for v in splits.values() for c in v))
    body += [
        "<h2>Data</h2>",
        _table(["split", *cols], [[s, *(v.get(c, "-") for c in cols)] for s, v in splits.items()]),
        _table(None, [(k, v) for k, v in data.items() if k not in splits]),
    ]
    recipe = (run / RECIPE_FILE).read_text(encoding="utf-8") if (run / RECIPE_FILE).exists() else "(no recipe.yaml)"
    body += ["<h2>Recipe (resolved)</h2>", f"<pre>{h(recipe)}</pre>"]
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{h(f["name"])} / {h(m["run_id"])}'
        f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    atomic_write_text(run / "report.html", page)
    return run / "report.html"
