"""FSDP and DeepSpeed ZeRO-3 through `genai train` on the GPUs here: save, SIGKILL, resume, export.

accelerate runs its FSDP and DeepSpeed paths only on GPUs (on CPU it falls back to DDP), so the
sharded checkpoint and export code is checked here, not in the CPU test suite. For each profile
(fsdp; deepspeed-zero3 when `deepspeed` is installed) on every visible GPU: an uninterrupted run,
and a run killed (all its processes) once its first checkpoint is complete, then resumed; the two
adapters must match, and both must match a run without a profile to bf16 precision. The tiny model
is built locally, so nothing is downloaded.
Usage: python bench/gpu/sharded_resume.py [--steps 20] [--allow-cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def recipe(work: Path, steps: int, gpu: bool) -> Path:
    from bench.train_throughput import make_data

    make_data(work / "train.jsonl", 2000)
    path = work / "r.yaml"
    path.write_text(f"""\
name: sharded
model: {{name_or_path: genai/tiny-llama}}
data: {{train: [{{path: {work / "train.jsonl"}, format: alpaca}}], max_length: 256}}
lora: {{r: 8, alpha: 16, dropout: 0.0}}
train: {{output_dir: {work / "runs"}, max_steps: {steps}, micro_batch_size: 4, learning_rate: 1.0e-3,
        mixed_precision: "{"bf16" if gpu else "no"}", logging_steps: 5, save_steps: {steps // 2},
        exact_match: {{limit: 0}}}}
""")
    return path


def train(genai: str, path: Path, run: Path, profile: list[str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [genai, "train", str(path), "--run-dir", str(run), *profile, *extra],
        text=True,
        capture_output=True,
        timeout=1800,
    )


def killed_and_resumed(genai: str, path: Path, run: Path, profile: list[str], first_ckpt: str) -> None:
    proc = subprocess.Popen(
        [genai, "train", str(path), "--run-dir", str(run), *profile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 1200
    while not (run / "checkpoints" / first_ckpt / "state.json").exists():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"{run}: ended before its first checkpoint")
        time.sleep(0.05)
    subprocess.run(["pkill", "-KILL", "-f", f"genai.training.worker {run}"], check=False)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    out = train(genai, path, run, profile, "--resume")
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])


def max_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    x, y = (load_file(str(p / "adapter" / "adapter_model.safetensors")) for p in (a, b))
    assert x.keys() == y.keys(), "adapters with different tensors"
    return max(float((x[k].float() - y[k].float()).abs().max()) for k in x)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--allow-cpu", action="store_true")
    args = ap.parse_args()
    from bench.common import gpu_or_exit

    gpu = gpu_or_exit(args.allow_cpu)
    from bench.common import record

    genai = str(Path(sys.executable).with_name("genai"))
    work = Path(tempfile.mkdtemp(prefix="genai-sharded-"))
    path = recipe(work, args.steps, gpu)
    plain = work / "plain"
    out = train(genai, path, plain, [])
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    profiles = ["fsdp"] + (["deepspeed-zero3"] if importlib.util.find_spec("deepspeed") else [])
    n = max(torch.cuda.device_count(), 1)
    results = []
    for name in profiles if gpu else ["ddp"]:  # on CPU accelerate would run FSDP as DDP anyway
        profile = [f"train.distributed.profile={name}", f"train.distributed.num_processes={n}"]
        whole, resumed = work / f"{name}-whole", work / f"{name}-resumed"
        out = train(genai, path, whole, profile)
        if out.returncode != 0:
            raise SystemExit(f"{name}: {out.stderr[-3000:]}")
        killed_and_resumed(genai, path, resumed, profile, f"step-{args.steps // 2:07d}")
        results.append(
            f"{name} x{n}: resumed vs whole {max_diff(whole, resumed):.2e}, vs no profile {max_diff(whole, plain):.2e}"
        )
        print(results[-1])
    if gpu:
        record("GPU sharded resume", "; ".join(results) + (" (deepspeed not installed)" if len(profiles) == 1 else ""))


if __name__ == "__main__":
    main()
