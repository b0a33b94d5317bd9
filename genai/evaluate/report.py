"""Print an EvalReport: the before/after table and one line per gate rule."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from genai.evaluate.results import format_row
from genai.evaluate.runner import EvalReport


def print_report(report: EvalReport, console: Console | None = None) -> None:
    console = console or Console(width=120)
    table = Table(title=f"eval ({report.meta['backend']})")
    for col in ("task", "metric", "base", "fine-tuned", "delta", "stderr"):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right", no_wrap=True)
    for r in report.rows:
        table.add_row(*format_row(r))
    console.print(table)
    for v in report.verdicts:
        console.print(f"gate {'PASS' if v.passed else 'FAIL'}: {v.detail}")
    if report.verdicts:
        console.print(f"gate: {'passed' if report.passed else 'FAILED'}")
    console.print(f"results: {report.out_dir}")
