"""Training end to end on the tiny model: loss drops, the artifact is complete and loadable."""

import json

import pytest
import torch

from genai.recipe import load_recipe
from genai.training.launch import start_training
from tests.conftest import genai_cli


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_quiet_training_prints_nothing_but_keeps_its_metrics(small_recipe, capsys):
    recipe = load_recipe(small_recipe, ["train.max_steps=10", "train.exact_match.limit=0"])
    run = start_training(recipe, verbose=False).run_dir
    out = capsys.readouterr()
    assert "step" not in out.out + out.err
    assert [m["step"] for m in metrics(run) if "loss" in m] == [5, 10]


def test_lora_training_loss_drops_and_artifact_is_self_describing(small_recipe):
    result = start_training(load_recipe(small_recipe), verbose=True)
    run = result.run_dir
    losses = [m["loss"] for m in metrics(run) if "loss" in m]
    assert losses[-1] < losses[0] * 0.8, losses
    assert any("eval_loss" in m for m in metrics(run))
    assert all(m["tokens_per_s"] > 0 for m in metrics(run) if "loss" in m)

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["steps"] == 40
    assert manifest["artifact"]["kind"] == "adapter"
    # On CPU: per-sample attention in packed rows, the loss over trained positions, the lean SwiGLU and LoRA,
    # large tensors mapped (genai.training.heap), no Liger.
    assert manifest["kernels"] == {
        "attention": "per-sample (packed rows)",
        "loss": "trained positions only",
        "liger": False,
        "lean_swiglu": True,
        "lean_lora": True,
        "cpu_heap": "blocks >= 4 MiB mapped",
    }
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step-0000030", "step-0000040"]  # keep the last 2
    # accelerate's state (model, optimizer, RNG) + ours; the model state holds the adapter only.
    ckpt = run / "checkpoints" / "step-0000040"
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "scheduler.pt", "state.json"} <= {
        p.name for p in ckpt.iterdir()
    }
    from safetensors import safe_open

    with safe_open(str(ckpt / "model.safetensors"), framework="pt") as fh:
        keys = list(fh.keys())
    assert keys and all("lora_" in k for k in keys)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    adapter = run / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(adapter)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    gen = GenerationConfig.from_pretrained(adapter)
    assert tok.convert_tokens_to_ids("<|im_end|>") in gen.eos_token_id
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"])
    model = PeftModel.from_pretrained(base, adapter)
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_merge_matches_adapter_outputs(small_recipe, tmp_path):
    result = start_training(
        load_recipe(small_recipe, ["train.max_steps=10", "train.merge=true", "train.save_steps=null"]), verbose=False
    )
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = result.run_dir
    cfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"]), run / "adapter"
    ).eval()
    merged = AutoModelForCausalLM.from_pretrained(run / "merged").eval()
    ids = torch.tensor([[1, 3, 50, 60, 70, 4]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, peft_model(ids).logits, atol=1e-4, rtol=1e-4)
    assert json.loads((run / "manifest.json").read_text())["artifact"]["merged"] == "merged"
    # `genai merge RUN` writes the same standalone model elsewhere.
    out = genai_cli("merge", run, "--out", tmp_path / "m2")
    assert out.returncode == 0, out.stderr
    m2 = AutoModelForCausalLM.from_pretrained(tmp_path / "m2").eval()
    with torch.no_grad():
        torch.testing.assert_close(m2(ids).logits, merged(ids).logits)


@pytest.mark.parametrize(
    "overrides,kind",
    [
        (["lora.use_dora=true"], "adapter"),
        (["lora.enabled=false", "train.learning_rate=1e-3"], "model"),
        (["data.packing=false", "train.gradient_accumulation_steps=2"], "adapter"),
    ],
)
def test_variants_train(small_recipe, overrides, kind):
    result = start_training(
        load_recipe(
            small_recipe, ["train.max_steps=12", "train.save_steps=null", "train.exact_match.limit=0", *overrides]
        ),
        verbose=True,
    )
    losses = [m["loss"] for m in metrics(result.run_dir) if "loss" in m]
    assert losses[-1] < losses[0]
    assert (result.run_dir / kind).is_dir()
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    padded = "data.packing=false" in overrides  # one sample per row: transformers' own sdpa
    assert manifest["kernels"]["attention"] == ("sdpa" if padded else "per-sample (packed rows)")


def test_qlora_on_cpu_is_a_clear_error(small_recipe):
    out = genai_cli("train", small_recipe, "model.load_in_4bit=true")
    assert out.returncode == 2
    assert "QLoRA needs a CUDA GPU" in out.stderr and "Traceback" not in out.stderr


def test_quickstart_learns_the_task(quickstart_run):
    """The README's main job: held-out exact match from ~0% to >= 90%."""
    manifest = json.loads((quickstart_run / "manifest.json").read_text())
    assert manifest["metrics"]["exact_match_before"] <= 0.05
    assert manifest["metrics"]["exact_match_after"] >= 0.9


def test_genai_merge_records_the_merged_model_in_the_manifest(small_recipe):
    run = start_training(
        load_recipe(small_recipe, ["train.max_steps=4", "train.save_steps=null", "train.exact_match.limit=0"]),
        verbose=False,
    ).run_dir
    assert json.loads((run / "manifest.json").read_text())["artifact"]["merged"] is None
    out = genai_cli("merge", run)
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "manifest.json").read_text())["artifact"]["merged"] == "merged"
    assert (run / "merged" / "config.json").exists()
    listed = json.loads(genai_cli("runs", "show", run, "--json").stdout)
    assert listed["manifest"]["artifact"]["merged"] == "merged"


def test_a_checkpoint_from_another_layout_is_a_clear_error(small_recipe, tmp_path):
    ckpt = tmp_path / "runs" / "small" / "old" / "checkpoints" / "step-0000010"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text('{"step": 10}')
    (ckpt / "trainable.safetensors").write_bytes(b"")
    out = genai_cli("train", small_recipe, "--checkpoint", ckpt)
    assert out.returncode == 2 and "not a checkpoint of this genai version" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_sharded_profile_on_cpu_is_a_clear_error_before_any_run_folder(small_recipe, tmp_path):
    out = genai_cli("train", small_recipe, "train.distributed.profile=fsdp", "train.distributed.num_processes=1")
    assert out.returncode == 2 and "'fsdp' needs GPUs; on CPU use 'ddp'" in out.stderr
    assert not (tmp_path / "runs").exists()
