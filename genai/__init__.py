"""genai: from a YAML recipe to a fine-tuned, scored, served LLM.

The Python API the `genai` command is built on. Each function imports its heavy parts (torch,
transformers, lm-eval, vLLM) only when called. A recipe is a path to a YAML file or a `Recipe`
object; overrides are dotted `KEY=VALUE` strings, as on the command line.

    import genai

    result = genai.train("recipes/quickstart.yaml", ["train.max_steps=200"])
    report = genai.evaluate(result.run_dir)          # base vs fine-tuned, gate verdicts
    with genai.serve(result.run_dir) as server:      # vLLM's OpenAI server, stopped on exit
        print(server.base_url)
    outcome = genai.run("recipes/quickstart.yaml", serve=False)   # train -> eval -> gate
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "load_recipe", "run", "serve", "train"]

if TYPE_CHECKING:
    from genai.evaluation.results import EvalReport
    from genai.pipeline import RunOutcome
    from genai.recipe import Recipe
    from genai.serving.server import Server
    from genai.training.trainer import TrainResult


def load_recipe(recipe: str | Path | Recipe, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A validated recipe from a file (or a Recipe object) with overrides applied."""
    from genai.recipe import Recipe, with_overrides
    from genai.recipe import load_recipe as _load

    if isinstance(recipe, Recipe):
        return with_overrides(recipe, overrides)
    return _load(recipe, overrides)


def train(
    recipe: str | Path | Recipe,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    resume: bool = False,
    run_dir: str | Path | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Fine-tune (`genai train`): the preflight, then a new run folder, or the newest run with a checkpoint
    resumed from it."""
    from genai.preflight import preflight
    from genai.training.launch import start_training

    resolved = load_recipe(recipe, overrides)
    preflight(resolved)
    return start_training(resolved, resume=resume, run_dir=Path(run_dir) if run_dir else None, verbose=verbose)


def evaluate(
    target: str | Path, overrides: list[str] | tuple[str, ...] = (), *, backend: str | None = None
) -> EvalReport:
    """Score base and fine-tuned with lm-eval and apply the gate (`genai eval`); `target` is a recipe or a run."""
    from genai.evaluation.runner import evaluate as _evaluate

    return _evaluate(str(target), list(overrides), backend=backend)


def serve(target: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Server:
    """Start vLLM's OpenAI server for a recipe's newest run that passed its gate, a run, an adapter or a
    model folder; returns once it is healthy. Stop it with `.stop()`, or use it as a context manager."""
    from genai.serving.serve import start_server

    return start_server(str(target), list(overrides))


def run(
    recipe: str | Path | Recipe,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    serve: bool = True,
    keep_serving: bool = False,
    sagemaker: bool = False,
) -> RunOutcome:
    """The whole path (`genai run`): train -> eval -> gate -> serve, continuing an unfinished run by stage."""
    from genai.pipeline import run_pipeline

    return run_pipeline(recipe, list(overrides), serve=serve, keep_serving=keep_serving, sagemaker=sagemaker)
