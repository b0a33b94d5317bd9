"""YAML loading that remembers the line of every key, so errors can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from genai.errors import GenaiError

Loc = tuple  # path of keys / list indices, e.g. ("train", "learning_rate")


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


# A recipe is a few KB of YAML; PyYAML is pure Python, so a huge file (a data file given by mistake)
# would take minutes to fail.
MAX_RECIPE_BYTES = 2**20


def _read_text(path: Path) -> str:
    """The recipe's text; a missing, unreadable, huge or binary file is one error naming it."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError:
        raise GenaiError(f"{path}: recipe file not found") from None
    except IsADirectoryError:
        raise GenaiError(
            f"{path}: is a folder, not a recipe file", hint="give the recipe's YAML file, e.g. recipes/quickstart.yaml"
        ) from None
    except OSError as exc:
        raise GenaiError(f"{path}: cannot read recipe: {exc.strerror}") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise GenaiError(
            f"{path}: over {MAX_RECIPE_BYTES // 2**20} MiB, too big for a recipe",
            hint="a recipe is a small YAML file that names its data files under data.train",
        )
    bad = raw.find(b"\x00")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = exc.start if bad < 0 else min(bad, exc.start)
    if bad >= 0:
        line = raw.count(b"\n", 0, bad) + 1
        raise GenaiError(
            f"{path}:{line}: not a text file: byte 0x{raw[bad]:02x} at byte offset {bad} "
            + ("is a NUL byte" if raw[bad] == 0 else "is not UTF-8"),
            hint="a recipe is a YAML text file (UTF-8), e.g. recipes/quickstart.yaml",
        )
    return text


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Return (data, {key path: 1-based line}); invalid YAML raises GenaiError with the line."""
    return parse_yaml_with_lines(_read_text(path), path)


def parse_yaml_with_lines(text: str, path: Path | str) -> tuple[Any, dict[Loc, int]]:
    """load_yaml_with_lines for a text (an editor's) that `path` names in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:  # a control character: no line mark, only a position
        raise GenaiError(
            f"{path}:{text.count(chr(10), 0, exc.position) + 1}: invalid YAML: unacceptable character "
            f"#x{ord(exc.character) if isinstance(exc.character, str) else exc.character:04x}",
            hint="is this a binary file? A recipe is a YAML text file",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise GenaiError(
            f"{path}{where}: invalid YAML: {problem}", hint="check indentation and quoting on that line"
        ) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the longest prefix of loc that the YAML file has."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None
