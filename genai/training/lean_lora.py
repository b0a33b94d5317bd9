"""LoRA's training forward without two full-size temporaries per layer.

PEFT computes a LoRA linear as `base(x) + lora_B(lora_A(dropout(x))) * scaling`: the product with
`scaling` and the sum are each a new (tokens x out_features) tensor, and backward multiplies the
gradient by `scaling` into a third. Here the scaling is applied to the rank-r intermediate (tokens x r)
and B's output is added into the frozen base output in place: one large tensor instead of three. The
result differs from PEFT's only in rounding order (nothing at all when scaling is a power of two, as
alpha = 2r is). Only while training, for a plain `nn.Linear` base with one vanilla adapter (no DoRA or
other variant, not merged); inference (exact match, eval, export) runs PEFT's own forward unchanged.
"""

from __future__ import annotations

import torch


def _lean_forward(layer, plain):
    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        active = layer.active_adapters
        if (
            args
            or kwargs
            or not (layer.training and torch.is_grad_enabled())
            or layer.disable_adapters
            or layer.merged
            or len(active) != 1
            or active[0] not in layer.lora_A
            or active[0] in layer.lora_variant
        ):
            return plain(x, *args, **kwargs)
        name = active[0]
        lora_a = layer.lora_A[name]
        result = layer.base_layer(x)  # frozen nn.Linear: its output is not saved for backward, so += is safe
        low = lora_a(layer.lora_dropout[name](layer._cast_input_dtype(x, lora_a.weight.dtype)))
        return result.add_(layer.lora_B[name](low * layer.scaling[name]))

    return forward


def use_lean_lora(peft_model) -> int:
    """Give every eligible LoRA linear of `peft_model` the lean training forward (on the instance); the
    number changed (0 without LoRA, or where every base layer is quantized)."""
    from peft.tuners.lora.layer import Linear

    changed = 0
    for module in peft_model.modules():
        if isinstance(module, Linear) and type(module.base_layer) is torch.nn.Linear:
            module.forward = _lean_forward(module, module.forward)
            changed += 1
    return changed
