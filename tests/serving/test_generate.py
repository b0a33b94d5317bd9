"""`genai generate`: offline vLLM batch generation on the artifact (LoRA by name)."""

import json

import pytest

from tests.conftest import genai_cli

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_generate_chat_and_completion_prompts(quickstart_run, tmp_path):
    prompts = tmp_path / "in.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                # Questions from the training set: the tuned model answers them all.
                {"messages": [{"role": "user", "content": "What is 43 + 91?"}]},
                {"messages": [{"role": "user", "content": "Add 52 and 34."}], "max_tokens": 6},
                {"prompt": "<s><|im_start|>user\nCompute 69 + 59.<|im_end|>\n<|im_start|>assistant\n"},
            ]
        )
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    proc = genai_cli("generate", quickstart_run, "-i", prompts, "-o", out, "--max-tokens", "8", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["completion"].strip() for r in rows] == ["134", "86", "128"]
    assert all(r["model"] == "quickstart" for r in rows)


def test_merged_artifact_generates_the_same(quickstart_run, tmp_path):
    """`genai merge` output is a plain model folder that vLLM serves with the artifact's template/EOS."""
    merged = tmp_path / "merged"
    assert genai_cli("merge", quickstart_run, "--out", merged).returncode == 0
    prompts = tmp_path / "in.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "What is 43 + 91?"}]}) + "\n")
    out = tmp_path / "out.jsonl"
    proc = genai_cli("generate", merged, "-i", prompts, "-o", out, "--max-tokens", "8", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text())["completion"] == "134"  # stopped by the artifact's EOS


def test_generate_bad_input_line(quickstart_run, tmp_path):
    prompts = tmp_path / "in.jsonl"
    prompts.write_text('{"prompt": "x"}\n{"oops": 1}\n')
    proc = genai_cli("generate", quickstart_run, "-i", prompts, "-o", tmp_path / "o.jsonl")
    assert proc.returncode == 2 and "in.jsonl:2" in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()
