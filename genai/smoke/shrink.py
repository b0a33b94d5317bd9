"""The smoke recipe: the user's recipe as written, but for the model (its family's tiny build),
the data (the first records, or a bundled sample in the same format when it lives on the hub),
the length of training, and the machine (CPU, fp32, one process). Each change is said."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from genai.families.family import Family
from genai.recipe import DataSource, Recipe

RECORDS = 12  # records of each data source the smoke trains on
STEPS = 6


def bundled_sample(fmt: str, *, tools: bool = False) -> Path:
    """The bundled offline sample for a data format (tool-calling conversations for `tools`)."""
    name = "tools" if tools else fmt
    return Path(str(resources.files("genai").joinpath(f"assets/smoke/{name}.jsonl")))


def _source(src: DataSource, recipe_dir: Path, changes: list[str], tools: bool) -> DataSource:
    if src.hub is not None or (src.path or "").startswith("s3://"):
        sample = bundled_sample(src.format, tools=tools and src.format == "messages")
        changes.append(f"data {src.hub or src.path}: the bundled {sample.stem} sample (offline, same format)")
        return DataSource(path=str(sample), format=src.format, system_prompt=src.system_prompt, limit=RECORDS)
    path = Path(src.path)
    path = path if path.is_absolute() else recipe_dir / path
    return src.model_copy(update={"path": str(path), "limit": min(src.limit or RECORDS, RECORDS)})


def smoke_model(recipe: Recipe, family: Family) -> tuple[str, str]:
    """(model the smoke trains, what it is): the real tokenizer and config shrunk when their files are at
    hand (genai.families.shrunk), else the family's tiny build."""
    from genai.families.shrunk import ensure_shrunk_model, real_files

    real, where = real_files(recipe.model)
    tiny = f"{family.tiny_id} ({family.title} architecture, shrunk)"
    if real is None:
        return family.tiny_id, tiny if where == "a built-in model" else f"{tiny}; real files: {where}"
    try:
        path = ensure_shrunk_model(family, real)
    except Exception as e:  # noqa: BLE001 - an exotic config or tokenizer: say so, smoke on the tiny build
        return family.tiny_id, f"{tiny}; the real files from {where} could not be shrunk ({type(e).__name__}: {e})"
    return str(path), f"its real tokenizer and config (from {where}) at {family.title} tiny size: {path}"


def smoke_recipe(
    recipe: Recipe, family: Family, recipe_dir: Path, output_dir: Path, *, tools: bool = False
) -> tuple[Recipe, list[str]]:
    """The recipe to smoke-test, and the list of what was changed (everything else is as written)."""
    name, said = smoke_model(recipe, family)
    changes = [f"model {recipe.model.name_or_path}: {said}"]
    model = recipe.model.model_copy(
        update={"name_or_path": name, "revision": None, "trust_remote_code": False, "dtype": "float32"}
    )
    if recipe.model.load_in_4bit:
        model = model.model_copy(update={"load_in_4bit": False})
        changes.append("model.load_in_4bit: off (4-bit loading needs a CUDA GPU; the adapter is the same)")
    if recipe.model.attn_implementation == "flash_attention_2":
        model = model.model_copy(update={"attn_implementation": "sdpa"})
    data = recipe.data.model_copy(
        update={
            "train": [_source(s, recipe_dir, changes, tools) for s in recipe.data.train],
            "eval": [_source(s, recipe_dir, changes, tools) for s in recipe.data.eval],
            "max_length": min(recipe.data.max_length, 2048),
            "cache_dir": str(output_dir / "cache"),
        }
    )
    train = recipe.train.model_copy(
        update={
            "output_dir": str(output_dir),
            "max_steps": STEPS,
            "micro_batch_size": 2,
            "gradient_accumulation_steps": 1,
            "warmup_steps": 0,
            "warmup_ratio": 0.0,
            "mixed_precision": "no",
            "num_threads": 2,
            "logging_steps": STEPS,
            "eval_steps": None,
            "save_steps": None,
            "checkpoint_dir": None,
            "merge": recipe.lora.enabled,
            "exact_match": recipe.train.exact_match.model_copy(update={"limit": 4, "max_new_tokens": 16}),
            "distributed": recipe.train.distributed.model_copy(update={"profile": "none", "num_processes": 1}),
        }
    )
    changes.append(f"train: {STEPS} steps of 2 records on CPU in fp32, one process; merged too (LoRA)")
    evaluation = recipe.eval.model_copy(update={"limit": 4, "backend": "hf", "batch_size": 4, "gate": []})
    serve = recipe.serve.model_copy(
        update={
            "host": "127.0.0.1",
            "port": 0,
            "kv_cache_gib": 1,
            "max_model_len": 1024,
            "max_num_seqs": 4,
            # A tiny model given JSON freedom writes whitespace forever: constrain it to compact JSON.
            "extra_args": [
                *recipe.serve.extra_args,
                "--structured-outputs-config",
                '{"backend": "xgrammar", "disable_any_whitespace": true}',
            ],
        }
    )
    smoke = recipe.model_copy(
        update={
            "name": f"{recipe.name}-smoke",
            "model": model,
            "data": data,
            "train": train,
            "eval": evaluation,
            "serve": serve,
            "tracking": recipe.tracking.model_copy(update={"mlflow": False, "tensorboard": False}),
        }
    )
    return smoke, changes
