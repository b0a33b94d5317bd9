"""Human-facing summary of a finished run: a model card and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import json
import shlex
from pathlib import Path

import yaml

from genai import __version__
from genai.atomic import atomic_write_text
from genai.errors import GenaiError, MissingExtraError
from genai.evaluation.results import COLUMNS, format_row
from genai.plots import make_plots
from genai.runs import RECIPE_FILE, Run
from genai.textfmt import is_number, num


def _recipe(run: Path) -> dict:
    path = run / RECIPE_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    except yaml.YAMLError:
        data = None
    return data if isinstance(data, dict) else {}


def _facts(run: Path) -> dict:
    the_run = Run(run)
    m, r = the_run.manifest(), _recipe(run)
    art, bm = m.get("artifact") or {}, m.get("base_model") or {}
    kind = art.get("kind") or ("adapter" if (r.get("lora") or {}).get("enabled", True) else "model")
    loss = (m.get("metrics") or {}).get("train_loss")
    if not is_number(loss):  # older manifests: fall back to the last logged loss
        loss = next((x["loss"] for x in reversed(the_run.metrics()) if is_number(x.get("loss"))), None)
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
        "tables": the_run.eval_tables(),
        "training": METHODS.get(m.get("method", "sft"), m.get("method", "sft")),
        "parent": _parent_text(m.get("parent")),
    }


# How the report and the model card name each training method (train.method).
METHODS = {
    "sft": "supervised fine-tuning (SFT)",
    "dpo": "direct preference optimisation (DPO)",
    "orpo": "odds-ratio preference optimisation (ORPO)",
    "kto": "Kahneman-Tversky optimisation (KTO)",
    "grpo": "group relative policy optimisation (GRPO)",
}


def _parent_text(parent: dict | None) -> str | None:
    """A chained run's parent, as the card and the report say it."""
    if not parent:
        return None
    how = "its adapter trained further" if parent.get("how") == "continue" else "merged, then trained"
    return f"run {parent.get('run_id')} of recipe {parent.get('recipe')} ({parent.get('method', 'sft')}; {how})"


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


def _card_front(f: dict) -> list[str]:
    m, r, adapter = f["m"], f["r"], f["kind"] == "adapter"
    dora = adapter and (r.get("lora") or {}).get("use_dora")
    front = {
        "library_name": "peft" if adapter else "transformers",
        "base_model": f["base"],
        "license": m.get("license") or r.get("license") or "other",
        "pipeline_tag": "text-generation",
        "tags": ["genai", "lora" if adapter else "full-finetune"] + (["dora"] if dora else []),
    }
    out = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "", f"# {f['name']} ({m['run_id']})", ""]
    return out + ([r["description"], ""] if r.get("description") else [])


def _card_model(f: dict) -> list[str]:
    lora = f["r"].get("lora") or {}
    if f["kind"] == "adapter":
        method = (
            f"{'DoRA' if lora.get('use_dora') else 'LoRA'} adapter (r={lora.get('r', '?')}, "
            f"alpha={lora.get('alpha', '?')}, target modules: {lora.get('target_modules', '?')})"
        )
    else:
        method = "full fine-tune (all weights updated)"
    return [
        "## Model description",
        "",
        f"- **Base model:** `{f['base']}`" + (f" (revision `{f['revision']}`)" if f["revision"] else ""),
        f"- **Method:** {method}",
        f"- **Training:** {f['training']}",
        *([f"- **Parent run:** {f['parent']}"] if f["parent"] else []),
        f"- **Artifact:** `{f['path']}/`" + (f" (merged: `{f['merged']}/`)" if f["merged"] else ""),
        f"- **Produced by:** genai {__version__}, recipe `{f['name']}`, run `{f['m']['run_id']}`",
        "",
    ]


def _card_data(f: dict) -> list[str]:
    out = ["## Training data", ""]
    sources = [s for s in (f["r"].get("data") or {}).get("train") or [] if isinstance(s, dict)]
    out += [f"- {_source(s)}" for s in sources] or ["- (sources not recorded)"]
    stats = (f["m"].get("data") or {}).get("train")
    if isinstance(stats, dict):
        out += ["", "Train split after preprocessing: " + ", ".join(f"{k} {v}" for k, v in stats.items()) + "."]
    return out + [""]


HYPERPARAMETERS = (
    "learning_rate",
    "lr_scheduler",
    "micro_batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "epochs",
)


def _card_training(f: dict) -> list[str]:
    m, met, tr = f["m"], f["met"], f["r"].get("train") or {}
    out = [
        "## Training",
        "",
        f"- Steps: {m.get('steps', '-')}",
        f"- Final train loss: {num(f['loss'])}",
        f"- Final eval loss: {num(met.get('eval_loss'))}",
        f"- Training time: {num(m.get('train_seconds'), '.1f')} s",
    ]
    if is_number(met.get("exact_match_after")):
        out.append(
            f"- Held-out exact match: {num(met.get('exact_match_before'), '.3f')} -> {met['exact_match_after']:.3f}"
        )
    hp = ", ".join(f"{k} {tr[k]}" for k in HYPERPARAMETERS if tr.get(k) is not None)
    return out + ([f"- Hyperparameters: {hp}"] if hp else []) + [""]


