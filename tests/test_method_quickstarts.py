"""The preference and RL quickstarts, each one `genai run` from nothing: the under-trained SFT parent is
trained first, then the chained recipe, scored against its parent and gated on the gain."""

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, genai_cli

pytestmark = pytest.mark.slow


def finished(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if (p / "manifest.json").exists()]
    return run


def table(run: Path) -> dict[tuple[str, str], dict]:
    rows = json.loads((run / "eval" / "hf" / "table.json").read_text())["rows"]
    return {(r["task"], r["metric"]): r for r in rows}


def test_quickstart_dpo_trains_its_parent_then_beats_it(tmp_path):
    out = genai_cli("run", ROOT / "recipes" / "quickstart-dpo.yaml", "--no-serve", cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    parent, run = finished(tmp_path / "runs" / "quickstart-short"), finished(tmp_path / "runs" / "quickstart-dpo")
    m = json.loads((run / "manifest.json").read_text())
    assert m["method"] == "dpo" and m["parent"]["run_id"] == parent.name
    # Held-out: exact match at least 15 points over the parent (eval's "base"), preferences >= 90% right.
    em = table(run)[("quickstart_addition", "exact_match,strip")]
    assert em["tuned"] - em["base"] >= 0.15, em
    assert em["base"] == json.loads((parent / "manifest.json").read_text())["metrics"]["exact_match_after"]
    assert m["metrics"]["eval_rewards/accuracy"] >= 0.9, m["metrics"]
    assert m["stages"]["gate"]["status"] == "passed"


def test_quickstart_grpo_trains_its_parent_then_beats_it(tmp_path):
    out = genai_cli("run", ROOT / "recipes" / "quickstart-grpo.yaml", "--no-serve", cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    parent, run = finished(tmp_path / "runs" / "quickstart-short"), finished(tmp_path / "runs" / "quickstart-grpo")
    m = json.loads((run / "manifest.json").read_text())
    assert m["method"] == "grpo" and m["parent"]["run_id"] == parent.name
    em = table(run)[("quickstart_addition", "exact_match,strip")]
    assert em["tuned"] - em["base"] >= 0.15, em
    steps = [x for x in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "reward" in x]
    assert steps[-1]["reward"] > steps[0]["reward"] + 0.2, steps  # the mean reward of the sampled answers rises
    assert m["stages"]["gate"]["status"] == "passed"
