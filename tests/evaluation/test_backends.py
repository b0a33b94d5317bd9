"""`genai eval` through hf, vllm and the served endpoint: same artifact, same numbers."""

import json

import pytest

from tests.conftest import genai_cli

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

# Enough items to be meaningful, few enough for CI.
LIMIT = ["eval.limit=40"]


@pytest.fixture(scope="module")
def tables(quickstart_run):
    recipe = quickstart_run / "recipe.yaml"
    out = {}
    for backend in ("hf", "vllm", "endpoint"):
        proc = genai_cli("eval", recipe, *LIMIT, *QUICKSTART_EVAL, "--backend", backend, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        out[backend] = json.loads((quickstart_run / "eval" / backend / "table.json").read_text())
        out[backend]["stdout"] = proc.stdout
    return out


# The run's saved recipe has the quickstart's eval section; spelled out so this test states it.
QUICKSTART_EVAL = [
    "eval.tasks=[quickstart_addition, addition_mc, tiny_perplexity]",
    "eval.gate=[{task: quickstart_addition, metric: 'exact_match,strip', min: 0.9}]",
]


def row(table, task, metric):
    return next(r for r in table["rows"] if r["task"] == task and r["metric"] == metric)


def test_before_after_table_shows_the_task_learned(tables):
    t = tables["hf"]
    em = row(t, "quickstart_addition", "exact_match,strip")
    assert em["base"] <= 0.05 and em["tuned"] >= 0.9 and em["delta"] == pytest.approx(em["tuned"] - em["base"])
    assert t["passed"] and t["gate"][0]["passed"]
    assert "quickstart_addition" in tables["hf"]["stdout"] and "gate: passed" in tables["hf"]["stdout"]
    assert t["meta"]["lm_eval_version"] and t["meta"]["seed"] == 1234 and t["meta"]["backend"] == "hf"


@pytest.mark.parametrize("backend", ["vllm", "endpoint"])
def test_backends_agree_with_hf(tables, backend):
    hf, other = tables["hf"], tables[backend]
    for which in ("base", "tuned"):
        assert (
            row(other, "quickstart_addition", "exact_match,strip")[which]
            == row(hf, "quickstart_addition", "exact_match,strip")[which]
        )
        assert row(other, "addition_mc", "acc,none")[which] == row(hf, "addition_mc", "acc,none")[which]
        assert row(other, "tiny_perplexity", "bits_per_byte,none")[which] == pytest.approx(
            row(hf, "tiny_perplexity", "bits_per_byte,none")[which], abs=1e-3
        )
        assert row(other, "tiny_perplexity", "byte_perplexity,none")[which] == pytest.approx(
            row(hf, "tiny_perplexity", "byte_perplexity,none")[which], rel=1e-3
        )


def test_lm_eval_results_are_kept_beside_the_table(tables, quickstart_run):
    for backend in tables:
        d = quickstart_run / "eval" / backend
        res = json.loads((d / "lm_eval_tuned.json").read_text())
        assert "quickstart_addition" in res["results"]
        assert (d / "lm_eval_base.json").exists() and (d / "table.md").read_text().startswith("| task |")


def test_the_merged_model_scored_on_cpu_is_recorded_in_the_manifest(tables, quickstart_run):
    """On CPU the vllm and endpoint backends score the merged model; the run's manifest says it exists."""
    manifest = json.loads((quickstart_run / "manifest.json").read_text())
    assert manifest["artifact"]["merged"] == "merged" and (quickstart_run / "merged" / "config.json").exists()
