"""Run directories, atomic writes and the manifest (written last: its presence means complete)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genai.errors import GenaiError
from genai.recipe import Recipe

MANIFEST = "manifest.json"
RECIPE_FILE = "recipe.yaml"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def normal_mode(path: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries; give a published file or folder the usual mode."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    normal_mode(Path(tmp))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def recipe_root(recipe: Recipe) -> Path:
    return Path(recipe.train.output_dir) / recipe.name


def new_run_dir(recipe: Recipe) -> Path:
    root = recipe_root(recipe)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        run = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run.mkdir(parents=True)
            return run
        except FileExistsError:
            continue
    raise GenaiError(f"{root}: cannot create a new run directory")


def latest_run(recipe: Recipe) -> Path | None:
    root = recipe_root(recipe)
    if not root.is_dir():
        return None
    runs = sorted(
        (p for p in root.iterdir() if p.is_dir() and (p / RECIPE_FILE).exists()), key=lambda p: p.stat().st_mtime
    )
    return runs[-1] if runs else None


def is_complete(run: Path) -> bool:
    return (run / MANIFEST).exists()


def read_manifest(run: Path) -> dict:
    try:
        return json.loads((run / MANIFEST).read_text())
    except FileNotFoundError:
        raise GenaiError(
            f"{run}: not a finished run (no {MANIFEST})",
            hint="resume it with `genai train RECIPE --resume --run-dir RUN`",
        ) from None


def git_commit(where: Path) -> str | None:
    """The commit of the repository holding the recipe, when there is one (with '+dirty')."""
    import subprocess

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def local_model_hash(path: Path) -> str | None:
    """sha256 over a local model folder's config and weight files (names and contents)."""
    import hashlib

    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.suffix in (".safetensors", ".json") or f.name.endswith(".model")):
            h.update(f.name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def hardware() -> dict:
    info: dict = {"cpus": os.cpu_count()}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    import sys

    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def update_manifest(run: Path, **fields: Any) -> dict:
    """Merge fields into an existing manifest (atomic rewrite)."""
    manifest = read_manifest(run)
    manifest.update(fields)
    atomic_write_json(run / MANIFEST, manifest)
    return manifest


def environment() -> dict:
    from importlib import metadata

    versions = {}
    for pkg in ("genai", "torch", "transformers", "peft", "accelerate", "datasets", "trl"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hardware": hardware(),
        "packages": versions,
    }


def write_manifest(run: Path, recipe: Recipe, **fields: Any) -> dict:
    manifest = {
        "run_id": run.name,
        "recipe": recipe.name,
        "recipe_sha256": recipe.content_hash(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        **fields,
    }
    atomic_write_json(run / MANIFEST, manifest)
    return manifest


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
