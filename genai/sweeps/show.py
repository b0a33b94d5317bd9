"""`genai sweep show`: a sweep's trials table, its best trial and run, the parameters' importance, and
plots (optimisation history, parallel coordinates) with a report page in the sweep folder."""

from __future__ import annotations

import html
from pathlib import Path

from genai.atomic import atomic_write_text
from genai.errors import GenaiError
from genai.recipe import load_recipe
from genai.sweeps.study import STUDY_FILE, require_optuna, sweep_folder


def find_sweep(target: Path, overrides: list[str]) -> tuple[Path, object]:
    """(folder, study) from a sweep folder, or from the recipe that made it."""
    if target.is_dir():
        folder = target
        if not (folder / STUDY_FILE).exists():
            raise GenaiError(f"{target}: not a sweep folder (no {STUDY_FILE})")
    else:
        folder = sweep_folder(load_recipe(target, overrides))
        if not (folder / STUDY_FILE).exists():
            raise GenaiError(f"{target}: no sweep of this recipe yet ({folder})", hint=f"genai sweep {target}")
    optuna = require_optuna()
    return folder, optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / STUDY_FILE}")


def trials_table(study) -> list[dict]:
    """One row per trial: number, state, value, params, run (or why it failed)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": dict(t.params),
                "run": t.user_attrs.get("run"),
                "error": t.user_attrs.get("error"),
                "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None,
            }
        )
    return rows


def importances(study) -> dict[str, float]:
    """Each parameter's importance to the objective (Optuna's fANOVA); {} with fewer than 2 complete trials."""
    optuna = require_optuna()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2 or len({tuple(sorted(t.params.items())) for t in complete}) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return {}


def write_plots(folder: Path, study) -> list[Path]:
    """optimisation history and parallel coordinates as PNGs in the sweep folder (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    optuna = require_optuna()
    out = []
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    plots = {"history": optuna.visualization.matplotlib.plot_optimization_history}
    if len(complete) >= 2:
        plots["parallel"] = optuna.visualization.matplotlib.plot_parallel_coordinate
    for name, plot in plots.items():
        try:
            ax = plot(study)
        except (ValueError, RuntimeError):
            continue
        path = folder / f"{name}.png"
        ax.figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
        out.append(path)
    return out


def report_page(folder: Path, study, rows: list[dict], weights: dict[str, float], plots: list[Path]) -> Path:
    """sweep.html in the sweep folder: the table, the best trial, importances and the plots."""
    complete = [r for r in rows if r["state"] == "complete"]
    best = study.best_trial.number if complete else None
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("trial", "state", "value", "params", "run"))
    body = "".join(
        "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            ' class="best"' if r["trial"] == best else "",
            r["trial"],
            r["state"],
            "-" if r["value"] is None else f"{r['value']:.4f}",
            html.escape(
                ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
            ),
            html.escape(r["run"] or r["error"] or ""),
        )
        for r in rows
    )
    imp = (
        "".join(f"<li>{html.escape(k)}: {v:.2f}</li>" for k, v in weights.items())
        or "<li>(fewer than 2 complete trials)</li>"
    )
    imgs = "".join(f'<img src="{p.name}" alt="{p.stem}">' for p in plots)
    page = (
        f"<!doctype html><meta charset=utf-8><title>sweep {folder.name}</title>"
        "<style>body{font:14px system-ui;margin:20px}"
        "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}"
        "tr.best td{background:#dcfce7}img{max-width:48%;margin:8px}</style>"
        f"<h1>sweep {html.escape(folder.name)}</h1><table><tr>{head}</tr>{body}</table>"
        f"<h2>Parameter importance</h2><ul>{imp}</ul>{imgs}"
    )
    path = folder / "sweep.html"
    atomic_write_text(path, page)
    return path
