"""`genai run`: train -> eval -> gate -> (register) -> serve, one artifact, resumable stage by stage.

The path is a list of stages, each a name, a function that runs it, and a test of whether it
is already done. Stage results live in the run's manifest (`stages`); re-running the same
command with the same recipe continues the latest unfinished run at its first unfinished stage.
A failed gate ends the run without registering or serving. The register stage is there only when
the recipe's `registry` section asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from genai.recipe import Recipe, load_recipe, with_overrides
from genai.runs import Run, resumable_run
from genai.textfmt import num


@dataclass
class RunOutcome:
    """What `genai run` did: the run, the gate verdict, the stages, the endpoint and a sample answer."""

    run_dir: Path
    gate_passed: bool | None
    stages: dict = field(default_factory=dict)
    endpoint: str | None = None
    sample: dict | None = None


@dataclass
class Context:
    """What the stages share."""

    recipe: Recipe
    overrides: list[str]
    console: Console
    serve: bool = True
    keep_serving: bool = False
    sagemaker: bool = False
    insecure: bool = False
    run: Run | None = None
    table: dict = field(default_factory=lambda: {"rows": [], "gate": [], "passed": True})
    endpoint: str | None = None
    sample: dict | None = None
    registered: dict | None = None


@dataclass(frozen=True)
class Stage:
    """One step of the path: `run` returns (status, details) for the manifest; a status in `stops` ends it."""

    name: str
    run: Callable[[Context], tuple[str, dict]]
    done: Callable[[Context], bool]
    stops: tuple[str, ...] = ()


def _status(ctx: Context, stage: str) -> str | None:
    return ctx.run.stages().get(stage, {}).get("status") if ctx.run is not None else None


# ---------------------------------------------------------------------- 1. train
def train_stage(ctx: Context) -> tuple[str, dict]:
    """Train here (resuming an interrupted run from its last checkpoint) or as a SageMaker job."""
    if ctx.sagemaker:
        from genai.sagemaker.jobs import train_and_download
        from genai.tracking import adopt_remote_metrics

        ctx.run = Run(train_and_download(ctx.recipe, ctx.console))
        adopt_remote_metrics(ctx.recipe, ctx.run.path)
        return "done", {"where": "sagemaker"}
    from genai.training.launch import start_training

    ctx.run = Run(
        start_training(ctx.recipe, resume=ctx.run is not None, run_dir=ctx.run.path if ctx.run else None).run_dir
    )
    return "done", {"where": "local"}


def _trained(ctx: Context) -> bool:
    return _status(ctx, "train") == "done"


# ---------------------------------------------------------------------- 2. eval
def eval_stage(ctx: Context) -> tuple[str, dict]:
    """Score base and fine-tuned; write the plots, the report and the model card."""
    from genai.report import write_all

    details: dict = {}
    status = "skipped"
    if ctx.recipe.eval.tasks:
        from genai.evaluation.results import print_report
        from genai.evaluation.runner import evaluate

        report = evaluate(str(ctx.run.path), ctx.overrides)
        print_report(report, Console(stderr=True, width=120))
        status, details = (
            "done",
            {"table": str(ctx.run.eval_table_file(ctx.recipe.eval.backend).relative_to(ctx.run.path))},
        )
    write_all(ctx.run.path, ctx.console)
    return status, details


def _evaluated(ctx: Context) -> bool:
    status = _status(ctx, "eval")
    return status == "skipped" or (status == "done" and ctx.run.eval_table_file(ctx.recipe.eval.backend).exists())


def _load_table(ctx: Context) -> None:
    import json

    path = ctx.run.eval_table_file(ctx.recipe.eval.backend)
    if path.exists():
        ctx.table = json.loads(path.read_text())


# ---------------------------------------------------------------------- 3. gate
def gate_stage(ctx: Context) -> tuple[str, dict]:
    """Apply the eval table's gate verdicts; a failure stops the path."""
    from genai.evaluation.results import printed

    _load_table(ctx)
    if not printed(ctx.run.eval_table_file(ctx.recipe.eval.backend).parent):  # else the eval stage just did
        for g in ctx.table.get("gate", []):
            ctx.console.print(f"gate {'PASS' if g['passed'] else 'FAIL'}: {g['detail']}")
    passed = bool(ctx.table.get("passed", True))
    if not passed:
        ctx.console.print("[bold red]not serving: the fine-tuned model did not pass the gate")
    return ("passed" if passed else "failed"), {"rules": len(ctx.table.get("gate", []))}


# ---------------------------------------------------------------------- 4. register (when the recipe asks)
def register_stage(ctx: Context) -> tuple[str, dict]:
    """Register the gated artifact in the MLflow and/or SageMaker Model Registry (the recipe's `registry`)."""
    from genai.registry.registration import register_run

    cfg = ctx.recipe.registry
    out = register_run(ctx.run, ctx.recipe, mlflow=cfg.mlflow, sagemaker=cfg.sagemaker)
    details = {k: out[k] for k in ("name", "version", "alias") if k in out}
    if "sagemaker" in out:
        details["model_package"] = out["sagemaker"]["model_package_arn"]
    ctx.registered = details
    return "done", details


def _registered(ctx: Context) -> bool:
    return _status(ctx, "register") == "done"


def _wanted(ctx: Context) -> tuple[Stage, ...]:
    """The stages of this recipe: register only when its `registry` section asks."""
    asks = ctx.recipe.registry.mlflow or ctx.recipe.registry.sagemaker
    return tuple(s for s in STAGES if s.name != "register" or asks)


