"""The lean SwiGLU MLP (genai.training.swiglu) computes the same loss and gradients as the model's own MLP,
with a LoRA on every linear layer (the case where `down`'s input would otherwise be kept), and is left
alone where the MLP is not a gated SiLU."""

import pytest
import torch

from genai.families import FAMILIES, ensure_tiny_family_model
from genai.training.swiglu import use_lean_swiglu


def _lora_model(name):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from genai.models import soft_capping_attention

    path = ensure_tiny_family_model(name)
    extra = {"attn_implementation": a} if (a := soft_capping_attention(path)) else {}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **extra)
    # init_lora_weights=False: B is random too, so every LoRA weight gets a non-zero gradient.
    return get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=ids, use_cache=False)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_lean_swiglu_gives_the_same_loss_and_gradients(name):
    model = _lora_model(name)
    ids = torch.randint(3, model.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    want, want_grads = _loss_and_grads(model, ids)
    with torch.no_grad():
        want_logits = model(input_ids=ids).logits
    changed = use_lean_swiglu(model.get_base_model())
    gated_silu = (
        getattr(model.config, "hidden_act", None) == "silu"
        and type(model.get_base_model()).__name__ != "Phi3ForCausalLM"
    )
    assert (changed == model.config.num_hidden_layers) if gated_silu else changed == 0
    got, got_grads = _loss_and_grads(model, ids)
    assert torch.allclose(got, want, atol=1e-6), (float(got), float(want))
    assert want_grads.keys() == got_grads.keys() and len(want_grads) > 0
    for n in want_grads:
        gap = (got_grads[n] - want_grads[n]).abs().max()
        assert gap <= 1e-5 * want_grads[n].abs().max() + 1e-7, (n, float(gap))
    with torch.no_grad():  # inference (exact match, eval): the same logits
        assert torch.equal(model(input_ids=ids).logits, want_logits)
