"""Numbers and tables as genai prints them: one formatter for the terminal, Markdown and HTML."""

from __future__ import annotations

MISSING = "-"


def is_number(x) -> bool:
    """True for ints and floats (bools are not numbers here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def num(x, spec: str = ".4f") -> str:
    """A number in `spec` (4 decimals by default), '-' for anything that is not a number."""
    return format(x, spec) if is_number(x) else MISSING


def value(x) -> str:
    """Any cell: numbers with 4 decimals (large ones in 4 significant digits), the rest as text."""
    if x is None:
        return MISSING
    if isinstance(x, float):
        return num(x) if abs(x) < 1e4 else num(x, ".4g")
    return str(x)


def print_table(
    columns: list[str], rows: list[list], *, title: str | None = None, console=None, right: tuple[str, ...] = ()
) -> None:
    """A plain rich table (wide enough for run paths); `right` names right-aligned columns."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", no_wrap=bool(right))
    for row in rows:
        table.add_row(*(value(x) for x in row))
    (console or Console(width=160)).print(table)
