"""Preprocessing cache: tokenized sets stored as .npy files under a content-hash key."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from genai.data.pack import TokenizedSet

CACHE_VERSION = 2  # bump when tokenization semantics change (2: tools and tool_calls rendered)


def file_sha256(path: Path, _memo: dict = {}) -> str:  # noqa: B006 - per-process memo by (path, mtime, size)
    """sha256 of a file's content, remembered per (path, mtime, size) in this process."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _memo:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _memo[key] = h.hexdigest()
    return _memo[key]


def cache_key(parts: dict) -> str:
    """A short hash of everything that decides the tokenized output."""
    blob = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def load(root: Path, key: str) -> tuple[dict[str, TokenizedSet], dict] | None:
    """The cached sets and stats under `key`, or None when not cached."""
    d = root / key
    if not (d / "stats.json").exists():
        return None
    stats = json.loads((d / "stats.json").read_text())
    sets = {}
    for split in stats["splits"]:
        sets[split] = TokenizedSet(
            ids=np.load(d / f"{split}.ids.npy", mmap_mode="r"),
            trained=np.load(d / f"{split}.trained.npy", mmap_mode="r"),
            offsets=np.load(d / f"{split}.offsets.npy"),
            labels=np.load(d / f"{split}.labels.npy") if (d / f"{split}.labels.npy").exists() else None,
        )
    return sets, stats


def save(root: Path, key: str, sets: dict[str, TokenizedSet], stats: dict) -> None:
    """Write atomically: a reader sees either nothing or a complete entry."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        for split, ts in sets.items():
            np.save(tmp / f"{split}.ids.npy", ts.ids)
            np.save(tmp / f"{split}.trained.npy", ts.trained)
            np.save(tmp / f"{split}.offsets.npy", ts.offsets)
            if ts.labels is not None:
                np.save(tmp / f"{split}.labels.npy", ts.labels)
        (tmp / "stats.json").write_text(json.dumps({**stats, "splits": list(sets)}, indent=1))
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
        try:
            os.rename(tmp, root / key)
        except OSError:
            pass  # another process wrote the same key first; its content is identical
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
