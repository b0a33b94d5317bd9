"""Start training: choose/create the run directory, then run in-process or launch N processes.

Several GPUs: `accelerate launch` with a shipped profile (DDP, FSDP, DeepSpeed ZeRO).
Several CPU processes (tests, CPU clusters): torchrun with the gloo backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from genai import console
from genai.errors import GenaiError, Interrupted
from genai.recipe import Recipe
from genai.runs import Run, new_run, recipe_root, recipe_runs
from genai.training.checkpoint import STATE_FILE, list_checkpoints

SHARDED_PROFILES = ("fsdp", "deepspeed-zero2", "deepspeed-zero3")

if TYPE_CHECKING:
    from genai.training.trainer import TrainResult


def resolve_resume(recipe: Recipe, run_dir: Path | None, checkpoint: Path | None) -> tuple[Run, Path | None]:
    """(run, checkpoint to resume from) for `--resume`."""
    if checkpoint is not None:
        if not (checkpoint / STATE_FILE).exists():
            raise GenaiError(f"{checkpoint}: not a complete checkpoint (no {STATE_FILE})")
        return Run(run_dir or checkpoint.parent.parent), checkpoint
    if run_dir is not None:
        run = Run(run_dir)
        if run.is_trained:
            raise GenaiError(f"--resume: {run.path} already finished", hint="start a new run without --resume")
        ckpts = list_checkpoints(run.checkpoint_root(recipe))
        return run, (ckpts[-1] if ckpts else None)
    # The newest unfinished run that has a checkpoint: a newer folder left by a failed start has none.
    for run in reversed(recipe_runs(recipe)):
        ckpts = [] if run.is_trained else list_checkpoints(run.checkpoint_root(recipe))
        if ckpts:
            return run, ckpts[-1]
    raise GenaiError(
        f"--resume: no unfinished run of recipe '{recipe.name}' with a checkpoint under {recipe_root(recipe)}",
        hint="drop --resume to start a new run (or --run-dir RUN to restart that run from its beginning)",
    )


def choose_run(
    recipe: Recipe, *, resume: bool, run_dir: Path | None, checkpoint: Path | None
) -> tuple[Run, Path | None]:
    """The run folder to train into (new, given, or resumed) and the checkpoint to start from."""
    if resume or checkpoint:
        return resolve_resume(recipe, run_dir, checkpoint)
    if run_dir is None:
        return new_run(recipe), None
    if Run(run_dir).is_trained:
        raise GenaiError(f"--run-dir {run_dir}: holds a finished run", hint="choose a new folder")
    return Run(run_dir), None


def num_processes(recipe: Recipe) -> int:
    """Processes per machine: 1 without a profile, else the profile's count or every GPU."""
    dist = recipe.train.distributed
    if dist.profile == "none":
        return 1
    if dist.num_processes:
        return dist.num_processes
    import torch

    return max(torch.cuda.device_count(), 1)


def needs_launcher(recipe: Recipe) -> bool:
    """Several processes or machines, or a sharded profile (FSDP, DeepSpeed), which accelerate applies
    only when it launches the processes, even a single one."""
    dist = recipe.train.distributed
    return num_processes(recipe) > 1 or dist.num_machines > 1 or dist.profile in SHARDED_PROFILES


def launch_command(recipe: Recipe, run_dir: Path, ckpt: Path | None, gpu: bool) -> list[str]:
    """accelerate launch (GPUs, with the shipped profile) or torchrun (CPU, gloo) for the workers."""
    dist = recipe.train.distributed
    n = num_processes(recipe)
    worker = ["-m", "genai.training.worker", str(run_dir)] + (["--resume-from", str(ckpt)] if ckpt else [])
    if gpu:
        profile = resources.files("genai").joinpath(f"accelerate/{dist.profile}.yaml")
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(profile),
            "--num_processes",
            str(n * dist.num_machines),
            "--num_machines",
            str(dist.num_machines),
            "--machine_rank",
            str(dist.machine_rank),
        ]
        if dist.main_process_ip:
            cmd += ["--main_process_ip", dist.main_process_ip]
        if dist.main_process_port:
            cmd += ["--main_process_port", str(dist.main_process_port)]
        return cmd + worker
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(n),
        "--nnodes",
        str(dist.num_machines),
        "--node_rank",
        str(dist.machine_rank),
    ]
    if dist.main_process_ip:
        cmd += ["--master_addr", dist.main_process_ip]
    cmd += ["--master_port", str(dist.main_process_port or 29500)]
    return cmd + worker


def start_training(
    recipe: Recipe,
    *,
    resume: bool = False,
    run_dir: Path | None = None,
    checkpoint: Path | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train a recipe into a new (or resumed) run folder, in this process or across N launched processes."""
    import torch

    from genai.training.trainer import Trainer, TrainResult

    launch = needs_launcher(recipe) and "LOCAL_RANK" not in os.environ  # not yet inside a launcher
    profile, gpu = recipe.train.distributed.profile, torch.cuda.is_available()
    if launch and not gpu and profile != "ddp":  # before any folder is made
        raise GenaiError(f"train.distributed.profile: '{profile}' needs GPUs; on CPU use 'ddp'")
    run, ckpt = choose_run(recipe, resume=resume, run_dir=run_dir, checkpoint=checkpoint)
    fresh = not run.is_run
    run.write_recipe(recipe)
    console.attach(run.path)  # `genai train`'s console goes to RUN/logs/train.log from here (and what came before)
    try:
        if launch:
            proc = subprocess.run(launch_command(recipe, run.path, ckpt, gpu=gpu), check=False)
            if proc.returncode != 0:
                raise GenaiError(
                    f"distributed training failed (exit {proc.returncode}); see the log above",
                    hint=f"resume with `genai train ... --resume --run-dir {run.path}`",
                )
            return TrainResult.from_run(run)
        trainer = Trainer(recipe, run, ckpt, verbose=verbose)
        trainer.setup()
        return trainer.fit()
    except BaseException as exc:
        _after_failure(recipe, run, fresh, exc)
        raise


def _after_failure(recipe: Recipe, run: Run, fresh: bool, exc: BaseException) -> None:
    """A failed start leaves no run folder behind; Ctrl-C says how to go on from the last checkpoint."""
    ckpts = list_checkpoints(run.checkpoint_root(recipe))
    if fresh and not ckpts and not run.metrics_file.exists():
        shutil.rmtree(run.path, ignore_errors=True)  # nothing to resume: recipe.yaml alone would mislead --resume
    if isinstance(exc, KeyboardInterrupt):
        if ckpts:
            raise Interrupted(
                f"interrupted; {run.path} has a checkpoint at {ckpts[-1].name}",
                hint=f"resume with: genai train RECIPE --resume --run-dir {run.path}",
            ) from None
        raise Interrupted("interrupted before the first checkpoint; nothing to resume") from None
