"""`genai sagemaker deploy RUN --capture S3URI`: the endpoint config carries DataCaptureConfig (moto keeps
it, so it is read back field by field); without --capture there is none; bad values exit 2 and send nothing."""

import json
from pathlib import Path

import boto3
import pytest

from tests.conftest import genai_cli

pytestmark = pytest.mark.sagemaker


@pytest.fixture()
def run(sm_recipe, tmp_path) -> Path:
    run = tmp_path / "runs" / "smtest" / "r1"
    (run / "merged").mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "chat_template.jinja"):
        (run / "merged" / f).write_text("{}")
    (run / "recipe.yaml").write_text(Path(sm_recipe).read_text())
    (run / "manifest.json").write_text(json.dumps({"run_id": "r1"}))
    return run


def test_deploy_with_capture_sets_the_endpoints_data_capture(run, moto_server):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    uri = "s3://genai-test/capture/smtest/"
    out = genai_cli(
        "sagemaker", "deploy", run, "--instance-type", "ml.g4dn.xlarge", "--capture", uri, "--capture-percent", "25"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    expected = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": uri,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    assert res["requests"]["endpoint_config"]["DataCaptureConfig"] == expected
    cfg = boto3.client("sagemaker").describe_endpoint_config(EndpointConfigName=res["endpoint"])
    got = cfg["DataCaptureConfig"]
    assert got["EnableCapture"] is True and got["InitialSamplingPercentage"] == 25
    assert got["DestinationS3Uri"] == uri
    assert got["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert got["CaptureContentTypeHeader"] == {"JsonContentTypes": ["application/json"]}
    assert cfg["ProductionVariants"][0]["ModelName"] == res["endpoint"]


def test_deploy_without_capture_has_none(run, moto_server):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    out = genai_cli("sagemaker", "deploy", run, "--instance-type", "ml.g4dn.xlarge", "--dry-run")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DataCaptureConfig" not in json.loads(out.stdout)["requests"]["endpoint_config"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--capture", "genai-test/capture"], "is not an s3:// URI"),
        (["--capture", "s3://genai-test/c/", "--capture-percent", "0"], "between 1 and 100"),
        (["--capture", "s3://genai-test/c/", "--components"], "a run's own endpoint only"),
    ],
)
def test_bad_capture_values_exit_2_and_send_nothing(run, moto_server, args, message):
    out = genai_cli("sagemaker", "deploy", run, "--instance-type", "ml.g4dn.xlarge", *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert boto3.client("sagemaker").list_endpoint_configs()["EndpointConfigs"] == []
