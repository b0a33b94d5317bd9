"""`genai run RECIPE --smoke`: the smoke recipe through train, merge, eval and serve, each promise
of the train-to-serve contract checked on the way, the checklist printed and kept in RUN/smoke.json."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from genai.atomic import atomic_write_json
from genai.data.formats import Example
from genai.data.tokenize import render_chat
from genai.errors import GenaiError
from genai.families.family import Family
from genai.recipe import Recipe, load_recipe
from genai.smoke import data_checks, endpoint_checks, model_checks
from genai.smoke.checklist import Checklist
from genai.smoke.shrink import smoke_recipe


@dataclass
class SmokeResult:
    """The checklist, the smoke run folder (None when it stopped before training) and the seconds taken."""

    checklist: Checklist
    run_dir: Path | None
    seconds: float


def family_of(recipe: Recipe) -> Family:
    """The recipe's model family (a clear error listing the known ones when unknown)."""
    from genai.families.registry import detect_family

    return detect_family(recipe.model.name_or_path)


def _last_answer(ex: Example) -> int:
    return max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")


def _probe(examples: list[Example]) -> Example:
    """The conversation the endpoint checks ask: a plain one (its answer is text, not a tool call)."""
    plain = [ex for ex in examples if ex.messages and not ex.messages[_last_answer(ex)].get("tool_calls")]
    return (plain or examples)[0]


def run_smoke(recipe_path: str | Path, overrides: list[str], console: Console | None = None) -> SmokeResult:
    """Smoke-test a recipe on its family's tiny build; the checklist says what held."""
    from genai.data.prepare import load_examples
    from genai.data.templates import template_for
    from genai.models import load_tokenizer

    start = time.perf_counter()
    console = console or Console(stderr=True)
    recipe = load_recipe(recipe_path, overrides)
    from genai.parents import parent_recipe_file, parent_run

    if parent_recipe_file(recipe.model) or (Path(recipe.model.name_or_path).is_dir() and parent_run(recipe.model)):
        raise GenaiError(
            f"model.name_or_path: '{recipe.model.name_or_path}' is an earlier run or its recipe: --smoke checks a "
            "recipe on its model family's tiny build",
            hint="smoke the first recipe of the chain (the one that names a model)",
        )
    family = family_of(recipe)
    output = Path(recipe.train.output_dir)
    smoke, changes = smoke_recipe(recipe, family, Path(recipe_path).resolve().parent, output)
    checklist = Checklist(family.name, changes)
    console.rule(f"[bold]smoke: {recipe.name} as {family.title} ({family.tiny_id})")
    for change in changes:
        console.print(f"  {change}", markup=False, highlight=False)

    tokenizer = load_tokenizer(smoke.model)
    template = template_for(smoke, tokenizer)
    examples = load_examples(smoke.data.train)
    data_checks.check_data(examples, tokenizer, template, smoke.data.loss_on, family, checklist)
    tool_examples = [ex for ex in examples if ex.calls_tools]
    _check_tools_declared(family, tool_examples, checklist)
    if not checklist.passed:
        return _finish(checklist, None, start, console)

    run_dir = _train(smoke, checklist)
    if run_dir is None:
        return _finish(checklist, None, start, console)
    _artifact_checks(smoke, run_dir, checklist)
    questions = _questions(examples, tokenizer, template)
    _merged_parity(run_dir, questions, checklist)
    by_name = _endpoint_checks(smoke, run_dir, family, examples, tokenizer, template, checklist, console)
    if by_name:  # the server took the adapter: the merged model must load in vLLM as well
        _merged_in_vllm(run_dir, questions, tokenizer, family, checklist)
    if tool_examples and family.tool_parser:
        ex = tool_examples[0]
        i = next(i for i, m in enumerate(ex.messages) if m.get("tool_calls"))
        turn = render_chat(tokenizer, template, ex.messages[: i + 1], False, ex.tools)
        turn = turn[len(render_chat(tokenizer, template, ex.messages[:i], True, ex.tools)) :]
        endpoint_checks.tool_parser_reads_training(
            family.tool_parser, tokenizer, turn, ex.messages[i]["tool_calls"], ex.tools or [], checklist
        )
    _eval(smoke, run_dir, checklist)
    return _finish(checklist, run_dir, start, console)


def _check_tools_declared(family: Family, tool_examples: list[Example], checklist: Checklist) -> None:
    if not tool_examples:
        checklist.skip("tool calling", "no tools in the data")
    elif family.tool_parser is None:
        checklist.check(
            "tool calling",
            False,
            f"{tool_examples[0].origin}: the data has tools, but vLLM has no tool-call parser for {family.title}: "
            "the endpoint could not return tool_calls",
        )
    else:
        checklist.check(
            "tool calling",
            True,
            f"{len(tool_examples)} samples with tools; served with --tool-call-parser {family.tool_parser}",
        )


