"""One trial: an ordinary `genai run RECIPE --no-serve` with the trial's values as overrides, its run in
a runs folder of its own inside the sweep folder, watched while it trains so that Optuna can prune it on
its held-out loss (the trial's process gets Ctrl-C: its run stays resumable), then scored from its
manifest or eval table."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai.errors import ExitCode, GenaiError
from genai.runs import Run
from genai.sweeps.space import override

POLL_S = 0.5


class TrialFailed(RuntimeError):
    """The trial's run ended with an error (its log's tail says which)."""


class TrialPruned(RuntimeError):
    """Optuna stopped the trial on its intermediate held-out loss."""


class TrialRefused(GenaiError):
    """The trial's `genai run` refused the recipe before writing anything (its preflight, exit 2): a recipe
    error that every trial would meet, so the sweep stops with it."""


@dataclass
class TrialRun:
    """Where a trial writes and what it ran."""

    recipe: Path
    runs_root: Path
    log: Path
    values: dict[str, Any]
    base: list[str] = field(default_factory=list)  # the sweep's own overrides (its command line)

    def overrides(self) -> list[str]:
        """The sweep's overrides, the trial's values and its own runs folder, as `genai run` overrides."""
        values = [override(k, v) for k, v in self.values.items()]
        return [*self.base, *values, f"train.output_dir={self.runs_root}"]

    def command(self) -> list[str]:
        """`genai run RECIPE --no-serve` with the overrides."""
        exe = Path(sys.executable).with_name("genai")
        return [str(exe), "run", str(self.recipe), "--no-serve", *self.overrides()]


def newest_run(root: Path) -> Path | None:
    """The trial's run: the newest run folder under its own runs root (a resumed trial continues it)."""
    found = [p.parent for p in root.glob("*/*/recipe.yaml")]
    return max(found, key=lambda p: (p / "recipe.yaml").stat().st_mtime) if found else None


def eval_losses(run: Path, seen: int) -> list[tuple[int, float]]:
    """(step, eval_loss) records of metrics.jsonl from the `seen`-th on."""
    records = [m for m in Run(run).metrics() if isinstance(m.get("eval_loss"), (int, float))]
    return [(int(m["step"]), float(m["eval_loss"])) for m in records[seen:]]


def run_trial(spec: TrialRun, report, should_prune) -> Path:
    """Run the trial to its end and return its run folder. `report(step, eval_loss)` is called for each held-out
    loss as it is logged; when `should_prune()` then says so the run is stopped and TrialPruned raised."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log, "a") as out:
        # In the sweep's process group: a Ctrl-C (or a kill of the group) reaches the trial too.
        proc = subprocess.Popen(spec.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    run, seen = None, 0
    try:
        while proc.poll() is None:
            try:  # wakes the moment the trial ends, not at the next poll
                proc.wait(POLL_S)
            except subprocess.TimeoutExpired:
                pass
            run = run or newest_run(spec.runs_root)
            if run is None:
                continue
            for step, loss in eval_losses(run, seen):
                seen += 1
                report(step, loss)
                if should_prune():
                    stop(proc)
                    raise TrialPruned(f"pruned at step {step} (eval loss {loss:.4f})")
    except BaseException:
        stop(proc)
        raise
    run = newest_run(spec.runs_root) or run
    if proc.returncode == ExitCode.USER_ERROR and run is None:
        raise refusal(spec.log)
    if proc.returncode not in (0, 3) or run is None or not Run(run).is_trained:  # 3: the gate failed, a score
        tail = spec.log.read_text(errors="replace").strip().splitlines()[-12:]
        raise TrialFailed(f"genai run exited {proc.returncode}:\n" + "\n".join(tail))
    return run


def refusal(log: Path) -> TrialRefused:
    """The trial's own error message (from `error:` on in its log), as the sweep's."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    text = "\n".join(lines[starts[-1] :] if starts else lines[-12:]).removeprefix("error: ")
    message, _, hint = text.partition("\n  hint: ")
    return TrialRefused(message, hint=hint or None)


def stop(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """Ctrl-C to the trial's `genai run` (its clean, resumable stop), then a kill."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def objective_value(run: Path, objective: str) -> float:
    """The trial's score: the manifest's eval_loss, or the fine-tuned value of task/metric in its eval table."""
    r = Run(run)
    if objective == "eval_loss":
        value = r.manifest().get("metrics", {}).get("eval_loss")
        if not isinstance(value, (int, float)):
            raise TrialFailed(f"{run}: no eval_loss in its manifest (held-out data?)")
        return float(value)
    task, _, metric = objective.partition("/")
    for _, table in r.eval_tables():
        for row in table.get("rows", []):
            if row.get("task") == task and row.get("metric") == metric and isinstance(row.get("tuned"), (int, float)):
                return float(row["tuned"])
    rows = [row for _, table in r.eval_tables() for row in table.get("rows", [])]
    metrics = sorted({f"{row.get('task')}/{row.get('metric')}" for row in rows})
    raise TrialFailed(f"{run}: its eval table has no {objective} (it has: {', '.join(metrics) or 'nothing'})")


def tag_run(run: Path, sweep_id: str, number: int, values: dict[str, Any]) -> None:
    """Note in the run's manifest that it is trial `number` of the sweep, with its values."""
    Run(run).update_manifest(sweep={"id": sweep_id, "trial": number, "params": json.loads(json.dumps(values))})
