"""The training loss over trained positions only, the output layer run in chunks.

A plain causal-LM forward computes logits for every position of every row over the whole vocabulary,
then the loss keeps the few it needs: with a 128k-256k vocabulary the fp32 logits of one 1024-token row
are 0.5-1 GB, and with completion-only loss most of them are thrown away. Here the model's decoder runs
as usual, and only the hidden states whose next token is trained go through the output layer, a chunk at
a time; when there is more than one chunk each is recomputed in the backward pass instead of kept
(activation checkpointing), so at most one chunk of logits is alive. The loss is the same sum of
cross-entropies (summed in another order: equal within fp32 rounding).

The model's own forward is replaced (on the instance) so that the loss is computed inside it: DDP, FSDP
and DeepSpeed see one forward call, as they need to.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from genai.data.pack import IGNORE

CHUNK_LOGITS = 1 << 24  # logits per chunk: 64 MiB in fp32 (about 110 positions of a 152k vocabulary)

# Architectures whose forward is "decoder, then lm_head, then optional final soft-capping": the ones the
# trained-positions forward reproduces exactly. Any other keeps its own forward and the plain loss.
SUPPORTED = {
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
}


def _chunk_loss(
    hidden: torch.Tensor, targets: torch.Tensor, lm_head, softcap: float | None, reduction: str = "sum"
) -> torch.Tensor:
    logits = lm_head(hidden).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction=reduction)


def trained_loss_sum(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    lm_head,
    vocab: int,
    softcap: float | None = None,
    fused: Callable | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    """Sum of the next-token cross-entropy over trained positions. hidden: (B, T, H) after the final
    norm; labels: (B, T) as in the batch (IGNORE where not trained), unshifted. `fused(lm_head, states,
    targets)`: a fused output-layer-and-loss kernel (Liger, genai.training.kernels) used instead of chunks.
    reduction="none": the cross-entropy of each trained position instead, in row-major order (what
    preference and RL losses sum per sample; no fused kernel)."""
    trained = labels[:, 1:] != IGNORE
    states = hidden[:, :-1][trained]
    targets = labels[:, 1:][trained]
    if states.shape[0] == 0:  # keeps the graph (DDP expects every step to reach the parameters)
        zero = hidden.sum() * 0.0
        return zero if reduction == "sum" else zero.float().reshape(1)[:0]
    if fused is not None and reduction == "sum":
        return fused(lm_head, states, targets)
    size = max(1, CHUNK_LOGITS // vocab)
    if states.shape[0] <= size:
        return _chunk_loss(states, targets, lm_head, softcap, reduction)
    parts = []
    total = hidden.new_zeros((), dtype=torch.float32)
    for i in range(0, states.shape[0], size):
        part = (states[i : i + size], targets[i : i + size], lm_head, softcap, reduction)
        if reduction == "none":
            parts.append(checkpoint(_chunk_loss, *part, use_reentrant=False))
        else:
            total = total + checkpoint(_chunk_loss, *part, use_reentrant=False)
    return torch.cat(parts) if reduction == "none" else total


def use_trained_positions_loss(causal_lm, fused_loss: Callable[[float | None], Callable] | None = None) -> bool:
    """Make `causal_lm(..., labels=L)` return the loss *sum* over trained positions (logits=None),
    computed as above (`reduction="none"`: per trained position); False (model unchanged) for an architecture
    not in SUPPORTED. `fused_loss(softcap)` makes trained_loss_sum's `fused` (used only where the output
    layer is a plain Linear, not an adapter's)."""
    if type(causal_lm).__name__ not in SUPPORTED:
        return False
    from transformers.modeling_outputs import CausalLMOutputWithPast

    decoder = causal_lm.model
    lm_head = causal_lm.get_output_embeddings()
    vocab = lm_head.weight.shape[0] if hasattr(lm_head, "weight") else causal_lm.config.vocab_size
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    fused = fused_loss(softcap) if fused_loss is not None and type(lm_head) is torch.nn.Linear else None
    plain = causal_lm.forward

    def forward(input_ids=None, attention_mask=None, position_ids=None, labels=None, reduction="sum", **kwargs):
        if labels is None:
            return plain(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        out = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        loss = trained_loss_sum(out.last_hidden_state, labels, lm_head, vocab, softcap, fused, reduction)
        return CausalLMOutputWithPast(loss=loss)

    causal_lm.forward = forward
    return True
