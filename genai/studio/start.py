"""`genai studio`: check the address and port, start the app with uvicorn, print the URL (never the token),
and on Ctrl-C stop the served run and every job the studio started."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from genai.errors import GenaiError
from genai.serving.server import LOOPBACK


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise GenaiError(
            f"genai studio needs its extra ({e.name} is missing)", hint="pip install 'genai[studio]'"
        ) from None


def _check_port(host: str, port: int) -> int:
    """The port to bind (a free one for 0); a clear error when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise GenaiError(
                f"--port: {host}:{port} is not free ({exc.strerror or exc})",
                hint="stop what uses it, or choose another port (--port 0 picks a free one)",
            ) from None
        return s.getsockname()[1]


def studio_token(host: str) -> str | None:
    """The token the studio requires: $GENAI_STUDIO_TOKEN; required when bound beyond loopback."""
    from genai.studio.app import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV) or None
    if host not in LOOPBACK and not token:
        raise GenaiError(
            f"--host {host} is reachable from other machines: set a token in ${TOKEN_ENV} first",
            hint=f"export {TOKEN_ENV}=<a long random string>; open the studio once as /?token=<it>",
        )
    return token


def run_studio(runs: Path, recipes: list[Path], host: str, port: int) -> None:
    """Serve the studio until Ctrl-C."""
    _require_extra()
    import uvicorn

    from genai.studio.app import Studio, create_app

    token = studio_token(host)
    if not runs.is_dir():
        raise GenaiError(
            f"--runs: {runs} is not a folder", hint="train a run first, or point --runs at your runs folder"
        )
    port = _check_port(host, port)
    studio = Studio(runs, recipes, token=token)
    if host not in LOOPBACK:
        studio.hosts = None  # reached by any name; the token guards it
    else:
        studio.hosts = {"127.0.0.1", "localhost", "[::1]", "::1"}
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"genai studio: http://{shown}:{port}/  (runs: {runs.resolve()})", flush=True)
    if token:
        print(f"  token required: open http://{shown}:{port}/?token=<value of $GENAI_STUDIO_TOKEN> once", flush=True)
    config = uvicorn.Config(create_app(studio), host=host, port=port, log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run()
    finally:
        studio.stop()
        print("genai studio: stopped", flush=True)
