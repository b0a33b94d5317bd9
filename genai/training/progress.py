"""Training progress on the console: one live rich bar on a terminal, plain lines otherwise.

Metrics go to the tracker's sinks (genai.tracking), not here: a quiet run keeps its metrics.
Every line (and, under a bar, each logged step) also goes to the run's log (genai.console).
"""

from __future__ import annotations

from genai import console


class Progress:
    """Console output when `enabled` (the main process of a verbose run), nothing otherwise."""

    def __init__(self, total: int, start: int, *, enabled: bool):
        self.total, self.enabled = total, enabled
        self._bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

            # Steps, then loss, tokens/s and the ETA as the trainer words them (info).
            self._bar = console.start_bar(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}")
            )
        if self._bar is not None:
            self._task = self._bar.add_task("train", total=total, completed=start, info="")

    def update(self, step: int, info: str, *, line: bool) -> None:
        """Move the bar to `step`; print (without a bar) or log (under one) a line when `line`."""
        if not self.enabled:
            return
        text = f"step {step}/{self.total}  {info}"
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)
            if line:
                console.log_only(text)
        elif line:
            console.echo(text)

    def message(self, text: str) -> None:
        """A line above the bar."""
        if self.enabled:
            console.echo(text)

    def close(self) -> None:
        """Stop the bar (idempotent)."""
        console.stop_bar(self._bar)
        self._bar = None


def eta(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
