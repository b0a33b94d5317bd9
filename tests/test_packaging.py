"""A non-editable install works: the wheel carries the suites, prices, recipes and data it needs.

The wheel is built from this checkout and installed (without dependencies) into a fresh virtual
environment whose only other import path is the test environment's site-packages, so `genai` comes
from the installed copy, never from the source tree.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.sagemaker.conftest import ROLE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv with the genai wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    # A copy of the checkout without build leftovers (setuptools would pack a stale build/lib).
    src = tmp / "src"
    shutil.copytree(
        ROOT,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".cache", "build", "*.egg-info", "__pycache__", "runs", ".pytest_cache"
        ),
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = tmp.glob("genai-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "genai/assets/eval/quickstart/quickstart_addition.yaml",
        "genai/sagemaker/prices.json",
        "genai/assets/recipes/quickstart.yaml",
        "genai/assets/recipes/data/quickstart/test.jsonl",
        "genai/accelerate/fsdp.yaml",
        "genai/assets/tiny/corpus.txt",
        "genai/studio/templates/runs.html",
        "genai/studio/static/studio.js",
        "genai/studio/static/vendor/uplot/uPlot.iife.min.js",
    ):
        assert needed in names, needed
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    # Dependencies come from the test environment (a path, not a site dir: its editable genai stays out).
    (purelib,) = (env_dir / "lib").glob("python3*/site-packages")
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env_dir / "bin"


def run_installed(bin_dir: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def test_genai_comes_from_the_wheel(installed, tmp_path):
    out = run_installed(
        installed,
        "python",
        "-c",
        "import genai, genai.shipped as s; print(genai.__file__);print(s.eval_dir())",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    module, suites = out.stdout.split()
    assert str(installed.parent) in module and str(ROOT) not in module
    assert str(installed.parent) in suites


def test_bundled_suites_resolve_in_the_installed_copy(installed, tmp_path):
    listing = run_installed(installed, "genai", "eval", "--list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert all(t in listing.stdout for t in ("quickstart_addition", "addition_mc", "tiny_perplexity"))
    code = (
        "from genai.evaluation import suites; import yaml, pathlib; d = suites.materialize(suites.suite_dirs([]));"
        "y = yaml.safe_load((d / 'quickstart' / 'quickstart_addition.yaml').read_text());"
        "print(y['dataset_kwargs']['data_files']['test'])"
    )
    out = run_installed(installed, "python", "-c", code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = Path(out.stdout.strip())
    assert data.is_file() and str(installed.parent) in str(data)


def test_cost_estimate_from_the_installed_copy(installed, tmp_path):
    out = run_installed(
        installed,
        "genai",
        "sagemaker",
        "train",
        str(ROOT / "recipes" / "qwen2.5-0.5b-alpaca-lora.yaml"),
        f"sagemaker.role={ROLE}",
        "sagemaker.bucket=b",
        "sagemaker.region=us-east-1",
        "--dry-run",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    estimate = json.loads(out.stdout)["estimate"]
    assert estimate["instance_type"] == "ml.g5.2xlarge" and estimate["usd_per_hour"] > 0


def test_init_then_the_quickstart_from_the_installed_copy(installed, tmp_path):
    out = run_installed(installed, "genai", "init", "quickstart", "proj", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "proj" / "quickstart.yaml").is_file()
    assert (tmp_path / "proj" / "data" / "quickstart" / "train.jsonl").stat().st_size > 100_000
    again = run_installed(installed, "genai", "init", "quickstart", "proj", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    run = run_installed(
        installed,
        "genai",
        "run",
        "proj/quickstart.yaml",
        "train.max_steps=40",
        "train.save_steps=null",
        "train.exact_match.limit=0",
        "eval.limit=4",
        f"data.cache_dir={tmp_path / 'cache'}",
        "eval.gate=[]",
        "--no-serve",
        cwd=tmp_path,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "quickstart").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["eval"]["status"] == "done"
    table = json.loads((run_dir / "eval" / "hf" / "table.json").read_text())
    assert {r["task"] for r in table["rows"]} == {"quickstart_addition", "addition_mc", "tiny_perplexity"}
