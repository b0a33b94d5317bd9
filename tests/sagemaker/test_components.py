"""`genai sagemaker deploy` of many LoRA runs as inference components of one endpoint (Stubber: moto
has no inference components; S3 uploads against moto), of a model package by ARN or the newest
Approved one in a group (moto), and `invoke --adapter`. Every request is compared field by field."""

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from genai.sagemaker import commands, components
from tests.sagemaker.conftest import ROLE

pytestmark = pytest.mark.sagemaker

BASE = "Qwen/Qwen2.5-0.5B-Instruct"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm:test"
EP = "genai-Qwen2-5-0-5B-Instruct"
BASE_IC = f"{EP}-base"
S3_ROOT = f"s3://genai-test/genai/components/{EP}"
TAGS = [{"Key": "team", "Value": "ml"}, {"Key": "project", "Value": "genai"}]
ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors", "chat_template.jinja", "generation_config.json"}


def make_run(sm_recipe: Path, root: Path, recipe: str, run: str, *, base=BASE, rank=16, lora=True) -> Path:
    """A finished run folder: its recipe, and adapter/ (or, full fine-tune, model/)."""
    path = root / recipe / run
    text = Path(sm_recipe).read_text().replace("name: smtest", f"name: {recipe}").replace(BASE, base)
    if not lora:
        text += "lora: {enabled: false}\n"
    folder = path / ("adapter" if lora else "model")
    folder.mkdir(parents=True)
    (path / "recipe.yaml").write_text(text)
    (path / "manifest.json").write_text(json.dumps({"run_id": run}))
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [2]}))
    if lora:
        cfg = {"peft_type": "LORA", "r": rank, "base_model_name_or_path": base, "target_modules": ["q_proj"]}
        (folder / "adapter_config.json").write_text(json.dumps(cfg))
        (folder / "adapter_model.safetensors").write_bytes(b"weights-" + run.encode())
    else:
        (folder / "config.json").write_text("{}")
    return path


@pytest.fixture()
def two_runs(sm_recipe, tmp_path) -> list[Path]:
    root = tmp_path / "runs"
    return [make_run(sm_recipe, root, "math", "r1", rank=16), make_run(sm_recipe, root, "chat", "r2", rank=32)]


class FakeSession:
    """boto_session() for commands: the SageMaker client is stubbed, S3 is moto."""

    region_name = "us-east-1"

    def __init__(self, sm):
        self.sm = sm

    def client(self, name):
        return self.sm if name == "sagemaker" else boto3.client(name, region_name="us-east-1")


@pytest.fixture()
def stubbed(monkeypatch, moto_server):
    """A stubbed SageMaker client behind `genai sagemaker deploy`, and moto's S3 with the bucket."""
    sm = boto3.client("sagemaker", region_name="us-east-1")
    monkeypatch.setattr(commands, "boto_session", lambda cfg: FakeSession(sm))
    monkeypatch.setattr(components, "POLL_S", 0.0)
    boto3.client("s3").create_bucket(Bucket="genai-test")
    with Stubber(sm) as stub:
        yield stub
        stub.assert_no_pending_responses()


def s3_keys() -> set[str]:
    return {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="genai-test").get("Contents", [])}


def endpoint_answer(status: str) -> dict:
    now = datetime.now(UTC)
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{EP.lower()}"
    return {
        "EndpointName": EP,
        "EndpointArn": arn,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }


def component_answer(status: str, spec: dict | None = None) -> dict:
    now = datetime.now(UTC)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:inference-component/"
    return {
        "InferenceComponentName": BASE_IC,
        "InferenceComponentArn": arn + BASE_IC.lower(),
        "EndpointName": EP,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{EP.lower()}",
        "InferenceComponentStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
        **({"Specification": spec} if spec else {}),
    }


def adapter_request(name: str) -> dict:
    return {
        "InferenceComponentName": name,
        "EndpointName": EP,
        "Specification": {
            "BaseInferenceComponentName": BASE_IC,
            "Container": {"ArtifactUrl": f"{S3_ROOT}/{name}/adapter.tar.gz"},
        },
        "Tags": TAGS,
    }


