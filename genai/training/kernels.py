"""Liger kernels on GPUs: fused RMSNorm, RoPE and SwiGLU in the layers, and the output layer fused with the
cross-entropy (the loss over trained positions then never holds a chunk of logits at all).

`train.liger`: auto (the default) uses them where liger-kernel is installed (`pip install 'genai[gpu]'`)
and a CUDA GPU is present; true requires both (checked by the preflight, before training); false never.
Liger's kernels are Triton: on CPU training keeps the pure-torch path (genai.training.loss).
"""

from __future__ import annotations

import importlib.util

from genai.errors import GenaiError

HINT = "set train.liger: auto (Liger where a GPU and liger-kernel are present) or false"


def installed() -> bool:
    """liger-kernel is importable here."""
    return importlib.util.find_spec("liger_kernel") is not None


def check(setting: bool | str, *, cuda: bool) -> None:
    """train.liger: true where it cannot hold: one clear error (the preflight calls this)."""
    if setting is not True:
        return
    if not installed():
        raise GenaiError(
            "train.liger: true, but liger-kernel is not installed", hint=f"pip install 'genai[gpu]', or {HINT}"
        )
    if not cuda:
        raise GenaiError("train.liger: true needs a CUDA GPU (Liger's kernels are Triton); none here", hint=HINT)


def wanted(setting: bool | str, *, cuda: bool) -> bool:
    """Whether this run uses Liger: true (checked), auto where installed and on a GPU, false never."""
    check(setting, cuda=cuda)
    return setting is True or (setting == "auto" and cuda and installed())


def apply_layer_kernels(causal_lm) -> bool:
    """Liger's RMSNorm, RoPE and SwiGLU in place of the model's own (on this instance); False where Liger has
    none for its model type. Its cross-entropy patches stay off: the loss is ours (fused_loss below)."""
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN, _apply_liger_kernel_to_instance

    if getattr(causal_lm.config, "model_type", None) not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        return False
    _apply_liger_kernel_to_instance(
        model=causal_lm, rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
    )
    return True


def fused_loss(softcap: float | None):
    """(lm_head, hidden, targets) -> summed cross-entropy, the logits computed and consumed in Liger's kernel."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    flce = LigerFusedLinearCrossEntropyLoss(reduction="sum", softcap=softcap)

    def loss(lm_head, hidden, targets):
        return flce(lm_head.weight, hidden, targets, lm_head.bias)

    return loss
