"""The public Python API (`genai.train`, `genai.evaluate`, `genai.run`) does what the verbs do."""

import subprocess
import sys

import pytest

import genai
from tests.conftest import ROOT

QS = ROOT / "recipes" / "quickstart.yaml"


def test_the_api_functions_survive_importing_every_subpackage():
    import genai.evaluation.runner  # noqa: F401
    import genai.serving.serve  # noqa: F401
    import genai.training.trainer  # noqa: F401

    assert all(callable(getattr(genai, name)) for name in ("train", "evaluate", "serve", "run", "load_recipe"))


def test_importing_genai_imports_nothing_heavy():
    code = (
        "import genai, sys; print(sorted(m for m in ('torch', 'transformers', 'vllm', 'lm_eval') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_train_evaluate_and_run_from_python(tmp_path):
    recipe = genai.load_recipe(
        QS,
        [
            f"train.output_dir={tmp_path / 'runs'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "train.save_steps=null",
            "train.exact_match.limit=0",
        ],
    )
    result = genai.train(recipe, ["train.max_steps=20"], verbose=False)  # a Recipe object, overridden
    assert result.steps == 20 and (result.artifact / "adapter_config.json").exists()
    assert result.train_loss is not None and result.run_dir.parent == tmp_path / "runs" / "quickstart"

    report = genai.evaluate(result.run_dir, ["eval.tasks=[addition_mc]", "eval.limit=8", "eval.gate=[]"])
    assert report.passed and {r["task"] for r in report.rows} == {"addition_mc"}
    assert (result.run_dir / "eval" / "hf" / "table.json").exists()

    outcome = genai.run(
        QS,
        [
            f"train.output_dir={tmp_path / 'runs'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "train.max_steps=20",
            "train.save_steps=null",
            "train.exact_match.limit=0",
            "eval.tasks=[addition_mc]",
            "eval.limit=8",
            "eval.gate=[]",
        ],
        serve=False,
    )
    assert outcome.gate_passed and outcome.stages["serve"]["status"] == "skipped"
    assert outcome.run_dir != result.run_dir
