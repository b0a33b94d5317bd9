"""Training progress: a rich bar on a terminal, plain lines otherwise; metrics as JSONL."""

from __future__ import annotations

import json
import sys
from pathlib import Path


class Progress:
    """Console output when `enabled`; the metrics file whenever it has a path (quiet runs keep
    their metrics: reports, plots and benchmarks read them)."""

    def __init__(self, total: int, start: int, metrics_path: Path | None, enabled: bool):
        self.total, self.enabled = total, enabled
        self.metrics_path = metrics_path
        self._bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task("train", total=total, completed=start, info="")
            self._bar.start()

    def log(self, record: dict) -> None:
        if self.metrics_path is None:
            return
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()

    def update(self, step: int, info: str, *, line: bool) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)
        elif line:
            print(f"step {step}/{self.total}  {info}", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
