"""The training loop on accelerate: the same code for CPU, one GPU and many processes.

Loss is summed over trained tokens and divided by the trained-token count of the whole
optimizer step (all micro-batches, all processes), so packing, padding and gradient
accumulation give the same objective.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genai.data.pack import IGNORE, TokenizedSet, collate, make_rows
from genai.data.pipeline import data_file_hashes, prepare, split_examples
from genai.data.templates import resolve_template
from genai.models import load_model, load_tokenizer, resolve_model_path, wrap_for_training
from genai.recipe import Recipe
from genai.runs import git_commit, local_model_hash, write_manifest
from genai.train import checkpoint
from genai.train.checkpoint import TrainState
from genai.train.exact_match import exact_match
from genai.train.export import generation_config, merge_adapter, save_artifact
from genai.train.progress import Progress, eta

CHAT_FORMATS = {"alpaca", "messages", "sharegpt", "preference"}


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    train_loss: float | None
    eval_loss: float | None
    artifact: Path
    merged: Path | None = None
    exact_match_before: dict | None = None
    exact_match_after: dict | None = None
    data_stats: dict = field(default_factory=dict)


def mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def needs_template(recipe: Recipe) -> bool:
    return any(s.format in CHAT_FORMATS for s in [*recipe.data.train, *recipe.data.eval]) or bool(
        recipe.model.chat_template
    )


def plan_steps(recipe: Recipe, n_rows: int, world: int) -> tuple[int, int]:
    """(micro-batches per epoch across all processes, total optimizer steps)."""
    per_micro = recipe.train.micro_batch_size * world
    micro_per_epoch = max(1, n_rows // per_micro)
    steps_per_epoch = max(1, micro_per_epoch // recipe.train.gradient_accumulation_steps)
    total = recipe.train.max_steps or math.ceil(recipe.train.epochs * steps_per_epoch)
    return micro_per_epoch, total


def epoch_order(seed: int, epoch: int, n_rows: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n_rows)


def _to_device(batch: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}


def _loss_sum(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )


def evaluate_loss(
    model, accelerator, data: TokenizedSet, rows: list[list[int]], mbs: int, pad_id: int, packing: bool
) -> float:
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    mine = rows[accelerator.process_index :: accelerator.num_processes]
    with torch.no_grad():
        for i in range(0, len(mine), mbs):
            batch = _to_device(collate(data, mine[i : i + mbs], pad_id, packing), accelerator.device)
            total[0] += _loss_sum(model, batch).double()
            total[1] += (batch["labels"][:, 1:] != IGNORE).sum()
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    return float(total[0] / total[1].clamp(min=1))


def train(recipe: Recipe, run_dir: Path, resume_from: Path | None = None, *, verbose: bool = True) -> TrainResult:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    cfg = recipe.train
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    accelerator = Accelerator(mixed_precision=mixed_precision(cfg.mixed_precision), cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    set_seed(cfg.seed)

    with accelerator.main_process_first():  # built-in model build and data preprocessing: once, on rank 0
        base_path = resolve_model_path(recipe.model)
        tokenizer = load_tokenizer(recipe.model, base_path)
        template = resolve_template(recipe.model.chat_template, tokenizer) if needs_template(recipe) else None
        data = prepare(recipe, tokenizer, template)
    stop_ids = sorted(set(data.stats.get("stop_token_ids", [])) | {tokenizer.eos_token_id})
    packing, mbs, accum = recipe.data.packing, cfg.micro_batch_size, cfg.gradient_accumulation_steps
    rows = make_rows(data.train, packing, recipe.data.max_length)
    lengths = data.train.lengths()
    eval_rows = make_rows(data.eval, packing, recipe.data.max_length) if data.eval is not None else []
    world = accelerator.num_processes
    micro_per_epoch, total_steps = plan_steps(recipe, len(rows), world)

    model = load_model(recipe.model, base_path)
    model = wrap_for_training(
        model, recipe.lora, quantized=recipe.model.load_in_4bit, gradient_checkpointing=cfg.gradient_checkpointing
    )
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
    warmup = cfg.warmup_steps or int(cfg.warmup_ratio * total_steps)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)

    ckpt_root = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else run_dir / "checkpoints"
    state = TrainState()
    if resume_from is not None:
        state = checkpoint.load(resume_from, accelerator, model, optimizer, scheduler)
    progress = Progress(total_steps, state.step, run_dir / "metrics.jsonl" if main else None, enabled=main and verbose)
    progress.message(
        f"data: {data.stats['train']['samples']} train samples -> {len(rows)} rows "
        f"({'packed' if packing else 'padded'}), cache {'hit' if data.cache_hit else 'built'}; "
        f"{total_steps} steps on {world} process(es), {accelerator.device}"
    )

    eval_examples = []
    em_before = None
    if main and cfg.exact_match.limit and (data.eval is not None):
        eval_examples = split_examples(recipe)[1]
        if resume_from is None:
            em_before = exact_match(
                accelerator.unwrap_model(model),
                tokenizer,
                template,
                eval_examples,
                stop_ids,
                limit=cfg.exact_match.limit,
                max_new_tokens=cfg.exact_match.max_new_tokens,
            )
            if em_before:
                progress.message(f"exact match before training: {em_before['exact_match']:.1%} (n={em_before['n']})")
                progress.log({"step": state.step, "exact_match": em_before["exact_match"]})

    model.train()
    order = epoch_order(cfg.seed, state.epoch, len(rows))
    window_loss = window_count = 0.0
    window_tokens, window_start = 0, time.perf_counter()
    run_start = time.perf_counter() - state.elapsed
    process_start, first_step = time.perf_counter(), state.step
    last_loss = last_eval = None
    while state.step < total_steps:
        if state.micro + accum > micro_per_epoch:
            state.epoch, state.micro = state.epoch + 1, 0
            order = epoch_order(cfg.seed, state.epoch, len(rows))
        batches, real_tokens = [], 0
        for m in range(state.micro, state.micro + accum):
            chunk = order[m * mbs * world : (m + 1) * mbs * world]
            mine = [rows[i] for i in chunk[accelerator.process_index :: world]]
            real_tokens += int(sum(lengths[i] for row in mine for i in row))  # padding excluded
            batches.append(_to_device(collate(data.train, mine, tokenizer.pad_token_id, packing), accelerator.device))
        counts = torch.tensor(
            [sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches), real_tokens],
            dtype=torch.float64,
            device=accelerator.device,
        )
        n_trained, n_tokens = accelerator.reduce(counts, reduction="sum").tolist()
        step_loss = 0.0
        for i, batch in enumerate(batches):
            ctx = accelerator.no_sync(model) if i < len(batches) - 1 else nullcontext()
            with ctx:
                loss_sum = _loss_sum(model, batch)
                accelerator.backward(loss_sum * world / max(n_trained, 1.0))
            step_loss += float(loss_sum.detach())
        grad_norm = None
        if cfg.max_grad_norm:
            grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step, state.micro = state.step + 1, state.micro + accum
        state.tokens += int(n_tokens)
        local = torch.tensor([step_loss], dtype=torch.float64, device=accelerator.device)
        window_loss += float(accelerator.reduce(local, reduction="sum"))
        window_count += n_trained
        window_tokens += int(n_tokens)

        if state.step % cfg.logging_steps == 0 or state.step == total_steps:
            elapsed = time.perf_counter() - window_start
            last_loss = window_loss / max(window_count, 1.0)
            tps = window_tokens / max(elapsed, 1e-9)
            done = time.perf_counter() - run_start
            rec = {
                "step": state.step,
                "epoch": state.epoch,
                "loss": round(last_loss, 6),
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": grad_norm,
                "tokens": state.tokens,
                "tokens_per_s": round(tps, 1),
                "elapsed_s": round(done, 2),
            }
            progress.log(rec)
            rate = (time.perf_counter() - process_start) / max(state.step - first_step, 1)
            progress.update(
                state.step,
                f"loss {last_loss:.4f}  {tps:,.0f} tok/s  eta {eta(rate * (total_steps - state.step))}",
                line=True,
            )
            window_loss = window_count = 0.0
            window_tokens, window_start = 0, time.perf_counter()
        if eval_rows and cfg.eval_steps and (state.step % cfg.eval_steps == 0 or state.step == total_steps):
            last_eval = evaluate_loss(model, accelerator, data.eval, eval_rows, mbs, tokenizer.pad_token_id, packing)
            progress.log({"step": state.step, "eval_loss": round(last_eval, 6)})
            progress.message(f"step {state.step}: eval loss {last_eval:.4f}")
        if cfg.save_steps and state.step % cfg.save_steps == 0 and state.step < total_steps:
            state.elapsed = time.perf_counter() - run_start
            checkpoint.save(ckpt_root, accelerator, model, optimizer, scheduler, state, cfg.save_total_limit)
    progress.close()

    if eval_rows and last_eval is None:
        last_eval = evaluate_loss(model, accelerator, data.eval, eval_rows, mbs, tokenizer.pad_token_id, packing)
    state.elapsed = time.perf_counter() - run_start
    if cfg.save_steps:
        checkpoint.save(ckpt_root, accelerator, model, optimizer, scheduler, state, cfg.save_total_limit)
    accelerator.wait_for_everyone()
    result = TrainResult(
        run_dir, state.step, last_loss, last_eval, run_dir, data_stats=data.stats, exact_match_before=em_before
    )
    if main:
        unwrapped = accelerator.unwrap_model(model)
        gen = generation_config(base_path, tokenizer, stop_ids)
        result.artifact = save_artifact(
            run_dir / ("adapter" if recipe.lora.enabled else "model"), unwrapped, tokenizer, template, gen
        )
        if eval_examples:
            result.exact_match_after = exact_match(
                unwrapped,
                tokenizer,
                template,
                eval_examples,
                stop_ids,
                limit=cfg.exact_match.limit,
                max_new_tokens=cfg.exact_match.max_new_tokens,
            )
            if result.exact_match_after:
                progress.message(f"exact match after training: {result.exact_match_after['exact_match']:.1%}")
                progress.log({"step": state.step, "exact_match": result.exact_match_after["exact_match"]})
        if cfg.merge and recipe.lora.enabled:
            result.merged = merge_adapter(
                result.artifact, run_dir / "merged", trust_remote_code=recipe.model.trust_remote_code
            )
        write_manifest(
            run_dir,
            recipe,
            status="complete",
            steps=state.step,
            train_seconds=round(state.elapsed, 2),
            tokens=state.tokens,
            metrics={
                "train_loss": last_loss,
                "eval_loss": last_eval,
                "exact_match_before": em_before and em_before["exact_match"],
                "exact_match_after": result.exact_match_after and result.exact_match_after["exact_match"],
            },
            base_model={
                "name_or_path": recipe.model.name_or_path,
                "revision": recipe.model.revision,
                "resolved": base_path,
                "sha256": local_model_hash(Path(base_path)),
            },
            data_files=data_file_hashes(recipe),
            git_commit=git_commit(Path.cwd()),
            artifact={
                "kind": "adapter" if recipe.lora.enabled else "model",
                "path": result.artifact.name,
                "merged": result.merged and result.merged.name,
            },
            data=data.stats,
            processes=world,
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result
