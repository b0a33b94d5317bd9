"""Reward functions for GRPO (train.method: grpo): the built-ins, your own `module:function`, and the
weighted total that training makes likelier.

Every reward is called as fn(prompts, completions, references, **args) -> list[float]: one float per
completion, where references[i] is the reference answer (from the training data) of completion i's prompt.
build_rewards() checks a recipe's rewards up front (names, args, patterns, suite tasks, imports) and raises
a GenaiError naming the field; a Reward turns a failure or a bad value during training into one too.
Nothing heavy is imported here: lm-eval only by the suite reward, torch and transformers never.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import inspect
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genai.errors import GenaiError

if TYPE_CHECKING:
    from genai.recipe import GrpoSection

RewardFn = Callable[..., Sequence[float]]
LEADING = ("prompts", "completions", "references")  # what every reward takes first, positionally
_EMPTY = inspect.Parameter.empty


class _ArgError(GenaiError):
    """A reward's arg is wrong: build_rewards() names it as train.grpo.rewards.<i>.args.<arg>."""

    def __init__(self, arg: str, detail: str, *, hint: str | None = None):
        self.arg, self.detail = arg, detail
        super().__init__(f"args.{arg}: {detail}", hint=hint)


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class RewardArg:
    """One option of a built-in reward: its name, what it does, and its default (none when required)."""

    name: str
    help: str
    required: bool
    default: Any = None

    def describe(self) -> str:
        """'pattern (required)' or 'mode: fullmatch', for listings and hints."""
        if self.required:
            return f"{self.name} (required)"
        shown = self.default if isinstance(self.default, str) else json.dumps(self.default)  # as YAML writes it
        return f"{self.name}: {shown}"


@dataclass(frozen=True)
class RewardDef:
    """A built-in reward: its function, a one-line description, its args, and a check of their values."""

    name: str
    fn: RewardFn
    description: str
    args: tuple[RewardArg, ...]
    check: Callable[[dict[str, Any]], None] | None = None

    def as_dict(self) -> dict:
        """Plain data for `genai rewards --json`."""
        return {
            "name": self.name,
            "description": self.description,
            "args": [{"name": a.name, "required": a.required, "default": a.default, "help": a.help} for a in self.args],
        }


REWARDS: dict[str, RewardDef] = {}


def register(
    name: str,
    description: str,
    args: dict[str, str] | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
):
    """Add a built-in reward. `args` documents each keyword arg of the function (defaults are read from its
    signature); `check` gets the args with defaults filled in and raises _ArgError for a bad value."""
    helps = args or {}

    def deco(fn: RewardFn) -> RewardFn:
        params = [p for p in inspect.signature(fn).parameters.values() if p.name not in LEADING]
        if {p.name for p in params} != set(helps):
            raise TypeError(f"reward '{name}': document exactly its args {[p.name for p in params]}, got {list(helps)}")
        specs = tuple(RewardArg(p.name, helps[p.name], p.default is _EMPTY, _default(p)) for p in params)
        REWARDS[name] = RewardDef(name, fn, description, specs, check)
        return fn

    return deco


def _default(param: inspect.Parameter) -> Any:
    return None if param.default is _EMPTY else param.default


