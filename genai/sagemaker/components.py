"""`genai sagemaker deploy RUN1 RUN2 ... --components`: many fine-tunes, one endpoint.

The base model is deployed once, as an inference component named <endpoint>-base running the AWS
vLLM container with runtime LoRA loading on; every run's adapter becomes an adapter inference
component (Specification.BaseInferenceComponentName + Container.ArtifactUrl, a tar.gz), invoked by
its name (`genai sagemaker invoke ENDPOINT PROMPT --adapter NAME`). An endpoint that already
exists only gets the new adapter components.

Request shapes follow aws/model-hosting-container-standards docs/sagemaker/05_lora_adapter_management.md
(endpoint config with ExecutionRoleArn and a variant without ModelName, base component with
ComputeResourceRequirements, adapter components with BaseInferenceComponentName, the adapter
packaged as tar.gz, VLLM_ALLOW_RUNTIME_LORA_UPDATING) and the SageMaker API reference
(InferenceComponentContainerSpecification.ArtifactUrl: "a single gzip compressed tar archive").
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import SageMakerSection, load_recipe
from genai.runs import RECIPE_FILE
from genai.sagemaker.deploy import cloudwatch, container_env, endpoint_name, send
from genai.sagemaker.session import aws_error
from genai.serving.lora_check import vllm_lora_problems, vllm_rank

VARIANT = "AllTraffic"
STARTUP_S = 1800  # download + start of a base model from the hub
POLL_S = 30.0
WAIT_S = 3600.0
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class Adapter:
    """One run's LoRA adapter, to become the inference component `name`."""

    run: Path
    name: str
    base: str
    rank: int

    @property
    def folder(self) -> Path:
        """The run's adapter/ folder."""
        return self.run / "adapter"


def _adapter(run: Path) -> Adapter:
    """A run folder as an adapter for vLLM; a clear error naming the run otherwise."""
    if not (run / RECIPE_FILE).exists():
        raise GenaiError(
            f"{run}: not a run folder (no {RECIPE_FILE}); --components deploys local LoRA runs",
            hint="for a training job: genai sagemaker download JOB --out runs/x/JOB, then deploy that folder",
        )
    recipe = load_recipe(run / RECIPE_FILE)
    config = run / "adapter" / "adapter_config.json"
    if not recipe.lora.enabled or not config.exists():
        raise GenaiError(
            f"{run}: not a LoRA run (no adapter/adapter_config.json); --components serves adapters on a shared base",
            hint=f"deploy it on its own endpoint: genai sagemaker deploy {run}",
        )
    cfg = json.loads(config.read_text())
    base = cfg.get("base_model_name_or_path") or recipe.model.name_or_path
    if base.startswith(("/", ".", "genai/")):
        raise GenaiError(
            f"{run}: the adapter's base model '{base}' is local; the endpoint downloads the base from the hub",
            hint=f"deploy the merged model on its own endpoint: genai sagemaker deploy {run}",
        )
    problems = vllm_lora_problems(cfg)
    if problems:
        raise GenaiError(
            f"{run}: vLLM cannot load this adapter: {'; '.join(problems)}",
            hint=f"deploy the merged model on its own endpoint: genai sagemaker deploy {run}",
        )
    return Adapter(run=run, name=endpoint_name(f"{recipe.name}-{run.name}"), base=base, rank=vllm_rank(cfg))


def read_adapters(runs: list[Path]) -> list[Adapter]:
    """Every run's adapter; all must share one base model (and its chat template) and have distinct names."""
    adapters = [_adapter(r) for r in runs]
    first = adapters[0]
    template = first.folder / "chat_template.jinja"
    for a in adapters[1:]:
        if a.base != first.base:
            raise GenaiError(
                f"{a.run}: its base model is {a.base}, not {first.base} (of {first.run}); one endpoint serves one base",
                hint="deploy each base model's adapters with their own command (and endpoint)",
            )
        other = a.folder / "chat_template.jinja"
        if template.exists() and other.exists() and other.read_bytes() != template.read_bytes():
            raise GenaiError(
                f"{a.run}: its chat template differs from {first.run}'s; the adapters share the base's template",
                hint="deploy it on its own endpoint: genai sagemaker deploy RUN",
            )
    names = [a.name for a in adapters]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise GenaiError(f"sagemaker deploy --components: a run is given twice ({', '.join(twice)})")
    return adapters


def base_env(cfg: SageMakerSection, adapters: list[Adapter]) -> dict:
    """SM_VLLM_* of the base component: the hub base with runtime LoRA loading (SageMaker registers
    each adapter component with the container); chat template and EOS from /opt/ml/model."""
    env = container_env(
        cfg, base=adapters[0].base, lora_rank=max(a.rank for a in adapters), served_name=adapters[0].base
    )
    env.pop("SM_VLLM_LORA_MODULES")  # no adapter at start: each one arrives as its own component
    env["SM_VLLM_MAX_LORAS"] = str(max(4, len(adapters)))  # adapters in one batch; more swap in from CPU
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    return env


