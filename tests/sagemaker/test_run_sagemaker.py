"""`genai run --sagemaker`: the train stage as a SageMaker job (moto), then eval and gate here."""

import io
import json
import tarfile

import boto3
import pytest

from genai.pipeline import run_pipeline
from genai.sagemaker import jobs
from tests.conftest import ROOT
from tests.sagemaker.conftest import ROLE

pytestmark = [pytest.mark.slow, pytest.mark.sagemaker]


def test_run_with_sagemaker_training(quickstart_run, moto_server, tmp_path, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="genai-test")
    real_wait = jobs.wait

    def wait_and_emulate_the_job(client, job, **kw):
        """moto completes jobs at once without running them: put the tiny quickstart run where the
        job's /opt/ml/model would land."""
        st = real_wait(client, job, **kw)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(quickstart_run, arcname=".", filter=lambda ti: None if "checkpoints" in ti.name else ti)
        bucket, _, key = st["model"][len("s3://") :].partition("/")
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        return st

    monkeypatch.setattr(jobs, "wait", wait_and_emulate_the_job)
    outcome = run_pipeline(
        ROOT / "recipes" / "quickstart.yaml",
        [
            f"train.output_dir={tmp_path / 'runs'}",
            f"sagemaker.role={ROLE}",
            "sagemaker.bucket=genai-test",
            "sagemaker.region=us-east-1",
            "eval.tasks=[quickstart_addition]",
            "eval.limit=16",
            "eval.gate=[{task: quickstart_addition, metric: exact_match, min: 0.5}]",
            "tracking.mlflow=false",
            "tracking.tensorboard=false",
        ],
        serve=False,
        sagemaker=True,
    )
    assert outcome.gate_passed
    run = outcome.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["sagemaker"]["job"].startswith("genai-quickstart")
    assert manifest["stages"]["train"]["where"] == "sagemaker" and manifest["stages"]["eval"]["status"] == "done"
    assert (run / "recipe.yaml").read_text().count(str(ROOT)) > 0  # local paths for the local stages
