"""The studio's routes: pages rendered on the server (runs, run, compare, playground, launch) and the JSON
and event-stream endpoints their scripts call. Every path from a request is checked to lie inside the runs
root or a recipe folder; every error becomes a message in the page, never a trace."""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from genai.errors import GenaiError
from genai.runs import Run
from genai.studio import compare, index
from genai.studio.api import add_api
from genai.studio.files import OutsideRoots, inside, recipe_files
from genai.studio.launcher import Launcher
from genai.studio.servers import Playground

HERE = Path(__file__).parent
COOKIE = "genai_studio"
TOKEN_ENV = "GENAI_STUDIO_TOKEN"
# POSTs must carry this header: a page on another site cannot send it without a CORS preflight, which
# the studio never allows (so no other site can launch runs through a browser that has the studio open).
CSRF_HEADER = "x-genai-studio"
_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<message>.*)$")


@dataclass
class Studio:
    """What the app serves: the runs root, the recipe folders, and the state it owns."""

    runs_root: Path
    recipe_dirs: list[Path]
    token: str | None = None  # required on every request when set
    hosts: set[str] | None = field(default_factory=lambda: {"127.0.0.1", "localhost"})  # None: any Host
    playground: Playground = field(init=False)
    launcher: Launcher = field(init=False)

    def __post_init__(self) -> None:
        self.runs_root = self.runs_root.resolve()
        self.recipe_dirs = [d.resolve() for d in self.recipe_dirs]
        self.playground = Playground(self.runs_root)
        self.launcher = Launcher(self.runs_root, self.runs_root / ".studio")

    def run_dir(self, run_id: str) -> Path:
        """A run folder by its id (its path under the runs root); GenaiError when it is not one."""
        try:
            path = inside(self.runs_root, run_id)
        except OutsideRoots:
            raise GenaiError(f"'{run_id}' is not under the runs folder") from None
        if not (path / "recipe.yaml").is_file():
            raise GenaiError(f"run '{run_id}' is gone: its folder {path} has no recipe.yaml (deleted or moved?)")
        return path

    def recipe_path(self, rel: str) -> Path:
        """A recipe file by its name in one of the recipe folders ('folder-index/name.yaml' or 'name.yaml')."""
        for path in recipe_files(self.recipe_dirs):
            if self.recipe_id(path) == rel:
                return path
        raise GenaiError(f"no recipe '{rel}' in the studio's recipe folders")

    def recipe_id(self, path: Path) -> str:
        """A recipe file's id: its name, prefixed by its folder's index when there are several folders."""
        i = next(i for i, d in enumerate(self.recipe_dirs) if path.parent == d)
        return path.name if len(self.recipe_dirs) == 1 else f"{i}/{path.name}"

    def stop(self) -> None:
        """Stop everything the studio started: the served run and every running job."""
        self.playground.stop()
        self.launcher.stop_all()


def script_json(obj) -> str:
    """JSON to embed in a page's <script>: '<' escaped, so no value (a run or metric name) can end the script."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def error_lines(message: str) -> list[dict]:
    """A GenaiError's message as [{line, message}] (line None when it names none), for inline display."""
    out = []
    for text in message.splitlines():
        m = _LINE.match(text.strip())
        out.append({"line": int(m["line"]), "message": m["message"]} if m else {"line": None, "message": text})
    return out


