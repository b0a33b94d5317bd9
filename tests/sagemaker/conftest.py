from pathlib import Path

import pytest

from tests.conftest import ROOT

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture()
def sm_recipe(tmp_path) -> Path:
    p = tmp_path / "sm.yaml"
    p.write_text(f"""\
name: smtest
model: {{name_or_path: Qwen/Qwen2.5-0.5B-Instruct}}
data:
  train: [{{path: {ROOT / "recipes/data/quickstart/train.jsonl"}, format: alpaca}}]
  eval: [{{path: {ROOT / "recipes/data/quickstart/test.jsonl"}, format: alpaca}}]
train: {{output_dir: {tmp_path / "runs"}}}
sagemaker:
  role: {ROLE}
  bucket: genai-test
  region: us-east-1
  instance_type: ml.g5.2xlarge
  environment: {{HF_TOKEN: hf_very_secret, WANDB_DISABLED: "true"}}
  tags: {{team: ml, project: genai}}
""")
    return p


@pytest.fixture()
def moto_server(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    import urllib.request

    # moto's state is per process, not per server: start every test from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"))
    yield f"http://{host}:{port}"
    server.stop()
