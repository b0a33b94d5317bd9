"""Start training: choose/create the run directory, then run in-process or launch N processes.

Several GPUs: `accelerate launch` with a shipped profile (DDP, FSDP, DeepSpeed ZeRO).
Several CPU processes (tests, CPU clusters): torchrun with the gloo backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import Recipe
from genai.runs import RECIPE_FILE, atomic_write_text, is_complete, latest_run, new_run_dir
from genai.train.checkpoint import list_checkpoints


def resolve_resume(recipe: Recipe, run_dir: Path | None, checkpoint: Path | None) -> tuple[Path, Path | None]:
    """(run dir, checkpoint to resume from) for `--resume`."""
    if checkpoint is not None:
        if not (checkpoint / "state.json").exists():
            raise GenaiError(f"{checkpoint}: not a complete checkpoint (no state.json)")
        return (run_dir or checkpoint.parent.parent), checkpoint
    run_dir = run_dir or latest_run(recipe)
    if run_dir is None:
        raise GenaiError(
            f"--resume: no earlier run of recipe '{recipe.name}' under {recipe.train.output_dir}",
            hint="drop --resume to start a new run",
        )
    if is_complete(run_dir):
        raise GenaiError(f"--resume: {run_dir} already finished", hint="start a new run without --resume")
    ckpt_root = Path(recipe.train.checkpoint_dir) if recipe.train.checkpoint_dir else run_dir / "checkpoints"
    ckpts = list_checkpoints(ckpt_root)
    return run_dir, (ckpts[-1] if ckpts else None)


def num_processes(recipe: Recipe) -> int:
    dist = recipe.train.distributed
    if dist.profile == "none":
        return 1
    if dist.num_processes:
        return dist.num_processes
    import torch

    return max(torch.cuda.device_count(), 1)


def launch_command(recipe: Recipe, run_dir: Path, ckpt: Path | None, gpu: bool) -> list[str]:
    dist = recipe.train.distributed
    n = num_processes(recipe)
    worker = ["-m", "genai.train.worker", str(run_dir)] + (["--resume-from", str(ckpt)] if ckpt else [])
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
    if dist.profile != "ddp":
        raise GenaiError(f"train.distributed.profile: '{dist.profile}' needs GPUs; on CPU use 'ddp'")
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
):
    ckpt = None
    if resume or checkpoint:
        run_dir, ckpt = resolve_resume(recipe, run_dir, checkpoint)
    elif run_dir is None:
        run_dir = new_run_dir(recipe)
    elif is_complete(run_dir):
        raise GenaiError(f"--run-dir {run_dir}: holds a finished run", hint="choose a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / RECIPE_FILE, recipe.to_yaml())
    inside_launcher = "LOCAL_RANK" in os.environ
    if num_processes(recipe) > 1 or recipe.train.distributed.num_machines > 1:
        if not inside_launcher:
            import torch

            cmd = launch_command(recipe, run_dir, ckpt, gpu=torch.cuda.is_available())
            proc = subprocess.run(cmd, check=False)
            if proc.returncode != 0:
                raise GenaiError(
                    f"distributed training failed (exit {proc.returncode}); see the log above",
                    hint=f"resume with `genai train ... --resume --run-dir {run_dir}`",
                )
            return run_dir
    from genai.train.loop import train

    return train(recipe, run_dir, ckpt, verbose=verbose)
