"""The SageMaker Model Registry: a model package per registration, in a model package group.

The package is deployable as it is: its inference specification is the AWS vLLM serving container
(the image and SM_VLLM_* environment `genai sagemaker deploy` uses) over the artifact uploaded to S3
uncompressed (the merged model, or with sagemaker.deploy.artifact=adapter the adapter on a hub base).
Its model quality metrics are the eval table, uploaded as a statistics JSON; its customer metadata is
the run's lineage; its approval comes from the gate: Approved when the gate passed, Rejected when it
failed, PendingManualApproval when the run had no gate rules (nobody decided yet: a person does).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import Recipe, SageMakerSection
from genai.registry.champion import Evaluation
from genai.runs import Run
from genai.sagemaker.session import aws_error, boto_session, require_settings

WHAT = "register --sagemaker"
MAX_METADATA = 50  # CustomerMetadataProperties: at most 50 entries
_METADATA_BAD = re.compile(r"[^\w .:/=+\-@]")  # what SageMaker refuses in metadata keys and values
APPROVAL = {"passed": "Approved", "failed": "Rejected", "none": "PendingManualApproval"}


def group_name(name: str) -> str:
    """A package group name SageMaker accepts (letters, digits and '-', at most 63, no '-' at the ends)."""
    group = re.sub(r"[^A-Za-z0-9-]", "-", name)[:63].strip("-")
    if not group:
        raise GenaiError(f"registry.package_group: '{name}' has no letter or digit", hint="e.g. --name my-model")
    return group


def metadata(properties: dict[str, str]) -> dict[str, str]:
    """CustomerMetadataProperties: SageMaker's characters only, values cut to 256, at most 50 entries."""
    out = {}
    for key, value in list(properties.items())[:MAX_METADATA]:
        text = _METADATA_BAD.sub("_", str(value))
        out[_METADATA_BAD.sub("_", key)[:128]] = text if len(text) <= 256 else text[:253] + "..."
    return out


def quality_statistics(run: Run, ev: Evaluation) -> dict:
    """The eval table as a ModelQuality statistics document: each task/metric's fine-tuned value (with its
    stderr as standard_deviation), base and delta; the gate verdicts."""
    metrics = {
        f"{r['task']}/{r['metric']}": {
            "value": r.get("tuned"),
            "standard_deviation": r.get("stderr"),
            "base": r.get("base"),
            "delta": r.get("delta"),
        }
        for r in ev.rows
    }
    return {
        "version": 0.0,
        "genai_eval_metrics": metrics,
        "gate": {"verdict": ev.verdict, "rules": ev.table.get("gate") or []},
        "eval": {"backend": ev.backend, "run": run.name, **(ev.table.get("meta") or {})},
    }


@dataclass(frozen=True)
class Artifact:
    """What goes into the package's S3 prefix: the local folder, and for an adapter its hub base and rank."""

    folder: Path
    base: str | None
    rank: int | None


def artifact(run: Run, recipe: Recipe, cfg: SageMakerSection) -> Artifact:
    """The merged model (LoRA runs; merged first if missing), the full fine-tune's model, or with
    sagemaker.deploy.artifact=adapter the adapter over its hub base model."""
    kind = run.artifact()["kind"]
    if kind == "adapter" and cfg.deploy.artifact == "adapter":
        base = recipe.model.name_or_path
        if base.startswith(("/", ".", "genai/")):
            raise GenaiError(
                f"sagemaker.deploy.artifact=adapter needs a hub base model; '{base}' is local",
                hint="register the merged model: sagemaker.deploy.artifact=merged",
            )
        rank = json.loads((run.artifact_dir / "adapter_config.json").read_text()).get("r")
        return Artifact(run.artifact_dir, base, rank)
    return Artifact(run.merged_dir if kind == "adapter" else run.artifact_dir, None, None)


def s3_root(cfg: SageMakerSection, group: str, run: Run) -> str:
    """s3://<bucket>/<prefix>/registry/<group>/<run id>/"""
    parts = [cfg.prefix.strip("/"), "registry", group, run.name]
    return f"s3://{cfg.bucket}/" + "/".join(p for p in parts if p) + "/"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def upload_requests(local: Path, prefix: str) -> list[dict]:
    """s3.upload_file's arguments for every file of a folder, under an s3:// prefix."""
    bucket, key = _split(prefix)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    return [{"Filename": str(f), "Bucket": bucket, "Key": key + f.relative_to(local).as_posix()} for f in files]


def group_request(recipe: Recipe, cfg: SageMakerSection, group: str) -> dict:
    """create_model_package_group."""
    description = f"genai: recipe {recipe.name}, fine-tuned from {recipe.model.name_or_path}"
    req = {"ModelPackageGroupName": group, "ModelPackageGroupDescription": description[:1024]}
    if cfg.tags:
        req["Tags"] = [{"Key": k, "Value": v} for k, v in cfg.tags.items()]
    return req


def package_request(
    run: Run, recipe: Recipe, ev: Evaluation, *, group: str, container: dict, metrics: dict, properties: dict
) -> dict:
    """create_model_package: the container and where it serves, the eval metrics, the lineage, the approval."""
    from genai import __version__

    cfg = recipe.sagemaker
    req = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"{recipe.name} run {run.name} (gate: {ev.verdict})"[:1024],
        "InferenceSpecification": {
            "Containers": [container],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [cfg.deploy.instance_type],
        },
        "ModelMetrics": {"ModelQuality": {"Statistics": metrics}},
        "CustomerMetadataProperties": metadata(properties),
        "MetadataProperties": {"GeneratedBy": f"genai {__version__}"},
        "ModelApprovalStatus": APPROVAL[ev.verdict],
    }
    commit = run.manifest().get("git_commit")
    if commit:
        req["MetadataProperties"]["CommitId"] = commit
    if cfg.tags:
        req["Tags"] = [{"Key": k, "Value": v} for k, v in cfg.tags.items()]
    return req


