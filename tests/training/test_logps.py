"""Per-sample log-probabilities (genai.training.logps) of packed and padded micro-batches equal each sample
scored on its own, through the trained-positions forward and the full logits alike, and carry gradients."""

import numpy as np
import pytest
import torch

from genai.data.pack import TokenizedSet, collate
from genai.families import ensure_tiny_family_model
from genai.training.logps import sample_logps
from genai.training.loss import use_trained_positions_loss

LENGTHS = [9, 5, 12, 7, 6]
ROWS = [[0, 1, 2], [3, 4]]


def _data(vocab: int) -> TokenizedSet:
    rng = np.random.default_rng(0)
    ids = rng.integers(3, vocab, sum(LENGTHS)).astype(np.int32)
    trained = np.concatenate([np.arange(n) >= n // 2 for n in LENGTHS])  # first half of each sample: a prompt
    return TokenizedSet(ids, trained, np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64))


def _alone(model, data: TokenizedSet, i: int) -> float:
    ids, trained = data.sample(i)
    ids = torch.from_numpy(ids.astype(np.int64))[None]
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    picked = logp.gather(1, ids[0, 1:, None])[:, 0]
    return float(picked[torch.from_numpy(trained[1:])].sum())


@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("trained_positions", [True, False])
def test_each_sample_scores_as_if_alone(packing, trained_positions):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ensure_tiny_family_model("llama3"), dtype=torch.float32)
    data = _data(model.config.vocab_size)
    want = [_alone(model, data, i) for i in range(len(LENGTHS))]
    rows = ROWS if packing else [[i] for i in range(len(LENGTHS))]
    order = [i for row in rows for i in row]
    if trained_positions:
        assert use_trained_positions_loss(model)
    batch = {k: torch.from_numpy(v) for k, v in collate(data, rows, 0, packing).items()}
    logps, counts = sample_logps(model, batch, [len(r) for r in rows], trained_positions)
    assert counts.tolist() == [int(data.sample(i)[1][1:].sum()) for i in order]
    assert torch.allclose(logps.detach(), torch.tensor([want[i] for i in order]), atol=1e-4)
    logps.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
