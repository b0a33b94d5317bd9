"""The training methods (train.method) and the objective each trains with: the registry the trainer reads."""

from __future__ import annotations

from genai.training.grpo import GRPO
from genai.training.objectives import DPO, KTO, ORPO, Objective

OBJECTIVES: dict[str, type[Objective]] = {"sft": Objective, "dpo": DPO, "orpo": ORPO, "kto": KTO, "grpo": GRPO}
