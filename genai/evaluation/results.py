"""Before/after table, gate verdicts and the eval report over lm-eval results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import GateRule
from genai.textfmt import num

COLUMNS = ("task", "metric", "base", "fine-tuned", "delta", "stderr")


def metric_keys(task_result: dict) -> list[str]:
    """lm-eval's metric keys of one task ("name,filter"), stderr and alias left out."""
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


def format_row(r: dict) -> list[str]:
    """task, metric, base, fine-tuned, delta, stderr as printed (terminal, Markdown, HTML and model card)."""
    return [
        str(r.get("task")),
        str(r.get("metric")),
        num(r.get("base")),
        num(r.get("tuned")),
        num(r.get("delta"), "+.4f"),
        num(r.get("stderr")),
    ]


def table_markdown(rows: list[dict]) -> str:
    """The before/after table in Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Verdict:
    """One gate rule's outcome."""

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
    """Apply each rule to the fine-tuned scores (max_drop rules against the base)."""
    out = []
    for rule in rules:
        key, tuned = _lookup(results["tuned"]["results"], rule, "fine-tuned")
        if rule.min is not None:
            out.append(Verdict(rule, tuned >= rule.min, f"{rule.task} {key} = {tuned:.4f} >= {rule.min}"))
            continue
        if rule.max is not None:
            out.append(Verdict(rule, tuned <= rule.max, f"{rule.task} {key} = {tuned:.4f} <= {rule.max}"))
            continue
        if "base" not in results:
            raise GenaiError(
                "eval.gate: max_drop and min_gain rules compare with the base model; set eval.baseline: true"
            )
        _, base = _lookup(results["base"]["results"], rule, "base")
        if rule.max_drop is not None:
            passed = base - tuned <= rule.max_drop + 1e-12
            why = f"{rule.task} {key} = {tuned:.4f} vs base {base:.4f} (drop {base - tuned:+.4f} <= {rule.max_drop})"
        else:
            passed = tuned - base >= rule.min_gain - 1e-12
            why = f"{rule.task} {key} = {tuned:.4f} vs base {base:.4f} (gain {tuned - base:+.4f} >= {rule.min_gain})"
        out.append(Verdict(rule, passed, why))
    return out


@dataclass
class EvalReport:
    """One `genai eval`: where its files are, the table, the verdicts and lm-eval's results."""

    out_dir: Path
    rows: list[dict]
    verdicts: list[Verdict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every gate rule passed (no rules: passed)."""
        return all(v.passed for v in self.verdicts)


# Eval tables whose gate verdicts this process has printed: `genai run`'s gate stage prints them
# only when its eval stage did not (a run continued at the gate), so a verdict is shown once.
_printed: set[Path] = set()


def printed(out_dir: Path) -> bool:
    """Whether `print_report` showed the eval table in `out_dir` (and its gate) in this process."""
    return Path(out_dir).resolve() in _printed


def print_report(report: EvalReport, console=None) -> None:
    """The before/after table and one line per gate rule, on the terminal."""
    from rich.console import Console

    from genai.textfmt import print_table

    console = console or Console(width=120)
    print_table(
        list(COLUMNS),
        [format_row(r) for r in report.rows],
        title=f"eval ({report.meta['backend']})",
        console=console,
        right=COLUMNS[2:],
    )
    for v in report.verdicts:
        console.print(f"gate {'PASS' if v.passed else 'FAIL'}: {v.detail}")
    if report.verdicts:
        console.print(f"gate: {'passed' if report.passed else 'FAILED'}")
    console.print(f"results: {report.out_dir}")
    _printed.add(Path(report.out_dir).resolve())