BASE_ENV = {
    "SM_VLLM_SERVED_MODEL_NAME": BASE,
    "SM_VLLM_GENERATION_CONFIG": "/opt/ml/model",
    "SM_VLLM_CHAT_TEMPLATE": "/opt/ml/model/chat_template.jinja",
    "SM_VLLM_MODEL": BASE,
    "SM_VLLM_ENABLE_LORA": "true",
    "SM_VLLM_MAX_LORA_RANK": "32",  # the larger of the two adapters' ranks
    "SM_VLLM_MAX_LORAS": "4",
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
}
NEW_ENDPOINT_REQUESTS = [
    (
        "create_model",
        {
            "ModelName": BASE_IC,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": IMAGE,
                "Environment": BASE_ENV,
                "ModelDataSource": {
                    "S3DataSource": {"S3Uri": f"{S3_ROOT}/base/", "S3DataType": "S3Prefix", "CompressionType": "None"}
                },
            },
            "Tags": TAGS,
        },
    ),
    (
        "create_endpoint_config",
        {
            "EndpointConfigName": EP,
            "ExecutionRoleArn": ROLE,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "InstanceType": "ml.g6e.2xlarge",
                    "InitialInstanceCount": 1,
                    "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
                    "InferenceAmiVersion": "al2-ami-sagemaker-inference-gpu-3-1",
                }
            ],
            "Tags": TAGS,
        },
    ),
    ("create_endpoint", {"EndpointName": EP, "EndpointConfigName": EP, "Tags": TAGS}),
]
BASE_COMPONENT_REQUEST = {
    "InferenceComponentName": BASE_IC,
    "EndpointName": EP,
    "VariantName": "AllTraffic",
    "Specification": {
        "ModelName": BASE_IC,
        "StartupParameters": {
            "ModelDataDownloadTimeoutInSeconds": 1800,
            "ContainerStartupHealthCheckTimeoutInSeconds": 1800,
        },
        "ComputeResourceRequirements": {"NumberOfAcceleratorDevicesRequired": 2, "MinMemoryRequiredInMb": 8192},
    },
    "RuntimeConfig": {"CopyCount": 1},
    "Tags": TAGS,
}
OVERRIDES = (
    f"sagemaker.deploy.image={IMAGE}",
    "sagemaker.deploy.instance_type=ml.g6e.2xlarge",
    "sagemaker.deploy.accelerators=2",
    "sagemaker.deploy.min_memory_mb=8192",
)
IC_ARN = "arn:aws:sagemaker:us-east-1:123456789012:inference-component/x"


def cloudwatch_of(ep: str, components: list[str] | None = None) -> dict:
    """What deploy prints about the endpoint's CloudWatch metrics and logs (region us-east-1)."""
    out = {
        "namespace": "AWS/SageMaker",
        "dimensions": {"EndpointName": ep, "VariantName": "AllTraffic"},
        "metrics": ["Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency", "OverheadLatency"],
        "console_url": "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        f"#metricsV2:graph=~();search={ep};namespace=AWS/SageMaker;dimensions=EndpointName,VariantName",
        "log_group": f"/aws/sagemaker/Endpoints/{ep}",
    }
    if components:
        out["component_dimensions"] = [{"InferenceComponentName": c} for c in components]
        out["component_log_groups"] = [f"/aws/sagemaker/InferenceComponents/{c}" for c in components]
    return out


NOT_FOUND = 'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x".'


