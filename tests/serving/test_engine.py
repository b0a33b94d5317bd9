"""One declaration of engine options, rendered for `vllm serve`, `vllm.LLM` and lm-eval alike."""

import json
from pathlib import Path

from genai.recipe import ServeSection
from genai.serving.artifact import ServeTarget
from genai.serving.engine import EngineOptions
from genai.vllm_env import engine_env


def lora_target(tmp_path: Path) -> ServeTarget:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "generation_config.json").write_text("{}")
    (adapter / "chat_template.jinja").write_text("{{ messages }}")
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"dtype": "float32"}))
    return ServeTarget(
        model=str(base), model_name="base", artifact_dir=adapter, adapter=adapter, adapter_name="tuned", lora_rank=16
    )


def flag_values(args: list[str]) -> dict:
    out, i = {}, 0
    while i < len(args):
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[args[i]] = args[i + 1]
            i += 2
        else:
            out[args[i]] = True
            i += 1
    return out


def test_the_three_renderings_carry_the_same_settings(tmp_path):
    serve = ServeSection(max_model_len=512, max_num_seqs=8, extra_args=["--disable-log-requests"])
    opts = EngineOptions.build(lora_target(tmp_path), serve, gpu=False, seed=7)
    cli, llm, lm = flag_values(opts.cli_args()), opts.llm_kwargs(), opts.lm_eval_args()
    assert cli["--model"] == llm["model"] == lm["pretrained"] == str(tmp_path / "base")
    assert cli["--tokenizer"] == llm["tokenizer"] == lm["tokenizer"] == str(tmp_path / "adapter")
    assert cli["--dtype"] == llm["dtype"] == lm["dtype"] == "float32"  # an fp32 artifact stays fp32 on CPU
    assert cli["--max-model-len"] == "512" and llm["max_model_len"] == lm["max_model_len"] == 512
    assert cli["--max-num-seqs"] == "8" and llm["max_num_seqs"] == lm["max_num_seqs"] == 8
    assert cli["--enforce-eager"] is True and llm["enforce_eager"] is True and lm["enforce_eager"] is True
    assert cli["--seed"] == "7" and llm["seed"] == lm["seed"] == 7
    assert cli["--max-lora-rank"] == "16" and llm["max_lora_rank"] == lm["max_lora_rank"] == 16
    assert cli["--lora-modules"] == f"tuned={tmp_path / 'adapter'}" and lm["lora_local_path"] == str(
        tmp_path / "adapter"
    )
    assert cli["--generation-config"] == llm["generation_config"] == str(tmp_path / "adapter")
    assert cli["--chat-template"] == str(tmp_path / "adapter" / "chat_template.jinja")
    assert opts.cli_args()[-1] == "--disable-log-requests"  # the user's extra args come last, as written
    assert "gpu_memory_utilization" not in llm and "gpu_memory_utilization" not in lm  # CPU


def test_defaults_are_the_engines_own(tmp_path):
    """No max_model_len unless the recipe sets one: every path then uses the model's own maximum."""
    opts = EngineOptions.build(lora_target(tmp_path), ServeSection(), gpu=True)
    assert "--max-model-len" not in opts.cli_args()
    assert "max_model_len" not in opts.llm_kwargs() and "max_model_len" not in opts.lm_eval_args()
    assert opts.llm_kwargs()["gpu_memory_utilization"] == 0.9 and "enforce_eager" not in opts.llm_kwargs()
    assert opts.dtype == "auto"  # vLLM's own choice on GPUs


def test_cpu_engine_environment():
    env = engine_env(2, gpu=False)
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    assert engine_env(1, gpu=True) == {}


def tool_target(tmp_path: Path, model: str, tool_calls: int) -> ServeTarget:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "manifest.json").write_text(json.dumps({"data": {"tool_calls": tool_calls}}))
    return ServeTarget(model=model, model_name="m", artifact_dir=tmp_path, run_dir=run, base=model)


def test_a_run_trained_on_tools_is_served_with_its_familys_tool_parser(tmp_path):
    args = EngineOptions.build(tool_target(tmp_path, "Qwen/Qwen3-0.6B", 12), ServeSection(), gpu=False).cli_args()
    assert args[args.index("--tool-call-parser") + 1] == "hermes" and "--enable-auto-tool-choice" in args
    # No tools in the data: no parser, unless serve.tools asks for one.
    plain = tool_target(tmp_path, "meta-llama/Llama-3.2-1B-Instruct", 0)
    assert "--tool-call-parser" not in EngineOptions.build(plain, ServeSection(), gpu=False).cli_args()
    forced = EngineOptions.build(plain, ServeSection(tools=True), gpu=False).cli_args()
    assert forced[forced.index("--tool-call-parser") + 1] == "llama3_json"


def test_tools_for_a_family_without_a_tool_parser_is_one_clear_error(tmp_path):
    import pytest

    from genai.errors import GenaiError

    with pytest.raises(GenaiError, match="vLLM has no tool-call parser for Gemma 3"):
        EngineOptions.build(tool_target(tmp_path, "google/gemma-3-1b-it", 3), ServeSection(), gpu=False)