def _train(smoke: Recipe, checklist: Checklist) -> Path | None:
    from genai.training.launch import start_training

    try:
        result = start_training(smoke, verbose=False)
    except GenaiError as e:
        checklist.check("trains a few steps", False, str(e))
        return None
    losses = [m["loss"] for m in _metrics(result.run_dir) if "loss" in m]
    checklist.check(
        "trains a few steps",
        bool(losses),
        f"{smoke.train.max_steps} steps, loss {losses[-1]:.3f}" if losses else "no loss logged",
    )
    return result.run_dir


def _metrics(run_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _questions(examples: list[Example], tokenizer, template: str | None, n: int = 3) -> list[str]:
    """Short chat prompts from the data: each conversation's system turn and its last question."""
    prompts = []
    for ex in examples:
        if ex.messages and len(prompts) < n:
            msgs = ex.messages[: _last_answer(ex)]
            asked = [m for m in msgs if m["role"] == "system"] + [m for m in msgs if m["role"] == "user"][-1:]
            prompts.append(render_chat(tokenizer, template, asked, True, origin=ex.origin))
    return prompts


def _merged_parity(run_dir: Path, prompts: list[str], checklist: Checklist) -> None:
    """The merged model answers as the adapter on its base does (transformers, fp32, greedy)."""
    import json

    merged, adapter = run_dir / "merged", run_dir / "adapter"
    if not prompts or not (merged / "config.json").exists():
        checklist.skip("merged model = adapter (transformers fp32)", "no merged model or no chat prompt")
        return
    base = Path(json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"])
    with_adapter = model_checks.greedy(base, prompts, 24, adapter=adapter)
    folded = model_checks.greedy(merged, prompts, 24)
    same = with_adapter == folded
    checklist.check(
        "merged model = adapter (transformers fp32)",
        same,
        f"{len(prompts)} greedy answers equal" if same else f"adapter {with_adapter} vs merged {folded}",
    )


def _merged_in_vllm(run_dir: Path, prompts: list[str], tokenizer, family: Family, checklist: Checklist) -> None:
    """The merged model loads in vLLM too (an engine in this process) and answers as transformers does."""
    from genai.serving.parity import agreement, hf_greedy, vllm_engine

    name = "merged model loads in vLLM (greedy = transformers fp32)"
    merged = run_dir / "merged"
    if not prompts or not (merged / "config.json").exists():
        checklist.skip(name, "no merged model or no chat prompt")
        return
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    stops = family.stop_ids(tokenizer)
    want = hf_greedy(merged, ids, stops, 24)
    try:
        with vllm_engine(merged, None) as answer:
            got = answer(ids, stops, 24)
    except Exception as e:  # noqa: BLE001 - vLLM refusing the folder is the finding
        checklist.check(name, False, f"vLLM could not load {merged}: {type(e).__name__}: {str(e)[-400:]}")
        return
    ok, why, _ = agreement(want, got)
    checklist.check(name, ok, why)


def _artifact_checks(smoke: Recipe, run_dir: Path, checklist: Checklist) -> None:
    if not smoke.lora.enabled:
        checklist.skip("LoRA target modules matched", "full fine-tuning")
        checklist.skip("vLLM LoRA preflight", "full fine-tuning: the model is served as it is")
        return
    adapter = run_dir / "adapter"
    model_checks.lora_targets(adapter, smoke.lora.target_modules, checklist)
    model_checks.vllm_lora(adapter, checklist)


def _endpoint_checks(smoke, run_dir, family, examples, tokenizer, template, checklist, console) -> bool:
    """The served artifact through the real server; True when it served the adapter by name."""
    from genai.serving.serve import start_server

    probe = _probe(examples)
    if probe.messages is None:
        checklist.skip("endpoint", "completion-format data: no chat turn to ask")
        return False
    messages = probe.messages[: _last_answer(probe)]
    prompt = render_chat(tokenizer, template, messages, True, probe.tools)
    trained_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    # The greedy and stop checks ask one short question (the system turn and the last user turn, no
    # tools): the tiny build was pre-trained on short chats, and the contract is the same.
    question = [m for m in messages if m["role"] == "system"] + [
        next(m for m in reversed(messages) if m["role"] == "user")
    ]
    asked = render_chat(tokenizer, template, question, True)
    try:
        server = start_server(str(run_dir), [], console)
    except GenaiError as e:
        checklist.check("loads in vLLM", False, str(e)[-600:])
        return False
    try:
        served = server.target
        what = "LoRA by name" if served.adapter is not None else "merged" if "merged" in served.model else "model"
        checklist.check(
            f"loads in vLLM ({what})", True, f"{served.model}" + (f" + {served.adapter}" if served.adapter else "")
        )
        expected = model_checks.greedy(Path(served.model), [asked], 48, adapter=served.adapter)[0]
        requests = (
            (
                "served prompt",
                lambda: endpoint_checks.prompt_parity(server, messages, trained_ids, probe.tools, checklist, what),
            ),
            (
                "greedy answer",
                lambda: endpoint_checks.greedy_and_stop(
                    server, question, None, expected, family.stop_tokens, checklist, what
                ),
            ),
            ("response_format json_schema", lambda: endpoint_checks.json_schema(server, checklist)),
        )
        if family.thinking_switch and template:
            switch = family.thinking_switch
            requests += (
                (
                    f"thinking switch the same at train and serve ({switch})",
                    lambda: endpoint_checks.thinking_switch(server, tokenizer, template, switch, question, checklist),
                ),
            )
        tool_ex = next((ex for ex in examples if ex.calls_tools and ex.tools), None)
        if tool_ex is not None and served_tools(served, smoke):
            first_call = next(i for i, m in enumerate(tool_ex.messages) if m.get("tool_calls"))
            call = (tool_ex.messages[:first_call], tool_ex.tools)
            requests += (
                ("tool call through the endpoint", lambda: endpoint_checks.tool_call_request(server, *call, checklist)),
            )
        for name, request in requests:
            try:
                request()
            except GenaiError as e:
                checklist.check(name, False, f"{e} (see {server.log_path})")
    finally:
        server.stop()
    return served.adapter is not None


def served_tools(target, smoke: Recipe) -> bool:
    """Whether the server was started with a tool-call parser."""
    from genai.serving.engine import tool_parser

    return tool_parser(target, smoke.serve) is not None


def _eval(smoke: Recipe, run_dir: Path, checklist: Checklist) -> None:
    if not smoke.eval.tasks:
        checklist.skip("lm-eval on the smoke model", "the recipe has no eval.tasks")
        return
    from genai.evaluation.runner import DatasetUnavailable, evaluate

    _offline_when_unreachable()
    try:
        report = evaluate(str(run_dir), [])
    except DatasetUnavailable as e:  # the task's data is on the hub and this machine is offline
        checklist.skip("lm-eval on the smoke model", str(e))
        return
    except GenaiError as e:
        checklist.check("lm-eval on the smoke model", False, str(e))
        return
    checklist.check(
        "lm-eval on the smoke model",
        True,
        f"{len(report.rows)} metrics from {', '.join(smoke.eval.tasks)} (limit {smoke.eval.limit:g})",
    )


def _offline_when_unreachable() -> None:
    """An unreachable hub means offline mode for the eval: `datasets` would otherwise retry a hub task's
    download for about 25 s before failing (the item is then skipped, as it is with HF_HUB_OFFLINE=1)."""
    import os

    from genai.doctor import env_flag, hub_reachable

    if env_flag("HF_HUB_OFFLINE") or env_flag("HF_DATASETS_OFFLINE"):
        return
    if not hub_reachable():  # probed once per process: the smoke's model lookup may have asked already
        os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def _finish(checklist: Checklist, run_dir: Path | None, start: float, console: Console) -> SmokeResult:
    seconds = time.perf_counter() - start
    console.rule(f"[bold]smoke checklist ({checklist.family}, {seconds:.0f} s)")
    checklist.render(console)
    if run_dir is not None:
        atomic_write_json(run_dir / "smoke.json", {**checklist.to_dict(), "seconds": round(seconds, 1)})
    console.print("smoke: [green]passed[/]" if checklist.passed else "smoke: [bold red]FAILED[/] (see the items above)")
    return SmokeResult(checklist, run_dir, seconds)


def smoke_of(recipe_path: str | Path, overrides: list[str]) -> Recipe:
    """The smoke recipe of a recipe file (what `genai train --smoke` trains)."""
    recipe = load_recipe(recipe_path, overrides)
    from genai.parents import parent_recipe_file, parent_run

    if parent_recipe_file(recipe.model) or (Path(recipe.model.name_or_path).is_dir() and parent_run(recipe.model)):
        raise GenaiError(
            f"model.name_or_path: '{recipe.model.name_or_path}' is an earlier run or its recipe: --smoke checks a "
            "recipe on its model family's tiny build",
            hint="smoke the first recipe of the chain (the one that names a model)",
        )
    family = family_of(recipe)
    smoke, _ = smoke_recipe(recipe, family, Path(recipe_path).resolve().parent, Path(recipe.train.output_dir))
    return smoke


def latest_smoke_run(recipe_path: str | Path, overrides: list[str]) -> str:
    """The newest finished smoke run of a recipe (what `genai eval/serve --smoke` take)."""
    from genai.runs import latest_trained_run

    return str(latest_trained_run(smoke_of(recipe_path, overrides)).path)
