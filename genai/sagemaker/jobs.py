"""`genai sagemaker status|logs|stop|download JOB` over the SageMaker and CloudWatch APIs."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from genai.errors import GenaiError
from genai.sagemaker.session import aws_error

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def _call(fn, what: str, **kwargs):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ValidationException", "ResourceNotFound") and "not found" in str(exc).lower():
            raise GenaiError(f"{what}: no such training job: {kwargs.get('TrainingJobName')}") from None
        raise aws_error(exc, what) from None
    except BotoCoreError as exc:
        raise aws_error(exc, what) from None


def status(client, job: str) -> dict:
    """A job's state, secondary state, transitions, failure reason and model location."""
    d = _call(client.describe_training_job, "sagemaker status", TrainingJobName=job)
    return {
        "job": job,
        "status": d["TrainingJobStatus"],
        "secondary": d.get("SecondaryStatus"),
        "transitions": [
            {"status": t.get("Status"), "message": t.get("StatusMessage"), "start": str(t.get("StartTime"))}
            for t in d.get("SecondaryStatusTransitions", [])
        ],
        "failure": d.get("FailureReason"),
        "model": d.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
    }


def logs(logs_client, job: str, limit: int = 10000) -> list[str]:
    """Every CloudWatch line of the job's streams."""
    streams = _call(
        logs_client.describe_log_streams, "sagemaker logs", logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job}/"
    ).get("logStreams", [])
    lines: list[str] = []
    for stream in streams:
        events = _call(
            logs_client.get_log_events,
            "sagemaker logs",
            logGroupName=LOG_GROUP,
            logStreamName=stream["logStreamName"],
            startFromHead=True,
            limit=limit,
        )
        lines += [f"[{stream['logStreamName'].split('/', 1)[-1]}] {e['message']}" for e in events.get("events", [])]
    return lines


def wait(client, job: str, *, poll_s: float = 30, on_change=None, timeout_s: float | None = None) -> dict:
    """Poll until the job ends; report each new secondary status."""
    import time

    seen, start = None, time.monotonic()
    while True:
        st = status(client, job)
        if on_change and (st["status"], st["secondary"]) != seen:
            seen = (st["status"], st["secondary"])
            on_change(st)
        if st["status"] in ("Completed", "Failed", "Stopped"):
            return st
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise GenaiError(f"sagemaker: job {job} still {st['status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def stop(client, job: str) -> None:
    """Ask SageMaker to stop the job."""
    _call(client.stop_training_job, "sagemaker stop", TrainingJobName=job)


def _safe_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")  # no absolute paths, links out of dest or devices


def download(client, s3, job: str, dest: Path, local_recipe_yaml: str | None = None) -> Path:
    """Fetch the job's /opt/ml/model (model.tar.gz or an uncompressed prefix) into a local run folder.

    The job's recipe points at /opt/ml paths; it is kept as recipe.container.yaml and the local
    recipe (when given) becomes recipe.yaml, so eval and serve here read local data.
    """
    st = status(client, job)
    if st["status"] != "Completed":
        raise GenaiError(f"sagemaker download: job {job} is {st['status']}", hint="wait until it is Completed")
    uri = st["model"]
    if not uri:
        raise GenaiError(f"sagemaker download: job {job} has no model artifacts")
    bucket, _, key = uri[len("s3://") :].partition("/")
    tmp = Path(tempfile.mkdtemp(prefix=".sm-download-", dir=dest.parent if dest.parent.exists() else None))
    try:
        if key.endswith(".tar.gz"):
            archive = tmp / "model.tar.gz"
            _call(s3.download_file, "sagemaker download", Bucket=bucket, Key=key, Filename=str(archive))
            _safe_extract(archive, tmp / "run")
            archive.unlink()
        else:
            prefix = key.rstrip("/") + "/"
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    target = tmp / "run" / obj["Key"][len(prefix) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, obj["Key"], str(target))
        run = tmp / "run"
        if not (run / "manifest.json").exists():
            raise GenaiError(f"sagemaker download: {uri} holds no genai run (no manifest.json)")
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["sagemaker"] = {"job": job, "model_artifacts": uri}
        (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if local_recipe_yaml is not None:
            if (run / "recipe.yaml").exists():
                (run / "recipe.yaml").rename(run / "recipe.container.yaml")
            (run / "recipe.yaml").write_text(local_recipe_yaml)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise GenaiError(f"sagemaker download: {dest} already exists")
        shutil.move(str(run), dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def train_and_download(recipe, console, poll_s: float = 30) -> Path:
    """`genai run --sagemaker`'s train stage: submit the job, follow its status, download the run."""
    from genai.runs import recipe_root
    from genai.sagemaker.session import boto_session
    from genai.sagemaker.submit import submit

    job = submit(recipe, dry_run=False)
    console.print(f"SageMaker job {job.job_name} submitted")
    boto = boto_session(recipe.sagemaker)
    sm, s3 = boto.client("sagemaker"), boto.client("s3")
    final = wait(
        sm, job.job_name, poll_s=poll_s, on_change=lambda st: console.print(f"  {st['status']} / {st['secondary']}")
    )
    if final["status"] != "Completed":
        raise GenaiError(
            f"SageMaker job {job.job_name} {final['status']}: {final.get('failure') or ''}",
            hint=f"genai sagemaker logs {job.job_name}",
        )
    return download(sm, s3, job.job_name, recipe_root(recipe) / job.job_name, recipe.to_yaml())
