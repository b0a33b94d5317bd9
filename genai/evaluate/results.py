"""Before/after table and gate rules over lm-eval results."""

from __future__ import annotations

from dataclasses import dataclass

from genai.errors import GenaiError
from genai.recipe import GateRule

GATE_FAILED_EXIT = 3  # `genai eval` exit code when a gate rule fails (2 stays "bad input")


def metric_keys(task_result: dict) -> list[str]:
    return [k for k in task_result if "," in k and "_stderr," not in k and k != "alias"]


def build_table(results: dict[str, dict]) -> list[dict]:
    """Rows of task, metric, base, tuned, delta, stderr from {'base': res, 'tuned': res}."""
    tuned = results["tuned"]["results"]
    base = results.get("base", {}).get("results", {})
    rows = []
    for task in sorted(tuned):
        for key in metric_keys(tuned[task]):
            t = tuned[task][key]
            b = base.get(task, {}).get(key)
            name, _, filt = key.partition(",")
            stderr = tuned[task].get(f"{name}_stderr,{filt}")
            rows.append(
                {
                    "task": task,
                    "metric": key,
                    "base": b,
                    "tuned": t,
                    "delta": (t - b) if isinstance(b, (int, float)) and isinstance(t, (int, float)) else None,
                    "stderr": stderr if isinstance(stderr, (int, float)) else None,
                }
            )
    return rows


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_row(r: dict) -> list[str]:
    """task, metric, base, fine-tuned, delta, stderr as printed (terminal and Markdown alike)."""
    delta = "-" if r["delta"] is None else f"{r['delta']:+.4f}"
    return [r["task"], r["metric"], _fmt(r["base"]), _fmt(r["tuned"]), delta, _fmt(r["stderr"])]


def table_markdown(rows: list[dict]) -> str:
    lines = ["| task | metric | base | fine-tuned | delta | stderr |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Verdict:
    rule: GateRule
    passed: bool
    detail: str


def _lookup(res: dict, rule: GateRule, which: str) -> tuple[str, float]:
    task = res.get(rule.task)
    if task is None:
        raise GenaiError(f"eval.gate: task '{rule.task}' was not evaluated", hint="add it to eval.tasks")
    keys = metric_keys(task)
    if "," in rule.metric:
        match = [k for k in keys if k == rule.metric]
    else:
        match = [k for k in keys if k.split(",")[0] == rule.metric]
    if len(match) != 1:
        raise GenaiError(
            f"eval.gate: task '{rule.task}' produces no metric '{rule.metric}'"
            + (" (ambiguous: name the filter)" if match else ""),
            hint=f"{which} results have: {', '.join(keys)}",
        )
    return match[0], float(task[match[0]])


def check_gate(rules: list[GateRule], results: dict[str, dict]) -> list[Verdict]:
    out = []
    for rule in rules:
        key, tuned = _lookup(results["tuned"]["results"], rule, "fine-tuned")
        if rule.min is not None:
            out.append(Verdict(rule, tuned >= rule.min, f"{rule.task} {key} = {tuned:.4f} >= {rule.min}"))
        else:
            if "base" not in results:
                raise GenaiError("eval.gate: max_drop rules compare with the base model; set eval.baseline: true")
            _, base = _lookup(results["base"]["results"], rule, "base")
            out.append(
                Verdict(
                    rule,
                    base - tuned <= rule.max_drop + 1e-12,
                    f"{rule.task} {key} = {tuned:.4f} vs base {base:.4f} (drop {base - tuned:+.4f} <= {rule.max_drop})",
                )
            )
    return out
