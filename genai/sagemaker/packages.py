"""`genai sagemaker deploy` of a registered model package: by ARN, or the latest Approved
version of a model package group. SageMaker builds the container from the package's own
InferenceSpecification (`PrimaryContainer: {ModelPackageName: ARN}`); the recipe gives the role,
region and instance.
"""

from __future__ import annotations

import re

from genai.errors import GenaiError
from genai.recipe import SageMakerSection
from genai.sagemaker.deploy import cloudwatch, endpoint_calls, endpoint_name, send
from genai.sagemaker.session import aws_error

# arn:aws:sagemaker:REGION:ACCOUNT:model-package/NAME/VERSION (a versioned package in a group),
# or .../model-package/NAME (an unversioned one).
PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):\d{12}:model-package/(?P<name>[A-Za-z0-9-]{1,63})(?:/(?P<version>\d+))?$"
)


def is_package_target(target: str) -> bool:
    """Anything that looks like an ARN is read as a model package (and checked as one)."""
    return target.startswith("arn:")


def parse_arn(arn: str, region: str) -> re.Match:
    """The ARN's parts; a malformed ARN or one from another region is a clear error."""
    m = PACKAGE_ARN.match(arn)
    if m is None:
        raise GenaiError(
            f"sagemaker deploy {arn}: not a model package ARN",
            hint="expected arn:aws:sagemaker:REGION:ACCOUNT:model-package/NAME/VERSION, or --package-group NAME",
        )
    if m["region"] != region:
        raise GenaiError(
            f"sagemaker deploy {arn}: the package is in {m['region']}, the recipe deploys to {region}",
            hint=f"set sagemaker.region={m['region']}",
        )
    return m


def _lookup(fn, what: str, **kwargs) -> dict:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationException" and "not found" in str(exc).lower():
            raise GenaiError(
                f"{what}: no such model package: {kwargs.get('ModelPackageName')}",
                hint="list a group's versions: aws sagemaker list-model-packages --model-package-group-name G",
            ) from None
        raise aws_error(exc, what) from None
    except BotoCoreError as exc:
        raise aws_error(exc, what) from None


def latest_approved_request(group: str) -> dict:
    """list_model_packages: the group's newest Approved version first."""
    return {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 1,
    }


def resolve(client, *, arn: str | None, group: str | None) -> dict:
    """The package to deploy (describe_model_package): the ARN given, or the group's newest Approved one."""
    what = "sagemaker deploy"
    if group is not None:
        found = _lookup(client.list_model_packages, what, **latest_approved_request(group))
        summaries = found.get("ModelPackageSummaryList", [])
        if not summaries:
            raise GenaiError(
                f"{what} --package-group {group}: the group has no Approved model package (or does not exist)",
                hint="approve a version first (ModelApprovalStatus=Approved), or deploy one by its ARN",
            )
        arn = summaries[0]["ModelPackageArn"]
    package = _lookup(client.describe_model_package, what, ModelPackageName=arn)
    if package.get("ModelApprovalStatus") == "Rejected":
        raise GenaiError(
            f"{what} {arn}: the model package was Rejected",
            hint="deploy an Approved version (--package-group G picks the newest)",
        )
    return package


def deploy_package(
    client, cfg: SageMakerSection, region: str, *, arn: str | None, group: str | None, dry_run: bool
) -> dict:
    """create_model from the package -> endpoint config -> endpoint. A dry run sends nothing, not even
    the lookups: the group's newest Approved version then stays a placeholder in the request."""
    if cfg.role is None:
        raise GenaiError(
            "sagemaker.role must be set to deploy a model package",
            hint="give --recipe with a sagemaker section (or sagemaker.role=arn:aws:iam::ACCOUNT:role/ROLE)",
        )
    lookups = []
    if arn is not None:
        m = parse_arn(arn, region)
        lookups.append(("describe_model_package", {"ModelPackageName": arn}))
        default_name = f"genai-{m['name']}-{m['version']}" if m["version"] else f"genai-{m['name']}"
    else:
        lookups.append(("list_model_packages", latest_approved_request(group)))
        default_name = f"genai-{group}-VERSION"  # the version found fills it in
    package = {"ModelPackageArn": arn or f"<newest Approved model package in group {group}>"}
    if not dry_run:
        package = resolve(client, arn=arn, group=group)
        if arn is None:  # name the endpoint after the version found
            m = parse_arn(package["ModelPackageArn"], region)
            default_name = f"genai-{m['name']}-{m['version']}"
    ep = endpoint_name(cfg.deploy.endpoint_name or default_name)
    calls = endpoint_calls(cfg, ep, {"ModelPackageName": package["ModelPackageArn"]})
    if not dry_run:
        send(client, calls, "sagemaker deploy")
    return {
        "endpoint": ep,
        "model_package": package["ModelPackageArn"],
        "approval": package.get("ModelApprovalStatus"),
        "dry_run": dry_run,
        "lookups": [{"call": op, "request": req} for op, req in lookups],
        "requests": dict(zip(("model", "endpoint_config", "endpoint"), (req for _, req in calls), strict=True)),
        "cloudwatch": cloudwatch(ep, region),
    }
