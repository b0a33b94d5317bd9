"""`genai sagemaker train`: the recipe as a SageMaker training job (SDK v3 ModelTrainer).

Local data files become input channels (uploaded under s3://BUCKET/PREFIX/<job>/data/), s3://
sources pass through, and the project's code plus the resolved recipe travel as the source.
`--dry-run` captures the exact CreateTrainingJob request through botocore hooks and sends nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import SECRET_NAME, Recipe
from genai.sagemaker.session import aws_error, boto_session, require_settings, sagemaker_session

REQUIREMENTS = [
    "pydantic>=2.7,<3",
    "pyyaml>=6,<7",
    "typer>=0.15,<1",
    "rich>=13.7,<16",
    "peft>=0.17,<0.22",
    "accelerate>=1.10,<1.16",
    "datasets>=4.0,<5.3",
    "safetensors>=0.5,<0.9",
]


def prices() -> dict:
    """The shipped on-demand price table (USD per instance-hour)."""
    return json.loads(resources.files("genai").joinpath("sagemaker/prices.json").read_text())


@dataclass
class Channel:
    """One input channel: a local file to upload, or an s3:// source passed through."""

    name: str
    source: str  # "train" | "eval"
    index: int
    local: Path | None  # file to upload, or None for s3:// sources
    s3_uri: str  # where the job reads it


@dataclass
class JobPlan:
    """A job before it is sent: its name, its channels and, once built, its request."""

    job_name: str
    channels: list[Channel] = field(default_factory=list)
    request: dict | None = None


def job_stem(recipe: Recipe) -> str:
    """The job name's stem; the SDK appends a timestamp to make the job name."""
    return re.sub(r"[^A-Za-z0-9-]", "-", f"genai-{recipe.name}")[:40].strip("-")


def job_name(recipe: Recipe) -> str:
    """Names this submission's S3 folder (data channels, output, checkpoints)."""
    return f"{job_stem(recipe)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def check(recipe: Recipe) -> None:
    """What a job can get wrong, checked before anything is uploaded or sent."""
    from genai.preflight import Plan, preflight

    preflight(recipe, Plan(sagemaker=True))
    cfg = recipe.sagemaker
    require_settings(cfg)
    known = prices()["prices"]
    if cfg.instance_type not in known:
        import difflib

        close = difflib.get_close_matches(cfg.instance_type, list(known), n=2)
        raise GenaiError(
            f"sagemaker.instance_type: unknown instance type '{cfg.instance_type}'"
            + (f"; did you mean {' or '.join(close)}?" if close else ""),
            hint="known types: " + ", ".join(known),
        )
    for split in ("train", "eval"):
        for i, src in enumerate(getattr(recipe.data, split)):
            if src.path and not src.path.startswith("s3://") and not Path(src.path).is_file():
                raise GenaiError(
                    f"data.{split}.{i}.path: local data file not found: {src.path}",
                    hint="SageMaker channels take files; give one file per source",
                )


def smoke_first(recipe_path: Path, overrides: list[str]) -> None:
    """The recipe's smoke check here, before anything is uploaded or sent: a broken recipe fails in a
    minute on this machine, not after an hour on a GPU (a training job or every job of a tuning job)."""
    from genai.smoke.flow import run_smoke

    result = run_smoke(recipe_path, overrides)
    if not result.checklist.passed:
        failed = [f"{i.name}: {i.reason}" for i in result.checklist.items if i.status == "fail"]
        raise GenaiError(
            "not submitted: the smoke check failed:\n  " + "\n  ".join(failed),
            hint="fix the recipe (genai run RECIPE --smoke), or submit anyway with --no-smoke",
        )


