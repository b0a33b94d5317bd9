"""A sweep: its folder (<output_dir>/<recipe>/sweeps/<id>, the id from the recipe's content, so the same
command finds the same sweep), its Optuna study stored there (SQLite), and the loop that runs trials until
the recipe's number is reached. A sweep killed mid-trial resumes: finished trials are kept, an interrupted
one is run again with the same values in its own runs folder, where `genai run` continues its run."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from genai.atomic import atomic_write_text, missing_dirs
from genai.errors import GenaiError
from genai.recipe import Recipe, load_recipe
from genai.runs import Run
from genai.sweeps.space import check_space, draw
from genai.sweeps.trials import (
    TrialFailed,
    TrialPruned,
    TrialRefused,
    TrialRun,
    newest_run,
    objective_value,
    run_trial,
    tag_run,
)

STUDY_FILE = "study.db"


@dataclass
class SweepResult:
    """What a sweep did: its folder, the best trial's number, value and run."""

    folder: Path
    best_number: int | None
    best_value: float | None
    best_run: Path | None


def require_optuna():
    """Optuna, or a clear message naming the extra."""
    try:
        import optuna
    except ImportError:
        raise GenaiError("genai sweep needs Optuna", hint="pip install 'genai[sweep]'") from None
    # Its warnings on a failed trial carry a traceback of genai's own code: the sweep says what failed itself.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def sweep_folder(recipe: Recipe) -> Path:
    """<output_dir>/<recipe name>/sweeps/<first 12 hex digits of the recipe's content hash>."""
    return Path(recipe.train.output_dir) / recipe.name / "sweeps" / recipe.content_hash()[:12]


def sampler(sweep):
    """The sweep's sampler: TPE, seeded (the same seed draws the same first values)."""
    return require_optuna().samplers.TPESampler(seed=sweep.seed)


def open_study(folder: Path, recipe: Recipe):
    """The sweep's Optuna study in its folder (made on first use)."""
    optuna = require_optuna()
    sweep = recipe.sweep
    storage = f"sqlite:///{folder / STUDY_FILE}"
    folder.mkdir(parents=True, exist_ok=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if sweep.prune else optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=folder.name,
        storage=storage,
        load_if_exists=True,
        direction=sweep.goal,
        sampler=sampler(sweep),
        pruner=pruner,
    )


def counted(trial) -> bool:
    """A trial that counts towards the sweep's number: complete, pruned, or failed by its own run."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and "error" in trial.user_attrs)


def requeue_interrupted(study, objective: str) -> int:
    """Trials left running by a killed sweep. One whose run had already finished (killed between its run's
    end and the study's record of it) is recorded from that run; any other is failed and its values queued
    again, in the same runs folder, where `genai run` continues its run."""
    optuna = require_optuna()
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        root = t.user_attrs.get("runs_root")
        run = newest_run(Path(root)) if root else None
        tag = Run(run).manifest().get("sweep", {}) if run is not None and Run(run).is_trained else {}
        if tag.get("trial") == t.number:
            optuna.trial.Trial(study, t._trial_id).set_user_attr("run", str(run))
            study.tell(t.number, objective_value(run, objective))
            continue
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"runs_root": root}, skip_if_exists=False)
    return len(stale)


def run_sweep(recipe_path: Path, overrides: list[str], console: Console | None = None) -> SweepResult:
    """`genai sweep RECIPE`: check everything first, then run trials until the recipe's number is reached."""
    from genai.preflight import Plan, preflight

    console = console or Console(stderr=True)
    recipe = load_recipe(recipe_path, overrides)
    sweep = check_space(recipe)  # first: the seconds of the preflight's model and data checks come after
    # Every check but the tokenizer's, whose imports cost seconds the sweep has no other use for: each trial's
    # `genai run` runs the whole preflight before it writes anything, and a refusal there stops the sweep.
    preflight(recipe, Plan(tokenizer=False))
    optuna = require_optuna()
    folder = sweep_folder(recipe)
    made = missing_dirs(folder)  # what to take away again if the first trial refuses the recipe
    study = open_study(folder, recipe)
    atomic_write_text(folder / "recipe.yaml", recipe.to_yaml())  # what the sweep searches around
    if (again := requeue_interrupted(study, sweep.objective)) > 0:
        console.print(f"sweep: {again} interrupted trial(s) recorded from their runs or queued again")
    done = sum(counted(t) for t in study.get_trials(deepcopy=False))
    left = max(sweep.trials - done, 0)
    console.print(
        f"sweep {folder} ({sweep.goal} {sweep.objective}): {done} of {sweep.trials} trials done, {left} to run"
    )
    lock = threading.Lock()

    def objective(trial) -> float:
        values = draw(trial, sweep)
        root = Path(trial.user_attrs.get("runs_root") or folder / "trials" / f"{trial.number:04d}")
        trial.set_user_attr("runs_root", str(root))
        spec = TrialRun(recipe_path, root, root / "trial.log", values, list(overrides))
        with lock:
            console.print(
                f"trial {trial.number}: "
                + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
            )
        sign = 1.0 if sweep.goal == "minimize" else -1.0  # pruning compares held-out losses: lower is better
        start = time.perf_counter()
        try:
            run = run_trial(
                spec,
                lambda step, loss: trial.report(sign * loss, step),
                trial.should_prune if sweep.prune else lambda: False,
            )
        except TrialPruned as e:
            with lock:
                console.print(f"trial {trial.number}: {e}")
            raise optuna.TrialPruned(str(e)) from None
        except TrialFailed as e:
            trial.set_user_attr("error", str(e)[-2000:])
            with lock:
                console.print(f"trial {trial.number}: failed, {e} (log: {spec.log})")
            raise
        value = objective_value(run, sweep.objective)
        tag_run(run, folder.name, trial.number, values)
        trial.set_user_attr("run", str(run))
        with lock:
            console.print(
                f"trial {trial.number}: {sweep.objective} = {value:.4f} ({time.perf_counter() - start:.0f} s) {run}"
            )
        return value

    if left:
        try:
            study.optimize(
                objective, n_trials=left, timeout=sweep.timeout_s, n_jobs=sweep.parallel, catch=(TrialFailed,)
            )
        except TrialRefused:
            if made and not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
                shutil.rmtree(made[-1], ignore_errors=True)  # nothing half-written: the sweep never started
            raise
    return summary(folder, study)


def summary(folder: Path, study) -> SweepResult:
    """The best trial so far (None when no trial completed)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return SweepResult(folder, None, None, None)
    best = study.best_trial
    return SweepResult(folder, best.number, best.value, Path(best.user_attrs["run"]))
