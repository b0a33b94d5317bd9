"""`genai run`: train -> eval -> gate -> serve, one artifact, resumable stage by stage.

Stage results live in the run's manifest (`stages`); re-running the same command with the same
recipe continues the latest unfinished run at its first unfinished stage. A failed gate ends the
run without serving.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from genai.errors import GenaiError
from genai.recipe import Recipe, load_recipe
from genai.runs import MANIFEST, RECIPE_FILE, read_manifest, recipe_root, update_manifest

STAGES = ("train", "eval", "gate", "serve")


@dataclass
class RunOutcome:
    run_dir: Path
    gate_passed: bool | None
    stages: dict = field(default_factory=dict)
    endpoint: str | None = None
    sample: dict | None = None


def stages_of(run: Path) -> dict:
    if not (run / MANIFEST).exists():
        return {}
    return read_manifest(run).get("stages", {})


def is_finished(stages: dict) -> bool:
    gate = stages.get("gate", {})
    return gate.get("status") == "failed" or stages.get("serve", {}).get("status") in ("done", "skipped")


def resumable_run(recipe: Recipe) -> Path | None:
    """The latest run of this exact recipe whose pipeline has not finished."""
    root = recipe_root(recipe)
    if not root.is_dir():
        return None
    for run in sorted(
        (p for p in root.iterdir() if (p / RECIPE_FILE).exists()), key=lambda p: p.stat().st_mtime, reverse=True
    ):
        try:
            same = load_recipe(run / RECIPE_FILE).content_hash() == recipe.content_hash()
        except GenaiError:
            same = False
        if same and not is_finished(stages_of(run)):
            return run
        return None  # only the latest run may be continued; older ones stay as they are
    return None


def _mark(run: Path, stage: str, status: str, seconds: float, **extra) -> None:
    stages = stages_of(run)
    stages[stage] = {"status": status, "seconds": round(seconds, 2), **extra}
    update_manifest(run, stages=stages)


def train_on_sagemaker(recipe: Recipe, console: Console, poll_s: float = 30) -> Path:
    """The train stage as a SageMaker job: submit, follow its status, download the artifact."""
    from genai.sagemaker import jobs
    from genai.sagemaker.launch import submit
    from genai.sagemaker.session import boto_session

    job = submit(recipe, dry_run=False)
    console.print(f"SageMaker job {job.job_name} submitted")
    boto = boto_session(recipe.sagemaker)
    sm, s3 = boto.client("sagemaker"), boto.client("s3")
    final = jobs.wait(
        sm, job.job_name, poll_s=poll_s, on_change=lambda st: console.print(f"  {st['status']} / {st['secondary']}")
    )
    if final["status"] != "Completed":
        raise GenaiError(
            f"SageMaker job {job.job_name} {final['status']}: {final.get('failure') or ''}",
            hint=f"genai sagemaker logs {job.job_name}",
        )
    return jobs.download(sm, s3, job.job_name, recipe_root(recipe) / job.job_name, recipe.to_yaml())


def sample_request(recipe: Recipe) -> list[dict]:
    """A question from the recipe's own eval data, else a greeting."""
    try:
        from genai.data.pipeline import load_examples

        for ex in load_examples(recipe.data.eval[:1]):
            if ex.messages:
                last = max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")
                return ex.messages[:last]
    except GenaiError:
        pass
    return [{"role": "user", "content": "Hello!"}]


def ask(base_url: str, model: str, messages: list[dict], key: str | None) -> str:
    body = json.dumps({"model": model, "messages": messages, "max_tokens": 64, "temperature": 0}).encode()
    req = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key or 'none'}"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())["choices"][0]["message"]["content"]


