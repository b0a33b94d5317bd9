"""`genai families --check`: every family x {LoRA, DoRA, full} trained a few steps on its tiny build,
merged, and loaded in vLLM beside transformers; the greedy answers and their log-probs must agree in fp32.

vLLM runs in this process, one engine at a time: one on the base answers for it and for every adapter
vLLM takes by name, then one on each merged or fully fine-tuned folder, loaded as `vllm serve` loads it
(in-place `reload_weights` would be faster, but on vLLM 0.32 CPU it left a fully fine-tuned tiny Llama
3's answers off by 0.1 in log-prob). Every answer is compared with transformers (PEFT for an adapter) on
the same token ids.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from genai.errors import GenaiError
from genai.families.family import Family
from genai.families.registry import get_family
from genai.serving.parity import Answer, agreement, hf_greedy, vllm_engine

# recipe `lora` section of each method
METHODS: dict[str, dict] = {"lora": {}, "dora": {"use_dora": True}, "full": {"enabled": False}}
QUESTIONS = ("What is 12 + 30?", "Reverse the word apple.")
NEW_TOKENS = 12
STEPS = 4


@dataclass
class Cell:
    """One artifact of one family and method, as vLLM served it next to transformers."""

    family: str
    method: str  # lora | dora | full
    artifact: str  # adapter (by name) | merged | model
    passed: bool
    reason: str
    max_logprob_gap: float | None = None

    def as_dict(self) -> dict:
        """The cell as plain data (`genai families --check --json`)."""
        return asdict(self)


def parse_methods(text: str) -> list[str]:
    """'lora,full' -> ['lora', 'full'] (a clear error naming the known methods)."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise GenaiError(f"--methods: unknown {unknown or text!r}; choose from {', '.join(METHODS)}")
    return methods


def check_families(names: Iterable[str], methods: list[str], workdir: Path | None = None, report=print) -> list[Cell]:
    """Train, merge and load every family x method; one Cell per artifact (see the module docstring)."""
    from genai.serving.server import require_vllm

    families = [get_family(n) for n in names]  # unknown names fail before anything runs
    require_vllm()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # a dozen engines start: keep their chatter short
    with tempfile.TemporaryDirectory(prefix="genai-families-") as tmp:
        root = Path(workdir or tmp)
        data = _chat_sample(root)
        cells: list[Cell] = []
        for family in families:
            found = _check_family(family, methods, root, data)
            for cell in found:
                report(_line(cell))
            cells += found
        return cells


def _line(cell: Cell) -> str:
    widest = f" (max log-prob gap {cell.max_logprob_gap:.1e})" if cell.max_logprob_gap is not None else ""
    return (
        f"{'ok  ' if cell.passed else 'FAIL'} {cell.family:8} {cell.method:5} {cell.artifact:8} {cell.reason}{widest}"
    )


def _chat_sample(root: Path) -> Path:
    """The bundled chat sample without system turns (Gemma's templates refuse a system role)."""
    from genai.smoke.shrink import bundled_sample

    rows = [json.loads(line) for line in bundled_sample("messages").read_text().splitlines() if line.strip()]
    path = root / "chat.jsonl"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps({"messages": [m for m in r["messages"] if m["role"] != "system"]}) + "\n" for r in rows)
    )
    return path


def _train(family: Family, method: str, root: Path, data: Path) -> Path:
    from genai.recipe import Recipe
    from genai.training.launch import start_training

    recipe = Recipe.model_validate(
        {
            "name": f"{family.name}-{method}",
            "model": {"name_or_path": family.tiny_id, "dtype": "float32"},
            "data": {
                "train": [{"path": str(data), "format": "messages"}],
                "max_length": 256,
                "cache_dir": str(root / "cache"),
            },
            "lora": {"r": 8, "alpha": 16, "target_modules": list(family.lora_targets), **METHODS[method]},
            "train": {
                "output_dir": str(root / "runs"),
                "max_steps": STEPS,
                "micro_batch_size": 4,
                # High enough that a few steps move every answer's log-probs well past the tolerance,
                # so agreement with vLLM proves the trained weights were loaded, not the base's.
                "learning_rate": 1e-3 if method == "full" else 1e-2,
                "mixed_precision": "no",
                "num_threads": 2,
                "logging_steps": STEPS,
                "merge": method != "full",
                "exact_match": {"limit": 0},
            },
        }
    )
    return start_training(recipe, verbose=False).run_dir


