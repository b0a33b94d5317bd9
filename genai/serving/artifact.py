"""What to serve: a recipe (its latest finished run), a run folder, an adapter or a model folder.

Whatever is served uses the artifact's own tokenizer, chat template and generation config
(EOS), so the endpoint formats and stops exactly as training did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import Recipe, ServeSection, load_recipe
from genai.runs import RECIPE_FILE, Run, choose_run
from genai.serving.lora_check import vllm_lora_problems, vllm_rank


@dataclass
class ServeTarget:
    """What one engine serves: a model, optionally a LoRA adapter by name, and the artifact's files."""

    model: str  # --model: base (for LoRA) or the full model folder / hub id
    model_name: str  # the name the base/full model is served under
    artifact_dir: Path  # tokenizer + chat template + generation config come from here
    adapter: Path | None = None  # LoRA adapter folder, served by name beside the base
    adapter_name: str | None = None
    lora_rank: int | None = None
    trust_remote_code: bool = False
    run_dir: Path | None = None
    base: str | None = None  # the model training started from: what eval scores as "base"
    chosen: str | None = None  # which run a recipe target resolved to, and why (said to the user)

    @property
    def names(self) -> list[str]:
        """Every model name the endpoint answers to (fine-tuned first)."""
        return [n for n in (self.adapter_name, self.model_name) if n]

    @property
    def default_name(self) -> str:
        """The fine-tuned model: the adapter when there is one."""
        return self.adapter_name or self.model_name


def adapter_problems(adapter: Path) -> list[str]:
    """Why vLLM cannot serve this adapter by name (empty: it can)."""
    return vllm_lora_problems(json.loads((adapter / "adapter_config.json").read_text()))


def _from_adapter(adapter: Path, name: str, base_name: str | None, trust: bool, run: Path | None) -> ServeTarget:
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    problems = vllm_lora_problems(cfg)
    if problems:
        raise GenaiError(
            f"{adapter}: vLLM cannot serve this adapter by name: {'; '.join(problems)}",
            hint="serve the merged model: serve.artifact=merged or auto (genai merge RUN)",
        )
    base = cfg["base_model_name_or_path"]
    return ServeTarget(
        model=base,
        model_name=base_name or base,
        artifact_dir=adapter,
        adapter=adapter,
        adapter_name=name,
        lora_rank=vllm_rank(cfg),
        trust_remote_code=trust,
        run_dir=run,
        base=base,
    )


def check_weights(folder: Path, what: str) -> None:
    """An artifact folder must still hold its config and safetensors weights (a clear error if deleted)."""
    config = "adapter_config.json" if what == "adapter" else "config.json"
    missing = [config] if not (folder / config).exists() else []
    if not any(folder.glob("*.safetensors")):
        missing.append("*.safetensors")
    if missing:
        raise GenaiError(
            f"{folder}: the {what}'s files are missing ({', '.join(missing)}): deleted or moved?",
            hint="train the recipe again, or point at a run whose artifact is whole (genai runs list)",
        )


def from_run(run: Path, recipe: Recipe) -> ServeTarget:
    """What a trained run serves under the recipe's `serve` settings (base + LoRA, merged, or the model)."""
    from genai.models import start_model_path

    kind = Run(run).artifact()["kind"]
    serve = recipe.serve
    name = serve.served_name or recipe.name
    trust = recipe.model.trust_remote_code
    # What training started from (eval's "before"): the recipe's model, or a chained recipe's parent run.
    base = start_model_path(recipe)
    fallback = None
    if kind == "adapter" and serve.artifact == "auto" and (problems := adapter_problems(run / "adapter")):
        fallback = _merge_for_vllm(run, problems)
    if serve.artifact == "merged" or fallback:
        merged = Run(run).merged_dir
        if not (merged / "config.json").exists():
            raise GenaiError(f"{run}: no merged model", hint=f"genai merge {run}, or serve.artifact=adapter")
        check_weights(merged, "merged model")
        return ServeTarget(
            model=str(merged),
            model_name=name,
            artifact_dir=merged,
            trust_remote_code=trust,
            run_dir=run,
            base=base,
            chosen=fallback,
        )
    if kind == "adapter":
        check_weights(run / "adapter", "adapter")
        chained = bool(Run(run).manifest().get("parent"))
        target = _from_adapter(run / "adapter", name, None if chained else recipe.model.name_or_path, trust, run)
        if chained:  # eval's "before" is the parent run, not the base its adapter sits on
            target = replace(target, base=base)
        if target.model.startswith("/") and not Path(target.model).is_dir():
            raise GenaiError(
                f"{run}: the adapter's base model folder is gone: {target.model}",
                hint="restore it there (genai/tiny-llama is rebuilt by any genai train of it), or train again",
            )
        return target
    model = run / "model"
    check_weights(model, "model")
    return ServeTarget(
        model=str(model), model_name=name, artifact_dir=model, trust_remote_code=trust, run_dir=run, base=base
    )


