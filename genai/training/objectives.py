"""What a training step minimises, per method (train.method), in a registry the trainer's loop calls.

An objective turns one micro-batch into a loss *sum* and the count of units that sum is over (trained
tokens for SFT, pairs for DPO): the loop divides by the units of the whole optimizer step (all
micro-batches, all processes), so gradient accumulation and several processes give the same objective.
It also names the signals logged beside the loss (DPO: rewards and accuracy) and scores held-out data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from genai.data.pack import IGNORE, TokenizedSet, collate
from genai.recipe import DpoSection, KtoSection, OrpoSection
from genai.training.logps import sample_logps


def to_device(batch: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    """A collated micro-batch as tensors on the training device."""
    return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}


def loss_sum(model, batch: dict[str, torch.Tensor], trained_positions: bool = False) -> torch.Tensor:
    """Sum of next-token cross-entropy over the batch's trained tokens: inside the model's forward over
    trained positions only (genai.training.loss), or from the full logits (other architectures)."""
    if trained_positions:
        return model(**batch, use_cache=False).loss
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )


class Objective:
    """Supervised fine-tuning: next-token cross-entropy over trained tokens (the base for other methods)."""

    group = 1  # consecutive samples that form one unit of data (2: a preference pair)
    packs_rows = True  # whether data.packing packs the data's samples into rows (GRPO: a row is a prompt)
    signals: tuple[str, ...] = ()  # what loss() sums beside the loss, logged as their mean per unit

    def __init__(self, trainer):
        self.trained_positions = trainer.trained_positions
        self.packing = trainer.recipe.data.packing
        self.pad_id = trainer.tokenizer.pad_token_id
        self.mbs = trainer.cfg.micro_batch_size

    def prepare(self, trainer) -> None:
        """Once the model is ready and before a checkpoint loads into it: what the method needs of the
        starting model (DPO: its log-probabilities; GRPO: its weights, for the KL term)."""

    def close(self) -> None:
        """At the end of training, before the artifact is exported: free what the objective holds."""

    def batch(self, model, data: TokenizedSet, rows: list[list[int]], device, seed: list[int]) -> tuple[dict, int]:
        """A training micro-batch of these rows on the device, and its real (unpadded) token count. `seed`
        (run seed, step, micro-batch, process) fixes anything random in making it (GRPO's sampling)."""
        return to_device(collate(data, rows, self.pad_id, self.packing), device), int(
            sum(data.offsets[i + 1] - data.offsets[i] for row in rows for i in row)
        )

    def units(self, batch: dict[str, torch.Tensor], rows: list[list[int]]) -> int:
        """What the loss of this micro-batch is a sum over."""
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    def means(self, sums: dict[str, float], units: float) -> dict[str, float]:
        """The logged value of each signal from its sum over `units` units."""
        return {name: value / max(units, 1.0) for name, value in sums.items()}

    def loss(
        self, model, batch: dict[str, torch.Tensor], rows: list[list[int]], split: str = "train"
    ) -> tuple[torch.Tensor, dict]:
        """(loss sum, sums of the signals) of one micro-batch of `split` (train or eval)."""
        return loss_sum(model, batch, self.trained_positions), {}

    def evaluate(self, model, accelerator, data: TokenizedSet, rows: list[list[int]], split: str) -> dict:
        """Mean loss per unit over held-out rows (split across processes), and the signals' means."""
        model.eval()
        total = torch.zeros(2 + len(self.signals), dtype=torch.float64, device=accelerator.device)
        mine = rows[accelerator.process_index :: accelerator.num_processes]
        with torch.no_grad():
            for i in range(0, len(mine), self.mbs):
                part = mine[i : i + self.mbs]
                batch = to_device(collate(data, part, self.pad_id, self.packing), accelerator.device)
                value, sums = self.loss(model, batch, part, split)
                total[0] += value.double()
                total[1] += self.units(batch, part)
                for j, name in enumerate(self.signals):
                    total[2 + j] += sums[name]
        total = accelerator.reduce(total, reduction="sum")
        model.train()
        sums = {name: float(total[2 + j]) for j, name in enumerate(self.signals)}
        units = float(total[1])
        return {"eval_loss": float(total[0]) / max(units, 1.0)} | {
            f"eval_{k}": v for k, v in self.means(sums, units).items()
        }


class DPO(Objective):
    """Direct preference optimisation: each pair's chosen answer made likelier than its rejected one,
    measured against the starting model (the reference), whose log-probabilities are computed once
    before training (no second model in memory; for LoRA and full fine-tuning alike)."""

    group = 2
    signals = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracy")

    def __init__(self, trainer):
        super().__init__(trainer)
        self.cfg: DpoSection = trainer.cfg.dpo
        self.reference: dict[str, np.ndarray] = {}

    def prepare(self, trainer) -> None:
        """The starting model's log-probabilities of every train and eval sample (before a resume loads
        later weights: the same start)."""
        sets = {"train": (trainer.data.train, trainer.rows)}
        if trainer.eval_rows:
            sets["eval"] = (trainer.data.eval, trainer.eval_rows)
        scorer = trainer.model if trainer.sharded else trainer.accelerator.unwrap_model(trainer.model)
        self.compute_reference(scorer, trainer.accelerator.device, sets)

    def compute_reference(self, model, device, sets: dict[str, tuple[TokenizedSet, list[list[int]]]]) -> None:
        """Log-probabilities of every sample under the model as it is now (before any step), per split."""
        model.eval()
        with torch.no_grad():
            for split, (data, rows) in sets.items():
                out = np.zeros(len(data), dtype=np.float64)
                for i in range(0, len(rows), self.mbs):
                    part = rows[i : i + self.mbs]
                    batch = to_device(collate(data, part, self.pad_id, self.packing), device)
                    logps, _ = sample_logps(model, batch, self._per_row(part), self.trained_positions)
                    out[[s for row in part for s in row]] = logps.double().cpu().numpy()
                self.reference[split] = out
        model.train()

    def _per_row(self, rows: list[list[int]]) -> list[int]:
        return [len(r) for r in rows] if self.packing else [1] * sum(len(r) for r in rows)

    def units(self, batch, rows) -> int:
        """Pairs."""
        return sum(len(r) for r in rows) // 2

    def loss(self, model, batch, rows, split="train"):
        """Sum of the pairs' DPO losses; rewards are beta times the log-ratios against the reference."""
        order = [s for row in rows for s in row]
        logps, counts = sample_logps(model, batch, self._per_row(rows), self.trained_positions)
        ref = torch.as_tensor(self.reference[split][order], dtype=logps.dtype, device=logps.device)
        chosen_nll = -(logps / counts.clamp(min=1))[0::2]  # per token: RPO's SFT term
        if self.cfg.loss_type == "ipo":  # IPO compares per-token averages
            logps, ref = logps / counts.clamp(min=1), ref / counts.clamp(min=1)
        chosen, rejected = logps[0::2], logps[1::2]
        ratio_c, ratio_r = chosen - ref[0::2], rejected - ref[1::2]
        losses = LOSSES[self.cfg.loss_type](ratio_c - ratio_r, self.cfg)
        if self.cfg.sft_weight:  # RPO: the chosen answer's mean NLL beside the preference loss
            losses = losses + self.cfg.sft_weight * chosen_nll
        return losses.sum(), pair_rewards(self.cfg.beta * ratio_c, self.cfg.beta * ratio_r)


class ORPO(DPO):
    """Odds-ratio preference optimisation: the SFT loss on the chosen answer plus beta times an odds-ratio
    term that makes the chosen answer's odds beat the rejected one's. No reference model: the odds come
    from the policy's own per-token average log-probabilities (as the ORPO paper and TRL compute them)."""

    signals = (*DPO.signals, "nll_loss", "log_odds_ratio")

    def __init__(self, trainer):
        Objective.__init__(self, trainer)
        self.cfg: OrpoSection = trainer.cfg.orpo

    def prepare(self, trainer) -> None:
        """Nothing: ORPO has no reference model."""

    def loss(self, model, batch, rows, split="train"):
        """Sum over pairs of (chosen answer's mean NLL - beta * log sigmoid(log odds ratio))."""
        logps, counts = sample_logps(model, batch, self._per_row(rows), self.trained_positions)
        mean = logps / counts.clamp(min=1)
        chosen, rejected = mean[0::2], mean[1::2]
        log_odds = odds_ratio(chosen, rejected)
        nll = -chosen
        losses = nll - self.cfg.beta * F.logsigmoid(log_odds)
        sums = pair_rewards(self.cfg.beta * chosen, self.cfg.beta * rejected)
        sums["nll_loss"] = float(nll.detach().sum())
        sums["log_odds_ratio"] = float(log_odds.detach().sum())
        return losses.sum(), sums


class KTO(DPO):
    """Kahneman-Tversky optimisation on answers labelled good or bad: a good answer's log-ratio against
    the reference is pushed above the policy's KL to the reference, a bad one's below it. The KL is
    estimated, detached, from each record's prompt with the next record's answer (the odd samples), as
    the KTO paper and TRL do; the reference's log-probabilities are computed once before training."""

    signals = ("rewards/chosen", "rewards/rejected", "kl", "chosen", "rejected")

    def __init__(self, trainer):
        Objective.__init__(self, trainer)
        self.cfg: KtoSection = trainer.cfg.kto
        self.reference: dict[str, np.ndarray] = {}
        self.labels = {"train": trainer.data.train.labels}
        if trainer.data.eval is not None:
            self.labels["eval"] = trainer.data.eval.labels

    def loss(self, model, batch, rows, split="train"):
        """Sum over records of the weighted KTO loss of the record's answer."""
        order = [s for row in rows for s in row]
        logps, _ = sample_logps(model, batch, self._per_row(rows), self.trained_positions)
        ref = torch.as_tensor(self.reference[split][order], dtype=logps.dtype, device=logps.device)
        ratio = logps - ref
        answer, mismatched = ratio[0::2], ratio[1::2]
        kl = mismatched.detach().mean().clamp(min=0)
        good = torch.as_tensor(self.labels[split][order][0::2], device=logps.device)
        cfg = self.cfg
        losses = torch.where(
            good,
            cfg.desirable_weight * (1 - torch.sigmoid(cfg.beta * (answer - kl))),
            cfg.undesirable_weight * (1 - torch.sigmoid(cfg.beta * (kl - answer))),
        )
        rewards = (cfg.beta * answer).detach()
        sums = {
            "rewards/chosen": float(rewards[good].sum()),
            "rewards/rejected": float(rewards[~good].sum()),
            "kl": float(kl) * len(answer),
            "chosen": float(good.sum()),
            "rejected": float((~good).sum()),
        }
        return losses.sum(), sums

    def means(self, sums: dict[str, float], units: float) -> dict[str, float]:
        """Rewards per good and per bad answer, the KL per record; the counts are not logged."""
        out = {"kl": sums["kl"] / max(units, 1.0)}
        for side in ("chosen", "rejected"):
            if sums[side]:
                out[f"rewards/{side}"] = sums[f"rewards/{side}"] / sums[side]
        return out


def pair_rewards(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """The sums DPO and ORPO log for a batch of pairs from each side's reward: chosen, rejected, margins and
    accuracy (the pairs whose chosen reward is the higher)."""
    chosen, rejected = chosen.detach(), rejected.detach()
    return {
        "rewards/chosen": float(chosen.sum()),
        "rewards/rejected": float(rejected.sum()),
        "rewards/margins": float((chosen - rejected).sum()),
        "rewards/accuracy": float((chosen > rejected).sum()),
    }


def odds_ratio(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """log(odds(chosen) / odds(rejected)) from mean log-probabilities, odds(p) = p / (1 - p)."""
    # log(1 - p) as log(-expm1(log p)): exact where p is close to 1, where log1p(-exp(.)) rounds to -inf.
    return (chosen - rejected) - (torch.log(-torch.expm1(chosen)) - torch.log(-torch.expm1(rejected)))


def _sigmoid(logits: torch.Tensor, cfg: DpoSection) -> torch.Tensor:
    s = cfg.label_smoothing
    return -(1 - s) * F.logsigmoid(cfg.beta * logits) - s * F.logsigmoid(-cfg.beta * logits)


def _ipo(logits: torch.Tensor, cfg: DpoSection) -> torch.Tensor:
    return (logits - 1 / (2 * cfg.beta)) ** 2


def _hinge(logits: torch.Tensor, cfg: DpoSection) -> torch.Tensor:
    return torch.relu(1 - cfg.beta * logits)


# DPO's loss types: each takes the difference of the chosen and rejected log-ratios (policy - reference).
LOSSES: dict[str, Callable[[torch.Tensor, DpoSection], torch.Tensor]] = {
    "sigmoid": _sigmoid,
    "ipo": _ipo,
    "hinge": _hinge,
}
