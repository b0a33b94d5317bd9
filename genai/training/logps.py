"""Per-sample log-probabilities of the trained tokens of a micro-batch: what preference and RL losses
(DPO's log-ratios, ORPO's odds, KTO, GRPO's policy term) are made of.

A row may hold several samples (packed, position ids restarting at 0, attention kept within each sample)
and end in padding; the samples are numbered in row order. The log-probabilities come from the same
forward as the SFT loss: over trained positions only where the architecture allows it
(genai.training.loss), else from the full logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genai.data.pack import IGNORE


def _nll(model, batch: dict[str, torch.Tensor], trained_positions: bool) -> torch.Tensor:
    """The cross-entropy of every trained position, row-major."""
    if trained_positions:
        return model(**batch, use_cache=False, reduction="none").loss
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    flat = labels.reshape(-1)
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), flat, reduction="none", ignore_index=IGNORE)
    return nll[flat != IGNORE]


def sample_slots(position_ids: torch.Tensor, samples_per_row: list[int]) -> torch.Tensor:
    """For each position, the number of its sample in the batch (row order), or the total number of samples
    for padding (a slot to drop). A sample starts where the position id restarts at 0."""
    starts = position_ids == 0
    local = starts.long().cumsum(1) - 1  # the sample's index within its row
    per_row = torch.tensor(samples_per_row, device=position_ids.device)
    offsets = per_row.cumsum(0) - per_row
    total = int(per_row.sum())
    return torch.where(local < per_row[:, None], local + offsets[:, None], total)


def token_logps(
    model, batch: dict[str, torch.Tensor], samples_per_row: list[int], trained_positions: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of every trained token, row-major; the number of the sample each is in, or the number of samples
    for padding): differentiable in the first."""
    trained = batch["labels"][:, 1:] != IGNORE
    slots = sample_slots(batch["position_ids"], samples_per_row)[:, 1:][trained]
    return -_nll(model, batch, trained_positions), slots


def sample_logps(
    model, batch: dict[str, torch.Tensor], samples_per_row: list[int], trained_positions: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log p(token) over each sample's trained tokens, number of those tokens), one entry per sample,
    in row order: differentiable in the first."""
    logp, slots = token_logps(model, batch, samples_per_row, trained_positions)
    nll = -logp
    n = sum(samples_per_row)
    logps = nll.new_zeros(n + 1).index_add(0, slots, -nll)
    counts = torch.zeros(n + 1, dtype=torch.long, device=nll.device).index_add(0, slots, torch.ones_like(slots))
    return logps[:n], counts[:n]