def describe_rewards() -> str:
    """`genai rewards`: every built-in with its description and args, and how to add your own."""
    lines = []
    for d in REWARDS.values():
        lines.append(f"{d.name:12} {d.description}")
        for a in d.args:
            lines.append(f"{'':14}{a.describe():28} {a.help}")
    lines += [
        "",
        "Use them in a recipe as train.grpo.rewards: [{name: exact_match, weight: 1.0, args: {...}}, ...].",
        "Your own: name: 'module:function' (module.py in the current folder or on PYTHONPATH) with",
        "train.grpo.trust_reward_code: true; it is called as fn(prompts, completions, references, **args)",
        "and returns one float per completion.",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- arg checks


def _want(args: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """args[name], which must be of `kind` (true and false are not numbers here)."""
    value = args[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _ArgError(name, f"must be {what}, got {value!r}")
    return value


def _check_exact_match(args: dict[str, Any]) -> None:
    _want(args, "ignore_case", bool, "true or false")


def _check_numeric(args: dict[str, Any]) -> None:
    tolerance = _want(args, "tolerance", (int, float), "a number")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise _ArgError("tolerance", f"must be a finite number >= 0, got {tolerance!r}")


def _check_regex(args: dict[str, Any]) -> None:
    pattern = _want(args, "pattern", str, "a regular expression (a string)")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _ArgError(
            "pattern",
            f"{pattern!r} is not a valid regular expression: {exc}",
            hint="Python's re syntax; in YAML, single-quote the pattern so backslashes stay as written",
        ) from None
    if args["mode"] not in ("search", "fullmatch"):
        raise _ArgError("mode", f"must be search or fullmatch, got {args['mode']!r}")


def _check_length(args: dict[str, Any]) -> None:
    if _want(args, "max_chars", int, "a whole number of characters") < 1:
        raise _ArgError("max_chars", f"must be at least 1, got {args['max_chars']}")


def _check_suite(args: dict[str, Any]) -> None:
    _want(args, "task", str, "a bundled task name")
    if args["metric"] is not None:
        _want(args, "metric", str, "a metric name such as exact_match (or metric,filter)")
    _suite_scorer(args["task"], args["metric"])


# ----------------------------------------------------------------------------- the built-ins


@register(
    "exact_match",
    "1.0 when the completion equals the reference after stripping whitespace, else 0.0.",
    {"ignore_case": "compare without regard to case"},
    check=_check_exact_match,
)
def exact_match(prompts, completions, references, *, ignore_case: bool = False) -> list[float]:
    """1.0 where completion.strip() == reference.strip() (case-folded when ignore_case), else 0.0."""

    def norm(text: str) -> str:
        return text.strip().casefold() if ignore_case else text.strip()

    return [float(norm(c) == norm(r)) for c, r in zip(completions, references, strict=True)]


# A number: optional sign, digits with optional thousands commas, optional decimals; not inside a word.
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)")


def last_number(text: str) -> Decimal | None:
    """The last number in a text ('1,234.5' -> 1234.5, '-3' -> -3), or None when it has none."""
    found = _NUMBER.findall(text)
    return Decimal(found[-1].replace(",", "")) if found else None


@register(
    "numeric",
    "1.0 when the last number in the completion equals the reference's number, else 0.0 (no number: 0.0).",
    {"tolerance": "largest absolute difference still counted as equal"},
    check=_check_numeric,
)
def numeric(prompts, completions, references, *, tolerance: float = 0.0) -> list[float]:
    """1.0 where the completion's last number is within `tolerance` of the reference's last number."""
    limit = Decimal(str(tolerance))
    out = []
    for c, r in zip(completions, references, strict=True):
        got, want = last_number(c), last_number(r)
        out.append(float(got is not None and want is not None and abs(got - want) <= limit))
    return out


@register(
    "regex",
    "A format reward: 1.0 when the completion (as generated) matches the pattern, else 0.0.",
    {
        "pattern": "a Python regular expression, e.g. '\\d+' ((?s) lets . match newlines)",
        "mode": "fullmatch: the whole completion must match; search: anywhere in it",
    },
    check=_check_regex,
)
def regex(prompts, completions, references, *, pattern: str, mode: str = "fullmatch") -> list[float]:
    """1.0 where re.fullmatch (or re.search) finds the pattern in the completion, else 0.0."""
    compiled = re.compile(pattern)
    match = compiled.fullmatch if mode == "fullmatch" else compiled.search
    return [float(match(c) is not None) for c in completions]


@register(
    "length",
    "A length penalty in characters: 0.0 up to max_chars, then down to -1.0 at twice that, and -1.0 beyond.",
    {"max_chars": "the longest completion that is not penalised"},
    check=_check_length,
)
def length(prompts, completions, references, *, max_chars: int) -> list[float]:
    """0.0 for len <= max_chars, -(len - max_chars) / max_chars up to 2 * max_chars, then -1.0."""
    return [max(-1.0, min(0.0, (max_chars - len(c)) / max_chars)) for c in completions]


@register(
    "suite",
    "A bundled eval task's metric (genai eval --list): its filters on the completion, its metric vs the reference.",
    {
        "task": "a bundled generate_until task, e.g. quickstart_addition",
        "metric": "its metric, e.g. exact_match, or exact_match,strip to choose the filter (default: its first)",
    },
    check=_check_suite,
)
def suite(prompts, completions, references, *, task: str, metric: str | None = None) -> list[float]:
    """The task's filter pipeline applied to each completion, scored by its metric against the reference."""
    return _suite_scorer(task, metric)(completions, references)


# ----------------------------------------------------------------------------- the suite reward

# lm-eval metrics that compare one prediction to one reference (the rest score a whole corpus or loglikelihoods).
SUITE_METRICS = ("exact_match",)
_NOT_METRIC_KWARGS = ("metric", "aggregation", "higher_is_better", "hf_evaluate")


def _lm_eval():
    """lm-eval's filter and metric registries (importing its filters and metrics registers them)."""
    try:
        import lm_eval.api.metrics  # noqa: F401
        import lm_eval.filters  # noqa: F401
        from lm_eval.api import registry
    except ImportError as exc:
        raise GenaiError(
            "the suite reward needs lm-eval (the lm_eval package), which is not installed",
            hint="pip install 'lm-eval[api]>=0.4.9,<0.5' (a dependency of genai: reinstalling genai brings it)",
        ) from exc
    return registry


class _SuiteScorer:
    """A bundled task's filter pipeline and per-answer metric, applied as lm-eval applies them."""

    def __init__(self, filters: list[Callable], metric_fn: Callable, metric: str, kwargs: dict[str, Any]):
        self.filters, self.metric_fn, self.metric, self.kwargs = filters, metric_fn, metric, kwargs

    def prediction(self, completions: list[str]) -> list[str]:
        """Each completion through the task's filters (lm-eval's own), one answer each."""
        resps: Any = [[c] for c in completions]
        docs = [{} for _ in completions]  # the task's dataset row is not known here: filters that need it fail
        for make in self.filters:
            resps = list(make().apply(resps, docs))
        return [str(r[0] if isinstance(r, (list, tuple)) else r) for r in resps]

    def __call__(self, completions: list[str], references: list[str]) -> list[float]:
        """The metric of each filtered completion against its reference."""
        out = []
        for pred, ref in zip(self.prediction(completions), references, strict=True):
            value = self.metric_fn(references=[ref], predictions=[pred], **self.kwargs)
            out.append(float(value[self.metric] if isinstance(value, dict) else value))
        return out


def _pick_metric(task: str, cfg: dict, metric: str | None) -> tuple[str, dict[str, Any], str | None]:
    """(metric name, its kwargs from the task YAML, the filter asked for in 'metric,filter' or None)."""
    entries = [e for e in cfg.get("metric_list") or [{"metric": "exact_match"}] if isinstance(e, dict)]
    names = [e.get("metric") for e in entries]
    wanted, _, filter_name = (metric or "").partition(",")
    field = "metric" if metric else "task"
    if not wanted:
        entry = entries[0] if entries else {}
    elif wanted in names:
        entry = entries[names.index(wanted)]
    else:
        raise _ArgError("metric", f"task '{task}' has no metric '{wanted}'", hint=f"its metrics: {names}")
    name = entry.get("metric")
    if not isinstance(name, str) or name not in SUITE_METRICS or entry.get("hf_evaluate"):
        raise _ArgError(
            field,
            f"task '{task}' scores with metric {name!r}, which the suite reward cannot compute per answer",
            hint=f"it supports metrics that compare one answer to one reference: {', '.join(SUITE_METRICS)}",
        )
    kwargs = {k: v for k, v in entry.items() if k not in _NOT_METRIC_KWARGS}
    return name, kwargs, filter_name or None


def _pick_filters(task: str, path: str, cfg: dict, filter_name: str | None, registry) -> list[Callable]:
    """The task's filter pipeline (the named one, else its first; take_first where it has none), built."""
    from genai.evaluation.suites import Tagged

    pipelines = [p for p in cfg.get("filter_list") or [] if isinstance(p, dict)]
    pipelines = pipelines or [{"name": "none", "filter": [{"function": "take_first"}]}]
    names = [p.get("name") for p in pipelines]
    if filter_name is not None and filter_name not in names:
        raise _ArgError("metric", f"task '{task}' has no filter '{filter_name}'", hint=f"its filters: {names}")
    chosen = pipelines[names.index(filter_name)] if filter_name else pipelines[0]
    steps = []
    for step in chosen.get("filter") or []:
        fn = step.get("function") if isinstance(step, dict) else None
        kwargs = {k: v for k, v in step.items() if k != "function"} if isinstance(step, dict) else {}
        if not isinstance(fn, str) or fn == "custom" or any(isinstance(v, Tagged) for v in kwargs.values()):
            raise _ArgError("task", f"{path}: filter {fn!r} runs the task's own code, which the suite reward does not")
        try:
            make = functools.partial(registry.get_filter(fn), **kwargs)
            make()  # its kwargs (and a regex_pattern) are checked now, not in training
        except Exception as exc:
            raise _ArgError("task", f"{path}: filter '{fn}' {kwargs}: {type(exc).__name__}: {exc}") from None
        steps.append(make)
    return steps


@functools.cache
def _suite_scorer(task: str, metric: str | None) -> _SuiteScorer:
    """The scorer of a bundled task's metric; _ArgError for a task or metric it cannot score."""
    from genai.evaluation.suites import task_configs

    tasks = task_configs()
    if task not in tasks:
        close = difflib.get_close_matches(task, list(tasks), n=1)
        raise _ArgError(
            "task",
            f"'{task}' is not a bundled task" + (f" (did you mean '{close[0]}'?)" if close else ""),
            hint=f"bundled tasks (eval/, genai eval --list): {', '.join(sorted(tasks))}",
        )
    path, cfg = tasks[task]
    if cfg.get("output_type", "generate_until") != "generate_until":
        raise _ArgError(
            "task",
            f"task '{task}' is a {cfg.get('output_type')} task; the suite reward scores generated answers",
            hint="choose a task with output_type: generate_until",
        )
    name, kwargs, filter_name = _pick_metric(task, cfg, metric)
    registry = _lm_eval()
    scorer = _SuiteScorer(
        _pick_filters(task, path, cfg, filter_name, registry), registry.get_metric(name), name, kwargs
    )
    try:
        scorer(["0"], ["0"])  # the metric's kwargs from the YAML are checked now, not in training
    except Exception as exc:
        raise _ArgError("task", f"{path}: metric '{name}' {kwargs}: {type(exc).__name__}: {exc}") from None
    return scorer


# ----------------------------------------------------------------------------- rewards of a recipe


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


@dataclass(frozen=True)
class Reward:
    """One reward of a recipe, ready to call on a batch; its failures name train.grpo.rewards.<index>."""

    name: str
    weight: float
    label: str  # unique among the recipe's rewards and safe in a metric name (logged as rewards/<label>)
    index: int
    fn: RewardFn = dataclasses.field(repr=False)
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def where(self) -> str:
        """The recipe field and name of this reward, for messages."""
        return f"train.grpo.rewards.{self.index} '{self.name}'"

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], references: Sequence[str]) -> list[float]:
        """One finite float per completion; a GenaiError naming the reward when it fails or returns otherwise."""
        completions = list(completions)
        try:
            out = self.fn(list(prompts), list(completions), list(references), **self.args)
        except GenaiError as exc:
            raise GenaiError(f"{self.where}: {exc.message}", hint=exc.hint) from exc
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            at = f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
            first = f" on a batch starting with the completion {_short(completions[0])}" if completions else ""
            said = str(exc) if len(str(exc)) <= 300 else str(exc)[:299] + "…"
            raise self._error(f"failed{first}: {type(exc).__name__}: {said} (at {at})") from exc
        return self._values(out, completions)

    def _error(self, detail: str) -> GenaiError:
        return GenaiError(
            f"{self.where}: {detail}",
            hint="a reward returns one finite number per completion: fix the function or its args "
            f"(train.grpo.rewards.{self.index}.args)",
        )

    def _values(self, out: Any, completions: list[str]) -> list[float]:
        try:
            if isinstance(out, (str, bytes, dict)):
                raise TypeError
            values = list(out)
        except TypeError:
            raise self._error(f"returned a {type(out).__name__}, not a list of numbers") from None
        if len(values) != len(completions):
            first = f" (the first: {_short(completions[0])})" if completions else ""
            raise self._error(f"returned {len(values)} values for {len(completions)} completions{first}")
        floats = []
        for k, v in enumerate(values):
            try:
                x = float(v) if not isinstance(v, (str, bytes)) else None
            except (TypeError, ValueError, OverflowError):
                x = None
            if x is None or not math.isfinite(x):
                what = "not a number" if x is None else "not finite"
                shown = repr(v) if len(repr(v)) <= 80 else repr(v)[:79] + "…"
                raise self._error(f"returned {shown} ({what}) for the completion {_short(completions[k])}")
            floats.append(x)
        return floats


