"""What ships inside the package: the recipes with their data, and the eval suites.

The top-level `recipes/` and `eval/` folders are the source of truth; `genai/assets/recipes` and
`genai/assets/eval` point at them, and the wheel carries copies as package data, so an installed
genai (not only a source checkout) finds them through importlib.resources. `genai init` copies a
shipped recipe and its local data files into a folder to start from.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import yaml

from genai.atomic import atomic_write_text, normal_mode
from genai.errors import GenaiError


def asset(name: str) -> Path:
    """A folder or file shipped under genai/assets."""
    return Path(str(resources.files("genai").joinpath("assets", name)))


def eval_dir() -> Path:
    """The bundled eval suites ($GENAI_EVAL_DIR replaces them, for tests and suite authors)."""
    env = os.environ.get("GENAI_EVAL_DIR")
    return Path(env) if env else asset("eval")


def recipes_dir() -> Path:
    """The shipped recipes."""
    return asset("recipes")


def _description(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if isinstance(data, dict) and data.get("description"):
        return str(data["description"])
    comment = next((line for line in text.splitlines() if line.startswith("#")), "# ")
    return comment.lstrip("# ").strip()


def shipped_recipes() -> dict[str, str]:
    """{recipe name: one-line description} of every shipped recipe."""
    return {p.stem: _description(p) for p in sorted(recipes_dir().glob("*.yaml"))}


def _source(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    shipped = recipes_dir() / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    import difflib

    close = difflib.get_close_matches(name, list(shipped_recipes()), n=1)
    raise GenaiError(
        f"genai init: no shipped recipe '{name}'" + (f"; did you mean '{close[0]}'?" if close else ""),
        hint="`genai init --list` shows them; or give a path to a recipe file",
    )


def _local_files(raw: dict) -> list[str]:
    """The recipe's local file paths as written: data sources and a .jinja chat template."""
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    paths = [s.get("path") for split in ("train", "eval") for s in data.get(split) or [] if isinstance(s, dict)]
    template = (raw.get("model") or {}).get("chat_template")
    if isinstance(template, str) and template.endswith(".jinja"):
        paths.append(template)
    return [p for p in paths if isinstance(p, str) and "://" not in p]


def _copy_plan(source: Path, text: str, dest: Path) -> tuple[str, dict[Path, Path]]:
    """(recipe text to write, {file to copy: where}). Files beside the recipe keep their relative place;
    others go to data/ and the recipe is pointed there."""
    plan: dict[Path, Path] = {}
    for written in _local_files(yaml.safe_load(text) or {}):
        src = (source.parent / os.path.expanduser(written)).resolve()
        try:
            rel = src.relative_to(source.parent.resolve())
        except ValueError:
            rel = Path("data") / src.name
            text = text.replace(written, str(rel))
        if src.is_dir():
            plan.update({f: dest / rel / f.relative_to(src) for f in src.rglob("*") if f.is_file()})
        else:
            plan[src] = dest / rel
    return text, plan


def copy_recipe(name: str, dest: Path, *, force: bool = False) -> list[Path]:
    """Copy a shipped recipe (or a recipe file) and its local files into `dest`; the recipe comes first."""
    from genai.recipe import load_recipe

    source = _source(name)
    load_recipe(source)  # a recipe that does not validate is not copied
    text, plan = _copy_plan(source, source.read_text(encoding="utf-8"), dest)
    recipe_out = dest / source.name
    existing = [p for p in (recipe_out, *plan.values()) if p.exists()]
    if existing and not force:
        raise GenaiError(f"genai init: {existing[0]} already exists", hint="choose another folder, or add --force")
    parent = (yaml.safe_load(text) or {}).get("model", {}).get("name_or_path", "")
    copied: list[Path] = []
    if isinstance(parent, str) and parent.endswith((".yaml", ".yml")) and not os.path.isabs(parent):
        # A chained recipe's parent recipe (and its files) comes along, where the recipe expects it.
        copied = copy_recipe(str(source.parent / parent), (dest / parent).parent, force=force)
    for src, out in plan.items():
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        os.close(fd)
        shutil.copyfile(src, tmp)
        normal_mode(Path(tmp))
        os.replace(tmp, out)
    atomic_write_text(recipe_out, text)  # last: a recipe whose data is all there
    return [recipe_out, *plan.values(), *copied]