def test_two_adapters_on_a_new_endpoint(stubbed, two_runs, genai_main):
    stubbed.add_client_error(
        "describe_endpoint", "ValidationException", NOT_FOUND, expected_params={"EndpointName": EP}
    )
    for op, req in NEW_ENDPOINT_REQUESTS:
        arn_key = f"{op[len('create_') :].title().replace('_', '')}Arn"  # ModelArn, EndpointConfigArn, EndpointArn
        stubbed.add_response(op, {arn_key: f"arn:aws:sagemaker:us-east-1:123456789012:{op}"}, req)
    stubbed.add_response("describe_endpoint", endpoint_answer("Creating"), {"EndpointName": EP})
    stubbed.add_response("describe_endpoint", endpoint_answer("InService"), {"EndpointName": EP})
    stubbed.add_response("create_inference_component", {"InferenceComponentArn": IC_ARN}, BASE_COMPONENT_REQUEST)
    stubbed.add_response(
        "describe_inference_component", component_answer("InService"), {"InferenceComponentName": BASE_IC}
    )
    for name in ("math-r1", "chat-r2"):
        stubbed.add_response("create_inference_component", {"InferenceComponentArn": IC_ARN}, adapter_request(name))

    code, out, err = genai_main("sagemaker", "deploy", *two_runs, "--components", *OVERRIDES)
    assert code == 0, err
    res = json.loads(out)
    assert res["endpoint"] == EP and res["new_endpoint"] is True and set(res["adapters"]) == {"math-r1", "chat-r2"}
    assert res["cloudwatch"] == cloudwatch_of(EP, [BASE_IC, "math-r1", "chat-r2"])
    assert "waiting: endpoint" in err  # polled until InService before the base component
    prefix = f"genai/components/{EP}"
    # The base gets the serving files only; each adapter travels whole as one tar.gz.
    assert s3_keys() == {
        f"{prefix}/base/chat_template.jinja",
        f"{prefix}/base/generation_config.json",
        f"{prefix}/math-r1/adapter.tar.gz",
        f"{prefix}/chat-r2/adapter.tar.gz",
    }
    body = boto3.client("s3").get_object(Bucket="genai-test", Key=f"{prefix}/chat-r2/adapter.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert set(tar.getnames()) == ADAPTER_FILES
        assert tar.extractfile("adapter_model.safetensors").read() == b"weights-r2"


def test_an_adapter_joins_an_existing_endpoint(stubbed, sm_recipe, tmp_path, genai_main):
    run = make_run(sm_recipe, tmp_path / "runs", "sql", "r3", rank=8)
    stubbed.add_response("describe_endpoint", endpoint_answer("InService"), {"EndpointName": EP})
    stubbed.add_response(
        "describe_inference_component",
        component_answer("InService", {"ModelName": BASE_IC}),
        {"InferenceComponentName": BASE_IC},
    )
    now = datetime.now(UTC)
    model = {
        "ModelName": BASE_IC,
        "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x",
        "CreationTime": now,
        "PrimaryContainer": {"Image": IMAGE, "Environment": {"SM_VLLM_MODEL": BASE, "SM_VLLM_MAX_LORA_RANK": "16"}},
    }
    stubbed.add_response("describe_model", model, {"ModelName": BASE_IC})
    stubbed.add_response(
        "describe_inference_component", component_answer("InService"), {"InferenceComponentName": BASE_IC}
    )
    stubbed.add_response("create_inference_component", {"InferenceComponentArn": IC_ARN}, adapter_request("sql-r3"))

    code, out, err = genai_main("sagemaker", "deploy", run, "--components", *OVERRIDES)
    assert code == 0, err
    res = json.loads(out)
    assert res["new_endpoint"] is False and [r["call"] for r in res["requests"]] == ["create_inference_component"]
    assert s3_keys() == {f"genai/components/{EP}/sql-r3/adapter.tar.gz"}  # the base's files are there already


@pytest.mark.parametrize(
    "served,rank,message",
    [("meta-llama/Llama-3.2-1B", "64", "serves meta-llama/Llama-3.2-1B"), (BASE, "8", "LoRA rank up to 8")],
)
def test_an_existing_endpoint_that_cannot_take_the_adapter(stubbed, two_runs, genai_main, served, rank, message):
    stubbed.add_response("describe_endpoint", endpoint_answer("InService"), {"EndpointName": EP})
    stubbed.add_response(
        "describe_inference_component",
        component_answer("InService", {"ModelName": BASE_IC}),
        {"InferenceComponentName": BASE_IC},
    )
    model = {
        "ModelName": BASE_IC,
        "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x",
        "CreationTime": datetime.now(UTC),
        "PrimaryContainer": {"Image": IMAGE, "Environment": {"SM_VLLM_MODEL": served, "SM_VLLM_MAX_LORA_RANK": rank}},
    }
    stubbed.add_response("describe_model", model, {"ModelName": BASE_IC})
    code, _, err = genai_main("sagemaker", "deploy", *two_runs, "--components", *OVERRIDES)
    assert code == 2 and message in err and "Traceback" not in err
    assert s3_keys() == set()  # nothing uploaded, nothing created (the stub would fail any other call)


def moto_is_empty() -> bool:
    sm = boto3.client("sagemaker")
    s3 = boto3.client("s3")
    objects = [
        o for b in s3.list_buckets()["Buckets"] for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])
    ]
    return not sm.list_models()["Models"] and not sm.list_endpoints()["Endpoints"] and not objects


