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


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One folder for both quickstarts: the first trains their shared parent, the second reuses it."""
    return tmp_path_factory.mktemp("quickstarts")


def chained_quickstart(workdir: Path, name: str) -> tuple[Path, dict, dict]:
    """`genai run recipes/<name>.yaml --no-serve` in workdir: (run, manifest, its held-out exact match row)
    after checking it names its parent and beats it by 15 points, gate passed."""
    out = genai_cli("run", ROOT / "recipes" / f"{name}.yaml", "--no-serve", cwd=workdir, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    parent, run = finished(workdir / "runs" / "quickstart-short"), finished(workdir / "runs" / name)
    m = json.loads((run / "manifest.json").read_text())
    assert m["parent"]["run_id"] == parent.name and m["stages"]["gate"]["status"] == "passed"
    em = table(run)[("quickstart_addition", "exact_match,strip")]
    # Held out: exact match at least 15 points over the parent (eval's "base" here).
    assert em["base"] == json.loads((parent / "manifest.json").read_text())["metrics"]["exact_match_after"]
    assert em["tuned"] - em["base"] >= 0.15, em
    return run, m, em


def test_quickstart_dpo_trains_its_parent_then_beats_it(workdir):
    run, m, _ = chained_quickstart(workdir, "quickstart-dpo")
    assert m["method"] == "dpo"
    assert m["metrics"]["eval_rewards/accuracy"] >= 0.9, m["metrics"]  # held-out preferences >= 90% right


def test_quickstart_grpo_beats_the_same_parent(workdir):
    run, m, _ = chained_quickstart(workdir, "quickstart-grpo")
    assert m["method"] == "grpo"
    steps = [x for x in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "reward" in x]
    assert steps[-1]["reward"] > steps[0]["reward"] + 0.2, steps  # the sampled answers' mean reward rises