def create_app(studio: Studio) -> FastAPI:
    """The studio's FastAPI app."""
    app = FastAPI(title="genai studio", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.studio = studio

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"active": name.split(".")[0], **context}, status_code=status)

    def problem(request: Request, message: str, status: int = 404) -> HTMLResponse:
        return page(request, "problem.html", status=status, message=message)

    _guard(app, studio, problem)

    @app.get("/", response_class=HTMLResponse)
    def runs_page(request: Request):
        rows = index.scan(studio.runs_root)
        return page(request, "runs.html", rows=rows, root=studio.runs_root)

    _run_pages(app, studio, page, problem)

    @app.get("/playground", response_class=HTMLResponse)
    def playground_page(request: Request):
        rows = [r for r in index.scan(studio.runs_root) if r.status == "complete"]
        return page(request, "playground.html", rows=rows, chosen=request.query_params.get("run"))

    @app.get("/launch", response_class=HTMLResponse)
    def launch_page(request: Request):
        recipes = [studio.recipe_id(p) for p in recipe_files(studio.recipe_dirs)]
        return page(request, "launch.html", recipes=recipes, chosen=request.query_params.get("recipe"))

    @app.get("/files/{rel:path}")
    def files(request: Request, rel: str):
        try:
            path = inside(studio.runs_root, rel)
        except OutsideRoots:
            return JSONResponse({"error": "not under the runs folder"}, status_code=404)
        if path.is_dir():  # an artifact folder: what is in it
            entries = sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))
            listing = [{"name": e.name + ("/" if e.is_dir() else ""), "size": e.stat().st_size} for e in entries]
            return page(request, "folder.html", rel=rel.rstrip("/"), entries=listing)
        if not path.is_file():
            return JSONResponse({"error": f"{rel}: no such file"}, status_code=404)
        return FileResponse(path)

    add_api(app, studio)
    return app


def _guard(app: FastAPI, studio: Studio, problem) -> None:
    """The host, token and POST-header checks on every request, and errors as messages (pages) or JSON."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        if studio.hosts is not None and host not in studio.hosts:  # DNS rebinding: a name that is not this studio's
            return JSONResponse({"error": f"unknown host '{host}'"}, status_code=400)
        if studio.token:
            given = request.query_params.get("token")
            if given and hmac.compare_digest(given, studio.token):
                response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
                response.set_cookie(COOKIE, studio.token, httponly=True, samesite="strict")
                return response
            sent = request.cookies.get(COOKIE) or request.headers.get("authorization", "").removeprefix("Bearer ")
            if not (sent and hmac.compare_digest(sent, studio.token)):
                return JSONResponse(
                    {"error": f"this studio needs its token: open it as /?token=<the value of ${TOKEN_ENV}>"},
                    status_code=401,
                )
        if request.method == "POST" and request.headers.get(CSRF_HEADER) != "1":
            return JSONResponse({"error": f"missing the {CSRF_HEADER} header"}, status_code=403)
        return await call_next(request)

    @app.exception_handler(GenaiError)
    async def genai_error(request: Request, exc: GenaiError):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.message, "hint": exc.hint, "lines": error_lines(exc.message)}, 400)
        return problem(request, exc.message + (f" ({exc.hint})" if exc.hint else ""), 404)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        message = f"the studio could not do that: {type(exc).__name__}: {exc}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=500)
        return problem(request, message, 500)


def _run_pages(app: FastAPI, studio: Studio, page, problem) -> None:
    """A run's page and the compare page."""

    @app.get("/run/{run_id:path}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str):
        path = studio.run_dir(run_id)
        run = Run(path)
        row = index.read_row(path, studio.runs_root)
        manifest = run.manifest() if row.status not in ("incomplete", "corrupt") else {}
        card = next((p for p in (path / "adapter" / "README.md", path / "model" / "README.md") if p.exists()), None)
        files = [
            p.name
            for p in sorted(path.iterdir())
            if p.name in ("adapter", "model", "merged", "report.html", "plots", "eval", "logs")
        ]
        return page(
            request,
            "run.html",
            row=row,
            manifest=manifest,
            recipe_text=run.recipe_file.read_text(encoding="utf-8", errors="replace"),
            series=script_json(compare.series(run)),
            tables=run.eval_tables(),
            card=card.read_text(encoding="utf-8", errors="replace") if card else None,
            files=files,
        )

    @app.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request):
        ids = request.query_params.getlist("run")
        if not 2 <= len(ids) <= 4:
            return problem(request, f"compare takes 2 to 4 runs; {len(ids)} selected", 400)
        dirs = [studio.run_dir(i) for i in ids]
        rows = [index.read_row(d, studio.runs_root) for d in dirs]
        return page(
            request,
            "compare.html",
            rows=rows,
            diff=compare.recipe_diff(dirs),
            series=script_json(
                {f"{r.recipe} {r.run_id}": compare.series(Run(d)) for r, d in zip(rows, dirs, strict=True)}
            ),
            tables=[dict(Run(d).eval_tables()) for d in dirs],
        )
