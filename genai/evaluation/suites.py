"""Task suites: folders of lm-eval task YAMLs with their data (the project's eval/ and more).

lm-eval resolves a task's relative `data_files` against the working directory; suites here
are written relative to their YAML file, so each suite is copied to a scratch folder with
those paths made absolute, and that folder is what lm-eval includes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from genai.errors import GenaiError
from genai.shipped import eval_dir


class Tagged:
    """A YAML value under a custom tag (lm-eval's `!function`), kept as is."""

    def __init__(self, tag: str, value):
        self.tag, self.value = tag, value


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: Tagged("!" + suffix, loader.construct_scalar(node)))
_Dumper.add_representer(Tagged, lambda dumper, t: dumper.represent_scalar(t.tag, t.value))


def _absolute_data_files(cfg: dict, yaml_path: Path) -> None:
    kwargs = cfg.get("dataset_kwargs")
    if not isinstance(kwargs, dict) or "data_files" not in kwargs:
        return

    def fix(p):
        if not isinstance(p, str) or "://" in p:
            return p
        full = (yaml_path.parent / p).resolve()
        if not full.exists():
            raise GenaiError(
                f"{yaml_path}: dataset_kwargs.data_files: file not found: {p}",
                hint="data files are relative to the task YAML",
            )
        return str(full)

    files = kwargs["data_files"]
    if isinstance(files, dict):
        kwargs["data_files"] = {k: ([fix(x) for x in v] if isinstance(v, list) else fix(v)) for k, v in files.items()}
    elif isinstance(files, list):
        kwargs["data_files"] = [fix(x) for x in files]
    else:
        kwargs["data_files"] = fix(files)


def materialize(suite_dirs: list[Path]) -> Path:
    """Copy suites to a scratch include folder with absolute data paths; validate every YAML."""
    out = Path(tempfile.mkdtemp(prefix="genai-suites-"))
    for root in suite_dirs:
        if not root.is_dir():
            raise GenaiError(f"eval.suite_dirs: not a folder: {root}")
        for yml in sorted(root.rglob("*.yaml")):
            try:
                cfg = yaml.load(yml.read_text(encoding="utf-8"), Loader=_Loader)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f":{mark.line + 1}" if mark else ""
                raise GenaiError(f"{yml}{where}: invalid task YAML: {getattr(exc, 'problem', exc)}") from None
            if not isinstance(cfg, dict):
                raise GenaiError(f"{yml}: a task YAML must be a mapping")
            _absolute_data_files(cfg, yml)
            dest = out / root.name / yml.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(yaml.dump(cfg, Dumper=_Dumper, sort_keys=False))
        for py in root.rglob("*.py"):  # `!function utils.fn` helpers travel with their YAML
            dest = out / root.name / py.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(py, dest)
    return out


def suite_dirs(extra: list[str]) -> list[Path]:
    """The bundled suites' folders, then eval.suite_dirs."""
    base = eval_dir()
    dirs = [d for d in sorted(base.iterdir()) if d.is_dir()] if base.is_dir() else []
    return dirs + [Path(d) for d in extra]


def list_tasks() -> str:
    """`genai eval --list`: every bundled task, its output type and its file."""
    import yaml

    lines = []
    for d in suite_dirs([]):
        for yml in sorted(d.rglob("*.yaml")):
            cfg = yaml.load(yml.read_text(), Loader=_Loader) or {}
            if isinstance(cfg, dict) and cfg.get("task"):
                lines.append(f"{cfg['task']:24} {cfg.get('output_type', '?'):22} {yml.relative_to(d.parent)}")
    return "\n".join(lines) + "\n(and every task lm-eval ships, by name)"


def task_configs() -> dict[str, tuple[str, dict]]:
    """Bundled task name -> (its YAML file, its config), read as eval/ is read for `genai eval`."""
    import yaml

    found: dict[str, tuple[str, dict]] = {}
    for root in suite_dirs([]):
        for yml in sorted(root.rglob("*.yaml")):
            try:
                cfg = yaml.load(yml.read_text(encoding="utf-8"), Loader=_Loader)
            except (OSError, yaml.YAMLError, UnicodeDecodeError):
                continue  # `genai eval` reports a broken suite file
            if isinstance(cfg, dict) and isinstance(cfg.get("task"), str):
                found.setdefault(cfg["task"], (str(yml), cfg))
    return found
