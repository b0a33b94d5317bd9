"""The swept settings: checked against the recipe before any trial runs, drawn per trial as overrides."""

from __future__ import annotations

import json
from typing import Any

from genai.errors import GenaiError
from genai.recipe import Recipe, SweepParam, SweepSection, with_overrides


def override(key: str, value: Any) -> str:
    """A dotted override whose value parses back as the same YAML value."""
    return f"{key}={json.dumps(value)}"


def corners(param: SweepParam) -> list[Any]:
    """The extreme values a parameter can take (each must make a valid recipe)."""
    if param.distribution == "choice":
        return list(param.values or [])
    if param.distribution == "int":
        return [int(param.low), int(param.high)]
    return [param.low, param.high]


def check_space(recipe: Recipe) -> SweepSection:
    """The recipe's sweep section, each key and its extreme values checked by the recipe loader itself,
    and the objective checked against the recipe's eval tasks; one clear error otherwise."""
    sweep = recipe.sweep
    if sweep is None:
        raise GenaiError(
            f"recipe '{recipe.name}': no sweep section",
            hint="add sweep: {parameters: {train.learning_rate: {distribution: log_uniform, low: 1e-4, high: 1e-2}}}",
        )
    for key, param in sweep.parameters.items():
        if key.startswith("sweep."):
            raise GenaiError(f"sweep.parameters.{key}: a sweep cannot sweep its own settings")
        for value in corners(param):
            try:
                with_overrides(recipe, [override(key, value)])
            except GenaiError as e:
                detail = e.message.replace("command-line override: ", "")
                raise GenaiError(
                    f"sweep.parameters.{key}: {value!r} does not make a valid recipe: {detail}",
                    hint="name a setting as an override would (genai schema lists them), with values it accepts",
                ) from None
    check_objective(sweep, recipe)
    return sweep


def check_objective(sweep: SweepSection, recipe: Recipe) -> None:
    """eval_loss needs held-out data; task/metric needs the task in eval.tasks (and, for a bundled suite,
    a metric its YAML lists)."""
    if sweep.objective == "eval_loss":
        if not recipe.data.eval and not recipe.data.eval_fraction:
            raise GenaiError(
                "sweep.objective: eval_loss needs held-out data (data.eval or data.eval_fraction)",
                hint="add data.eval, or optimise an eval metric: task/metric",
            )
        return
    task, _, metric = sweep.objective.partition("/")
    if not metric:
        raise GenaiError(
            f"sweep.objective: '{sweep.objective}' is neither eval_loss nor task/metric",
            hint="e.g. quickstart_addition/exact_match,strip",
        )
    if task not in recipe.eval.tasks:
        raise GenaiError(
            f"sweep.objective: task '{task}' is not in eval.tasks ({', '.join(recipe.eval.tasks) or 'none'})",
            hint="add it to eval.tasks, or optimise eval_loss",
        )
    known = bundled_metrics(task)
    if known is not None and metric.split(",")[0] not in known:
        raise GenaiError(
            f"sweep.objective: task '{task}' produces no metric '{metric}' (its metrics: {', '.join(sorted(known))})",
            hint=f"e.g. {task}/{sorted(known)[0]},<filter> as the eval table names it",
        )


def bundled_metrics(task: str) -> set[str] | None:
    """The metric names a bundled suite's task YAML lists (None for a task that is not bundled)."""
    from genai.evaluation.suites import task_configs

    found = task_configs().get(task)
    if found is None:
        return None
    _, cfg = found
    return {m.get("metric") for m in cfg.get("metric_list", []) if isinstance(m, dict) and m.get("metric")}


def draw(trial, sweep: SweepSection) -> dict[str, Any]:
    """A trial's values, drawn by Optuna from each parameter's distribution."""
    out = {}
    for key, p in sweep.parameters.items():
        if p.distribution == "log_uniform":
            out[key] = trial.suggest_float(key, p.low, p.high, log=True)
        elif p.distribution == "uniform":
            out[key] = trial.suggest_float(key, p.low, p.high)
        elif p.distribution == "int":
            out[key] = trial.suggest_int(key, int(p.low), int(p.high))
        else:
            out[key] = trial.suggest_categorical(key, p.values)
    return out
