"""`genai sagemaker train`: the captured CreateTrainingJob requests, uploads, and bad inputs."""

import json

import boto3
import pytest

from tests.conftest import genai_cli
from tests.sagemaker.conftest import ROLE

pytestmark = pytest.mark.sagemaker


def dry_run(recipe, *overrides):
    # No AWS_ENDPOINT_URL here: anything actually sent would go to AWS and trip the loopback guard.
    out = genai_cli("sagemaker", "train", recipe, *overrides, "--dry-run")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def channels(req):
    return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}


def test_single_gpu_request(sm_recipe):
    out = dry_run(sm_recipe)
    req = out["request"]
    assert req["AlgorithmSpecification"]["TrainingImage"].startswith(
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:2.8.0-transformers4.56.2-gpu"
    )
    assert req["RoleArn"] == ROLE and req["ResourceConfig"] == {
        "InstanceType": "ml.g5.2xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 100,
    }
    ch = channels(req)
    assert ch["train0"].endswith("/data/train0/") and ch["eval0"].endswith("/data/eval0/")
    assert {"code", "sm_drivers"} <= set(ch)  # the project's code + recipe, and the SDK's torchrun driver
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert req["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert req["OutputDataConfig"]["CompressionType"] == "NONE"
    assert {t["Key"]: t["Value"] for t in req["Tags"]} == {"team": "ml", "project": "genai"}
    assert req["Environment"]["HF_TOKEN"] == "***" and req["Environment"]["WANDB_DISABLED"] == "true"
    assert req["HyperParameters"]["recipe"] == "smtest"
    assert "hf_very_secret" not in json.dumps(out)
    assert out["estimate"]["usd_per_hour"] == pytest.approx(1.515) and out["estimate"]["max_usd_spot_estimate"] is None
    assert out["uploads"][0].endswith("/data/train0/train.jsonl")


def test_multi_node_request(sm_recipe):
    req = dry_run(sm_recipe, "sagemaker.instance_count=2", "sagemaker.instance_type=ml.p4d.24xlarge")["request"]
    assert req["ResourceConfig"]["InstanceCount"] == 2 and req["ResourceConfig"]["InstanceType"] == "ml.p4d.24xlarge"
    # torchrun across every GPU of every instance: the SDK's driver reads this from its channel
    assert "sm_drivers" in channels(req) and req["AlgorithmSpecification"]["ContainerEntrypoint"] == ["/bin/bash"]


def test_spot_request_and_cost(sm_recipe):
    out = dry_run(sm_recipe, "sagemaker.spot=true", "sagemaker.max_runtime_s=7200", "sagemaker.max_wait_s=10800")
    req = out["request"]
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert req["CheckpointConfig"]["S3Uri"].endswith("/checkpoints")
    est = out["estimate"]
    assert (
        est["max_usd_on_demand"] == pytest.approx(1.515 * 2) and est["max_usd_spot_estimate"] < est["max_usd_on_demand"]
    )


def test_submit_uploads_channels_and_creates_the_job(sm_recipe, moto_server, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="genai-test")
    out = genai_cli("sagemaker", "train", sm_recipe, "--no-smoke")
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="genai-test")["Contents"]}
    assert any(k.endswith("/data/train0/train.jsonl") for k in keys)
    assert any(k.endswith("/data/eval0/test.jsonl") for k in keys)
    desc = boto3.client("sagemaker").describe_training_job(TrainingJobName=res["job"])
    assert desc["TrainingJobStatus"] in ("InProgress", "Completed")
    saved = json.loads((tmp_path / "runs" / "smtest" / res["job"] / "sagemaker.json").read_text())
    assert saved["job"] == res["job"] and "hf_very_secret" not in json.dumps(saved)
    # The token reaches the job through its Environment only (test_tuner checks what is sent), not through
    # the recipe saved here or shipped in the code.
    assert "hf_very_secret" not in (tmp_path / "runs" / "smtest" / res["job"] / "recipe.yaml").read_text()
    (code,) = [k for k in keys if k.endswith("/input/code/recipe.yaml")]
    shipped = s3.get_object(Bucket="genai-test", Key=code)["Body"].read().decode()
    assert "HF_TOKEN: '***'" in shipped and "hf_very_secret" not in shipped


@pytest.mark.parametrize(
    "override,needle",
    [
        ("sagemaker.role=null", "sagemaker.role must be set"),
        ("sagemaker.bucket=null", "sagemaker.bucket must be set"),
        ("sagemaker.instance_type=ml.g5.2xlarg", "unknown instance type 'ml.g5.2xlarg'; did you mean ml.g5.2xlarge"),
        ("data.train.0.path=/nope/missing.jsonl", "file not found"),
        ("sagemaker.role=not-an-arn", "sagemaker.role"),
        ("eval.tasks=[quickstart_additon]", "eval.tasks: unknown task 'quickstart_additon'"),  # the preflight
    ],
)
def test_bad_inputs(sm_recipe, override, needle):
    out = genai_cli("sagemaker", "train", sm_recipe, override, "--dry-run")
    assert out.returncode == 2 and needle in out.stderr and "Traceback" not in out.stderr


def test_aws_error_is_one_clear_message(sm_recipe, moto_server):
    out = genai_cli("sagemaker", "train", sm_recipe, "--no-smoke")  # the bucket does not exist in moto
    assert out.returncode == 2 and "AWS error" in out.stderr and "Traceback" not in out.stderr


def test_the_job_code_folder_is_removed_after_submitting(sm_recipe, tmp_path):
    out = genai_cli("sagemaker", "train", sm_recipe, "--dry-run", env={"TMPDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert not list(tmp_path.glob("genai-sm-src-*"))  # one copy of genai's code was left per submission


def test_a_recipe_that_fails_its_smoke_is_not_submitted(sm_recipe, moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    users_only = tmp_path / "users.jinja"  # renders no assistant turn: nothing would be trained
    users_only.write_text("{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}")
    out = genai_cli("sagemaker", "train", sm_recipe, f"model.chat_template={users_only}")
    assert out.returncode == 2 and "not submitted: the smoke check failed" in out.stderr, out.stderr[-2000:]
    assert "labels cover only assistant turns" in out.stderr and "--no-smoke" in out.stderr
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket="genai-test")  # nothing uploaded
    assert not boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
