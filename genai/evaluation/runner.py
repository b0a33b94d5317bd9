"""`genai eval`: score the base model and the fine-tuned artifact, write the table, apply the gate."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

from genai import console
from genai.atomic import atomic_write_json, atomic_write_text
from genai.errors import GenaiError
from genai.evaluation import suites
from genai.evaluation.backends import BACKENDS
from genai.evaluation.results import EvalReport, Verdict, build_table, check_gate, table_markdown
from genai.preflight import check_gate_rules, check_known
from genai.recipe import EvalSection, Recipe
from genai.runs import Run
from genai.serving.artifact import resolve


def task_manager(cfg: EvalSection):
    """lm-eval's TaskManager over the suites (copied with absolute data paths) and the copy's folder."""
    from lm_eval.tasks import TaskManager

    include = suites.materialize(suites.suite_dirs(cfg.suite_dirs))
    own = TaskManager(include_path=str(include), include_defaults=False)
    if set(cfg.tasks) <= set(own.all_tasks):  # suites only: no need to index lm-eval's ~15,000 tasks (6-20 s)
        return own, include
    return TaskManager(include_path=str(include)), include


def check_tasks(tm, tasks: list[str]) -> None:
    """Every eval task must exist; a typo gets did-you-mean."""
    check_known(tasks, set(tm.all_tasks))


def _quiet_git_hash() -> None:
    """lm-eval runs `git describe` with its stderr on ours: outside a git checkout every eval printed
    "fatal: not a git repository". Record the same hash through our own quiet lookup."""
    from lm_eval import evaluator

    from genai.lineage import git_commit

    evaluator.get_git_commit_hash = lambda: git_commit(Path.cwd())


class DatasetUnavailable(GenaiError):
    """An eval task's dataset cannot be loaded here (on the hub, and the hub is out of reach)."""


def _run_lm_eval(model: str, args: dict, cfg: EvalSection, tm, backend: str) -> dict:
    from lm_eval import simple_evaluate

    _quiet_git_hash()
    from contextlib import nullcontext

    from genai.vllm_env import werkzeug_proxies_hidden

    engine_guard = werkzeug_proxies_hidden() if backend == "vllm" else nullcontext()  # the engine starts inside
    try:
        with engine_guard:
            res = simple_evaluate(
                model=model,
                model_args=args,
                tasks=list(cfg.tasks),
                num_fewshot=cfg.num_fewshot,
                batch_size=cfg.batch_size,
                limit=cfg.limit,
                apply_chat_template=cfg.apply_chat_template,
                system_instruction=cfg.system_instruction,
                task_manager=tm,
                log_samples=False,
                random_seed=cfg.seed,
                numpy_random_seed=cfg.seed,
                torch_random_seed=cfg.seed,
                fewshot_random_seed=cfg.seed,
                bootstrap_iters=1000,
            )
    except GenaiError:
        raise
    except ConnectionError as exc:  # a task whose dataset lives on the hub, offline or unreachable
        raise DatasetUnavailable(
            f"eval.tasks: a task's dataset is not available here: {exc}",
            hint="connect to the hub once (datasets caches it), or use a bundled suite (genai eval --list)",
        ) from None
    except Exception as exc:  # lm-eval and the API client raise many types; the user needs one message
        if backend == "endpoint":
            raise GenaiError(
                f"the endpoint returned errors during evaluation: {type(exc).__name__}: {exc}",
                hint="check the server log; is the model name right?",
            ) from None
        raise
    if res is None:
        raise GenaiError("lm-eval returned no results")
    return res


def _clean(res: dict) -> dict:
    from lm_eval.utils import handle_non_serializable

    return json.loads(json.dumps({k: v for k, v in res.items() if k != "samples"}, default=handle_non_serializable))


def _check_config(cfg: EvalSection) -> None:
    """What a recipe can get wrong fails before minutes of scoring, not after."""
    if not cfg.tasks:
        raise GenaiError(
            "eval.tasks is empty", hint="name suites from eval/ or lm-eval tasks, e.g. eval.tasks=[hellaswag]"
        )
    check_gate_rules(cfg)


