"""Bad input to train, eval, serve, generate, chat, merge, runs and sagemaker: one clear message, exit 2, no
traceback, nothing started (validate and preprocess: tests/test_bad_inputs_data.py)."""

import json
import socket

import pytest

from genai.recipe import load_recipe
from genai.runs import new_run
from tests.conftest import genai_cli

RECIPE = """\
name: r
model: {name_or_path: genai/tiny-llama}
data: {train: [{path: d.jsonl}]}
train: {output_dir: runs}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A recipe, a finished (fabricated) LoRA run of it, and input files, in one folder."""
    root = tmp_path_factory.mktemp("bad")
    (root / "r.yaml").write_text(RECIPE)
    (root / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (root / "no_prompt.jsonl").write_text('{"nope": 1}\n')
    (root / "malformed.jsonl").write_text("{bad\n")
    r = load_recipe(root / "r.yaml")
    run = new_run(r)
    run.write_recipe(r)
    run.write_manifest(r, status="complete", artifact={"kind": "adapter", "path": "adapter", "merged": None})
    (run.path / "adapter").mkdir()
    (run.path / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": "b"}))
    (run.path / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    gone = new_run(r)  # a run whose weights were deleted
    gone.write_recipe(r)
    gone.write_manifest(r, status="complete", artifact={"kind": "model", "path": "model", "merged": None})
    (gone.path / "model").mkdir()
    (gone.path / "model" / "config.json").write_text("{}")
    return {"ROOT": str(root), "RUN": str(run.path), "GONE": str(gone.path), "RECIPE": str(root / "r.yaml")}


@pytest.fixture(scope="module")
def taken_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield str(s.getsockname()[1])


CASES = [
    # train
    (["train", "{ROOT}/missing.yaml"], "missing.yaml: recipe file not found"),
    (["train", "{RECIPE}", "--checkpoint", "/nonexistent"], "/nonexistent: not a complete checkpoint"),
    (["train", "{RECIPE}", "--run-dir", "{RUN}"], "holds a finished run"),
    (["train", "{RECIPE}", "--resume"], "no unfinished run of recipe 'r' with a checkpoint"),
    (["train", "{RECIPE}", "train.distributed.profile=fsdp"], "'fsdp' needs GPUs; on CPU use 'ddp'"),
    (["train", "{RECIPE}", "model.load_in_4bit=true"], "QLoRA needs a CUDA GPU"),
    (["train", "{RECIPE}", "lora.target_modules=[no_such_proj]"], "lora.target_modules"),
    (
        ["train", "{RECIPE}", "train.method=grpo", "train.grpo.generator=vllm", "lora.use_dora=true"],
        "train.grpo.generator: vllm samples in one training process from an unquantized model with plain LoRA; "
        "this recipe has lora.use_dora: true",
    ),
    (
        ["train", "{RECIPE}", "train.method=grpo", "train.grpo.generator=vllm", "train.distributed.profile=ddp"],
        "this recipe has train.distributed.profile: ddp (several processes)",
    ),
    (["train", "{RECIPE}", "eval.tasks=[quickstart_additon]"], "unknown task 'quickstart_additon'"),
    (["train", "{RECIPE}", "train.output_dir={RECIPE}/runs"], "train.output_dir: cannot write to"),
    (["train", "{RECIPE}", "model.name_or_path={ROOT}/no-model"], "local model folder not found"),
    (["train", "{RECIPE}", "model.name_or_path=acme/not-cached"], "not in the local Hugging Face cache"),
    # eval
    (["eval"], "genai eval needs a recipe or a run folder"),
    (["eval", "/nonexistent"], "not a recipe, a run folder, an adapter or a model folder"),
    (["eval", "{RUN}", "--backend", "nope"], "--backend: unknown backend 'nope'"),
    (["eval", "{RUN}/adapter"], "genai eval takes a recipe or a run folder"),
    (["eval", "{RUN}"], "eval.tasks is empty"),
    (["eval", "{RUN}", "eval.tasks=[addition_mc]", "eval.gate=[{task: x, metric: acc, min: 1}]"], "rule on task 'x'"),
    (
        [
            "eval",
            "{RUN}",
            "eval.tasks=[addition_mc]",
            "eval.backend=endpoint",
            "eval.endpoint.url=http://127.0.0.1:1/v1",
        ],
        "endpoint http://127.0.0.1:1/v1 is unreachable",
    ),
    (["eval", "{GONE}", "eval.tasks=[addition_mc]"], "the model's files are missing (*.safetensors)"),
    # serve
    (["serve", "/nonexistent"], "not a recipe, a run folder, an adapter or a model folder"),
    (["serve", "{RUN}/adapter", "train.learning_rate=1"], "only serve.* settings apply when serving a folder"),
    (["serve", "{RUN}", "serve.artifact=merged"], "no merged model"),
    (["serve", "{RUN}", "serve.port=99999"], "serve.port: Input should be less than or equal to 65535"),
    (["serve", "{RUN}", "serve.port={PORT}"], "is not free"),
    (["serve", "{RUN}", "serve.host=0.0.0.0"], "no API key is set"),
    (["serve", "{GONE}"], "the model's files are missing (*.safetensors): deleted or moved?"),
    (["serve", "{RECIPE}"], "no run of recipe 'r' has passed its gate"),
    # generate, chat
    (["generate", "{RUN}", "-i", "{ROOT}/missing.jsonl", "-o", "{ROOT}/o.jsonl"], "missing.jsonl: file not found"),
    (
        ["generate", "{RUN}", "-i", "{ROOT}/malformed.jsonl", "-o", "{ROOT}/o.jsonl"],
        "malformed.jsonl:1: malformed JSON",
    ),
    (
        ["generate", "{RUN}", "-i", "{ROOT}/no_prompt.jsonl", "-o", "{ROOT}/o.jsonl"],
        "no_prompt.jsonl:1: each line needs",
    ),
    (["chat", "/nonexistent"], "not a recipe, a run folder, an adapter or a model folder"),
    # merge, runs, report
    (["merge", "/nonexistent"], "no adapter_config.json (merging needs a LoRA run)"),
    (["runs", "list", "/nonexistent"], "/nonexistent: no such folder"),
    (["runs", "show", "{ROOT}"], "not a run folder (no recipe.yaml)"),
    (["report", "{ROOT}"], "not a run folder (no recipe.yaml)"),
    # sagemaker
    (
        ["sagemaker", "deploy", "/nonexistent"],
        "not a run folder (no recipe.yaml), an s3:// run prefix or a model package ARN",
    ),
    (["sagemaker", "train", "{RECIPE}", "--dry-run"], "sagemaker.role and sagemaker.bucket must be set"),
]


@pytest.mark.parametrize("argv,needle", CASES, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_clear_error(world, taken_port, argv, needle, genai_main, monkeypatch):
    values = {**world, "PORT": taken_port}
    args = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        args.append(arg)
    monkeypatch.chdir(world["ROOT"])
    monkeypatch.setenv("GENAI_API_KEY", "")
    code, out, err = genai_main(*args)  # in process: the console script's own path is tested below
    assert code == 2, f"rc={code}\n{err[-2000:]}"
    assert needle in err, err[-2000:]
    assert "Traceback" not in err
    assert err.count("error:") == 1  # one message


def test_through_the_console_script(world, taken_port):
    proc = genai_cli("serve", world["RUN"], f"serve.port={taken_port}", cwd=world["ROOT"])
    assert proc.returncode == 2 and "is not free" in proc.stderr and "Traceback" not in proc.stderr
