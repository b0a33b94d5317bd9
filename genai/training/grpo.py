"""GRPO (train.method: grpo): group relative policy optimisation in the trainer's own loop.

Each micro-batch takes `micro_batch_size` prompts, samples `num_generations` answers to each with the
model as it is now (transformers' generate, or a vLLM engine given the policy's weights: see
genai.training.sampling), scores every answer with the recipe's reward functions (genai.rewards) and
turns each group's rewards into advantages (reward minus the group's mean, divided by its spread). The
loss is DAPO/TRL's token-level one with one update per generation: for each answer token, -advantage *
ratio (ratio = p / p.detach(), 1 in value, grad of log p) plus beta times the k3 estimate of
KL(policy || reference), summed over the answer tokens and divided by the step's answer-token count.

The reference is the starting model: its trainable weights are copied once before training (the adapter
alone for LoRA; every weight for full fine-tuning) and swapped in for a no-grad forward when beta > 0.
Sampling draws from its own RNG seeded by (seed, step, micro-batch, process), so a resumed run samples the
same answers as an uninterrupted one. Held-out: the references' NLL (eval_loss) and the mean reward of
greedy answers (eval_reward, eval_rewards/<name>).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from genai.data.pack import TokenizedSet, collate, pack_rows
from genai.recipe import GrpoSection
from genai.training.logps import token_logps
from genai.training.objectives import Objective, loss_sum, to_device
from genai.training.sampling import SAMPLERS, sampler_name

COUNTS = ("completions", "answer_tokens")  # denominators, summed beside the signals and not logged themselves


class GRPO(Objective):
    """See the module docstring."""

    packs_rows = False  # a row of the data is one prompt; the sampled answers are packed per micro-batch

    def __init__(self, trainer):
        from genai.rewards import build_rewards

        super().__init__(trainer)
        self.cfg: GrpoSection = trainer.cfg.grpo
        self.tokenizer = trainer.tokenizer
        self.stop_ids = trainer.stop_ids
        self.capacity = trainer.recipe.data.max_length
        self.rewards = build_rewards(self.cfg)
        self.steps = lambda: trainer.state.step  # the optimizer steps taken: the generator's weights version
        name = sampler_name(self.cfg.generator, cuda=trainer.accelerator.device.type == "cuda")
        self.sampler = SAMPLERS[name](trainer)
        self.accelerator = trainer.accelerator
        self.reference: list[torch.Tensor] = []
        per_reward = tuple(f"rewards/{r.label}" for r in self.rewards)
        # What batch() sums while sampling, in the order of its grpo_sums; loss() adds the KL and the tokens.
        self.sampled = ("reward", "reward_std", *per_reward, "completion_length", "clipped_ratio", "completions")
        self.signals = (*self.sampled, *(("kl",) if self.cfg.beta else ()), "answer_tokens")

    # ------------------------------------------------------------------ the starting model
    def prepare(self, trainer) -> None:
        """Copy the starting model's trainable weights: the reference of the KL term."""
        if self.cfg.beta:
            self.reference = [p.detach().clone() for p in self._trainable(trainer.model)]

    @staticmethod
    def _trainable(model) -> list[torch.nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    @contextmanager
    def _reference_weights(self, model):
        params = self._trainable(model)
        saved = [p.data for p in params]
        for p, ref in zip(params, self.reference, strict=True):
            p.data = ref
        try:
            yield
        finally:
            for p, data in zip(params, saved, strict=True):
                p.data = data

    def close(self) -> None:
        """Free the sampler's engine before the artifact is exported."""
        self.sampler.close()

    # ------------------------------------------------------------------ sampling and scoring
    def _prompt(self, data: TokenizedSet, i: int) -> tuple[np.ndarray, str]:
        """A sample's prompt (everything before its trained answer) and its reference answer's text."""
        ids, trained = data.sample(i)
        start = int(np.argmax(trained)) if trained.any() else len(ids)
        reference = self.tokenizer.decode(ids[trained], skip_special_tokens=True).strip()
        return np.asarray(ids[:start]), reference

    def _generate(self, model, prompts: list[np.ndarray], seed: list[int], *, sample: bool) -> list[list[int]]:
        """Answers to each prompt (num_generations sampled ones, or one greedy), each cut after its first stop
        token; in prompt order; from the recipe's generator, with the model as it is after `self.steps()` steps."""
        return self.sampler.generate(model, prompts, seed, sample=sample, version=self.steps())

    def _score(self, prompts: list[np.ndarray], references: list[str], answers: list[list[int]], per: int):
        """(total reward per answer, {reward label: values}) with prompts and references repeated per answer."""
        from genai.rewards import score

        texts = [self.tokenizer.decode(a, skip_special_tokens=True) for a in answers]
        prompt_texts = [self.tokenizer.decode(p) for p in prompts for _ in range(per)]
        refs = [r for r in references for _ in range(per)]
        total, each = score(self.rewards, prompt_texts, texts, refs)
        return torch.tensor(total, dtype=torch.float64), each

    def batch(self, model, data, rows, device, seed):
        """Sample answers to the rows' prompts, score them, and lay prompt + answer out as a training batch
        with each answer's advantage (and the reference's log-probabilities when beta > 0)."""
        g = self.cfg.num_generations
        prompts, references = zip(*(self._prompt(data, i) for row in rows for i in row), strict=True)
        answers = self._generate(model, list(prompts), seed, sample=True)
        total, each = self._score(list(prompts), list(references), answers, g)
        groups = total.view(-1, g)
        spread = groups.std(dim=1, keepdim=True) if g > 1 else torch.zeros_like(groups[:, :1])
        advantages = groups - groups.mean(dim=1, keepdim=True)
        if self.cfg.scale_rewards:
            advantages = advantages / (spread + 1e-4)
        advantages = advantages.flatten()

        seqs = [
            np.concatenate([prompts[k // g], np.asarray(a, dtype=prompts[k // g].dtype)]) for k, a in enumerate(answers)
        ]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        trained = [np.arange(len(s)) >= len(prompts[k // g]) for k, s in enumerate(seqs)]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        made = TokenizedSet(np.concatenate(seqs).astype(np.int32), np.concatenate(trained), offsets)
        layout = (
            pack_rows(lengths, max(self.capacity, int(lengths.max())))
            if self.packing
            else [[k] for k in range(len(seqs))]
        )
        order = [k for row in layout for k in row]  # the batch's samples in row order
        stops = set(self.stop_ids)
        cut = torch.tensor([not (answers[k] and answers[k][-1] in stops) for k in order], dtype=torch.float64)
        advantages = advantages[order]
        if self.cfg.mask_truncated:
            advantages = advantages * (1 - cut)
        out = to_device(collate(made, layout, self.pad_id, self.packing), device)
        n_answer = torch.tensor([len(answers[k]) for k in order], dtype=torch.float64)
        out["grpo_per_row"] = torch.tensor([len(r) for r in layout], device=device)
        out["grpo_advantages"] = advantages.to(device=device, dtype=torch.float32)
        out["grpo_sums"] = torch.tensor(
            [
                float(total.sum()),
                float(spread.sum() * g),
                *(float(sum(v)) for v in each.values()),
                float(n_answer.sum()),
                float(cut.sum()),
                float(len(answers)),
            ],
            dtype=torch.float64,
        )
        if self.cfg.beta:
            with torch.no_grad(), self._reference_weights(model):
                scorer = self.accelerator.unwrap_model(model)
                was_training = scorer.training
                scorer.eval()
                ref, _ = token_logps(scorer, _model_inputs(out), out["grpo_per_row"].tolist(), self.trained_positions)
                scorer.train(was_training)
            out["grpo_ref"] = ref.detach()
        return out, int(lengths.sum())

    # ------------------------------------------------------------------ the loss
    def loss(self, model, batch, rows, split="train"):
        """Sum over answer tokens of -advantage * ratio + beta * KL (see the module docstring)."""
        inputs = _model_inputs(batch)
        logp, slots = token_logps(model, inputs, batch["grpo_per_row"].tolist(), self.trained_positions)
        advantage = batch["grpo_advantages"][slots]
        per_token = -torch.exp(logp - logp.detach()) * advantage
        sums = dict(zip(self.sampled, batch["grpo_sums"].tolist(), strict=True))
        if self.cfg.beta:
            delta = batch["grpo_ref"] - logp
            kl = torch.exp(delta) - delta - 1
            per_token = per_token + self.cfg.beta * kl
            sums["kl"] = float(kl.detach().sum())
        sums["answer_tokens"] = float(len(logp))
        return per_token.sum(), sums

    def means(self, sums: dict[str, float], units: float) -> dict[str, float]:
        """Per answer, except the KL (per answer token); the counts themselves are not logged."""
        answers = max(sums.get("completions", 0.0), 1.0)
        tokens = max(sums.get("answer_tokens", 0.0), 1.0)
        return {
            name: value / (tokens if name == "kl" else answers) for name, value in sums.items() if name not in COUNTS
        }

    # ------------------------------------------------------------------ held out
    def evaluate(self, model, accelerator, data, rows, split):
        """The reference answers' NLL (eval_loss), and the mean reward of a greedy answer to each prompt."""
        model.eval()
        total = torch.zeros(
            4 + len(self.rewards), dtype=torch.float64, device=accelerator.device
        )  # loss, units, reward, each, n
        mine = rows[accelerator.process_index :: accelerator.num_processes]
        with torch.no_grad():
            for i in range(0, len(mine), self.mbs):
                part = mine[i : i + self.mbs]
                batch = to_device(collate(data, part, self.pad_id, False), accelerator.device)
                total[0] += loss_sum(model, batch, self.trained_positions).double()
                total[1] += self.units(batch, part)
                prompts, references = zip(*(self._prompt(data, k) for row in part for k in row), strict=True)
                answers = self._generate(model, list(prompts), [0], sample=False)
                reward, each = self._score(list(prompts), list(references), answers, 1)
                total[2] += float(reward.sum())
                for j, values in enumerate(each.values()):
                    total[3 + j] += float(sum(values))
                total[-1] += len(answers)
        total = accelerator.reduce(total, reduction="sum")
        model.train()
        n = max(float(total[-1]), 1.0)
        out = {"eval_loss": float(total[0]) / max(float(total[1]), 1.0), "eval_reward": float(total[2]) / n}
        for j, r in enumerate(self.rewards):
            out[f"eval_rewards/{r.label}"] = float(total[3 + j]) / n
        return out


def _model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch without GRPO's own entries: what the model's forward takes."""
    return {k: v for k, v in batch.items() if not k.startswith("grpo_")}