def _card_eval(f: dict, run: Path) -> list[str]:
    out = ["## Evaluation", ""]
    if not f["tables"]:
        return out + [f"Not evaluated yet: run `genai eval {shlex.quote(str(run))}`.", ""]
    backend, t = f["tables"][0]
    meta = t.get("meta") or {}
    out += [
        f"lm-evaluation-harness {meta.get('lm_eval_version', '?')}, {backend} backend, seed {meta.get('seed', '?')}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|---|---:|---:|---:|---:|",
    ]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in format_row(row)) + " |" for row in t.get("rows") or []]
    out += [""] + [
        f"- Gate {'PASS' if g.get('passed') else 'FAIL'}: {g.get('detail') or g.get('task')}"
        for g in t.get("gate") or []
    ]
    return out + [f"- Gate overall: {_gate_text(t)}", ""]


# Bias and safety rows: the bundled probes and lm-eval's public ones (a task named so, or its subtasks).
BIAS_SAFETY_TASKS = ("stereotype_pairs", "refusal_safety", "crows_pairs", "bbq", "toxigen")
BIAS_SAFETY_NOTES = {
    "pct_stereotype": "share of sentence pairs where the stereotyping one is more likely (0.5: no preference)",
    "stereotype_neutrality": "1 - 2 * |pct_stereotype - 0.5|: 1 is no preference, 0 one-sided (higher is better)",
    "refusal_rate": "harmful requests refused (higher is better)",
    "over_refusal_rate": "benign requests refused (lower is better)",
    "toxicity_rate": "completions with a term from a small lexicon, a proxy, not a classifier (lower is better)",
}


def bias_safety_rows(rows: list[dict]) -> list[dict]:
    """The eval table's rows from bias and safety tasks (BIAS_SAFETY_TASKS and their subtasks)."""
    return [
        r
        for r in rows
        if any(str(r.get("task")) == t or str(r.get("task")).startswith(t + "_") for t in BIAS_SAFETY_TASKS)
    ]


def _card_bias_safety(f: dict) -> list[str]:
    rows = bias_safety_rows(f["tables"][0][1].get("rows") or []) if f["tables"] else []
    if not rows:
        return []
    out = [
        "## Bias and safety",
        "",
        "Small probes from the evaluation above (base -> fine-tuned), not a safety assessment; genai's "
        "eval/README.md says how each is measured.",
        "",
    ]
    for r in rows:
        metric = str(r.get("metric")).partition(",")[0]
        note = BIAS_SAFETY_NOTES.get(metric)
        out.append(
            f"- `{r.get('task')}` {metric}: {num(r.get('base'))} -> {num(r.get('tuned'))}"
            + (f"; {note}" if note else "")
        )
    return out + [""]


def _card_use(f: dict, run: Path) -> list[str]:
    adapter = f["kind"] == "adapter"
    out = [
        "## Intended use and limitations",
        "",
        f"This {'adapter' if adapter else 'model'} was produced automatically by genai from the recipe "
        f"`{f['name']}`. It has been checked only on the evaluation above, and it inherits the base model's license, "
        "biases and failure modes. Check that evaluation against your use case, and test on your own data, before "
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
            f"base = {json.dumps(f['base'])}",
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
    out += ["tokenizer = AutoTokenizer.from_pretrained(path)", "```", "", "Or serve it (OpenAI-compatible API):", ""]
    return out + ["```bash", f"genai serve {shlex.quote(str(run))}", "```", ""]


def model_card(run: Path) -> str:
    """The artifact's README.md (Hugging Face model card): method, data, training, eval, how to load."""
    run = Path(run)
    f = _facts(run)
    parts = [_card_front(f), _card_model(f), _card_data(f), _card_training(f), _card_eval(f, run)]
    parts += [_card_bias_safety(f), _card_use(f, run)]
    return "\n".join(line for part in parts for line in part)


def write_model_card(run: Path) -> Path:
    """Write the model card into the artifact folder (atomically)."""
    run = Path(run)
    folder = run / _facts(run)["path"]
    if not folder.is_dir():
        raise GenaiError(
            f"{folder}: artifact folder not found", hint="is the run finished? see manifest.json 'artifact'"
        )
    atomic_write_text(folder / "README.md", model_card(run))
    return folder / "README.md"


CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.4em 0 1.2em}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}"
    "th{background:#f4f4f4}.ev td:nth-child(n+3){text-align:right;font-variant-numeric:tabular-nums}"
    "pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:13px}img{max-width:100%;display:block;margin:1em 0}"
    ".muted{color:#666}"
)


def _h(x) -> str:
    return html.escape(str(x))


