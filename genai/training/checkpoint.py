"""Checkpoints that resume exactly, through accelerate's own state API.

`accelerator.save_state` / `load_state` handle every shipped profile: one process and DDP (model
state, optimizer, RNG of every process), FSDP (sharded model and optimizer state) and DeepSpeed
ZeRO (its own checkpoint). For one process and DDP the model state is cut to the trainable tensors
(the adapter for LoRA), so checkpoints stay small. genai adds the scheduler and `state.json` (step,
epoch, data position, tokens, time). A checkpoint is written under a temporary name and renamed when
complete; older ones beyond the limit are then removed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genai.errors import GenaiError

PREFIX = "step-"
STATE_FILE = "state.json"
SCHEDULER_FILE = "scheduler.pt"
MODEL_FILE = "model.safetensors"  # accelerate's name for the model state of one process or DDP


@dataclass
class TrainState:
    """Where training is: what a resume needs beyond weights and optimizer."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch
    micro: int = 0  # next global micro-batch within the epoch
    tokens: int = 0  # tokens processed (all processes)
    elapsed: float = 0.0  # training seconds before this process started


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints under a folder, oldest first."""
    if not ckpt_root.is_dir():
        return []
    done = [p for p in ckpt_root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).exists()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX) :]))


def is_sharded(accelerator) -> bool:
    """Whether no single process holds the whole model (FSDP, DeepSpeed ZeRO-3)."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.state.deepspeed_plugin.zero_stage == 3
    return False


def _owns_model_file(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def keep_trainable_only(accelerator) -> None:
    """Save only trainable tensors in checkpoints where accelerate writes one model file (one process, DDP)."""
    if not _owns_model_file(accelerator):
        return

    def hook(models, weights, output_dir):
        for model, state in zip(models, weights, strict=True):
            keep = _trainable_names(model)
            for name in [n for n in state if n not in keep]:
                del state[name]

    accelerator.register_save_state_pre_hook(hook)


def save(ckpt_root: Path, accelerator, scheduler, state: TrainState, keep: int) -> Path:
    """Write step-N/ (every process takes part); keep the newest `keep` checkpoints."""
    final = ckpt_root / f"{PREFIX}{state.step:07d}"
    tmp = ckpt_root / f".{final.name}.tmp"  # the same path on every process: sharded states write into it
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    # save_state has no barrier at its end: every process's files (the RNG state of each rank) must be
    # in tmp before it becomes a complete checkpoint, or a kill right after the rename leaves one without them.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        for old in list_checkpoints(ckpt_root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _check_matches(ckpt: Path, model) -> None:
    """A checkpoint must hold every trainable tensor of this (unwrapped) model: made with the same recipe."""
    from safetensors import safe_open

    if not (ckpt / MODEL_FILE).exists():
        raise GenaiError(
            f"{ckpt}: not a checkpoint of this genai version (no {MODEL_FILE})",
            hint="start a new run, or resume with the genai version that wrote it",
        )
    with safe_open(str(ckpt / MODEL_FILE), framework="pt") as fh:
        saved = set(fh.keys())
    missing = sorted(_trainable_names(model) - saved)
    if missing:
        raise GenaiError(
            f"{ckpt}: checkpoint does not match the model ({len(missing)} trainable "
            f"tensors missing, e.g. {missing[0]})",
            hint="resume with the recipe that made it",
        )


def load(ckpt: Path, accelerator, model, scheduler) -> TrainState:
    """Restore weights, optimizer, scheduler, RNG and the data position from step-N/."""
    if _owns_model_file(accelerator):
        _check_matches(ckpt, accelerator.unwrap_model(model))  # accelerate saves the unwrapped model's names
        # strict=False: the frozen base is not in the checkpoint; _check_matches saw every trainable tensor.
        accelerator.load_state(str(ckpt), strict=False)
    else:
        accelerator.load_state(str(ckpt))
    scheduler.load_state_dict(torch.load(ckpt / SCHEDULER_FILE, weights_only=True))
    return TrainState(**json.loads((ckpt / STATE_FILE).read_text()))
