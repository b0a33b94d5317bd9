"""`genai families`: the registry as a table, or as JSON rows for scripts."""

from __future__ import annotations

from genai.families.registry import FAMILIES

COLUMNS = [
    "family",
    "recognised by",
    "stop tokens",
    "BOS",
    "thinking",
    "LoRA targets",
    "tool parser",
    "reasoning",
    "tiny build",
]


def family_rows() -> list[dict]:
    """One plain dict per family (Family.summary)."""
    return [f.summary() for f in FAMILIES.values()]


def _recognised_by(row: dict) -> str:
    shared = any(f.name != row["name"] and set(f.model_types) & set(row["model_types"]) for f in FAMILIES.values())
    # Where a model_type is shared (llama: Llama 3 and SmolLM2) the name, then the tokens, decide.
    return "/".join(row["model_types"]) + (" + name, tokens" if shared else "")


def _bos(row: dict) -> str:
    if row["bos_token"] is None:
        return "none"
    return row["bos_token"] + (" (template)" if row["template_writes_bos"] else "")


def _thinking(row: dict) -> str | None:
    switch = row["thinking_switch"]
    if switch is None:
        return None
    return f"{switch}={row['template_kwargs'].get(switch)}"


def print_families(names: list[str] | None = None) -> None:
    """The families (all, or those named) as a terminal table (`--json` has every field)."""
    from rich.console import Console

    from genai.textfmt import print_table

    rows = [
        [
            r["name"],
            _recognised_by(r),
            " ".join(r["stop_tokens"]),
            _bos(r),
            _thinking(r),
            ",".join(t.removesuffix("_proj") for t in r["lora_targets"]),
            r["tool_parser"],
            r["reasoning_parser"],
            r["tiny_build"],
        ]
        for r in family_rows()
        if names is None or r["name"] in names
    ]
    print_table(COLUMNS, rows, console=Console(width=200))