def _merge_for_vllm(run: Path, problems: list[str]) -> str:
    """An adapter vLLM refuses is served merged: merge it now if needed, record why, and say it."""
    if not (Run(run).merged_dir / "config.json").exists():
        from genai.training.export import merge_run

        check_weights(run / "adapter", "adapter")
        merge_run(Run(run))
    why = f"serving the merged model: vLLM cannot load this adapter by name ({'; '.join(problems)})"
    Run(run).update_manifest(serve_fallback={"artifact": "merged", "why": why})
    return why


def resolve(
    target: str, overrides: list[str] | tuple[str, ...] = (), *, latest: bool = False, evaluating: bool = False
) -> tuple[ServeTarget, ServeSection, Recipe | None]:
    """Turn the CLI argument into what to serve, with the serve settings that apply.

    A recipe means its newest run that passed its gate (`latest`: its newest finished run; when
    `evaluating`, the newest finished run if none has been gated yet). A run folder is taken as
    named; one whose gate failed is said so in `chosen`."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        recipe = load_recipe(path, overrides)
        run, why = choose_run(recipe, latest=latest, fallback=evaluating)
        chosen = f"run {run.path}: {why}" + _gate_warning(run, evaluating)
        return _said(from_run(run.path, recipe), chosen), recipe.serve, recipe
    if (path / RECIPE_FILE).exists():
        recipe = load_recipe(path / RECIPE_FILE, overrides)
        warning = _gate_warning(Run(path), evaluating)
        return _said(from_run(path, recipe), warning.lstrip("; ")), recipe.serve, recipe
    serve = _serve_only(overrides)
    if (path / "adapter_config.json").exists():
        return _from_adapter(path, serve.served_name or path.parent.name or "adapter", None, False, None), serve, None
    if (path / "config.json").exists():
        return ServeTarget(model=str(path), model_name=serve.served_name or path.name, artifact_dir=path), serve, None
    raise GenaiError(
        f"{target}: not a recipe, a run folder, an adapter or a model folder",
        hint="give recipes/NAME.yaml, runs/NAME/RUN_ID, or a folder with config.json",
    )


def _said(target: ServeTarget, first: str) -> ServeTarget:
    """Which run and why, then what the target itself has to say (a merged fallback)."""
    return replace(target, chosen="; ".join(filter(None, (first, target.chosen))) or None)


def _gate_warning(run: Run, evaluating: bool) -> str:
    if evaluating or run.gate_verdict() is not False:
        return ""
    return (
        f"; warning: run {run.name} FAILED its gate (see {run.eval_dir});"
        " served because it was asked for by name or --latest"
    )


def _serve_only(overrides) -> ServeSection:
    """serve.* overrides for a bare model folder (no recipe to hold them)."""
    from pydantic import ValidationError

    from genai.recipe import apply_override, parse_override

    data: dict = {"serve": {}}
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] != "serve":
            raise GenaiError(f"override '{text}': only serve.* settings apply when serving a folder")
        apply_override(data, keys, value, text)
    try:
        return ServeSection.model_validate(data["serve"])
    except ValidationError as exc:
        first = exc.errors()[0]
        raise GenaiError(f"command-line override: serve.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
