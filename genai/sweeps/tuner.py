"""`genai sweep RECIPE --sagemaker`: the sweep as a SageMaker Automatic Model Tuning job (SDK v3
HyperparameterTuner over the same ModelTrainer as `genai sagemaker train`), and `genai sweep status|download`
of a tuning job.

Each swept key is a hyperparameter whose name contains "."; the container entry turns it into a recipe
override. The objective is read from the job's log: the entry prints `genai-metric NAME=VALUE` lines
(genai.sagemaker.entry.metric_line) that the MetricDefinitions' regexes (entry.metric_regex) match.
`--dry-run` captures the exact CreateHyperParameterTuningJob request through botocore hooks and sends nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import Recipe, SweepSection, with_overrides
from genai.sagemaker import submit
from genai.sagemaker.entry import OBJECTIVE_HP, metric_regex
from genai.sagemaker.session import aws_error, boto_session

LM_EVAL = "lm-eval[api]>=0.4.9,<0.5"  # a task/metric objective: the job scores the run with genai's eval
OPERATION, NAME_KEY = "CreateHyperParameterTuningJob", "HyperParameterTuningJobName"
MIN_RUNTIME_S = 120  # ResourceLimits.MaxRuntimeInSeconds' smallest value
NAME_MAX = 32  # a tuning job's name


def tuning_job_name(recipe: Recipe, folder: str) -> str:
    """The tuning job's name: the recipe's stem and the S3 folder's time to the second (the SDK's own
    default, to the minute, would collide for two submissions in one minute)."""
    stamp = folder[-13:]  # yymmdd-HHMMSS of the folder's ...-YYYYmmdd-HHMMSS
    return f"{submit.job_stem(recipe)[: NAME_MAX - len(stamp) - 1].rstrip('-')}-{stamp}"


def check_tuning(recipe: Recipe) -> SweepSection:
    """The sweep section (each key and its extremes a valid recipe, the objective produced) and what a
    training job can get wrong, checked before anything is uploaded or sent."""
    from genai.sweeps.space import check_space

    sweep = check_space(recipe)
    submit.check(recipe)
    if sweep.timeout_s is not None and sweep.timeout_s < MIN_RUNTIME_S:
        raise GenaiError(
            f"sweep.timeout_s: a tuning job runs at least {MIN_RUNTIME_S} s (got {sweep.timeout_s:g})",
            hint=f"set sweep.timeout_s >= {MIN_RUNTIME_S}, or leave it out",
        )
    if sweep.objective != "eval_loss" and recipe.eval.backend != "hf":
        raise GenaiError(
            f"sweep.objective: {sweep.objective} is scored inside each training job, with the hf backend; "
            f"eval.backend is {recipe.eval.backend}",
            hint="set eval.backend=hf for the sweep, or optimise eval_loss",
        )
    return sweep


def parameter_ranges(sweep: SweepSection) -> dict:
    """The SDK's ranges: log_uniform -> continuous, logarithmic; uniform -> continuous, linear;
    int -> integer, linear; choice -> categorical (values as the JSON the container decodes)."""
    import json

    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    out = {}
    for key, p in sweep.parameters.items():
        if p.distribution == "log_uniform":
            out[key] = ContinuousParameter(p.low, p.high, scaling_type="Logarithmic")
        elif p.distribution == "uniform":
            out[key] = ContinuousParameter(p.low, p.high, scaling_type="Linear")
        elif p.distribution == "int":
            out[key] = IntegerParameter(int(p.low), int(p.high), scaling_type="Linear")
        else:
            out[key] = CategoricalParameter([v if isinstance(v, str) else json.dumps(v) for v in p.values])
    return out


def metric_definitions(objective: str) -> list[dict]:
    """The objective (the tuning job's objective metric), the held-out loss, and the summary `objective` line."""
    names = [objective] + [n for n in ("eval_loss", "objective") if n != objective]
    return [{"Name": n, "Regex": metric_regex(n)} for n in names]


def ship_suites(recipe: Recipe, src: Path) -> None:
    """The eval suites (bundled and eval.suite_dirs) with their data files, into the job's code, and
    lm-eval into its requirements: a task/metric objective is scored inside the job."""
    import yaml

    from genai.evaluation.suites import _Dumper, _Loader, materialize, suite_dirs

    made = materialize(suite_dirs(recipe.eval.suite_dirs))  # data_files made absolute
    dest = src / "genai" / "assets" / "eval"
    try:
        for yml in sorted(made.rglob("*.yaml")):
            cfg = yaml.load(yml.read_text(encoding="utf-8"), Loader=_Loader)
            kwargs = cfg.get("dataset_kwargs") if isinstance(cfg, dict) else None
            files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
            out = dest / yml.relative_to(made)
            out.parent.mkdir(parents=True, exist_ok=True)
            if files is not None:
                kwargs["data_files"] = _ship_files(files, out.parent / "data")
            out.write_text(yaml.dump(cfg, Dumper=_Dumper, sort_keys=False))
        for py in made.rglob("*.py"):
            (dest / py.relative_to(made)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(py, dest / py.relative_to(made))
    finally:
        shutil.rmtree(made, ignore_errors=True)
    # The suites now travel inside genai's own eval folder: the job's recipe names no local folders.
    (src / "recipe.yaml").write_text(with_overrides(recipe, ["eval.suite_dirs=[]"]).to_yaml())
    with open(src / "requirements.txt", "a") as f:
        f.write(LM_EVAL + "\n")


def _ship_files(files, data: Path):
    """Local data files copied next to their task YAML; the paths made relative to it (URLs kept)."""
    if isinstance(files, dict):
        return {k: _ship_files(v, data) for k, v in files.items()}
    if isinstance(files, list):
        return [_ship_files(v, data) for v in files]
    if not isinstance(files, str) or "://" in files:
        return files
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy2(files, data / Path(files).name)
    return f"data/{Path(files).name}"


def build_tuner(recipe: Recipe, job: submit.JobPlan, boto, src: Path):
    """(the SDK's HyperparameterTuner over `genai sagemaker train`'s ModelTrainer, its data channels)."""
    from sagemaker.train.tuner import HyperparameterTuner

    sweep = recipe.sweep
    trainer = submit.build_trainer(recipe, job, boto, src)
    trainer.hyperparameters = {**(trainer.hyperparameters or {}), OBJECTIVE_HP: sweep.objective}
    # The data channels go to tune(): the tuner turns those into the definition's channels itself.
    inputs, trainer.input_data_config = trainer.input_data_config, None
    tuner = HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=sweep.objective,
        hyperparameter_ranges=parameter_ranges(sweep),
        metric_definitions=metric_definitions(sweep.objective),
        strategy="Bayesian",
        objective_type="Minimize" if sweep.goal == "minimize" else "Maximize",
        max_jobs=sweep.trials,
        max_parallel_jobs=sweep.parallel,
        max_runtime_in_seconds=int(sweep.timeout_s) if sweep.timeout_s else None,
        early_stopping_type="Auto" if sweep.prune else "Off",
        random_seed=sweep.seed,  # the SDK leaves out a seed of 0: seed_setter puts it back
    )
    return tuner, inputs


def seed_setter(seed: int):
    """A botocore handler that puts the sweep's seed in the tuning request when the SDK left it out (it tests
    the seed for truth, and 0, the recipe's default, is false): the same seed, the same draws."""

    def on_params(params, model, **kw):
        if model.name == OPERATION:
            params.setdefault("HyperParameterTuningJobConfig", {}).setdefault("RandomSeed", seed)

    return on_params


def tune(recipe: Recipe, *, dry_run: bool) -> submit.JobPlan:
    """Upload the data channels and start the tuning job (dry run: capture its request, send nothing)."""
    check_tuning(recipe)
    job = submit.plan(recipe, submit.job_name(recipe))
    boto = boto_session(recipe.sagemaker)
    boto.events.register(f"provide-client-params.sagemaker.{OPERATION}", seed_setter(recipe.sweep.seed))
    submit._capture(boto, job, send=not dry_run, operation=OPERATION, name_key=NAME_KEY)
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if not dry_run:
            submit.upload_channels(boto, job)
        # The tuner packs and uploads the code when it starts the job: the folder is not needed after.
        with tempfile.TemporaryDirectory(prefix="genai-sm-src-") as tmp:
            src = submit.source_dir(recipe, job, Path(tmp))
            if recipe.sweep.objective != "eval_loss":
                ship_suites(recipe, src)
            tuner, inputs = build_tuner(recipe, job, boto, src)
            try:
                tuner.tune(inputs=inputs, job_name=tuning_job_name(recipe, job.job_name), wait=False)
            except submit._Stop:
                pass
    except (ClientError, BotoCoreError, Boto3Error) as exc:
        raise aws_error(exc, "sweep --sagemaker") from None
    if job.request is None:
        raise GenaiError(f"sweep --sagemaker: the SDK sent no {OPERATION} request")
    definition = submit.redact(job.request["TrainingJobDefinition"], ("Environment", "StaticHyperParameters"))
    job.request = {**job.request, "TrainingJobDefinition": definition}
    return job


def _call(fn, what: str, **kwargs):
    """One SageMaker call; an unknown tuning job is a clear GenaiError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ResourceNotFound", "ValidationException") and "not" in str(exc).lower():
            name = kwargs.get(NAME_KEY)
            raise GenaiError(f"{what}: no such tuning job: {name}", hint="genai sweep RECIPE --sagemaker") from None
        raise aws_error(exc, what) from None
    except BotoCoreError as exc:
        raise aws_error(exc, what) from None


def status(sm, name: str) -> dict:
    """A tuning job's state, its training jobs' counts, and its best training job with its objective value."""
    d = _call(sm.describe_hyper_parameter_tuning_job, "sweep status", HyperParameterTuningJobName=name)
    objective = d.get("HyperParameterTuningJobConfig", {}).get("HyperParameterTuningJobObjective", {})
    best = d.get("BestTrainingJob") or None
    final = (best or {}).get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return {
        "tuning_job": name,
        "status": d["HyperParameterTuningJobStatus"],
        "failure": d.get("FailureReason") or None,
        "objective": {"metric": objective.get("MetricName"), "type": objective.get("Type")},
        "training_jobs": d.get("TrainingJobStatusCounters", {}),
        "objectives": d.get("ObjectiveStatusCounters", {}),
        "best": best
        and {
            "training_job": best["TrainingJobName"],
            "status": best.get("TrainingJobStatus"),
            "value": final.get("Value"),
            "params": best.get("TunedHyperParameters", {}),
        },
    }


def download_best(sm, s3, name: str, dest: Path, local_recipe_yaml: str | None = None) -> Path:
    """The best training job's run as a local run folder (`genai sagemaker download`), its manifest
    noting the tuning job, the tuned values and the objective value."""
    from genai.runs import Run
    from genai.sagemaker.jobs import download

    st = status(sm, name)
    if st["best"] is None:
        raise GenaiError(
            f"sweep download: tuning job {name} has no best training job yet ({st['status']})",
            hint=f"genai sweep status {name}",
        )
    run = download(sm, s3, st["best"]["training_job"], dest, local_recipe_yaml)
    Run(run).update_manifest(
        sweep={
            "id": name,
            "trial": st["best"]["training_job"],
            "params": st["best"]["params"],
            "objective": st["objective"]["metric"],
            "value": st["best"]["value"],
        }
    )
    return run


def submit_sweep(recipe_path: Path, overrides: list[str], *, dry_run: bool, smoke: bool = True) -> dict:
    """`genai sweep RECIPE --sagemaker [--dry-run]`: the tuning job's request, its uploads and the most it
    can cost. A real submission runs the recipe's smoke check here first, as `genai sagemaker train` does."""
    from genai.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    if smoke and not dry_run:
        check_tuning(recipe)  # settings and the space first: they take seconds
        submit.smoke_first(recipe_path, overrides)
    job = tune(recipe, dry_run=dry_run)
    per_job = submit.estimate(recipe)
    trials = recipe.sweep.trials
    return {
        "tuning_job": job.job_name,
        "dry_run": dry_run,
        "request": job.request,
        "estimate": per_job
        | {"max_jobs": trials, "max_usd_on_demand_all_jobs": round(per_job["max_usd_on_demand"] * trials, 2)},
        "uploads": [f"{c.s3_uri}{c.local.name}" for c in job.channels if c.local is not None],
    }


def status_of(name: str, recipe_path: Path | None) -> dict:
    """`genai sweep status TUNING_JOB [--recipe R]` (the recipe gives the region)."""
    from genai.sagemaker.commands import clients, settings

    (sm,) = clients(settings(recipe_path), "sagemaker")
    return status(sm, name)


def download_of(name: str, dest: Path, recipe_path: Path | None) -> Path:
    """`genai sweep download TUNING_JOB --out DIR [--recipe R]`: the best job's run, here."""
    from genai.recipe import SageMakerSection, load_recipe
    from genai.sagemaker.commands import clients

    recipe = load_recipe(recipe_path) if recipe_path else None
    sm, s3 = clients(recipe.sagemaker if recipe else SageMakerSection(), "sagemaker", "s3")
    return download_best(sm, s3, name, dest, recipe.to_yaml() if recipe else None)
