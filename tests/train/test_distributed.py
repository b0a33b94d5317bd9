"""Two CPU processes (DDP over gloo, launched by `genai train`) give the same adapter as one."""

import json

from safetensors.torch import load_file

from tests.conftest import genai_cli

COMMON = [
    "train.max_steps=8",
    "train.save_steps=null",
    "train.exact_match.limit=0",
    "lora.dropout=0.0",
    "train.eval_steps=4",
]


def test_ddp_two_processes_match_one_process(small_recipe, tmp_path):
    one = genai_cli("train", small_recipe, "--run-dir", tmp_path / "one", "train.micro_batch_size=4", *COMMON)
    assert one.returncode == 0, one.stderr[-2000:]
    two = genai_cli(
        "train",
        small_recipe,
        "--run-dir",
        tmp_path / "two",
        "train.micro_batch_size=2",
        "train.distributed.profile=ddp",
        "train.distributed.num_processes=2",
        "train.distributed.main_process_port=29533",
        *COMMON,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["processes"] == 2
    a = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter" / "adapter_model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
