"""The eval results a version is registered with, the number it is judged on, and its alias.

The gate's first rule names the metric (no gate: the eval table's first row); higher is better, lower
for a `max` rule. A
version becomes `champion` only when its gate passed and its value beats the current champion's for
the same metric, strictly; a champion with no value for that metric is not beaten (the two were not
measured alike). Every other version is the `challenger`.
"""

from __future__ import annotations

from dataclasses import dataclass

from genai.errors import GenaiError
from genai.recipe import Recipe
from genai.runs import Run
from genai.textfmt import is_number

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Evaluation:
    """One eval table of a run (eval/<backend>/table.json): rows, gate verdicts and the overall verdict."""

    backend: str
    table: dict

    @property
    def rows(self) -> list[dict]:
        """task, metric, base, tuned, delta per row."""
        return self.table.get("rows") or []

    @property
    def gated(self) -> bool:
        """Whether any gate rule was applied."""
        return bool(self.table.get("gate"))

    @property
    def passed(self) -> bool:
        """Every gate rule passed (no rules: passed)."""
        return bool(self.table.get("passed", True))

    @property
    def verdict(self) -> str:
        """passed, failed, or none (no gate rules)."""
        return ("passed" if self.passed else "failed") if self.gated else "none"


def evaluation(run: Run, recipe: Recipe) -> Evaluation:
    """The table of the recipe's eval backend, else the first there is; a clear error when the run has none."""
    tables = dict(run.eval_tables())
    for backend in (recipe.eval.backend, *tables):
        if backend in tables and tables[backend].get("rows"):
            return Evaluation(backend, tables[backend])
    raise GenaiError(
        f"{run.path}: no eval results to register (no {run.eval_dir.name}/<backend>/table.json with rows)",
        hint=f"evaluate it first: genai eval {run.path}",
    )


def eval_tags(rows: list[dict]) -> dict[str, str]:
    """eval.<task>.<metric>.<tuned|base> -> value, named as the tracked MLflow metrics are."""
    from genai.tracking import eval_metrics

    return {"eval." + ".".join(k): repr(v) for k, v in eval_metrics(rows).items()}


@dataclass(frozen=True)
class Compared:
    """The metric a version is judged on: its eval row's task and metric, the tuned value and its tag name."""

    task: str
    metric: str
    value: float | None
    tag: str
    lower_is_better: bool = False

    def as_dict(self) -> dict:
        """For the printed result."""
        return {"task": self.task, "metric": self.metric, "value": self.value, "tag": self.tag}


def _row_for(rows: list[dict], task: str, metric: str) -> dict | None:
    """The row of a gate rule's metric: named with its filter ("exact_match,strip") or without ("exact_match")."""
    same_task = [r for r in rows if r.get("task") == task]
    exact = [r for r in same_task if r.get("metric") == metric]
    if exact or "," in metric:
        return exact[0] if exact else None
    named = [r for r in same_task if str(r.get("metric", "")).split(",")[0] == metric]
    return named[0] if len(named) == 1 else None


def compared_metric(ev: Evaluation) -> Compared:
    """The gate's first rule's task and metric, else the first eval row's."""
    rows = ev.rows
    gate = ev.table.get("gate") or []
    row = _row_for(rows, gate[0]["task"], gate[0]["metric"]) if gate else rows[0]
    if row is None:
        raise GenaiError(
            f"eval table ({ev.backend}): no row for the gate's metric {gate[0]['task']} {gate[0]['metric']}",
            hint="evaluate the run again (genai eval RUN): its table and its gate disagree",
        )
    (tag,) = eval_tags([{"task": row["task"], "metric": row["metric"], "tuned": 0.0}])
    value = float(row["tuned"]) if is_number(row.get("tuned")) else None
    lower = bool(gate and gate[0].get("lower_is_better"))
    return Compared(str(row["task"]), str(row["metric"]), value, tag, lower)


def choose_alias(
    ev: Evaluation, compared: Compared, champion_value: float | None, has_champion: bool
) -> tuple[str, str]:
    """(alias, why): champion when the gate passed and the value beats the champion's (or there is none)."""
    if not ev.passed:
        return CHALLENGER, "the gate failed"
    if compared.value is None:
        return CHALLENGER, f"no fine-tuned value for {compared.task} {compared.metric}"
    if not has_champion:
        return CHAMPION, "the first version to pass its gate"
    if champion_value is None:
        return CHALLENGER, f"the champion has no {compared.tag} to compare with"
    if (compared.value < champion_value) if compared.lower_is_better else (compared.value > champion_value):
        return CHAMPION, f"{compared.value:g} beats the champion's {champion_value:g}"
    return CHALLENGER, f"{compared.value:g} does not beat the champion's {champion_value:g}"
