"""The cached tiny family builds under $GENAI_HOME/models, built atomically on first use."""

from __future__ import annotations

from pathlib import Path

from genai.families.build import BUILDER_VERSION
from genai.families.registry import get_family
from genai.home import genai_home


def tiny_family_dir(name: str) -> Path:
    """Where the tiny build of family `name` is cached."""
    return genai_home() / "models" / f"tiny-{get_family(name).name}-v{BUILDER_VERSION}"


def ensure_tiny_family_model(name: str) -> Path:
    """The cached tiny build of family `name` (a model folder), built on first use (~5-15 s)."""
    from genai.tiny import build_once

    family = get_family(name)

    def build(folder: Path) -> None:
        from genai.families.build import build_tiny_family_model

        build_tiny_family_model(family, folder)

    return build_once(tiny_family_dir(name), family.tiny_id, build)
