"""The lean LoRA forward (genai.training.lean_lora) trains exactly what PEFT's forward trains: the same loss
and gradients (with a scaling that is not a power of two, and with dropout), while inference and a
disabled adapter (what DPO's reference model is) run PEFT's own forward unchanged."""

import pytest
import torch

from genai.families import FAMILIES, ensure_tiny_family_model
from genai.training.lean_lora import use_lean_lora


def _lora_model(name, dropout):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from genai.models import soft_capping_attention

    path = ensure_tiny_family_model(name)
    extra = {"attn_implementation": a} if (a := soft_capping_attention(path)) else {}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **extra)
    # alpha/r = 5/3: a scaling whose product is rounded; init_lora_weights=False: B non-zero, A and B get gradients.
    config = LoraConfig(r=3, lora_alpha=5, lora_dropout=dropout, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, config)


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout masks for both forwards
    out = model(input_ids=ids, labels=ids, use_cache=False)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_lean_lora_gives_the_same_loss_and_gradients(name, dropout):
    model = _lora_model(name, dropout)
    model.train()
    ids = torch.randint(3, model.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    want, want_grads = _loss_and_grads(model, ids)
    model.eval()
    with torch.no_grad():
        want_logits = model(input_ids=ids).logits
        with model.disable_adapter():
            want_base = model(input_ids=ids).logits
    assert use_lean_lora(model) == sum(1 for n, _ in model.named_modules() if n.endswith(".lora_A"))
    model.train()
    got, got_grads = _loss_and_grads(model, ids)
    assert torch.allclose(got, want, rtol=1e-6), (float(got), float(want))
    assert want_grads.keys() == got_grads.keys() and len(want_grads) > 0
    for n in want_grads:
        gap = (got_grads[n] - want_grads[n]).abs().max()
        assert gap <= 1e-5 * want_grads[n].abs().max() + 1e-7, (n, float(gap))
    model.eval()
    with torch.no_grad():  # inference (exact match, eval) and the adapter switched off: PEFT's own forward
        assert torch.equal(model(input_ids=ids).logits, want_logits)
        with model.disable_adapter():
            assert torch.equal(model(input_ids=ids).logits, want_base)
