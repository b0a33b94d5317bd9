"""`genai run` jobs started from the studio: the recipe and its overrides are checked first (the same
loader as the CLI, so the page shows the CLI's own message), then the run is a child process writing into
the studio's runs root, its output kept in a log the page tails; stop is Ctrl-C (the run's own clean stop,
resumable), then a kill if it does not end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from genai.errors import GenaiError

STOP_GRACE_S = 20.0


@dataclass
class Job:
    """One launched `genai run`."""

    id: str
    recipe: Path
    overrides: list[str]
    recipe_name: str
    log: Path
    proc: subprocess.Popen
    started: float = field(default_factory=time.time)
    stopped: bool = False

    @property
    def state(self) -> str:
        """running | finished | failed | stopped."""
        code = self.proc.poll()
        if code is None:
            return "running"
        if self.stopped:
            return "stopped"
        return "finished" if code == 0 else "failed"

    def command(self) -> str:
        """The command line, as a user would type it."""
        return " ".join(["genai", "run", str(self.recipe), *self.overrides])


class Launcher:
    """The studio's jobs, one at a time on a small machine (a second launch waits for none: it is refused)."""

    def __init__(self, runs_root: Path, state_dir: Path):
        self.runs_root, self.state_dir = runs_root, state_dir
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def check(self, recipe: Path, overrides: list[str]) -> str:
        """The recipe's name, or the loader's own error (file, line, field) as a GenaiError."""
        from genai.recipe import load_recipe

        return load_recipe(recipe, [*overrides, f"train.output_dir={self.runs_root}"]).name

    def launch(self, recipe: Path, overrides: list[str]) -> Job:
        """Start `genai run RECIPE --no-serve` with the overrides, writing runs under the runs root."""
        overrides = [o.strip() for o in overrides if o.strip()]
        name = self.check(recipe, overrides)
        with self.lock:
            busy = [j for j in self.jobs.values() if j.state == "running"]
            if busy:
                raise GenaiError(f"a run is already going ({busy[0].command()}): stop it first, or wait")
            job_id = time.strftime("%Y%m%d-%H%M%S") + f"-{len(self.jobs) + 1}"
            log = self.state_dir / "jobs" / f"{job_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            exe = Path(sys.executable).with_name("genai")
            cmd = [str(exe), "run", str(recipe), "--no-serve", *overrides, f"train.output_dir={self.runs_root}"]
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            job = Job(job_id, recipe, overrides, name, log, proc)
            self.jobs[job_id] = job
        return job

    def job(self, job_id: str) -> Job:
        """A job by id; a clear error for an unknown one."""
        if job_id not in self.jobs:
            raise GenaiError(f"no job '{job_id}' in this studio")
        return self.jobs[job_id]

    def run_dir(self, job: Job) -> Path | None:
        """The run folder the job writes (the newest one of its recipe started after the job)."""
        root = self.runs_root / job.recipe_name
        if not root.is_dir():
            return None
        mine = [
            p
            for p in root.iterdir()
            if (p / "recipe.yaml").exists() and (p / "recipe.yaml").stat().st_mtime >= job.started - 1
        ]
        return max(mine, key=lambda p: (p / "recipe.yaml").stat().st_mtime) if mine else None

    def tail(self, job: Job, lines: int = 40) -> str:
        """The end of the job's output."""
        try:
            text = job.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])

    def stop(self, job: Job) -> None:
        """Ctrl-C to the job's process group (its clean, resumable stop); a kill if it outlives the grace."""
        if job.proc.poll() is not None:
            return
        job.stopped = True
        try:
            os.killpg(job.proc.pid, signal.SIGINT)
            job.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(job.proc.pid, signal.SIGKILL)
            job.proc.wait()
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        """Stop every running job (the studio is stopping)."""
        for job in list(self.jobs.values()):
            self.stop(job)
