"""The trainer: one accelerate loop for CPU, one GPU and many processes, in short named stages.

`Trainer.train()` runs setup -> before (exact match of the base) -> step / log / evaluate / save
until the last step -> finish (artifact, exact match, merge, manifest). Loss is summed over trained
tokens and divided by the trained-token count of the whole optimizer step (all micro-batches, all
processes), so packing, padding and gradient accumulation give the same objective.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genai import console
from genai.data.pack import make_rows
from genai.data.prepare import data_file_hashes, prepare, split_examples
from genai.data.templates import template_for
from genai.lineage import git_commit, local_model_hash
from genai.models import load_model, load_tokenizer, resolve_model_path, wrap_for_training
from genai.parents import find_parent
from genai.recipe import Recipe
from genai.runs import Run
from genai.tracking import Tracker
from genai.training import checkpoint, kernels
from genai.training.attention import use_packed_attention
from genai.training.checkpoint import TrainState
from genai.training.exact_match import exact_match
from genai.training.export import generation_config, merge_adapter, save_artifact
from genai.training.heap import map_large_blocks
from genai.training.lean_lora import use_lean_lora
from genai.training.loss import use_trained_positions_loss
from genai.training.objective_registry import OBJECTIVES
from genai.training.progress import Progress, eta
from genai.training.swiglu import use_lean_swiglu


@dataclass
class TrainResult:
    """What a training run produced (read back from its manifest after a multi-process launch)."""

    run_dir: Path
    steps: int
    train_loss: float | None
    eval_loss: float | None
    artifact: Path
    merged: Path | None = None
    exact_match_before: float | None = None
    exact_match_after: float | None = None
    data_stats: dict = field(default_factory=dict)

    @classmethod
    def from_run(cls, run: Run) -> TrainResult:
        """The result recorded in a finished run's manifest."""
        m = run.manifest()
        art, met = m.get("artifact", {}), m.get("metrics", {})
        return cls(
            run.path,
            m.get("steps", 0),
            met.get("train_loss"),
            met.get("eval_loss"),
            run.path / art["path"],
            run.path / art["merged"] if art.get("merged") else None,
            met.get("exact_match_before"),
            met.get("exact_match_after"),
            m.get("data", {}),
        )


def mixed_precision(setting: str) -> str:
    """accelerate's mixed precision for train.mixed_precision ('auto': bf16 or fp16 on GPUs, none on CPU)."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def plan_steps(recipe: Recipe, n_rows: int, world: int) -> tuple[int, int]:
    """(micro-batches per epoch across all processes, total optimizer steps)."""
    per_micro = recipe.train.micro_batch_size * world
    micro_per_epoch = max(1, n_rows // per_micro)
    steps_per_epoch = max(1, micro_per_epoch // recipe.train.gradient_accumulation_steps)
    total = recipe.train.max_steps or math.ceil(recipe.train.epochs * steps_per_epoch)
    return micro_per_epoch, total


def epoch_order(seed: int, epoch: int, n_rows: int) -> np.ndarray:
    """The row order of an epoch: a permutation fixed by (seed, epoch), so a resume replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n_rows)


@dataclass
class _Window:
    """Loss and token counts since the last logged step."""

    loss: float = 0.0
    trained: float = 0.0
    tokens: int = 0
    signals: dict[str, float] = field(default_factory=dict)  # the method's own (DPO: rewards), summed
    start: float = field(default_factory=time.perf_counter)


