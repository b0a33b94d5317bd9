"""Shared bench helpers: machine description and the dated RESULTS.md line."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = ""
    try:
        gpu = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
            )
            .stdout.strip()
            .replace("\n", ", ")
        )
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"{os.cpu_count()} cores {cpu}, {mem:.0f} GiB RAM, {gpu or 'no GPU'}"


def record(name: str, text: str) -> None:
    line = f"| {date.today().isoformat()} | {name} | {machine()} | {text} |\n"
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nAppended by the scripts in bench/ (one line a run).\n\n"
            "| date | bench | machine | result |\n|---|---|---|---|\n"
        )
    with RESULTS.open("a") as fh:
        fh.write(line)
    print(line.strip())


def gpu_or_exit(allow_cpu: bool) -> bool:
    """Whether a CUDA GPU is here (bench/gpu); without one, exit unless --allow-cpu (a smoke run on CPU)."""
    import torch

    if torch.cuda.is_available():
        return True
    if not allow_cpu:
        sys.exit("bench/gpu: no CUDA GPU here (--allow-cpu runs the script on CPU as a smoke test; nothing recorded)")
    return False
