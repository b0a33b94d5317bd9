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
    from genai.sagemaker.submit import check, estimate, smoke_first, submit

    recipe = load_recipe(recipe_path, overrides)
    if smoke and not dry_run:
        check(recipe)  # settings and preflight first: they take seconds
        smoke_first(recipe_path, overrides)
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


def split_targets(args: list[str]) -> tuple[list[str], list[str]]:
    """`deploy` arguments: what to deploy (run folders, s3:// prefixes, a package ARN), then dotted overrides."""
    import re

    is_override = re.compile(r"^[A-Za-z_][\w.]*=")
    return [a for a in args if not is_override.match(a)], [a for a in args if is_override.match(a)]


def _deploy_settings(recipe_path: Path, overrides: list[str], instance_type: str | None) -> SageMakerSection:
    """The recipe's sagemaker section with --instance-type applied."""
    cfg = load_recipe(recipe_path, overrides).sagemaker
    if instance_type:
        cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"instance_type": instance_type})})
    return cfg


def deploy(
    args: list[str],
    *,
    recipe_path: Path | None = None,
    artifact: str | None = None,
    instance_type: str | None = None,
    components: bool = False,
    package_group: str | None = None,
    dry_run: bool = False,
    capture: str | None = None,
    capture_percent: int = 100,
) -> dict:
    """`genai sagemaker deploy`: a run (or s3:// run prefix) on its own endpoint; several LoRA runs as
    inference components of one endpoint (--components); or a registered model package (an ARN, or
    --package-group G: its newest Approved version). A dry run sends nothing and uploads nothing.
    `capture`: an s3:// URI for the endpoint's data capture (a run's own endpoint)."""
    from genai.sagemaker.deploy import data_capture_config
    from genai.sagemaker.packages import is_package_target

    targets, overrides = split_targets(args)
    package = bool(targets) and is_package_target(targets[0])
    capture_cfg = data_capture_config(capture, capture_percent) if capture else None
    if capture_cfg and (components or package or package_group is not None):
        raise GenaiError(
            "sagemaker deploy --capture: sets the data capture of a run's own endpoint only",
            hint="deploy without --components or a model package, or leave out --capture",
        )
    if package_group is not None or package:
        if components or len(targets) != (0 if package_group else 1):
            raise GenaiError(
                "sagemaker deploy: a model package deploys alone: one ARN, or --package-group G without a target",
                hint="deploy runs in a separate command",
            )
        return _deploy_package(targets, overrides, recipe_path, instance_type, package_group, dry_run)
    if not targets:
        raise GenaiError("sagemaker deploy: give a run folder, an s3:// run prefix or a model package ARN")
    if components:
        return _deploy_components(targets, overrides, recipe_path, instance_type, dry_run)
    if len(targets) > 1:
        raise GenaiError(
            f"sagemaker deploy: {len(targets)} runs given; one endpoint serves one run",
            hint="LoRA runs of one base model share an endpoint with --components",
        )
    return _deploy_run(targets[0], overrides, recipe_path, artifact, instance_type, dry_run, capture_cfg)


def _deploy_package(targets, overrides, recipe_path, instance_type, group, dry_run) -> dict:
    from genai.sagemaker.packages import deploy_package

    cfg = _deploy_settings(recipe_path, overrides, instance_type) if recipe_path else SageMakerSection()
    boto = boto_session(cfg)
    arn = targets[0] if targets else None
    return deploy_package(boto.client("sagemaker"), cfg, boto.region_name, arn=arn, group=group, dry_run=dry_run)


def _deploy_components(targets, overrides, recipe_path, instance_type, dry_run) -> dict:
    from genai.sagemaker.components import deploy_components, read_adapters
    from genai.sagemaker.deploy import serving_image

    if any(t.startswith("s3://") for t in targets):
        raise GenaiError(
            "sagemaker deploy --components: takes local run folders, not s3:// prefixes",
            hint="genai sagemaker download JOB --out runs/x/JOB first",
        )
    adapters = read_adapters([Path(t) for t in targets])  # every check before anything is sent
    cfg = _deploy_settings(recipe_path or adapters[0].run / RECIPE_FILE, overrides, instance_type)
    require_settings(cfg)
    boto = boto_session(cfg)
    return deploy_components(
        boto.client("sagemaker"),
        boto.client("s3"),
        cfg,
        adapters,
        image=serving_image(cfg, boto.region_name),
        dry_run=dry_run,
    )


def _deploy_run(target, overrides, recipe_path, artifact, instance_type, dry_run, capture=None) -> dict:
    """A local run folder (uploaded first) or an S3 prefix holding a run (a job's output/model/).
    For an S3 prefix the recipe's settings come from --recipe (the run folder has its own)."""
    from genai.sagemaker.deploy import cloudwatch, container_env, serving_image
    from genai.sagemaker.deploy import deploy as _deploy

    remote = target.startswith("s3://")
    path = Path(target)
    if remote and recipe_path is None:
        raise GenaiError(
            "sagemaker deploy s3://...: also give --recipe for the SageMaker settings",
            hint="or: genai sagemaker download JOB, then genai sagemaker deploy RUN",
        )
    if not remote and not (path / RECIPE_FILE).exists():
        raise GenaiError(f"{target}: not a run folder (no {RECIPE_FILE}), an s3:// run prefix or a model package ARN")
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
    if remote:
        model_s3, rank = target.rstrip("/") + f"/{folder}/", None
    else:
        model_s3 = f"s3://{cfg.bucket}/{cfg.prefix.strip('/')}/deploy/{path.name}/{folder}/"
        rank = _upload_run(boto, path, folder, model_s3, send=not dry_run)
    served = dep.endpoint_name or recipe.name
    reqs = _deploy(
        boto.client("sagemaker"),
        cfg,
        model_s3=model_s3,
        name=dep.endpoint_name or f"genai-{recipe.name}",
        image=serving_image(cfg, boto.region_name),
        env=container_env(cfg, base=base, lora_rank=rank, served_name=served),
        dry_run=dry_run,
        capture=capture,
    )
    ep = reqs["endpoint"]["EndpointName"]
    return {
        "endpoint": ep,
        "model_s3": model_s3,
        "dry_run": dry_run,
        "requests": reqs,
        "cloudwatch": cloudwatch(ep, boto.region_name),
    }


def _upload_run(boto, path: Path, folder: str, model_s3: str, *, send: bool) -> int | None:
    """Upload RUN/<folder> (merging first when the merged model is missing); the adapter's rank.
    Without `send` (a dry run) nothing is merged or uploaded."""
    local = path / folder
    if send and folder == "merged" and not (local / "config.json").exists():
        from genai.runs import Run
        from genai.training.export import merge_run

        merge_run(Run(path))
    rank = json.loads((local / "adapter_config.json").read_text()).get("r") if folder == "adapter" else None
    if send:
        bucket, _, key = model_s3[len("s3://") :].partition("/")
        s3 = boto.client("s3")
        for f in sorted(p for p in local.rglob("*") if p.is_file()):
            s3.upload_file(str(f), bucket, key + str(f.relative_to(local)))
    return rank


def invoke(endpoint: str, cfg: SageMakerSection, body: dict, adapter: str | None = None) -> dict:
    """One request to a SageMaker endpoint, or to one adapter component on it."""
    from genai.sagemaker.deploy import invoke as _invoke

    (rt,) = clients(cfg, "sagemaker-runtime")
    return _invoke(rt, endpoint, body, component=adapter)