@dataclass(frozen=True)
class Layout:
    """Names and S3 places of one endpoint's components."""

    endpoint: str
    s3_root: str

    @property
    def base(self) -> str:
        """The base component (and its model)."""
        return endpoint_name(f"{self.endpoint[:58]}-base")

    @property
    def base_s3(self) -> str:
        """The base's chat template and generation config, mounted at /opt/ml/model."""
        return f"{self.s3_root}/base/"

    def artifact(self, adapter: Adapter) -> str:
        """Where an adapter's tar.gz goes."""
        return f"{self.s3_root}/{adapter.name}/adapter.tar.gz"


def layout(cfg: SageMakerSection, adapters: list[Adapter]) -> Layout:
    """One endpoint per base model by default (so later adapters of that base join it)."""
    ep = endpoint_name(cfg.deploy.endpoint_name or f"genai-{adapters[0].base.rsplit('/', 1)[-1]}")
    return Layout(endpoint=ep, s3_root=f"s3://{cfg.bucket}/{cfg.prefix.strip('/')}/components/{ep}")


def base_endpoint_calls(cfg: SageMakerSection, lay: Layout, image: str, env: dict) -> list[tuple[str, dict]]:
    """The base model, an endpoint config for inference components (role on the config, variant
    without a model) and the endpoint."""
    tags = [{"Key": k, "Value": v} for k, v in cfg.tags.items()]
    model = {
        "ModelName": lay.base,
        "ExecutionRoleArn": cfg.role,
        "PrimaryContainer": {
            "Image": image,
            "Environment": env,
            "ModelDataSource": {
                "S3DataSource": {"S3Uri": lay.base_s3, "S3DataType": "S3Prefix", "CompressionType": "None"}
            },
        },
        "Tags": tags,
    }
    variant = {
        "VariantName": VARIANT,
        "InstanceType": cfg.deploy.instance_type,
        "InitialInstanceCount": cfg.deploy.instance_count,
        "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
    }
    if cfg.deploy.inference_ami_version:
        variant["InferenceAmiVersion"] = cfg.deploy.inference_ami_version
    config = {
        "EndpointConfigName": lay.endpoint,
        "ExecutionRoleArn": cfg.role,
        "ProductionVariants": [variant],
        "Tags": tags,
    }
    endpoint = {"EndpointName": lay.endpoint, "EndpointConfigName": lay.endpoint, "Tags": tags}
    return [("create_model", model), ("create_endpoint_config", config), ("create_endpoint", endpoint)]


def base_component_call(cfg: SageMakerSection, lay: Layout) -> tuple[str, dict]:
    """The base component: the model, its GPUs and memory, one copy."""
    return "create_inference_component", {
        "InferenceComponentName": lay.base,
        "EndpointName": lay.endpoint,
        "VariantName": VARIANT,
        "Specification": {
            "ModelName": lay.base,
            "StartupParameters": {
                "ModelDataDownloadTimeoutInSeconds": STARTUP_S,
                "ContainerStartupHealthCheckTimeoutInSeconds": STARTUP_S,
            },
            "ComputeResourceRequirements": {
                "NumberOfAcceleratorDevicesRequired": cfg.deploy.accelerators,
                "MinMemoryRequiredInMb": cfg.deploy.min_memory_mb,
            },
        },
        "RuntimeConfig": {"CopyCount": 1},
        "Tags": [{"Key": k, "Value": v} for k, v in cfg.tags.items()],
    }


def adapter_call(cfg: SageMakerSection, lay: Layout, adapter: Adapter) -> tuple[str, dict]:
    """An adapter component: no compute of its own, the base's; the adapter's tar.gz."""
    return "create_inference_component", {
        "InferenceComponentName": adapter.name,
        "EndpointName": lay.endpoint,
        "Specification": {
            "BaseInferenceComponentName": lay.base,
            "Container": {"ArtifactUrl": lay.artifact(adapter)},
        },
        "Tags": [{"Key": k, "Value": v} for k, v in cfg.tags.items()],
    }


