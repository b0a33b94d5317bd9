"""Where genai keeps its own files: built-in models and caches, under $GENAI_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def genai_home() -> Path:
    """$GENAI_HOME, or ~/.cache/genai."""
    return Path(os.environ.get("GENAI_HOME", Path.home() / ".cache" / "genai"))


def cache_dir(kind: str) -> Path:
    """A cache folder of one kind (data, s3) under genai's home."""
    return genai_home() / "cache" / kind
