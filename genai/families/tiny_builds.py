"""The cached tiny family builds under $GENAI_HOME/models, built atomically on first use."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from genai.families.build import BUILDER_VERSION
from genai.families.registry import get_family
from genai.home import genai_home


def tiny_family_dir(name: str) -> Path:
    """Where the tiny build of family `name` is cached."""
    return genai_home() / "models" / f"tiny-{get_family(name).name}-v{BUILDER_VERSION}"


def ensure_tiny_family_model(name: str) -> Path:
    """The cached tiny build of family `name` (a model folder), built on first use (~5-15 s)."""
    family = get_family(name)
    target = tiny_family_dir(name)
    if (target / "genai_tiny.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tiny-{family.name}-build-", dir=target.parent))
    try:
        from genai.console import activity
        from genai.families.build import build_tiny_family_model

        with activity(f"building {family.tiny_id} once into {target}", f"built {family.tiny_id} in {{seconds}}"):
            build_tiny_family_model(family, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; the cache is shared like any model folder
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "genai_tiny.json").exists():  # lost a race to a half-built dir: retry once
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