def build_rewards(cfg: GrpoSection) -> list[Reward]:
    """The recipe's rewards, every one checked now (name, weight, args, imports): one GenaiError naming the
    fields of every problem found."""
    rewards, problems = [], []
    for i, spec in enumerate(cfg.rewards):
        try:
            rewards.append(_build_one(i, spec.name, spec.weight, dict(spec.args), cfg.trust_reward_code))
        except GenaiError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:  # each with its own hint
        raise GenaiError("\n".join(p.message + (f"\n  hint: {p.hint}" if p.hint else "") for p in problems))
    return _labelled(rewards)


def _labelled(rewards: list[Reward]) -> list[Reward]:
    """Each label made unique: a repeated one becomes label_2, label_3..."""
    seen: set[str] = set()
    out = []
    for r in rewards:
        label, n = r.label, 1
        while label in seen:
            n += 1
            label = f"{r.label}_{n}"
        seen.add(label)
        out.append(dataclasses.replace(r, label=label))
    return out


def _build_one(i: int, name: str, weight: float, args: dict[str, Any], trusted: bool) -> Reward:
    where = f"train.grpo.rewards.{i}"
    if not math.isfinite(weight):
        raise GenaiError(f"{where}.weight: must be a finite number, got {weight}")
    if ":" in name:
        fn, label, builtin = _import_reward(where, name, trusted), name.partition(":")[2].rpartition(".")[2], None
    elif name in REWARDS:
        builtin = REWARDS[name]
        fn, label = builtin.fn, name
    else:
        close = difflib.get_close_matches(name, list(REWARDS), n=1)
        raise GenaiError(
            f"{where}.name: unknown reward '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
            hint=f"built-in rewards: {', '.join(REWARDS)} (genai rewards describes them); or your own "
            "'module:function' with train.grpo.trust_reward_code: true",
        )
    _check_args(where, name, fn, args, builtin)
    if builtin is not None and builtin.check is not None:
        try:
            builtin.check({**{a.name: a.default for a in builtin.args}, **args})
        except _ArgError as exc:
            raise GenaiError(f"{where}.args.{exc.arg}: {exc.detail}", hint=exc.hint) from None
        except GenaiError as exc:
            raise GenaiError(f"{where} '{name}': {exc.message}", hint=exc.hint) from exc
    return Reward(name, float(weight), re.sub(r"\W", "_", label), i, fn, args)


