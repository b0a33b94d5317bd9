"""`genai sagemaker deploy|invoke`: the artifact behind the AWS vLLM container on an endpoint.

The container maps each SM_VLLM_* variable to the matching `vllm serve` flag; the model is the
run's folder in S3 (uncompressed), with the artifact's chat template and generation config.
"""

from __future__ import annotations

import json
import re

from genai.errors import GenaiError
from genai.recipe import SageMakerSection
from genai.sagemaker.session import aws_error


def serving_image(cfg: SageMakerSection, region: str) -> str:
    """sagemaker.deploy.image, or the AWS vLLM serving container of the region."""
    if cfg.deploy.image:
        return cfg.deploy.image
    from sagemaker.core import image_uris

    return image_uris.retrieve(framework="vllm", region=region, version=cfg.deploy.vllm_version)


def container_env(cfg: SageMakerSection, *, base: str | None, lora_rank: int | None, served_name: str) -> dict:
    """SM_VLLM_* settings. The S3 prefix (mounted at /opt/ml/model) holds the merged model, or, for
    an adapter, the adapter folder while the base comes from the hub by id."""
    model_dir = "/opt/ml/model"
    env = {
        "SM_VLLM_SERVED_MODEL_NAME": served_name,
        "SM_VLLM_GENERATION_CONFIG": model_dir,
        "SM_VLLM_CHAT_TEMPLATE": f"{model_dir}/chat_template.jinja",
    }
    if base is None:
        env["SM_VLLM_MODEL"] = model_dir
    else:
        env.update(
            {
                "SM_VLLM_MODEL": base,
                "SM_VLLM_ENABLE_LORA": "true",
                "SM_VLLM_LORA_MODULES": f"{served_name}={model_dir}",
                "SM_VLLM_MAX_LORA_RANK": str(lora_rank or 16),
            }
        )
    if cfg.deploy.max_model_len:
        env["SM_VLLM_MAX_MODEL_LEN"] = str(cfg.deploy.max_model_len)
    return env


def endpoint_name(name: str) -> str:
    """A name SageMaker accepts (letters, digits and '-', at most 63)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", name)[:63].strip("-")


def send(client, calls: list[tuple[str, dict]], what: str) -> None:
    """Send each (operation, request) in order; the first AWS error stops with one clear message."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for op, req in calls:
            getattr(client, op)(**req)
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, what) from None


def data_capture_config(s3_uri: str, percent: int = 100) -> dict:
    """The endpoint config's DataCaptureConfig: requests and responses (JSON as text) to `s3_uri`."""
    if not s3_uri.startswith("s3://") or len(s3_uri) <= len("s3://"):
        raise GenaiError(f"--capture: '{s3_uri}' is not an s3:// URI", hint="e.g. --capture s3://my-bucket/capture/")
    if not 0 < percent <= 100:
        raise GenaiError(f"--capture-percent: {percent} is not between 1 and 100")
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": s3_uri,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }


def endpoint_calls(
    cfg: SageMakerSection, ep: str, container: dict, capture: dict | None = None
) -> list[tuple[str, dict]]:
    """create_model (one container) -> create_endpoint_config -> create_endpoint, all named `ep`;
    `capture`: the endpoint config's DataCaptureConfig."""
    model_req = {
        "ModelName": ep,
        "ExecutionRoleArn": cfg.role,
        "PrimaryContainer": container,
        "Tags": [{"Key": k, "Value": v} for k, v in cfg.tags.items()],
    }
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": ep,
        "InstanceType": cfg.deploy.instance_type,
        "InitialInstanceCount": cfg.deploy.instance_count,
        "ContainerStartupHealthCheckTimeoutInSeconds": 1800,
    }
    if cfg.deploy.inference_ami_version:
        variant["InferenceAmiVersion"] = cfg.deploy.inference_ami_version
    config_req = {"EndpointConfigName": ep, "ProductionVariants": [variant]}
    if capture:
        config_req["DataCaptureConfig"] = capture
    endpoint_req = {"EndpointName": ep, "EndpointConfigName": ep}
    return [("create_model", model_req), ("create_endpoint_config", config_req), ("create_endpoint", endpoint_req)]


def deploy(
    client,
    cfg: SageMakerSection,
    *,
    model_s3: str,
    name: str,
    image: str,
    env: dict,
    dry_run: bool = False,
    capture: dict | None = None,
) -> dict:
    """create_model -> create_endpoint_config -> create_endpoint (none on a dry run); returns the three requests."""
    container = {
        "Image": image,
        "Environment": env,
        "ModelDataSource": {
            "S3DataSource": {
                "S3Uri": model_s3.rstrip("/") + "/",
                "S3DataType": "S3Prefix",
                "CompressionType": "None",
            }
        },
    }
    calls = endpoint_calls(cfg, endpoint_name(cfg.deploy.endpoint_name or name), container, capture)
    if not dry_run:
        send(client, calls, "sagemaker deploy")
    return dict(zip(("model", "endpoint_config", "endpoint"), (req for _, req in calls), strict=True))


def cloudwatch(endpoint: str, region: str, components: list[str] | tuple[str, ...] = ()) -> dict:
    """Where the endpoint's CloudWatch metrics and logs are (printed by `genai sagemaker deploy`):
    invocation metrics under AWS/SageMaker by endpoint and variant (by component too, with
    inference components), a console link to them, and the containers' log groups."""
    host = {"cn-": "console.amazonaws.cn", "us-gov-": "console.amazonaws-us-gov.com"}
    domain = next((h for p, h in host.items() if region.startswith(p)), f"{region}.console.aws.amazon.com")
    out = {
        "namespace": "AWS/SageMaker",
        "dimensions": {"EndpointName": endpoint, "VariantName": "AllTraffic"},
        "metrics": ["Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency", "OverheadLatency"],
        "console_url": f"https://{domain}/cloudwatch/home?region={region}#metricsV2:graph=~();search={endpoint};"
        "namespace=AWS/SageMaker;dimensions=EndpointName,VariantName",
        "log_group": f"/aws/sagemaker/Endpoints/{endpoint}",
    }
    if components:  # each component's container logs to a group of its own
        out["component_dimensions"] = [{"InferenceComponentName": c} for c in components]
        out["component_log_groups"] = [f"/aws/sagemaker/InferenceComponents/{c}" for c in components]
    return out


def invoke(runtime, endpoint: str, body: dict, component: str | None = None) -> dict:
    """Send an OpenAI-style request (chat if it has messages) to the endpoint, or to one of its
    inference components (an adapter by name)."""
    from botocore.exceptions import BotoCoreError, ClientError

    extra = {"InferenceComponentName": component} if component else {}
    try:
        resp = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(body).encode(),
            **extra,
        )
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, "sagemaker invoke") from None
    payload = resp["Body"].read()
    try:
        return json.loads(payload)
    except json.JSONDecodeError:
        raise GenaiError(f"sagemaker invoke: the endpoint answered non-JSON: {payload[:200]!r}") from None
