"""`genai register RUN --sagemaker`: a model package group and packages (moto, read back with
describe/list calls and the S3 objects), a dry run that sends nothing, and the exact requests of a
registration into an existing group (botocore Stubber)."""

import hashlib
import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from genai.errors import GenaiError
from genai.evaluation.results import build_table, check_gate
from genai.evaluation.runner import write_report
from genai.recipe import GateRule, load_recipe
from genai.registry.sm_registry import Requests, send
from genai.runs import Run

pytestmark = [
    pytest.mark.sagemaker,
    pytest.mark.skipif(not importlib.util.find_spec("mlflow"), reason="needs genai[tracking]"),
]

GATE = [GateRule(task="arith", metric="exact_match", min=0.5)]


def lm_eval_results(tuned: float) -> dict:
    """What lm-eval returns for base and fine-tuned, as genai eval keeps it."""

    def one(v: float) -> dict:
        return {"results": {"arith": {"alias": "arith", "exact_match,strip": v, "exact_match_stderr,strip": 0.05}}}

    return {"base": one(0.1), "tuned": one(tuned)}


def make_run(sm_recipe: Path, name: str, tuned: float) -> Path:
    """A finished LoRA run with a merged model and an eval table written as `genai eval` writes it."""
    recipe = load_recipe(sm_recipe, ["eval.tasks=[arith]"])
    run = Run(Path(recipe.train.output_dir) / recipe.name / name)
    run.write_recipe(recipe)
    for folder, files in {
        "merged": ["config.json", "model.safetensors", "chat_template.jinja"],
        "adapter": ["adapter_model.safetensors", "chat_template.jinja"],
    }.items():
        (run.path / folder).mkdir(parents=True)
        for f in files:
            (run.path / folder / f).write_text("{}")
    (run.path / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8}))
    run.write_manifest(
        recipe,
        status="complete",
        base_model={"name_or_path": recipe.model.name_or_path, "revision": None, "sha256": None},
        data_files={recipe.data.train[0].path: "ab" * 32},
        git_commit="0123abcd+dirty",
        artifact={"kind": "adapter", "path": "adapter", "merged": "merged"},
    )
    results = lm_eval_results(tuned)
    write_report(run.eval_dir / "hf", recipe, recipe.eval, results, build_table(results), check_gate(GATE, results))
    return run.path