def _describe(fn, what: str, **kwargs) -> dict | None:
    """A describe_* answer, or None where the resource does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        if err.get("Code") == "ValidationException" and "could not find" in err.get("Message", "").lower():
            return None
        raise aws_error(exc, what) from None
    except BotoCoreError as exc:
        raise aws_error(exc, what) from None


def existing_base(client, lay: Layout, adapters: list[Adapter]) -> bool:
    """Whether the endpoint already exists (then its base component must serve these adapters' base,
    with a LoRA rank that fits them); False: it is created."""
    what = "sagemaker deploy --components"
    if _describe(client.describe_endpoint, what, EndpointName=lay.endpoint) is None:
        return False
    ic = _describe(client.describe_inference_component, what, InferenceComponentName=lay.base)
    if ic is None:
        raise GenaiError(
            f"{what}: endpoint {lay.endpoint} exists but has no base component {lay.base}",
            hint="name a new endpoint: sagemaker.deploy.endpoint_name=NAME",
        )
    model = _describe(client.describe_model, what, ModelName=ic.get("Specification", {}).get("ModelName", lay.base))
    env = (model or {}).get("PrimaryContainer", {}).get("Environment", {})
    need = max(a.rank for a in adapters)
    if env.get("SM_VLLM_MODEL") != adapters[0].base:
        raise GenaiError(
            f"{what}: endpoint {lay.endpoint} serves {env.get('SM_VLLM_MODEL')}, "
            f"these adapters need {adapters[0].base}",
            hint="name a new endpoint: sagemaker.deploy.endpoint_name=NAME",
        )
    if int(env.get("SM_VLLM_MAX_LORA_RANK", 0)) < need:
        raise GenaiError(
            f"{what}: endpoint {lay.endpoint} takes LoRA rank up to {env.get('SM_VLLM_MAX_LORA_RANK')}, "
            f"an adapter needs {need}",
            hint="name a new endpoint: sagemaker.deploy.endpoint_name=NAME",
        )
    return True


def wait_in_service(describe, key: str, what: str, **kwargs):
    """Poll until InService: the base component needs its endpoint, the adapters their base."""
    import sys

    timeout_s = WAIT_S
    deadline = time.monotonic() + timeout_s
    while True:
        d = _describe(describe, "sagemaker deploy --components", **kwargs) or {}
        status = d.get(key)
        if status == "InService":
            return
        if status == "Failed" or not d:
            raise GenaiError(f"sagemaker deploy --components: {what} failed: {d.get('FailureReason', 'not found')}")
        if time.monotonic() > deadline:
            raise GenaiError(f"sagemaker deploy --components: {what} still {status} after {timeout_s:.0f} s")
        print(f"waiting: {what} is {status}", file=sys.stderr, flush=True)
        time.sleep(POLL_S)


def upload_plan(lay: Layout, adapters: list[Adapter], *, with_base: bool) -> list[tuple[Path, str]]:
    """(local, s3 uri): the base's serving files (chat template, generation config, tokenizer) from the
    first adapter folder, and each adapter folder as one tar.gz."""
    files = []
    if with_base:
        folder = adapters[0].folder
        files = [
            (f, lay.base_s3 + f.name) for f in sorted(folder.iterdir()) if f.is_file() and f.name not in ADAPTER_FILES
        ]
    return files + [(a.folder, lay.artifact(a)) for a in adapters]


def upload(s3, files: list[tuple[Path, str]]) -> None:
    """Upload the plan; a folder goes as a tar.gz of its files (at the archive's root)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    with tempfile.TemporaryDirectory() as tmp:
        for local, uri in files:
            bucket, _, key = uri[len("s3://") :].partition("/")
            path = local
            if local.is_dir():
                path = Path(tmp) / "adapter.tar.gz"
                with tarfile.open(path, "w:gz") as tar:
                    for f in sorted(p for p in local.rglob("*") if p.is_file()):
                        tar.add(f, arcname=str(f.relative_to(local)))
            try:
                s3.upload_file(str(path), bucket, key)
            except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
                raise aws_error(exc, f"sagemaker deploy: upload to {uri}") from None


def deploy_components(sm, s3, cfg: SageMakerSection, adapters: list[Adapter], *, image: str, dry_run: bool) -> dict:
    """Base model + endpoint + base component (unless the endpoint exists), then one component per
    adapter. A dry run sends nothing, not even the lookups, and uploads nothing."""
    what = "sagemaker deploy --components"
    lay = layout(cfg, adapters)
    joined = False if dry_run else existing_base(sm, lay, adapters)
    first = (
        []
        if joined
        else [*base_endpoint_calls(cfg, lay, image, base_env(cfg, adapters)), base_component_call(cfg, lay)]
    )
    adapter_calls = [adapter_call(cfg, lay, a) for a in adapters]
    files = upload_plan(lay, adapters, with_base=not joined)
    if not dry_run:
        upload(s3, files)
        if first:
            send(sm, first[:3], what)
            wait_in_service(
                sm.describe_endpoint, "EndpointStatus", f"endpoint {lay.endpoint}", EndpointName=lay.endpoint
            )
            send(sm, first[3:], what)
        wait_in_service(
            sm.describe_inference_component,
            "InferenceComponentStatus",
            f"base component {lay.base}",
            InferenceComponentName=lay.base,
        )
        send(sm, adapter_calls, what)
    return {
        "endpoint": lay.endpoint,
        "base_model": adapters[0].base,
        "base_component": lay.base,
        "adapters": {a.name: {"run": str(a.run), "artifact": lay.artifact(a)} for a in adapters},
        "new_endpoint": not joined,
        "dry_run": dry_run,
        "lookups": [
            {"call": "describe_endpoint", "request": {"EndpointName": lay.endpoint}},
            {"call": "describe_inference_component", "request": {"InferenceComponentName": lay.base}},
            {"call": "describe_model", "request": {"ModelName": lay.base}},
        ],
        "uploads": [{"from": str(p), "to": uri} for p, uri in files],
        "requests": [{"call": op, "request": req} for op, req in first + adapter_calls],
        "cloudwatch": cloudwatch(lay.endpoint, sm.meta.region_name, [lay.base, *(a.name for a in adapters)]),
    } | ({"note": "sent nothing; if the endpoint exists, only the adapter components are created"} if dry_run else {})