def evaluate(target: str, overrides: list[str], *, backend: str | None = None, latest: bool = False) -> EvalReport:
    """Score base and fine-tuned with lm-eval, write RUN/eval/<backend>/, apply the gate, log to tracking."""
    if backend is not None and backend not in BACKENDS:
        raise GenaiError(f"--backend: unknown backend '{backend}'", hint=f"choose one of {', '.join(BACKENDS)}")
    tgt, serve, recipe = resolve(target, overrides, latest=latest, evaluating=True)
    if tgt.chosen:
        print(f"evaluating {tgt.chosen}", file=sys.stderr)
    if recipe is None or tgt.run_dir is None:
        raise GenaiError(
            f"{target}: genai eval takes a recipe or a run folder",
            hint="for any endpoint, use a recipe with eval.backend: endpoint and eval.endpoint.url",
        )
    console.attach(tgt.run_dir)  # `genai eval`'s console goes to RUN/logs/eval.log from here
    cfg = recipe.eval if backend is None else recipe.eval.model_copy(update={"backend": backend})
    _check_config(cfg)
    logging.getLogger("lm_eval").setLevel(logging.INFO if console.verbose() else logging.WARNING)
    with console.activity("eval: indexing lm-eval's tasks", "eval: tasks indexed in {seconds}"):
        tm, include = task_manager(cfg)
    try:
        check_tasks(tm, cfg.tasks)
        results: dict[str, dict] = {}
        for which in (["base"] if cfg.baseline else []) + ["tuned"]:
            name = "fine-tuned" if which == "tuned" else which
            scoring = console.activity(f"eval: scoring {name} ({cfg.backend})", f"eval: {name} scored in {{seconds}}")
            with scoring, BACKENDS[cfg.backend](tgt, which, cfg, serve) as (model, args):
                results[which] = _clean(_run_lm_eval(model, args, cfg, tm, cfg.backend))
        rows = build_table(results)
        verdicts = check_gate(cfg.gate, results)  # a rule naming a missing metric fails before writing
    finally:
        shutil.rmtree(include, ignore_errors=True)
    report = write_report(Run(tgt.run_dir).eval_dir / cfg.backend, recipe, cfg, results, rows, verdicts)
    if recipe.tracking.mlflow or recipe.tracking.tensorboard:
        from genai.tracking import Tracker

        with Tracker.for_run(recipe, tgt.run_dir) as tracker:  # the run's own MLflow run, reopened
            tracker.log_eval(rows)
    return report


def write_report(
    out: Path, recipe: Recipe, cfg: EvalSection, results: dict, rows: list[dict], verdicts: list[Verdict]
) -> EvalReport:
    """lm-eval's results for base and tuned, table.md and table.json (the table last)."""
    from importlib.metadata import version

    meta = {
        "backend": cfg.backend,
        "tasks": cfg.tasks,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "num_fewshot": cfg.num_fewshot,
        "limit": cfg.limit,
        "apply_chat_template": cfg.apply_chat_template,
        "lm_eval_version": version("lm_eval"),
        "recipe": recipe.name,
    }
    for which, res in results.items():
        atomic_write_json(out / f"lm_eval_{which}.json", res)
    atomic_write_text(out / "table.md", table_markdown(rows))
    gate = [
        # lower_is_better: a `max` rule; the registry's champion comparison reads it.
        {"task": v.rule.task, "metric": v.rule.metric, "passed": v.passed, "detail": v.detail}
        | ({"lower_is_better": True} if v.rule.max is not None else {})
        for v in verdicts
    ]
    atomic_write_json(
        out / "table.json", {"meta": meta, "rows": rows, "gate": gate, "passed": all(v.passed for v in verdicts)}
    )
    return EvalReport(out, rows, verdicts, meta, results)