def _check_args(where: str, name: str, fn: Callable, args: dict[str, Any], builtin: RewardDef | None) -> None:
    """The args fit the function's signature: fn(prompts, completions, references, **args)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # no signature to read (a builtin in C): a mismatch shows on the first call
    params = list(sig.parameters.values())
    kinds = inspect.Parameter
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    if len(positional) < len(LEADING) and not any(p.kind is kinds.VAR_POSITIONAL for p in params):
        raise GenaiError(
            f"{where}.name: '{name}' takes {sig}; a reward takes (prompts, completions, references, **args)",
            hint="one list of strings each, and it returns one float per completion",
        )
    lead = positional[: len(LEADING)]
    options = [p for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY) and p not in lead]
    known = [p.name for p in options]
    listing = ", ".join(a.describe() for a in builtin.args) if builtin else ", ".join(known)
    hint = f"the args of '{name}': {listing or 'none'}"
    if not any(p.kind is kinds.VAR_KEYWORD for p in params):
        for arg in args:
            if arg not in known:
                close = difflib.get_close_matches(str(arg), known, n=1)
                more = f" (did you mean '{close[0]}'?)" if close else ""
                raise GenaiError(f"{where}.args.{arg}: reward '{name}' has no arg '{arg}'{more}", hint=hint)
    for p in options:
        if p.default is _EMPTY and p.name not in args:
            raise GenaiError(f"{where}.args.{p.name}: reward '{name}' needs this arg", hint=hint)
    try:
        sig.bind(*LEADING, **args)
    except TypeError as exc:
        raise GenaiError(f"{where}.args: reward '{name}' cannot take them: {exc}", hint=hint) from None


def _import_reward(where: str, name: str, trusted: bool) -> Callable:
    """Your own reward function: 'module:function' (or module:Class.method), imported only when trusted."""
    module_name, _, attr = name.partition(":")
    if not trusted:
        raise GenaiError(
            f"{where}.name: '{name}' is your own Python code; set train.grpo.trust_reward_code: true to run it",
            hint="it runs in training (and `genai validate` imports it), like model.trust_remote_code",
        )
    dotted = module_name.split(".") + attr.split(".")
    if not all(part.isidentifier() for part in dotted):
        raise GenaiError(
            f"{where}.name: '{name}' is not 'module:function'",
            hint="e.g. my_rewards:score for the function score in my_rewards.py in the current folder",
        )
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)  # after the installed packages: a module of yours cannot shadow one of them
    module = _import_module(where, module_name)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            own = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module_name)
            close = difflib.get_close_matches(attr, own, n=1)
            raise GenaiError(
                f"{where}.name: module '{module_name}' ({getattr(module, '__file__', '?')}) has no function "
                f"'{attr}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
                hint=f"its functions: {', '.join(own)}" if own else "define it in that module",
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise GenaiError(
            f"{where}.name: '{name}' is a {type(obj).__name__}, not a function",
            hint="name a function fn(prompts, completions, references, **args) -> list[float]",
        )
    return obj


def _import_module(where: str, module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise GenaiError(
                f"{where}.name: no module named '{module_name}'",
                hint=f"put {module_name.replace('.', '/')}.py in the current folder ({os.getcwd()}) or on PYTHONPATH",
            ) from exc
        raise GenaiError(
            f"{where}.name: importing '{module_name}' failed: {type(exc).__name__}: {exc}",
            hint="install what it imports",
        ) from exc
    except Exception as exc:
        raise GenaiError(
            f"{where}.name: importing '{module_name}' failed: {type(exc).__name__}: {exc}",
            hint=f"run python -c 'import {module_name}' to see the traceback",
        ) from exc


def score(
    rewards: Sequence[Reward], prompts: Sequence[str], completions: Sequence[str], references: Sequence[str]
) -> tuple[list[float], dict[str, list[float]]]:
    """(weighted total per completion, {reward label: its values}); prompts and references are per completion."""
    n = len(completions)
    if len(prompts) != n or len(references) != n:
        raise ValueError(f"score(): {len(prompts)} prompts and {len(references)} references for {n} completions")
    each = {r.label: r(prompts, completions, references) for r in rewards}
    total = [math.fsum(r.weight * each[r.label][k] for r in rewards) for k in range(n)]
    return total, each
