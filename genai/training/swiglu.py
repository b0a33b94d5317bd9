"""A SwiGLU MLP that keeps two activations less for backward (the pure-torch twin of Liger's SwiGLU).

A Llama-style MLP computes down(h), h = silu(gate(x)) * up(x). Autograd keeps gate(x) for silu's
backward, silu(gate(x)) and up(x) for the product's, and h for the LoRA on `down`: four tensors of
(tokens x intermediate) per layer, the largest activations a training step holds. Here the product
keeps only gate(x) and up(x), and h is not kept at all: where backward needs it, it is recomputed from
those two (elementwise, cheap next to the matmuls). Two such tensors less per layer; the same values
and gradients (the recomputed h is bit-identical; the derivative uses torch's own silu formula).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# MLPs whose forward is exactly down_proj(act_fn(gate_proj(x)) * up_proj(x)).
GATED_MLPS = {"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"}


def _product(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate).mul_(up)  # in place on silu's fresh output: one (tokens x intermediate) buffer, not two


class SwiGLU(torch.autograd.Function):
    """silu(gate) * up, saving only gate and up for backward."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(gate, up)
        return _product(gate, up)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        gate, up = ctx.saved_tensors
        sig = torch.sigmoid(gate)
        d_up = grad * (gate * sig)
        # silu'(gate) = sig * (1 + gate * (1 - sig)), torch's formula in its order, built in place in one
        # buffer: every temporary here is (tokens x intermediate), the largest tensors of the step.
        d_silu = torch.rsub(sig, 1).mul_(gate).add_(1).mul_(sig)
        return (grad * up).mul_(d_silu), d_up


def _lean_forward(mlp):
    def forward(x: torch.Tensor) -> torch.Tensor:
        gate, up = mlp.gate_proj(x), mlp.up_proj(x)
        h = SwiGLU.apply(gate, up)
        if not torch.is_grad_enabled():
            return mlp.down_proj(h)
        storage = h.untyped_storage().data_ptr()

        def pack(t: torch.Tensor):
            # h (or a view of it) as backward would keep it: keep the recipe instead (gate and up are kept anyway)
            if t.untyped_storage().data_ptr() == storage:
                return (gate, up, t.size(), t.stride(), t.storage_offset())
            return t

        def unpack(packed):
            if isinstance(packed, tuple):
                g, u, size, stride, offset = packed
                return _product(g, u).as_strided(size, stride, offset)
            return packed

        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            return mlp.down_proj(h)

    return forward


def use_lean_swiglu(causal_lm) -> int:
    """Give every gated SiLU MLP of `causal_lm` the lean forward (on the instance); the number changed
    (0 for other MLPs: GELU-gated Gemma, Phi-3's fused gate_up). Not with gradient checkpointing, which
    keeps none of these activations in the first place."""
    if getattr(causal_lm.config, "hidden_act", None) != "silu":
        return 0
    changed = 0
    for module in causal_lm.modules():
        if type(module).__name__ in GATED_MLPS:
            module.forward = _lean_forward(module)
            changed += 1
    return changed
