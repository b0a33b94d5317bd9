"""`genai serve`: start, report how to call it, run until SIGINT/SIGTERM, shut down cleanly."""

from __future__ import annotations

import signal

from rich.console import Console

from genai.serving.artifact import resolve
from genai.serving.server import Server, api_key, usage_snippets


def start_server(target: str, overrides: list[str], console: Console | None = None) -> Server:
    """Resolve the artifact and start its server, showing a progress line until it is healthy."""
    console = console or Console(stderr=True)
    tgt, settings, _ = resolve(target, overrides)
    log = tgt.run_dir / "serve.log" if tgt.run_dir else None
    server = Server(tgt, settings, log_path=log)
    with console.status("starting vLLM ...") as status:
        server.start(on_wait=lambda t, line: status.update(f"starting vLLM ({t:.0f} s): {line[-90:]}"))
    return server


def serve_forever(target: str, overrides: list[str]) -> None:
    console = Console(stderr=True)

    def _terminate(signum, frame):  # SIGTERM behaves like Ctrl-C: one clean shutdown path
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    server = None
    try:
        server = start_server(target, overrides, console)
        # Plain prints: the snippets must stay copy-pasteable (no wrapping, no markup).
        print(f"serving at {server.base_url}")
        print("models: " + ", ".join(server.target.names) + f"  (fine-tuned: {server.target.default_name})")
        if server.log_path:
            print(f"log: {server.log_path}")
        print(usage_snippets(server, api_key(server.serve) is not None))
        print("Ctrl-C to stop.", flush=True)
        server.proc.wait()
        if server.proc.returncode not in (0, None):
            from genai.errors import GenaiError

            raise GenaiError(
                f"vLLM server stopped with exit code {server.proc.returncode}:\n" + "\n".join(list(server.tail)[-20:])
            )
    except KeyboardInterrupt:
        console.print("shutting down ...")
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous)
