"""Paths the studio may read: inside the runs root or a recipe folder, nowhere else. Every path that comes
from a request goes through `inside()`: `..`, absolute paths and symlinks that lead out are refused."""

from __future__ import annotations

from pathlib import Path


class OutsideRoots(ValueError):
    """A requested path is not inside the studio's folders."""


def inside(root: Path, rel: str) -> Path:
    """`rel` under `root`, resolved (symlinks followed); OutsideRoots when it leads out of `root`."""
    if not rel or rel.startswith(("/", "\\")) or "\x00" in rel:
        raise OutsideRoots(rel)
    base = root.resolve()
    path = (base / rel).resolve()
    if path != base and base not in path.parents:
        raise OutsideRoots(rel)
    return path


def recipe_files(folders: list[Path]) -> list[Path]:
    """The recipe files (*.yaml) directly in the recipe folders, by name."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.glob("*.yaml") if p.is_file()]
    return sorted(found, key=lambda p: (p.name, str(p)))
