"""`genai serve`: start vLLM's server for an artifact, say how to call it, run until SIGINT/SIGTERM."""

from __future__ import annotations

import signal

from rich.console import Console

from genai.errors import GenaiError
from genai.recipe import Recipe
from genai.serving.artifact import resolve
from genai.serving.server import Server, api_key, check_port, check_serve_host, usage_snippets


def start_server(
    target: str,
    overrides: list[str],
    console: Console | None = None,
    *,
    latest: bool = False,
    insecure: bool = False,
) -> Server:
    """Resolve the artifact and start its server, showing a progress line until it is healthy.
    An exposed address without an API key, or a taken port, fails here, before vLLM starts."""
    console = console or Console(stderr=True)
    tgt, settings, _ = resolve(target, overrides, latest=latest)
    check_serve_host(settings, insecure=insecure)
    check_port(settings)
    if tgt.chosen:
        console.print(f"serving {tgt.chosen}", markup=False, highlight=False)
    log = tgt.run_dir / "serve.log" if tgt.run_dir else None
    server = Server(tgt, settings, log_path=log)
    with console.status("starting vLLM ...") as status:
        server.start(on_wait=lambda t, line: status.update(f"starting vLLM ({t:.0f} s): {line[-90:]}"))
    return server


def serve_forever(target: str, overrides: list[str], *, latest: bool = False, insecure: bool = False) -> None:
    """`genai serve`: print the URL, model names and snippets; stop every engine process on exit."""
    console = Console(stderr=True)

    def _terminate(signum, frame):  # noqa: ARG001 - SIGTERM behaves like Ctrl-C: one clean shutdown path
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    server = None
    try:
        server = start_server(target, overrides, console, latest=latest, insecure=insecure)
        # Plain prints: the snippets must stay copy-pasteable (no wrapping, no markup).
        print(f"serving at {server.base_url}  ({bound(server.serve.host, server.port)})")
        print("models: " + ", ".join(server.target.names) + f"  (fine-tuned: {server.target.default_name})")
        if server.log_path:
            print(f"log: {server.log_path}")
        print(usage_snippets(server, api_key(server.serve) is not None))
        print("Ctrl-C to stop.", flush=True)
        server.proc.wait()
        if server.proc.returncode not in (0, None):
            raise GenaiError(
                f"vLLM server stopped with exit code {server.proc.returncode}:\n" + "\n".join(list(server.tail)[-20:])
            )
    except KeyboardInterrupt:
        console.print("shutting down ...")
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def bound(host: str, port: int) -> str:
    """What the server really listens on: the banner must not show loopback for an exposed server."""
    if host in ("0.0.0.0", "::"):
        return f"bound to {host}:{port}, every interface: reachable from other machines"
    return f"bound to {host}:{port}, this address only"


def sample_request(recipe: Recipe) -> list[dict]:
    """A question from the recipe's own eval data (the conversation up to its last answer), else a greeting."""
    try:
        from genai.data.prepare import load_examples

        for ex in load_examples(recipe.data.eval[:1]):
            if ex.messages:
                last = max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")
                return ex.messages[:last]
    except GenaiError:
        pass
    return [{"role": "user", "content": "Hello!"}]


def ask(server: Server, messages: list[dict], max_tokens: int = 64) -> str:
    """One greedy chat completion from the fine-tuned model."""
    body = {"model": server.target.default_name, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    return server.post_json("/v1/chat/completions", body)["choices"][0]["message"]["content"]