def s3_objects(bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_packages_in_a_new_group_with_container_metrics_lineage_and_approval(sm_recipe, moto_server, genai_main):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    good, bad = make_run(sm_recipe, "r1", 0.75), make_run(sm_recipe, "r2", 0.25)
    code, out, err = genai_main("register", good, "--sagemaker", "sagemaker.tags={team: ml}")
    assert code == 0, err
    first = json.loads(out)
    assert first["alias"] == "champion" and first["version"] == "1"  # MLflow first, then SageMaker
    res = first["sagemaker"]
    assert res["group"] == "smtest" and res["group_created"] is True and res["approval"] == "Approved"

    sm = boto3.client("sagemaker")
    group = sm.describe_model_package_group(ModelPackageGroupName="smtest")
    assert group["ModelPackageGroupDescription"] == "genai: recipe smtest, fine-tuned from Qwen/Qwen2.5-0.5B-Instruct"
    pkg = sm.describe_model_package(ModelPackageName=res["model_package_arn"])
    assert pkg["ModelPackageGroupName"] == "smtest" and pkg["ModelPackageVersion"] == 1
    assert pkg["ModelApprovalStatus"] == "Approved" and pkg["ModelPackageDescription"] == "smtest run r1 (gate: passed)"
    spec = pkg["InferenceSpecification"]
    (container,) = spec["Containers"]
    assert "vllm" in container["Image"] and container["Image"].startswith("763104351884.dkr.ecr.us-east-1")
    assert container["ModelDataSource"] == {
        "S3DataSource": {
            "S3Uri": "s3://genai-test/genai/registry/smtest/r1/merged/",
            "S3DataType": "S3Prefix",
            "CompressionType": "None",
        }
    }
    env = container["Environment"]
    assert env["SM_VLLM_MODEL"] == "/opt/ml/model" and env["SM_VLLM_SERVED_MODEL_NAME"] == "smtest"
    assert "SM_VLLM_ENABLE_LORA" not in env
    assert spec["SupportedContentTypes"] == ["application/json"]
    assert spec["SupportedResponseMIMETypes"] == ["application/json"]
    assert spec["SupportedRealtimeInferenceInstanceTypes"] == ["ml.g5.2xlarge"]
    assert pkg["MetadataProperties"]["CommitId"] == "0123abcd+dirty"
    assert pkg["MetadataProperties"]["GeneratedBy"].startswith("genai ")
    meta = pkg["CustomerMetadataProperties"]
    assert meta["genai.run"] == "r1" and meta["genai.recipe"] == "smtest" and meta["genai.gate"] == "passed"
    assert meta["genai.base_model"] == "Qwen/Qwen2.5-0.5B-Instruct" and meta["genai.artifact"] == "adapter"
    assert meta["genai.data.0.sha256"] == "ab" * 32 and meta["genai.data.0.path"].endswith("train.jsonl")
    assert meta["genai.recipe_sha256"] == load_recipe(good / "recipe.yaml").content_hash()
    assert meta["mlflow.model_version"] == "smtest/1" and meta["genai.eval_backend"] == "hf"
    tags = [{"Key": "team", "Value": "ml"}]
    assert sm.list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"] == tags
    # moto cannot list a versioned package's tags: the request as sent says them.
    assert [c["request"].get("Tags") for c in res["requests"] if c["call"] == "create_model_package"] == [tags]

    objects = s3_objects("genai-test")
    assert {f"genai/registry/smtest/r1/merged/{f}" for f in ("config.json", "model.safetensors")} <= set(objects)
    stats = pkg["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert stats["S3Uri"] == "s3://genai-test/genai/registry/smtest/r1/evaluation.json"
    assert stats["ContentType"] == "application/json"
    body = objects["genai/registry/smtest/r1/evaluation.json"]
    assert stats["ContentDigest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    doc = json.loads(body)
    row = doc["genai_eval_metrics"]["arith/exact_match,strip"]
    assert row == {"value": 0.75, "standard_deviation": 0.05, "base": 0.1, "delta": pytest.approx(0.65)}
    assert doc["gate"]["verdict"] == "passed" and doc["gate"]["rules"][0]["passed"] is True

    # A second run whose gate failed: the same group (described, not created again), Rejected.
    code, out, err = genai_main("register", bad, "--sagemaker", "--no-mlflow")
    assert code == 0, err
    second = json.loads(out)
    assert "version" not in second and second["sagemaker"]["group_created"] is False
    assert [c["call"] for c in second["sagemaker"]["requests"]][:2] == [
        "describe_model_package_group",
        "s3.upload_file",
    ]
    pkg2 = sm.describe_model_package(ModelPackageName=second["sagemaker"]["model_package_arn"])
    assert pkg2["ModelPackageVersion"] == 2 and pkg2["ModelApprovalStatus"] == "Rejected"
    assert "mlflow.model_version" not in pkg2["CustomerMetadataProperties"]
    listed = sm.list_model_packages(ModelPackageGroupName="smtest")["ModelPackageSummaryList"]
    assert sorted(p["ModelApprovalStatus"] for p in listed) == ["Approved", "Rejected"]
    assert len(sm.list_model_package_groups()["ModelPackageGroupSummaryList"]) == 1


def test_dry_run_prints_every_request_and_sends_nothing(sm_recipe, moto_server, genai_main):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    run = make_run(sm_recipe, "r1", 0.75)
    code, out, err = genai_main(
        "register", run, "--sagemaker", "--dry-run", "sagemaker.deploy.artifact=adapter", "registry.package_group=g_1"
    )
    assert code == 0, err
    res = json.loads(out)["sagemaker"]
    assert res["dry_run"] is True and res["approval"] == "Approved"
    calls = [c["call"] for c in res["requests"]]
    assert calls == [
        "describe_model_package_group",
        "create_model_package_group",
        "s3.upload_file",
        "s3.upload_file",
        "s3.upload_file",
        "s3.put_object",
        "create_model_package",
    ]
    assert res["requests"][0]["request"] == {"ModelPackageGroupName": "g-1"}
    assert res["requests"][1]["when"] == "the group is new"
    uploads = {c["request"]["Key"] for c in res["requests"] if c["call"] == "s3.upload_file"}
    assert uploads == {
        f"genai/registry/g-1/r1/adapter/{f}"
        for f in ("adapter_config.json", "adapter_model.safetensors", "chat_template.jinja")
    }
    put = res["requests"][5]["request"]
    assert put["Key"] == "genai/registry/g-1/r1/evaluation.json" and put["ContentType"] == "application/json"
    assert put["Body"]["genai_eval_metrics"]["arith/exact_match,strip"]["value"] == 0.75
    pkg = res["requests"][6]["request"]
    env = pkg["InferenceSpecification"]["Containers"][0]["Environment"]
    assert env["SM_VLLM_MODEL"] == "Qwen/Qwen2.5-0.5B-Instruct" and env["SM_VLLM_ENABLE_LORA"] == "true"
    assert env["SM_VLLM_LORA_MODULES"] == "smtest=/opt/ml/model" and env["SM_VLLM_MAX_LORA_RANK"] == "8"
    source = pkg["InferenceSpecification"]["Containers"][0]["ModelDataSource"]["S3DataSource"]
    assert source["S3Uri"] == "s3://genai-test/genai/registry/g-1/r1/adapter/"
    assert pkg["ModelApprovalStatus"] == "Approved" and pkg["ModelPackageGroupName"] == "g-1"
    # Nothing was sent or registered.
    assert boto3.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert s3_objects("genai-test") == {}
    assert not (run.parent.parent / "mlflow.db").exists() and not (run / "tracking.json").exists()


def test_missing_settings_and_a_run_without_gate_rules(sm_recipe, moto_server, genai_main):
    run = make_run(sm_recipe, "r1", 0.75)
    code, _, err = genai_main("register", run, "--sagemaker", "--dry-run", "sagemaker.bucket=null")
    assert code == 2 and "sagemaker.bucket must be set" in err and "Traceback" not in err
    table = json.loads((run / "eval" / "hf" / "table.json").read_text())
    (run / "eval" / "hf" / "table.json").write_text(json.dumps({**table, "gate": [], "passed": True}))
    code, out, err = genai_main("register", run, "--sagemaker", "--dry-run")
    assert code == 0, err
    res = json.loads(out)["sagemaker"]
    assert res["approval"] == "PendingManualApproval"  # no gate: a person approves
    assert res["requests"][-1]["request"]["CustomerMetadataProperties"]["genai.gate"] == "none"


class FakeBoto:
    """A boto3 session whose clients are the stubbed ones."""

    def __init__(self, **clients):
        self.clients = clients

    def client(self, name):
        return self.clients[name]


def test_an_existing_group_gets_only_the_package_requests(sm_recipe):
    sm, s3 = boto3.client("sagemaker", region_name="us-east-1"), boto3.client("s3", region_name="us-east-1")
    put = {
        "Bucket": "genai-test",
        "Key": "genai/registry/g/r1/evaluation.json",
        "Body": b"{}",
        "ContentType": "application/json",
    }
    package = {
        "ModelPackageGroupName": "g",
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {"Containers": [{"Image": "img"}], "SupportedContentTypes": ["application/json"]},
    }
    reqs = Requests({"ModelPackageGroupName": "g"}, [], put, package)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/3"
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        sm_stub.add_response(
            "describe_model_package_group",
            {
                "ModelPackageGroupName": "g",
                "ModelPackageGroupArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/g",
                "CreationTime": "2025-01-01T00:00:00Z",
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
            {"ModelPackageGroupName": "g"},
        )
        s3_stub.add_response("put_object", {}, put)
        sm_stub.add_response("create_model_package", {"ModelPackageArn": arn}, package)
        assert send(FakeBoto(sagemaker=sm, s3=s3), reqs) == (True, arn)
        sm_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()
    with Stubber(sm) as sm_stub:
        sm_stub.add_client_error(
            "describe_model_package_group",
            "AccessDeniedException",
            "not authorized",
            expected_params={"ModelPackageGroupName": "g"},
        )
        with pytest.raises(GenaiError, match="AWS error AccessDeniedException: not authorized"):
            send(FakeBoto(sagemaker=sm, s3=s3), reqs)