def _artifacts(method: str, run: Path) -> list[tuple[str, Path]]:
    """(kind, folder) of what a run serves: the adapter where vLLM takes it by name, and the merged model."""
    from genai.serving.artifact import adapter_problems

    if method == "full":
        return [("model", run / "model")]
    found = [] if adapter_problems(run / "adapter") else [("adapter", run / "adapter")]
    return [*found, ("merged", run / "merged")]


def _prompts(tokenizer, family: Family) -> list[list[int]]:
    """The questions as token ids, rendered by the family's template (no BOS added twice)."""
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True, **dict(family.template_kwargs)
        )
        for q in QUESTIONS
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _check_family(family: Family, methods: list[str], root: Path, data: Path) -> list[Cell]:
    from transformers import AutoTokenizer

    from genai.families.tiny_builds import ensure_tiny_family_model

    base = ensure_tiny_family_model(family.name)
    tokenizer = AutoTokenizer.from_pretrained(base)
    prompts = _prompts(tokenizer, family)
    stops = family.stop_ids(tokenizer)
    served: list[tuple[str, str, Path]] = []  # (method, kind, folder)
    cells = []
    for method in methods:
        try:
            run = _train(family, method, root, data)
        except GenaiError as e:
            cells.append(Cell(family.name, method, "-", False, f"training failed: {e}"))
            continue
        served += [(method, kind, folder) for kind, folder in _artifacts(method, run)]
        if method == "dora":
            cells.append(Cell(family.name, method, "adapter", True, "not by name: vLLM serves plain LoRA only"))

    expected = {"base": hf_greedy(base, prompts, stops, NEW_TOKENS)}
    for method, kind, folder in served:
        expected[f"{method}/{kind}"] = hf_greedy(
            base if kind == "adapter" else folder,
            prompts,
            stops,
            NEW_TOKENS,
            adapter=folder if kind == "adapter" else None,
        )
    got = _vllm_answers(base, prompts, stops, served)

    base_cell = _compare(family.name, "base", "model", expected["base"], got["base"], None)
    if not base_cell.passed:  # the engine disagrees before any training: every other cell would too
        return [base_cell, *cells]
    for method, kind, _ in served:
        key = f"{method}/{kind}"
        cells.append(_compare(family.name, method, kind, expected[key], got[key], expected["base"]))
    return cells


def _compare(family: str, method: str, kind: str, hf: list[Answer], vllm: list[Answer] | str, base) -> Cell:
    if isinstance(vllm, str):  # vLLM could not load it
        return Cell(family, method, kind, False, vllm)
    if base is not None and agreement(hf, base)[0]:
        return Cell(family, method, kind, False, "training left every answer as the base's: nothing was proven")
    ok, why, widest = agreement(hf, vllm)
    what = "greedy answers equal transformers fp32" + (" (PEFT)" if kind == "adapter" else "")
    return Cell(family, method, kind, ok, what if ok else why, widest)


def _vllm_answers(
    base: Path, prompts: list[list[int]], stops: list[int], served: list[tuple[str, str, Path]]
) -> dict[str, list[Answer] | str]:
    """What vLLM answers: one engine on the base answers for it and for each adapter by name, then one
    engine on each merged or fully fine-tuned folder (each loaded as `vllm serve` would load it)."""
    from genai.serving.lora_check import vllm_rank

    adapters = [(m, folder) for m, kind, folder in served if kind == "adapter"]
    rank = max((vllm_rank(json.loads((f / "adapter_config.json").read_text())) for _, f in adapters), default=None)
    got: dict[str, list[Answer] | str] = {}
    with vllm_engine(base, rank) as answer:
        from vllm.lora.request import LoRARequest

        got["base"] = answer(prompts, stops, NEW_TOKENS)
        for i, (method, folder) in enumerate(adapters, start=1):
            got[f"{method}/adapter"] = answer(
                prompts, stops, NEW_TOKENS, LoRARequest(f"{method}-adapter", i, str(folder))
            )
    for method, kind, folder in served:
        if kind != "adapter":
            try:
                with vllm_engine(folder, None) as answer:
                    got[f"{method}/{kind}"] = answer(prompts, stops, NEW_TOKENS)
            except Exception as e:  # noqa: BLE001 - vLLM refusing the folder is the finding, reported per cell
                got[f"{method}/{kind}"] = f"vLLM could not load {folder}: {type(e).__name__}: {e}"
    return got
