"""Preflight: what a recipe can get wrong, found in seconds, before training (or a SageMaker job) starts.

Every check runs and every problem is reported at once, so one edit fixes them all: eval task
names (bundled suites, else lm-eval's own), gate rules, the model folder or hub id, the tokenizer's
chat template on the first records of every data file, a writable output folder, and a free port
when the run will serve. `genai validate`, `genai train`, `genai run` and `genai sagemaker train`
run it.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from genai.atomic import missing_dirs, write_probe
from genai.errors import GenaiError
from genai.recipe import EvalSection, Recipe

SAMPLE_RECORDS = 20  # records per data source rendered through the template
HUB_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Plan:
    """What the command will do with the recipe: which checks apply."""

    serve: bool = False  # `genai run` without --no-serve: the port must be free
    sagemaker: bool = False  # the model and tokenizer load in the job, not here
    insecure: bool = False  # --insecure: serve on a non-loopback address without an API key
    # False: the tokenizer and chat-template checks (seconds of imports) are left to the process that trains,
    # which runs the whole preflight before it writes anything (a sweep: each trial's `genai run`).
    tokenizer: bool = True


Check = Callable[[Recipe, Plan], None]
CHECKS: list[tuple[str, Check]] = []


def check(name: str):
    """Add a check to the preflight (run in order of registration)."""

    def deco(fn: Check) -> Check:
        CHECKS.append((name, fn))
        return fn

    return deco


def preflight(recipe: Recipe, plan: Plan = Plan()) -> None:
    """Run every check; one GenaiError listing every problem found."""
    problems: list[GenaiError] = []
    for _, fn in CHECKS:
        try:
            fn(recipe, plan)
        except GenaiError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        lines = [f"- {p.message}" + (f"\n    hint: {p.hint}" if p.hint else "") for p in problems]
        raise GenaiError(
            f"recipe '{recipe.name}': {len(problems)} problems found before training:\n" + "\n".join(lines)
        )


# ---------------------------------------------------------------------- eval
def check_gate_rules(cfg: EvalSection) -> None:
    """Gate rules must name tasks the recipe evaluates."""
    for i, rule in enumerate(cfg.gate):
        if rule.task not in cfg.tasks:
            raise GenaiError(
                f"eval.gate.{i}: rule on task '{rule.task}', which eval.tasks does not include",
                hint=f"eval.tasks is {cfg.tasks}",
            )


def suite_task_names(suite_dirs: list[Path]) -> set[str]:
    """Task, group and tag names the suites' YAMLs declare (read as text: no lm-eval import)."""
    from genai.evaluation.suites import _Loader

    names: set[str] = set()
    for root in suite_dirs:
        for yml in root.rglob("*.yaml") if root.is_dir() else ():
            try:
                cfg = yaml.load(yml.read_text(encoding="utf-8"), Loader=_Loader)
            except (yaml.YAMLError, UnicodeDecodeError):
                continue  # materialize() reports a broken suite file when eval runs
            if isinstance(cfg, dict):
                for key in ("task", "group", "tag"):
                    value = cfg.get(key)
                    names.update([value] if isinstance(value, str) else value if isinstance(value, list) else [])
    return names


def check_task_names(cfg: EvalSection) -> None:
    """Every eval task is a bundled/suite task or one lm-eval ships (looked up only when needed)."""
    from genai.evaluation.suites import suite_dirs

    dirs = suite_dirs(cfg.suite_dirs)
    for d in dirs[len(dirs) - len(cfg.suite_dirs) :]:
        if not d.is_dir():
            raise GenaiError(f"eval.suite_dirs: not a folder: {d}")
    bundled = suite_task_names(dirs)
    unknown = [t for t in cfg.tasks if t not in bundled]
    if not unknown:
        return
    from lm_eval.tasks import TaskManager  # lm-eval indexes its ~15k tasks: seconds, only when needed

    check_known(unknown, set(TaskManager().all_tasks) | bundled)


def check_known(tasks: list[str], known: set[str]) -> None:
    """Every task is a known name; a typo gets did-you-mean (the preflight and `genai eval` alike)."""
    for task in tasks:
        if task not in known:
            close = difflib.get_close_matches(task, sorted(known), n=3)
            raise GenaiError(
                f"eval.tasks: unknown task '{task}'"
                + (f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""),
                hint="bundled suites live in eval/; `genai eval --list` shows them; any lm-eval task works by name",
            )


