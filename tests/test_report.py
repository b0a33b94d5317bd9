"""genai.report and genai.plots on a synthetic run folder: plots, HTML page and model card, no training."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from genai import plots, report
from genai.errors import MissingExtraError
from genai.runs import Run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RECIPE = """\
name: demo
description: Adds <two> numbers & more.
model:
  name_or_path: genai/tiny-llama
data:
  train:
  - path: data/train.jsonl
    format: alpaca
    limit: 500
  - hub: org/chat-set
    split: train_sft
    format: messages
lora:
  enabled: true
  r: 16
  alpha: 32
train:
  max_steps: 100
  learning_rate: 0.003
"""


def make_run(root: Path, *, metrics: bool = True, evals: bool = True, kind: str = "adapter") -> Path:
    """A finished run as genai train/eval leave it, with made-up numbers."""
    run = root / "runs" / "demo" / "20260101-000000"
    run.mkdir(parents=True)
    lines = [{"step": 0, "exact_match": 0.0}]
    if metrics:
        for i in range(1, 11):
            lines.append(
                {
                    "step": i * 10,
                    "epoch": 0,
                    "loss": round(3.0 / i, 4),
                    "lr": 0.003,
                    "grad_norm": 1.0,
                    "tokens": i * 1000,
                    "tokens_per_s": 28000.0,
                    "elapsed_s": i * 0.5,
                }
            )
            if i in (5, 10):
                lines.append({"step": i * 10, "eval_loss": round(3.2 / i, 4)})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 10')  # torn line
    (run / "recipe.yaml").write_text(RECIPE)
    manifest = {
        "run_id": run.name,
        "recipe": "demo",
        "steps": 100,
        "train_seconds": 12.3,
        "metrics": {"train_loss": 0.3, "eval_loss": 0.32, "exact_match_before": 0.0, "exact_match_after": 0.985},
        "base_model": {"name_or_path": "genai/tiny-llama", "revision": None, "resolved": "/cache/tiny"},
        "artifact": {"kind": kind, "path": kind, "merged": None},
        "data": {
            "train": {"examples": 6000, "samples": 6000, "truncated": 0, "dropped": 0, "tokens": 196722},
            "eval": {"examples": 200, "samples": 200, "truncated": 0, "dropped": 0, "tokens": 6558},
            "stop_token_ids": [4],
        },
        "environment": {"python": "3.11.7", "packages": {"torch": "2.13.0"}},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    if evals:
        write_table(run, "hf")
    (run / kind).mkdir()
    return run


def write_table(run: Path, backend: str, tuned: float = 0.985) -> None:
    rows = [
        {
            "task": "quickstart_addition",
            "metric": "exact_match,strip",
            "base": 0.0,
            "tuned": tuned,
            "delta": tuned,
            "stderr": 0.0086,
        },
        {"task": "addition_mc", "metric": "acc,none", "base": 0.31, "tuned": 0.42, "delta": 0.11, "stderr": None},
        {
            "task": "tiny_perplexity",
            "metric": "word_perplexity,none",
            "base": 1234.5,
            "tuned": 35.2,
            "delta": -1199.3,
            "stderr": None,
        },
        {"task": "no_baseline", "metric": "acc,none", "base": None, "tuned": 0.5, "delta": None, "stderr": None},
    ]
    gate = [
        {
            "task": "quickstart_addition",
            "metric": "exact_match,strip",
            "passed": True,
            "detail": "quickstart_addition exact_match,strip 0.985 >= min 0.9",
        }
    ]
    table = {
        "meta": {"backend": backend, "tasks": [r["task"] for r in rows], "seed": 1234, "lm_eval_version": "0.4.13"},
        "rows": rows,
        "gate": gate,
        "passed": True,
    }
    (run / "eval" / backend).mkdir(parents=True)
    (run / "eval" / backend / "table.json").write_text(json.dumps(table))


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes().startswith(PNG_MAGIC)
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > 100 and height > 100


def test_load_metrics_skips_torn_line(tmp_path):
    lines = Run(make_run(tmp_path)).metrics()
    assert len(lines) == 13 and sum("loss" in x for x in lines) == 10 and sum("eval_loss" in x for x in lines) == 2


def test_plots_are_valid_pngs(tmp_path):
    run = make_run(tmp_path)
    paths = plots.make_plots(run)
    assert paths == [run / "plots" / "loss.png", run / "plots" / "eval.png"]
    for p in paths:
        assert_png(p)
    assert sorted(x.name for x in (run / "plots").iterdir()) == ["eval.png", "loss.png"]  # no temp files left


def test_eval_tables_in_one_backend_order_everywhere(tmp_path):
    """The report, `runs list`, `runs show` and the model card read eval tables in one order."""
    run = make_run(tmp_path, evals=False)
    assert Run(run).eval_tables() == [] and Run(run).summary()["gate"] is None
    write_table(run, "endpoint", tuned=0.7)
    write_table(run, "vllm", tuned=0.8)
    assert Run(run).eval_tables()[0][1]["meta"]["backend"] == "vllm"
    write_table(run, "hf")
    assert [b for b, _ in Run(run).eval_tables()] == ["hf", "vllm", "endpoint"]
    assert list(Run(run).describe()["eval"]) == ["hf", "vllm", "endpoint"]
    assert "hf backend" in report.model_card(run)


def test_report_html_is_self_contained(tmp_path):
    run = make_run(tmp_path)
    write_table(run, "vllm", tuned=0.975)
    page = report.write_report(run).read_text()
    assert page.count('<img src="data:image/png;base64,') == 2
    assert "quickstart_addition" in page and "fine-tuned" in page
    assert "0.9750" in page and "0.9850" in page  # both backends' tables
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    assert "Adds &lt;two&gt; numbers &amp; more." in page and "<two>" not in page  # escaped
    assert "196722" in page and "learning_rate: 0.003" in page  # data stats and the recipe
    assert "PASSED (1/1 rules)" in page


def test_report_without_eval_tables(tmp_path):
    run = make_run(tmp_path, evals=False)
    assert plots.plot_eval(run) is None
    page = report.write_report(run).read_text()
    assert page.count('<img src="data:image/png;base64,') == 1 and 'alt="loss plot"' in page
    assert not (run / "plots" / "eval.png").exists() and "not evaluated" in page


def test_run_without_metrics(tmp_path):
    run = make_run(tmp_path, metrics=False)
    assert plots.plot_loss(run) is None
    (run / "metrics.jsonl").unlink()
    assert plots.plot_loss(run) is None and Run(run).metrics() == []
    page = report.write_report(run).read_text()
    assert page.count('<img src="data:image/png;base64,') == 1 and 'alt="eval plot"' in page


def test_missing_matplotlib(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(MissingExtraError, match="matplotlib"):
        plots.plot_loss(run)
    page = report.write_report(run).read_text()  # the page still comes out, saying why there are no plots
    assert "data:image/png" not in page and "genai[tracking]" in page


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card_for_adapter(tmp_path):
    run = make_run(tmp_path)
    (run / "adapter" / "README.md").write_text("# Model Card for Model ID\n[More Information Needed]\n")  # PEFT's
    path = report.write_model_card(run)
    assert path == run / "adapter" / "README.md"
    card = path.read_text()
    meta = front_matter(card)
    assert "base_model:" in card and meta["base_model"] == "genai/tiny-llama"
    assert meta["library_name"] == "peft" and meta["tags"] == ["genai", "lora"] and meta["license"] == "other"
    assert "More Information Needed" not in card
    assert re.search(r"\| quickstart_addition \| exact_match,strip \| 0\.0000 \| 0\.9850 \| \+0\.9850 \|", card)
    assert "| no_baseline | acc,none | - | 0.5000 | - | - |" in card
    assert "PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), path)" in card
    assert "r=16, alpha=32" in card and "`data/train.jsonl` (format alpaca, limit 500)" in card
    assert "hub `org/chat-set` (format messages, split train_sft)" in card and "samples 6000" in card
    assert "Gate PASS" in card and f"genai serve {run}" in card
    assert [p.name for p in (run / "adapter").iterdir()] == ["README.md"]  # no temp file left


def test_model_card_for_full_model(tmp_path):
    run = make_run(tmp_path, evals=False, kind="model")
    card = report.write_model_card(run).read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["tags"] == ["genai", "full-finetune"]
    assert "PeftModel" not in card and "AutoModelForCausalLM.from_pretrained(path)" in card
    assert "Not evaluated yet" in card and "full fine-tune" in card


def test_a_methods_own_signals_are_plotted_and_in_the_report(tmp_path):
    """GRPO's reward and KL (train and held out) get their own plot; an SFT run has none."""
    run = make_run(tmp_path)
    assert plots.plot_signals(run) is None
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "method": "grpo"}))
    lines = [{"step": s, "loss": 0.1, "reward": s / 100, "kl": s / 1000} for s in (10, 20, 30)]
    lines.append({"step": 30, "eval_loss": 0.2, "eval_reward": 0.5})
    with open(run / "metrics.jsonl", "a") as f:
        f.write("\n" + "".join(json.dumps(x) + "\n" for x in lines))
    path = plots.plot_signals(run)
    assert path == run / "plots" / "signals.png"
    assert_png(path)
    assert plots.make_plots(run)[1] == path
    page = report.write_report(run).read_text()
    assert 'alt="signals plot"' in page
    card, _ = report.write_all(run)
    assert "group relative policy optimisation (GRPO)" in card.read_text()
