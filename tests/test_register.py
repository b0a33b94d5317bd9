"""`genai register`: MLflow Model Registry versions with eval metrics and lineage as tags and the
champion/challenger alias, read back with MLflow's own client; one clear error per bad input; and
`genai run`'s register stage on a real (tiny) trained and evaluated quickstart run."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

from genai.evaluation.results import build_table, check_gate
from genai.evaluation.runner import write_report
from genai.recipe import GateRule, load_recipe
from genai.runs import Run
from tests.conftest import ROOT, genai_cli

# find_spec, not importorskip: importing mlflow here would start its telemetry before genai turns it off.
pytestmark = pytest.mark.skipif(not importlib.util.find_spec("mlflow"), reason="needs genai[tracking]")

RECIPE = """\
name: reg
model: {{name_or_path: genai/tiny-llama}}
data: {{train: [{{path: {data}}}]}}
train: {{output_dir: {out}}}
eval: {{tasks: [arith]}}
"""


def client(out: Path):
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return MlflowClient(tracking_uri=(out / "mlruns").as_uri(), registry_uri=f"sqlite:///{out / 'mlflow.db'}")


def make_run(tmp_path: Path, name: str, tuned: float | None, *, gate_min: float = 0.5, rule=None) -> Path:
    """A finished run with an eval table written as `genai eval` writes it (tuned None: not evaluated)."""
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (tmp_path / "reg.yaml").write_text(RECIPE.format(data=tmp_path / "d.jsonl", out=tmp_path / "runs"))
    recipe = load_recipe(tmp_path / "reg.yaml")
    run = Run(tmp_path / "runs" / "reg" / name)
    run.write_recipe(recipe)
    (run.path / "adapter").mkdir()
    (run.path / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8}))
    run.write_manifest(
        recipe,
        status="complete",
        base_model={"name_or_path": "genai/tiny-llama", "revision": None, "sha256": "cd" * 32},
        parent={"run": "/somewhere/runs/sft/r0", "recipe": "sft"},
        data_files={str(tmp_path / "d.jsonl"): "ef" * 32},
        git_commit="0123abcd",
        artifact={"kind": "adapter", "path": "adapter", "merged": None},
    )
    if tuned is not None:
        results = {
            which: {"results": {"arith": {"alias": "arith", "exact_match,strip": v, "exact_match_stderr,strip": 0.05}}}
            for which, v in (("base", 0.1), ("tuned", tuned))
        }
        gate = check_gate([rule or GateRule(task="arith", metric="exact_match", min=gate_min)], results)
        write_report(run.eval_dir / "hf", recipe, recipe.eval, results, build_table(results), gate)
    return run.path


def register(genai_main, *args) -> dict:
    code, out, err = genai_main("register", *map(str, args))
    assert code == 0, err
    return json.loads(out)


def test_champion_challenger_and_a_better_version_taking_the_alias(tmp_path, genai_main):
    runs = {n: make_run(tmp_path, n, v) for n, v in (("r1", 0.6), ("r2", 0.4), ("r3", 0.8), ("r4", 0.3))}
    first = register(genai_main, runs["r1"])
    assert (first["version"], first["alias"], first["previous_champion"]) == ("1", "champion", None)
    assert first["metric"] == {
        "task": "arith",
        "metric": "exact_match,strip",  # the gate names "exact_match": the row's full name is compared
        "value": 0.6,
        "tag": "eval.arith.exact_match_strip.tuned",
    }
    second = register(genai_main, runs["r2"])
    assert (second["version"], second["alias"]) == ("2", "challenger")
    assert second["previous_champion"] == {"version": "1", "value": 0.6}
    third = register(genai_main, runs["r3"])
    assert (third["version"], third["alias"], third["previous_champion"]["version"]) == ("3", "champion", "1")
    # r4 fails its gate (0.3 < 0.5): a challenger whatever its number.
    fourth = register(genai_main, runs["r4"])
    assert (fourth["alias"], fourth["gate"]) == ("challenger", "failed")

    out = tmp_path / "runs"
    c = client(out)
    champ = c.get_model_version_by_alias("reg", "champion")
    assert str(champ.version) == "3" and champ.source == (runs["r3"] / "adapter").resolve().as_uri()
    assert str(c.get_model_version_by_alias("reg", "challenger").version) == "4"
    aliases = c.get_registered_model("reg").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "3", "challenger": "4"}  # v1 lost the alias
    tags = champ.tags
    assert tags["eval.arith.exact_match_strip.tuned"] == "0.8" and tags["eval.arith.exact_match_strip.base"] == "0.1"
    assert tags["genai.gate"] == "passed" and tags["genai.compared"] == "eval.arith.exact_match_strip.tuned"
    assert tags["genai.run"] == "r3" and tags["genai.recipe"] == "reg" and tags["genai.git_commit"] == "0123abcd"
    assert tags["genai.base_model"] == "genai/tiny-llama" and tags["genai.base_model_sha256"] == "cd" * 32
    assert tags["genai.parent_run"] == "/somewhere/runs/sft/r0" and tags["genai.data.0.sha256"] == "ef" * 32
    assert tags["genai.recipe_sha256"] == load_recipe(runs["r3"] / "recipe.yaml").content_hash()
    assert c.get_model_version("reg", "4").tags["genai.gate"] == "failed"

    # No MLflow run before (tracking off): one was made, named in RUN/tracking.json, with the eval metrics.
    saved = json.loads((runs["r3"] / "tracking.json").read_text())
    assert champ.run_id == saved["mlflow_run_id"] == third["mlflow"]["run_id"]
    mrun = c.get_run(champ.run_id)
    assert mrun.info.run_name == "r3" and mrun.data.params["name"] == "reg"
    assert mrun.data.metrics["eval.arith.exact_match_strip.tuned"] == 0.8
    assert mrun.data.tags["genai.registered"] == "reg/3"


def test_name_option_and_a_tie_does_not_take_the_alias(tmp_path, genai_main):
    a, b = make_run(tmp_path, "a", 0.7), make_run(tmp_path, "b", 0.7)
    assert register(genai_main, a, "--name", "adder")["alias"] == "champion"
    tie = register(genai_main, b, "--name", "adder")
    assert tie["alias"] == "challenger" and "does not beat" in tie["why"]
    assert client(tmp_path / "runs").get_model_version_by_alias("adder", "champion").version == 1


def test_registering_a_run_again_adds_no_second_version(tmp_path, genai_main):
    # `genai run` registers to MLflow, then SageMaker: a SageMaker failure and a rerun registers the run again.
    a, b = make_run(tmp_path, "a", 0.7), make_run(tmp_path, "b", 0.6)
    first = register(genai_main, a)
    again = register(genai_main, a)
    assert (first["version"], first["new_version"]) == ("1", True)
    assert (again["version"], again["new_version"], again["alias"]) == ("1", False, "champion")
    assert "champion already" in again["why"]
    other = register(genai_main, b)
    assert (other["version"], other["alias"]) == ("2", "challenger")
    assert register(genai_main, b)["version"] == "2"
    c = client(tmp_path / "runs")
    assert sorted(int(v.version) for v in c.search_model_versions("name = 'reg'")) == [1, 2]
    assert str(c.get_model_version_by_alias("reg", "champion").version) == "1"


def test_bad_input_is_one_clear_error(tmp_path, genai_main):
    def fails(*args) -> str:
        code, out, err = genai_main("register", *map(str, args))
        assert code == 2 and out == "" and "Traceback" not in err
        return err

    assert "not a run folder (no recipe.yaml)" in fails(tmp_path)
    unevaluated = make_run(tmp_path, "r1", None)
    err = fails(unevaluated)
    assert "no eval results to register" in err and f"genai eval {unevaluated}" in err
    (unevaluated / "manifest.json").unlink()
    assert "not a finished run (no manifest.json)" in fails(unevaluated)
    assert "--dry-run shows the SageMaker requests" in fails(make_run(tmp_path, "r2", 0.6), "--dry-run")
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # nothing was registered


def test_registry_sagemaker_without_settings_fails_before_training(tmp_path, monkeypatch):
    import genai.registry.registration  # noqa: F401 - its preflight check
    from genai import preflight
    from genai.errors import GenaiError
    from genai.pipeline import run_pipeline

    # Only the cheap checks (the model and data checks load a tokenizer): the registry's is among them.
    monkeypatch.setattr(preflight, "CHECKS", [c for c in preflight.CHECKS if c[0] in ("registry", "output")])
    make_run(tmp_path, "r1", None)
    with pytest.raises(GenaiError, match="sagemaker.role and sagemaker.bucket must be set"):
        run_pipeline(tmp_path / "reg.yaml", ["registry.sagemaker=true"], serve=False)
    assert sorted(p.name for p in (tmp_path / "runs" / "reg").iterdir()) == ["r1"]  # no new run was started
    # registry.mlflow alone needs nothing more than MLflow installed:
    preflight.preflight(load_recipe(tmp_path / "reg.yaml", ["registry.mlflow=true"]))


def test_genai_run_registers_after_a_passed_gate(tmp_path):
    out = tmp_path / "runs"
    proc = genai_cli(
        "run",
        ROOT / "recipes" / "quickstart.yaml",
        f"train.output_dir={out}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "train.max_steps=10",
        "train.save_steps=null",
        "train.eval_steps=null",
        "train.exact_match.limit=0",
        "tracking.tensorboard=false",
        "eval.tasks=[quickstart_addition]",
        "eval.limit=8",
        "eval.gate=[{task: quickstart_addition, metric: exact_match, min: 0}]",
        "registry.mlflow=true",
        "registry.model_name=adder",
        "--no-serve",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (out / "quickstart").iterdir()
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert [stages[s]["status"] for s in ("train", "eval", "gate", "register", "serve")] == [
        "done",
        "done",
        "passed",
        "done",
        "skipped",
    ]
    assert stages["register"]["name"] == "adder" and stages["register"]["alias"] == "champion"
    assert "4/5 register" in proc.stderr and "registered: adder version 1 (champion)" in proc.stdout

    c = client(out)
    v1 = c.get_model_version_by_alias("adder", "champion")
    tracked = json.loads((run / "tracking.json").read_text())["mlflow_run_id"]
    assert v1.run_id == tracked  # the training's own MLflow run
    assert len(c.get_metric_history(tracked, "loss")) >= 1 and v1.tags["genai.run"] == run.name
    table = json.loads((run / "eval" / "hf" / "table.json").read_text())
    (row,) = table["rows"]
    assert float(v1.tags["eval.quickstart_addition.exact_match_strip.tuned"]) == row["tuned"]
    assert v1.tags["genai.base_model"] == "genai/tiny-llama" and len(v1.tags["genai.base_model_sha256"]) == 64

    # The run `genai run` registered, registered again by hand: its version, still the champion, no second one.
    again = genai_cli("register", run, "--name", "adder")
    assert again.returncode == 0, again.stderr[-2000:]
    res = json.loads(again.stdout)
    assert (res["version"], res["alias"], res["new_version"]) == ("1", "champion", False)
    assert [v.run_id for v in c.search_model_versions("name = 'adder'")] == [tracked]


def test_a_max_rule_gates_a_lower_is_better_metric_and_the_lower_value_is_champion(tmp_path, genai_main):
    # e.g. toxicity_rate or over_refusal_rate: a `max` rule, and the registry compares downwards.
    rule = GateRule(task="arith", metric="exact_match", max=0.5)
    low, lower, high = (make_run(tmp_path, n, v, rule=rule) for n, v in (("l1", 0.4), ("l2", 0.2), ("h", 0.7)))
    table = json.loads((high / "eval" / "hf" / "table.json").read_text())
    assert table["passed"] is False and table["gate"][0]["lower_is_better"] is True  # 0.7 > max 0.5
    assert register(genai_main, low)["alias"] == "champion"
    better = register(genai_main, lower)
    assert better["alias"] == "champion" and "0.2 beats the champion's 0.4" in better["why"]
    assert register(genai_main, high)["alias"] == "challenger"