@check("eval tasks")
def _eval_tasks(recipe: Recipe, plan: Plan) -> None:
    if recipe.eval.tasks:
        check_task_names(recipe.eval)


@check("gate")
def _gate(recipe: Recipe, plan: Plan) -> None:
    check_gate_rules(recipe.eval)


# ---------------------------------------------------------------------- model
def _looks_local(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else (or anything that exists) is a path.
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).expanduser().exists()


def _hub_reachable() -> bool:
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=HUB_TIMEOUT_S):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def check_model(recipe: Recipe) -> None:
    """A local model folder exists and is a model; a hub id is cached here or the hub answers."""
    from genai.models import BUILTIN_MODELS

    name = recipe.model.name_or_path
    if name in BUILTIN_MODELS:
        return
    if _looks_local(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise GenaiError(
                f"model.name_or_path: local model folder not found: {name}",
                hint="give a folder with config.json and *.safetensors, or a hub id like Qwen/Qwen2.5-0.5B",
            )
        if not (path / "config.json").exists():
            raise GenaiError(f"model.name_or_path: {name} is not a model folder (no config.json)")
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json", revision=recipe.model.revision), str):
        return
    why = "HF_HUB_OFFLINE is set" if _offline() else None
    if why is None and not _hub_reachable():
        why = f"the Hugging Face Hub is unreachable (no answer within {HUB_TIMEOUT_S:.0f} s)"
    if why:
        raise GenaiError(
            f"model.name_or_path: '{name}' is not in the local Hugging Face cache and {why}",
            hint=f"download it where there is network (hf download {name} --local-dir DIR), "
            "then set model.name_or_path: DIR",
        )


def check_data(recipe: Recipe, tokenizer_path: str | None = None) -> None:
    """The tokenizer loads, and its chat template renders the first records of every local source."""
    from genai.data.formats import to_example
    from genai.data.prepare import ends_with_answer
    from genai.data.sources import read_records
    from genai.data.templates import template_for
    from genai.data.tokenize import tokenize_turns
    from genai.models import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(recipe.model, tokenizer_path or resolve_model_path(recipe.model))
    template = template_for(recipe, tokenizer)
    for split in ("train", "eval"):
        for i, src in enumerate(getattr(recipe.data, split)):
            if src.hub or src.path.startswith("s3://"):
                continue  # read where the job runs (hub datasets, S3 objects)
            limit = min(src.limit or SAMPLE_RECORDS, SAMPLE_RECORDS)
            records = read_records(src.model_copy(update={"limit": limit}))
            if not records:
                raise GenaiError(f"data.{split}.{i}: {src.path} has no records", hint="check the file")
            for rec in records:
                example = to_example(rec, src)
                if not ends_with_answer(example):
                    continue  # skipped by training too (with a count)
                try:
                    tokenize_turns(tokenizer, template, example, recipe.data.loss_on)
                except GenaiError:
                    raise
                except Exception as exc:  # jinja2 errors, raise_exception() in a template, bad roles
                    raise GenaiError(
                        f"{example.origin}: the chat template cannot render this record: {type(exc).__name__}: {exc}",
                        hint="fix the record, or choose another template (model.chat_template)",
                    ) from None


@check("method")
def _method(recipe: Recipe, plan: Plan) -> None:
    from genai.data.methods import format_problems

    method = recipe.train.method
    problems = format_problems(method, {"train": recipe.data.train, "eval": recipe.data.eval})
    if problems:
        hint = (
            "GRPO reads questions with their reference answers: any SFT format (the final answer is the reference)"
            if method == "grpo"
            else "preference records have prompt, chosen and rejected (format: preference; map other column "
            "names with columns:), or set train.method: sft"
        )
        raise GenaiError("\n".join(problems), hint=hint)
    if method == "grpo" and recipe.train.distributed.profile not in ("none", "ddp"):
        raise GenaiError(
            f"train.distributed.profile: GRPO samples answers with the whole model in each process; "
            f"'{recipe.train.distributed.profile}' shards it",
            hint="use ddp (or one process) for train.method: grpo",
        )


def check_generator(recipe: Recipe) -> None:
    """GRPO's vLLM sampler: one process, an unquantized model, plain LoRA (DoRA's merge is not W + BA)."""
    grpo, train = recipe.train.grpo, recipe.train
    if recipe.train.method != "grpo" or grpo.generator != "vllm":
        return
    problems = []
    dist = train.distributed
    if dist.profile != "none" and (dist.num_processes != 1 or dist.num_machines > 1):
        problems.append(f"train.distributed.profile: {dist.profile} (several processes)")
    if recipe.model.load_in_4bit:
        problems.append("model.load_in_4bit: true")
    if recipe.lora.enabled and recipe.lora.use_dora:
        problems.append("lora.use_dora: true")
    if problems:
        raise GenaiError(
            "train.grpo.generator: vllm samples in one training process from an unquantized model with plain LoRA; "
            "this recipe has " + "; ".join(problems),
            hint="set train.grpo.generator: transformers (or auto), or change those settings",
        )


@check("rewards")
def _rewards(recipe: Recipe, plan: Plan) -> None:
    if recipe.train.method == "grpo":
        from genai.rewards import build_rewards

        build_rewards(recipe.train.grpo)
        check_generator(recipe)


@check("sweep")
def _sweep(recipe: Recipe, plan: Plan) -> None:
    if recipe.sweep is not None:
        from genai.sweeps.space import check_space

        check_space(recipe)


@check("registry")
def _registry(recipe: Recipe, plan: Plan) -> None:
    """registry.sagemaker needs sagemaker.role and bucket; registry.mlflow needs MLflow installed."""
    if recipe.registry.sagemaker:
        from genai.sagemaker.session import require_settings

        require_settings(recipe.sagemaker)
    if recipe.registry.mlflow:
        import importlib.util

        from genai.errors import MissingExtraError

        if importlib.util.find_spec("mlflow") is None:  # not imported here: its telemetry starts on import
            raise MissingExtraError("mlflow", "tracking", "The MLflow Model Registry (registry.mlflow)")


@check("model and data")
def _model_and_data(recipe: Recipe, plan: Plan) -> None:
    from genai.parents import find_parent, parent_recipe_file

    if plan.sagemaker:
        if parent_recipe_file(recipe.model) or Path(recipe.model.name_or_path).is_dir():
            if find_parent(recipe) is not None:
                raise GenaiError(
                    "model.name_or_path: a SageMaker job cannot start from a run on this machine",
                    hint="merge the parent (genai merge RUN), upload the merged folder to S3 and name that, "
                    "or train the chained recipe here",
                )
        return  # the job loads the model (hub id or S3) and its tokenizer where it runs
    parent = find_parent(recipe)  # a chained recipe: the parent run must be there and finished
    if parent is None:
        check_model(recipe)
    if plan.tokenizer:
        check_data(recipe, str(parent.run.artifact_dir) if parent else None)


# ---------------------------------------------------------------------- output
def check_writable(folder: Path, field: str) -> None:
    """The folder exists or can be made, and a file can be written in it (nothing is left behind)."""
    missing = missing_dirs(folder)
    try:
        write_probe(folder)
    except OSError as exc:
        raise GenaiError(
            f"{field}: cannot write to {folder}: {exc.strerror or exc}",
            hint=f"choose a folder you can write, e.g. {field}=./runs",
        ) from None
    finally:
        for made in missing:  # only what this check created
            try:
                made.rmdir()
            except OSError:
                pass


@check("output")
def _output(recipe: Recipe, plan: Plan) -> None:
    if plan.sagemaker:
        return
    check_writable(Path(recipe.train.output_dir), "train.output_dir")
    if recipe.train.checkpoint_dir:
        check_writable(Path(recipe.train.checkpoint_dir), "train.checkpoint_dir")


# ---------------------------------------------------------------------- kernels
CPU_INSTANCE_FAMILIES = ("ml.m", "ml.c", "ml.r", "ml.t")  # SageMaker instance families without a GPU


@check("kernels")
def _kernels(recipe: Recipe, plan: Plan) -> None:
    if recipe.train.liger is not True:
        return
    from genai.training import kernels

    if plan.sagemaker:  # the job installs and runs it; its instance must have a GPU
        if recipe.sagemaker.instance_type.startswith(CPU_INSTANCE_FAMILIES):
            raise GenaiError(
                f"train.liger: true needs a GPU; sagemaker.instance_type {recipe.sagemaker.instance_type} has none",
                hint=f"choose a GPU instance (ml.g5, ml.g6, ml.p4d...), or {kernels.HINT}",
            )
        return
    import torch

    kernels.check(True, cuda=torch.cuda.is_available())


# ---------------------------------------------------------------------- serve
@check("serve")
def _serve(recipe: Recipe, plan: Plan) -> None:
    if plan.serve:
        from genai.serving.server import check_port, check_serve_host

        check_serve_host(recipe.serve, insecure=plan.insecure)
        check_port(recipe.serve)
