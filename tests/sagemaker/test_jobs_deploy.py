"""status/download against moto; stop/logs with stubbed clients (moto lacks them); deploy/invoke."""

import io
import json
import tarfile
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from genai.errors import GenaiError
from genai.sagemaker import jobs
from genai.sagemaker.deploy import invoke
from tests.conftest import genai_cli

pytestmark = pytest.mark.sagemaker


def submitted_job(sm_recipe) -> str:
    boto3.client("s3").create_bucket(Bucket="genai-test")
    out = genai_cli("sagemaker", "train", sm_recipe, "--no-smoke")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)["job"]


def test_status_and_download_into_a_local_run(sm_recipe, moto_server, tmp_path):
    job = submitted_job(sm_recipe)
    out = genai_cli("sagemaker", "status", job, "--recipe", sm_recipe)
    st = json.loads(out.stdout)
    assert st["status"] == "Completed" and st["model"].startswith("s3://")
    # moto completes jobs at once but writes no output: put what the job's /opt/ml/model would hold.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in {
            "manifest.json": json.dumps({"run_id": "x", "recipe": "smtest", "steps": 3}),
            "recipe.yaml": Path(sm_recipe).read_text(),
            "adapter/adapter_config.json": "{}",
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bucket, _, key = st["model"][len("s3://") :].partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    dest = tmp_path / "downloaded"
    out = genai_cli("sagemaker", "download", job, "--out", dest, "--recipe", sm_recipe)
    assert out.returncode == 0, out.stderr[-2000:]
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["sagemaker"]["job"] == job and (dest / "adapter" / "adapter_config.json").exists()


def test_status_of_an_unknown_job(sm_recipe, moto_server):
    out = genai_cli("sagemaker", "status", "no-such-job", "--recipe", sm_recipe)
    assert out.returncode == 2 and "no-such-job" in out.stderr and "Traceback" not in out.stderr


def test_stop_and_logs_with_a_stubbed_client():
    sm = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sm) as stub:
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "j1"})
        jobs.stop(sm, "j1")
        stub.assert_no_pending_responses()
    logs = boto3.client("logs", region_name="us-east-1")
    with Stubber(logs) as stub:
        stub.add_response(
            "describe_log_streams",
            {"logStreams": [{"logStreamName": "j1/algo-1-123"}]},
            {"logGroupName": jobs.LOG_GROUP, "logStreamNamePrefix": "j1/"},
        )
        stub.add_response(
            "get_log_events",
            {"events": [{"timestamp": 1, "message": "step 10/40 loss 1.2"}]},
            {"logGroupName": jobs.LOG_GROUP, "logStreamName": "j1/algo-1-123", "startFromHead": True, "limit": 10000},
        )
        assert jobs.logs(logs, "j1") == ["[algo-1-123] step 10/40 loss 1.2"]
    with Stubber(sm) as stub:
        stub.add_client_error("stop_training_job", "ValidationException", "Requested resource not found")
        with pytest.raises(GenaiError, match="AWS error ValidationException|no such training job"):
            jobs.stop(sm, "j2")


@pytest.fixture()
def local_run(sm_recipe, tmp_path) -> Path:
    run = tmp_path / "runs" / "smtest" / "r1"
    for folder, files in {
        "merged": ["config.json", "model.safetensors", "chat_template.jinja"],
        "adapter": ["adapter_model.safetensors", "chat_template.jinja"],
    }.items():
        (run / folder).mkdir(parents=True)
        for f in files:
            (run / folder / f).write_text("{}")
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 16}))
    (run / "recipe.yaml").write_text(Path(sm_recipe).read_text())
    (run / "manifest.json").write_text(json.dumps({"run_id": "r1"}))
    return run


def test_deploy_merged_to_an_endpoint(local_run, moto_server):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    out = genai_cli(
        "sagemaker",
        "deploy",
        local_run,
        "sagemaker.deploy.instance_type=ml.g4dn.xlarge",
        "sagemaker.deploy.max_model_len=4096",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    sm = boto3.client("sagemaker")
    model = sm.describe_model(ModelName=res["endpoint"])
    env = model["PrimaryContainer"]["Environment"]
    assert env["SM_VLLM_MODEL"] == "/opt/ml/model" and env["SM_VLLM_MAX_MODEL_LEN"] == "4096"
    assert env["SM_VLLM_CHAT_TEMPLATE"] == "/opt/ml/model/chat_template.jinja"
    assert "vllm" in model["PrimaryContainer"]["Image"]
    assert sm.describe_endpoint(EndpointName=res["endpoint"])["EndpointStatus"] in ("Creating", "InService")
    # Where its metrics and logs are: the endpoint's own dimensions, console link and log group.
    ep = res["endpoint"]
    assert ep == "genai-smtest" and res["cloudwatch"] == {
        "namespace": "AWS/SageMaker",
        "dimensions": {"EndpointName": "genai-smtest", "VariantName": "AllTraffic"},
        "metrics": ["Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency", "OverheadLatency"],
        "console_url": "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#metricsV2:graph=~();"
        "search=genai-smtest;namespace=AWS/SageMaker;dimensions=EndpointName,VariantName",
        "log_group": "/aws/sagemaker/Endpoints/genai-smtest",
    }
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="genai-test")["Contents"]}
    assert {"genai/deploy/r1/merged/config.json", "genai/deploy/r1/merged/model.safetensors"} <= keys


def test_deploy_adapter_serves_base_plus_lora_by_name(local_run, moto_server):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    out = genai_cli("sagemaker", "deploy", local_run, "--artifact", "adapter", "--instance-type", "ml.g4dn.xlarge")
    assert out.returncode == 0, out.stderr[-3000:]
    env = json.loads(out.stdout)["requests"]["model"]["PrimaryContainer"]["Environment"]
    assert env["SM_VLLM_MODEL"] == "Qwen/Qwen2.5-0.5B-Instruct" and env["SM_VLLM_ENABLE_LORA"] == "true"
    assert env["SM_VLLM_LORA_MODULES"] == "smtest=/opt/ml/model" and env["SM_VLLM_MAX_LORA_RANK"] == "16"


def test_invoke_sends_an_openai_request():
    rt = boto3.client("sagemaker-runtime", region_name="us-east-1")
    answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": "46"}}]}).encode()
    body = {"messages": [{"role": "user", "content": "What is 12 + 34?"}], "max_tokens": 8}
    with Stubber(rt) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(answer), len(answer)), "ContentType": "application/json"},
            {
                "EndpointName": "ep",
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": json.dumps(body).encode(),
            },
        )
        assert invoke(rt, "ep", body)["choices"][0]["message"]["content"] == "46"