def plan(recipe: Recipe, name: str) -> JobPlan:
    """The job's input channels: local data files and s3:// sources."""
    cfg = recipe.sagemaker
    base = f"s3://{cfg.bucket}/{cfg.prefix.strip('/')}/{name}"
    out = JobPlan(name)
    for split in ("train", "eval"):
        for i, src in enumerate(getattr(recipe.data, split)):
            if not src.path:
                continue  # hub datasets are fetched inside the job
            channel = f"{split}{i}"
            if src.path.startswith("s3://"):
                uri = src.path
                out.channels.append(Channel(channel, split, i, None, uri.rsplit("/", 1)[0] + "/"))
            else:
                local = Path(src.path)
                out.channels.append(Channel(channel, split, i, local, f"{base}/data/{channel}/"))
    return out


def source_dir(recipe: Recipe, job: JobPlan, d: Path) -> Path:
    """genai's code + the resolved recipe + channel map + requirements, written into `d`: what the job runs."""
    import genai

    shutil.copytree(
        Path(genai.__file__).parent, d / "genai", ignore=shutil.ignore_patterns("__pycache__", "eval", "recipes")
    )
    (d / "recipe.yaml").write_text(recipe.to_yaml())
    (d / "channels.json").write_text(
        json.dumps(
            {
                c.name: {
                    "source": c.source,
                    "index": c.index,
                    "name": c.local.name if c.local else getattr(recipe.data, c.source)[c.index].path.rsplit("/", 1)[1],
                }
                for c in job.channels
            },
            indent=1,
        )
    )
    (d / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    (d / "sm_entry.py").write_text("import sys\nfrom genai.sagemaker.entry import main\nsys.exit(main())\n")
    return d


def training_image(recipe: Recipe, region: str) -> str:
    """sagemaker.image, or the Hugging Face PyTorch training container (looked up offline)."""
    cfg = recipe.sagemaker
    if cfg.image:
        return cfg.image
    from sagemaker.core import image_uris

    try:
        return image_uris.retrieve(
            framework="huggingface",
            region=region,
            version=cfg.transformers_version,
            base_framework_version=f"pytorch{cfg.pytorch_version}",
            py_version=cfg.py_version,
            instance_type=cfg.instance_type,
            image_scope="training",
        )
    except ValueError as exc:
        raise GenaiError(
            f"sagemaker: no Hugging Face training image for {cfg.transformers_version}/"
            f"pytorch{cfg.pytorch_version}: {exc}",
            hint="pin one with sagemaker.image",
        ) from None


def build_trainer(recipe: Recipe, job: JobPlan, boto, src: Path):
    """The SDK's ModelTrainer for the job (code from `src`): image, torchrun, compute, spot, channels."""
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import (
        CheckpointConfig,
        Compute,
        InputData,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
        Tag,
    )
    from sagemaker.train.distributed import Torchrun

    cfg = recipe.sagemaker
    base = f"s3://{cfg.bucket}/{cfg.prefix.strip('/')}/{job.job_name}"
    stopping = StoppingCondition(
        max_runtime_in_seconds=cfg.max_runtime_s,
        max_wait_time_in_seconds=(cfg.max_wait_s or cfg.max_runtime_s * 2) if cfg.spot else None,
    )
    return ModelTrainer(
        sagemaker_session=sagemaker_session(cfg, boto),
        role=cfg.role,
        base_job_name=job_stem(recipe),
        training_image=training_image(recipe, boto.region_name),
        source_code=SourceCode(source_dir=str(src), entry_script="sm_entry.py", requirements="requirements.txt"),
        # torchrun on every GPU of every instance; SageMaker fills in nodes, ranks and the master address.
        distributed=Torchrun(),
        compute=Compute(
            instance_type=cfg.instance_type,
            instance_count=cfg.instance_count,
            volume_size_in_gb=cfg.volume_gb,
            enable_managed_spot_training=cfg.spot,
        ),
        stopping_condition=stopping,
        # Uncompressed: the run folder lands under output/<job>/output/model/, deployable as an S3 prefix.
        output_data_config=OutputDataConfig(s3_output_path=f"{base}/output", compression_type="NONE"),
        # Spot: SageMaker syncs /opt/ml/checkpoints with S3 and restores it after an interruption.
        checkpoint_config=CheckpointConfig(s3_uri=f"{base}/checkpoints", local_path="/opt/ml/checkpoints"),
        input_data_config=[InputData(channel_name=c.name, data_source=c.s3_uri) for c in job.channels],
        environment=dict(cfg.environment),
        tags=[Tag(key=k, value=v) for k, v in cfg.tags.items()],
        hyperparameters={"recipe": recipe.name},
    )


def redact(request: dict, sections: tuple[str, ...] = ("Environment", "HyperParameters")) -> dict:
    """Secret-looking environment values and hyperparameters never reach a printed request, a log
    or a manifest."""
    out = dict(request)
    for section in sections:
        if isinstance(out.get(section), dict):
            out[section] = {k: ("***" if SECRET_NAME.search(k) else v) for k, v in out[section].items()}
    return out


class _Stop(Exception):
    pass


def _capture(
    boto, job: JobPlan, *, send: bool, operation: str = "CreateTrainingJob", name_key: str = "TrainingJobName"
) -> None:
    """Record the exact parameters of `operation` (a CreateTrainingJob, or a tuner's
    CreateHyperParameterTuningJob); in a dry run answer every call locally."""
    from botocore.awsrequest import AWSResponse

    def on_params(params, model, **kw):
        if model.name == operation:
            job.request = json.loads(json.dumps(params, default=str))
            job.job_name = params.get(name_key, job.job_name)

    def on_call(model, **kw):
        if send:
            return None
        if model.name == operation:
            raise _Stop()
        fake = {
            "ListBuckets": {"Buckets": [{"Name": "dry-run", "CreationDate": datetime.now()}]},
            "SimulatePrincipalPolicy": {"EvaluationResults": []},
        }.get(model.name, {})
        return AWSResponse("http://dry-run.invalid", 200, {}, None), {
            **fake,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    # Registered on the session before any client exists: clients copy its handlers when created.
    boto.events.register(f"provide-client-params.sagemaker.{operation}", on_params)
    boto.events.register("before-call", on_call)


def upload_channels(boto, job: JobPlan) -> None:
    """The job's local data files to their channels' S3 folders."""
    s3 = boto.client("s3")
    for c in job.channels:
        if c.local is not None:
            bucket, _, key = c.s3_uri[len("s3://") :].partition("/")
            s3.upload_file(str(c.local), bucket, key + c.local.name)


def submit(recipe: Recipe, *, dry_run: bool) -> JobPlan:
    """Upload the channels and start the job (dry run: capture the request, send nothing)."""
    check(recipe)
    job = plan(recipe, job_name(recipe))
    boto = boto_session(recipe.sagemaker)
    _capture(boto, job, send=not dry_run)
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if not dry_run:
            upload_channels(boto, job)
        # The SDK packs and uploads the code when the job is created: the folder is not needed after.
        with tempfile.TemporaryDirectory(prefix="genai-sm-src-") as tmp:
            trainer = build_trainer(recipe, job, boto, source_dir(recipe, job, Path(tmp)))
            try:
                trainer.train(wait=False, logs=False)
            except _Stop:
                pass
    except (ClientError, BotoCoreError, Boto3Error) as exc:
        raise aws_error(exc, "sagemaker train") from None
    if job.request is None:
        raise GenaiError("sagemaker train: the SDK sent no CreateTrainingJob request")
    job.request = redact(job.request)
    return job


def estimate(recipe: Recipe) -> dict:
    """The most the job can cost: hourly price x instances x max runtime (spot: an estimate)."""
    table = prices()
    cfg = recipe.sagemaker
    hourly = table["prices"][cfg.instance_type] * cfg.instance_count
    hours = cfg.max_runtime_s / 3600
    return {
        "price_date": table["date"],
        "instance_type": cfg.instance_type,
        "instance_count": cfg.instance_count,
        "usd_per_hour": round(hourly, 3),
        "max_hours": round(hours, 2),
        "max_usd_on_demand": round(hourly * hours, 2),
        "max_usd_spot_estimate": round(hourly * hours * (1 - table["spot_discount_estimate"]), 2) if cfg.spot else None,
    }