# ---------------------------------------------------------------------- 5. serve
def serve_stage(ctx: Context) -> tuple[str, dict]:
    """Serve the artifact, answer a sample request from the recipe's own data, then stop (or keep serving)."""
    if not ctx.serve:
        return "skipped", {}
    from genai.serving.serve import ask, sample_request, start_server

    overrides = [o for o in ctx.overrides if o.startswith("serve.")]
    server = start_server(str(ctx.run.path), overrides, ctx.console, insecure=ctx.insecure)
    try:
        messages = sample_request(ctx.recipe)
        ctx.endpoint, ctx.sample = server.base_url, {"request": messages, "answer": ask(server, messages)}
        summarize(ctx)
        if ctx.keep_serving:
            ctx.console.print(f"serving {server.target.default_name} at {server.base_url}; Ctrl-C to stop")
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
    finally:
        server.stop()
    return "done", {"endpoint": ctx.endpoint, "sample": ctx.sample}


STAGES: tuple[Stage, ...] = (
    Stage("train", train_stage, _trained),
    Stage("eval", eval_stage, _evaluated),
    Stage("gate", gate_stage, lambda ctx: False, stops=("failed",)),
    Stage("register", register_stage, _registered),
    Stage("serve", serve_stage, lambda ctx: False),
)


def train_parents(recipe: Recipe, console: Console, seen: tuple[Path, ...] = ()) -> None:
    """A recipe that names its parent by recipe file (genai.parents) needs a finished run of it: train the
    parent (and its own parents) first when it has none, resuming an interrupted one."""
    from genai.errors import GenaiError
    from genai.parents import parent_recipe_file
    from genai.preflight import preflight
    from genai.runs import recipe_runs

    file = parent_recipe_file(recipe.model)
    if file is None or not file.exists():
        return  # the preflight names a missing parent
    if file.resolve() in seen:
        chain = " -> ".join(p.name for p in (*seen, file.resolve()))
        raise GenaiError(f"model.name_or_path: the recipes name each other as parents: {chain}")
    parent = load_recipe(file)
    if any(r.is_trained for r in recipe_runs(parent)):
        return
    train_parents(parent, console, (*seen, file.resolve()))
    preflight(parent)
    from genai.training.launch import start_training

    unfinished = resumable_run(parent)
    console.rule(f"[bold]parent: training {file.name} first (no finished run of it yet)")
    start_training(parent, resume=unfinished is not None, run_dir=unfinished.path if unfinished else None)


def run_pipeline(
    recipe_path: str | Path | Recipe,
    overrides: list[str],
    *,
    serve: bool = True,
    keep_serving: bool = False,
    sagemaker: bool = False,
    insecure: bool = False,
    console: Console | None = None,
) -> RunOutcome:
    """Run (or continue) the whole path for a recipe; the preflight first, before any stage."""
    from genai.preflight import Plan, preflight

    if isinstance(recipe_path, Recipe):
        recipe = with_overrides(recipe_path, overrides)
    else:
        recipe = load_recipe(recipe_path, overrides)
    if not sagemaker:
        train_parents(recipe, console or Console(stderr=True))
    preflight(recipe, Plan(serve=serve, sagemaker=sagemaker, insecure=insecure))
    ctx = Context(
        recipe,
        list(overrides),
        console or Console(stderr=True),
        serve,
        keep_serving,
        sagemaker,
        insecure,
        resumable_run(recipe),
    )
    if ctx.run is not None and ctx.run.is_trained and _status(ctx, "train") is None:
        ctx.run.mark_stage("train", "done", ctx.run.manifest().get("train_seconds") or 0.0)  # by `genai train`
    stages = _wanted(ctx)
    todo = [s for s in stages if not s.done(ctx)]
    if ctx.run is not None:
        ctx.console.rule(f"continuing {ctx.run.path} at stage '{todo[0].name}'")
    for stage in todo:
        ctx.console.rule(f"[bold]{stages.index(stage) + 1}/{len(stages)} {stage.name}")
        t0 = time.perf_counter()
        status, details = stage.run(ctx)
        ctx.run.mark_stage(stage.name, status, time.perf_counter() - t0, **details)
        if status in stage.stops:
            break
    if ctx.endpoint is None:  # serving prints it while the endpoint is up
        summarize(ctx)
    return RunOutcome(ctx.run.path, bool(ctx.table.get("passed", True)), ctx.run.stages(), ctx.endpoint, ctx.sample)


def summarize(ctx: Context) -> None:
    """The closing summary: loss, eval table, gate, artifact, endpoint and a sample answer."""
    out, run, table = Console(soft_wrap=True), ctx.run, ctx.table
    m = run.manifest().get("metrics", {})
    out.rule("[bold]summary")
    out.print(f"run:        {run.path}")
    out.print(f"artifact:   {run.artifact_dir}")
    if m.get("train_loss") is not None:
        out.print(
            f"final loss: {m['train_loss']:.4f}" + (f"  (eval loss {m['eval_loss']:.4f})" if m.get("eval_loss") else "")
        )
    for r in table.get("rows", []):
        delta = "" if r["delta"] is None else f"  ({num(r['delta'], '+.4f')})"
        out.print(f"eval:       {r['task']} {r['metric']}: {num(r['base'])} -> {num(r['tuned'])}{delta}")
    out.print(f"gate:       {'passed' if table.get('passed', True) else 'FAILED'}")
    if ctx.registered and "version" in ctx.registered:
        reg = ctx.registered
        out.print(f"registered: {reg['name']} version {reg['version']} ({reg['alias']})")
    if ctx.registered and "model_package" in ctx.registered:
        out.print(f"package:    {ctx.registered['model_package']}")
    if ctx.endpoint:
        out.print(f"endpoint:   {ctx.endpoint}")
        out.print(f"sample:     {ctx.sample['request'][-1]['content']!r} -> {ctx.sample['answer']!r}")
