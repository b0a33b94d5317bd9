"""boto3 / SageMaker sessions with telemetry off and clear errors for missing settings."""

from __future__ import annotations

import os

from genai.errors import GenaiError, require
from genai.recipe import SageMakerSection

TELEMETRY_OFF = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def boto_session(cfg: SageMakerSection):
    """A boto3 session in the section's region (or the environment's)."""
    boto3 = require("boto3", "sagemaker", "SageMaker")
    region = cfg.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise GenaiError("sagemaker.region: no AWS region", hint="set sagemaker.region or AWS_DEFAULT_REGION")
    return boto3.Session(region_name=region)


def require_settings(cfg: SageMakerSection) -> None:
    """role and bucket must be set before anything is sent."""
    missing = [f"sagemaker.{k}" for k in ("role", "bucket") if getattr(cfg, k) is None]
    if missing:
        raise GenaiError(
            f"{' and '.join(missing)} must be set to run on SageMaker",
            hint="e.g. sagemaker.role=arn:aws:iam::123456789012:role/SageMakerRole sagemaker.bucket=my-bucket",
        )


def sagemaker_session(cfg: SageMakerSection, boto):
    """The SageMaker SDK session: telemetry off, no IAM role check, the bucket given."""
    require("sagemaker.core", "sagemaker", "SageMaker")
    # Role validation calls IAM (not every caller may); the ARN pattern is checked by the recipe.
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
    from sagemaker.core.helper.session_helper import Session

    # default_bucket given explicitly: otherwise the SDK asks STS for the account on a fixed endpoint.
    return Session(boto_session=boto, default_bucket=cfg.bucket, sagemaker_config=TELEMETRY_OFF)


def aws_error(exc: Exception, what: str) -> GenaiError:
    """One clear message for botocore errors (never with credentials in it)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    msg = getattr(exc, "response", {}).get("Error", {}).get("Message") if hasattr(exc, "response") else None
    return GenaiError(
        f"{what}: AWS error {code or type(exc).__name__}: {msg or exc}",
        hint="check sagemaker.region, the bucket, the role and your AWS credentials",
    )