def test_dry_run_prints_every_request_and_sends_nothing(moto_server, two_runs, genai_main):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    code, out, err = genai_main("sagemaker", "deploy", *two_runs, "--components", "--dry-run", *OVERRIDES)
    assert code == 0, err
    res = json.loads(out)
    expected = [*NEW_ENDPOINT_REQUESTS, ("create_inference_component", BASE_COMPONENT_REQUEST)]
    expected += [("create_inference_component", adapter_request(n)) for n in ("math-r1", "chat-r2")]
    assert [(r["call"], r["request"]) for r in res["requests"]] == expected
    assert [u["to"] for u in res["uploads"]] == [
        f"{S3_ROOT}/base/chat_template.jinja",
        f"{S3_ROOT}/base/generation_config.json",
        f"{S3_ROOT}/math-r1/adapter.tar.gz",
        f"{S3_ROOT}/chat-r2/adapter.tar.gz",
    ]
    assert res["dry_run"] is True and moto_is_empty()
    assert res["cloudwatch"] == cloudwatch_of(EP, [BASE_IC, "math-r1", "chat-r2"])


@pytest.mark.parametrize(
    "bad,message",
    [
        (dict(base="meta-llama/Llama-3.2-1B"), "its base model is meta-llama/Llama-3.2-1B, not " + BASE),
        (dict(lora=False), "not a LoRA run"),
        (dict(base="genai/tiny-llama"), "is local"),
    ],
)
def test_runs_that_cannot_share_the_endpoint(moto_server, sm_recipe, two_runs, tmp_path, genai_main, bad, message):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    odd = make_run(sm_recipe, tmp_path / "runs", "odd", "r9", **bad)
    code, _, err = genai_main("sagemaker", "deploy", *two_runs, odd, "--components", *OVERRIDES)
    assert code == 2 and message in err and str(odd) in err and "Traceback" not in err
    assert moto_is_empty()


def test_several_runs_need_components(moto_server, two_runs, genai_main):
    code, _, err = genai_main("sagemaker", "deploy", *two_runs, *OVERRIDES)
    assert code == 2 and "--components" in err and moto_is_empty()


def test_single_run_dry_run_neither_merges_nor_uploads(moto_server, two_runs, genai_main):
    code, out, err = genai_main("sagemaker", "deploy", two_runs[0], "--dry-run", f"sagemaker.deploy.image={IMAGE}")
    assert code == 0, err
    res = json.loads(out)
    assert res["model_s3"] == "s3://genai-test/genai/deploy/r1/merged/" and res["dry_run"] is True
    container = res["requests"]["model"]["PrimaryContainer"]
    assert container["Image"] == IMAGE and container["Environment"]["SM_VLLM_MODEL"] == "/opt/ml/model"
    assert not (two_runs[0] / "merged").exists() and moto_is_empty()
    assert res["cloudwatch"] == cloudwatch_of(res["endpoint"]) and res["endpoint"] == "genai-math"


# ---------------------------------------------------------------------------- model packages


def register(sm, group: str, statuses: list[str]) -> list[str]:
    sm.create_model_package_group(ModelPackageGroupName=group)
    spec = {
        "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://genai-test/pkg/model.tar.gz"}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    return [
        sm.create_model_package(ModelPackageGroupName=group, ModelApprovalStatus=s, InferenceSpecification=spec)[
            "ModelPackageArn"
        ]
        for s in statuses
    ]


def assert_endpoint_for_package(ep: str, arn: str) -> None:
    sm = boto3.client("sagemaker")
    model = sm.describe_model(ModelName=ep)
    assert model["PrimaryContainer"] == {"ModelPackageName": arn} and model["ExecutionRoleArn"] == ROLE
    variant = sm.describe_endpoint_config(EndpointConfigName=ep)["ProductionVariants"][0]
    assert variant["ModelName"] == ep and variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["InitialInstanceCount"] == 1 and variant["VariantName"] == "AllTraffic"
    assert sm.describe_endpoint(EndpointName=ep)["EndpointConfigName"] == ep