def _table(head: list | None, rows: list, cls: str = "") -> str:
    out = [f'<table class="{cls}">' if cls else "<table>"]  # head None: a key/value table, no header row
    out += ["<tr>" + "".join(f"<th>{_h(c)}</th>" for c in head) + "</tr>"] if head else []
    out += ["<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table>"


def _page_summary(f: dict, run: Path) -> list[str]:
    m, met, tables = f["m"], f["met"], f["tables"]
    summary = [
        ("base model", f["base"]),
        ("training", f["training"]),
        *([("parent run", f["parent"])] if f["parent"] else []),
        ("steps", m.get("steps", "-")),
        ("final train loss", num(f["loss"])),
        ("final eval loss", num(met.get("eval_loss"))),
        (
            "held-out exact match",
            f"{num(met.get('exact_match_before'), '.3f')} -> {num(met.get('exact_match_after'), '.3f')}",
        ),
        ("train seconds", num(m.get("train_seconds"), ".1f")),
        ("artifact", f"{run / f['path']} ({f['kind']})" + (f"; merged: {run / f['merged']}" if f["merged"] else "")),
        ("gate", _gate_text(tables[0][1] if tables else None) + (f" ({tables[0][0]})" if tables else "")),
    ]
    return [
        f"<h1>{_h(f['name'])} <span class=muted>/ run {_h(m['run_id'])}</span></h1>",
        f"<p class=muted>{_h(f['r'].get('description') or '')} Finished {_h(m.get('finished_at', '-'))}.</p>",
        "<h2>Summary</h2>",
        _table(None, summary),
    ]


def _page_plots(plots: list[Path], note: str) -> list[str]:
    images = [
        f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{p.stem} plot">'
        for p in plots
    ]
    return ["<h2>Plots</h2>"] + (images or [f"<p class=muted>{_h(note)}</p>"])


def _page_eval(f: dict, run: Path) -> list[str]:
    out = ["<h2>Evaluation</h2>" + ("" if f["tables"] else f"<p class=muted>not evaluated: genai eval {_h(run)}</p>")]
    for backend, t in f["tables"]:
        meta = t.get("meta") or {}
        gate = [
            ("PASS" if g.get("passed") else "FAIL", g.get("task"), g.get("metric"), g.get("detail"))
            for g in t.get("gate") or []
        ]
        out += [
            f"<h3>{_h(backend)}</h3><p class=muted>lm-eval {_h(meta.get('lm_eval_version', '?'))}, seed "
            f"{_h(meta.get('seed', '?'))}, limit {_h(meta.get('limit') or 'none')}; gate: {_h(_gate_text(t))}</p>",
            _table(list(COLUMNS), [format_row(x) for x in t.get("rows") or []], "ev"),
        ]
        out += [_table(["gate", "task", "metric", "detail"], gate)] if gate else []
    return out


def _page_bias_safety(f: dict) -> list[str]:
    rows = bias_safety_rows(f["tables"][0][1].get("rows") or []) if f["tables"] else []
    if not rows:
        return []
    cells = [[*format_row(r)[:5], BIAS_SAFETY_NOTES.get(str(r.get("metric")).partition(",")[0], "")] for r in rows]
    return [
        "<h2>Bias and safety</h2><p class=muted>Small probes from the evaluation above, not a safety assessment.</p>",
        _table([*COLUMNS[:5], "reading"], cells, "ev"),
    ]


def _page_data(f: dict, run: Path) -> list[str]:
    data = f["m"].get("data") or {}
    splits = {k: v for k, v in data.items() if isinstance(v, dict)}
    cols = list(dict.fromkeys(c for v in splits.values() for c in v))
    recipe = (run / RECIPE_FILE).read_text(encoding="utf-8") if (run / RECIPE_FILE).exists() else "(no recipe.yaml)"
    return [
        "<h2>Data</h2>",
        _table(["split", *cols], [[s, *(v.get(c, "-") for c in cols)] for s, v in splits.items()]),
        _table(None, [(k, v) for k, v in data.items() if k not in splits]),
        "<h2>Recipe (resolved)</h2>",
        f"<pre>{_h(recipe)}</pre>",
    ]


def write_report(run: Path, console=None) -> Path:
    """RUN/report.html: summary, plots (embedded), eval tables, data and the resolved recipe, in one file.

    Without matplotlib the page says how to get plots (and so does `console`, when given)."""
    run = Path(run)
    f = _facts(run)
    try:
        plots, note = make_plots(run), "nothing to plot"
    except MissingExtraError as exc:  # the page is still useful without plots
        plots, note = [], f"{exc.message} ({exc.hint})"
        if console is not None:
            console.print(f"no plots: {note}")
    body = _page_summary(f, run) + _page_plots(plots, note) + _page_eval(f, run) + _page_bias_safety(f)
    body += _page_data(f, run)
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_h(f["name"])} / {_h(f["m"]["run_id"])}'
        f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    atomic_write_text(run / "report.html", page)
    return run / "report.html"


def write_all(run: Path, console=None) -> tuple[Path, Path]:
    """The model card and the HTML report (with plots when matplotlib is there; else a note says how)."""
    return write_model_card(run), write_report(run, console)
