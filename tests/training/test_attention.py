"""Packed attention (genai.training.attention): per-sample attention over packed rows gives the same
logits and gradients as transformers' block-diagonal sdpa mask, for every family it is used on, and
leaves everything else (padding masks, generation with a cache) to sdpa."""

import pytest
import torch

from genai.families import FAMILIES, ensure_tiny_family_model
from genai.training import attention


def _load(path):
    from transformers import AutoModelForCausalLM

    from genai.models import soft_capping_attention

    extra = {"attn_implementation": a} if (a := soft_capping_attention(path)) else {}
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **extra)


def _packed_batch(vocab: int):
    """Two packed rows: samples of several lengths, the second row ending in padding (its own 'sample')."""
    g = torch.Generator().manual_seed(0)
    lengths = [[7, 3, 12, 8], [16, 9, 5]]  # row 2: 25 tokens + 5 of padding
    ids = torch.randint(3, vocab, (2, 30), generator=g)
    pos = torch.stack([torch.cat([torch.arange(n) for n in row]) for row in lengths])
    return ids, pos, lengths


def _grads(model, ids, pos):
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
    (logits.float().pow(2).mean()).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_packed_attention_equals_the_block_mask(name):
    model = _load(ensure_tiny_family_model(name))
    ids, pos, lengths = _packed_batch(model.config.vocab_size)
    want, want_grads = _grads(model, ids, pos)  # transformers' own attention, block-diagonal mask
    if not attention.use_packed_attention(model, 1024):
        # Refused only where the model runs another attention (eager: soft-capping) or a narrow window.
        assert model.config._attn_implementation != "sdpa" or attention._sliding_window(model.config) < 1024
        return
    assert model.config._attn_implementation == attention.NAME
    got, got_grads = _grads(model, ids, pos)
    assert torch.allclose(got, want, atol=2e-5), (got - want).abs().max()
    for n in want_grads:  # equal within fp32 rounding of the sums, relative to each gradient's scale
        gap = (got_grads[n] - want_grads[n]).abs().max()
        assert gap <= 1e-5 * want_grads[n].abs().max() + 1e-6, (n, float(gap))
    # And each sample alone (no packing at all) gives the same logits.
    start = 0
    for n in lengths[0]:
        alone = model(input_ids=ids[:1, start : start + n], use_cache=False).logits
        assert torch.allclose(alone, got[:1, start : start + n], atol=2e-5)
        start += n


def test_everything_but_packed_rows_is_left_to_sdpa(tiny_model_path):
    model = _load(tiny_model_path)
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(3, model.config.vocab_size, (2, 6), generator=g)
    mask = torch.ones_like(prompts)
    mask[1, :2] = 0  # left padding: generation with a padding mask and a KV cache
    greedy = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    want = model.generate(input_ids=prompts, attention_mask=mask, **greedy)
    want_plain = model(input_ids=prompts).logits
    assert attention.use_packed_attention(model, 1024)
    assert torch.equal(model.generate(input_ids=prompts, attention_mask=mask, **greedy), want)
    assert torch.allclose(model(input_ids=prompts).logits, want_plain, atol=1e-5)


def test_a_window_narrower_than_a_row_keeps_sdpa(tiny_model_path):
    model = _load(tiny_model_path)
    model.config.sliding_window = 16
    assert not attention.use_packed_attention(model, 1024)
    assert model.config._attn_implementation == "sdpa"
