"""Model families: how each is recognised, ends a turn, is templated, LoRA-targeted and served
by vLLM, and a faithful tiny offline build of each (`genai/tiny-<family>`).

Importing this package is cheap (no torch): the builds import their libraries when they run.
"""

from __future__ import annotations

from genai.families.family import Family, TinyShape
from genai.families.registry import FAMILIES, detect_family, get_family
from genai.families.table import family_rows, print_families
from genai.families.tiny_builds import ensure_tiny_family_model, tiny_family_dir

__all__ = [
    "FAMILIES",
    "Family",
    "TinyShape",
    "detect_family",
    "ensure_tiny_family_model",
    "family_rows",
    "get_family",
    "print_families",
    "tiny_family_dir",
]