def container(recipe: Recipe, art: Artifact, model_s3: str, region: str) -> dict:
    """The vLLM serving container over the uploaded artifact, as `genai sagemaker deploy` runs it."""
    from genai.sagemaker.deploy import container_env, serving_image

    cfg = recipe.sagemaker
    served = cfg.deploy.endpoint_name or recipe.name
    return {
        "Image": serving_image(cfg, region),
        "Environment": container_env(cfg, base=art.base, lora_rank=art.rank, served_name=served),
        "ModelDataSource": {"S3DataSource": {"S3Uri": model_s3, "S3DataType": "S3Prefix", "CompressionType": "None"}},
    }


@dataclass
class Requests:
    """Every request of one registration, in the order they are sent."""

    group: dict
    uploads: list[dict]
    metrics: dict  # s3.put_object of the statistics document
    package: dict

    def printable(self, *, group_exists: bool | None) -> list[dict]:
        """The requests as printed: the statistics document as JSON, the group's creation when it happens."""
        describe = {"ModelPackageGroupName": self.group["ModelPackageGroupName"]}
        calls = [{"call": "describe_model_package_group", "request": describe}]
        if group_exists is None:
            calls.append({"call": "create_model_package_group", "request": self.group, "when": "the group is new"})
        elif not group_exists:
            calls.append({"call": "create_model_package_group", "request": self.group})
        calls += [{"call": "s3.upload_file", "request": u} for u in self.uploads]
        body = json.loads(self.metrics["Body"])
        calls.append({"call": "s3.put_object", "request": {**self.metrics, "Body": body}})
        calls.append({"call": "create_model_package", "request": self.package})
        return calls


def plan(
    run: Run, recipe: Recipe, ev: Evaluation, *, group: str, art: Artifact, properties: dict, region: str
) -> Requests:
    """Every request, built before any is sent (a dry run prints them)."""
    cfg = recipe.sagemaker
    root = s3_root(cfg, group, run)
    model_s3 = root + art.folder.name + "/"
    body = json.dumps(quality_statistics(run, ev), indent=2).encode()
    bucket, key = _split(root + "evaluation.json")
    metrics = {"ContentType": "application/json", "S3Uri": f"s3://{bucket}/{key}"}
    metrics["ContentDigest"] = "sha256:" + hashlib.sha256(body).hexdigest()
    package = package_request(
        run,
        recipe,
        ev,
        group=group,
        container=container(recipe, art, model_s3, region),
        metrics=metrics,
        properties=properties,
    )
    put = {"Bucket": bucket, "Key": key, "Body": body, "ContentType": "application/json"}
    return Requests(group_request(recipe, cfg, group), upload_requests(art.folder, model_s3), put, package)


def group_exists(sm, group: str) -> bool:
    """describe_model_package_group: False when SageMaker says the group does not exist."""
    from botocore.exceptions import ClientError

    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationException" and "does not exist" in error.get("Message", ""):
            return False
        raise
    return True


def send(boto, p: Requests) -> tuple[bool, str]:
    """Create the group when missing, upload the artifact and the statistics, create the package:
    (whether the group existed, the package ARN)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    sm, s3 = boto.client("sagemaker"), boto.client("s3")
    try:
        existed = group_exists(sm, p.group["ModelPackageGroupName"])
        if not existed:
            sm.create_model_package_group(**p.group)
        for up in p.uploads:
            s3.upload_file(**up)
        s3.put_object(**p.metrics)
        arn = sm.create_model_package(**p.package)["ModelPackageArn"]
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        raise aws_error(exc, WHAT) from None
    return existed, arn


def register_sagemaker(
    run: Run, recipe: Recipe, ev: Evaluation, name: str, properties: dict[str, str], *, dry_run: bool = False
) -> dict:
    """A model package of the run in group registry.package_group (default: the model name); a dry run
    only builds and returns the requests."""
    cfg = recipe.sagemaker
    require_settings(cfg)
    boto = boto_session(cfg)
    group = group_name(recipe.registry.package_group or name)
    art = artifact(run, recipe, cfg)
    merge_first = art.base is None and run.artifact()["kind"] == "adapter" and not (art.folder / "config.json").exists()
    if merge_first and not dry_run:
        from genai.training.export import merge_run

        merge_run(run)
    p = plan(run, recipe, ev, group=group, art=art, properties=properties, region=boto.region_name)
    out = {
        "group": group,
        "approval": p.package["ModelApprovalStatus"],
        "model_s3": p.package["InferenceSpecification"]["Containers"][0]["ModelDataSource"]["S3DataSource"]["S3Uri"],
        "metrics_s3": p.package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"],
    }
    if dry_run:
        note = {"merge_first": str(art.folder)} if merge_first else {}
        return {**out, **note, "dry_run": True, "requests": p.printable(group_exists=None)}
    existed, arn = send(boto, p)
    version = arn.rsplit("/", 1)[-1]
    return {
        **out,
        "model_package_arn": arn,
        "version": version if version.isdigit() else None,
        "group_created": not existed,
        "requests": p.printable(group_exists=existed),
    }
