"""The studio's JSON and event-stream endpoints, called by its pages' scripts: runs, recipes (read,
validate, save as new), launched jobs, and the playground (serve a run, add a URL, stream a chat)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from genai.errors import GenaiError
from genai.runs import Run
from genai.studio import compare, index

if TYPE_CHECKING:
    from genai.studio.app import Studio


def add_api(app: FastAPI, studio: Studio) -> None:
    """Every /api/ route."""
    _runs_api(app, studio)
    _recipes_api(app, studio)
    _jobs_api(app, studio)
    _playground_api(app, studio)


def _runs_api(app: FastAPI, studio: Studio) -> None:
    """The runs table, and one run's row and series (its page polls it while the run trains)."""

    @app.get("/api/runs")
    def api_runs():
        return [r.as_dict() for r in index.scan(studio.runs_root)]

    @app.get("/api/run/{run_id:path}")
    def api_run(run_id: str):
        path = studio.run_dir(run_id)
        return {"row": index.read_row(path, studio.runs_root).as_dict(), "series": compare.series(Run(path))}


def _recipes_api(app: FastAPI, studio: Studio) -> None:
    """A recipe's text, the schema, validation with the errors by line, and saving as a new recipe."""
    from genai.studio.app import error_lines

    @app.get("/api/recipe")
    def api_recipe(name: str):
        return {"name": name, "text": studio.recipe_path(name).read_text(encoding="utf-8")}

    @app.get("/api/schema")
    def api_schema():
        from genai.recipe import Recipe

        return Recipe.model_json_schema()

    @app.post("/api/validate")
    async def api_validate(request: Request):
        from genai.recipe import load_recipe_text

        body = await request.json()
        path = studio.recipe_path(body.get("recipe", ""))
        try:
            recipe = load_recipe_text(str(body.get("text", "")), path)
        except GenaiError as e:
            return {"ok": False, "error": e.message, "lines": error_lines(e.message)}
        return {"ok": True, "name": recipe.name}

    @app.post("/api/recipes")
    async def api_save_recipe(request: Request):
        from genai.atomic import atomic_write_text
        from genai.recipe import load_recipe_text

        body = await request.json()
        source = studio.recipe_path(body.get("recipe", ""))
        name = str(body.get("name", "")).strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.yaml", name):
            raise GenaiError(f"'{name}': name the new recipe like my-recipe.yaml (letters, digits, . _ -)")
        target = source.parent / name
        if target.exists():
            raise GenaiError(f"{target} exists: choose another name (the studio never overwrites a recipe)")
        text = str(body.get("text", ""))
        load_recipe_text(text, target)  # the same checks, against its new place
        atomic_write_text(target, text)
        return {"recipe": studio.recipe_id(target)}


def _jobs_api(app: FastAPI, studio: Studio) -> None:
    """Launch `genai run`, watch it (state, log tail, run, stages, series), stop it."""

    @app.post("/api/launch")
    async def api_launch(request: Request):
        body = await request.json()
        overrides = [o for o in str(body.get("overrides", "")).splitlines() if o.strip()]
        job = studio.launcher.launch(studio.recipe_path(body.get("recipe", "")), overrides)
        return {"job": job.id, "command": job.command()}

    @app.get("/api/jobs/{job_id}")
    def api_job(job_id: str):
        launcher = studio.launcher
        job = launcher.job(job_id)
        run = launcher.run_dir(job)
        out = {"job": job.id, "state": job.state, "command": job.command(), "log": launcher.tail(job), "run": None}
        if run is not None:
            row = index.read_row(run, studio.runs_root)
            out |= {"run": row.id, "stages": row.stages, "series": compare.series(Run(run))}
        return out

    @app.post("/api/jobs/{job_id}/stop")
    def api_job_stop(job_id: str):
        job = studio.launcher.job(job_id)
        studio.launcher.stop(job)
        return {"job": job.id, "state": job.state}


def _playground_api(app: FastAPI, studio: Studio) -> None:
    """Serve a run, stop it, add an OpenAI-compatible URL, stream a chat to a target."""

    @app.get("/api/serve")
    def api_serve_status():
        return studio.playground.status()

    @app.post("/api/serve")
    async def api_serve(request: Request):
        body = await request.json()
        run_id = str(body.get("run", ""))
        studio.playground.start(run_id, studio.run_dir(run_id))
        return studio.playground.status()

    @app.post("/api/serve/stop")
    def api_serve_stop():
        studio.playground.stop()
        return studio.playground.status()

    @app.post("/api/targets")
    async def api_targets(request: Request):
        body = await request.json()
        target = studio.playground.add_url(
            str(body.get("base_url", "")), str(body.get("model", "")), body.get("api_key") or None
        )
        return target.public()

    @app.post("/api/chat")
    async def api_chat(request: Request):
        body = await request.json()
        return StreamingResponse(
            studio.playground.stream_chat(str(body.get("target", "")), body), media_type="text/event-stream"
        )