def test_deploy_the_newest_approved_package_of_a_group(moto_server, sm_recipe, genai_main):
    arns = register(boto3.client("sagemaker"), "math-sft", ["Approved", "Approved", "PendingManualApproval"])
    args = (
        "sagemaker",
        "deploy",
        "--package-group",
        "math-sft",
        "--recipe",
        sm_recipe,
        "--instance-type",
        "ml.g4dn.xlarge",
    )
    code, out, err = genai_main(*args)
    assert code == 0, err
    res = json.loads(out)
    assert res["model_package"] == arns[1] and res["approval"] == "Approved"  # v3 is not approved
    assert res["endpoint"] == "genai-math-sft-2"
    assert res["cloudwatch"] == cloudwatch_of("genai-math-sft-2")
    assert_endpoint_for_package("genai-math-sft-2", arns[1])
    assert res["requests"]["model"] == {
        "ModelName": "genai-math-sft-2",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"ModelPackageName": arns[1]},
        "Tags": TAGS,
    }


def test_deploy_a_package_by_arn(moto_server, sm_recipe, genai_main):
    arns = register(boto3.client("sagemaker"), "chat-sft", ["Approved", "Approved"])
    code, out, err = genai_main(
        "sagemaker", "deploy", arns[0], "sagemaker.deploy.endpoint_name=chat-v1", "--recipe", sm_recipe,
        "--instance-type", "ml.g4dn.xlarge",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["endpoint"] == "chat-v1"
    assert_endpoint_for_package("chat-v1", arns[0])


def test_package_dry_run_sends_nothing(moto_server, sm_recipe, genai_main):
    register(boto3.client("sagemaker"), "math-sft", ["Approved"])
    code, out, err = genai_main(
        "sagemaker", "deploy", "--package-group", "math-sft", "--recipe", sm_recipe, "--dry-run"
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["lookups"] == [
        {
            "call": "list_model_packages",
            "request": {
                "ModelPackageGroupName": "math-sft",
                "ModelApprovalStatus": "Approved",
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
        }
    ]
    assert "newest Approved" in res["requests"]["model"]["PrimaryContainer"]["ModelPackageName"]
    assert not boto3.client("sagemaker").list_models()["Models"]


@pytest.mark.parametrize(
    "target,message",
    [
        ("arn:aws:sagemaker:us-east-1:123456789012:model-package/nope/1", "no such model package"),
        ("arn:aws:sagemaker:us-east-1:123456789012:model-package/rejected-sft/1", "was Rejected"),
        ("arn:aws:sagemaker:eu-west-1:123456789012:model-package/x/1", "the package is in eu-west-1"),
        ("arn:aws:s3:::bucket", "not a model package ARN"),
        ("--package-group=pending-sft", "has no Approved model package"),
        ("--package-group=no-such-group", "has no Approved model package"),
    ],
)
def test_packages_that_cannot_be_deployed(moto_server, sm_recipe, genai_main, target, message):
    sm = boto3.client("sagemaker")
    register(sm, "pending-sft", ["PendingManualApproval"])
    register(sm, "rejected-sft", ["Rejected"])
    code, _, err = genai_main("sagemaker", "deploy", target, "--recipe", sm_recipe)
    assert code == 2 and message in err and "Traceback" not in err
    assert not sm.list_models()["Models"] and not sm.list_endpoints()["Endpoints"]


# ---------------------------------------------------------------------------- invoke


def test_invoke_an_adapter_by_name(monkeypatch):
    rt = boto3.client("sagemaker-runtime", region_name="us-east-1")
    monkeypatch.setattr(commands, "clients", lambda cfg, *names: [rt])
    answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": "46"}}]}).encode()
    body = {"messages": [{"role": "user", "content": "What is 12 + 34?"}], "max_tokens": 8}
    with Stubber(rt) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(answer), len(answer)), "ContentType": "application/json"},
            {
                "EndpointName": EP,
                "InferenceComponentName": "math-r1",
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": json.dumps(body).encode(),
            },
        )
        res = commands.invoke(EP, commands.settings(None), body, adapter="math-r1")
        stub.assert_no_pending_responses()
    assert res["choices"][0]["message"]["content"] == "46"
