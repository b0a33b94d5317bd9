"""The run layer: one place that knows a run folder, its manifest and the lookups every verb uses."""

import json
import os
import time

import pytest

from genai.errors import GenaiError
from genai.recipe import load_recipe
from genai.runs import (
    Run,
    choose_run,
    latest_run,
    latest_trained_run,
    new_run,
    open_run,
    resumable_run,
    runs_under,
)

RECIPE = "name: r\nmodel: {name_or_path: genai/tiny-llama}\ndata: {train: [{path: d.jsonl}]}\n"


def recipe(tmp_path, *overrides):
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (tmp_path / "r.yaml").write_text(RECIPE)
    return load_recipe(tmp_path / "r.yaml", [f"train.output_dir={tmp_path / 'runs'}", *overrides])


def make(r, *, trained: bool, age: float) -> Run:
    run = new_run(r)
    run.write_recipe(r)
    if trained:
        run.write_manifest(r, status="complete", artifact={"kind": "adapter", "path": "adapter", "merged": None})
    os.utime(run.recipe_file, (time.time() - age, time.time() - age))
    return run


def test_lookups(tmp_path):
    r = recipe(tmp_path)
    assert latest_run(r) is None and resumable_run(r) is None
    with pytest.raises(GenaiError, match="no finished run of recipe 'r'"):
        latest_trained_run(r)
    old = make(r, trained=True, age=100)
    new = make(r, trained=False, age=10)
    assert latest_run(r) == new and latest_trained_run(r) == old
    assert resumable_run(r) == new  # the newest run, same recipe, not over
    assert resumable_run(recipe(tmp_path, "lora.r=4")) is None  # another recipe never continues it
    assert [x.path for x in runs_under(tmp_path / "runs")] == [old.path, new.path]
    assert new.summary()["status"] == "incomplete" and old.summary()["status"] == "complete"


def gated(run: Run, passed: bool | None, backend: str = "hf") -> Run:
    """Give a run an eval table with a gate verdict (None: leave it unevaluated)."""
    if passed is not None:
        table = run.eval_table_file(backend)
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(json.dumps({"rows": [], "gate": [{"passed": passed}], "passed": passed}))
    return run


def adapter_run(tmp_path, *, age: float = 0, passed: bool | None = None) -> Run:
    """A finished LoRA run of this file's recipe (adapter config and a weights file), optionally gated."""
    run = gated(make(recipe(tmp_path), trained=True, age=age), passed)
    (run.path / "adapter").mkdir()
    (run.path / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": "b"}))
    (run.path / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    return run


def test_a_recipe_means_its_newest_run_that_passed_its_gate(tmp_path):
    r = recipe(tmp_path)
    good = gated(make(r, trained=True, age=300), True)
    bad = gated(make(r, trained=True, age=200), False)
    ungated = make(r, trained=True, age=100)
    make(r, trained=False, age=10)  # an unfinished run is never chosen
    run, why = choose_run(r)
    assert run == good and "passed its gate" in why
    assert f"{bad.name} (gate FAILED)" in why and f"{ungated.name} (not evaluated)" in why
    assert choose_run(r, latest=True)[0] == ungated
    # `genai run`'s gate stage is the verdict when there is one.
    ungated.mark_stage("gate", "passed", 0.0)
    assert choose_run(r)[0] == ungated


def test_no_run_passed_its_gate(tmp_path):
    r = recipe(tmp_path)
    gated(make(r, trained=True, age=200), False)
    newest = make(r, trained=True, age=100)
    with pytest.raises(GenaiError, match="no run of recipe 'r' has passed its gate") as err:
        choose_run(r)
    assert "--latest" in err.value.hint
    # eval is how a run gets gated: it falls back to the newest finished run.
    run, why = choose_run(r, fallback=True)
    assert run == newest and "no run of recipe 'r' has passed its gate yet" in why


def test_stages_and_pipeline_end(tmp_path):
    r = recipe(tmp_path)
    run = make(r, trained=True, age=0)
    assert run.stages() == {} and not run.pipeline_finished
    run.mark_stage("gate", "passed", 0.0, rules=1)
    assert not run.pipeline_finished and resumable_run(r) == run
    run.mark_stage("serve", "skipped", 0.0)
    assert run.pipeline_finished and resumable_run(r) is None
    assert json.loads(run.manifest_file.read_text())["stages"]["gate"] == {
        "status": "passed",
        "seconds": 0.0,
        "rules": 1,
    }


def test_merged_model_is_recorded_only_inside_the_run(tmp_path):
    r = recipe(tmp_path)
    run = make(r, trained=True, age=0)
    run.record_merged(tmp_path / "elsewhere")
    assert run.artifact()["merged"] is None
    run.record_merged(run.merged_dir)
    assert run.artifact() == {"kind": "adapter", "path": "adapter", "merged": "merged"}


def test_unfinished_or_foreign_folders_are_clear_errors(tmp_path):
    with pytest.raises(GenaiError, match="not a run folder"):
        open_run(tmp_path)
    r = recipe(tmp_path)
    run = make(r, trained=False, age=0)
    with pytest.raises(GenaiError, match="not a finished run"):
        run.manifest()
    assert open_run(run.path).describe()["manifest"]["status"] == "incomplete"


def test_runs_show_prints_the_manifest_as_json(tmp_path):
    from tests.conftest import genai_cli

    run = gated(adapter_run(tmp_path), True)
    out = genai_cli("runs", "show", run.path)
    assert out.returncode == 0, out.stderr
    manifest_text, _, tables = out.stdout.partition("\neval (hf):\n")
    assert json.loads(manifest_text)["artifact"] == {"kind": "adapter", "path": "adapter", "merged": None}
    assert tables.startswith("| task |")
