"""The `genai sweep` verbs: run a sweep and print where it stands; show a sweep's table, best run,
importances, plots and report page."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from genai.sweeps.show import find_sweep, importances, report_page, trials_table, write_plots
from genai.sweeps.study import run_sweep


def run_command(recipe: Path, overrides: list[str]) -> None:
    """`genai sweep RECIPE [overrides]`."""
    console = Console(stderr=True)
    result = run_sweep(recipe, overrides, console)
    # The table and the best run; importances, plots and the page (seconds of their own) wait for `show`.
    show_command(result.folder, [], full=False)
    print(f"importance, plots and report: genai sweep show {result.folder}", flush=True)


def show_command(target: Path, overrides: list[str], *, full: bool = True) -> None:
    """`genai sweep show RECIPE|FOLDER`: the trials table, the best trial; in full, importances, plots, sweep.html."""
    console = Console()
    folder, study = find_sweep(target, overrides)
    rows = trials_table(study)
    table = Table(title=f"sweep {folder}")
    for col in ("trial", "state", "value", "params", "run"):
        table.add_column(col)
    for r in rows:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        table.add_row(str(r["trial"]), r["state"], value, params, r["run"] or (r["error"] or "")[-80:])
    console.print(table)
    complete = [r for r in rows if r["state"] == "complete"]
    if complete:
        best = study.best_trial
        print(f"best: trial {best.number}, value {best.value:.4f}, run {best.user_attrs.get('run')}", flush=True)
    if not full:
        return
    weights = importances(study)
    if weights:
        print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in weights.items()), flush=True)
    plots = write_plots(folder, study)
    page = report_page(folder, study, rows, weights, plots)
    print(f"report: {page}", flush=True)


def tuning_command(verb: str, rest: list[str], recipe: Path | None, out: Path | None) -> None:
    """`genai sweep status TUNING_JOB` (JSON) and `genai sweep download TUNING_JOB --out DIR` (SageMaker)."""
    import json

    from genai.errors import GenaiError
    from genai.sweeps.tuner import download_of, status_of

    if len(rest) != 1:
        raise GenaiError(f"genai sweep {verb} needs one tuning job name", hint=f"genai sweep {verb} TUNING_JOB")
    if verb == "status":
        print(json.dumps(status_of(rest[0], recipe), indent=2, default=str), flush=True)
        return
    if out is None:
        raise GenaiError("genai sweep download needs --out DIR (the local run folder to create)")
    print(f"run: {download_of(rest[0], out, recipe)}", flush=True)