class Trainer:
    """Fine-tunes a recipe's model into a run folder (see the module docstring)."""

    def __init__(self, recipe: Recipe, run: Run, resume_from: Path | None = None, *, verbose: bool = True):
        self.recipe, self.cfg, self.run = recipe, recipe.train, run
        self.resume_from, self.verbose = resume_from, verbose
        self.last_loss: float | None = None
        self.last_eval: float | None = None
        self.last_eval_signals: dict[str, float] = {}
        self.em_before: dict | None = None
        self.eval_examples: list = []

    # ------------------------------------------------------------------ the whole run
    def train(self) -> TrainResult:
        """Set up, train to the last step, write the artifact and the manifest."""
        # RUN/logs/train.log: the main process's console (a launched worker has no CLI to set it up).
        with console.run_log(self.run.path, "train") if os.environ.get("RANK", "0") == "0" else nullcontext():
            self.setup()
            return self.fit()

    def fit(self) -> TrainResult:
        """Train a set-up trainer to the last step, write the artifact and the manifest."""
        try:
            self.before()
            while self.state.step < self.total_steps:
                self.step()
                self.after_step()
            result = self.finish()
        except BaseException as exc:
            self.progress.close()
            self.tracker.close("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        self.tracker.close("FINISHED")
        return result

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Accelerator, tokenizer and data, model and optimizer, resumed state, logging."""
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        self.accelerator = Accelerator(
            mixed_precision=mixed_precision(self.cfg.mixed_precision), cpu=not torch.cuda.is_available()
        )
        self.main = self.accelerator.is_main_process
        set_seed(self.cfg.seed)
        self._setup_data()
        self._setup_model()
        self.state = TrainState()
        if self.resume_from is not None:
            self.state = checkpoint.load(self.resume_from, self.accelerator, self.model, self.scheduler)
        self._setup_logging()

    def _setup_data(self) -> None:
        recipe = self.recipe
        with self.accelerator.main_process_first():  # built-in model build and preprocessing: once, on rank 0
            self.parent = find_parent(recipe)  # a chained recipe starts from an earlier run (genai.parents)
            self.base_path = self.parent.training_base() if self.parent else resolve_model_path(recipe.model)
            self.tokenizer = load_tokenizer(recipe.model, self.base_path)
            self.template = template_for(recipe, self.tokenizer)
            self.data = prepare(recipe, self.tokenizer, self.template)
        self.stop_ids = sorted(set(self.data.stats.get("stop_token_ids", [])) | {self.tokenizer.eos_token_id})
        method = OBJECTIVES[self.cfg.method]
        group = method.group  # a preference pair stays in one row / micro-batch
        packing = recipe.data.packing and method.packs_rows
        self.rows = make_rows(self.data.train, packing, recipe.data.max_length, group)
        self.eval_rows = (
            make_rows(self.data.eval, packing, recipe.data.max_length, group) if self.data.eval is not None else []
        )
        self.world = self.accelerator.num_processes
        self.micro_per_epoch, self.total_steps = plan_steps(recipe, len(self.rows), self.world)

    def _setup_model(self) -> None:
        from transformers import get_scheduler

        cfg = self.cfg
        model = load_model(self.recipe.model, self.base_path)
        self._layer_kernels(model)
        model = wrap_for_training(
            model,
            self.recipe.lora,
            quantized=self.recipe.model.load_in_4bit,
            gradient_checkpointing=cfg.gradient_checkpointing,
            adapter=self.parent and self.parent.adapter,
        )
        # The loss over trained positions only, inside the forward (before accelerate wraps the model).
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.trained_positions = use_trained_positions_loss(base, kernels.fused_loss if self.liger else None)
        lean_lora = self.recipe.lora.enabled and use_lean_lora(model) > 0
        # CPU: large tensors mapped and unmapped, not left in glibc's growing heap (genai.training.heap).
        heap = map_large_blocks() if self.accelerator.device.type == "cpu" else None
        # What the run computes with (the progress line and the manifest say it).
        self.kernels = {
            "attention": "per-sample (packed rows)" if self.packed_attention else base.config._attn_implementation,
            "loss": "trained positions only" if self.trained_positions else "full logits",
            "liger": self.liger,
            "lean_swiglu": self.lean_swiglu,
            "lean_lora": lean_lora,
            "cpu_heap": heap,
        }
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = (
            torch.optim.AdamW(groups, lr=cfg.learning_rate)
            if cfg.optimizer == "adamw"
            else torch.optim.SGD(groups, lr=cfg.learning_rate)
        )
        warmup = cfg.warmup_steps or int(cfg.warmup_ratio * self.total_steps)
        # Not prepared by accelerate: its wrapper steps once per process, and our steps are global already.
        self.scheduler = get_scheduler(
            cfg.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=self.total_steps
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        checkpoint.keep_trainable_only(self.accelerator)
        self.sharded = checkpoint.is_sharded(self.accelerator)
        self.objective = OBJECTIVES[cfg.method](self)
        self.objective.prepare(self)  # what it needs of the starting model, before a checkpoint loads

    def _layer_kernels(self, model) -> None:
        """Liger's kernels (GPU), else the lean SwiGLU; per-sample attention for packed rows."""
        cfg = self.cfg
        self.liger = kernels.wanted(cfg.liger, cuda=self.accelerator.device.type == "cuda")
        if self.liger:
            kernels.apply_layer_kernels(model)
        # Liger has its own SwiGLU; gradient checkpointing keeps no MLP activations to save.
        self.lean_swiglu = not (self.liger or cfg.gradient_checkpointing) and use_lean_swiglu(model) > 0
        # Attention within each sample only, computed per sample, unless the recipe names an attention.
        self.packed_attention = (
            self.recipe.data.packing
            and self.recipe.model.attn_implementation is None
            and use_packed_attention(model, self.recipe.data.max_length)
        )

    def _setup_logging(self) -> None:
        self.tracker = Tracker.for_run(self.recipe, self.run.path, metrics_file=True) if self.main else Tracker([])
        if self.resume_from is None:
            self.tracker.log_recipe(self.recipe)
        self.progress = Progress(self.total_steps, self.state.step, enabled=self.main and self.verbose)
        if self.resume_from is not None:
            self.progress.message(f"resumed from step {self.state.step} ({self.resume_from})")
        stats, packed = self.data.stats["train"], self.recipe.data.packing
        self.progress.message(
            f"data: {stats['samples']} train samples -> {len(self.rows)} rows ({'packed' if packed else 'padded'}), "
            f"cache {'hit' if self.data.cache_hit else 'built'}; "
            f"{self.total_steps} steps on {self.world} process(es), {self.accelerator.device}"
        )
        k = self.kernels
        self.progress.message(
            f"attention {k['attention']}; loss over {k['loss']}; Liger kernels {'on' if k['liger'] else 'off'}"
        )

    # ------------------------------------------------------------------ the loop
    def before(self) -> None:
        """Score the base model's exact match (fresh runs), and start the clocks."""
        em = self.cfg.exact_match
        if self.main and em.limit and self.data.eval is not None and not self.sharded:
            self.eval_examples = split_examples(self.recipe)[1]
            if self.resume_from is not None:  # scored when the run started: the first record of metrics.jsonl
                first = next((m for m in self.run.metrics() if "exact_match" in m and m.get("step") == 0), None)
                self.em_before = first and {"exact_match": first["exact_match"], "n": None}
            else:
                self.em_before = self._exact_match()
                if self.em_before:
                    self.progress.message(
                        f"exact match before training: {self.em_before['exact_match']:.1%} (n={self.em_before['n']})"
                    )
                    self.tracker.log_metrics({"exact_match": self.em_before["exact_match"]}, self.state.step)
        self.model.train()
        self.order = epoch_order(self.cfg.seed, self.state.epoch, len(self.rows))
        self.window = _Window()
        self.run_start = time.perf_counter() - self.state.elapsed
        self.process_start, self.first_step = time.perf_counter(), self.state.step

    def _micro_batches(self) -> tuple[list[dict], list[list[list[int]]], int]:
        """This process's micro-batches of the next optimizer step, their rows, and their real (unpadded) tokens."""
        state, mbs, world = self.state, self.cfg.micro_batch_size, self.world
        accum = self.cfg.gradient_accumulation_steps
        if state.micro + accum > self.micro_per_epoch:
            state.epoch, state.micro = state.epoch + 1, 0
            self.order = epoch_order(self.cfg.seed, state.epoch, len(self.rows))
        batches, rows, real_tokens = [], [], 0
        rank = self.accelerator.process_index
        for m in range(state.micro, state.micro + accum):
            chunk = self.order[m * mbs * world : (m + 1) * mbs * world]
            mine = [self.rows[i] for i in chunk[rank::world]]
            seed = [self.cfg.seed, state.step, m, rank]
            batch, tokens = self.objective.batch(self.model, self.data.train, mine, self.accelerator.device, seed)
            batches.append(batch)
            real_tokens += tokens  # padding excluded
            rows.append(mine)
        return batches, rows, real_tokens

    def step(self) -> None:
        """One optimizer step over gradient_accumulation_steps micro-batches on every process."""
        acc = self.accelerator
        batches, rows, real_tokens = self._micro_batches()
        objective = self.objective
        counts = torch.tensor(
            [sum(objective.units(b, r) for b, r in zip(batches, rows, strict=True)), real_tokens],
            dtype=torch.float64,
            device=acc.device,
        )
        n_trained, n_tokens = acc.reduce(counts, reduction="sum").tolist()  # units: trained tokens, pairs...
        step_loss = 0.0
        signals = dict.fromkeys(objective.signals, 0.0)
        for i, (batch, mine) in enumerate(zip(batches, rows, strict=True)):
            with acc.no_sync(self.model) if i < len(batches) - 1 else nullcontext():
                loss_sum, sums = objective.loss(self.model, batch, mine)
                acc.backward(loss_sum * self.world / max(n_trained, 1.0))
            step_loss += float(loss_sum.detach())
            for name, value in sums.items():
                signals[name] += value
        self.grad_norm = None
        if self.cfg.max_grad_norm:
            self.grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step, self.state.micro = self.state.step + 1, self.state.micro + self.cfg.gradient_accumulation_steps
        self.state.tokens += int(n_tokens)
        local = torch.tensor([step_loss, *signals.values()], dtype=torch.float64, device=acc.device)
        total = acc.reduce(local, reduction="sum").tolist()
        self.window.loss += total[0]
        for name, value in zip(signals, total[1:], strict=True):
            self.window.signals[name] = self.window.signals.get(name, 0.0) + value
        self.window.trained += n_trained
        self.window.tokens += int(n_tokens)

    def after_step(self) -> None:
        """Log, evaluate and checkpoint when their step comes."""
        step, cfg, last = self.state.step, self.cfg, self.state.step == self.total_steps
        if step % cfg.logging_steps == 0 or last:
            self.log_window()
        if self.eval_rows and cfg.eval_steps and (step % cfg.eval_steps == 0 or last):
            self.evaluate()
        if cfg.save_steps and step % cfg.save_steps == 0 and not last:
            self.save()

    def log_window(self) -> None:
        """Metrics of the steps since the last log: to every sink and the progress line."""
        w, state = self.window, self.state
        self.last_loss = w.loss / max(w.trained, 1.0)
        tps = w.tokens / max(time.perf_counter() - w.start, 1e-9)
        self.tracker.log_metrics(
            {
                "epoch": state.epoch,
                "loss": round(self.last_loss, 6),
                "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": self.grad_norm,
                **{name: round(v, 6) for name, v in self.objective.means(w.signals, w.trained).items()},
                "tokens": state.tokens,
                "tokens_per_s": round(tps, 1),
                "elapsed_s": round(time.perf_counter() - self.run_start, 2),
            },
            state.step,
        )
        rate = (time.perf_counter() - self.process_start) / max(state.step - self.first_step, 1)
        self.progress.update(
            state.step,
            f"loss {self.last_loss:.4f}  {tps:,.0f} tok/s  eta {eta(rate * (self.total_steps - state.step))}",
            line=True,
        )
        self.window = _Window()

    def evaluate(self) -> float:
        """Held-out loss now, and the method's own held-out signals (all processes)."""
        scores = self.objective.evaluate(self.model, self.accelerator, self.data.eval, self.eval_rows, "eval")
        self.last_eval, self.last_eval_signals = scores.pop("eval_loss"), scores
        self.tracker.log_metrics({"eval_loss": round(self.last_eval, 6)} | scores, self.state.step)
        extra = "".join(f", {k[len('eval_') :]} {v:.4f}" for k, v in scores.items())
        self.progress.message(f"step {self.state.step}: eval loss {self.last_eval:.4f}{extra}")
        return self.last_eval

    def save(self) -> Path:
        """A checkpoint of everything a resume needs (all processes)."""
        self.state.elapsed = time.perf_counter() - self.run_start
        return checkpoint.save(
            self.run.checkpoint_root(self.recipe),
            self.accelerator,
            self.scheduler,
            self.state,
            self.cfg.save_total_limit,
        )

    # ------------------------------------------------------------------ the end
    def finish(self) -> TrainResult:
        """Final eval and checkpoint, the artifact, exact match, merge, and the manifest (last)."""
        self.progress.close()
        if self.eval_rows and self.last_eval is None:
            self.evaluate()
        if self.cfg.save_steps:
            self.save()
        self.state.elapsed = time.perf_counter() - self.run_start
        self.accelerator.wait_for_everyone()
        self.objective.close()  # GRPO's vLLM engine: its memory back before the merge and export
        artifact = self._export()
        result = TrainResult(
            self.run.path,
            self.state.step,
            self.last_loss,
            self.last_eval,
            artifact or self.run.path,
            data_stats=self.data.stats,
            exact_match_before=self.em_before and self.em_before["exact_match"],
        )
        if self.main:
            self._after_export(result)
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return result

    def _export(self) -> Path | None:
        """Save the artifact; sharded weights are gathered first (every process takes part)."""
        state_dict = self.accelerator.get_state_dict(self.model) if self.sharded else None
        if not self.main:
            return None
        gen = generation_config(self.base_path, self.tokenizer, self.stop_ids)
        folder = self.run.artifact_folder("adapter" if self.recipe.lora.enabled else "model")
        return save_artifact(
            folder, self.accelerator.unwrap_model(self.model), self.tokenizer, self.template, gen, state_dict=state_dict
        )

    def _after_export(self, result: TrainResult) -> None:
        if self.eval_examples:
            after = self._exact_match()
            if after:
                result.exact_match_after = after["exact_match"]
                self.progress.message(f"exact match after training: {after['exact_match']:.1%}")
                self.tracker.log_metrics({"exact_match": after["exact_match"]}, self.state.step)
        if self.cfg.merge and self.recipe.lora.enabled:
            result.merged = merge_adapter(
                result.artifact, self.run.merged_dir, trust_remote_code=self.recipe.model.trust_remote_code
            )
        self.tracker.log_artifact_path(result.artifact)
        self.run.write_manifest(self.recipe, **self._manifest_fields(result))

    def _manifest_fields(self, result: TrainResult) -> dict:
        recipe = self.recipe
        return {
            "status": "complete",
            "steps": self.state.step,
            "train_seconds": round(self.state.elapsed, 2),
            "tokens": self.state.tokens,
            "method": self.cfg.method,
            "metrics": {
                "train_loss": self.last_loss,
                "eval_loss": self.last_eval,
                **self.last_eval_signals,
                "exact_match_before": result.exact_match_before,
                "exact_match_after": result.exact_match_after,
            },
            "base_model": {
                # A chained run's base is its chain's first model; "parent" says which run it started from.
                "name_or_path": self.parent.root_name() if self.parent else recipe.model.name_or_path,
                "revision": recipe.model.revision,
                "resolved": self.base_path,
                "sha256": local_model_hash(Path(self.base_path)),
            },
            "parent": self.parent and self.parent.lineage(),
            "data_files": data_file_hashes(recipe),
            "git_commit": git_commit(Path.cwd()),
            "artifact": {
                "kind": "adapter" if recipe.lora.enabled else "model",
                "path": result.artifact.name,
                "merged": result.merged and result.merged.name,
            },
            "data": self.data.stats,
            "processes": self.world,
            "kernels": self.kernels,
        }

    def _exact_match(self) -> dict | None:
        em = self.cfg.exact_match
        return exact_match(
            self.accelerator.unwrap_model(self.model),
            self.tokenizer,
            self.template,
            self.eval_examples,
            self.stop_ids,
            limit=em.limit,
            max_new_tokens=em.max_new_tokens,
        )
