"""Plain functions behind `genai sagemaker ...` (the CLI only parses and prints)."""

from __future__ import annotations

import json
from pathlib import Path

from genai.atomic import atomic_write_json, atomic_write_text
from genai.errors import GenaiError
from genai.recipe import Recipe, SageMakerSection, load_recipe
from genai.runs import RECIPE_FILE, recipe_root
from genai.sagemaker.session import boto_session, require_settings


def train(recipe_path: Path, overrides: list[str], *, dry_run: bool, smoke: bool = True) -> dict:
    """Submit (or, dry run, only build) the training job; a local run folder awaits its download.
    A real submission runs the recipe's smoke check here first: a broken recipe fails in a minute
    on this machine, not after an hour on a GPU."""
    from genai.sagemaker.submit import estimate, submit

    recipe = load_recipe(recipe_path, overrides)
    if smoke and not dry_run:
        from genai.sagemaker.submit import check

        check(recipe)  # settings and preflight first: they take seconds
        from genai.smoke.flow import run_smoke

        result = run_smoke(recipe_path, overrides)
        if not result.checklist.passed:
            failed = [f"{i.name}: {i.reason}" for i in result.checklist.items if i.status == "fail"]
            raise GenaiError(
                "not submitted: the smoke check failed:\n  " + "\n  ".join(failed),
                hint="fix the recipe (genai run RECIPE --smoke), or submit anyway with --no-smoke",
            )
    job = submit(recipe, dry_run=dry_run)
    out = {
        "job": job.job_name,
        "dry_run": dry_run,
        "request": job.request,
        "estimate": estimate(recipe),
        "uploads": [f"{c.s3_uri}{c.local.name}" for c in job.channels if c.local is not None],
    }
    if not dry_run:  # a local run folder that `genai sagemaker download` completes later
        run = recipe_root(recipe) / job.job_name
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / RECIPE_FILE, recipe.to_yaml())
        atomic_write_json(
            run / "sagemaker.json",
            {k: v for k, v in out.items() if k != "dry_run"} | {"region": boto_session(recipe.sagemaker).region_name},
        )
    return out


def settings(recipe_path: Path | None, overrides: list[str] | tuple[str, ...] = ()) -> SageMakerSection:
    """The `sagemaker` section of a recipe (defaults without one: region from the environment)."""
    if recipe_path is None:
        return SageMakerSection()
    return load_recipe(recipe_path, overrides).sagemaker


def clients(cfg: SageMakerSection, *names: str):
    """boto3 clients for the section's region."""
    boto = boto_session(cfg)
    return [boto.client(n) for n in names]


def status(job: str, cfg: SageMakerSection) -> dict:
    """The job's state and transitions."""
    from genai.sagemaker.jobs import status as _status

    (sm,) = clients(cfg, "sagemaker")
    return _status(sm, job)


def logs(job: str, cfg: SageMakerSection) -> list[str]:
    """The job's CloudWatch log lines."""
    from genai.sagemaker.jobs import logs as _logs

    (cw,) = clients(cfg, "logs")
    return _logs(cw, job)


def stop(job: str, cfg: SageMakerSection) -> None:
    """Stop the job."""
    from genai.sagemaker.jobs import stop as _stop

    (sm,) = clients(cfg, "sagemaker")
    _stop(sm, job)


def download(job: str, recipe_path: Path | None, dest: Path) -> Path:
    """A finished job's artifact as a local run folder."""
    from genai.sagemaker.jobs import download as _download

    recipe = load_recipe(recipe_path) if recipe_path else None
    sm, s3 = clients(recipe.sagemaker if recipe else SageMakerSection(), "sagemaker", "s3")
    return _download(sm, s3, job, dest, recipe.to_yaml() if recipe else None)


def deploy(
    target: str,
    overrides: list[str],
    *,
    recipe_path: Path | None = None,
    artifact: str | None = None,
    instance_type: str | None = None,
) -> dict:
    """Deploy a local run folder (uploaded first) or an S3 prefix holding a run (a job's output/model/).

    For an S3 prefix the recipe's settings come from --recipe (the run folder has its own).
    """
    from genai.sagemaker.deploy import container_env, serving_image
    from genai.sagemaker.deploy import deploy as _deploy

    remote = target.startswith("s3://")
    path = Path(target)
    if remote and recipe_path is None:
        raise GenaiError(
            "sagemaker deploy s3://...: also give --recipe for the SageMaker settings",
            hint="or: genai sagemaker download JOB, then genai sagemaker deploy RUN",
        )
    if not remote and not (path / RECIPE_FILE).exists():
        raise GenaiError(f"{target}: not a run folder (no {RECIPE_FILE}) or an s3:// run prefix")
    recipe: Recipe = load_recipe(recipe_path or path / RECIPE_FILE, overrides)
    dep = recipe.sagemaker.deploy.model_copy(
        update={k: v for k, v in (("artifact", artifact), ("instance_type", instance_type)) if v}
    )
    cfg = recipe.sagemaker.model_copy(update={"deploy": dep})
    require_settings(cfg)
    boto = boto_session(cfg)
    use_adapter = dep.artifact == "adapter" and recipe.lora.enabled
    base = recipe.model.name_or_path if use_adapter else None
    if base is not None and (base.startswith(("/", ".", "genai/"))):
        raise GenaiError(
            f"sagemaker.deploy.artifact=adapter needs a hub base model; '{base}' is local",
            hint="deploy the merged model: sagemaker.deploy.artifact=merged",
        )
    folder = "adapter" if use_adapter else ("merged" if recipe.lora.enabled else "model")
    rank = None
    if remote:
        model_s3 = target.rstrip("/") + f"/{folder}/"
    else:
        local = path / folder
        if folder == "merged" and not (local / "config.json").exists():
            from genai.runs import Run
            from genai.training.export import merge_run

            merge_run(Run(path))
        if use_adapter:
            rank = json.loads((local / "adapter_config.json").read_text()).get("r")
        model_s3 = f"s3://{cfg.bucket}/{cfg.prefix.strip('/')}/deploy/{path.name}/{folder}/"
        bucket, _, key = model_s3[len("s3://") :].partition("/")
        s3 = boto.client("s3")
        for f in sorted(p for p in local.rglob("*") if p.is_file()):
            s3.upload_file(str(f), bucket, key + str(f.relative_to(local)))
    served = dep.endpoint_name or recipe.name
    env = container_env(cfg, base=base, lora_rank=rank, served_name=served)
    reqs = _deploy(
        boto.client("sagemaker"),
        cfg,
        model_s3=model_s3,
        name=dep.endpoint_name or f"genai-{recipe.name}",
        image=serving_image(cfg, boto.region_name),
        env=env,
    )
    return {"endpoint": reqs["endpoint"]["EndpointName"], "model_s3": model_s3, "requests": reqs}


def invoke(endpoint: str, cfg: SageMakerSection, body: dict) -> dict:
    """One request to a SageMaker endpoint."""
    from genai.sagemaker.deploy import invoke as _invoke

    (rt,) = clients(cfg, "sagemaker-runtime")
    return _invoke(rt, endpoint, body)
