"""Every family x {LoRA, DoRA, full}: trained a few steps on its tiny build, merged, and loaded in vLLM
(the adapter by name where vLLM takes it, the merged model, the fully fine-tuned model), with greedy
answers and log-probs equal to transformers' in fp32 (`genai families --check`)."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from genai.families import FAMILIES
from genai.serving.parity import LOGPROB_TOLERANCE
from tests.conftest import genai_cli

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

# What each method serves: a LoRA adapter by name and merged; DoRA merged only (vLLM takes plain LoRA
# by name); a full fine-tune as the model it is.
SERVED = {"lora": {"adapter", "merged"}, "dora": {"merged"}, "full": {"model"}}


def test_every_family_and_method_loads_in_vllm_with_greedy_parity():
    # Two processes, half the families each: an engine's start and stop is mostly one busy core.
    names = list(FAMILIES)
    with ThreadPoolExecutor(2) as pool:
        procs = list(
            pool.map(
                lambda half: genai_cli("families", *half, "--check", "--json", timeout=900), (names[::2], names[1::2])
            )
        )
    cells = [c for proc in procs for c in json.loads(proc.stdout)]
    failed = [c for c in cells if not c["passed"]]
    assert all(p.returncode == 0 for p in procs) and not failed, (failed, [p.stderr[-2000:] for p in procs])
    compared = {(c["family"], c["method"], c["artifact"]): c for c in cells if c["max_logprob_gap"] is not None}
    expected = {(f, m, a) for f in FAMILIES for m, kinds in SERVED.items() for a in kinds}
    assert set(compared) == expected
    assert all(c["max_logprob_gap"] <= LOGPROB_TOLERANCE for c in compared.values())
    dora_adapters = [c for c in cells if c["method"] == "dora" and c["artifact"] == "adapter"]
    assert len(dora_adapters) == len(FAMILIES) and all("plain LoRA only" in c["reason"] for c in dora_adapters)
