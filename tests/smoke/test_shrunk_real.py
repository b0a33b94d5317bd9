"""With the real model's files at hand (here: a Hugging Face cache holding Qwen3-0.6B's config beside a
Qwen3 tokenizer), the smoke trains the real tokenizer and config at tiny size instead of the tiny build."""

import json
import shutil
from pathlib import Path

import pytest

from genai.families import ensure_tiny_family_model, get_family
from genai.families.shrunk import real_files, shrunk_config
from genai.recipe import ModelSection
from tests.conftest import ROOT, genai_cli

# The config.json files as published (their weights are never read).
QWEN3_0_6B = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "max_window_layers": 28,
    "model_type": "qwen3",
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
SMOLLM2_1_7B = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 8192,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 24,
    "num_key_value_heads": 32,
    "pad_token_id": 2,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 130000,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.42.3",
    "use_cache": True,
    "vocab_size": 49152,
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def real_folder(folder, family="qwen3", config=QWEN3_0_6B):
    """A folder with a real config and the family's tokenizer (the tiny build's: offline, same special tokens)."""
    tiny = ensure_tiny_family_model(family)
    folder.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (tiny / name).exists():
            shutil.copy(tiny / name, folder / name)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_real_files_from_a_local_folder_or_none(tmp_path):
    folder = real_folder(tmp_path / "Qwen3-0.6B")
    assert real_files(ModelSection(name_or_path=str(folder))) == (folder, "the local folder")
    (folder / "tokenizer.json").unlink()
    assert real_files(ModelSection(name_or_path=str(folder)))[0] is None
    assert real_files(ModelSection(name_or_path="genai/tiny-qwen3"))[0] is None


def test_shrunk_config_keeps_the_real_settings_at_tiny_dimensions(tmp_path):
    from transformers import AutoTokenizer

    family = get_family("qwen3")
    tok = AutoTokenizer.from_pretrained(real_folder(tmp_path / "real"))
    config = shrunk_config(family, QWEN3_0_6B, tok)
    tiny = dict(family.tiny.config)
    assert config.hidden_size == tiny["hidden_size"] and config.num_hidden_layers == tiny["num_hidden_layers"]
    assert config.vocab_size == 151936 and config.rope_parameters["rope_theta"] == 1000000
    assert config.max_position_embeddings == 40960 and config.tie_word_embeddings
    assert config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")


@pytest.mark.slow
@pytest.mark.vllm
def test_smoke_on_the_real_files_from_the_hugging_face_cache(tmp_path):
    # SmolLM2's 49k-row vocabulary keeps the one-time build to ~20 s here (Qwen3's 152k: ~60 s).
    repo = tmp_path / "hf" / "models--HuggingFaceTB--SmolLM2-1.7B-Instruct"
    real_folder(repo / "snapshots" / ("c1" * 20), "smollm2", SMOLLM2_1_7B)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c1" * 20)
    out = tmp_path / "runs"
    proc = genai_cli(
        "run",
        ROOT / "recipes" / "smollm2-1.7b-sharegpt-qlora.yaml",
        "--smoke",
        f"train.output_dir={out}",
        env={"HF_HUB_CACHE": str(tmp_path / "hf")},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (saved,) = out.glob("*-smoke/*/smoke.json")
    checklist = json.loads(saved.read_text())
    said = checklist["changes"][0]
    assert "real tokenizer and config (from the Hugging Face cache)" in said, said
    config = json.loads((Path(said.rsplit(": ", 1)[1]) / "config.json").read_text())
    rope = config.get("rope_parameters") or config
    assert config["vocab_size"] == 49152 and rope["rope_theta"] == 130000 and config["hidden_size"] == 64
    assert config["rms_norm_eps"] == 1e-05 and config["architectures"] == ["LlamaForCausalLM"]
    items = {i["name"]: i["status"] for i in checklist["items"]}
    assert items["greedy answer equals transformers fp32 (LoRA by name)"] == "pass"
    assert items["generation stops at the stop token (LoRA by name)"] == "pass"