def run_pipeline(
    recipe_path: Path,
    overrides: list[str],
    *,
    serve: bool = True,
    keep_serving: bool = False,
    sagemaker: bool = False,
    console: Console | None = None,
) -> RunOutcome:
    console = console or Console(stderr=True)
    recipe = load_recipe(recipe_path, overrides)
    run = resumable_run(recipe)
    stages = stages_of(run) if run else {}
    if run is not None and (run / MANIFEST).exists() and "train" not in stages:  # trained by `genai train`
        _mark(run, "train", "done", read_manifest(run).get("train_seconds") or 0.0)
        stages = stages_of(run)
    if run is not None:
        console.rule(
            f"continuing {run} at stage '{next(s for s in STAGES if stages.get(s, {}).get('status') != 'done')}'"
        )

    # 1. train (resumes from the run's last checkpoint when it was interrupted)
    if stages.get("train", {}).get("status") != "done":
        console.rule("[bold]1/4 train")
        from genai.train.launch import start_training

        t0 = time.perf_counter()
        if sagemaker:
            run = train_on_sagemaker(recipe, console)
        else:
            result = start_training(recipe, resume=run is not None, run_dir=run)
            run = getattr(result, "run_dir", result)
        _mark(run, "train", "done", time.perf_counter() - t0, where="sagemaker" if sagemaker else "local")
    manifest = read_manifest(run)

    # 2. eval (base and fine-tuned)
    from genai.evaluate.report import print_report
    from genai.evaluate.runner import evaluate

    table_path = run / "eval" / recipe.eval.backend / "table.json"
    if stages.get("eval", {}).get("status") != "done" or not table_path.exists():
        console.rule("[bold]2/4 eval")
        t0 = time.perf_counter()
        if recipe.eval.tasks:
            report = evaluate(str(run), overrides)
            print_report(report, Console(stderr=True, width=120))
            _mark(run, "eval", "done", time.perf_counter() - t0, table=str(table_path.relative_to(run)))
        else:
            _mark(run, "eval", "skipped", 0.0)
    table = json.loads(table_path.read_text()) if table_path.exists() else {"rows": [], "gate": [], "passed": True}
    if stages.get("track", {}).get("status") != "done":
        track_run(recipe, run, table.get("rows", []))
        if recipe.tracking.mlflow or recipe.tracking.tensorboard:
            _mark(run, "track", "done", 0.0)

    # 3. gate
    console.rule("[bold]3/4 gate")
    passed = bool(table.get("passed", True))
    for g in table.get("gate", []):
        console.print(f"gate {'PASS' if g['passed'] else 'FAIL'}: {g['detail']}")
    _mark(run, "gate", "passed" if passed else "failed", 0.0, rules=len(table.get("gate", [])))
    outcome = RunOutcome(run, passed, stages_of(run))
    if not passed:
        console.print("[bold red]gate failed: not serving")
        summarize(outcome, manifest, table, Console(soft_wrap=True))
        return outcome

    # 4. serve
    if not serve:
        _mark(run, "serve", "skipped", 0.0)
        outcome.stages = stages_of(run)
        summarize(outcome, manifest, table, Console(soft_wrap=True))
        return outcome
    console.rule("[bold]4/4 serve")
    from genai.serving.commands import start_server
    from genai.serving.server import api_key

    t0 = time.perf_counter()
    server = start_server(str(run), [o for o in overrides if o.startswith("serve.")], console)
    try:
        messages = sample_request(recipe)
        answer = ask(server.base_url, server.target.default_name, messages, api_key(server.serve))
        outcome.endpoint, outcome.sample = server.base_url, {"request": messages, "answer": answer}
        _mark(run, "serve", "done", time.perf_counter() - t0, endpoint=server.base_url, sample=outcome.sample)
        outcome.stages = stages_of(run)
        summarize(outcome, manifest, table, Console(soft_wrap=True))
        if keep_serving:
            console.print(f"serving {server.target.default_name} at {server.base_url}; Ctrl-C to stop")
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
    finally:
        server.stop()
    return outcome


def track_run(recipe: Recipe, run: Path, eval_rows: list[dict]) -> None:
    """Log the run to MLflow / TensorBoard (params, per-step metrics, eval, artifact path) and
    write the plots, report and model card beside it."""
    from genai.report import make_plots, write_model_card, write_report
    from genai.tracking import Tracker, replay_metrics

    tracker = Tracker(recipe, run)
    if tracker.enabled:
        with tracker.start():
            tracker.log_recipe()
            replay_metrics(tracker, run / "metrics.jsonl")
            tracker.log_eval(eval_rows)
            tracker.log_artifact_path(run / read_manifest(run).get("artifact", {}).get("path", "adapter"))
    from genai.errors import MissingExtraError

    try:
        make_plots(run)
    except MissingExtraError as exc:  # plots are optional; the report says how to get them
        Console(stderr=True).print(f"no plots: {exc.message} ({exc.hint})")
    write_model_card(run)
    write_report(run)


def summarize(outcome: RunOutcome, manifest: dict, table: dict, out: Console) -> None:
    """The closing summary: loss, eval table, gate, artifact, endpoint and a sample answer."""
    m = manifest.get("metrics", {})
    out.rule("[bold]summary")
    out.print(f"run:        {outcome.run_dir}")
    out.print(f"artifact:   {outcome.run_dir / manifest.get('artifact', {}).get('path', 'adapter')}")
    if m.get("train_loss") is not None:
        out.print(
            f"final loss: {m['train_loss']:.4f}" + (f"  (eval loss {m['eval_loss']:.4f})" if m.get("eval_loss") else "")
        )
    from genai.runview import fmt

    for r in table.get("rows", []):
        delta = "" if r["delta"] is None else f"  ({'+' if r['delta'] >= 0 else ''}{fmt(r['delta'])})"
        out.print(f"eval:       {r['task']} {r['metric']}: {fmt(r['base'])} -> {fmt(r['tuned'])}{delta}")
    if outcome.gate_passed is not None:
        out.print(f"gate:       {'passed' if outcome.gate_passed else 'FAILED'}")
    if outcome.endpoint:
        out.print(f"endpoint:   {outcome.endpoint}")
        q = outcome.sample["request"][-1]["content"]
        out.print(f"sample:     {q!r} -> {outcome.sample['answer']!r}")
