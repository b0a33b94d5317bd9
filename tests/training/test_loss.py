"""The loss over trained positions only (genai.training.loss) equals the plain full-logits loss, with
the same gradients, for every family's architecture, in one chunk or many."""

import pytest
import torch
import torch.nn.functional as F

from genai.families import FAMILIES, ensure_tiny_family_model
from genai.training import loss as trained_loss


def plain_loss_sum(model, ids, labels):
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
    )


def loss_and_grads(model, fn):
    model.zero_grad(set_to_none=True)
    value = fn()
    value.backward()
    return value.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("chunk", [trained_loss.CHUNK_LOGITS, 3 * 400])  # one chunk; chunks of 3 positions
def test_trained_positions_loss_equals_the_plain_loss(name, chunk, monkeypatch):
    from transformers import AutoModelForCausalLM

    from genai.models import soft_capping_attention

    path = ensure_tiny_family_model(name)
    extra = {"attn_implementation": a} if (a := soft_capping_attention(path)) else {}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **extra)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (2, 24), generator=generator)
    labels = ids.clone()
    labels[0, :10] = -100  # a prompt, then the completion
    labels[1, :5] = labels[1, 15:] = -100
    want, want_grads = loss_and_grads(model, lambda: plain_loss_sum(model, ids, labels))

    monkeypatch.setattr(trained_loss, "CHUNK_LOGITS", chunk)
    assert trained_loss.use_trained_positions_loss(model)
    got, got_grads = loss_and_grads(model, lambda: model(input_ids=ids, labels=labels).loss)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (float(got), float(want))
    assert want_grads.keys() == got_grads.keys()
    for n in want_grads:
        assert torch.allclose(got_grads[n], want_grads[n], rtol=1e-4, atol=1e-6), n
    # Without labels the model's own forward answers (generation, exact match, lm-eval).
    assert model(input_ids=ids).logits.shape == (2, 24, model.config.vocab_size)


def test_an_unknown_architecture_keeps_its_forward():
    class GPT2LMHeadModel(torch.nn.Module):
        pass

    model = GPT2LMHeadModel()
    forward = model.forward
    assert not trained_loss.use_trained_positions_loss(model) and model.forward == forward
